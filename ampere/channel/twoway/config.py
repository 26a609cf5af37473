"""Local channel policy: what we ask of the peer and what we accept from it.

None of this is persisted with the channel: the values that matter after negotiation (what we
sent in open_channel/accept_channel) are stored in the state; the rest is policy the node may
change between restarts.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_ACCEPTED_HTLCS_LIMIT", "MIN_DUST_LIMIT_SAT", "ChannelConfig"]

# BOLT 2: max_accepted_htlcs above 483 would let commitment_signed outgrow a message.
MAX_ACCEPTED_HTLCS_LIMIT = 483
# BOLT 2/3: the largest Bitcoin Core dust threshold of any allowed shutdown script.
MIN_DUST_LIMIT_SAT = 354
LARGE_CHANNEL_SAT = 1 << 24


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """Our side's parameters and the bounds we enforce on the peer's.

    Ratios are integer percentages so that no float ever touches an amount.
    """

    # --- what we announce ---
    dust_limit_sat: int = 546
    # None: the whole capacity (no cap beyond the reserve).
    max_htlc_value_in_flight_msat: int | None = None
    # Reserve we ask the peer to keep, in basis points of the capacity (BOLT 2 suggests 1%).
    channel_reserve_basis_points: int = 100
    htlc_minimum_msat: int = 1
    to_self_delay: int = 144
    max_accepted_htlcs: int = MAX_ACCEPTED_HTLCS_LIMIT
    minimum_depth: int = 3

    # --- what we accept from the peer ---
    max_to_self_delay: int = 2016
    max_minimum_depth: int = 144
    min_funding_sat: int = 10_000
    max_dust_limit_sat: int = 10_000
    max_htlc_minimum_msat: int = 10_000_000
    max_channel_reserve_percent: int = 20
    min_max_accepted_htlcs: int = 1
    support_large_channel: bool = True
    support_anchors: bool = True

    # --- fees ---
    min_feerate_per_kw: int = 253
    max_feerate_per_kw: int = 1_000_000
    # The peer's feerate must lie in [estimate * low%, estimate * high%] of our estimate.
    feerate_low_percent: int = 25
    feerate_high_percent: int = 1000
    # BOLT 2 recommends the opener keep room for twice the current feerate.
    fee_spike_multiplier: int = 2
    max_dust_htlc_exposure_msat: int = 50_000_000
    # The closing fee range, as multiples of the fee at the target feerate (percent).
    closing_fee_max_percent: int = 300

    # --- behaviour ---
    # Sign a new commitment as soon as the peer's revoke_and_ack or commitment_signed leaves
    # updates waiting for it (without it, nothing the peer sent is ever irrevocably committed
    # unless the node asks); local updates still wait for an explicit SignCommitment.
    auto_sign: bool = True
    # BOLT 2 cltv_expiry_delta selection: G (grace after an offered HTLC's expiry) and the
    # fulfilment deadline 2R+G+S before a received HTLC's expiry.
    offered_htlc_grace_blocks: int = 2
    fulfilled_htlc_deadline_blocks: int = 18
    # A fundee forgets a channel whose funding never confirmed after this many blocks.
    funding_timeout_blocks: int = 2016
    # Developer mode: emit `LocalCommitmentSigned` for each commitment of ours we accept, so that a
    # test can later broadcast a revoked one. Off: no signing and no action.
    keep_signed_commitments: bool = False

    def reserve_for(self, funding_sat: int) -> int:
        return funding_sat * self.channel_reserve_basis_points // 10_000

    def in_flight_for(self, funding_sat: int) -> int:
        if self.max_htlc_value_in_flight_msat is None:
            return funding_sat * 1000
        return self.max_htlc_value_in_flight_msat
