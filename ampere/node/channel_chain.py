"""The channels' view of the chain: funding depth, funding spends, new blocks and the fee estimate.

A `ChainListener` on the node's follower. For every block it finds the funding transactions and the
transactions spending a funding output, then feeds each channel `FundingConfirmed` (with the
short_channel_id from the block height, the transaction's index and the output), `FundingSpent` and
`BlockConnected`, and refreshes the channels' fee estimate.

The height of the last block handled is stored; at start the blocks since then (and a few before, the
channel events being idempotent) are replayed, so nothing that happened while the node was down is
missed. A funding transaction that confirmed before that window is found through `get_txout`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from ampere.bitcoin.tx import Transaction
from ampere.chain.errors import ChainError
from ampere.chain.interface import FEERATE_FLOOR_PER_KW, BlockInfo, ChainBackend
from ampere.channel.twoway import BlockConnected, FundingConfirmed, FundingSpent, Phase
from ampere.node.channel_managed import ManagedChannel
from ampere.store import Store

__all__ = ["CHANNEL_SERVICE_NAMESPACE", "ChannelChainWatcher", "format_short_channel_id", "short_channel_id"]

log = logging.getLogger(__name__)

CHANNEL_SERVICE_NAMESPACE = "channel_service"
_SCANNED_HEIGHT = b"scanned_height"
_REPLAY_MARGIN = 6
# Depth updates stop once a channel is this deep: nothing in BOLT 2 looks further.
_MAX_REPORTED_DEPTH = 6
_FEE_TARGET_BLOCKS = 6
_WATCHING_PHASES = frozenset(
    {
        Phase.WAIT_CHANNEL_READY,
        Phase.NORMAL,
        Phase.SHUTDOWN,
        Phase.NEGOTIATING,
        Phase.CLOSING,
        Phase.FORCE_CLOSING,
    }
)


class ChainHook(Protocol):
    """Told what the watcher saw (the on-chain resolution): funding spends, each block once processed."""

    def funding_spent(self, managed: ManagedChannel, tx: Transaction) -> None: ...

    async def block_processed(self, block: BlockInfo) -> None: ...

    async def block_disconnected(self, height: int) -> None: ...


def short_channel_id(height: int, tx_index: int, output_index: int) -> int:
    return (height << 40) | (tx_index << 16) | output_index


def format_short_channel_id(scid: int) -> str:
    return f"{scid >> 40}x{(scid >> 16) & 0xFFFFFF}x{scid & 0xFFFF}"


class ChannelChainWatcher:
    def __init__(
        self,
        chain: ChainBackend,
        store: Store,
        channels: Callable[[], list[ManagedChannel]],
        after_event: Callable[[ManagedChannel], None],
    ) -> None:
        self._chain = chain
        self._store = store
        self._channels = channels
        self._after_event = after_event
        self._lock = asyncio.Lock()
        self._height = -1
        self.feerate_per_kw = FEERATE_FLOOR_PER_KW
        self.hooks: list[ChainHook] = []

    @property
    def height(self) -> int:
        return self._height

    async def refresh_feerate(self) -> int:
        try:
            estimate = await self._chain.feerate_per_kw(_FEE_TARGET_BLOCKS)
        except ChainError as exc:
            log.warning("no fee estimate (%s); keeping %d sat/kw", exc, self.feerate_per_kw)
            return self.feerate_per_kw
        self.feerate_per_kw = max(FEERATE_FLOOR_PER_KW, estimate)
        for managed in self._channels():
            managed.channel.feerate_estimate_per_kw = self.feerate_per_kw
        return self.feerate_per_kw

    async def start(self, follower_height: int) -> None:
        """Catch up with the blocks the node connected while the channels were not watching."""
        raw = self._store.get(CHANNEL_SERVICE_NAMESPACE, _SCANNED_HEIGHT)
        scanned = follower_height if raw is None else int(raw.decode("ascii"))
        async with self._lock:
            self._height = max(-1, min(scanned, follower_height) - _REPLAY_MARGIN)
            for managed in self._channels():
                await self.locate_funding(managed)
            await self.refresh_feerate()
            await self._catch_up(follower_height)

    async def locate_funding(self, managed: ManagedChannel) -> None:
        """Find where an unspent funding output confirmed (for channels restored or opened just now)."""
        state = managed.state
        outpoint = state.funding_outpoint
        if outpoint is None or managed.funding_height is not None or state.phase not in _WATCHING_PHASES:
            return
        try:
            found = await self._chain.get_txout(outpoint, include_mempool=False)
            if found is None or found.height is None:
                return
            block = await self._chain.block_at(found.height)
        except ChainError as exc:
            log.warning("cannot look up funding %s: %s", outpoint, exc)
            return
        for index, tx in enumerate(block.transactions):
            if tx.txid == outpoint.txid:
                managed.funding_height, managed.funding_tx_index = found.height, index
                managed.funding_transaction = tx
                return

    async def _catch_up(self, height: int) -> None:
        while self._height < height:
            block = await self._chain.block_at(self._height + 1)
            await self._process(block)

    # --- ChainListener ----------------------------------------------------------------------------------
    async def block_connected(self, block: BlockInfo) -> None:
        async with self._lock:
            if block.height <= self._height:
                return
            await self._catch_up(block.height - 1)
            await self._process(block)

    async def block_disconnected(self, height: int, block_hash: bytes) -> None:
        async with self._lock:
            for managed in self._channels():
                if managed.funding_height is not None and managed.funding_height >= height:
                    log.warning(
                        "channel %s: its funding block %d left the chain", managed.channel_id.hex(), height
                    )
                    managed.funding_height = managed.funding_tx_index = None
                    managed.funding_transaction = None
            self._height = min(self._height, height - 1)
            for hook in self.hooks:
                await hook.block_disconnected(height)

    async def transaction_seen(self, tx: Transaction) -> None:
        return None

    async def transaction_dropped(self, txid: bytes) -> None:
        return None

    # --- internals --------------------------------------------------------------------------------------
    async def _process(self, block: BlockInfo) -> None:
        channels = [m for m in self._channels() if m.state.phase in _WATCHING_PHASES and m.halted is None]
        by_funding = {m.state.funding_outpoint: m for m in channels if m.state.funding_outpoint is not None}
        by_txid = {outpoint.txid: m for outpoint, m in by_funding.items()}
        for index, tx in enumerate(block.transactions):
            funded = by_txid.get(tx.txid)
            if funded is not None and funded.funding_height is None:
                funded.funding_height, funded.funding_tx_index = block.height, index
                funded.funding_transaction = tx
            for txin in tx.inputs:
                spent = by_funding.get(txin.prevout)
                if spent is not None:
                    log.info("channel %s: funding spent by %s", spent.channel_id.hex(), tx.txid_hex)
                    spent.handle(FundingSpent(tx))
                    self._after_event(spent)
                    for hook in self.hooks:
                        hook.funding_spent(spent, tx)
        await self.refresh_feerate()
        for managed in channels:
            if managed.state.phase not in _WATCHING_PHASES:
                continue
            self._report_depth(managed, block.height)
            managed.handle(BlockConnected(block.height))
            self._after_event(managed)
        for hook in self.hooks:
            await hook.block_processed(block)
        self._height = block.height
        self._store.put(CHANNEL_SERVICE_NAMESPACE, _SCANNED_HEIGHT, str(block.height).encode("ascii"))

    def _report_depth(self, managed: ManagedChannel, height: int) -> None:
        state = managed.state
        tx = managed.funding_transaction
        if managed.funding_height is None or managed.funding_tx_index is None or tx is None:
            return
        outpoint = state.funding_outpoint
        assert outpoint is not None
        depth = height - managed.funding_height + 1
        if depth < 1 or (state.funding_depth >= _MAX_REPORTED_DEPTH and state.short_channel_id is not None):
            return
        scid = short_channel_id(managed.funding_height, managed.funding_tx_index, outpoint.vout)
        managed.handle(FundingConfirmed(tx, depth, scid))
