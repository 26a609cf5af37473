"""Commitment views of the ledger: which updates each commitment includes, its balances,
HTLCs and feerate, and the BOLT 3 transaction it gives.

A view is a rule for deciding whether an update is in a commitment (see `state` for the marks):

* LOCAL / REMOTE: our newest commitment, the peer's newest commitment;
* LOCAL_NEXT: what the peer's next commitment_signed will sign for us (everything the peer sent,
  plus our updates it has acknowledged with revoke_and_ack);
* REMOTE_NEXT: what our next commitment_signed signs for the peer (everything we sent, plus the
  peer's updates we have acknowledged);
* LOCAL_ALL: every known update applied to our commitment (for our own worst-case checks).

The peer computes its REMOTE_NEXT from the very messages we have processed when we compute our
LOCAL_NEXT (the streams are ordered), so both sides check an update against the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from enum import Enum

from ampere.channel.transactions.commitment import (
    CommitmentParams,
    CommitmentTransaction,
    Htlc,
    HtlcDirection,
    build_commitment,
    commitment_obscuring_factor,
    untrimmed_htlcs,
)
from ampere.channel.transactions.fees import ANCHOR_OUTPUT_SAT, commitment_base_fee_sat
from ampere.channel.transactions.keys import derive_commitment_keys
from ampere.channel.twoway.fast_replace import fast_replace
from ampere.channel.twoway.messages import (
    ChannelMessage,
    UpdateAddHtlc,
    UpdateFailHtlc,
    UpdateFailMalformedHtlc,
    UpdateFee,
    UpdateFulfillHtlc,
)
from ampere.channel.twoway.state import (
    ChannelState,
    FeeUpdate,
    HtlcEntry,
    Ledger,
    Marks,
    RemovalKind,
)

__all__ = [
    "Snapshot",
    "View",
    "acked_by_remote",
    "build_view_commitment",
    "commitment_fee_msat",
    "dust_exposure_msat",
    "has_changes_for_local",
    "has_changes_for_remote",
    "irrevocable",
    "mark_local_signed",
    "mark_remote_signed",
    "prune",
    "sent_update_messages",
    "snapshot",
]


class View(Enum):
    LOCAL = "local"
    LOCAL_NEXT = "local_next"
    LOCAL_ALL = "local_all"
    REMOTE = "remote"
    REMOTE_NEXT = "remote_next"

    @property
    def owner_is_local(self) -> bool:
        return self in (View.LOCAL, View.LOCAL_NEXT, View.LOCAL_ALL)


def acked_by_remote(marks: Marks, ledger: Ledger) -> bool:
    return marks.remote is not None and marks.remote <= ledger.remote_acked_upto


def irrevocable(marks: Marks, ledger: Ledger) -> bool:
    """Stage 5: in both newest commitments, and every commitment without it revoked."""
    return marks.local is not None and acked_by_remote(marks, ledger)


def included(marks: Marks, sent_by_us: bool, view: View, ledger: Ledger) -> bool:
    if view is View.LOCAL:
        return marks.local is not None
    if view is View.REMOTE:
        return marks.remote is not None
    if view is View.LOCAL_NEXT:
        return marks.local is not None or not sent_by_us or acked_by_remote(marks, ledger)
    if view is View.REMOTE_NEXT:
        return marks.remote is not None or sent_by_us or marks.local is not None
    return True


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One commitment's content from our point of view (balances before fees, as BOLT 3's
    to_local_msat): local + remote + HTLCs = capacity, always."""

    view: View
    local_msat: int
    remote_msat: int
    htlcs: tuple[HtlcEntry, ...]
    feerate_per_kw: int

    @property
    def offered(self) -> tuple[HtlcEntry, ...]:
        return tuple(entry for entry in self.htlcs if entry.offered)

    @property
    def received(self) -> tuple[HtlcEntry, ...]:
        return tuple(entry for entry in self.htlcs if not entry.offered)

    @property
    def htlc_total_msat(self) -> int:
        return sum(entry.amount_msat for entry in self.htlcs)

    def owner_htlcs(self) -> tuple[Htlc, ...]:
        """The HTLCs as the commitment's owner sees them (BOLT 3 direction)."""
        mine = self.view.owner_is_local
        return tuple(
            Htlc(
                HtlcDirection.OFFERED if entry.offered == mine else HtlcDirection.RECEIVED,
                entry.htlc_id,
                entry.amount_msat,
                entry.payment_hash,
                entry.cltv_expiry,
            )
            for entry in self.htlcs
        )


def snapshot(ledger: Ledger, view: View) -> Snapshot:
    local, remote = ledger.local_balance_msat, ledger.remote_balance_msat
    htlcs: list[HtlcEntry] = []
    for entry in ledger.htlcs:
        if not included(entry.add, entry.offered, view, ledger):
            continue
        removal = entry.removal
        if removal is not None and included(removal.marks, not entry.offered, view, ledger):
            if removal.kind is RemovalKind.FULFILL:
                if entry.offered:
                    local, remote = local - entry.amount_msat, remote + entry.amount_msat
                else:
                    local, remote = local + entry.amount_msat, remote - entry.amount_msat
            continue
        if entry.offered:
            local -= entry.amount_msat
        else:
            remote -= entry.amount_msat
        htlcs.append(entry)
    feerate = ledger.feerate_per_kw
    for update in ledger.fee_updates:
        if included(update.marks, update.from_us, view, ledger):
            feerate = update.feerate_per_kw
    return Snapshot(view, local, remote, tuple(htlcs), feerate)


# --- transactions and fees ------------------------------------------------------------------------


def _owner_dust_limit(state: ChannelState, view: View) -> int:
    local, remote = state.require_params()
    return local.dust_limit_sat if view.owner_is_local else remote.dust_limit_sat


def obscuring_factor(state: ChannelState) -> int:
    local, remote = state.require_params()
    opener, accepter = (local, remote) if state.is_opener else (remote, local)
    return commitment_obscuring_factor(
        opener.basepoints.payment_basepoint, accepter.basepoints.payment_basepoint
    )


def commitment_params(state: ChannelState, owner_is_local: bool) -> CommitmentParams:
    local, remote = state.require_params()
    return CommitmentParams(
        funding_outpoint=state.require_funding(),
        funding_amount_sat=state.funding_sat,
        # Each side's to_local waits for the delay the *other* side asked for.
        to_self_delay=remote.to_self_delay if owner_is_local else local.to_self_delay,
        dust_limit_sat=local.dust_limit_sat if owner_is_local else remote.dust_limit_sat,
        owner_is_opener=state.is_opener == owner_is_local,
        obscuring_factor=obscuring_factor(state),
        commitment_format=state.commitment_format,
    )


def build_view_commitment(
    state: ChannelState, snap: Snapshot, commitment_number: int, per_commitment_point: bytes
) -> CommitmentTransaction:
    """The BOLT 3 commitment of the view's owner at that number and per-commitment point."""
    local, remote = state.require_params()
    if snap.view.owner_is_local:
        keys = derive_commitment_keys(per_commitment_point, local.basepoints, remote.basepoints)
        to_local, to_remote = snap.local_msat, snap.remote_msat
    else:
        keys = derive_commitment_keys(per_commitment_point, remote.basepoints, local.basepoints)
        to_local, to_remote = snap.remote_msat, snap.local_msat
    return build_commitment(
        commitment_params(state, snap.view.owner_is_local),
        keys,
        commitment_number,
        to_local,
        to_remote,
        snap.owner_htlcs(),
        snap.feerate_per_kw,
    )


def commitment_fee_msat(
    state: ChannelState, snap: Snapshot, *, feerate_per_kw: int | None = None, extra_htlcs: int = 0
) -> int:
    """What the opener pays for this commitment: base fee for its untrimmed HTLCs (plus
    `extra_htlcs` hypothetical ones) and, with anchors, the two anchor outputs."""
    feerate = snap.feerate_per_kw if feerate_per_kw is None else feerate_per_kw
    fmt = state.commitment_format
    kept = untrimmed_htlcs(snap.owner_htlcs(), feerate, _owner_dust_limit(state, snap.view), fmt)
    anchors = 2 * ANCHOR_OUTPUT_SAT if fmt.has_anchors else 0
    return (commitment_base_fee_sat(feerate, len(kept) + extra_htlcs, fmt) + anchors) * 1000


def opener_balance_msat(state: ChannelState, snap: Snapshot) -> int:
    return snap.local_msat if state.is_opener else snap.remote_msat


def trimmed_keys(state: ChannelState, snap: Snapshot) -> frozenset[tuple[bool, int]]:
    """Keys of the view's HTLCs that get no output (they would go to fees on chain)."""
    owner = snap.owner_htlcs()
    kept = untrimmed_htlcs(
        owner, snap.feerate_per_kw, _owner_dust_limit(state, snap.view), state.commitment_format
    )
    kept_ids = {(htlc.direction, htlc.htlc_id) for htlc in kept}
    return frozenset(
        entry.key
        for entry, htlc in zip(snap.htlcs, owner, strict=True)
        if (htlc.direction, htlc.htlc_id) not in kept_ids
    )


def dust_exposure_msat(state: ChannelState, snap: Snapshot) -> int:
    """BOLT 2 "dust balance": the total of the view's trimmed HTLCs."""
    trimmed = trimmed_keys(state, snap)
    return sum(entry.amount_msat for entry in snap.htlcs if entry.key in trimmed)


# --- moving updates through the stages ------------------------------------------------------------

_MarksFn = Callable[[Marks, bool], Marks]


def _map_marks(ledger: Ledger, fn: _MarksFn) -> Ledger:
    htlcs = []
    for entry in ledger.htlcs:
        add = fn(entry.add, entry.offered)
        removal = entry.removal
        if removal is not None:
            marks = fn(removal.marks, not entry.offered)
            if marks is not removal.marks:
                removal = fast_replace(removal, marks=marks)
        if add is not entry.add or removal is not entry.removal:
            entry = fast_replace(entry, add=add, removal=removal)
        htlcs.append(entry)
    fees = tuple(
        update
        if (marks := fn(update.marks, update.from_us)) is update.marks
        else replace(update, marks=marks)
        for update in ledger.fee_updates
    )
    return fast_replace(ledger, htlcs=tuple(htlcs), fee_updates=fees)


def _all_marks(ledger: Ledger) -> Iterator[tuple[Marks, bool]]:
    for entry in ledger.htlcs:
        yield entry.add, entry.offered
        if entry.removal is not None:
            yield entry.removal.marks, not entry.offered
    for update in ledger.fee_updates:
        yield update.marks, update.from_us


def has_changes_for_remote(ledger: Ledger) -> bool:
    """Whether REMOTE_NEXT differs from REMOTE: a commitment_signed would carry updates."""
    return any(marks.remote is None and (us or marks.local is not None) for marks, us in _all_marks(ledger))


def has_changes_for_local(ledger: Ledger) -> bool:
    return any(
        marks.local is None and (not us or acked_by_remote(marks, ledger)) for marks, us in _all_marks(ledger)
    )


def has_unsigned_local_updates(ledger: Ledger) -> bool:
    """Updates we sent that no commitment_signed of ours covers yet."""
    return any(us and marks.remote is None for marks, us in _all_marks(ledger))


def mark_remote_signed(ledger: Ledger, number: int) -> Ledger:
    def fn(marks: Marks, us: bool) -> Marks:
        if marks.remote is None and (us or marks.local is not None):
            return replace(marks, remote=number)
        return marks

    return _map_marks(ledger, fn)


def mark_local_signed(ledger: Ledger, number: int) -> Ledger:
    def fn(marks: Marks, us: bool) -> Marks:
        if marks.local is None and (not us or acked_by_remote(marks, ledger)):
            return replace(marks, local=number)
        return marks

    return _map_marks(ledger, fn)


def prune(ledger: Ledger) -> Ledger:
    """Settle HTLCs whose removal is irrevocably committed, fold committed fee updates, and drop
    the onions of our HTLCs the peer has acknowledged (never retransmitted again, and 1366 bytes
    each in every persisted state)."""
    local, remote = ledger.local_balance_msat, ledger.remote_balance_msat
    kept: list[HtlcEntry] = []
    changed = False
    for entry in ledger.htlcs:
        removal = entry.removal
        if removal is None or not irrevocable(removal.marks, ledger):
            if entry.offered and entry.onion and acked_by_remote(entry.add, ledger):
                entry, changed = replace(entry, onion=b""), True
            kept.append(entry)
            continue
        if removal.kind is RemovalKind.FULFILL:
            if entry.offered:
                local, remote = local - entry.amount_msat, remote + entry.amount_msat
            else:
                local, remote = local + entry.amount_msat, remote - entry.amount_msat
    feerate, fees = ledger.feerate_per_kw, ledger.fee_updates
    last = max((i for i, update in enumerate(fees) if irrevocable(update.marks, ledger)), default=-1)
    if last >= 0:
        feerate, fees = fees[last].feerate_per_kw, fees[last + 1 :]
    if not changed and len(kept) == len(ledger.htlcs) and fees is ledger.fee_updates:
        return ledger
    return replace(
        ledger,
        local_balance_msat=local,
        remote_balance_msat=remote,
        htlcs=tuple(kept),
        feerate_per_kw=feerate,
        fee_updates=tuple(fees),
    )


def drop_uncommitted_remote_updates(ledger: Ledger) -> Ledger:
    """BOLT 2: on disconnection, forget every update the peer sent that no commitment_signed
    of theirs covered; the peer re-sends them (with the same ids)."""
    htlcs: list[HtlcEntry] = []
    next_remote_id = ledger.next_remote_htlc_id
    for entry in ledger.htlcs:
        if not entry.offered and entry.add.local is None:
            next_remote_id = min(next_remote_id, entry.htlc_id)
            continue
        if entry.offered and entry.removal is not None and entry.removal.marks.local is None:
            entry = replace(entry, removal=None)
        htlcs.append(entry)
    fees = tuple(u for u in ledger.fee_updates if u.from_us or u.marks.local is not None)
    return replace(ledger, htlcs=tuple(htlcs), fee_updates=fees, next_remote_htlc_id=next_remote_id)


def sent_update_messages(
    state: ChannelState, ledger: Ledger, remote_number: int | None
) -> tuple[ChannelMessage, ...]:
    """The updates we sent that first entered the peer's commitment `remote_number` (None: not
    signed yet), in their original order, for retransmission."""
    found: list[tuple[int, ChannelMessage]] = []
    channel_id = state.channel_id
    for entry in ledger.htlcs:
        if entry.offered and entry.add.remote == remote_number:
            message: ChannelMessage = UpdateAddHtlc(
                channel_id,
                entry.htlc_id,
                entry.amount_msat,
                entry.payment_hash,
                entry.cltv_expiry,
                entry.onion,
            )
            found.append((entry.add.seq, message))
        removal = entry.removal
        if not entry.offered and removal is not None and removal.marks.remote == remote_number:
            if removal.kind is RemovalKind.FULFILL:
                message = UpdateFulfillHtlc(channel_id, entry.htlc_id, removal.payment_preimage)
            elif removal.kind is RemovalKind.FAIL:
                message = UpdateFailHtlc(channel_id, entry.htlc_id, removal.reason)
            else:
                message = UpdateFailMalformedHtlc(
                    channel_id, entry.htlc_id, removal.sha256_of_onion, removal.failure_code
                )
            found.append((removal.marks.seq, message))
    for update in ledger.fee_updates:
        if update.from_us and update.marks.remote == remote_number:
            found.append((update.marks.seq, UpdateFee(channel_id, update.feerate_per_kw)))
    found.sort(key=lambda item: item[0])
    return tuple(message for _, message in found)


def fee_update(ledger: Ledger, feerate_per_kw: int, from_us: bool) -> Ledger:
    marks, ledger = ledger.next_marks()
    return replace(ledger, fee_updates=(*ledger.fee_updates, FeeUpdate(feerate_per_kw, marks, from_us)))
