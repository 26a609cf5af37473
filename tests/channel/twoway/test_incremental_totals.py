"""The running view totals (`totals`) against a from-scratch recomputation.

Over random interleavings of adds from both sides (dust and non-dust), fulfils, fails, fee
changes, commitment_signed/revoke_and_ack deliveries, reconnections and restarts, every ledger
either side holds must have totals equal to what `ledger.snapshot` and the BOLT 3 trimming rules
give: the totals the transitions derived incrementally (when present), and those computed in one
pass.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from ampere.channel.transactions.commitment import untrimmed_htlcs
from ampere.channel.twoway import (
    AddHtlc,
    ChannelConfig,
    ChannelType,
    CommandError,
    FailHtlc,
    FulfillHtlc,
    SignCommitment,
    UpdateFeeCommand,
)
from ampere.channel.twoway.ledger import (
    View,
    commitment_fee_msat,
    dust_exposure_msat,
    snapshot,
    trimmed_keys,
)
from ampere.channel.twoway.state import ChannelState, Ledger
from ampere.channel.twoway.totals import (
    LedgerTotals,
    TrimParams,
    ViewTotals,
    compute_totals,
    ledger_totals,
)
from tests.channel.twoway.harness import ONION, Pair, Peer, open_pair, payment_hash, preimage_for

MULTIPLIER = ChannelConfig().fee_spike_multiplier


def expected_view(state: ChannelState, ledger: Ledger, view: View) -> dict[str, int]:
    snap = snapshot(ledger, view)
    local, remote = state.require_params()
    dust_limit = local.dust_limit_sat if view.owner_is_local else remote.dust_limit_sat
    fmt = state.commitment_format
    spike = snap.feerate_per_kw * MULTIPLIER
    return {
        "feerate": snap.feerate_per_kw,
        "local": snap.local_msat,
        "remote": snap.remote_msat,
        "ours_count": len(snap.offered),
        "ours_msat": sum(entry.amount_msat for entry in snap.offered),
        "theirs_count": len(snap.received),
        "theirs_msat": sum(entry.amount_msat for entry in snap.received),
        "untrimmed": len(untrimmed_htlcs(snap.owner_htlcs(), snap.feerate_per_kw, dust_limit, fmt)),
        "dust": dust_exposure_msat(state, snap),
        "spike_untrimmed": len(untrimmed_htlcs(snap.owner_htlcs(), spike, dust_limit, fmt)),
        "fee": commitment_fee_msat(state, snap),
        "spike_fee": commitment_fee_msat(state, snap, feerate_per_kw=spike, extra_htlcs=1),
    }


def actual_view(totals: ViewTotals) -> dict[str, int]:
    return {
        "feerate": totals.feerate_per_kw,
        "local": totals.local_msat,
        "remote": totals.remote_msat,
        "ours_count": totals.ours_count,
        "ours_msat": totals.ours_msat,
        "theirs_count": totals.theirs_count,
        "theirs_msat": totals.theirs_msat,
        "untrimmed": totals.untrimmed_count,
        "dust": totals.dust_msat,
        "spike_untrimmed": totals.spike_untrimmed_count,
        "fee": totals.commitment_fee_msat(),
        "spike_fee": totals.spike_fee_msat(extra_htlcs=1),
    }


def assert_totals_match(state: ChannelState, ledger: Ledger, totals: LedgerTotals) -> None:
    for view in View:
        got = totals.view(view)
        assert actual_view(got) == expected_view(state, ledger, view), view
        snap = snapshot(ledger, view)
        trimmed = trimmed_keys(state, snap)
        for entry in snap.htlcs:
            assert got.is_trimmed(entry) == (entry.key in trimmed), (view, entry.key)


@dataclass
class Checker:
    """Checks both peers' ledgers after every step; counts the incremental totals it saw."""

    derived: int = 0

    def check(self, peer: Peer) -> None:
        state = peer.state
        ledger = state.ledger
        if ledger is None:
            return
        params = TrimParams.of(state, MULTIPLIER)
        memo = ledger.totals_memo
        if isinstance(memo, LedgerTotals) and memo.describes(ledger, params):
            # What the transitions carried forward: derived from the previous ledger's totals.
            assert_totals_match(state, ledger, memo)
            self.derived += 1
        assert_totals_match(state, ledger, compute_totals(ledger, params))
        # Memoise, so that the next add or removal derives its totals from these.
        assert ledger_totals(state, ledger, MULTIPLIER) is ledger.totals_memo


class Driver:
    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.checker = Checker()

    def peer(self, alice: bool) -> Peer:
        return self.pair.alice if alice else self.pair.bob

    def after(self) -> None:
        self.checker.check(self.pair.alice)
        self.checker.check(self.pair.bob)

    def add(self, alice: bool, amount_msat: int) -> None:
        pair = self.pair
        preimage = preimage_for(pair.payments)
        pair.payments += 1
        pair.preimages[payment_hash(preimage)] = preimage
        with contextlib.suppress(CommandError):  # over a limit: refused, the state unchanged
            self.peer(alice).handle(AddHtlc(amount_msat, payment_hash(preimage), 600, ONION))

    def settle(self, alice: bool, fulfil: bool) -> None:
        peer = self.peer(alice)
        if not peer.received:
            return
        htlc = peer.received.pop(0)
        if fulfil:
            peer.handle(FulfillHtlc(htlc.htlc_id, self.pair.preimages[htlc.payment_hash]))
        else:
            peer.handle(FailHtlc(htlc.htlc_id, b"\x00" * 32))

    def sign(self, alice: bool) -> None:
        self.peer(alice).handle(SignCommitment())

    def deliver(self, alice: bool) -> None:
        sender = self.peer(alice)
        if sender.outbox:
            self.pair.deliver_one(sender)

    def deliver_all(self) -> None:
        """Both sides deliver until quiet (without settling), one check per message."""
        pair = self.pair
        while pair.alice.outbox or pair.bob.outbox:
            self.deliver(bool(pair.alice.outbox))
            self.after()

    def fee(self, feerate: int) -> None:
        with contextlib.suppress(CommandError):
            self.pair.alice.handle(UpdateFeeCommand(feerate))

    def reconnect(self) -> None:
        self.pair.disconnect()
        self.pair.reconnect()
        self.pair.flush(fulfill=False)

    def restart(self, alice: bool) -> None:
        self.pair.disconnect()
        self.peer(alice).crash_and_restore()
        self.pair.reconnect()
        self.pair.flush(fulfill=False)


# Around the trimming threshold at the test feerate (HTLC-timeout fee 1657 sat + dust limit 546
# sat without anchors; 546 sat with them), and well above it.
AMOUNTS = st.sampled_from(
    [600_000, 1_000_000, 2_100_000, 2_203_000, 2_204_000, 2_300_000, 5_000_000, 40_000_000]
)
Op = tuple[str, bool | None, int | bool | None]
OPS = st.one_of(
    st.tuples(st.just("add"), st.booleans(), AMOUNTS),
    st.tuples(st.just("settle"), st.booleans(), st.booleans()),
    st.tuples(st.just("sign"), st.booleans(), st.none()),
    st.tuples(st.just("deliver"), st.booleans(), st.none()),
    st.tuples(st.just("deliver_all"), st.none(), st.none()),
    st.tuples(st.just("settle"), st.booleans(), st.booleans()),
    st.tuples(st.just("fee"), st.none(), st.sampled_from([253, 1200, 2500, 6000])),
    st.tuples(st.just("reconnect"), st.none(), st.none()),
    st.tuples(st.just("restart"), st.booleans(), st.none()),
)


def run(driver: Driver, ops: list[Op]) -> None:
    driver.after()
    for name, who, arg in ops:
        if name == "add":
            assert isinstance(who, bool) and isinstance(arg, int)
            driver.add(who, arg)
        elif name == "settle":
            assert isinstance(who, bool) and isinstance(arg, bool)
            driver.settle(who, arg)
        elif name == "sign":
            assert isinstance(who, bool)
            driver.sign(who)
        elif name == "deliver":
            assert isinstance(who, bool)
            driver.deliver(who)
        elif name == "deliver_all":
            driver.deliver_all()
        elif name == "fee":
            assert isinstance(arg, int)
            driver.fee(arg)
        elif name == "reconnect":
            driver.reconnect()
        else:
            assert isinstance(who, bool)
            driver.restart(who)
        driver.after()


@settings(max_examples=40)
@given(anchors=st.booleans(), ops=st.lists(OPS, max_size=60))
def test_totals_equal_a_full_recomputation(anchors: bool, ops: list[Op]) -> None:
    channel_type = ChannelType.ANCHORS if anchors else ChannelType.STATIC_REMOTEKEY
    run(Driver(open_pair(channel_type, push_msat=400_000_000)), ops)


def test_pipelined_adds_derive_their_totals() -> None:
    """A batch of adds, removals arriving in between, each ledger's totals derived from the
    previous ones (no full pass), and still equal to the recomputation."""
    driver = Driver(open_pair(push_msat=400_000_000))
    pair = driver.pair
    for round_ in range(3):
        for i in range(12):
            driver.add(True, 2_203_000 + 1000 * (i % 3 - 1))
            driver.after()
            driver.add(False, 3_000_000)
            driver.after()
        driver.sign(True)
        driver.sign(False)
        driver.deliver_all()
        driver.checker.derived = 0
        for _ in range(5):
            driver.add(True, 2_500_000 + round_)
            driver.after()
        # Every add after the memoised ledger derived its totals from it.
        assert driver.checker.derived >= 10
        driver.sign(True)
        driver.deliver_all()
        driver.checker.derived = 0
        while pair.alice.received or pair.bob.received:
            driver.settle(bool(pair.alice.received), fulfil=len(pair.bob.received) % 2 == 0)
            driver.after()
        # Each removal derived its ledger's totals too (the sender's; the other side had none).
        assert driver.checker.derived >= 24
        driver.sign(True)
        driver.sign(False)
        driver.deliver_all()
        while pair.alice.outbox or pair.bob.outbox or pair.alice.received or pair.bob.received:
            pair.flush()
        driver.after()
    alice, bob = pair.alice.state.ledger, pair.bob.state.ledger
    assert alice is not None and bob is not None
    assert not alice.htlcs and not bob.htlcs
    assert alice.local_balance_msat + alice.remote_balance_msat == 1_000_000_000
