"""channel_reestablish: a disconnection (or crash) at every point of a commitment dance, data
loss protection, and a peer lying about our secrets."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ampere.channel.twoway import (
    ChannelClosed,
    CloseType,
    ErrorResponse,
    FulfillHtlc,
    FundingSpent,
    HtlcOffered,
    Phase,
    Reconnected,
    SignCommitment,
)
from ampere.channel.twoway.messages import ChannelReestablish, parse_message
from ampere.channel.twoway.state import ChannelStatus, Connection
from ampere.wire import decode_message
from tests.channel.twoway.harness import Pair, Peer, open_pair

INITIAL_BOB = 300_000_000


class Run:
    """A fixed commitment dance, advanced one delivery or settlement at a time."""

    def __init__(self) -> None:
        self.pair = open_pair(push_msat=INITIAL_BOB)
        self.offered: dict[tuple[str, int], int] = {}
        self.last_actor: Peer | None = None
        self._pay(self.pair.alice, 10_000_000, sign=False)
        self._pay(self.pair.alice, 2_000_000, sign=True)  # 2_000 sat: trimmed on both sides
        self._pay(self.pair.bob, 5_000_000, sign=True)

    def _pay(self, peer: Peer, amount: int, sign: bool) -> None:
        for action in self.pair.pay(peer, amount, sign=sign):
            if isinstance(action, HtlcOffered):
                self.offered[(peer.name, action.htlc_id)] = amount

    def step(self) -> bool:
        pair = self.pair
        for peer in (pair.alice, pair.bob):
            if peer.received:
                htlc = peer.received.pop(0)
                peer.handle(FulfillHtlc(htlc.htlc_id, pair.preimages[htlc.payment_hash]))
                peer.handle(SignCommitment())
                self.last_actor = peer
                return True
        for peer in (pair.alice, pair.bob):
            if peer.outbox:
                pair.deliver_one(peer)
                self.last_actor = pair.other(peer)
                return True
        return False

    def finish(self) -> None:
        pair = self.pair
        pair.reconnect()
        pair.flush()
        for peer in (pair.alice, pair.bob):
            assert all(e.response is ErrorResponse.IGNORE for e in peer.errors), peer.errors
            assert peer.state.connection is Connection.LIVE
            ledger = peer.state.ledger
            assert ledger is not None and not ledger.htlcs, "an HTLC is stuck"
        pair.assert_agree()
        paid_by_alice = sum(self.offered[("alice", i)] for i in {f.htlc_id for f in pair.alice.fulfilled})
        paid_by_bob = sum(self.offered[("bob", i)] for i in {f.htlc_id for f in pair.bob.fulfilled})
        ledger = pair.alice.state.ledger
        assert ledger is not None
        assert ledger.remote_balance_msat == INITIAL_BOB + paid_by_alice - paid_by_bob


def _dance_length() -> int:
    run = Run()
    steps = 0
    while run.step():
        steps += 1
    return steps


DANCE_STEPS = _dance_length()
VARIANTS = ["disconnect", "crash alice", "crash bob", "crash both", "crash mid-write"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cut", range(DANCE_STEPS + 1))
def test_reconnect_at_every_point_of_the_dance(cut: int, variant: str) -> None:
    run = Run()
    pair = run.pair
    for _ in range(cut):
        assert run.step()
    last_mover = None
    if variant == "crash mid-write" and cut > 0:
        # The peer that acted last dies while writing the state that action produced: the
        # state never becomes durable and the messages waiting for it never leave.
        peer = run.last_actor
        assert peer is not None
        # When that action changed no state there is no write to interrupt: the crash is a plain one.
        peer.crash_and_restore(before_last_persist=bool(peer.last_persisted))
        last_mover = peer
    pair.disconnect()
    for peer in (pair.alice, pair.bob):
        if peer is not last_mover and (variant == "crash both" or variant == f"crash {peer.name}"):
            peer.crash_and_restore()
    run.finish()


def test_disconnect_twice_in_a_row() -> None:
    run = Run()
    for _ in range(5):
        run.step()
    run.pair.disconnect()
    run.pair.reconnect()
    run.pair.deliver_one(run.pair.alice)  # only Alice's channel_reestablish gets through
    run.pair.disconnect()
    run.finish()


def test_updates_made_while_disconnected_are_sent_after_reestablish() -> None:
    pair = open_pair(push_msat=INITIAL_BOB)
    pair.pay(pair.alice, 10_000_000)
    pair.flush(fulfill=False)
    pair.disconnect()
    htlc = pair.bob.received.pop(0)
    pair.bob.handle(FulfillHtlc(htlc.htlc_id, pair.preimages[htlc.payment_hash]))
    assert not pair.bob.outbox
    pair.reconnect()
    pair.flush()
    assert pair.alice.fulfilled
    pair.assert_agree()


def test_channel_ready_is_retransmitted_when_nothing_happened() -> None:
    pair = open_pair()
    pair.disconnect()
    pair.reconnect()
    pair.deliver_one(pair.alice)
    names = [decode_message(d).name for d in pair.bob.outbox]
    assert names == ["channel_reestablish", "channel_ready"]
    pair.flush()
    pair.pay(pair.alice, 1_000_000)
    pair.flush()
    pair.pay(pair.alice, 1_000_000)
    pair.flush()
    pair.disconnect()
    pair.reconnect()
    pair.deliver_one(pair.alice)
    assert [decode_message(d).name for d in pair.bob.outbox] == ["channel_reestablish"]
    pair.flush()


def test_restored_from_an_old_backup_the_node_does_not_broadcast() -> None:
    pair = open_pair(push_msat=INITIAL_BOB)
    pair.pay(pair.alice, 10_000_000)
    pair.flush()
    backup = pair.alice.persisted
    assert backup is not None
    for _ in range(3):
        pair.pay(pair.alice, 1_000_000)
        pair.pay(pair.bob, 2_000_000)
        pair.flush()
    pair.disconnect()
    pair.alice.crash_and_restore(data=backup)
    pair.alice.broadcasts.clear()  # the funding transaction, long ago
    pair.reconnect()
    pair.flush()
    alice, bob = pair.alice, pair.bob
    assert alice.state.data_loss and alice.state.status is ChannelStatus.FORCE_CLOSING
    assert alice.broadcasts == [], "a stale commitment must never be broadcast"
    closed = [a for a in alice.others if isinstance(a, ChannelClosed)]
    assert closed and closed[-1].closing_txid is None
    # Bob is asked to close, and does, with his newest commitment.
    assert bob.state.status is ChannelStatus.FORCE_CLOSING
    bob_commitment = bob.broadcasts[-1]
    alice.handle(FundingSpent(bob_commitment))
    closed = [a for a in alice.others if isinstance(a, ChannelClosed)]
    assert closed[-1].close_type is CloseType.REMOTE_FORCE


def _reestablish_from(peer: Peer) -> ChannelReestablish:
    for data in peer.outbox:
        message = parse_message(decode_message(data))
        if isinstance(message, ChannelReestablish):
            return message
    raise AssertionError("no channel_reestablish")


def _reconnect_with(pair: Pair, forged: ChannelReestablish) -> None:
    pair.disconnect()
    pair.reconnect()
    pair.alice.outbox.clear()
    pair.bob.handle(forged)


def test_peer_lying_about_our_secret_fails_the_channel() -> None:
    pair = open_pair(push_msat=INITIAL_BOB)
    for _ in range(3):
        pair.pay(pair.alice, 1_000_000)
        pair.flush()
    pair.disconnect()
    pair.reconnect()
    honest = _reestablish_from(pair.alice)
    pair.alice.outbox.clear()
    pair.bob.handle(replace(honest, your_last_per_commitment_secret=bytes(31) + b"\x07"))
    assert pair.bob.errors[-1].response is ErrorResponse.CLOSE
    assert "secret" in pair.bob.errors[-1].reason
    assert pair.bob.state.phase is Phase.FORCE_CLOSING


def test_peer_claiming_a_future_state_with_a_bad_secret_fails_the_channel() -> None:
    pair = open_pair(push_msat=INITIAL_BOB)
    pair.pay(pair.alice, 1_000_000)
    pair.flush()
    pair.disconnect()
    pair.reconnect()
    honest = _reestablish_from(pair.alice)
    pair.alice.outbox.clear()
    pair.bob.handle(replace(honest, next_revocation_number=honest.next_revocation_number + 5))
    assert pair.bob.errors[-1].response is ErrorResponse.CLOSE
    assert pair.bob.state.phase is Phase.FORCE_CLOSING
    assert not pair.bob.state.data_loss


def test_next_commitment_number_zero_fails_the_channel() -> None:
    pair = open_pair(push_msat=INITIAL_BOB)
    pair.disconnect()
    pair.reconnect()
    honest = _reestablish_from(pair.alice)
    pair.alice.outbox.clear()
    pair.bob.handle(replace(honest, next_commitment_number=0))
    assert pair.bob.state.phase is Phase.FORCE_CLOSING


def test_messages_before_reestablish_disconnect() -> None:
    pair = open_pair(push_msat=INITIAL_BOB)
    pair.disconnect()
    pair.alice.handle(Reconnected())
    pair.bob.handle(Reconnected())
    pair.bob.outbox.clear()
    actions = pair.bob.handle(SignCommitment())
    assert actions == []
    from ampere.channel.twoway.messages import UpdateFee

    actions = pair.bob.handle(UpdateFee(pair.bob.state.channel_id, 3000))
    assert actions[-1].response is ErrorResponse.DISCONNECT  # type: ignore[union-attr]
    assert pair.bob.state.phase is Phase.NORMAL


STORM = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), st.booleans(), st.integers(500_000, 20_000_000)),
        st.tuples(st.just("step"), st.integers(1, 6)),
        st.tuples(st.just("reconnect")),
        st.tuples(st.just("crash"), st.booleans(), st.booleans()),
    ),
    max_size=30,
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=STORM)
def test_payment_storm_with_crashes_and_reconnections(ops: list[tuple]) -> None:  # type: ignore[type-arg]
    """Crash either node at random moments (also mid-write), reconnect, keep paying: the
    channel always re-establishes, nothing gets stuck, and the balances are the payments."""
    run = Run()
    pair = run.pair
    for op in ops:
        if op[0] == "pay":
            if pair.alice.state.is_live and pair.bob.state.is_live:
                run._pay(pair.alice if op[1] else pair.bob, op[2], sign=True)
        elif op[0] == "step":
            for _ in range(op[1]):
                run.step()
        elif op[0] == "reconnect":
            pair.disconnect()
            pair.reconnect()
        else:
            peer = pair.alice if op[1] else pair.bob
            mid_write = op[2] and run.last_actor is peer and peer.last_persisted
            if mid_write and len(peer.outbox) >= peer.last_sent and len(peer.history) >= 2:
                peer.crash_and_restore(before_last_persist=True)
            pair.disconnect()
            peer.crash_and_restore()
            pair.reconnect()
        for peer in (pair.alice, pair.bob):
            assert all(e.response is ErrorResponse.IGNORE for e in peer.errors), peer.errors
    pair.disconnect()
    run.finish()
