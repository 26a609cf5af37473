"""`update_fee` from the opener, in two in-process nodes on one embedded chain (real TCP, SQLite).

The embedded chain's fee estimate is moved; after the next block the opener's node proposes the new
commitment feerate (capped for anchor channels) and both commitments end at it, while a move below
the threshold sends nothing and the non-opener never sends `update_fee`. A rise while the opener is
down is proposed once it is back, and a restart right after a proposal neither loses nor repeats it
with another feerate. Payments keep working throughout; the funds in each channel are conserved.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from ampere.chain.embedded import EmbeddedChain
from ampere.channel.transactions.fees import commitment_base_fee_sat
from ampere.channel.twoway import ChannelConfig
from ampere.channel.twoway.common import Context, local_commitment
from ampere.channel.twoway.ledger import View, snapshot
from ampere.channel.twoway.limits import check_feerate
from ampere.node.channel_fees import CommitmentFeePolicy, latest_feerate
from ampere.wire import Message

from .channel_helpers import (
    Member,
    SentMessages,
    mine,
    offer,
    open_channel,
    preimage,
    unstarted_pair,
    wait_until,
)
from .helpers import async_test

CAPACITY_SAT = 1_000_000
PUSH_MSAT = 400_000_000
PAYMENT_MSAT = 5_000_000


class SentFeeUpdates(SentMessages):
    """Records the feerate of every `update_fee` a member's nodes send (across restarts)."""

    def __init__(self, member: Member) -> None:
        super().__init__(member, frozenset({"update_fee"}))

    @property
    def feerates(self) -> list[int]:
        return [m.get_int("feerate_per_kw") for m in self.sent if isinstance(m, Message)]


async def recorded_channel(alice: Member, bob: Member) -> tuple[SentFeeUpdates, SentFeeUpdates, bytes]:
    """Start both (recording their update_fee) and open a channel from Alice."""
    sent = SentFeeUpdates(alice), SentFeeUpdates(bob)
    await alice.start()
    await bob.start()
    return (*sent, await open_channel(alice, bob, CAPACITY_SAT, PUSH_MSAT))


def set_estimate(chain: EmbeddedChain, sat_per_kw: int) -> None:
    chain.set_fee_estimate(sat_per_kw * 4)  # sat/kvB


async def block_handled(chain: EmbeddedChain, *members: Member) -> None:
    """Mine one block and wait until each member's channels handled it (fee updates included)."""
    tip = await mine(chain, 1, *members)
    for member in members:
        await wait_until(lambda m=member: m.channels.watcher.height >= tip, f"{member.name}'s channels")  # type: ignore[misc]


def settled_at(member: Member, channel_id: bytes, feerate: int) -> bool:
    """Both commitments `member` knows carry `feerate` and no fee update is in flight."""
    ledger = member.channel(channel_id).state.ledger
    assert ledger is not None
    return (
        not ledger.fee_updates
        and not ledger.awaiting_revocation
        and snapshot(ledger, View.LOCAL).feerate_per_kw == feerate
        and snapshot(ledger, View.REMOTE).feerate_per_kw == feerate
    )


async def wait_settled(channel_id: bytes, feerate: int, *members: Member) -> None:
    for member in members:
        await wait_until(lambda m=member: settled_at(m, channel_id, feerate), f"{member.name} at {feerate}")  # type: ignore[misc]


def assert_commitment_fee(member: Member, channel_id: bytes, feerate: int) -> None:
    """The member's own commitment transaction pays the BOLT 3 fee at `feerate` (no HTLCs in it)."""
    managed = member.channel(channel_id)
    state, channel = managed.state, managed.channel
    ledger = state.ledger
    assert ledger is not None and not ledger.htlcs
    tx = local_commitment(state, ledger, Context(channel.signer, channel.config))
    fee = CAPACITY_SAT - tx.tx.total_output_value()  # the anchors are outputs, not fee
    assert fee == commitment_base_fee_sat(feerate, 0, state.commitment_format)


def assert_conserved(member: Member, channel_id: bytes) -> None:
    ledger = member.channel(channel_id).state.ledger
    assert ledger is not None
    for view in (View.LOCAL, View.REMOTE):
        snap = snapshot(ledger, view)
        assert snap.local_msat + snap.remote_msat + snap.htlc_total_msat == CAPACITY_SAT * 1000


async def pay_both_ways(alice: Member, bob: Member, channel_id: bytes, first: int) -> None:
    """An HTLC each way, fulfilled: the channel still carries payments."""
    for n, (sender, receiver) in enumerate(((alice, bob), (bob, alice)), start=first):
        receiver.listener.preimages[preimage_hash(n)] = preimage(n)
        cltv = alice.chain.tip_height() + 40
        await offer(sender, channel_id, PAYMENT_MSAT, n, cltv)
        await wait_until(lambda s=sender, n=n: preimage_hash(n) in s.listener.fulfilled, f"payment {n}")  # type: ignore[misc]


def preimage_hash(n: int) -> bytes:
    return hashlib.sha256(preimage(n)).digest()


async def open_second(alice: Member, bob: Member, *, anchors: bool) -> bytes:
    opened = await alice.channels.open_channel(bob.running.node_id, CAPACITY_SAT, PUSH_MSAT, anchors=anchors)
    await wait_until(lambda: len(bob.channels.list_channels()) == 2, "bob to see the second channel")
    await mine(alice.chain, 3, alice, bob)
    await wait_until(lambda: len(alice.channels.usable_channels()) == 2, "two usable channels")
    return opened.channel_id


# --- the policy, alone --------------------------------------------------------------------------------


def test_policy_targets_the_estimate_with_a_floor_and_an_anchor_cap() -> None:
    policy = CommitmentFeePolicy()
    assert policy.target(100, anchors=False) == 253
    assert policy.target(100, anchors=True) == 253
    assert policy.target(4000, anchors=False) == 4000
    assert policy.target(4000, anchors=True) == 2500
    assert policy.target(2000, anchors=True) == 2000
    # Never under half the estimate: the peer judges our feerate against its own estimate.
    assert policy.target(20_001, anchors=True) == 10_001
    assert policy.target(20_001, anchors=False) == 20_001
    assert policy.target(2_000_000, anchors=False) == 1_000_000  # our channels' own maximum


# Up to four times our maximum feerate: past that no feerate we may send is one a peer accepts.
@given(st.integers(min_value=1, max_value=4_000_000), st.booleans())
def test_policy_target_is_always_acceptable_to_a_peer_with_the_same_estimate(
    estimate: int, anchors: bool
) -> None:
    """Whatever the chain reports, the target is at least the floor, never above the estimate (or the
    floor), and within the 25 %-1000 % an Ampere peer with the same estimate accepts."""
    policy = CommitmentFeePolicy()
    target = policy.target(estimate, anchors=anchors)
    config = ChannelConfig()
    assert 253 <= target <= min(max(253, estimate), config.max_feerate_per_kw)
    assert check_feerate(target, config, max(253, estimate)) is None
    if anchors:
        assert target <= max(policy.anchor_max_feerate_per_kw, -(-estimate // 2))
    else:
        assert target == min(max(253, estimate), config.max_feerate_per_kw)
    assert not policy.wants_update(target, target)


def test_policy_updates_only_past_the_threshold() -> None:
    policy = CommitmentFeePolicy()
    assert not policy.wants_update(1000, 1000)
    assert not policy.wants_update(1000, 1250)
    assert policy.wants_update(1000, 1251)
    assert not policy.wants_update(1000, 750)
    assert policy.wants_update(1000, 749)


# --- two nodes ------------------------------------------------------------------------------------------


@async_test
async def test_opener_follows_the_estimate_and_payments_continue(tmp_path: Path) -> None:
    async with unstarted_pair(tmp_path) as (chain, alice, bob):
        sent_by_alice, sent_by_bob, plain = await recorded_channel(alice, bob)
        anchor = await open_second(alice, bob, anchors=True)
        opened_at = alice.channels.watcher.feerate_per_kw
        for channel_id in (plain, anchor):
            await wait_settled(channel_id, opened_at, alice, bob)

        # +20 %: below the threshold, nothing is proposed.
        set_estimate(chain, opened_at * 120 // 100)
        await block_handled(chain, alice, bob)
        await pay_both_ways(alice, bob, plain, 1)
        assert sent_by_alice.feerates == [] and sent_by_bob.feerates == []
        for channel_id in (plain, anchor):
            assert settled_at(alice, channel_id, opened_at) and settled_at(bob, channel_id, opened_at)
            assert latest_feerate(alice.channel(channel_id).state.ledger) == opened_at  # type: ignore[arg-type]

        # x8: the plain channel follows the estimate, the anchor channel stops at its cap.
        high = opened_at * 8
        set_estimate(chain, high)
        await block_handled(chain, alice, bob)
        await wait_settled(plain, high, alice, bob)
        await wait_settled(anchor, 2500, alice, bob)
        assert sorted(sent_by_alice.feerates) == [2500, high]
        for member in (alice, bob):
            assert_commitment_fee(member, plain, high)
            assert_commitment_fee(member, anchor, 2500)
        await pay_both_ways(alice, bob, plain, 3)
        await pay_both_ways(alice, bob, anchor, 5)

        # Back down: both channels lower their feerate again.
        set_estimate(chain, opened_at)
        await block_handled(chain, alice, bob)
        for channel_id in (plain, anchor):
            await wait_settled(channel_id, opened_at, alice, bob)
            for member in (alice, bob):
                assert_commitment_fee(member, channel_id, opened_at)
                assert_conserved(member, channel_id)
        assert sorted(sent_by_alice.feerates) == [opened_at, opened_at, 2500, high]
        assert sent_by_bob.feerates == [], "the non-opener sent update_fee"
        await pay_both_ways(alice, bob, plain, 7)


@async_test
async def test_a_rise_while_the_opener_is_down_is_proposed_once_after_its_restart(tmp_path: Path) -> None:
    async with unstarted_pair(tmp_path) as (chain, alice, bob):
        sent_by_alice, sent_by_bob, channel_id = await recorded_channel(alice, bob)
        opened_at = alice.channels.watcher.feerate_per_kw

        await alice.stop()
        high = opened_at * 3
        set_estimate(chain, high)
        await block_handled(chain, bob)
        assert settled_at(bob, channel_id, opened_at)  # bob does not open the channel's fee

        await alice.start()
        await wait_settled(channel_id, high, alice, bob)
        assert sent_by_alice.feerates == [high]
        await pay_both_ways(alice, bob, channel_id, 1)

        # Restarted again with nothing new: the channel reestablishes and no update_fee follows.
        await alice.stop()
        await alice.start()
        await wait_until(lambda: alice.channels.usable_channels(), "the channel reestablished")
        await pay_both_ways(alice, bob, channel_id, 3)
        assert settled_at(alice, channel_id, high) and settled_at(bob, channel_id, high)
        assert sent_by_alice.feerates == [high] and sent_by_bob.feerates == []
        assert_conserved(alice, channel_id)
        assert_conserved(bob, channel_id)


@async_test
async def test_a_restart_right_after_a_proposal_neither_loses_nor_changes_it(tmp_path: Path) -> None:
    async with unstarted_pair(tmp_path) as (chain, alice, bob):
        sent_by_alice, sent_by_bob, channel_id = await recorded_channel(alice, bob)
        opened_at = alice.channels.watcher.feerate_per_kw

        high = opened_at * 2
        set_estimate(chain, high)
        await alice.channels.watcher.refresh_feerate()
        # Proposed and stopped in the same turn: whatever was stored or sent, the restart finishes it.
        assert alice.channels.fees.maybe_update(alice.channel(channel_id)) == high
        await alice.stop()
        await alice.start()
        await wait_settled(channel_id, high, alice, bob)
        assert sent_by_alice.feerates and set(sent_by_alice.feerates) == {high}
        assert sent_by_bob.feerates == []
        await pay_both_ways(alice, bob, channel_id, 1)
        assert_conserved(alice, channel_id)
        assert_conserved(bob, channel_id)
        for member in (alice, bob):
            assert_commitment_fee(member, channel_id, high)
