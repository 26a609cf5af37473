"""BOLT 2 limits: channel parameters at opening, and what each update may do.

Incoming checks raise `ChannelError` (the peer broke a MUST or a rule we enforce: the channel
fails), outgoing checks raise `CommandError` (the node asked for something we must not send).
Every incoming check is one the sender can evaluate identically before sending (see `ledger`),
so an honest peer never trips it, even with both sides updating at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from ampere.bitcoin.script import Op, witness_program
from ampere.channel.transactions.fees import (
    ANCHOR_OUTPUT_SAT,
    MAX_FEERATE_PER_KW,
    CommitmentFormat,
    commitment_base_fee_sat,
)
from ampere.channel.twoway.config import (
    LARGE_CHANNEL_SAT,
    MAX_ACCEPTED_HTLCS_LIMIT,
    MIN_DUST_LIMIT_SAT,
    ChannelConfig,
)
from ampere.channel.twoway.errors import ChannelError, CommandError
from ampere.channel.twoway.ledger import (
    View,
    commitment_fee_msat,
    dust_exposure_msat,
    included,
    opener_balance_msat,
    snapshot,
)
from ampere.channel.twoway.state import ChannelState, HtlcEntry, Ledger, SideParams
from ampere.channel.twoway.totals import ViewTotals, ledger_totals, view_totals
from ampere.wire.features import Feature

__all__ = [
    "MAX_CLTV_EXPIRY",
    "OfferedParams",
    "check_feerate",
    "check_incoming_add",
    "check_incoming_fee",
    "check_offered_params",
    "check_outgoing_add",
    "check_outgoing_fee",
    "valid_shutdown_script",
]

# BOLT 2: cltv_expiry at or above 500000000 would be a timestamp.
MAX_CLTV_EXPIRY = 500_000_000
ONION_PACKET_LEN = 1366
BADONION = 0x8000


def check_feerate(feerate_per_kw: int, config: ChannelConfig, estimate: int | None) -> str | None:
    """Why a feerate the peer chose is unacceptable, or None (BOLT 2: "too small for timely
    processing or unreasonably large")."""
    if feerate_per_kw < config.min_feerate_per_kw:
        return f"feerate {feerate_per_kw} is below the minimum {config.min_feerate_per_kw}"
    if feerate_per_kw > min(config.max_feerate_per_kw, MAX_FEERATE_PER_KW):
        return f"feerate {feerate_per_kw} is above the maximum {config.max_feerate_per_kw}"
    if estimate is not None:
        if feerate_per_kw * 100 < estimate * config.feerate_low_percent:
            return f"feerate {feerate_per_kw} is too low against our estimate {estimate}"
        if feerate_per_kw * 100 > estimate * config.feerate_high_percent:
            return f"feerate {feerate_per_kw} is too high against our estimate {estimate}"
    return None


@dataclass(frozen=True, slots=True)
class OfferedParams:
    """The fields open_channel and accept_channel share, plus what each adds."""

    funding_sat: int
    dust_limit_sat: int
    max_htlc_value_in_flight_msat: int
    channel_reserve_sat: int
    htlc_minimum_msat: int
    to_self_delay: int
    max_accepted_htlcs: int


def check_offered_params(params: OfferedParams, config: ChannelConfig) -> None:
    """The open_channel rules that apply to either message's fields (BOLT 2: accept_channel's
    "other fields have the same requirements as their counterparts in open_channel")."""
    if params.to_self_delay > config.max_to_self_delay:
        raise ChannelError(f"to_self_delay {params.to_self_delay} is unreasonably large")
    if params.max_accepted_htlcs > MAX_ACCEPTED_HTLCS_LIMIT:
        raise ChannelError(f"max_accepted_htlcs {params.max_accepted_htlcs} is greater than 483")
    if params.max_accepted_htlcs < config.min_max_accepted_htlcs:
        raise ChannelError(f"max_accepted_htlcs {params.max_accepted_htlcs} is too small")
    if params.dust_limit_sat > params.channel_reserve_sat:
        raise ChannelError(
            f"dust_limit_satoshis {params.dust_limit_sat} is greater than channel_reserve_satoshis "
            f"{params.channel_reserve_sat}"
        )
    if params.dust_limit_sat < MIN_DUST_LIMIT_SAT:
        raise ChannelError(f"dust_limit_satoshis {params.dust_limit_sat} is smaller than 354")
    if params.dust_limit_sat > config.max_dust_limit_sat:
        raise ChannelError(f"dust_limit_satoshis {params.dust_limit_sat} is too large")
    if params.htlc_minimum_msat > config.max_htlc_minimum_msat:
        raise ChannelError(f"htlc_minimum_msat {params.htlc_minimum_msat} is too large")
    if params.channel_reserve_sat * 100 > params.funding_sat * config.max_channel_reserve_percent:
        raise ChannelError(f"channel_reserve_satoshis {params.channel_reserve_sat} is too large")
    if params.max_htlc_value_in_flight_msat < min(params.funding_sat * 1000, config.htlc_minimum_msat * 10):
        raise ChannelError("max_htlc_value_in_flight_msat is too small")


def check_funding_amount(funding_sat: int, state: ChannelState, config: ChannelConfig) -> None:
    if funding_sat < config.min_funding_sat:
        raise ChannelError(f"funding_satoshis {funding_sat} is too small")
    local_features, _ = state.features
    if funding_sat >= LARGE_CHANNEL_SAT and not (
        config.support_large_channel and local_features.has(Feature.LARGE_CHANNEL)
    ):
        raise ChannelError(
            "funding_satoshis is 2^24 or more and we do not support option_support_large_channel"
        )


def check_initial_commitment(
    funding_sat: int, push_msat: int, feerate_per_kw: int, has_anchors: bool, reserve_sat: int
) -> None:
    """BOLT 2 open_channel: the funder must afford the full fee of the initial commitment, and
    to_local and to_remote must not both be at or below channel_reserve_satoshis."""
    if push_msat > funding_sat * 1000:
        raise ChannelError("push_msat is greater than funding_satoshis * 1000")
    fmt = CommitmentFormat.ANCHORS if has_anchors else CommitmentFormat.STATIC_REMOTEKEY
    anchors_sat = 2 * ANCHOR_OUTPUT_SAT if has_anchors else 0
    fee_msat = (commitment_base_fee_sat(feerate_per_kw, 0, fmt) + anchors_sat) * 1000
    opener_msat = funding_sat * 1000 - push_msat
    if opener_msat < fee_msat:
        raise ChannelError("the funder's amount is not sufficient for the initial commitment fee")
    to_opener_sat, to_accepter_sat = (opener_msat - fee_msat) // 1000, push_msat // 1000
    if to_opener_sat <= reserve_sat and to_accepter_sat <= reserve_sat:
        raise ChannelError("both to_local and to_remote are at or below channel_reserve_satoshis")


def valid_shutdown_script(state: ChannelState, script: bytes) -> bool:
    """BOLT 2 shutdown scriptpubkey forms: v0 P2WPKH/P2WSH; v1-16 programs of 2-40 bytes with
    option_shutdown_anysegwit; a single-push OP_RETURN with option_simple_close."""
    program = witness_program(script)
    if program is not None:
        version, data = program
        if version == 0:
            return len(data) in (20, 32)
        return state.both_support(Feature.SHUTDOWN_ANYSEGWIT) and 2 <= len(data) <= 40
    if not state.both_support(Feature.SIMPLE_CLOSE) or script[:1] != bytes([Op.OP_RETURN]):
        return False
    if len(script) >= 2 and 6 <= script[1] <= 75:
        return len(script) == 2 + script[1]
    return (
        len(script) >= 3
        and script[1] == Op.OP_PUSHDATA1
        and 76 <= script[2] <= 80
        and len(script) == 3 + script[2]
    )


# --- HTLCs ----------------------------------------------------------------------------------------


def _htlc_shape(entry: HtlcEntry) -> str | None:
    if entry.amount_msat <= 0:
        return "amount_msat must be greater than 0"
    if entry.cltv_expiry >= MAX_CLTV_EXPIRY:
        return f"cltv_expiry {entry.cltv_expiry} is not below 500000000"
    if len(entry.payment_hash) != 32:
        return "payment_hash must be 32 bytes"
    if len(entry.onion) != ONION_PACKET_LEN:
        return f"onion_routing_packet must be {ONION_PACKET_LEN} bytes"
    return None


def _offered_limits(totals: ViewTotals, offered_by_us: bool, receiver: SideParams) -> str | None:
    count, total = (
        (totals.ours_count, totals.ours_msat) if offered_by_us else (totals.theirs_count, totals.theirs_msat)
    )
    if count > receiver.max_accepted_htlcs:
        return f"more than max_accepted_htlcs ({receiver.max_accepted_htlcs}) HTLCs"
    if total > receiver.max_htlc_value_in_flight_msat:
        limit = receiver.max_htlc_value_in_flight_msat
        return f"{total} msat in flight exceeds max_htlc_value_in_flight_msat {limit}"
    return None


def check_incoming_add(state: ChannelState, ledger: Ledger, entry: HtlcEntry, config: ChannelConfig) -> None:
    """`ledger` already holds the new HTLC; the peer must have been able to check all this."""
    local, _ = state.require_params()
    problem = _htlc_shape(entry)
    if problem is None and entry.amount_msat < local.htlc_minimum_msat:
        problem = f"amount_msat {entry.amount_msat} is below htlc_minimum_msat {local.htlc_minimum_msat}"
    totals = view_totals(state, ledger, View.LOCAL_NEXT, config.fee_spike_multiplier)
    if problem is None:
        problem = _offered_limits(totals, False, local)
    if problem is None:
        required = local.channel_reserve_sat * 1000
        if not state.is_opener:
            required += totals.commitment_fee_msat()
        if totals.remote_msat < required:
            problem = "the sender cannot afford the HTLC while keeping its reserve and paying the fee"
    if problem is not None:
        raise ChannelError(f"update_add_htlc {entry.htlc_id}: {problem}")


def check_outgoing_add(state: ChannelState, ledger: Ledger, entry: HtlcEntry, config: ChannelConfig) -> None:
    local, remote = state.require_params()
    problem = _htlc_shape(entry)
    if problem is None and entry.amount_msat < remote.htlc_minimum_msat:
        problem = f"amount_msat {entry.amount_msat} is below the peer's htlc_minimum_msat"
    # Running totals, not a scan of every HTLC in flight: this runs for every payment sent.
    totals = ledger_totals(state, ledger, config.fee_spike_multiplier)
    theirs, ours = totals.view(View.REMOTE_NEXT), totals.view(View.LOCAL_ALL)
    if problem is None:
        problem = _offered_limits(theirs, True, remote)
    if problem is None:
        reserve = remote.channel_reserve_sat * 1000
        for snap in (theirs, ours):
            if state.is_opener:
                fee = snap.commitment_fee_msat()
                buffer = snap.spike_fee_msat(extra_htlcs=1)
                if snap.local_msat < reserve + max(fee, buffer):
                    problem = "we cannot afford it with our reserve and the fee spike buffer"
            elif snap.opener_msat(state) < local.channel_reserve_sat * 1000 + snap.commitment_fee_msat():
                problem = "the opener could not pay the commitment fee with this HTLC"
            if problem is None and snap.local_msat < reserve:
                problem = "we cannot afford it while keeping our channel reserve"
            # The new HTLC is in both views (we offered it), so the view's rule decides its trimming.
            if problem is None and snap.is_trimmed(entry):
                exposure = snap.dust_msat
                if exposure > config.max_dust_htlc_exposure_msat:
                    problem = f"dust exposure {exposure} msat would exceed the limit"
            if problem is not None:
                break
    if problem is not None:
        raise CommandError(f"cannot add HTLC: {problem}")


def incoming_dust_exposure_exceeded(
    state: ChannelState, ledger: Ledger, entry: HtlcEntry, config: ChannelConfig
) -> bool:
    """BOLT 2: a received HTLC that is trimmed in either commitment and pushes that
    commitment's dust balance over the limit should be failed and its preimage kept back."""
    totals = ledger_totals(state, ledger, config.fee_spike_multiplier)
    for view in (View.LOCAL, View.REMOTE):
        snap = totals.view(view)
        in_view = included(entry.add, entry.offered, view, ledger) and not (
            entry.removal is not None and included(entry.removal.marks, not entry.offered, view, ledger)
        )
        if in_view and snap.is_trimmed(entry) and snap.dust_msat > config.max_dust_htlc_exposure_msat:
            return True
    return False


# --- fees -------------------------------------------------------------------------------------------


def check_incoming_fee(
    state: ChannelState, ledger: Ledger, feerate_per_kw: int, config: ChannelConfig, estimate: int | None
) -> None:
    if state.is_opener:
        raise ChannelError("update_fee from the peer, which is not responsible for the fee")
    problem = check_feerate(feerate_per_kw, config, estimate)
    if problem is not None:
        raise ChannelError(f"update_fee: {problem}")
    snap = snapshot(ledger, View.LOCAL_NEXT)
    if opener_balance_msat(state, snap) < commitment_fee_msat(state, snap):
        raise ChannelError(f"update_fee: the opener cannot afford feerate {feerate_per_kw}")


def check_outgoing_fee(
    state: ChannelState, ledger: Ledger, feerate_per_kw: int, config: ChannelConfig
) -> None:
    _, remote = state.require_params()
    if not state.is_opener:
        raise CommandError("only the opener may send update_fee")
    if not config.min_feerate_per_kw <= feerate_per_kw <= min(config.max_feerate_per_kw, MAX_FEERATE_PER_KW):
        raise CommandError(f"feerate {feerate_per_kw} is outside our bounds")
    for view in (View.REMOTE_NEXT, View.LOCAL_ALL):
        snap = snapshot(ledger, view)
        if snap.local_msat < remote.channel_reserve_sat * 1000 + commitment_fee_msat(state, snap):
            raise CommandError(f"cannot afford feerate {feerate_per_kw} while keeping our reserve")
        if (
            not state.commitment_format.has_anchors
            and dust_exposure_msat(state, snap) > config.max_dust_htlc_exposure_msat
        ):
            raise CommandError(f"feerate {feerate_per_kw} would push dust exposure over the limit")
