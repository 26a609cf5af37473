"""Running totals of every commitment view: balances, HTLC counts and amounts, untrimmed outputs
and dust, kept up to date update by update so that a limit check costs O(1), not a scan of every
HTLC in flight (with a hundred payments pipelined, the scans made each add O(n) and a batch O(n²)).

The totals hang on the ledger they describe (`Ledger.totals_memo`, never persisted) together with
a stamp of what they were computed from: the HTLC and fee-update tuples themselves (by identity),
the settled balances and feerate, the acknowledgement point, and the channel's trimming
parameters. `ledger_totals` uses them only while the stamp matches; a ledger built any other way
gets fresh totals from one pass over its HTLCs. The transitions that touch a single HTLC (an add,
a removal) derive the new totals from the old with `derive_totals`: subtract the HTLC's old
contribution to each view, add its new one. The property tests check both paths give exactly what
`ledger.snapshot` and the BOLT 3 trimming rules give from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass

from ampere.channel.transactions.fees import (
    ANCHOR_OUTPUT_SAT,
    MAX_FEERATE_PER_KW,
    CommitmentFormat,
    commitment_base_fee_sat,
    htlc_success_fee_sat,
    htlc_timeout_fee_sat,
)
from ampere.channel.twoway.fast_replace import fast_replace
from ampere.channel.twoway.ledger import View, included
from ampere.channel.twoway.state import ChannelState, FeeUpdate, HtlcEntry, Ledger, RemovalKind

__all__ = ["LedgerTotals", "TrimParams", "ViewTotals", "derive_totals", "ledger_totals", "view_totals"]

_VIEWS = tuple(View)
# Above any amount: at a feerate no HTLC-fee computation accepts, every HTLC counts as trimmed
# (the fee computed at that feerate raises, exactly as a full recomputation would).
_NEVER_KEPT = 1 << 64


@dataclass(frozen=True, slots=True)
class TrimParams:
    """What trimming depends on besides the feerate; fixed once a channel is open."""

    local_dust_limit_sat: int
    remote_dust_limit_sat: int
    commitment_format: CommitmentFormat
    fee_spike_multiplier: int

    @classmethod
    def of(cls, state: ChannelState, fee_spike_multiplier: int) -> TrimParams:
        local, remote = state.require_params()
        return cls(local.dust_limit_sat, remote.dust_limit_sat, state.commitment_format, fee_spike_multiplier)


def _kept_from_sat(feerate_per_kw: int, dust_limit_sat: int, fmt: CommitmentFormat, offered: bool) -> int:
    """The smallest whole-satoshi amount that gets an output (BOLT 3 trimming), in the owner's
    direction: `offered` means offered by the commitment's owner (an HTLC-timeout output)."""
    if not 0 <= feerate_per_kw <= MAX_FEERATE_PER_KW:
        return _NEVER_KEPT
    fee = htlc_timeout_fee_sat(feerate_per_kw, fmt) if offered else htlc_success_fee_sat(feerate_per_kw, fmt)
    return dust_limit_sat + fee


@dataclass(frozen=True, slots=True)
class ViewTotals:
    """One commitment view's content from our point of view, as numbers.

    `ours_*` are the HTLCs we offered, `theirs_*` those the peer offered; `untrimmed_count` and
    `dust_msat` are at the view's feerate, `spike_untrimmed_count` at the fee-spike feerate
    (feerate times the configured multiplier). The `*_kept_from_sat` thresholds decide trimming.
    """

    view: View
    feerate_per_kw: int
    local_msat: int
    remote_msat: int
    ours_count: int
    ours_msat: int
    theirs_count: int
    theirs_msat: int
    untrimmed_count: int
    dust_msat: int
    spike_untrimmed_count: int
    ours_kept_from_sat: int
    theirs_kept_from_sat: int
    spike_ours_kept_from_sat: int
    spike_theirs_kept_from_sat: int
    commitment_format: CommitmentFormat
    fee_spike_multiplier: int

    @property
    def htlc_count(self) -> int:
        return self.ours_count + self.theirs_count

    def is_trimmed(self, entry: HtlcEntry) -> bool:
        """Whether `entry` (an HTLC of this view) gets no output at the view's feerate."""
        kept_from = self.ours_kept_from_sat if entry.offered else self.theirs_kept_from_sat
        return entry.amount_msat // 1000 < kept_from

    @property
    def spike_feerate_per_kw(self) -> int:
        return self.feerate_per_kw * self.fee_spike_multiplier

    def commitment_fee_msat(self) -> int:
        """What the opener pays for this commitment (base fee of its untrimmed HTLCs, anchors)."""
        return self._fee_msat(self.feerate_per_kw, self.untrimmed_count)

    def spike_fee_msat(self, extra_htlcs: int = 1) -> int:
        """The commitment fee at the fee-spike feerate with `extra_htlcs` more untrimmed HTLCs
        (BOLT 2's fee spike buffer)."""
        return self._fee_msat(self.spike_feerate_per_kw, self.spike_untrimmed_count + extra_htlcs)

    def _fee_msat(self, feerate_per_kw: int, untrimmed: int) -> int:
        fmt = self.commitment_format
        anchors = 2 * ANCHOR_OUTPUT_SAT if fmt.has_anchors else 0
        return (commitment_base_fee_sat(feerate_per_kw, untrimmed, fmt) + anchors) * 1000

    def opener_msat(self, state: ChannelState) -> int:
        return self.local_msat if state.is_opener else self.remote_msat


def _empty_view(ledger: Ledger, view: View, params: TrimParams) -> ViewTotals:
    feerate = ledger.feerate_per_kw
    for update in ledger.fee_updates:
        if included(update.marks, update.from_us, view, ledger):
            feerate = update.feerate_per_kw
    mine = view.owner_is_local
    dust = params.local_dust_limit_sat if mine else params.remote_dust_limit_sat
    fmt = params.commitment_format
    spike = feerate * params.fee_spike_multiplier
    # An HTLC we offered is offered in our commitment and received in the peer's.
    return ViewTotals(
        view=view,
        feerate_per_kw=feerate,
        local_msat=ledger.local_balance_msat,
        remote_msat=ledger.remote_balance_msat,
        ours_count=0,
        ours_msat=0,
        theirs_count=0,
        theirs_msat=0,
        untrimmed_count=0,
        dust_msat=0,
        spike_untrimmed_count=0,
        ours_kept_from_sat=_kept_from_sat(feerate, dust, fmt, mine),
        theirs_kept_from_sat=_kept_from_sat(feerate, dust, fmt, not mine),
        spike_ours_kept_from_sat=_kept_from_sat(spike, dust, fmt, mine),
        spike_theirs_kept_from_sat=_kept_from_sat(spike, dust, fmt, not mine),
        commitment_format=fmt,
        fee_spike_multiplier=params.fee_spike_multiplier,
    )


# A contribution: (local, remote, ours_count, ours_msat, theirs_count, theirs_msat, untrimmed,
# dust, spike_untrimmed), relative to the settled balances.
_Contribution = tuple[int, int, int, int, int, int, int, int, int]
_NOTHING: _Contribution = (0, 0, 0, 0, 0, 0, 0, 0, 0)


def _contribution(totals: ViewTotals, entry: HtlcEntry, ledger: Ledger) -> _Contribution:
    view = totals.view
    if not included(entry.add, entry.offered, view, ledger):
        return _NOTHING
    amount = entry.amount_msat
    removal = entry.removal
    if removal is not None and included(removal.marks, not entry.offered, view, ledger):
        if removal.kind is not RemovalKind.FULFILL:
            return _NOTHING
        moved = amount if entry.offered else -amount
        return (-moved, moved, 0, 0, 0, 0, 0, 0, 0)
    amount_sat = amount // 1000
    if entry.offered:
        kept = amount_sat >= totals.ours_kept_from_sat
        spike_kept = amount_sat >= totals.spike_ours_kept_from_sat
        return (-amount, 0, 1, amount, 0, 0, int(kept), 0 if kept else amount, int(spike_kept))
    kept = amount_sat >= totals.theirs_kept_from_sat
    spike_kept = amount_sat >= totals.spike_theirs_kept_from_sat
    return (0, -amount, 0, 0, 1, amount, int(kept), 0 if kept else amount, int(spike_kept))


def _apply(totals: ViewTotals, delta: list[int]) -> ViewTotals:
    if not any(delta):
        return totals
    return fast_replace(
        totals,
        local_msat=totals.local_msat + delta[0],
        remote_msat=totals.remote_msat + delta[1],
        ours_count=totals.ours_count + delta[2],
        ours_msat=totals.ours_msat + delta[3],
        theirs_count=totals.theirs_count + delta[4],
        theirs_msat=totals.theirs_msat + delta[5],
        untrimmed_count=totals.untrimmed_count + delta[6],
        dust_msat=totals.dust_msat + delta[7],
        spike_untrimmed_count=totals.spike_untrimmed_count + delta[8],
    )


@dataclass(frozen=True, slots=True)
class LedgerTotals:
    """The totals of all five views and the stamp of the ledger content they describe."""

    htlcs: tuple[HtlcEntry, ...]
    fee_updates: tuple[FeeUpdate, ...]
    remote_acked_upto: int
    local_balance_msat: int
    remote_balance_msat: int
    feerate_per_kw: int
    params: TrimParams
    views: tuple[ViewTotals, ...]

    def describes(self, ledger: Ledger, params: TrimParams) -> bool:
        return (
            self.htlcs is ledger.htlcs
            and self.fee_updates is ledger.fee_updates
            and self.remote_acked_upto == ledger.remote_acked_upto
            and self.local_balance_msat == ledger.local_balance_msat
            and self.remote_balance_msat == ledger.remote_balance_msat
            and self.feerate_per_kw == ledger.feerate_per_kw
            and self.params == params
        )

    def view(self, view: View) -> ViewTotals:
        return self.views[_VIEWS.index(view)]


def _stamp(ledger: Ledger, params: TrimParams, views: tuple[ViewTotals, ...]) -> LedgerTotals:
    return LedgerTotals(
        ledger.htlcs,
        ledger.fee_updates,
        ledger.remote_acked_upto,
        ledger.local_balance_msat,
        ledger.remote_balance_msat,
        ledger.feerate_per_kw,
        params,
        views,
    )


def compute_totals(ledger: Ledger, params: TrimParams) -> LedgerTotals:
    """From scratch: one pass over the HTLCs per view."""
    views = []
    for view in _VIEWS:
        totals = _empty_view(ledger, view, params)
        sums = [0] * 9
        for entry in ledger.htlcs:
            for i, value in enumerate(_contribution(totals, entry, ledger)):
                sums[i] += value
        views.append(_apply(totals, sums))
    return _stamp(ledger, params, tuple(views))


def ledger_totals(state: ChannelState, ledger: Ledger, fee_spike_multiplier: int) -> LedgerTotals:
    """The ledger's totals: its memo when it still describes it, else computed (and memoised)."""
    params = TrimParams.of(state, fee_spike_multiplier)
    memo = ledger.totals_memo
    if isinstance(memo, LedgerTotals) and memo.describes(ledger, params):
        return memo
    totals = compute_totals(ledger, params)
    # A memo, invisible to equality and persistence: the ledger value itself is unchanged.
    object.__setattr__(ledger, "totals_memo", totals)
    return totals


def view_totals(state: ChannelState, ledger: Ledger, view: View, fee_spike_multiplier: int) -> ViewTotals:
    return ledger_totals(state, ledger, fee_spike_multiplier).view(view)


def derive_totals(before: Ledger, after: Ledger, old: HtlcEntry | None, new: HtlcEntry) -> Ledger:
    """`after` carrying totals derived from `before`'s, when `after` differs from `before` only in
    one HTLC (`old` replaced by `new`, or `new` appended when `old` is None) and in counters the
    views do not depend on. Without usable totals on `before`, `after` is returned as it is (its
    totals are then computed when first needed)."""
    memo = before.totals_memo
    if (
        not isinstance(memo, LedgerTotals)
        or not memo.describes(before, memo.params)
        or after.fee_updates is not before.fee_updates
        or after.remote_acked_upto != before.remote_acked_upto
        or after.local_balance_msat != before.local_balance_msat
        or after.remote_balance_msat != before.remote_balance_msat
        or after.feerate_per_kw != before.feerate_per_kw
        or len(after.htlcs) != len(before.htlcs) + (old is None)
    ):
        return after
    views = []
    for totals in memo.views:
        added = _contribution(totals, new, after)
        removed = _NOTHING if old is None else _contribution(totals, old, before)
        views.append(_apply(totals, [a - r for a, r in zip(added, removed, strict=True)]))
    return fast_replace(after, totals_memo=_stamp(after, memo.params, tuple(views)))
