"""`ampere chain`'s RPC server: the embedded regtest chain behind bitcoind's JSON-RPC.

Every method runs whole on one worker thread that owns the chain (the kernel is single-threaded),
so a reply is a consistent snapshot: no block can connect between two lookups of the same call.
The event loop only does HTTP, authentication and JSON, and keeps answering while the chain works.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ampere import __version__
from ampere.bitcoin.address import AddressError, address_to_script_pubkey
from ampere.bitcoin.block import Block, BlockHeader
from ampere.bitcoin.errors import BitcoinError
from ampere.bitcoin.network import Network
from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.chain.errors import BroadcastError, RejectReason
from ampere.chain.http import HttpServer, Request, Response, ServerLimits, basic_credentials_match
from ampere.chain.interface import UnspentOutput
from ampere.chain.jsonrpc import (
    BtcAmount,
    Dispatcher,
    Param,
    ParamType,
    RpcError,
    RpcErrorCode,
    RpcMethod,
)
from ampere.chain.rpc_views import (
    GENESIS_COINBASE_TXID,
    amount_param,
    block_json,
    chainwork_hex,
    decode_tx,
    difficulty,
    fee_rate_param,
    header_json,
    int_param,
    invalid_param,
    is_hex,
    is_unspendable,
    mempool_entry_json,
    not_found,
    parse_hash,
    script_pubkey_json,
    tx_json,
    verbosity_param,
)

if TYPE_CHECKING:
    from ampere.chain.kernel import BlockVerdict
    from ampere.chain.mempool import MempoolEntry

__all__ = [
    "ChainRpcServer",
    "ChainRpcService",
    "ChainWorker",
    "EmbeddedChainApi",
    "broadcast_error_to_rpc",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

# bitcoind's MAX_SIZE for an HTTP request body.
MAX_REQUEST_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_FEERATE_SAT_PER_KVB = 10_000_000  # 0.10 BTC/kvB, sendrawtransaction's default maxfeerate
MAX_GENERATE_PER_CALL = 100_000
MAX_CONF_TARGET = 1008
MIN_RELAY_FEE_SAT_PER_KVB = 1000
PROTOCOL_VERSION = 70016
# What `getnetworkinfo.version` claims: clients gate features on bitcoind's version, and this server
# follows v28's dialect (JSON-RPC 2.0 replies, `reject-details`).
EMULATED_BITCOIND_VERSION = 280000
_WALLET_HINT = "Use gettransaction for wallet transactions."
_GENESIS_COINBASE_MESSAGE = (
    "The genesis block coinbase is not considered an ordinary transaction and cannot be retrieved"
)


class EmbeddedChainApi(Protocol):
    """What the server needs from `ampere.chain.embedded.EmbeddedChain` (all synchronous)."""

    def tip_height(self) -> int: ...

    def tip_hash(self) -> bytes: ...

    def block_hash(self, height: int) -> bytes | None: ...

    def get_block(self, block_hash: bytes) -> Block | None: ...

    def block_height(self, block_hash: bytes) -> int | None: ...

    def median_time_past(self, height: int | None = None) -> int: ...

    def get_transaction(self, txid: bytes) -> tuple[Transaction, bytes | None] | None: ...

    def get_txout(self, outpoint: OutPoint, include_mempool: bool = True) -> UnspentOutput | None: ...

    def mempool_txids(self) -> list[bytes]: ...

    def mempool_entry(self, txid: bytes) -> MempoolEntry | None: ...

    def submit(self, tx: Transaction) -> bytes: ...

    def test_accept(self, tx: Transaction) -> None: ...

    def generate(self, count: int, script_pubkey: bytes) -> list[bytes]: ...

    def submit_block(self, block: Block) -> BlockVerdict: ...

    def estimate_feerate_sat_per_kvb(self, target: int = 6) -> int | None: ...

    def close(self) -> None: ...


class ChainWorker:
    """The one thread that touches the chain; `run` hands it a call and awaits the result."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chain")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


# --- errors --------------------------------------------------------------------------------------------


def broadcast_error_to_rpc(error: BroadcastError) -> RpcError:
    """bitcoind's codes for a refused transaction: -25 missing inputs, -27 already mined, -26 the rest."""
    if error.reason is RejectReason.MISSING_OR_SPENT_INPUTS:
        return RpcError(RpcErrorCode.VERIFY_ERROR, error.detail)
    if error.reason is RejectReason.ALREADY_IN_CHAIN:
        return RpcError(RpcErrorCode.VERIFY_ALREADY_IN_CHAIN, "Transaction outputs already in utxo set")
    if error.reason is RejectReason.DECODE_FAILED:
        return RpcError(RpcErrorCode.DESERIALIZATION_ERROR, error.detail)
    return RpcError(RpcErrorCode.VERIFY_REJECTED, error.detail)


# --- the methods -----------------------------------------------------------------------------------------


class ChainRpcService:
    """bitcoind's chain RPCs over an embedded chain; every method runs on the chain thread."""

    def __init__(self, chain: EmbeddedChainApi, network: Network = Network.REGTEST) -> None:
        self.chain = chain
        self.network = network
        self.started = time.monotonic()
        self._headers: dict[bytes, tuple[BlockHeader, int]] = {}  # hash -> (header, tx count)

    # --- helpers -------------------------------------------------------------------------------------
    def _block(self, block_hash: bytes) -> Block:
        block = self.chain.get_block(block_hash)
        if block is None:
            raise not_found("Block not found")
        self._remember(block)
        return block

    def _remember(self, block: Block) -> None:
        if len(self._headers) > 200_000:
            self._headers.clear()
        self._headers[block.hash] = (block.header, len(block.transactions))

    def _header(self, block_hash: bytes) -> tuple[BlockHeader, int] | None:
        cached = self._headers.get(block_hash)
        if cached is not None:
            return cached
        block = self.chain.get_block(block_hash)
        if block is None:
            return None
        self._remember(block)
        return block.header, len(block.transactions)

    def _median_time(self, block_hash: bytes) -> int:
        """BIP113's median of the 11 block times ending at `block_hash`."""
        height = self.chain.block_height(block_hash)
        if height is not None:
            return self.chain.median_time_past(height)
        times: list[int] = []  # a block off the active chain: walk its own ancestors
        current: bytes | None = block_hash
        while current is not None and len(times) < 11:
            found = self._header(current)
            if found is None:
                break
            header = found[0]
            times.append(header.time)
            current = header.prev_hash if header.prev_hash != b"\x00" * 32 else None
        times.sort()
        return times[len(times) // 2] if times else 0

    def _header_fields(self, block_hash: bytes, header: BlockHeader, tx_count: int) -> dict[str, Any]:
        height = self.chain.block_height(block_hash)
        tip = self.chain.tip_height()
        next_hash = self.chain.block_hash(height + 1) if height is not None else None
        return header_json(
            header,
            height=height if height is not None else -1,
            confirmations=tip - height + 1 if height is not None else -1,
            median_time=self._median_time(block_hash),
            tx_count=tx_count,
            next_hash=next_hash,
        )

    def _input_value(self, outpoint: OutPoint) -> int | None:
        parent = self.chain.mempool_entry(outpoint.txid)
        if parent is not None:
            outputs = parent.tx.outputs
            return outputs[outpoint.vout].value if outpoint.vout < len(outputs) else None
        coin = self.chain.get_txout(outpoint, False)
        return None if coin is None else coin.output.value

    def _fee(self, tx: Transaction) -> int | None:
        total = 0
        for txin in tx.inputs:
            value = self._input_value(txin.prevout)
            if value is None:
                return None
            total += value
        return total - tx.total_output_value()

    # --- blockchain ----------------------------------------------------------------------------------
    def getblockchaininfo(self, _args: list[Any]) -> Any:
        tip_hash = self.chain.tip_hash()
        found = self._header(tip_hash)
        assert found is not None
        header = found[0]
        height = self.chain.tip_height()
        return {
            "chain": "regtest" if self.network is Network.REGTEST else self.network.value,
            "blocks": height,
            "headers": height,
            "bestblockhash": tip_hash[::-1].hex(),
            "difficulty": difficulty(header.bits),
            "time": header.time,
            "mediantime": self._median_time(tip_hash),
            "verificationprogress": 1,
            "initialblockdownload": False,
            "chainwork": chainwork_hex(height, header.bits),
            "size_on_disk": 0,
            "pruned": False,
            "warnings": [],
        }

    def getblockcount(self, _args: list[Any]) -> Any:
        return self.chain.tip_height()

    def getbestblockhash(self, _args: list[Any]) -> Any:
        return self.chain.tip_hash()[::-1].hex()

    def getblockhash(self, args: list[Any]) -> Any:
        height = int_param(args[0], "height")
        block_hash = self.chain.block_hash(height) if 0 <= height <= self.chain.tip_height() else None
        if block_hash is None:
            raise invalid_param("Block height out of range")
        return block_hash[::-1].hex()

    def getblock(self, args: list[Any]) -> Any:
        block_hash = parse_hash(args[0], "blockhash")
        verbosity = verbosity_param(args[1], 1)
        block = self._block(block_hash)
        if verbosity <= 0:
            return block.serialize().hex()
        fields = self._header_fields(block_hash, block.header, len(block.transactions))
        if verbosity == 1:
            transactions: list[Any] = [tx.txid_hex for tx in block.transactions]
        else:
            transactions = [tx_json(tx, self.network) for tx in block.transactions]
        return block_json(fields, block, transactions)

    def getblockheader(self, args: list[Any]) -> Any:
        block_hash = parse_hash(args[0], "blockhash")
        found = self._header(block_hash)
        if found is None:
            raise not_found("Block not found")
        header, tx_count = found
        if args[1] is False:
            return header.serialize().hex()
        return self._header_fields(block_hash, header, tx_count)

    def getchaintips(self, _args: list[Any]) -> Any:
        tip = self.chain.tip_hash()[::-1].hex()
        return [{"height": self.chain.tip_height(), "hash": tip, "branchlen": 0, "status": "active"}]

    def getdifficulty(self, _args: list[Any]) -> Any:
        found = self._header(self.chain.tip_hash())
        assert found is not None
        return difficulty(found[0].bits)

    # --- transactions ---------------------------------------------------------------------------------
    def getrawtransaction(self, args: list[Any]) -> Any:
        txid = parse_hash(args[0], "parameter 1")
        verbosity = verbosity_param(args[1], 0)
        block_hash: bytes | None
        if args[2] is not None:
            block_hash = parse_hash(args[2], "parameter 3")
            block = self.chain.get_block(block_hash)
            if block is None:
                raise not_found("Block hash not found")
            tx = next((candidate for candidate in block.transactions if candidate.txid == txid), None)
            if tx is None:
                raise not_found(f"No such transaction found in the provided block. {_WALLET_HINT}")
        else:
            if txid == GENESIS_COINBASE_TXID:
                raise not_found(_GENESIS_COINBASE_MESSAGE)
            found = self.chain.get_transaction(txid)
            if found is None:
                raise not_found(f"No such mempool or blockchain transaction. {_WALLET_HINT}")
            tx, block_hash = found
        if verbosity <= 0:
            return tx.to_hex()
        result = tx_json(tx, self.network)
        if block_hash is not None:
            result["blockhash"] = block_hash[::-1].hex()
            height = self.chain.block_height(block_hash)
            header = self._header(block_hash)
            if args[2] is not None:
                result["in_active_chain"] = height is not None
            if height is None:
                result["confirmations"] = 0
            else:
                result["confirmations"] = self.chain.tip_height() - height + 1
                if header is not None:
                    result["time"] = header[0].time
                    result["blocktime"] = header[0].time
        return result

    def decoderawtransaction(self, args: list[Any]) -> Any:
        return tx_json(decode_tx(args[0]), self.network, include_hex=False)

    def sendrawtransaction(self, args: list[Any]) -> Any:
        tx = decode_tx(args[0])
        max_feerate = fee_rate_param(args[1], DEFAULT_MAX_FEERATE_SAT_PER_KVB)
        max_burn = 0 if args[2] is None else amount_param(args[2])
        if any(is_unspendable(txout.script_pubkey) and txout.value > max_burn for txout in tx.outputs):
            raise RpcError(
                RpcErrorCode.VERIFY_ERROR,
                "Unspendable output exceeds maximum configured by user (maxburnamount)",
            )
        if tx.txid in self.chain.mempool_txids():
            return tx.txid_hex  # bitcoind answers a resubmission with the txid, not an error
        if max_feerate:
            fee = self._fee(tx)
            if fee is not None and fee * 1000 > max_feerate * tx.vsize:
                raise RpcError(
                    RpcErrorCode.VERIFY_ERROR,
                    "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)",
                )
        try:
            txid = self.chain.submit(tx)
        except BroadcastError as exc:
            if exc.reason is RejectReason.ALREADY_IN_MEMPOOL:
                return tx.txid_hex
            raise broadcast_error_to_rpc(exc) from None
        return txid[::-1].hex()

    def testmempoolaccept(self, args: list[Any]) -> Any:
        raw_txs = args[0]
        if not 1 <= len(raw_txs) <= 25:
            raise invalid_param("Array must contain between 1 and 25 transactions.")
        max_feerate = fee_rate_param(args[1], DEFAULT_MAX_FEERATE_SAT_PER_KVB)
        transactions = [decode_tx(raw) for raw in raw_txs]
        results = []
        for tx in transactions:
            entry: dict[str, Any] = {"txid": tx.txid_hex, "wtxid": tx.wtxid[::-1].hex()}
            try:
                self.chain.test_accept(tx)
            except BroadcastError as exc:
                entry["allowed"] = False
                entry["reject-reason"] = _reject_reason_text(exc)
                entry["reject-details"] = exc.detail
                results.append(entry)
                continue
            fee = self._fee(tx)
            if max_feerate and fee is not None and fee * 1000 > max_feerate * tx.vsize:
                entry["allowed"] = False
                entry["reject-reason"] = "max-fee-exceeded"
                results.append(entry)
                continue
            entry["allowed"] = True
            entry["vsize"] = tx.vsize
            if fee is not None:
                entry["fees"] = {
                    "base": BtcAmount(fee),
                    "effective-feerate": BtcAmount(fee * 1000 // tx.vsize),
                    "effective-includes": [entry["wtxid"]],
                }
            results.append(entry)
        return results

    def gettxout(self, args: list[Any]) -> Any:
        txid = parse_hash(args[0], "txid")
        vout = int_param(args[1], "n")
        if vout < 0:
            raise invalid_param("Invalid parameter, vout cannot be negative")
        if vout > 0xFFFF_FFFF:
            return None
        include_mempool = True if args[2] is None else bool(args[2])
        coin = self.chain.get_txout(OutPoint(txid, vout), include_mempool)
        if coin is None:
            return None
        tip = self.chain.tip_height()
        return {
            "bestblock": self.chain.tip_hash()[::-1].hex(),
            "confirmations": 0 if coin.height is None else tip - coin.height + 1,
            "value": BtcAmount(coin.output.value),
            "scriptPubKey": script_pubkey_json(coin.output.script_pubkey, self.network),
            "coinbase": coin.coinbase,
        }

    # --- mempool --------------------------------------------------------------------------------------
    def _pool(self) -> dict[bytes, MempoolEntry]:
        pool: dict[bytes, MempoolEntry] = {}
        for txid in self.chain.mempool_txids():
            entry = self.chain.mempool_entry(txid)
            if entry is not None:
                pool[txid] = entry
        return pool

    def getrawmempool(self, args: list[Any]) -> Any:
        verbose = bool(args[0])
        if args[1]:
            if verbose:
                raise invalid_param("Verbose results cannot contain mempool sequence values.")
            raise invalid_param("mempool_sequence is not supported")
        if not verbose:
            return [txid[::-1].hex() for txid in self.chain.mempool_txids()]
        pool = self._pool()
        return {txid[::-1].hex(): mempool_entry_json(txid, pool, self.chain.tip_height()) for txid in pool}

    def getmempoolentry(self, args: list[Any]) -> Any:
        txid = parse_hash(args[0], "txid")
        pool = self._pool()
        if txid not in pool:
            raise not_found("Transaction not in mempool")
        return mempool_entry_json(txid, pool, self.chain.tip_height())

    def getmempoolinfo(self, _args: list[Any]) -> Any:
        pool = self._pool()
        relay_fee = BtcAmount(MIN_RELAY_FEE_SAT_PER_KVB)
        return {
            "loaded": True,
            "size": len(pool),
            "bytes": sum(entry.vsize for entry in pool.values()),
            "usage": sum(len(entry.tx.serialize()) for entry in pool.values()),
            "total_fee": BtcAmount(sum(entry.fee for entry in pool.values())),
            "maxmempool": 300_000_000,
            "mempoolminfee": relay_fee,
            "minrelaytxfee": relay_fee,
            "incrementalrelayfee": relay_fee,
            "unbroadcastcount": 0,
            "fullrbf": True,
        }

    # --- mining and fees ------------------------------------------------------------------------------
    def generatetoaddress(self, args: list[Any]) -> Any:
        count = int_param(args[0], "nblocks")
        if count > MAX_GENERATE_PER_CALL:
            raise invalid_param(f"nblocks must be at most {MAX_GENERATE_PER_CALL} per call")
        try:
            script_pubkey = address_to_script_pubkey(str(args[1]), self.network)
        except AddressError:
            raise not_found("Error: Invalid address") from None
        if count <= 0:
            return []
        return [block_hash[::-1].hex() for block_hash in self.chain.generate(count, script_pubkey)]

    def submitblock(self, args: list[Any]) -> Any:
        text = str(args[0])
        try:
            if not is_hex(text):
                raise ValueError("not hex")
            block = Block.parse(bytes.fromhex(text))
        except (BitcoinError, ValueError):
            raise RpcError(RpcErrorCode.DESERIALIZATION_ERROR, "Block decode failed") from None
        verdict = self.chain.submit_block(block)
        # Compared by value: importing the kernel's enum would load libbitcoinkernel with this module.
        status = verdict.status.value
        if status == "connected":
            return None
        if status == "duplicate":
            return "duplicate"
        if status == "side-branch":
            return "inconclusive"
        return verdict.reason or verdict.result or "rejected"

    def estimatesmartfee(self, args: list[Any]) -> Any:
        target = int_param(args[0], "conf_target")
        if not 1 <= target <= MAX_CONF_TARGET:
            raise invalid_param(f"Invalid conf_target, must be between 1 and {MAX_CONF_TARGET}")
        mode = "economical" if args[1] is None else str(args[1]).lower()
        if mode not in ("unset", "economical", "conservative"):
            raise invalid_param(
                'Invalid estimate_mode parameter, must be one of: "unset", "economical", "conservative"'
            )
        rate = self.chain.estimate_feerate_sat_per_kvb(target)
        if rate is None:
            return {"errors": ["Insufficient data or no feerate found"], "blocks": 0}
        return {"feerate": BtcAmount(max(rate, MIN_RELAY_FEE_SAT_PER_KVB)), "blocks": target}

    # --- node -----------------------------------------------------------------------------------------
    def getnetworkinfo(self, _args: list[Any]) -> Any:
        relay_fee = BtcAmount(MIN_RELAY_FEE_SAT_PER_KVB)
        return {
            "version": EMULATED_BITCOIND_VERSION,
            "subversion": f"/Ampere:{__version__}/",
            "protocolversion": PROTOCOL_VERSION,
            "localservices": "0000000000000409",
            "localservicesnames": ["NETWORK", "WITNESS", "NETWORK_LIMITED"],
            "localrelay": True,
            "timeoffset": 0,
            "networkactive": True,
            "connections": 0,
            "connections_in": 0,
            "connections_out": 0,
            "networks": [],
            "relayfee": relay_fee,
            "incrementalfee": relay_fee,
            "localaddresses": [],
            "warnings": [],
        }

    def uptime(self, _args: list[Any]) -> Any:
        return int(time.monotonic() - self.started)


def method_table(service: ChainRpcService) -> list[tuple[str, tuple[Param, ...], Callable[[list[Any]], Any]]]:
    """The RPC table: name, parameters (bitcoind's names, for named calls), handler."""
    num, text, boolean, arr, anything = (
        ParamType.NUM,
        ParamType.STR,
        ParamType.BOOL,
        ParamType.ARR,
        ParamType.ANY,
    )

    def opt(name: str, kind: ParamType) -> Param:
        return Param(name, kind, required=False)

    return [
        ("getblockchaininfo", (), service.getblockchaininfo),
        ("getblockcount", (), service.getblockcount),
        ("getbestblockhash", (), service.getbestblockhash),
        ("getblockhash", (Param("height", num),), service.getblockhash),
        ("getblock", (Param("blockhash", text), opt("verbosity", anything)), service.getblock),
        ("getblockheader", (Param("blockhash", text), opt("verbose", boolean)), service.getblockheader),
        ("getchaintips", (), service.getchaintips),
        ("getdifficulty", (), service.getdifficulty),
        (
            "getrawtransaction",
            (Param("txid", text), opt("verbose", anything), opt("blockhash", text)),
            service.getrawtransaction,
        ),
        (
            "decoderawtransaction",
            (Param("hexstring", text), opt("iswitness", boolean)),
            service.decoderawtransaction,
        ),
        (
            "sendrawtransaction",
            (Param("hexstring", text), opt("maxfeerate", anything), opt("maxburnamount", anything)),
            service.sendrawtransaction,
        ),
        (
            "testmempoolaccept",
            (Param("rawtxs", arr), opt("maxfeerate", anything)),
            service.testmempoolaccept,
        ),
        (
            "gettxout",
            (Param("txid", text), Param("n", num), opt("include_mempool", boolean)),
            service.gettxout,
        ),
        (
            "getrawmempool",
            (opt("verbose", boolean), opt("mempool_sequence", boolean)),
            service.getrawmempool,
        ),
        ("getmempoolentry", (Param("txid", text),), service.getmempoolentry),
        ("getmempoolinfo", (), service.getmempoolinfo),
        (
            "generatetoaddress",
            (Param("nblocks", num), Param("address", text), opt("maxtries", num)),
            service.generatetoaddress,
        ),
        (
            "estimatesmartfee",
            (Param("conf_target", num), opt("estimate_mode", text)),
            service.estimatesmartfee,
        ),
        ("getnetworkinfo", (), service.getnetworkinfo),
        ("uptime", (), service.uptime),
    ]


def _reject_reason_text(error: BroadcastError) -> str:
    """testmempoolaccept's `reject-reason`: the code without its debug text; missing inputs read as
    "missing-inputs" there, as in bitcoind."""
    if error.reason is RejectReason.MISSING_OR_SPENT_INPUTS:
        return "missing-inputs"
    return error.detail.split(", ", 1)[0]


# --- the server --------------------------------------------------------------------------------------------


class ChainRpcServer:
    """HTTP + basic auth + JSON-RPC dispatch in front of a ChainRpcService.

    `worker` runs the methods (on the chain's own thread in the daemon); without one they run inline,
    which suits tests with an in-memory chain.
    """

    def __init__(
        self,
        service: ChainRpcService,
        credentials: Sequence[tuple[str, str]],
        *,
        worker: ChainWorker | None = None,
        limits: ServerLimits | None = None,
        auth_failure_delay: float = 0.25,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.service = service
        self._credentials = list(credentials)
        self._worker = worker
        self._auth_failure_delay = auth_failure_delay
        self._on_stop = on_stop
        self.dispatcher = Dispatcher(http_errors=True)
        for name, params, handler in method_table(service):
            self.dispatcher.register(RpcMethod(name, params, self._wrap(handler)))
        self.dispatcher.register(RpcMethod("stop", (), self._stop))
        self.dispatcher.register(
            RpcMethod("help", (Param("command", ParamType.STR, required=False),), self._help)
        )
        self.http = HttpServer(self._handle, limits or ServerLimits(max_body_bytes=MAX_REQUEST_BYTES))
        self.url = ""

    def _wrap(self, handler: Callable[[list[Any]], Any]) -> Callable[[list[Any]], Any]:
        async def call(args: list[Any]) -> Any:
            if self._worker is None:
                return handler(args)
            return await self._worker.run(handler, args)

        return call

    async def _stop(self, _args: list[Any]) -> Any:
        if self._on_stop is not None:
            asyncio.get_running_loop().call_soon(self._on_stop)
        return "Ampere chain stopping"

    async def _help(self, args: list[Any]) -> Any:
        if args[0] is not None:
            wanted = str(args[0])
            if wanted not in self.dispatcher.method_names:
                return f"help: unknown command: {wanted}"
        return "\n".join(self.dispatcher.method_names)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        bound_host, bound_port = await self.http.listen_tcp(host, port)
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}/"
        log.info("JSON-RPC listening on %s", self.url)
        return self.url

    async def close(self) -> None:
        await self.http.close()

    def _authorized(self, header: str | None) -> bool:
        # Check every pair without stopping early, so timing does not tell which user exists.
        results = [basic_credentials_match(header, user, password) for user, password in self._credentials]
        return any(results)

    async def _handle(self, request: Request) -> Response:
        if request.path != "/" and not request.path.startswith("/wallet/"):
            return Response(404)
        if request.method != "POST":
            return Response.text(405, "JSONRPC server handles only POST requests")
        authorization = request.headers.get("Authorization")
        if not self._authorized(authorization):
            if authorization is not None:
                log.warning("incorrect RPC password attempt from %s", request.peer)
                # As bitcoind: slow down guessing; the event loop serves others meanwhile.
                await asyncio.sleep(self._auth_failure_delay)
            return Response(401, b"", (("WWW-Authenticate", 'Basic realm="jsonrpc"'),))
        status, body = await self.dispatcher.handle(request.body)
        if body is None:
            return Response(204)
        return Response.json(status, body)
