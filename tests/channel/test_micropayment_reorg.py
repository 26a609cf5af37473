"""Both machines through reorgs, with no I/O: a block that leaves the chain takes its confirmations with it.

The funding, the settlement and the refund each confirm in a block that is then disconnected. Each
side recomputes where it stands from what is still confirmed, sends again what must reach the chain,
and keeps every payment: what the payer paid is what the payee holds, before and after.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ampere.channel.micropayment import (
    BlockConnected,
    BlockDisconnected,
    ChainEventError,
    ChannelOpened,
    ChannelState,
    CommandRejectedError,
    FundingConfirmed,
    FundingSpent,
    Pay,
    PayeeChannel,
    PayeePhase,
    PayerChannel,
    PayerPhase,
    Settle,
    TxKind,
)
from ampere.channel.micropayment.codec import decode_state, encode_state
from ampere.channel.micropayment.loopback import Loopback

from .test_micropayment_support import (
    CONFIG,
    PAYEE_KEY,
    PAYER_KEY,
    REFUND_HEIGHT,
    TIP,
    new_pair,
    open_pair,
    open_proposal,
    pay_all,
)

FUNDING_HEIGHT = TIP + 1  # where open_pair confirms the funding


def _in_step(link: Loopback, paid_msat: int) -> None:
    """No money appears or vanishes: the payer's acknowledged total is the payee's best update."""
    assert link.payer.machine.acked_paid_msat == paid_msat
    assert link.payee.machine.paid_msat == paid_msat
    assert link.payer.machine.paid_msat == paid_msat


def _both(link: Loopback, event: BlockConnected | BlockDisconnected) -> None:
    link.payer.handle(event)
    link.payee.handle(event)
    link.deliver()


def test_a_block_above_the_funding_changes_only_the_tip() -> None:
    link = open_pair()
    pay_all(link, [1_500_000])
    _both(link, BlockConnected(FUNDING_HEIGHT + 1))
    link.payer.broadcasts.clear()
    _both(link, BlockDisconnected(FUNDING_HEIGHT + 1))
    assert link.payer.machine.phase is PayerPhase.OPEN and link.payee.machine.phase is PayeePhase.OPEN
    assert link.payer.machine.state.funding_height == FUNDING_HEIGHT
    assert link.payee.machine.state.tip_height == FUNDING_HEIGHT
    assert link.payer.broadcasts == [] and link.payee.broadcasts == []
    _in_step(link, 1_500_000)


def test_funding_that_leaves_the_chain_reopens_the_channel_at_its_new_depth() -> None:
    link = open_pair()
    pay_all(link, [1_000_000, 2_000_000])
    link.payer.broadcasts.clear()
    funding = link.payer.machine.funding_tx
    assert funding is not None

    _both(link, BlockDisconnected(FUNDING_HEIGHT))
    assert link.payee.machine.phase is PayeePhase.AWAITING_CONFIRMATION
    assert link.payee.machine.public_state is ChannelState.OPENING
    assert link.payer.machine.phase is PayerPhase.FUNDING_BROADCAST
    assert link.payee.machine.state.funding_height is None and link.payer.machine.state.funding_height is None
    [again] = link.payer.broadcasts
    assert again.kind is TxKind.FUNDING and again.tx == funding
    _in_step(link, 3_000_000)  # payments survive: the best update is kept
    with pytest.raises(CommandRejectedError, match="funding broadcast"):
        link.payer.handle(Pay(1))

    # The new branch: empty blocks, then the funding confirms again one block later than before.
    _both(link, BlockConnected(FUNDING_HEIGHT))
    assert [b.kind for b in link.payer.broadcasts] == [TxKind.FUNDING, TxKind.FUNDING]  # still unconfirmed
    link.payee.notices.clear()
    for side in (link.payer, link.payee):
        side.handle(FundingConfirmed(funding, FUNDING_HEIGHT + 1))
    _both(link, BlockConnected(FUNDING_HEIGHT + 1))  # minimum_depth is 1: open again, micro_sync sent
    assert link.payee.machine.phase is PayeePhase.OPEN and link.payer.machine.phase is PayerPhase.OPEN
    assert [n for n in link.payee.notices if isinstance(n, ChannelOpened)]
    _in_step(link, 3_000_000)
    pay_all(link, [500_000])
    _in_step(link, 3_500_000)


def test_a_deeper_minimum_depth_is_counted_again_from_the_new_block() -> None:
    link = new_pair(replace(CONFIG, minimum_depth=3))
    link.payer.handle(open_proposal())
    link.deliver()
    funding = link.payer.machine.funding_tx
    assert funding is not None
    for side in (link.payer, link.payee):
        side.handle(FundingConfirmed(funding, FUNDING_HEIGHT))
    for height in (FUNDING_HEIGHT, FUNDING_HEIGHT + 1, FUNDING_HEIGHT + 2):
        _both(link, BlockConnected(height))
    assert link.payee.machine.phase is PayeePhase.OPEN and link.payer.machine.phase is PayerPhase.OPEN
    pay_all(link, [4_000_000])
    for height in (FUNDING_HEIGHT + 2, FUNDING_HEIGHT + 1, FUNDING_HEIGHT):
        _both(link, BlockDisconnected(height))
    for side in (link.payer, link.payee):
        side.handle(FundingConfirmed(funding, FUNDING_HEIGHT + 2))
    _both(link, BlockConnected(FUNDING_HEIGHT + 2))
    _both(link, BlockConnected(FUNDING_HEIGHT + 3))
    assert link.payee.machine.phase is PayeePhase.AWAITING_CONFIRMATION  # depth 2 of 3
    _both(link, BlockConnected(FUNDING_HEIGHT + 4))
    assert link.payee.machine.phase is PayeePhase.OPEN and link.payer.machine.phase is PayerPhase.OPEN
    _in_step(link, 4_000_000)


def test_a_settlement_that_leaves_the_chain_is_settling_again() -> None:
    link = open_pair()
    pay_all(link, [12_000_000])
    link.payee.handle(Settle())
    [settlement] = link.payee.broadcasts
    for side in (link.payer, link.payee):
        side.handle(FundingSpent(settlement.tx, FUNDING_HEIGHT + 5))
    assert link.payee.machine.public_state is ChannelState.SETTLED
    assert link.payee.machine.state.closing_height == FUNDING_HEIGHT + 5

    _both(link, BlockDisconnected(FUNDING_HEIGHT + 5))
    assert link.payee.machine.phase is PayeePhase.SETTLING
    assert link.payee.machine.state.closing_txid is None
    assert [b.tx for b in link.payee.broadcasts] == [settlement.tx, settlement.tx]  # sent again
    assert link.payer.machine.phase is PayerPhase.OPEN
    _in_step(link, 12_000_000)
    for side in (link.payer, link.payee):
        side.handle(FundingSpent(settlement.tx, FUNDING_HEIGHT + 6))
    assert link.payer.machine.public_state is ChannelState.SETTLED
    assert link.payee.machine.public_state is ChannelState.SETTLED


def test_a_refund_that_leaves_the_chain_is_refunding_again() -> None:
    link = open_pair()
    pay_all(link, [100_000])  # below dust: the payee has nothing to settle, the payer refunds
    link.payer.broadcasts.clear()
    link.payer.handle(BlockConnected(REFUND_HEIGHT))
    [refund] = link.payer.broadcasts
    assert refund.kind is TxKind.REFUND
    for side in (link.payer, link.payee):
        side.handle(FundingSpent(refund.tx, REFUND_HEIGHT + 1))
    assert link.payer.machine.public_state is ChannelState.REFUNDED

    _both(link, BlockDisconnected(REFUND_HEIGHT + 1))
    assert link.payer.machine.phase is PayerPhase.REFUNDING
    assert [b.tx for b in link.payer.broadcasts] == [refund.tx, refund.tx]
    assert link.payee.machine.phase is PayeePhase.OPEN  # its funding is still deep enough
    assert link.payee.broadcasts == []  # nothing worth settling
    _in_step(link, 100_000)


def test_a_refunded_payee_with_a_paid_update_settles_when_the_refund_leaves() -> None:
    link = open_pair()
    pay_all(link, [5_000_000])
    refund = link.payer.machine.signed_refund()
    # The payee slept through the deadline; the refund confirmed first.
    link.payee.handle(FundingSpent(refund, REFUND_HEIGHT + 1))
    assert link.payee.machine.public_state is ChannelState.REFUNDED
    link.payee.handle(BlockDisconnected(REFUND_HEIGHT + 1))
    # Back at a tip past the deadline with 5000 sat owed: the payee puts its settlement out at once.
    assert link.payee.machine.phase is PayeePhase.SETTLING
    [settlement] = link.payee.broadcasts
    assert settlement.kind is TxKind.SETTLEMENT
    assert link.payee.machine.state.tip_height == REFUND_HEIGHT  # the deadline was 6 blocks earlier


def test_a_refund_in_the_funding_block_sends_both_again_in_order() -> None:
    link = open_pair()
    funding = link.payer.machine.funding_tx
    assert funding is not None
    refund = link.payer.machine.signed_refund()
    link.payer.handle(BlockConnected(REFUND_HEIGHT))
    link.payer.handle(FundingSpent(refund, REFUND_HEIGHT + 1))
    link.payer.broadcasts.clear()
    link.payer.handle(BlockDisconnected(REFUND_HEIGHT + 1))
    link.payer.handle(BlockDisconnected(FUNDING_HEIGHT))  # the whole branch since the funding
    assert [b.kind for b in link.payer.broadcasts] == [TxKind.REFUND, TxKind.FUNDING]
    link.payer.broadcasts.clear()
    link.payer.handle(BlockConnected(REFUND_HEIGHT + 1))
    assert [b.tx for b in link.payer.broadcasts] == [funding, refund]  # the parent first


def test_reorg_state_survives_a_restart_and_old_blobs_still_load() -> None:
    link = open_pair()
    pay_all(link, [12_000_000])
    link.payee.handle(Settle())
    [settlement] = link.payee.broadcasts
    link.payee.handle(FundingSpent(settlement.tx, FUNDING_HEIGHT + 5))
    state = link.payee.machine.state
    assert decode_state(encode_state(state)) == state and state.closing_height == FUNDING_HEIGHT + 5
    restored = PayeeChannel.from_bytes(encode_state(state), PAYEE_KEY, CONFIG)
    restored.handle(BlockDisconnected(FUNDING_HEIGHT + 5))
    assert restored.phase is PayeePhase.SETTLING

    # A blob written before closing_height existed reads as "height unknown".
    old = json.loads(encode_state(link.payer.machine.state))
    del old["closing_height"]
    payer_blob = json.dumps(old, sort_keys=True, separators=(",", ":")).encode()
    assert PayerChannel.from_bytes(payer_blob, PAYER_KEY).state.closing_height is None


def test_negative_heights_are_refused_and_change_nothing() -> None:
    link = open_pair()
    for side in (link.payer, link.payee):
        before = side.machine.state
        with pytest.raises(ChainEventError, match="negative"):
            side.machine.handle(BlockDisconnected(-1))
        assert side.machine.state is before
