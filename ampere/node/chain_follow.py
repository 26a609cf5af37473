"""Follows the best chain for the node: polls the tip, fetches each new block once, hands it to listeners.

Listeners (the wallet first, channel watchers later) see blocks in order and see a reorg as blocks
disconnected from the tip down, then the new branch connected. Mempool transactions are reported once
each, and again if they come back after a reorg; a transaction that leaves the mempool without being
mined (replaced, evicted) is reported as dropped.

Blocks deeper than the remembered window (`REORG_WINDOW`) are treated as final: a reorg past them is
logged as an error and followed from the fork the window still covers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from ampere.bitcoin.tx import Transaction
from ampere.chain.errors import ChainError, NotFoundError
from ampere.chain.interface import BlockInfo, ChainSource

__all__ = ["REORG_WINDOW", "ChainFollower", "ChainListener"]

log = logging.getLogger(__name__)

REORG_WINDOW = 144
_MEMPOOL_INTERVAL = 1.0
_ERROR_LOG_INTERVAL = 30.0


class ChainListener(Protocol):
    """What a component following the chain implements; calls come in chain order, one at a time."""

    async def block_connected(self, block: BlockInfo) -> None: ...

    async def block_disconnected(self, height: int, block_hash: bytes) -> None: ...

    async def transaction_seen(self, tx: Transaction) -> None:
        """An unconfirmed transaction entered the mempool (or came back to it after a reorg)."""
        ...

    async def transaction_dropped(self, txid: bytes) -> None:
        """A transaction left the mempool without being mined."""
        ...


class ChainFollower:
    """`await sync()` catches up once; `run()` keeps polling until cancelled."""

    def __init__(
        self,
        chain: ChainSource,
        start_height: int,
        *,
        poll_interval: float = 0.2,
        mempool_interval: float = _MEMPOOL_INTERVAL,
    ) -> None:
        self._chain = chain
        self._height = start_height - 1  # the last block handed to the listeners
        self._hashes: dict[int, bytes] = {}
        self._listeners: list[ChainListener] = []
        self._poll_interval = poll_interval
        self._mempool_interval = mempool_interval
        self._mempool: set[bytes] = set()
        self._mined_since_poll: set[bytes] = set()
        self._last_mempool_poll = float("-inf")
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._last_error_log = float("-inf")
        self.synced = asyncio.Event()  # set once the first catch-up is complete

    @property
    def height(self) -> int:
        """Height of the last block the listeners have seen (-1 before the first)."""
        return self._height

    def block_hash(self, height: int) -> bytes | None:
        return self._hashes.get(height)

    def add_listener(self, listener: ChainListener) -> None:
        self._listeners.append(listener)

    def wake(self) -> None:
        """Poll now rather than at the next interval (after mining, say)."""
        self._wake.set()

    async def sync(self, *, mempool: bool | None = None) -> int:
        """Catch up with the tip (and the mempool when due, or when `mempool` is True); returns the height."""
        async with self._lock:
            tip = await self._chain.tip_height()
            await self._unwind(tip)
            while self._height < tip:
                block = await self._chain.block_at(self._height + 1)
                if self._height >= 0 and block.prev_hash != self._hashes.get(self._height, block.prev_hash):
                    break  # the chain moved under us: the next pass unwinds
                await self._connect(block)
            now = time.monotonic()
            due = now - self._last_mempool_poll >= self._mempool_interval
            if mempool or (mempool is None and due):
                self._last_mempool_poll = now
                await self._poll_mempool()
            self.synced.set()
            return self._height

    async def run(self) -> None:
        while True:
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except ChainError as exc:
                now = time.monotonic()
                if now - self._last_error_log >= _ERROR_LOG_INTERVAL:
                    self._last_error_log = now
                    log.warning("cannot follow the chain: %s", exc)
            except Exception:
                log.exception("chain follower failed; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)

    # --- internals ---------------------------------------------------------------------------------------
    async def _unwind(self, tip: int) -> None:
        """Disconnect our blocks that are no longer on the best chain."""
        while self._height >= 0:
            ours = self._hashes.get(self._height)
            if ours is None:
                if self._height > tip:
                    log.error(
                        "the chain is shorter (%d) than blocks we took as final (%d)", tip, self._height
                    )
                return  # beyond the window: final
            if self._height <= tip:
                try:
                    if await self._chain.block_hash(self._height) == ours:
                        return
                except NotFoundError:
                    pass
            log.info("block %d (%s) left the best chain", self._height, ours[::-1].hex())
            await self._notify_disconnected(self._height, ours)
            del self._hashes[self._height]
            self._height -= 1
            if self._height >= 0 and self._height not in self._hashes:
                log.error(
                    "reorg deeper than %d blocks; continuing from height %d", REORG_WINDOW, self._height
                )

    async def _connect(self, block: BlockInfo) -> None:
        for listener in self._listeners:
            try:
                await listener.block_connected(block)
            except Exception:
                log.exception("chain listener %s failed on block %d", type(listener).__name__, block.height)
        self._height = block.height
        self._hashes[block.height] = block.block_hash
        self._hashes.pop(block.height - REORG_WINDOW, None)
        for tx in block.transactions:
            self._mined_since_poll.add(tx.txid)
            self._mempool.discard(tx.txid)

    async def _notify_disconnected(self, height: int, block_hash: bytes) -> None:
        for listener in reversed(self._listeners):
            try:
                await listener.block_disconnected(height, block_hash)
            except Exception:
                log.exception("chain listener %s failed undoing block %d", type(listener).__name__, height)

    async def _poll_mempool(self) -> None:
        transactions: Sequence[Transaction] = await self._chain.mempool_transactions()
        current = {tx.txid for tx in transactions}
        for txid in self._mempool - current - self._mined_since_poll:
            for listener in self._listeners:
                try:
                    await listener.transaction_dropped(txid)
                except Exception:
                    log.exception(
                        "chain listener %s failed on a dropped transaction", type(listener).__name__
                    )
        for tx in transactions:
            if tx.txid in self._mempool:
                continue
            for listener in self._listeners:
                try:
                    await listener.transaction_seen(tx)
                except Exception:
                    log.exception(
                        "chain listener %s failed on a mempool transaction", type(listener).__name__
                    )
        self._mempool = current
        self._mined_since_poll.clear()
