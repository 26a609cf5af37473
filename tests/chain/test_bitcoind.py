"""BitcoindChain against `ampere chain` in another process, and a second process sharing the same chain."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ampere.bitcoin.network import Network
from ampere.bitcoin.tx import SEQUENCE_LOCKTIME_ONLY, OutPoint, TxOut
from ampere.chain.bitcoind import BitcoindChain, BitcoindRpcError, RpcCredentials, reject_reason_from_bitcoind
from ampere.chain.errors import BroadcastError, ChainError, ChainUnavailableError, NotFoundError, RejectReason
from ampere.chain.http import HttpServer, Request, Response
from ampere.chain.interface import Broadcaster, ChainBackend, ChainSource, FeeEstimator
from ampere.chain.jsonrpc import BtcAmount, Dispatcher, Param, ParamType, RpcMethod
from tests.chain.test_server_daemon import ChainDaemon, Wallet, coinbase_outpoint, start_chain_daemon

T = TypeVar("T")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainDaemon]:
    instance = start_chain_daemon(tmp_path_factory.mktemp("bitcoind-backend"))
    yield instance
    assert instance.stop() == 0, instance.log()


@pytest.fixture(scope="module")
def wallet(daemon: ChainDaemon) -> Wallet:
    funded = Wallet()
    daemon.rpc("generatetoaddress", 110, funded.address)
    return funded


def with_chain(daemon: ChainDaemon, scenario: Callable[[BitcoindChain], Awaitable[T]]) -> T:
    async def main() -> T:
        chain = BitcoindChain.with_cookie(daemon.url, daemon.cookie_file)
        try:
            return await scenario(chain)
        finally:
            await chain.close()

    return asyncio.run(main())


def test_is_a_chain_backend(daemon: ChainDaemon) -> None:
    chain = BitcoindChain.with_cookie(daemon.url, daemon.cookie_file)
    assert isinstance(chain, ChainSource)
    assert isinstance(chain, Broadcaster)
    assert isinstance(chain, FeeEstimator)
    typed: ChainBackend = chain  # and mypy checks the whole protocol
    assert typed is chain


def test_tip_and_blocks(daemon: ChainDaemon, wallet: Wallet) -> None:
    async def scenario(chain: BitcoindChain) -> None:
        tip = await chain.tip_height()
        assert tip == daemon.rpc("getblockcount")
        assert await chain.chain_hash() == Network.REGTEST.chain_hash
        assert (await chain.tip_hash())[::-1].hex() == daemon.rpc("getbestblockhash")
        block = await chain.block_at(7)
        assert block.height == 7 and block.hash_hex == daemon.rpc("getblockhash", 7)
        assert block.prev_hash == await chain.block_hash(6)
        assert block.transactions[0].outputs[0].script_pubkey == wallet.script_pubkey
        assert block.transactions[0].outputs[0].value == 50 * 100_000_000
        same = await chain.block_by_hash(block.block_hash)
        assert same == block
        # Unknown heights and hashes raise the same NotFoundError as the embedded backend.
        with pytest.raises(NotFoundError, match="code -8"):
            await chain.block_at(tip + 1000)
        with pytest.raises(NotFoundError, match="code -5"):
            await chain.block_by_hash(b"\x01" * 32)

    with_chain(daemon, scenario)


def test_broadcast_txout_and_mempool(daemon: ChainDaemon, wallet: Wallet) -> None:
    outpoint, amount = coinbase_outpoint(daemon, wallet.next_coinbase_height())
    tx = wallet.spend(outpoint, amount, fee=1_500)

    async def scenario(chain: BitcoindChain) -> None:
        coin = await chain.get_txout(outpoint)
        assert coin is not None and coin.coinbase and coin.output.value == amount
        assert (
            coin.height is not None
            and (await chain.block_at(coin.height)).transactions[0].txid == outpoint.txid
        )
        await chain.test_accept(tx)
        assert await chain.broadcast(tx) == tx.txid
        assert await chain.broadcast(tx) == tx.txid  # already in the mempool: still fine
        assert tx.txid in {t.txid for t in await chain.mempool_transactions()}
        assert await chain.get_transaction(tx.txid) == tx
        assert await chain.get_txout(outpoint) is None
        assert await chain.get_txout(outpoint, include_mempool=False) == coin
        fresh = await chain.get_txout(tx.outpoint(0))
        assert fresh is not None and fresh.height is None and fresh.output.value == amount - 1_500

        tip = await chain.tip_height()
        [block_hash] = await chain.generate_to_address(1, wallet.address)
        assert await chain.tip_height() == tip + 1
        assert tx.txid in {t.txid for t in (await chain.block_by_hash(block_hash)).transactions}
        confirmed = await chain.get_txout(tx.outpoint(0))
        assert confirmed is not None and confirmed.height == tip + 1 and not confirmed.coinbase
        assert await chain.get_transaction(tx.txid, block_hash) == tx
        assert await chain.get_transaction(b"\x05" * 32) is None
        assert await chain.mempool_transactions() == ()

        with pytest.raises(BroadcastError) as info:
            await chain.broadcast(tx)
        assert info.value.reason is RejectReason.ALREADY_IN_CHAIN

    with_chain(daemon, scenario)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("non-final", RejectReason.NON_FINAL),
        ("non-bip68-final", RejectReason.NON_BIP68_FINAL),
        ("missing", RejectReason.MISSING_OR_SPENT_INPUTS),
        ("bad-signature", RejectReason.SCRIPT_VERIFY_FAILED),
        ("immature", RejectReason.PREMATURE_COINBASE_SPEND),
        ("no-fee", RejectReason.INSUFFICIENT_FEE),
        ("overspend", RejectReason.OUTPUTS_EXCEED_INPUTS),
        ("dust", RejectReason.DUST),
    ],
)
def test_rejections_are_typed(daemon: ChainDaemon, wallet: Wallet, kind: str, reason: RejectReason) -> None:
    tip = daemon.rpc("getblockcount")
    height = tip if kind == "immature" else wallet.next_coinbase_height()
    outpoint, amount = coinbase_outpoint(daemon, height)
    spk = wallet.script_pubkey
    if kind == "non-final":
        tx = wallet.spend(outpoint, amount, locktime=tip + 2, sequence=SEQUENCE_LOCKTIME_ONLY)
    elif kind == "non-bip68-final":
        tx = wallet.spend(outpoint, amount, sequence=tip + 50)  # relative lock of more blocks than its depth
    elif kind == "missing":
        tx = wallet.spend(OutPoint(b"\x24" * 32, 1), amount)
    elif kind == "bad-signature":
        tx = wallet.spend(outpoint, amount - 1)
    elif kind == "no-fee":
        tx = wallet.spend(outpoint, amount, fee=0)
    elif kind == "overspend":
        tx = wallet.spend(outpoint, amount, [TxOut(amount + 1, spk)])
    elif kind == "dust":
        tx = wallet.spend(outpoint, amount, [TxOut(100, spk), TxOut(amount - 10_000, spk)])
    else:
        tx = wallet.spend(outpoint, amount)

    async def scenario(chain: BitcoindChain) -> None:
        with pytest.raises(BroadcastError) as tested:
            await chain.test_accept(tx)
        with pytest.raises(BroadcastError) as broadcast:
            await chain.broadcast(tx)
        assert tested.value.reason is reason, tested.value
        assert broadcast.value.reason is reason, broadcast.value
        assert broadcast.value.detail

    with_chain(daemon, scenario)


def test_fee_estimate(daemon: ChainDaemon) -> None:
    async def scenario(chain: BitcoindChain) -> None:
        # The embedded chain estimates 2000 sat/kvB, which is 500 sat/kw.
        assert await chain.feerate_per_kw(6) == 500
        assert await chain.feerate_per_kw(0) == 500
        assert await chain.feerate_per_kw(5000) == 500

    with_chain(daemon, scenario)


def test_wrong_credentials_and_no_server(daemon: ChainDaemon, tmp_path: Path) -> None:
    async def main() -> None:
        wrong = BitcoindChain(daemon.url, RpcCredentials(user="__cookie__", password="nope"))
        with pytest.raises(ChainUnavailableError, match="401"):
            await wrong.tip_height()
        await wrong.close()
        missing = BitcoindChain.with_cookie(daemon.url, tmp_path / "no-cookie")
        with pytest.raises(ChainUnavailableError, match="cookie"):
            await missing.tip_height()
        host, _port = daemon.host_port
        nowhere = BitcoindChain(f"http://{host}:1/", RpcCredentials(user="u", password="p"))
        with pytest.raises(ChainUnavailableError):
            await nowhere.tip_height()

    asyncio.run(main())


def test_batch_keeps_per_call_errors(daemon: ChainDaemon) -> None:
    async def scenario(chain: BitcoindChain) -> list[Any]:
        return await chain.batch([("getblockcount", []), ("nosuchmethod", []), ("getblockhash", [0])])

    count, error, genesis = with_chain(daemon, scenario)
    assert isinstance(count, int)
    assert isinstance(error, BitcoindRpcError) and error.code == -32601
    assert genesis == Network.REGTEST.chain_hash[::-1].hex()


# --- two processes, one chain ---------------------------------------------------------------------

SECOND_PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from ampere.bitcoin.tx import Transaction
    from ampere.chain.bitcoind import BitcoindChain

    async def main() -> None:
        url, cookie, address, raw_tx = sys.argv[1:5]
        chain = BitcoindChain.with_cookie(url, Path(cookie))
        tx = Transaction.from_hex(raw_tx)
        # What the first process broadcast is in the mempool this process sees.
        assert tx.txid in {t.txid for t in await chain.mempool_transactions()}
        start = await chain.tip_height()
        [block_hash] = await chain.generate_to_address(1, address)
        block = await chain.block_by_hash(block_hash)
        assert block.height == start + 1 and tx.txid in {t.txid for t in block.transactions}
        print(start + 1, block_hash[::-1].hex())
        await chain.close()

    asyncio.run(main())
    """
)


def test_two_processes_share_the_chain(daemon: ChainDaemon, wallet: Wallet) -> None:
    outpoint, amount = coinbase_outpoint(daemon, wallet.next_coinbase_height())
    tx = wallet.spend(outpoint, amount)

    async def broadcast(chain: BitcoindChain) -> None:
        await chain.broadcast(tx)

    with_chain(daemon, broadcast)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            SECOND_PROCESS,
            daemon.url,
            str(daemon.cookie_file),
            wallet.address,
            tx.to_hex(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    height_text, block_hash = result.stdout.split()

    async def check(chain: BitcoindChain) -> None:
        assert await chain.tip_height() == int(height_text)
        assert (await chain.block_hash(int(height_text)))[::-1].hex() == block_hash
        coin = await chain.get_txout(tx.outpoint(0))
        assert coin is not None and coin.height == int(height_text)

    with_chain(daemon, check)
    # And a plain JSON-RPC client sees the same.
    assert daemon.rpc("getrawtransaction", tx.txid_hex, True)["blockhash"] == block_hash


def test_cookie_is_read_again_after_a_restart(tmp_path: Path) -> None:
    first = start_chain_daemon(tmp_path)

    async def main() -> None:
        chain = BitcoindChain.with_cookie(first.url, first.cookie_file)
        assert await chain.tip_height() == 0
        assert first.stop() == 0
        with pytest.raises(ChainUnavailableError):
            await chain.tip_height()
        # Port 0 gave another port; same cookie path, new cookie content.
        second = start_chain_daemon(tmp_path)
        try:
            moved = BitcoindChain.with_cookie(second.url, second.cookie_file)
            moved._authorization = chain._authorization  # the stale cookie of the first run
            await moved.generate_to_address(2, Wallet().address)
            assert await moved.tip_height() == 2
            await moved.close()
        finally:
            assert second.stop() == 0

    asyncio.run(main())


# --- without a live daemon ------------------------------------------------------------------------


def fake_bitcoind(chain_name: str, feerate: Any) -> Dispatcher:
    async def info(_args: list[Any]) -> Any:
        return {"chain": chain_name}

    async def estimate(_args: list[Any]) -> Any:
        if feerate is None:
            return {"errors": ["Insufficient data or no feerate found"], "blocks": 0}
        return {"feerate": feerate, "blocks": 2}

    return Dispatcher(
        [
            RpcMethod("getblockchaininfo", (), info),
            RpcMethod("estimatesmartfee", (Param("conf_target", ParamType.NUM),), estimate),
        ]
    )


@pytest.mark.parametrize(
    ("chain_name", "feerate", "expected"),
    [
        ("regtest", None, 500),  # the fallback: 2000 sat/kvB
        ("regtest", BtcAmount(500), 253),  # below the floor
        ("main", BtcAmount(40_000), 10_000),
        ("main", None, None),
    ],
)
def test_fee_fallback_and_floor(chain_name: str, feerate: Any, expected: int | None) -> None:
    dispatcher = fake_bitcoind(chain_name, feerate)

    async def handle(request: Request) -> Response:
        status, body = await dispatcher.handle(request.body)
        return Response.json(status, body or b"")

    async def main() -> None:
        server = HttpServer(handle)
        host, port = await server.listen_tcp("127.0.0.1", 0)
        chain = BitcoindChain(f"http://{host}:{port}/", RpcCredentials(user="u", password="p"))
        try:
            if expected is None:
                with pytest.raises(ChainError, match="no fee estimate"):
                    await chain.feerate_per_kw(6)
            else:
                assert await chain.feerate_per_kw(6) == expected
        finally:
            await chain.close()
            await server.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("code", "message", "reason"),
    [
        (-26, "non-final", RejectReason.NON_FINAL),
        (-26, "non-BIP68-final", RejectReason.NON_BIP68_FINAL),
        (-25, "bad-txns-inputs-missingorspent", RejectReason.MISSING_OR_SPENT_INPUTS),
        (-26, "missing-inputs", RejectReason.MISSING_OR_SPENT_INPUTS),
        (-27, "Transaction outputs already in utxo set", RejectReason.ALREADY_IN_CHAIN),
        (-26, "txn-already-known", RejectReason.ALREADY_IN_CHAIN),
        (-26, "txn-already-in-mempool", RejectReason.ALREADY_IN_MEMPOOL),
        (-26, "txn-mempool-conflict", RejectReason.CONFLICT),
        (
            -26,
            "bad-txns-spends-conflicting-tx, abc spends conflicting transaction def",
            RejectReason.CONFLICT,
        ),
        (-26, "insufficient fee, rejecting replacement abc; new feerate", RejectReason.INSUFFICIENT_FEE),
        (-26, "min relay fee not met, 100 < 141", RejectReason.INSUFFICIENT_FEE),
        (-26, "mempool min fee not met, 1 < 2", RejectReason.INSUFFICIENT_FEE),
        (
            -26,
            "mandatory-script-verify-flag-failed (Signature must be zero)",
            RejectReason.SCRIPT_VERIFY_FAILED,
        ),
        (
            -26,
            "non-mandatory-script-verify-flag (Non-canonical signature)",
            RejectReason.SCRIPT_VERIFY_FAILED,
        ),
        (
            -26,
            "mempool-script-verify-flag-failed (Data push larger than necessary)",
            RejectReason.SCRIPT_VERIFY_FAILED,
        ),
        (
            -26,
            "bad-txns-premature-spend-of-coinbase, tried to spend coinbase at depth 5",
            RejectReason.PREMATURE_COINBASE_SPEND,
        ),
        (-26, "bad-txns-in-belowout, value in (1.00) < value out (2.00)", RejectReason.OUTPUTS_EXCEED_INPUTS),
        (-26, "dust", RejectReason.DUST),
        (-26, "scriptpubkey", RejectReason.NONSTANDARD),
        (-26, "too-long-mempool-chain, too many unconfirmed ancestors [limit: 25]", RejectReason.NONSTANDARD),
        (-26, "bad-txns-vout-negative", RejectReason.INVALID),
        (-26, "something new", RejectReason.OTHER),
        (-22, "TX decode failed", RejectReason.DECODE_FAILED),
        (-25, "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)", RejectReason.OTHER),
        (-8, "Invalid parameter", None),
        (-32601, "Method not found", None),
    ],
)
def test_reject_reason_mapping(code: int, message: str, reason: RejectReason | None) -> None:
    assert reject_reason_from_bitcoind(code, message) is reason
