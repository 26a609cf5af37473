"""`BitcoindChain`: the node's chain backend over bitcoind's JSON-RPC (a real bitcoind or `ampere chain`).

Amounts arrive as BTC numbers, parsed as Decimal and turned into integer satoshis at once. Nothing
here needs bitcoind's `-txindex`: blocks are read whole (`getblock` verbosity 0), outputs through
`gettxout`, and mempool transactions by txid, which bitcoind serves without an index.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ampere.bitcoin.block import Block
from ampere.bitcoin.errors import BitcoinError
from ampere.bitcoin.tx import OutPoint, Transaction, TxOut
from ampere.chain.errors import BroadcastError, ChainError, ChainUnavailableError, NotFoundError, RejectReason
from ampere.chain.http import HttpClient, HttpConnectionError, HttpError, HttpTimeoutError, basic_auth_value
from ampere.chain.interface import BlockInfo, UnspentOutput, btc_per_kvb_to_sat_per_kw
from ampere.chain.jsonrpc import RpcError, RpcErrorCode, btc_to_sat, dumps, loads

__all__ = [
    "DEFAULT_FALLBACK_SAT_PER_KVB",
    "BitcoindChain",
    "BitcoindRpcError",
    "RpcCredentials",
    "reject_reason_from_bitcoind",
]

log = logging.getLogger(__name__)

# The embedded chain's fixed regtest estimate (ampere.chain.embedded.FALLBACK_FEERATE_SAT_PER_KVB), so that
# a node behaves alike on either backend; not imported, as that module loads libbitcoinkernel.
DEFAULT_FALLBACK_SAT_PER_KVB = 2_000
_MAX_CONF_TARGET = 1008
_BATCH_SIZE = 500


class BitcoindRpcError(ChainError):
    """bitcoind answered a call with a JSON-RPC error; `code` is bitcoind's (RpcErrorCode)."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message

    @property
    def not_found(self) -> bool:
        """An unknown block, transaction or height, as bitcoind reports them (-5 and -8)."""
        return self.code in (RpcErrorCode.INVALID_ADDRESS_OR_KEY, RpcErrorCode.INVALID_PARAMETER)


def _not_found_or(error: BitcoindRpcError) -> ChainError:
    """The backend-neutral NotFoundError for an unknown block or height, else the error itself."""
    return NotFoundError(str(error)) if error.not_found else error


# --- bitcoind's reject strings ------------------------------------------------------------------------

_REASONS_BY_CODE: dict[str, RejectReason] = {
    "non-final": RejectReason.NON_FINAL,
    "non-bip68-final": RejectReason.NON_BIP68_FINAL,
    "bad-txns-inputs-missingorspent": RejectReason.MISSING_OR_SPENT_INPUTS,
    "missing-inputs": RejectReason.MISSING_OR_SPENT_INPUTS,
    "transaction outputs already in utxo set": RejectReason.ALREADY_IN_CHAIN,
    "transaction already in block chain": RejectReason.ALREADY_IN_CHAIN,
    "txn-already-known": RejectReason.ALREADY_IN_CHAIN,
    "txn-already-in-mempool": RejectReason.ALREADY_IN_MEMPOOL,
    "txn-same-nonwitness-data-in-mempool": RejectReason.ALREADY_IN_MEMPOOL,
    "txn-mempool-conflict": RejectReason.CONFLICT,
    "bad-txns-spends-conflicting-tx": RejectReason.CONFLICT,
    "replacement-adds-unconfirmed": RejectReason.CONFLICT,
    "too many potential replacements": RejectReason.CONFLICT,
    "insufficient fee": RejectReason.INSUFFICIENT_FEE,
    "min relay fee not met": RejectReason.INSUFFICIENT_FEE,
    "mempool min fee not met": RejectReason.INSUFFICIENT_FEE,
    "bad-txns-premature-spend-of-coinbase": RejectReason.PREMATURE_COINBASE_SPEND,
    "bad-txns-in-belowout": RejectReason.OUTPUTS_EXCEED_INPUTS,
    "dust": RejectReason.DUST,
}
_NONSTANDARD_CODES = frozenset(
    {
        "version",
        "tx-size",
        "tx-size-small",
        "scriptsig-size",
        "scriptsig-not-pushonly",
        "scriptpubkey",
        "bare-multisig",
        "multi-op-return",
        "bad-witness-nonstandard",
        "bad-txns-nonstandard-inputs",
        "bad-txns-too-many-sigops",
        "too-long-mempool-chain",
        "max-fee-exceeded",
        "absurdly-high-fee",
        "mempool full",
        "tx-witness-unexpected",
    }
)
_SCRIPT_FAILURE_PREFIXES = (
    "mandatory-script-verify-flag",
    "non-mandatory-script-verify-flag",
    "mempool-script-verify-flag",
    "block-script-verify-flag",
)


def reject_reason_from_bitcoind(code: int, message: str) -> RejectReason | None:
    """The RejectReason of a refused broadcast, from bitcoind's error code and reject string.

    None when the error is not a refusal of the transaction (say, a bad parameter).
    """
    if code == RpcErrorCode.DESERIALIZATION_ERROR:
        return RejectReason.DECODE_FAILED
    if code == RpcErrorCode.VERIFY_ALREADY_IN_CHAIN:
        return RejectReason.ALREADY_IN_CHAIN
    if code not in (RpcErrorCode.VERIFY_ERROR, RpcErrorCode.VERIFY_REJECTED):
        return None
    text = message.strip()
    if text.startswith(_SCRIPT_FAILURE_PREFIXES):
        return RejectReason.SCRIPT_VERIFY_FAILED
    # A reject string is the reason code, then ", " or " (" and free-form debug text.
    reason_code = text.split(", ", 1)[0].split(" (", 1)[0].strip().lower()
    if reason_code in _REASONS_BY_CODE:
        return _REASONS_BY_CODE[reason_code]
    if reason_code in _NONSTANDARD_CODES:
        return RejectReason.NONSTANDARD
    if reason_code.startswith(("bad-txns-", "bad-tx")) or reason_code == "coinbase":
        return RejectReason.INVALID
    return RejectReason.OTHER


# --- credentials ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RpcCredentials:
    """A cookie file (re-read when bitcoind restarts with a new one) or a fixed user and password."""

    cookie_file: Path | None = None
    user: str | None = None
    password: str | None = None

    def authorization(self) -> str:
        if self.cookie_file is not None:
            try:
                text = self.cookie_file.read_text().strip()
            except OSError as exc:
                raise ChainUnavailableError(f"cannot read the RPC cookie {self.cookie_file}: {exc}") from exc
            user, colon, password = text.partition(":")
            if not colon:
                raise ChainUnavailableError(f"malformed RPC cookie file {self.cookie_file}")
            return basic_auth_value(user, password)
        if self.user is None or self.password is None:
            raise ValueError("RPC credentials need a cookie file or a user and password")
        return basic_auth_value(self.user, self.password)


# --- the backend ----------------------------------------------------------------------------------------


class BitcoindChain:
    """ChainBackend over bitcoind's JSON-RPC, on keep-alive connections."""

    def __init__(
        self,
        url: str,
        credentials: RpcCredentials,
        *,
        timeout: float = 60.0,
        fallback_sat_per_kvb: int = DEFAULT_FALLBACK_SAT_PER_KVB,
    ) -> None:
        self._client, self._path = HttpClient.for_url(url, timeout=timeout)
        self._credentials = credentials
        self._authorization: str | None = None
        self._ids = itertools.count(1)
        self._fallback_sat_per_kvb = fallback_sat_per_kvb
        self._chain_name: str | None = None
        self.url = url

    @classmethod
    def with_cookie(cls, url: str, cookie_file: Path, **kwargs: Any) -> BitcoindChain:
        return cls(url, RpcCredentials(cookie_file=cookie_file), **kwargs)

    async def close(self) -> None:
        await self._client.close()

    # --- JSON-RPC ---------------------------------------------------------------------------------------
    async def _post(self, document: Any) -> Any:
        body = dumps(document).encode("ascii")
        for attempt in range(2):
            if self._authorization is None or attempt:
                # A restarted bitcoind writes a new cookie: read it again after a 401.
                self._authorization = self._credentials.authorization()
            headers = (("Authorization", self._authorization), ("Content-Type", "application/json"))
            try:
                response = await self._client.request("POST", self._path, body, headers)
            except (HttpConnectionError, HttpTimeoutError) as exc:
                raise ChainUnavailableError(f"bitcoind RPC at {self.url} unreachable: {exc}") from exc
            except HttpError as exc:
                raise ChainError(f"bitcoind RPC at {self.url} answered badly: {exc}") from exc
            if response.status == 401:
                continue
            if response.status in (403, 503):
                raise ChainUnavailableError(f"bitcoind RPC at {self.url} answered HTTP {response.status}")
            try:
                return loads(response.body)
            except RpcError:
                raise ChainError(
                    f"bitcoind RPC at {self.url} answered HTTP {response.status} without JSON"
                ) from None
        raise ChainUnavailableError(f"bitcoind RPC at {self.url} refused the credentials (HTTP 401)")

    @staticmethod
    def _result(method: str, reply: Any) -> Any:
        if not isinstance(reply, dict) or ("result" not in reply and "error" not in reply):
            raise ChainError(f"{method}: malformed JSON-RPC reply")
        error = reply.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            if not isinstance(code, int) or not isinstance(message, str):
                raise ChainError(f"{method}: malformed JSON-RPC error {error!r}")
            if code == RpcErrorCode.IN_WARMUP:
                raise ChainUnavailableError(f"bitcoind is starting: {message}")
            raise BitcoindRpcError(method, code, message)
        return reply.get("result")

    async def call(self, method: str, *params: Any) -> Any:
        """One call; raises BitcoindRpcError with bitcoind's code and message."""
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        return self._result(method, await self._post(request))

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several calls in one round trip; each item is a result or a BitcoindRpcError (not raised)."""
        if not calls:
            return []
        first_id = next(self._ids)
        self._ids = itertools.count(first_id + len(calls))
        document = [
            {"jsonrpc": "2.0", "id": first_id + index, "method": method, "params": list(params)}
            for index, (method, params) in enumerate(calls)
        ]
        replies = await self._post(document)
        if not isinstance(replies, list):
            # A server that refuses a batch answers with one error object.
            self._result(calls[0][0], replies)
            raise ChainError("batch answered with a single reply")
        by_id = {reply.get("id"): reply for reply in replies if isinstance(reply, dict)}
        results: list[Any] = []
        for index, (method, _params) in enumerate(calls):
            reply = by_id.get(first_id + index)
            if reply is None:
                raise ChainError(f"{method}: missing from the batch reply")
            try:
                results.append(self._result(method, reply))
            except BitcoindRpcError as exc:
                results.append(exc)
        return results

    # --- chain source ---------------------------------------------------------------------------------
    async def tip_height(self) -> int:
        return _as_int(await self.call("getblockcount"), "getblockcount")

    async def tip_hash(self) -> bytes:
        return _hash(await self.call("getbestblockhash"))

    async def block_hash(self, height: int) -> bytes:
        try:
            return _hash(await self.call("getblockhash", height))
        except BitcoindRpcError as exc:
            raise _not_found_or(exc) from exc

    async def chain_hash(self) -> bytes:
        """The genesis block hash in internal byte order (BOLT's `chain_hash`)."""
        return await self.block_hash(0)

    async def block_at(self, height: int) -> BlockInfo:
        block_hash = await self.block_hash(height)
        block = _parse_block(await self.call("getblock", block_hash[::-1].hex(), 0))
        return _block_info(height, block)

    async def block_by_hash(self, block_hash: bytes) -> BlockInfo:
        shown = block_hash[::-1].hex()
        header, raw = await self.batch([("getblockheader", [shown, True]), ("getblock", [shown, 0])])
        for item in (header, raw):
            if isinstance(item, BitcoindRpcError):
                raise _not_found_or(item)
        return _block_info(_as_int(header.get("height"), "getblockheader"), _parse_block(raw))

    async def get_txout(self, outpoint: OutPoint, include_mempool: bool = True) -> UnspentOutput | None:
        result = await self.call("gettxout", outpoint.txid_hex, outpoint.vout, include_mempool)
        if result is None:
            return None
        try:
            confirmations = _as_int(result["confirmations"], "gettxout")
            output = TxOut(btc_to_sat(result["value"]), bytes.fromhex(result["scriptPubKey"]["hex"]))
            coinbase = bool(result.get("coinbase", False))
            best = str(result["bestblock"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ChainError(f"gettxout: malformed reply: {exc}") from exc
        height = None
        if confirmations > 0:
            # The confirmations count against `bestblock`, whose height is asked for, not assumed.
            header = await self.call("getblockheader", best, True)
            height = _as_int(header.get("height"), "getblockheader") - confirmations + 1
        return UnspentOutput(outpoint, output, height, coinbase)

    async def mempool_transactions(self) -> tuple[Transaction, ...]:
        txids = await self.call("getrawmempool")
        if not isinstance(txids, list):
            raise ChainError("getrawmempool: expected a list")
        transactions: list[Transaction] = []
        for start in range(0, len(txids), _BATCH_SIZE):
            chunk = txids[start : start + _BATCH_SIZE]
            results = await self.batch([("getrawtransaction", [txid, 0]) for txid in chunk])
            for result in results:
                if isinstance(result, BitcoindRpcError):
                    continue  # mined or evicted since getrawmempool
                transactions.append(_parse_tx(result))
        return tuple(transactions)

    async def get_transaction(self, txid: bytes, block_hash: bytes | None = None) -> Transaction | None:
        """A mempool transaction, or one in `block_hash` (no -txindex needed either way); None if absent."""
        params: list[Any] = [txid[::-1].hex(), 0]
        if block_hash is not None:
            params.append(block_hash[::-1].hex())
        try:
            return _parse_tx(await self.call("getrawtransaction", *params))
        except BitcoindRpcError as exc:
            if exc.code == RpcErrorCode.INVALID_ADDRESS_OR_KEY:
                return None
            raise

    # --- broadcast ----------------------------------------------------------------------------------------
    async def broadcast(self, tx: Transaction) -> bytes:
        try:
            # maxfeerate 0: the node chose the fee on purpose (a justice transaction may pay a lot).
            txid = await self.call("sendrawtransaction", tx.to_hex(), 0)
        except BitcoindRpcError as exc:
            reason = reject_reason_from_bitcoind(exc.code, exc.message)
            if reason is None:
                raise
            raise BroadcastError(reason, exc.message) from exc
        return _hash(txid)

    async def test_accept(self, tx: Transaction) -> None:
        try:
            results = await self.call("testmempoolaccept", [tx.to_hex()], 0)
        except BitcoindRpcError as exc:
            reason = reject_reason_from_bitcoind(exc.code, exc.message)
            if reason is None:
                raise
            raise BroadcastError(reason, exc.message) from exc
        if not isinstance(results, list) or len(results) != 1 or not isinstance(results[0], dict):
            raise ChainError("testmempoolaccept: malformed reply")
        result = results[0]
        if result.get("allowed"):
            return
        reason_text = str(result.get("reject-reason", ""))
        detail = str(result.get("reject-details") or reason_text)
        reason = reject_reason_from_bitcoind(RpcErrorCode.VERIFY_REJECTED, reason_text)
        raise BroadcastError(reason or RejectReason.OTHER, detail)

    # --- fees -----------------------------------------------------------------------------------------------
    async def feerate_per_kw(self, target_blocks: int) -> int:
        target = min(max(target_blocks, 1), _MAX_CONF_TARGET)
        result = await self.call("estimatesmartfee", target)
        feerate = result.get("feerate") if isinstance(result, dict) else None
        if feerate is None:
            if await self._network_name() != "regtest":
                raise ChainError(f"bitcoind has no fee estimate for {target} blocks")
            return btc_per_kvb_to_sat_per_kw(self._fallback_sat_per_kvb)
        try:
            sat_per_kvb = btc_to_sat(feerate)
        except ValueError as exc:
            raise ChainError(f"estimatesmartfee: bad feerate {feerate!r}") from exc
        return btc_per_kvb_to_sat_per_kw(sat_per_kvb)

    async def _network_name(self) -> str:
        if self._chain_name is None:
            info = await self.call("getblockchaininfo")
            self._chain_name = str(info.get("chain")) if isinstance(info, dict) else ""
        return self._chain_name

    # --- regtest helpers ------------------------------------------------------------------------------------
    async def generate_to_address(self, count: int, address: str) -> list[bytes]:
        hashes = await self.call("generatetoaddress", count, address)
        return [_hash(item) for item in hashes]

    async def wait_for_height(self, height: int, *, timeout: float = 30.0, interval: float = 0.05) -> None:
        """Poll until the tip reaches `height` (for tests and tools; the node follows blocks itself)."""
        async with asyncio.timeout(timeout):
            while await self.tip_height() < height:
                await asyncio.sleep(interval)


# --- parsing --------------------------------------------------------------------------------------------


def _as_int(value: Any, method: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ChainError(f"{method}: expected an integer, got {value!r}")
    return value


def _hash(value: Any) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise ChainError(f"expected a 64-character hash, got {value!r}")
    try:
        return bytes.fromhex(value)[::-1]
    except ValueError:
        raise ChainError(f"expected a hex hash, got {value!r}") from None


def _parse_block(value: Any) -> Block:
    if not isinstance(value, str):
        raise ChainError("getblock: expected block hex")
    try:
        return Block.parse(bytes.fromhex(value))
    except (BitcoinError, ValueError) as exc:
        raise ChainError(f"getblock: undecodable block: {exc}") from exc


def _parse_tx(value: Any) -> Transaction:
    if not isinstance(value, str):
        raise ChainError("getrawtransaction: expected transaction hex")
    try:
        return Transaction.parse(bytes.fromhex(value))
    except (BitcoinError, ValueError) as exc:
        raise ChainError(f"getrawtransaction: undecodable transaction: {exc}") from exc


def _block_info(height: int, block: Block) -> BlockInfo:
    header = block.header
    return BlockInfo(height, block.hash, header.prev_hash, header.time, block.transactions)
