"""`ampere chain` as a separate process, driven with a plain JSON-RPC client the way a bitcoind user would.

The helpers at the top (`ChainDaemon`, `Wallet`) are shared with the BitcoindChain tests.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ampere.bitcoin.address import encode_segwit_address
from ampere.bitcoin.block import Block
from ampere.bitcoin.hashes import hash160
from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.network import Network
from ampere.bitcoin.script import p2wpkh_script
from ampere.bitcoin.signing import sign_p2wpkh_input
from ampere.bitcoin.tx import SEQUENCE_LOCKTIME_ONLY, OutPoint, Transaction, TxIn, TxOut

CHAIN_COMMAND = [sys.executable, "-m", "ampere.cli.main", "chain"]
STARTUP_TIMEOUT = 60.0


# --- shared helpers -------------------------------------------------------------------------------


@dataclass
class ChainDaemon:
    """One `ampere chain` process with port 0; `rpc` talks to it over http.client with basic auth."""

    datadir: Path
    process: subprocess.Popen[bytes]
    url: str
    cookie: str
    log_path: Path
    _conn: http.client.HTTPConnection | None = field(default=None, repr=False)

    @property
    def host_port(self) -> tuple[str, int]:
        hostport = self.url.split("//", 1)[1].rstrip("/")
        host, _, port = hostport.rpartition(":")
        return host, int(port)

    @property
    def cookie_file(self) -> Path:
        return self.datadir / "regtest" / ".cookie"

    def http(
        self, body: bytes, *, auth: str | None = None, method: str = "POST", path: str = "/"
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request on a kept-alive connection (reconnecting if the server closed it)."""
        credentials = self.cookie if auth is None else auth
        headers = {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}
        if auth == "":
            headers = {}
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(*self.host_port, timeout=60)
            try:
                self._conn.request(method, path, body=body, headers=headers)
                response = self._conn.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
                continue
            if response.getheader("Connection", "").lower() == "close":
                self._conn.close()
                self._conn = None
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        raise AssertionError("unreachable")

    def call(self, method: str, *params: Any) -> tuple[int, dict[str, Any]]:
        """(HTTP status, reply) for a legacy JSON-RPC 1.0 request, as bitcoin-cli sends them."""
        body = json.dumps({"jsonrpc": "1.0", "id": "test", "method": method, "params": list(params)})
        status, _headers, data = self.http(body.encode())
        return status, json.loads(data, parse_float=Decimal)

    def rpc(self, method: str, *params: Any) -> Any:
        status, reply = self.call(method, *params)
        assert reply["error"] is None, reply["error"]
        assert status == 200
        return reply["result"]

    def rpc_error(self, method: str, *params: Any) -> tuple[int, int, str]:
        status, reply = self.call(method, *params)
        assert reply["result"] is None and reply["error"] is not None, reply
        return status, reply["error"]["code"], reply["error"]["message"]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_chain_daemon(datadir: Path, extra: tuple[str, ...] = ()) -> ChainDaemon:
    datadir.mkdir(parents=True, exist_ok=True)
    log_path = datadir / "daemon.log"
    rpc_json = datadir / "regtest" / "rpc.json"
    rpc_json.unlink(missing_ok=True)
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [*CHAIN_COMMAND, "--datadir", str(datadir), "--rpc-port", "0", *extra],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not rpc_json.exists():
        if process.poll() is not None:
            raise AssertionError(f"ampere chain exited with {process.returncode}:\n{log_path.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"ampere chain did not write rpc.json:\n{log_path.read_text()}")
        time.sleep(0.02)
    url = json.loads(rpc_json.read_text())["url"]
    cookie = (datadir / "regtest" / ".cookie").read_text().strip()
    return ChainDaemon(datadir, process, url, cookie, log_path)


@dataclass
class Wallet:
    """One P2WPKH key that mines and spends coinbases."""

    key: PrivateKey = field(default_factory=lambda: PrivateKey.from_int(0xA11CE))
    _next_coinbase_height: int = 1

    @property
    def script_pubkey(self) -> bytes:
        return p2wpkh_script(self.key.public_key.data)

    @property
    def address(self) -> str:
        return encode_segwit_address(Network.REGTEST.hrp, 0, hash160(self.key.public_key.data))

    def spend(
        self,
        outpoint: OutPoint,
        amount: int,
        outputs: list[TxOut] | None = None,
        *,
        fee: int = 1_000,
        locktime: int = 0,
        sequence: int = 0xFFFF_FFFF,
    ) -> Transaction:
        outs = outputs if outputs is not None else [TxOut(amount - fee, self.script_pubkey)]
        tx = Transaction(2, (TxIn(outpoint, b"", sequence),), tuple(outs), locktime)
        return sign_p2wpkh_input(tx, 0, self.key, amount)

    def next_coinbase_height(self) -> int:
        height = self._next_coinbase_height
        self._next_coinbase_height += 1
        return height


def coinbase_outpoint(daemon: ChainDaemon, height: int) -> tuple[OutPoint, int]:
    block_hash = daemon.rpc("getblockhash", height)
    block = daemon.rpc("getblock", block_hash, 2)
    coinbase = block["tx"][0]
    return OutPoint.from_display(coinbase["txid"], 0), int(coinbase["vout"][0]["value"] * 100_000_000)


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainDaemon]:
    instance = start_chain_daemon(tmp_path_factory.mktemp("chain-daemon"))
    yield instance
    assert instance.stop() == 0, instance.log()


@pytest.fixture(scope="module")
def funded(daemon: ChainDaemon) -> Wallet:
    wallet = Wallet()
    daemon.rpc("generatetoaddress", 120, wallet.address)
    return wallet


def mature_coin(daemon: ChainDaemon, wallet: Wallet) -> tuple[OutPoint, int]:
    return coinbase_outpoint(daemon, wallet.next_coinbase_height())


# --- files and process ----------------------------------------------------------------------------


def test_cookie_and_rpc_json(daemon: ChainDaemon) -> None:
    regtest = daemon.datadir / "regtest"
    cookie = daemon.cookie_file
    assert stat.S_IMODE(cookie.stat().st_mode) == 0o600
    user, _, password = cookie.read_text().partition(":")
    assert user == "__cookie__" and len(password) == 64 and int(password, 16) >= 0
    assert json.loads((regtest / "rpc.json").read_text()) == {"url": daemon.url}
    assert daemon.url.startswith("http://127.0.0.1:")


# --- chain queries --------------------------------------------------------------------------------


def test_blockchain_queries(daemon: ChainDaemon, funded: Wallet) -> None:
    info = daemon.rpc("getblockchaininfo")
    height = daemon.rpc("getblockcount")
    assert info["chain"] == "regtest" and info["blocks"] == height >= 120
    assert info["bestblockhash"] == daemon.rpc("getbestblockhash") == daemon.rpc("getblockhash", height)
    assert daemon.rpc("getblockhash", 0) == "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"

    block_hash = daemon.rpc("getblockhash", 5)
    raw = Block.parse(bytes.fromhex(daemon.rpc("getblock", block_hash, 0)))
    assert raw.hash_hex == block_hash
    verbose = daemon.rpc("getblock", block_hash)
    assert verbose["height"] == 5 and verbose["confirmations"] == height - 4
    assert verbose["tx"] == [tx.txid_hex for tx in raw.transactions]
    assert verbose["previousblockhash"] == daemon.rpc("getblockhash", 4)
    assert verbose["nextblockhash"] == daemon.rpc("getblockhash", 6)
    assert verbose["bits"] == "207fffff" and verbose["nTx"] == 1
    assert verbose["weight"] == raw.weight and verbose["size"] == len(raw.serialize())
    assert daemon.rpc("getblock", block_hash, True)["tx"] == verbose["tx"]

    decoded = daemon.rpc("getblock", block_hash, 2)["tx"][0]
    assert decoded["vin"][0]["coinbase"]
    output = decoded["vout"][0]
    assert output["value"] == Decimal("50.00000000")
    assert output["scriptPubKey"]["address"] == funded.address
    assert output["scriptPubKey"]["type"] == "witness_v0_keyhash"

    header = daemon.rpc("getblockheader", block_hash)
    assert {k: header[k] for k in ("hash", "height", "merkleroot", "time")} == {
        k: verbose[k] for k in ("hash", "height", "merkleroot", "time")
    }
    assert header["mediantime"] <= header["time"]
    assert bytes.fromhex(daemon.rpc("getblockheader", block_hash, False)) == raw.header.serialize()


def test_amounts_are_btc_with_eight_decimals(daemon: ChainDaemon, funded: Wallet) -> None:
    _status, _headers, body = daemon.http(
        b'{"method":"getblock","params":["%s",2],"id":1}' % (daemon.rpc("getblockhash", 3).encode())
    )
    assert b'"value":50.00000000' in body
    _status, _headers, body = daemon.http(b'{"method":"estimatesmartfee","params":[6],"id":1}')
    assert b'"feerate":0.00002000' in body
    relay = daemon.rpc("getnetworkinfo")["relayfee"]
    assert relay == Decimal("0.00001000")


def test_transaction_lifecycle(daemon: ChainDaemon, funded: Wallet) -> None:
    outpoint, amount = mature_coin(daemon, funded)
    tx = funded.spend(outpoint, amount, fee=2_000)
    tested = daemon.rpc("testmempoolaccept", [tx.to_hex()])
    assert tested == [
        {
            "txid": tx.txid_hex,
            "wtxid": tx.wtxid[::-1].hex(),
            "allowed": True,
            "vsize": tx.vsize,
            "fees": {
                "base": Decimal("0.00002000"),
                "effective-feerate": Decimal(2_000 * 1000 // tx.vsize) / 100_000_000,
                "effective-includes": [tx.wtxid[::-1].hex()],
            },
        }
    ]
    assert daemon.rpc("sendrawtransaction", tx.to_hex()) == tx.txid_hex
    assert daemon.rpc("sendrawtransaction", tx.to_hex()) == tx.txid_hex  # resubmitting is fine
    assert tx.txid_hex in daemon.rpc("getrawmempool")
    entry = daemon.rpc("getmempoolentry", tx.txid_hex)
    assert entry["fees"]["base"] == Decimal("0.00002000") and entry["vsize"] == tx.vsize
    assert daemon.rpc("getrawmempool", True)[tx.txid_hex] == entry
    assert daemon.rpc("getmempoolinfo")["size"] >= 1
    assert daemon.rpc("getrawtransaction", tx.txid_hex) == tx.to_hex()
    verbose = daemon.rpc("getrawtransaction", tx.txid_hex, True)
    assert verbose["txid"] == tx.txid_hex and "blockhash" not in verbose
    assert verbose["vin"][0]["txinwitness"] == [item.hex() for item in tx.inputs[0].witness]

    assert daemon.rpc("gettxout", outpoint.txid_hex, 0) is None  # spent in the mempool
    assert daemon.rpc("gettxout", outpoint.txid_hex, 0, False)["value"] == Decimal(amount) / 100_000_000
    unconfirmed = daemon.rpc("gettxout", tx.txid_hex, 0)
    assert unconfirmed["confirmations"] == 0 and unconfirmed["value"] == Decimal(amount - 2_000) / 100_000_000

    [block_hash] = daemon.rpc("generatetoaddress", 1, funded.address)
    assert tx.txid_hex in daemon.rpc("getblock", block_hash)["tx"]
    assert tx.txid_hex not in daemon.rpc("getrawmempool")
    confirmed = daemon.rpc("getrawtransaction", tx.txid_hex, 1)
    assert confirmed["blockhash"] == block_hash and confirmed["confirmations"] == 1
    in_block = daemon.rpc("getrawtransaction", tx.txid_hex, True, block_hash)
    assert in_block["in_active_chain"] is True
    coin = daemon.rpc("gettxout", tx.txid_hex, 0)
    assert coin["confirmations"] == 1 and coin["bestblock"] == block_hash and coin["coinbase"] is False

    status, code, message = daemon.rpc_error("sendrawtransaction", tx.to_hex())
    assert (status, code, message) == (500, -27, "Transaction outputs already in utxo set")


@pytest.mark.parametrize("kind", ["non-final", "missing", "bad-signature", "coinbase-immature"])
def test_rejections_carry_bitcoinds_codes(daemon: ChainDaemon, funded: Wallet, kind: str) -> None:
    if kind == "coinbase-immature":
        tip = daemon.rpc("getblockcount")
        outpoint, amount = coinbase_outpoint(daemon, tip)
    else:
        outpoint, amount = mature_coin(daemon, funded)
    expected = {
        "non-final": (-26, "non-final"),
        "missing": (-25, "bad-txns-inputs-missingorspent"),
        "bad-signature": (-26, "mandatory-script-verify-flag-failed"),
        "coinbase-immature": (-26, "bad-txns-premature-spend-of-coinbase"),
    }[kind]
    if kind == "non-final":
        tip = daemon.rpc("getblockcount")
        tx = funded.spend(outpoint, amount, locktime=tip + 5, sequence=SEQUENCE_LOCKTIME_ONLY)
    elif kind == "missing":
        tx = funded.spend(OutPoint(b"\x42" * 32, 0), amount)
    elif kind == "bad-signature":
        tx = funded.spend(outpoint, amount + 1)  # signed for the wrong amount
    else:
        tx = funded.spend(outpoint, amount)
    status, code, message = daemon.rpc_error("sendrawtransaction", tx.to_hex())
    assert status == 500 and code == expected[0] and message.startswith(expected[1]), message
    [result] = daemon.rpc("testmempoolaccept", [tx.to_hex()])
    assert result["allowed"] is False
    reason = "missing-inputs" if kind == "missing" else expected[1]
    assert result["reject-reason"].startswith(reason)


# --- bad input ------------------------------------------------------------------------------------


def assert_alive(daemon: ChainDaemon) -> None:
    assert isinstance(daemon.rpc("getblockcount"), int)


@pytest.mark.parametrize(
    ("method", "params", "http_status", "code", "message"),
    [
        (
            "sendrawtransaction",
            ["zz"],
            500,
            -22,
            "TX decode failed. Make sure the tx has at least one input.",
        ),
        (
            "sendrawtransaction",
            ["00"],
            500,
            -22,
            "TX decode failed. Make sure the tx has at least one input.",
        ),
        (
            "testmempoolaccept",
            [["0200"]],
            500,
            -22,
            "TX decode failed. Make sure the tx has at least one input.",
        ),
        ("nosuchmethod", [], 404, -32601, "Method not found"),
        ("getblockhash", [10**9], 500, -8, "Block height out of range"),
        ("getblockhash", [-1], 500, -8, "Block height out of range"),
        ("getblock", ["00" * 32], 500, -5, "Block not found"),
        ("getblock", ["abc"], 500, -8, "blockhash must be of length 64 (not 3, for 'abc')"),
        ("getblock", ["zz" * 32], 500, -8, "blockhash must be hexadecimal string (not '" + "zz" * 32 + "')"),
        (
            "getrawtransaction",
            ["11" * 32],
            500,
            -5,
            "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.",
        ),
        ("getmempoolentry", ["11" * 32], 500, -5, "Transaction not in mempool"),
        ("generatetoaddress", [1, "bc1qnotregtest"], 500, -5, "Error: Invalid address"),
        ("estimatesmartfee", [0], 500, -8, "Invalid conf_target, must be between 1 and 1008"),
        ("getblockhash", ["1"], 500, -3, None),
        ("getblockcount", [1], 500, -1, None),
    ],
)
def test_bad_requests_get_bitcoinds_errors(
    daemon: ChainDaemon, method: str, params: list[Any], http_status: int, code: int, message: str | None
) -> None:
    status, got_code, got_message = daemon.rpc_error(method, *params)
    assert (status, got_code) == (http_status, code)
    if message is not None:
        assert got_message == message
    assert_alive(daemon)


def test_json_rpc_2_errors_are_http_200(daemon: ChainDaemon) -> None:
    status, _headers, body = daemon.http(b'{"jsonrpc":"2.0","id":9,"method":"nosuchmethod"}')
    assert status == 200
    assert json.loads(body) == {
        "jsonrpc": "2.0",
        "error": {"code": -32601, "message": "Method not found"},
        "id": 9,
    }


def test_parse_error(daemon: ChainDaemon) -> None:
    status, _headers, body = daemon.http(b'{"method": "getblockcount",')
    assert status == 500
    assert json.loads(body) == {
        "result": None,
        "error": {"code": -32700, "message": "Parse error"},
        "id": None,
    }
    assert_alive(daemon)


@pytest.mark.parametrize("auth", ["__cookie__:wrong", "someone:else", ""])
def test_wrong_password_is_401_with_an_empty_body(daemon: ChainDaemon, auth: str) -> None:
    status, headers, body = daemon.http(b'{"method":"getblockcount"}', auth=auth)
    assert (status, body) == (401, b"")
    assert headers["www-authenticate"] == 'Basic realm="jsonrpc"'
    assert_alive(daemon)


def test_oversized_request_is_413(daemon: ChainDaemon) -> None:
    body = b'{"method":"getblockcount","params":["' + b"a" * (33 * 1024 * 1024) + b'"]}'
    status, _headers, _body = daemon.http(body)
    assert status == 413
    assert_alive(daemon)


def test_http_method_and_path(daemon: ChainDaemon) -> None:
    assert daemon.http(b"", method="GET")[0] == 405
    assert daemon.http(b'{"method":"getblockcount"}', path="/rest/chaininfo.json")[0] == 404
    assert daemon.http(b'{"method":"getblockcount","id":1}', path="/wallet/w")[0] == 200


def test_batch_request(daemon: ChainDaemon) -> None:
    body = json.dumps(
        [
            {"method": "getblockcount", "id": 1},
            {"method": "nosuch", "id": 2},
            {"method": "getblockhash", "params": [0], "id": 3},
        ]
    ).encode()
    status, _headers, data = daemon.http(body)
    replies = json.loads(data)
    assert status == 200 and [reply["id"] for reply in replies] == [1, 2, 3]
    assert replies[1]["error"]["code"] == -32601 and replies[2]["result"].startswith("0f9188f1")


# --- fuzz -----------------------------------------------------------------------------------------

METHODS = [
    "getblockchaininfo",
    "getblockcount",
    "getbestblockhash",
    "getblockhash",
    "getblock",
    "getblockheader",
    "getrawtransaction",
    "decoderawtransaction",
    "sendrawtransaction",
    "testmempoolaccept",
    "gettxout",
    "getrawmempool",
    "getmempoolentry",
    "getmempoolinfo",
    "estimatesmartfee",
    "getnetworkinfo",
    "uptime",
    "getchaintips",
    "getdifficulty",
    "submitblock",
    "help",
    "generatetoaddress",
    "nosuchmethod",
]
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=80),
    st.sampled_from(["00" * 32, "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206", "zz"]),
    st.decimals(allow_nan=False, allow_infinity=False, places=9),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
requests = st.fixed_dictionaries(
    {"method": st.sampled_from(METHODS)},
    optional={
        "params": st.lists(json_values, max_size=4)
        | st.dictionaries(st.text(max_size=12), json_values, max_size=3),
        "id": json_scalars,
        "jsonrpc": st.sampled_from(["1.0", "2.0", "3.0"]),
    },
)


def _encode(value: Any) -> bytes:
    return json.dumps(value, default=str).encode()


bodies = st.one_of(
    st.binary(max_size=200),
    requests.map(_encode),
    st.lists(requests, max_size=3).map(_encode),
    json_values.map(_encode),
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None)
@given(body=bodies)
def test_fuzz_request_bodies(daemon: ChainDaemon, funded: Wallet, body: bytes) -> None:
    status, headers, data = daemon.http(body)
    if status == 204:
        assert data == b""
        return
    assert status in (200, 400, 404, 500), (status, data)
    assert headers["content-type"] == "application/json"
    replies = json.loads(data)
    for reply in replies if isinstance(replies, list) else [replies]:
        error = reply.get("error")
        if error is not None:
            # A JSON-RPC error, never an internal failure of the server.
            assert isinstance(error["code"], int) and error["code"] != -32603, (body, reply)
            assert isinstance(error["message"], str)
    assert_alive(daemon)


# --- shutdown and restart -------------------------------------------------------------------------


def test_stop_and_restart_keep_the_chain(tmp_path: Path) -> None:
    first = start_chain_daemon(tmp_path)
    wallet = Wallet()
    hashes = first.rpc("generatetoaddress", 3, wallet.address)
    assert first.stop(signal.SIGTERM) == 0, first.log()
    regtest = tmp_path / "regtest"
    assert not (regtest / ".cookie").exists() and not (regtest / "rpc.json").exists()
    assert "chain closed cleanly" in first.log()

    second = start_chain_daemon(tmp_path)
    assert second.cookie != first.cookie  # a fresh cookie each run
    assert second.rpc("getbestblockhash") == hashes[-1]
    assert second.rpc("stop") == "Ampere chain stopping"
    assert second.process.wait(timeout=30) == 0, second.log()

    third = start_chain_daemon(tmp_path)
    assert third.rpc("getblockcount") == 3
    assert third.stop(signal.SIGINT) == 0, third.log()


def test_datadir_in_use_is_refused(daemon: ChainDaemon) -> None:
    result = subprocess.run(
        [*CHAIN_COMMAND, "--datadir", str(daemon.datadir), "--rpc-port", "0"],
        capture_output=True,
        timeout=60,
        env={**os.environ},
    )
    assert result.returncode != 0
    assert b"in use" in result.stderr
    assert_alive(daemon)
