"""Fees: justice replacements (BIP125 on the real mempool), batching past the standard weight,
zero-fee HTLC transactions funded by the wallet, and CPFP through our anchor."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.tx import SEQUENCE_RBF, OutPoint
from ampere.chain.embedded import EmbeddedChain
from ampere.channel.twoway import ChannelType, ForceClose
from ampere.onchain.claims import (
    MAX_STANDARD_TX_WEIGHT,
    ClaimInput,
    WitnessKind,
    build_claim_tx,
    claim_weight,
)
from ampere.onchain.classify import LocalCommitment
from ampere.onchain.errors import ClaimBuildError
from ampere.onchain.events import BlockConnected
from ampere.onchain.justice import (
    INCREMENTAL_RELAY_PER_KW,
    batch_claims,
    min_replacement_fee_sat,
    next_justice_feerate,
)
from ampere.onchain.keys import KeyFamily
from ampere.onchain.outputs import OutputPath, OutputStatus
from tests.chain.helpers import SINK_SCRIPT, fund_p2wpkh

from .harness import (
    DELAY,
    Chain,
    Shell,
    classify_for,
    open_on_chain,
    punish,
    wallet_script,
)

BTC = 100_000_000
WALLET_KEY = PrivateKey.from_int(0xFEE5)


# --- pure rules -----------------------------------------------------------------------------------


@given(st.integers(253, 10_000_000), st.integers(-5, 2016))
def test_justice_feerate_always_rises_faster_near_the_deadline(feerate: int, blocks_left: int) -> None:
    bumped = next_justice_feerate(feerate, blocks_left)
    assert bumped >= feerate + INCREMENTAL_RELAY_PER_KW
    if blocks_left <= 2:
        assert bumped == 2 * feerate


@given(st.integers(0, 10**9), st.integers(1, 400_000))
def test_replacement_pays_at_least_the_incremental_relay_fee(old_fee: int, weight: int) -> None:
    assert min_replacement_fee_sat(old_fee, weight) * 4 >= old_fee * 4 + weight


def _revoked_htlc_claim(index: int, amount: int) -> ClaimInput:
    return ClaimInput(
        OutPoint(bytes([index % 256, index // 256]) * 16, index),
        amount,
        WitnessKind.REVOKED_HTLC,
        bytes(140),
        KeyFamily.REVOCATION,
        bytes(32),
        SEQUENCE_RBF,
        pubkey=bytes([2]) + bytes(32),
    )


def test_justice_batches_split_past_the_standard_weight() -> None:
    claims = [_revoked_htlc_claim(i, 10_000 + i) for i in range(2 * 483 + 1)]
    destination = wallet_script("bob")
    batches = batch_claims(claims, destination)
    assert len(batches) == 2
    assert sorted(c.outpoint for batch in batches for c in batch) == sorted(c.outpoint for c in claims)
    for batch in batches:
        assert claim_weight(batch, destination) <= MAX_STANDARD_TX_WEIGHT
        build_claim_tx(batch, destination, 253)
    assert batch_claims(claims[:10], destination) == [sorted(claims[:10], key=lambda c: -c.amount_sat)]


def test_a_claim_that_would_be_dust_is_refused() -> None:
    with pytest.raises(ClaimBuildError):
        build_claim_tx([_revoked_htlc_claim(0, 400)], wallet_script("bob"), 2500)
    with pytest.raises(ClaimBuildError):
        build_claim_tx([], wallet_script("bob"), 2500)


# --- on the chain -----------------------------------------------------------------------------------


def test_unconfirmed_justice_is_replaced_with_rising_fees(chain: EmbeddedChain) -> None:
    pair = open_on_chain(chain, 2 * BTC, push_msat=BTC * 1000)
    first = pair.alice.persisted
    assert first is not None
    pair.pay(pair.alice, BTC // 2 * 1000)
    pair.pay(pair.bob, 2_000_000 * 1000)
    pair.flush(fulfill=False)
    shell, cheat, height = punish(chain, pair, first)
    first_justice = next(tx for label, tx in shell.broadcasts if label == "justice")
    assert first_justice.weight <= claim_weight(
        [o.claim for o in shell.resolver.outputs if o.path is OutputPath.JUSTICE and o.claim],
        shell.resolver.destination,
    )
    # Blocks pass (as far as the resolver knows) without the justice transaction confirming.
    fees = [
        sum(cheat.outputs[i.prevout.vout].value for i in first_justice.inputs)
        - first_justice.total_output_value()
    ]
    replaced = first_justice
    for late in range(1, DELAY):
        shell.handle(BlockConnected(height + late))
        bumps = [tx for label, tx in shell.broadcasts if label.startswith("justice (fee bump)")]
        assert len(bumps) == late
        bump = bumps[-1]
        assert {i.prevout for i in bump.inputs} == {i.prevout for i in first_justice.inputs}
        fees.append(sum(cheat.outputs[i.prevout.vout].value for i in bump.inputs) - bump.total_output_value())
        # The real mempool took each replacement (BIP125) and dropped its predecessor.
        assert not shell.rejected, shell.rejected
        assert chain.mempool_tx(bump.txid) is not None and chain.mempool_tx(replaced.txid) is None
        replaced = bump
    assert fees == sorted(fees) and len(set(fees)) == len(fees)
    assert fees[-1] > 4 * fees[0]  # doubled as the deadline closed in
    Chain(chain, shell).mine(1)
    assert chain.tx_status(replaced.txid).block_height == height + 1
    assert all(o.status is OutputStatus.SWEPT for o in shell.resolver.outputs if o.actionable)


def test_anchor_channel_htlc_timeout_is_funded_by_the_wallet(chain: EmbeddedChain) -> None:
    pair = open_on_chain(chain, 1_000_000, push_msat=300_000_000, channel_type=ChannelType.ANCHORS)
    alice = pair.alice
    coins = [fund_p2wpkh(chain, WALLET_KEY, 50_000) for _ in range(2)]
    expiry = chain.tip_height() + 4
    pair.pay(alice, 90_000 * 1000, cltv_expiry=expiry)
    pair.flush(fulfill=False)
    alice.handle(ForceClose())
    commitment = alice.broadcasts[-1]
    chain.submit(commitment)
    chain.generate(1, SINK_SCRIPT)
    height = chain.tip_height()
    ours = classify_for(alice, commitment, {})
    assert isinstance(ours, LocalCommitment)
    shell = Shell.start(chain, alice, alice.state, commitment, ours)
    shell.fee_coins = list(coins)
    miner = Chain(chain, shell)
    shell.block(height)
    timeout = next(o for o in shell.resolver.outputs if o.path is OutputPath.HTLC_TIMEOUT)
    assert timeout.claimable_at() == expiry
    miner.mine_to(expiry)
    assert [r.outpoint for r in shell.fund_requests] == [timeout.outpoint]
    funded = shell.broadcasts[-1][1]
    assert len(funded.inputs) == 2 and funded.inputs[1].prevout == coins[0].outpoint
    miner.mine(1)
    assert chain.tx_status(funded.txid).block_height == expiry + 1
    delayed = next(o for o in shell.resolver.outputs if o.parent == timeout.outpoint)
    assert delayed.claimable_at() == expiry + DELAY
    miner.mine_to(max(delayed.claimable_at() or 0, height + DELAY) + 7)
    assert not shell.rejected, shell.rejected
    assert shell.resolved


def test_cpfp_through_our_anchor_pays_for_the_commitment(chain: EmbeddedChain) -> None:
    """Our anchor commitment waits below today's feerate: the resolver asks for a CPFP child,
    the wallet pays it, and the package confirms."""
    pair = open_on_chain(chain, 1_000_000, push_msat=300_000_000, channel_type=ChannelType.ANCHORS)
    alice = pair.alice
    coin = fund_p2wpkh(chain, WALLET_KEY, 100_000)
    alice.handle(ForceClose())
    commitment = alice.broadcasts[-1]
    chain.submit(commitment)
    ours = classify_for(alice, commitment, {})
    assert isinstance(ours, LocalCommitment)
    shell = Shell.start(chain, alice, alice.state, commitment, ours)
    shell.fee_coins = [coin]
    # At the channel's own feerate nothing is asked for.
    shell.handle(BlockConnected(chain.tip_height()))
    assert shell.bump_requests == []
    shell.feerate = 20_000  # today's estimate: eight times what the commitment pays
    shell.handle(BlockConnected(chain.tip_height()))
    assert len(shell.bump_requests) == 1
    request = shell.bump_requests[0]
    parent_fee = 1_000_000 - commitment.total_output_value()
    assert request.commitment_fee_sat == parent_fee and request.commitment_weight == commitment.weight
    label, child = shell.broadcasts[-1]
    assert label == "anchor CPFP" and not shell.rejected, shell.rejected
    child_fee = coin.value + request.anchor.amount_sat - child.total_output_value()
    assert (parent_fee + child_fee) * 1000 >= 20_000 * (commitment.weight + child.weight)
    shell.handle(BlockConnected(chain.tip_height()))
    assert len(shell.bump_requests) == 1  # once per block
    Chain(chain, shell).mine(1)
    assert chain.tx_status(child.txid).block_height == chain.tip_height()
    assert shell.resolver.closing_height == chain.tip_height()
    shell.feerate = 40_000
    Chain(chain, shell).mine(1)
    assert len(shell.bump_requests) == 1  # confirmed: no more bumps, whatever the feerate
