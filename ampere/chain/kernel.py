"""The one module that talks to libbitcoinkernel (`pbk`, py-bitcoinkernel): a typed adapter.

Bitcoin Core's consensus code decides here whether a block connects and whether an input's script
passes; nothing in Ampere imitates those rules. What the kernel does not offer (a mempool, a UTXO or
transaction index, policy) lives in `ampere.chain.index` and `ampere.chain.mempool`.

Threading: a `Kernel` is used from one thread. The kernel invokes its validation callbacks
synchronously inside `process_block` on the calling thread, and this adapter only queues what they
report; the caller drains the queue with `drain_events()` after each call.
"""

from __future__ import annotations

import ctypes
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum, IntFlag
from pathlib import Path
from typing import Any

import pbk
from pbk.capi import KernelOpaquePtr
from pbk.notifications import NotificationInterfaceCallbacks
from pbk.script import PrecomputedTransactionData

from ampere.bitcoin.tx import TxOut
from ampere.chain.errors import ChainError

log = logging.getLogger(__name__)
_kernel_log = logging.getLogger("ampere.chain.kernel.bitcoinkernel")

# Present while a kernel is open; a crash leaves it behind, and the next start reindexes because the
# chainstate on disk only reflects the kernel's last flush (the blocks themselves are all in blk*.dat).
DIRTY_MARKER = "kernel.dirty"


class ScriptFlags(IntFlag):
    """Bitcoin Core's script verification flags that libbitcoinkernel exposes (same bit values)."""

    NONE = 0
    P2SH = 1 << 0
    DERSIG = 1 << 2
    NULLDUMMY = 1 << 4
    CHECKLOCKTIMEVERIFY = 1 << 9
    CHECKSEQUENCEVERIFY = 1 << 10
    WITNESS = 1 << 11
    TAPROOT = 1 << 17


# Every soft fork is active from the start on regtest, so these are the flags blocks are checked with.
CONSENSUS_FLAGS = (
    ScriptFlags.P2SH
    | ScriptFlags.DERSIG
    | ScriptFlags.NULLDUMMY
    | ScriptFlags.CHECKLOCKTIMEVERIFY
    | ScriptFlags.CHECKSEQUENCEVERIFY
    | ScriptFlags.WITNESS
    | ScriptFlags.TAPROOT
)


def _pbk_flags(flags: ScriptFlags) -> pbk.ScriptVerificationFlags:
    # A bit outside the kernel's ALL aborts the whole process, so unknown bits never get through.
    return pbk.ScriptVerificationFlags(int(flags) & int(pbk.ScriptVerificationFlags.ALL))


class KernelError(ChainError):
    """The kernel could not be opened or failed while working."""


class VerdictStatus(Enum):
    CONNECTED = "connected"  # valid and now on the active chain
    SIDE_BRANCH = "side-branch"  # stored, but the active chain has at least as much work
    DUPLICATE = "duplicate"  # already known and not invalid
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class BlockVerdict:
    """What the kernel decided about one block.

    `result` is the kernel's BlockValidationResult in lower case ("consensus", "mutated", ...);
    `reason` is Bitcoin Core's reject reason ("bad-cb-amount") and `detail` its debug message, both
    read from the kernel's log when it printed them.
    """

    block_hash: bytes
    status: VerdictStatus
    result: str = ""
    reason: str = ""
    detail: str = ""
    # What the kernel logged while processing the block: some lines name the offending transaction.
    log_lines: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def valid(self) -> bool:
        return self.status is not VerdictStatus.INVALID

    def describe(self) -> str:
        if self.valid:
            return self.status.value
        parts = [self.reason or self.result or "invalid"]
        if self.detail:
            parts.append(self.detail)
        return ", ".join(parts)


class EventKind(Enum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class ChainEvent:
    kind: EventKind
    height: int
    block_hash: bytes
    # The kernel's own block object; serializing it costs more than connecting a small block, and the
    # caller often has the block already (it built it), so the bytes are only made on demand.
    _block: Any = field(repr=False, compare=False)

    def raw_block(self) -> bytes:
        return bytes(self._block)


@dataclass(frozen=True, slots=True)
class SpentCoin:
    """A coin a block spent, from the kernel's undo data."""

    output: TxOut
    height: int
    coinbase: bool


# --- kernel log capture -------------------------------------------------------------------------------

_REJECT_PATTERNS = (
    re.compile(r"AcceptBlock FAILED \((?P<msg>.*)\)\s*$"),
    re.compile(r"Block validation error: (?P<msg>.*?)\s*$"),
    re.compile(r"ConnectBlock \w+ failed, (?P<msg>.*?)\s*$"),
    re.compile(r"ProcessNewBlock: CheckBlock FAILED \((?P<msg>.*)\)\s*$"),
)


class _KernelLog:
    """The process-wide kernel log connection: lines go to Python logging, and while a block is
    being processed they are also kept so that its reject reason can be read from them."""

    _instance: _KernelLog | None = None

    def __init__(self) -> None:
        self._capture: list[str] | None = None
        pbk.logging_set_options(pbk.LoggingOptions(log_timestamps=False))
        self._connection = pbk.LoggingConnection(self._on_line)

    @classmethod
    def get(cls) -> _KernelLog:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _on_line(self, line: str) -> None:
        line = line.rstrip("\n")
        _kernel_log.debug("%s", line)
        if self._capture is not None:
            self._capture.append(line)

    def start(self) -> None:
        self._capture = []

    def stop(self) -> list[str]:
        lines, self._capture = self._capture or [], None
        return lines


def _reject_from_log(lines: Sequence[str]) -> tuple[str, str]:
    for line in lines:
        for pattern in _REJECT_PATTERNS:
            match = pattern.search(line)
            if match:
                reason, _, detail = match.group("msg").partition(", ")
                return reason.strip(), detail.strip()
    return "", ""


# --- script verification (no chainstate needed) --------------------------------------------------------


def _from_bytes(cls: Any, raw: bytes) -> Any:
    """`cls(raw)` for pbk.Block and pbk.Transaction without their constructors' copy of the data one
    ctypes element at a time, which costs more than validating a large block."""
    obj = cls.__new__(cls)
    KernelOpaquePtr.__init__(obj, (ctypes.c_ubyte * len(raw)).from_buffer_copy(raw), len(raw))
    return obj


def _outputs(spent_outputs: Sequence[TxOut]) -> list[Any]:
    return [pbk.TransactionOutput(pbk.ScriptPubkey(out.script_pubkey), out.value) for out in spent_outputs]


def verify_input(
    script_pubkey: bytes,
    amount: int,
    tx_bytes: bytes,
    spent_outputs: Sequence[TxOut],
    index: int,
    flags: ScriptFlags = CONSENSUS_FLAGS,
) -> bool:
    """Whether input `index` of `tx_bytes` satisfies `script_pubkey` under `flags`.

    `spent_outputs` are the outputs every input spends, in input order (taproot signs them all).
    Only the script is judged: nLockTime, sequence locks and whether the coin exists are not.
    """
    tx = _from_bytes(pbk.Transaction, tx_bytes)
    precomputed = PrecomputedTransactionData(tx, _outputs(spent_outputs))
    try:
        return bool(pbk.ScriptPubkey(script_pubkey).verify(amount, tx, precomputed, index, _pbk_flags(flags)))
    except pbk.ScriptVerifyException as exc:
        raise ChainError(f"script verification misuse: {exc}") from exc


def failing_inputs(
    tx_bytes: bytes, spent_outputs: Sequence[TxOut], flags: ScriptFlags = CONSENSUS_FLAGS
) -> list[int]:
    """Indices of the inputs of `tx_bytes` whose scripts fail; empty when all pass."""
    tx = _from_bytes(pbk.Transaction, tx_bytes)
    outputs = _outputs(spent_outputs)
    precomputed = PrecomputedTransactionData(tx, outputs)
    kernel_flags = _pbk_flags(flags)
    failed = []
    for index, spent in enumerate(spent_outputs):
        try:
            script = pbk.ScriptPubkey(spent.script_pubkey)
            ok = script.verify(spent.value, tx, precomputed, index, kernel_flags)
        except pbk.ScriptVerifyException as exc:
            raise ChainError(f"script verification misuse: {exc}") from exc
        if not ok:
            failed.append(index)
    return failed


# --- the chainstate -------------------------------------------------------------------------------------


class Kernel:
    """A regtest chainstate in `datadir` (`blocks/`, `chainstate/`), opened for exclusive use.

    If the previous process did not close it (the marker file is still there), the block and chain
    databases are wiped and rebuilt from the block files before use.
    """

    def __init__(self, datadir: Path) -> None:
        self.datadir = datadir
        datadir.mkdir(parents=True, exist_ok=True)
        self._log = _KernelLog.get()
        self._events: list[ChainEvent] = []
        self._checked: dict[bytes, tuple[str, str]] = {}
        self._collecting = False
        self._fatal: str | None = None
        marker = datadir / DIRTY_MARKER
        self.reindexed = marker.exists()
        marker.touch()
        self._callbacks = pbk.ValidationInterfaceCallbacks(
            block_checked=self._on_checked,
            block_connected=self._on_connected,
            block_disconnected=self._on_disconnected,
        )
        self._notifications = NotificationInterfaceCallbacks(
            fatal_error=self._on_fatal, flush_error=self._on_flush_error
        )
        self._cm: Any = None
        try:
            self._cm = self._load(reindex=self.reindexed)
        except (RuntimeError, pbk.KernelException) as exc:
            raise KernelError(f"cannot open the chainstate in {datadir}: {exc}") from exc
        self._collecting = True
        log.info(
            "kernel open in %s at height %d%s",
            datadir,
            self.tip_height(),
            " (reindexed)" if self.reindexed else "",
        )

    def _load(self, reindex: bool) -> Any:
        options = pbk.ContextOptions()
        options.set_chainparams(pbk.ChainParameters(pbk.ChainType.REGTEST))
        options.set_validation_interface(self._callbacks)
        options.set_notifications(self._notifications)
        context = pbk.Context(options)
        blocks_dir = self.datadir / "blocks"
        cm_options = pbk.ChainstateManagerOptions(
            context, str(self.datadir.absolute()), str(blocks_dir.absolute())
        )
        # Script checks run on the calling thread: there is one caller, and two cores to share.
        cm_options.set_worker_threads_num(0)
        if not reindex:
            return pbk.ChainstateManager(cm_options)
        log.warning("chain in %s was not closed cleanly; reindexing from the block files", self.datadir)
        cm_options.set_wipe_dbs(True, True)
        cm = pbk.ChainstateManager(cm_options)
        # Even with no block files the import is what loads the genesis block. Its return value is
        # falsy even when the tip came back, so the tip is what counts.
        cm.import_blocks(sorted(blocks_dir.glob("blk*.dat")))
        return cm

    # --- callbacks (called by the kernel, on this thread, inside process_block) ------------------------
    def _on_checked(self, _user_data: Any, block: Any, state: Any) -> None:
        mode = state.validation_mode
        result = state.block_validation_result.name.lower()
        self._checked[bytes(block.block_hash)] = (mode.name, result)

    def _on_connected(self, _user_data: Any, block: Any, entry: Any) -> None:
        if self._collecting:
            self._events.append(ChainEvent(EventKind.CONNECTED, entry.height, bytes(entry.block_hash), block))

    def _on_disconnected(self, _user_data: Any, block: Any, entry: Any) -> None:
        if self._collecting:
            self._events.append(
                ChainEvent(EventKind.DISCONNECTED, entry.height, bytes(entry.block_hash), block)
            )

    def _on_fatal(self, _user_data: Any, message: Any, size: int) -> None:
        self._fatal = ctypes.string_at(message, size).decode("utf-8", "replace")
        log.critical("kernel fatal error: %s", self._fatal)

    def _on_flush_error(self, _user_data: Any, message: Any, size: int) -> None:
        log.error("kernel flush error: %s", ctypes.string_at(message, size).decode("utf-8", "replace"))

    # --- queries ---------------------------------------------------------------------------------------
    @property
    def _manager(self) -> Any:
        if self._cm is None:
            raise KernelError("the kernel is closed")
        if self._fatal is not None:
            raise KernelError(f"the kernel hit a fatal error: {self._fatal}")
        return self._cm

    def tip_height(self) -> int:
        return int(self._manager.get_active_chain().height)

    def tip_hash(self) -> bytes:
        chain = self._manager.get_active_chain()
        return bytes(chain.block_tree_entries[chain.height].block_hash)

    def hash_at(self, height: int) -> bytes | None:
        """The hash of the active chain's block at `height`, or None above the tip."""
        chain = self._manager.get_active_chain()
        if not 0 <= height <= chain.height:
            return None
        return bytes(chain.block_tree_entries[height].block_hash)

    def _entry(self, block_hash: bytes) -> Any:
        try:
            return self._manager.block_tree_entries[pbk.BlockHash(block_hash)]
        except KeyError:
            return None

    def knows(self, block_hash: bytes) -> bool:
        return self._entry(block_hash) is not None

    def active_height(self, block_hash: bytes) -> int | None:
        """The height of `block_hash` if it is on the active chain, else None."""
        entry = self._entry(block_hash)
        if entry is None:
            return None
        height = int(entry.height)
        return height if self.hash_at(height) == block_hash else None

    def entry_height(self, block_hash: bytes) -> int | None:
        """The height of a block the kernel stored, on the active chain or not."""
        entry = self._entry(block_hash)
        return None if entry is None else int(entry.height)

    def read_block(self, block_hash: bytes) -> bytes:
        entry = self._entry(block_hash)
        if entry is None:
            raise KernelError(f"unknown block {block_hash[::-1].hex()}")
        try:
            return bytes(self._manager.blocks[entry])
        except RuntimeError as exc:
            raise KernelError(f"cannot read block {block_hash[::-1].hex()}: {exc}") from exc

    def read_transaction(self, block_hash: bytes, position: int) -> bytes:
        entry = self._entry(block_hash)
        if entry is None:
            raise KernelError(f"unknown block {block_hash[::-1].hex()}")
        block = self._manager.blocks[entry]
        return bytes(block.transactions[position])

    def spent_outputs(self, block_hash: bytes) -> list[list[SpentCoin]]:
        """The coins each non-coinbase transaction of the block spent, in block and input order."""
        entry = self._entry(block_hash)
        if entry is None:
            raise KernelError(f"unknown block {block_hash[::-1].hex()}")
        if entry.height == 0:
            return []
        try:
            undo = self._manager.block_spent_outputs[entry]
        except RuntimeError as exc:
            raise KernelError(f"no undo data for block {block_hash[::-1].hex()}: {exc}") from exc
        result = []
        for tx_spent in undo.transactions:
            coins = []
            for coin in tx_spent.coins:
                output = coin.output
                coins.append(
                    SpentCoin(
                        TxOut(int(output.amount), bytes(output.script_pubkey)),
                        int(coin.confirmation_height),
                        bool(coin.is_coinbase),
                    )
                )
            result.append(coins)
        return result

    # --- blocks ----------------------------------------------------------------------------------------
    def process_block(self, raw_block: bytes, block_hash: bytes) -> BlockVerdict:
        """Hand a block to the kernel and report its verdict.

        `process_block`'s own return value only says whether the block was new; the verdict is what
        the kernel's `block_checked` callback said about this hash, and whether it is now on the chain.
        """
        manager = self._manager
        self._checked.pop(block_hash, None)
        self._log.start()
        try:
            try:
                block = _from_bytes(pbk.Block, raw_block)
            except RuntimeError:
                return BlockVerdict(block_hash, VerdictStatus.INVALID, "decode", "block-decode-failed")
            try:
                is_new = bool(manager.process_block(block))
            except pbk.ProcessBlockException:
                is_new = True  # the kernel refused it; block_checked says why
        finally:
            lines = self._log.stop()
        checked = self._checked.pop(block_hash, None)
        if checked is not None and checked[0] != "VALID":
            reason, detail = _reject_from_log(lines)
            verdict = BlockVerdict(
                block_hash, VerdictStatus.INVALID, checked[1], reason, detail, tuple(lines)
            )
            log.info("kernel rejected block %s: %s", block_hash[::-1].hex(), verdict.describe())
            return verdict
        if self.active_height(block_hash) is not None:
            status = VerdictStatus.CONNECTED if is_new or checked else VerdictStatus.DUPLICATE
            return BlockVerdict(block_hash, status)
        if not self.knows(block_hash):
            reason, detail = _reject_from_log(lines)
            return BlockVerdict(
                block_hash, VerdictStatus.INVALID, "unknown", reason or "rejected", detail, tuple(lines)
            )
        return BlockVerdict(block_hash, VerdictStatus.SIDE_BRANCH if is_new else VerdictStatus.DUPLICATE)

    def drain_events(self) -> list[ChainEvent]:
        """Connections and disconnections since the last call, in the order the kernel made them."""
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        """Destroy the chainstate manager, which flushes it to disk, and mark the shutdown clean."""
        if self._cm is None:
            return
        cm, self._cm = self._cm, None
        self._events.clear()
        cm.__exit__(None, None, None)
        del cm
        if self._fatal is None:
            (self.datadir / DIRTY_MARKER).unlink(missing_ok=True)
        log.info("kernel in %s closed", self.datadir)
