"""`option_simple_close` (BOLT 2 "Closing Negotiation: closing_complete and closing_sig"):
each side proposes and pays for its own closing transaction, the other just signs it.

Used instead of closing_signed when both peers advertise feature 60/61. Its handlers belong to
the closing phases, so they are wired into `close.TRANSITIONS`.
"""

from __future__ import annotations

from dataclasses import replace

from ampere.channel.transactions.closing import (
    ClosingTransaction,
    ClosingVariant,
    build_simple_closing_tx,
    dust_threshold_sat,
    finalize_closing,
    is_op_return,
    verify_closing_signature,
)
from ampere.channel.transactions.errors import TransactionBuildError
from ampere.channel.twoway.actions import Broadcast, ChannelClosed, CloseType, SendMessage
from ampere.channel.twoway.common import Context, Transition, compact, der, funding_output
from ampere.channel.twoway.errors import ChannelError, ErrorResponse
from ampere.channel.twoway.ledger import View, snapshot
from ampere.channel.twoway.limits import valid_shutdown_script
from ampere.channel.twoway.messages import ClosingComplete, ClosingSig
from ampere.channel.twoway.state import ChannelState, Negotiation, Phase
from ampere.wire.features import Feature

__all__ = ["closing_complete_received", "closing_sig_received", "propose_simple_close", "uses_simple_close"]

_FIELDS = {
    ClosingVariant.CLOSER_OUTPUT_ONLY: "closer_output_only",
    ClosingVariant.CLOSEE_OUTPUT_ONLY: "closee_output_only",
    ClosingVariant.CLOSER_AND_CLOSEE_OUTPUTS: "closer_and_closee_outputs",
}
# The 2-of-2 witness and the segwit marker, as for closing_signed.
_WITNESS_WEIGHT = 224


def uses_simple_close(state: ChannelState) -> bool:
    return state.both_support(Feature.SIMPLE_CLOSE)


def _balances_msat(state: ChannelState) -> tuple[int, int]:
    snap = snapshot(state.require_ledger(), View.LOCAL)
    return snap.local_msat, snap.remote_msat


def _is_dust(amount_sat: int, script: bytes) -> bool:
    return not is_op_return(script) and amount_sat < dust_threshold_sat(script)


def _tx(
    state: ChannelState,
    closer_script: bytes,
    closee_script: bytes,
    fee_sat: int,
    locktime: int,
    *,
    we_close: bool,
    variant: ClosingVariant,
) -> ClosingTransaction:
    local_msat, remote_msat = _balances_msat(state)
    local_script, remote_script = (
        (closer_script, closee_script) if we_close else (closee_script, closer_script)
    )
    try:
        return build_simple_closing_tx(
            funding_output(state),
            local_script,
            remote_script,
            local_msat,
            remote_msat,
            fee_sat,
            locktime,
            local_is_closer=we_close,
            variant=variant,
        )
    except TransactionBuildError as exc:
        raise ChannelError(f"closing transaction cannot be built: {exc}", ErrorResponse.DISCONNECT) from exc


def propose_simple_close(state: ChannelState, ctx: Context) -> Transition:
    """Send closing_complete paying our own fee, if our balance can pay it and leave an output."""
    remote_script = state.shutdown.remote_script
    if remote_script is None:
        return Transition(state)
    local_msat, remote_msat = _balances_msat(state)
    script = state.local_shutdown_script
    feerate = ctx.feerate_estimate_per_kw or state.require_ledger().feerate_per_kw
    sizing = _tx(
        state, script, remote_script, 0, 0, we_close=True, variant=ClosingVariant.CLOSER_AND_CLOSEE_OUTPUTS
    )
    fee = feerate * (sizing.tx.weight + _WITNESS_WEIGHT) // 1000
    ours_sat, theirs_sat = local_msat // 1000, remote_msat // 1000
    if fee > ours_sat:
        # The peer, with the larger balance, closes; nothing for us to propose.
        return Transition(replace(state, negotiation=Negotiation()))
    our_dust = is_op_return(script) or _is_dust(ours_sat - fee, script)
    their_dust = _is_dust(theirs_sat, remote_script)
    if local_msat < remote_msat:
        variants = [
            ClosingVariant.CLOSEE_OUTPUT_ONLY if our_dust else ClosingVariant.CLOSER_AND_CLOSEE_OUTPUTS
        ]
    elif their_dust:
        variants = [ClosingVariant.CLOSER_OUTPUT_ONLY]
    else:
        variants = [ClosingVariant.CLOSER_OUTPUT_ONLY, ClosingVariant.CLOSER_AND_CLOSEE_OUTPUTS]
    if our_dust and their_dust:
        return Transition(replace(state, negotiation=Negotiation()))
    signatures = {
        _FIELDS[variant]: compact(
            ctx.signer.sign_closing_transaction(
                _tx(state, script, remote_script, fee, 0, we_close=True, variant=variant)
            )
        )
        for variant in variants
    }
    message = ClosingComplete(state.channel_id, script, remote_script, fee, 0, **signatures)
    negotiation = Negotiation(our_fee_sat=fee, last_complete=message)
    return Transition(replace(state, negotiation=negotiation), (SendMessage(message),))


def _broadcast(state: ChannelState, tx: ClosingTransaction, ours: bytes, theirs: bytes) -> Transition:
    signed = finalize_closing(tx, ours, theirs)
    state = replace(state, phase=Phase.CLOSING, closing_tx=signed)
    return Transition(
        state,
        (Broadcast(signed, "mutual close"), ChannelClosed(state.channel_id, CloseType.MUTUAL, signed.txid)),
    )


def closing_complete_received(state: ChannelState, msg: ClosingComplete, ctx: Context) -> Transition:
    """We are the closee: check, sign and broadcast the peer's transaction."""
    local_msat, remote_msat = _balances_msat(state)
    if msg.fee_satoshis > remote_msat // 1000:
        raise ChannelError("closing_complete fee exceeds the closer's balance", ErrorResponse.DISCONNECT)
    if msg.closee_scriptpubkey != state.local_shutdown_script:
        raise ChannelError("closing_complete does not pay our latest script", ErrorResponse.DISCONNECT)
    if not valid_shutdown_script(state, msg.closer_scriptpubkey):
        raise ChannelError("closing_complete closer_scriptpubkey is not allowed", ErrorResponse.DISCONNECT)
    ours_sat = local_msat // 1000
    if _is_dust(ours_sat, state.local_shutdown_script):
        variant = ClosingVariant.CLOSER_OUTPUT_ONLY
    elif msg.closer_and_closee_outputs is not None:
        variant = ClosingVariant.CLOSER_AND_CLOSEE_OUTPUTS
    else:
        variant = ClosingVariant.CLOSEE_OUTPUT_ONLY
    field = _FIELDS[variant]
    signature = getattr(msg, field)
    if signature is None:
        raise ChannelError(f"closing_complete lacks the {field} signature", ErrorResponse.DISCONNECT)
    tx = _tx(
        state,
        msg.closer_scriptpubkey,
        msg.closee_scriptpubkey,
        msg.fee_satoshis,
        msg.locktime,
        we_close=False,
        variant=variant,
    )
    _, remote = state.require_params()
    theirs = der(signature, "closing_complete signature")
    if not verify_closing_signature(tx, remote.basepoints.funding_pubkey, theirs):
        raise ChannelError(f"closing_complete {field} signature is invalid", ErrorResponse.DISCONNECT)
    ours = ctx.signer.sign_closing_transaction(tx)
    reply = ClosingSig(
        state.channel_id,
        msg.closer_scriptpubkey,
        msg.closee_scriptpubkey,
        msg.fee_satoshis,
        msg.locktime,
        **{field: compact(ours)},
    )
    # BOLT 2: the closer's script is the one our own future closing_complete must pay.
    state = replace(state, shutdown=replace(state.shutdown, remote_script=msg.closer_scriptpubkey))
    result = _broadcast(state, tx, ours, theirs)
    return Transition(result.state, (SendMessage(reply), *result.actions))


def closing_sig_received(state: ChannelState, msg: ClosingSig, ctx: Context) -> Transition:
    """We are the closer: the peer signed our transaction."""
    negotiation = state.negotiation
    sent = None if negotiation is None else negotiation.last_complete
    if sent is None:
        raise ChannelError("closing_sig without a closing_complete", ErrorResponse.DISCONNECT)
    if (msg.closer_scriptpubkey, msg.closee_scriptpubkey, msg.fee_satoshis, msg.locktime) != (
        sent.closer_scriptpubkey,
        sent.closee_scriptpubkey,
        sent.fee_satoshis,
        sent.locktime,
    ):
        raise ChannelError("closing_sig does not match our closing_complete", ErrorResponse.DISCONNECT)
    present = [variant for variant, field in _FIELDS.items() if getattr(msg, field) is not None]
    if len(present) != 1 or getattr(sent, _FIELDS[present[0]]) is None:
        raise ChannelError(
            "closing_sig must carry exactly one signature we asked for", ErrorResponse.DISCONNECT
        )
    variant = present[0]
    tx = _tx(
        state,
        sent.closer_scriptpubkey,
        sent.closee_scriptpubkey,
        sent.fee_satoshis,
        sent.locktime,
        we_close=True,
        variant=variant,
    )
    _, remote = state.require_params()
    theirs = der(getattr(msg, _FIELDS[variant]), "closing_sig signature")
    if not verify_closing_signature(tx, remote.basepoints.funding_pubkey, theirs):
        raise ChannelError("closing_sig signature is invalid", ErrorResponse.DISCONNECT)
    return _broadcast(state, tx, ctx.signer.sign_closing_transaction(tx), theirs)
