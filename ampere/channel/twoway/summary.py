"""What `listchannels` shows of a channel: balances as in our newest commitment, before its fee
and anchors, so that local + remote + pending HTLCs = capacity × 1000 exactly."""

from __future__ import annotations

from dataclasses import dataclass

from ampere.channel.twoway.ledger import View, snapshot
from ampere.channel.twoway.state import ChannelState

__all__ = ["ChannelSummary", "PendingHtlc", "summarize"]


@dataclass(frozen=True, slots=True)
class PendingHtlc:
    htlc_id: int
    direction: str  # "outgoing" (we offered it) or "incoming"
    amount_msat: int
    payment_hash: bytes
    cltv_expiry: int


@dataclass(frozen=True, slots=True)
class ChannelSummary:
    channel_id: bytes
    short_channel_id: int | None
    status: str
    channel_type: str
    funding_outpoint: str | None
    capacity_sat: int
    local_balance_msat: int
    remote_balance_msat: int
    pending_htlcs: tuple[PendingHtlc, ...]


def summarize(state: ChannelState) -> ChannelSummary:
    ledger = state.ledger
    if ledger is None:
        opener_msat = state.funding_sat * 1000 - state.push_msat
        local, remote = (opener_msat, state.push_msat) if state.is_opener else (state.push_msat, opener_msat)
        htlcs: tuple[PendingHtlc, ...] = ()
    else:
        snap = snapshot(ledger, View.LOCAL)
        local, remote = snap.local_msat, snap.remote_msat
        htlcs = tuple(
            PendingHtlc(
                entry.htlc_id,
                "outgoing" if entry.offered else "incoming",
                entry.amount_msat,
                entry.payment_hash,
                entry.cltv_expiry,
            )
            for entry in snap.htlcs
        )
    return ChannelSummary(
        channel_id=state.channel_id,
        short_channel_id=state.short_channel_id,
        status=state.status.value,
        channel_type=state.channel_type.value,
        funding_outpoint=None if state.funding_outpoint is None else str(state.funding_outpoint),
        capacity_sat=state.funding_sat,
        local_balance_msat=local,
        remote_balance_msat=remote,
        pending_htlcs=htlcs,
    )
