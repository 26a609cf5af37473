"""Brings a wallet up to the chain's tip, undoing blocks that a reorg replaced."""

from __future__ import annotations

import logging

from ampere.chain.interface import ChainSource
from ampere.wallet.wallet import Wallet

log = logging.getLogger(__name__)


async def sync_wallet(wallet: Wallet, chain: ChainSource, *, include_mempool: bool = True) -> int:
    """Apply every block after the wallet's height (and the mempool); returns the new height."""
    tip = await chain.tip_height()
    height = wallet.synced_height
    # Walk back while the blocks we applied are no longer on the best chain.
    while height >= 0:
        ours = wallet.applied_hash(height)
        if ours is None:
            break  # deeper than our undo data: treated as final
        if height <= tip and ours == await chain.block_hash(height):
            break
        log.info("block %d left the best chain; undoing it", height)
        wallet.undo_block(height)
        height -= 1
    for next_height in range(wallet.synced_height + 1, tip + 1):
        wallet.apply_block(await chain.block_at(next_height))
    if include_mempool:
        for tx in await chain.mempool_transactions():
            wallet.apply_unconfirmed(tx)
    return wallet.synced_height
