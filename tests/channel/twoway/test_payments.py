"""Many payments in both directions with both sides updating at once.

Every step is checked by the harness (persist-before-send, state round trip through its bytes,
local + remote + HTLCs == capacity in every commitment view of each side); at quiescence both
sides must hold byte-identical commitments, and the balances must be exactly what the fulfilled
payments imply.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ampere.channel.twoway import (
    ChannelType,
    ErrorResponse,
    FailHtlc,
    FulfillHtlc,
    HtlcOffered,
    SignCommitment,
    UpdateFeeCommand,
)
from tests.channel.twoway.harness import Pair, Peer, open_pair

INITIAL_ALICE = 600_000_000
INITIAL_BOB = 400_000_000


class Ledgerbook:
    """What the payers expect: amounts offered by id, and which settled how."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.offered: dict[tuple[str, int], int] = {}
        self.count = {"alice": 0, "bob": 0}

    def pay(self, payer: Peer, amount: int, sign: bool) -> None:
        for action in self.pair.pay(payer, amount, sign=sign):
            if isinstance(action, HtlcOffered):
                self.offered[(payer.name, action.htlc_id)] = action.amount_msat
                self.count[payer.name] += 1

    def expected_alice_balance(self) -> int:
        paid_by_alice = sum(self.offered[("alice", f.htlc_id)] for f in self.pair.alice.fulfilled)
        paid_by_bob = sum(self.offered[("bob", f.htlc_id)] for f in self.pair.bob.fulfilled)
        return INITIAL_ALICE - paid_by_alice + paid_by_bob


def _settle(peer: Peer, pair: Pair, fail: bool) -> None:
    if not peer.received:
        return
    htlc = peer.received.pop(0)
    if fail:
        peer.handle(FailHtlc(htlc.htlc_id, b"no thanks"))
    else:
        peer.handle(FulfillHtlc(htlc.htlc_id, pair.preimages[htlc.payment_hash]))


def _no_channel_failures(pair: Pair) -> None:
    for peer in (pair.alice, pair.bob):
        assert all(error.response is ErrorResponse.IGNORE for error in peer.errors), peer.errors


def _finish(book: Ledgerbook) -> None:
    pair = book.pair
    for peer in (pair.alice, pair.bob):
        peer.handle(SignCommitment())
    pair.flush()
    _no_channel_failures(pair)
    pair.assert_agree()
    for peer in (pair.alice, pair.bob):
        ledger = peer.state.ledger
        assert ledger is not None
        assert not ledger.htlcs and not ledger.fee_updates, "an HTLC is stuck"
    alice = pair.alice.state.ledger
    assert alice is not None
    assert alice.local_balance_msat == book.expected_alice_balance()


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), st.booleans(), st.integers(1_000_000, 40_000_000), st.booleans()),
        st.tuples(st.just("sign"), st.booleans()),
        st.tuples(st.just("deliver"), st.booleans(), st.integers(1, 4)),
        st.tuples(st.just("settle"), st.booleans(), st.booleans()),
        st.tuples(st.just("fee"), st.integers(1000, 6000)),
    ),
    max_size=40,
)


@settings(deadline=None)
@given(ops=OPS, anchors=st.booleans())
def test_interleaved_updates_keep_both_sides_in_agreement(ops: list[tuple], anchors: bool) -> None:  # type: ignore[type-arg]
    channel_type = ChannelType.ANCHORS if anchors else ChannelType.STATIC_REMOTEKEY
    pair = open_pair(channel_type, 1_000_000, INITIAL_BOB)
    book = Ledgerbook(pair)
    for op in ops:
        kind = op[0]
        if kind == "fee":
            pair.alice.handle(UpdateFeeCommand(op[1]))
            continue
        peer = pair.alice if op[1] else pair.bob
        if kind == "pay":
            book.pay(peer, op[2], op[3])
        elif kind == "sign":
            peer.handle(SignCommitment())
        elif kind == "deliver":
            for _ in range(op[2]):
                if peer.outbox:
                    pair.deliver_one(peer)
        else:
            _settle(peer, pair, op[2])
        _no_channel_failures(pair)
    _finish(book)


@pytest.mark.slow
@settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32))
def test_a_thousand_payments_each_way_with_concurrent_updates(seed: int) -> None:
    rng = random.Random(seed)
    pair = open_pair(ChannelType.ANCHORS, 1_000_000, INITIAL_BOB)
    book = Ledgerbook(pair)
    while min(book.count.values()) < 1000:
        roll = rng.random()
        peer = pair.alice if rng.random() < 0.5 else pair.bob
        in_flight = len(peer.state.ledger.htlcs) if peer.state.ledger else 0
        if roll < 0.25 and in_flight < 24:
            # Dust and non-dust amounts alike; a refused add (a limit reached) is retried later.
            book.pay(
                peer,
                rng.choice((rng.randrange(1_000, 500_000), rng.randrange(600_000, 5_000_000))),
                sign=False,
            )
        elif roll < 0.4:
            peer.handle(SignCommitment())
        elif roll < 0.55:
            _settle(peer, pair, fail=rng.random() < 0.05)
        else:
            for _ in range(rng.randrange(1, 8)):
                if peer.outbox:
                    pair.deliver_one(peer)
    _no_channel_failures(pair)
    _finish(book)
    assert len(pair.alice.fulfilled) + len(pair.alice.failed) >= 1000
    assert len(pair.bob.fulfilled) + len(pair.bob.failed) >= 1000
