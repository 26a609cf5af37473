"""The embedded regtest chain: libbitcoinkernel validating blocks, plus an index and a mempool.

`EmbeddedChain(datadir)` opens (or creates) a regtest chain in `datadir` and answers synchronously;
`EmbeddedChainBackend` puts the `ChainBackend` coroutine interface in front of it for node code.

Threading: one thread at a time. The kernel calls back into Python on the thread that hands it a
block, and the index's SQLite connection is shared with no lock, so every call must come from the
same thread or from calls serialised by the caller (the `ampere chain` daemon runs them all on one
worker thread). Nothing here starts threads.

Files in `datadir`: `blocks/` and `chainstate/` (the kernel's), `index.sqlite` (UTXO set, tx index,
the mempool saved at a clean close), `kernel.dirty` while open, and `chain.lock`.
"""

from __future__ import annotations

import fcntl
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from ampere.bitcoin.block import Block, assemble_block
from ampere.bitcoin.errors import DeserializationError
from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.chain.errors import BlockRejectedError, ChainError, NotFoundError
from ampere.chain.index import ChainIndex, ChainIndexError
from ampere.chain.interface import BlockInfo, TxStatus, UnspentOutput, btc_per_kvb_to_sat_per_kw
from ampere.chain.kernel import BlockVerdict, EventKind, Kernel, KernelError, VerdictStatus
from ampere.chain.mempool import Mempool, MempoolEntry
from ampere.chain.miner import select_transactions
from ampere.chain.policy import DEFAULT_POLICY, Policy

log = logging.getLogger(__name__)

# Regtest has no fee market and bitcoind's estimator answers "insufficient data" there. A fixed rate
# keeps tests reproducible; at twice the 1 sat/vB relay floor, a transaction sized a few bytes short
# still relays, and fee bumps above it stay cheap. `set_fee_estimate` simulates fee changes.
FALLBACK_FEERATE_SAT_PER_KVB = 2000

_TXID_IN_LOG = re.compile(r"\b[0-9a-f]{64}\b")


class EmbeddedChain:
    def __init__(self, datadir: Path, *, policy: Policy = DEFAULT_POLICY) -> None:
        self.datadir = datadir
        datadir.mkdir(parents=True, exist_ok=True)
        self._lock = (datadir / "chain.lock").open("a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock.close()
            raise ChainError(f"chain datadir {datadir} is in use by another process") from exc
        self._mock_time: int | None = None
        self._fee_estimate = FALLBACK_FEERATE_SAT_PER_KVB
        self._extra_nonce = 0
        self._built: dict[bytes, Block] = {}
        try:
            self._kernel = Kernel(datadir)
        except BaseException:
            self._lock.close()
            raise
        try:
            self._index = ChainIndex(datadir / "index.sqlite")
            self._kernel.drain_events()  # what the kernel did while opening is caught up below
            self._catch_up_index()
        except BaseException:
            self._kernel.close()
            self._lock.close()
            raise
        self._mempool = Mempool(self._index, policy=policy, clock=self._now)
        saved = self._index.take_mempool()
        if saved:
            refused = self._mempool.readd(_parse_all(saved))
            log.info("mempool: %d of %d saved transactions restored", len(saved) - len(refused), len(saved))
        self._closed = False

    @property
    def reindexed(self) -> bool:
        """Whether opening had to rebuild the chainstate after an unclean shutdown."""
        return self._kernel.reindexed

    @property
    def mempool(self) -> Mempool:
        return self._mempool

    def _catch_up_index(self) -> None:
        """Bring the index to the kernel's active chain: roll back to their last common block, then
        replay; if the blocks to roll back are gone, rebuild it whole."""
        kernel_tip = self._kernel.tip_height()
        common = min(self._index.tip_height(), kernel_tip)
        while common >= 0 and self._index.block_hash(common) != self._kernel.hash_at(common):
            common -= 1
        try:
            while self._index.tip_height() > common:
                height = self._index.tip_height()
                block_hash = self._index.block_hash(height)
                assert block_hash is not None
                block = Block.parse(self._kernel.read_block(block_hash))
                self._index.disconnect_block(block, height, self._kernel.spent_outputs(block_hash))
        except (KernelError, ChainIndexError, DeserializationError) as exc:
            log.warning("cannot roll the chain index back (%s)", exc)
            self._index.reset()
            common = -1
        if kernel_tip > common:
            log.info("chain index: replaying blocks %d to %d", common + 1, kernel_tip)
        for height in range(common + 1, kernel_tip + 1):
            block_hash = self._kernel.hash_at(height)
            assert block_hash is not None
            self._index.connect_block(Block.parse(self._kernel.read_block(block_hash)), height)
        self._index.commit()

    # --- time and fees ---------------------------------------------------------------------------------
    def _now(self) -> int:
        return self._mock_time if self._mock_time is not None else int(time.time())

    def set_mock_time(self, timestamp: int | None) -> None:
        """Use `timestamp` as the current time for new blocks (None: the clock). The kernel refuses
        blocks more than two hours ahead of the real clock, so this moves time back more usefully
        than forward."""
        self._mock_time = timestamp

    def estimate_feerate_sat_per_kvb(self, target: int = 6) -> int:
        return self._fee_estimate

    def set_fee_estimate(self, sat_per_kvb: int) -> None:
        if sat_per_kvb <= 0:
            raise ValueError("fee rate must be positive")
        self._fee_estimate = sat_per_kvb

    # --- chain -----------------------------------------------------------------------------------------
    def tip_height(self) -> int:
        return self._index.tip_height()

    def tip_hash(self) -> bytes:
        tip = self._index.tip_hash()
        if tip is None:
            raise ChainError("the chain has no blocks")
        return tip

    def block_hash(self, height: int) -> bytes | None:
        return self._index.block_hash(height)

    def block_height(self, block_hash: bytes) -> int | None:
        """Height of a block on the active chain; None for unknown or stale blocks."""
        return self._index.block_height(block_hash)

    def get_block(self, block_hash: bytes) -> Block | None:
        """Any block the kernel stored, on the active chain or not."""
        if len(block_hash) != 32 or not self._kernel.knows(block_hash):
            return None
        try:
            return Block.parse(self._kernel.read_block(block_hash))
        except KernelError:
            return None  # a header without its block data

    def block_time(self, height: int) -> int:
        return self._index.block_time(height)

    def median_time_past(self, height: int | None = None) -> int:
        """BIP113 median time past of block `height` (the tip by default)."""
        return self._index.median_time_past(self.tip_height() if height is None else height)

    def block_info(self, block_hash: bytes) -> BlockInfo | None:
        block = self.get_block(block_hash)
        if block is None:
            return None
        height = self._kernel.entry_height(block_hash)
        assert height is not None
        return BlockInfo(height, block_hash, block.header.prev_hash, block.header.time, block.transactions)

    # --- transactions ----------------------------------------------------------------------------------
    def get_transaction(self, txid: bytes) -> tuple[Transaction, bytes | None] | None:
        """A mempool or confirmed transaction, with the hash of its block (None in the mempool)."""
        entry = self._mempool.get(txid)
        if entry is not None:
            return entry.tx, None
        location = self._index.tx_location(txid)
        if location is None:
            return None
        height, position = location
        block_hash = self._index.block_hash(height)
        assert block_hash is not None
        return Transaction.parse(self._kernel.read_transaction(block_hash, position)), block_hash

    def tx_status(self, txid: bytes) -> TxStatus:
        location = self._index.tx_location(txid)
        return TxStatus(txid, None if location is None else location[0], txid in self._mempool)

    def get_txout(self, outpoint: OutPoint, include_mempool: bool = True) -> UnspentOutput | None:
        """As bitcoind's gettxout: with the mempool, its outputs count and what it spends does not."""
        if include_mempool:
            if self._mempool.spender(outpoint) is not None:
                return None
            output = self._mempool.output(outpoint)
            if output is not None:
                return UnspentOutput(outpoint, output, None, False)
        return self._index.get_utxo(outpoint)

    def utxos_for_script(self, script_pubkey: bytes) -> list[UnspentOutput]:
        """Confirmed unspent outputs paying `script_pubkey` (bitcoind's scantxoutset)."""
        return self._index.utxos_by_script(script_pubkey)

    # --- mempool ---------------------------------------------------------------------------------------
    def mempool_txids(self) -> list[bytes]:
        return self._mempool.txids()

    def mempool_tx(self, txid: bytes) -> Transaction | None:
        entry = self._mempool.get(txid)
        return None if entry is None else entry.tx

    def mempool_entry(self, txid: bytes) -> MempoolEntry | None:
        return self._mempool.get(txid)

    def submit(self, tx: Transaction) -> bytes:
        """Add `tx` to the mempool and return its txid; raises BroadcastError. Submitting a
        transaction already there is not an error, as with bitcoind's sendrawtransaction."""
        existing = self._mempool.get(tx.txid)
        if existing is not None and existing.wtxid == tx.wtxid:
            return tx.txid
        return self._mempool.accept(tx).txid

    def test_accept(self, tx: Transaction) -> None:
        """Raise BroadcastError if `submit` would refuse `tx` now; changes nothing."""
        self._mempool.test_accept(tx)

    # --- blocks ----------------------------------------------------------------------------------------
    def generate(self, count: int, script_pubkey: bytes) -> list[bytes]:
        """Mine `count` blocks paying `script_pubkey`, each filled from the mempool by fee rate."""
        hashes = []
        try:
            for _ in range(count):
                template = select_transactions(self._mempool)
                tip = self.tip_height()
                block = assemble_block(
                    self.tip_hash(),
                    tip + 1,
                    max(self._now(), self._index.median_time_past(tip) + 1),
                    script_pubkey,
                    [entry.tx for entry in template.entries],
                    template.fees,
                )
                verdict = self._process(block)
                if verdict.status is not VerdictStatus.CONNECTED:
                    self._drop_offending(block, verdict)
                    raise BlockRejectedError(f"mined block refused by the kernel: {verdict.describe()}")
                hashes.append(block.hash)
        finally:
            self._index.commit()
        return hashes

    def submit_block(self, block: Block) -> BlockVerdict:
        """Hand a block built elsewhere to the kernel (bitcoind's submitblock); returns the verdict."""
        try:
            return self._process(block)
        finally:
            self._index.commit()

    def reorg(self, depth: int, script_pubkey: bytes, new_blocks: int | None = None) -> list[bytes]:
        """Replace the last `depth` blocks with `new_blocks` (default depth + 1) empty ones mined on
        the block below them; their transactions go back to the mempool when still valid.

        libbitcoinkernel has no invalidateblock, so a block can only leave the chain this way, by
        a competing branch with more work.
        """
        tip = self.tip_height()
        count = depth + 1 if new_blocks is None else new_blocks
        if not 1 <= depth <= tip or count <= depth:
            raise ValueError("need 1 <= depth <= tip height and more new blocks than depth")
        fork = tip - depth
        prev = self.block_hash(fork)
        assert prev is not None
        times = [self.block_time(h) for h in range(max(0, fork - 10), fork + 1)]
        hashes = []
        try:
            for height in range(fork + 1, fork + 1 + count):
                self._extra_nonce += 1
                mtp = sorted(times[-11:])[len(times[-11:]) // 2]
                block_time = max(self._now(), mtp + 1)
                extra = b"reorg" + self._extra_nonce.to_bytes(4, "little")
                block = assemble_block(prev, height, block_time, script_pubkey, [], 0, extra=extra)
                verdict = self._process(block)
                if not verdict.valid:
                    raise BlockRejectedError(f"reorg block refused by the kernel: {verdict.describe()}")
                times.append(block_time)
                prev = block.hash
                hashes.append(block.hash)
        finally:
            self._index.commit()
        if self.tip_hash() != hashes[-1]:
            raise ChainError("the kernel did not switch to the new branch")
        return hashes

    def _process(self, block: Block) -> BlockVerdict:
        self._built[block.hash] = block
        try:
            verdict = self._kernel.process_block(block.serialize(), block.hash)
            self._apply_events()
        finally:
            self._built.clear()
        return verdict

    def _apply_events(self) -> None:
        disconnected: list[Transaction] = []
        reorganised = False
        for event in self._kernel.drain_events():
            block = self._built.get(event.block_hash) or Block.parse(event.raw_block())
            if event.kind is EventKind.CONNECTED:
                self._index.connect_block(block, event.height)
                self._mempool.remove_for_block(block.transactions[1:])
            else:
                reorganised = True
                spent = self._kernel.spent_outputs(event.block_hash)
                self._index.disconnect_block(block, event.height, spent)
                # Disconnections come tip first; the oldest block's transactions must go back first.
                disconnected[:0] = block.transactions[1:]
        if reorganised:
            # As bitcoind after a reorg: what left the chain comes back first, then the old mempool,
            # and whatever the new chain made invalid stays out.
            pending = disconnected + self._mempool.clear()
            refused = self._mempool.readd(pending)
            log.info(
                "reorg: %d transaction(s) back in the mempool, %d dropped",
                len(pending) - len(refused),
                len(refused),
            )

    def _drop_offending(self, block: Block, verdict: BlockVerdict) -> None:
        """After the kernel refused a block built from the mempool for its transactions (a mempool
        bug by definition): drop those the kernel's log names, or all of the block's if it names
        none. A block refused for its header (a mock time too far ahead) costs no transaction."""
        if verdict.result != "consensus":
            log.error("kernel refused a mined block: %s", verdict.describe())
            return
        block_txids = {tx.txid_hex: tx.txid for tx in block.transactions[1:]}
        named = {
            block_txids[found]
            for line in verdict.log_lines
            for found in _TXID_IN_LOG.findall(line)
            if found in block_txids
        }
        doomed = named or set(block_txids.values())
        for txid in doomed:
            self._mempool.remove(txid)
        log.error(
            "kernel refused a mined block (%s); dropped %d mempool transaction(s)",
            verdict.describe(),
            len(doomed),
        )

    # --- lifecycle -------------------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._index.save_mempool(entry.tx.serialize() for entry in self._mempool.entries())
        self._index.close()
        self._kernel.close()
        self._lock.close()

    def __enter__(self) -> EmbeddedChain:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _parse_all(raw_transactions: Sequence[bytes]) -> list[Transaction]:
    parsed = []
    for raw in raw_transactions:
        try:
            parsed.append(Transaction.parse(raw))
        except DeserializationError:
            log.warning("dropping an unreadable saved mempool transaction")
    return parsed


class EmbeddedChainBackend:
    """`ChainBackend` over an EmbeddedChain for asyncio code.

    The coroutines call the chain directly on the event loop's thread, which keeps the chain on one
    thread; each call is short (mining and block processing take milliseconds on regtest).
    """

    def __init__(self, chain: EmbeddedChain) -> None:
        self.chain = chain

    async def tip_height(self) -> int:
        return self.chain.tip_height()

    async def block_hash(self, height: int) -> bytes:
        block_hash = self.chain.block_hash(height)
        if block_hash is None:
            raise NotFoundError(f"no block at height {height}")
        return block_hash

    async def block_at(self, height: int) -> BlockInfo:
        return await self.block_by_hash(await self.block_hash(height))

    async def block_by_hash(self, block_hash: bytes) -> BlockInfo:
        info = self.chain.block_info(block_hash)
        if info is None:
            raise NotFoundError(f"unknown block {block_hash[::-1].hex()}")
        return info

    async def get_txout(self, outpoint: OutPoint, include_mempool: bool = True) -> UnspentOutput | None:
        return self.chain.get_txout(outpoint, include_mempool)

    async def mempool_transactions(self) -> tuple[Transaction, ...]:
        return tuple(entry.tx for entry in self.chain.mempool.entries())

    async def broadcast(self, tx: Transaction) -> bytes:
        return self.chain.submit(tx)

    async def test_accept(self, tx: Transaction) -> None:
        self.chain.test_accept(tx)

    async def feerate_per_kw(self, target_blocks: int) -> int:
        return btc_per_kvb_to_sat_per_kw(self.chain.estimate_feerate_sat_per_kvb(target_blocks))

    async def tx_status(self, txid: bytes) -> TxStatus:
        return self.chain.tx_status(txid)

    async def generate(self, count: int, script_pubkey: bytes) -> list[bytes]:
        return self.chain.generate(count, script_pubkey)
