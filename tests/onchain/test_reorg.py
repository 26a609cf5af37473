"""Reorganisations: the resolver undoes what left the chain and broadcasts it again."""

from __future__ import annotations

from ampere.bitcoin.tx import Transaction
from ampere.chain.embedded import EmbeddedChain
from ampere.onchain.outputs import OutputStatus
from tests.chain.helpers import SINK_SCRIPT

from .harness import Chain, Shell, open_on_chain, punish

BTC = 100_000_000


def _breach(chain: EmbeddedChain) -> tuple[Shell, Transaction, int]:
    """Alice broadcasts a revoked state; Bob's resolver has seen it confirmed at the returned height."""
    pair = open_on_chain(chain, 2 * BTC, push_msat=BTC * 1000)
    first = pair.alice.persisted
    assert first is not None
    pair.pay(pair.alice, BTC // 2 * 1000)
    pair.pay(pair.bob, 3_000_000 * 1000)
    pair.flush(fulfill=False)  # one HTLC pending each way
    pair.pay(pair.alice, 1_000_000 * 1000)
    pair.flush()
    return punish(chain, pair, first)


def _swept_by(shell: Shell) -> set[bytes | None]:
    return {out.sweep_txid for out in shell.resolver.outputs if out.actionable}


def test_disconnected_justice_is_broadcast_again(chain: EmbeddedChain) -> None:
    shell, _, height = _breach(chain)
    miner = Chain(chain, shell)
    miner.mine(1)
    justice = next(tx for label, tx in shell.broadcasts if label == "justice")
    assert chain.tx_status(justice.txid).block_height == height + 1
    assert all(out.status is OutputStatus.SWEPT for out in shell.resolver.outputs)

    # The block with the justice transaction is replaced by two empty ones.
    chain.reorg(1, SINK_SCRIPT, new_blocks=2)
    shell.disconnect(height + 1)
    assert all(out.status is not OutputStatus.SWEPT for out in shell.resolver.outputs)
    again = [label for label, _ in shell.broadcasts if label.endswith("(again)")]
    assert "justice (again)" in again
    shell.block(height + 1)
    shell.block(height + 2)
    miner.mine(1)
    assert not shell.rejected, shell.rejected
    assert all(
        out.status is OutputStatus.SWEPT and out.by_us for out in shell.resolver.outputs if out.actionable
    )
    final = {tx.txid for _, tx in shell.broadcasts}
    assert _swept_by(shell) <= final
    for txid in _swept_by(shell):
        assert txid is not None and chain.tx_status(txid).block_height == height + 3


def test_disconnected_commitment_is_broadcast_again_and_claims_wait(chain: EmbeddedChain) -> None:
    shell, cheat, height = _breach(chain)
    miner = Chain(chain, shell)
    miner.mine(1)
    chain.reorg(2, SINK_SCRIPT, new_blocks=3)
    shell.disconnect(height + 1)
    shell.disconnect(height)
    assert shell.resolver.closing_height is None
    assert ("closing transaction (after a reorganisation)", cheat) in shell.broadcasts
    assert all(
        out.status is OutputStatus.PENDING and out.created_height is None for out in shell.resolver.outputs
    )
    assert shell.resolver.claims == []
    # The empty replacement blocks confirm nothing; the resolver waits for the commitment.
    before = len(shell.broadcasts)
    for new in range(height, height + 3):
        shell.block(new)
    assert len(shell.broadcasts) == before
    miner.mine(1)  # the commitment (back in the mempool) and the old justice confirm together
    miner.mine(1)
    assert not shell.rejected, shell.rejected
    assert shell.resolver.closing_height == height + 3
    assert all(out.status is OutputStatus.SWEPT for out in shell.resolver.outputs if out.actionable)
