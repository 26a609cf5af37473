"""Closing (BOLT 2 "Channel Close"): shutdown, fee negotiation (legacy closing_signed with
fee_range, or closing_complete/closing_sig from `simple_close` when both peers advertise
option_simple_close), failing the channel, errors from the peer, and what the chain reports about
the funding output: the transitions of the closing phases, as a table.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import replace

from ampere.bitcoin.script import p2wsh_script
from ampere.bitcoin.tx import Transaction
from ampere.channel.transactions.closing import (
    ClosingTransaction,
    build_legacy_closing_tx,
    dust_threshold_sat,
    finalize_closing,
    verify_closing_signature,
)
from ampere.channel.transactions.commitment import commitment_number_from_tx
from ampere.channel.transactions.errors import TransactionBuildError
from ampere.channel.transactions.keys import derive_commitment_keys
from ampere.channel.transactions.scripts import to_local_script, to_remote_script_pubkey
from ampere.channel.twoway.actions import (
    Action,
    Broadcast,
    ChannelClosed,
    CloseType,
    Error,
    OpenFailed,
    SendMessage,
)
from ampere.channel.twoway.common import (
    Context,
    Handler,
    Transition,
    compact,
    der,
    funding_output,
    signed_local_commitment,
)
from ampere.channel.twoway.errors import ChannelError, CommandError, ErrorResponse
from ampere.channel.twoway.events import (
    FailChannel,
    ForceClose,
    FundingSpent,
    OnchainResolved,
    ShutdownCommand,
)
from ampere.channel.twoway.ledger import View, has_unsigned_local_updates, obscuring_factor, snapshot
from ampere.channel.twoway.limits import valid_shutdown_script
from ampere.channel.twoway.messages import (
    ClosingComplete,
    ClosingSig,
    ClosingSigned,
    ErrorMessage,
    Shutdown,
    WarningMessage,
)
from ampere.channel.twoway.simple_close import (
    closing_complete_received,
    closing_sig_received,
    propose_simple_close,
    uses_simple_close,
)
from ampere.channel.twoway.state import (
    PRE_FUNDING_PHASES,
    ChannelState,
    Negotiation,
    Phase,
    ShutdownState,
)
from ampere.channel.twoway.update import sign_commitment
from ampere.wire.features import Feature

__all__ = [
    "TRANSITIONS",
    "fail_channel",
    "pays_own_commitment_scripts",
    "propose_closing",
    "shutdown_progress",
    "start_negotiation",
]

# 1 + 1 + (1 + 73) * 2 + 1 + 71: item count, the CHECKMULTISIG dummy, two signatures with their
# sighash byte, the 2-of-2 script; plus 2 for the segwit marker and flag.
_CLOSING_WITNESS_WEIGHT = 224


# --- failing the channel ----------------------------------------------------------------------------


def _go_on_chain(
    state: ChannelState,
    reason: str,
    ctx: Context,
    notify: tuple[Action, ...],
    channel_id: bytes | None = None,
) -> Transition:
    """Abandon an unfunded channel, or put our newest commitment on chain (unless our state is
    known to be stale, in which case broadcasting it would hand the peer every output).

    The commitment's broadcast comes before `notify` (the `error` to the peer): the node performs a
    channel's actions in order, and a peer reacting to the error must not get its commitment out first."""
    if state.phase in PRE_FUNDING_PHASES:
        state = replace(state, phase=Phase.ABORTED, failure=reason)
        return Transition(state, (*notify, OpenFailed(channel_id or state.temporary_channel_id, reason)))
    if state.phase in (Phase.FORCE_CLOSING, Phase.CLOSED, Phase.ABORTED, Phase.CLOSING):
        return Transition(replace(state, failure=state.failure or reason), notify)
    state = replace(state, phase=Phase.FORCE_CLOSING, failure=reason)
    if state.data_loss:
        return Transition(state, (*notify, ChannelClosed(state.channel_id, CloseType.REMOTE_FORCE, None)))
    commitment = signed_local_commitment(state, ctx)
    return Transition(
        state,
        (
            Broadcast(commitment, "local commitment"),
            *notify,
            ChannelClosed(state.channel_id, CloseType.LOCAL_FORCE, commitment.txid),
        ),
    )


def fail_channel(state: ChannelState, event: FailChannel, ctx: Context) -> Transition:
    channel_id = event.channel_id or state.wire_channel_id
    error = ErrorMessage(channel_id, event.reason.encode()[:1000])
    return _go_on_chain(state, event.reason, ctx, (SendMessage(error),), event.channel_id)


def force_close(state: ChannelState, cmd: ForceClose, ctx: Context) -> Transition:
    return fail_channel(state, FailChannel(cmd.reason), ctx)


def error_received(state: ChannelState, msg: ErrorMessage, ctx: Context) -> Transition:
    reason = f"peer sent error: {msg.text}"
    return _go_on_chain(state, reason, ctx, (Error(ErrorResponse.CLOSE, reason),))


def warning_received(state: ChannelState, msg: WarningMessage, ctx: Context) -> Transition:
    return Transition(state, (Error(ErrorResponse.IGNORE, f"peer sent warning: {msg.text}"),))


# --- shutdown ----------------------------------------------------------------------------------------


def shutdown_command(state: ChannelState, cmd: ShutdownCommand, ctx: Context) -> Transition:
    if state.shutdown.local_requested:
        raise CommandError("shutdown already requested")
    script = state.local_shutdown_script if cmd.scriptpubkey is None else cmd.scriptpubkey
    if not valid_shutdown_script(state, script):
        raise CommandError("shutdown script is not in an allowed form")
    state = replace(
        state,
        phase=Phase.SHUTDOWN,
        local_shutdown_script=script,
        shutdown=replace(state.shutdown, local_requested=True),
    )
    return Transition(state)


def shutdown_received(state: ChannelState, msg: Shutdown, ctx: Context) -> Transition:
    shutdown = state.shutdown
    if shutdown.remote_script is not None:
        if shutdown.remote_script == msg.scriptpubkey:
            return Transition(state)  # retransmitted after a reconnection
        raise ChannelError("peer sent a second shutdown with another script", ErrorResponse.DISCONNECT)
    if not valid_shutdown_script(state, msg.scriptpubkey):
        raise ChannelError("shutdown scriptpubkey is not in an allowed form", ErrorResponse.WARN)
    _, remote = state.require_params()
    if (
        state.both_support(Feature.UPFRONT_SHUTDOWN_SCRIPT)
        and remote.upfront_shutdown_script
        and remote.upfront_shutdown_script != msg.scriptpubkey
    ):
        raise ChannelError("shutdown script differs from upfront_shutdown_script", ErrorResponse.DISCONNECT)
    ledger = state.require_ledger()
    if any(not entry.offered and entry.add.local is None for entry in ledger.htlcs) or any(
        not update.from_us and update.marks.local is None for update in ledger.fee_updates
    ):
        raise ChannelError("shutdown while its updates are not signed", ErrorResponse.DISCONNECT)
    state = replace(
        state,
        phase=Phase.SHUTDOWN,
        shutdown=ShutdownState(shutdown.local_sent, msg.scriptpubkey, local_requested=True),
    )
    return Transition(state)


def _quiescent(state: ChannelState) -> bool:
    ledger = state.require_ledger()
    return not ledger.htlcs and not ledger.fee_updates and not ledger.awaiting_revocation


def shutdown_progress(result: Transition, ctx: Context) -> Transition:
    """Run after every SHUTDOWN transition: send our shutdown once our updates are all signed,
    and start fee negotiation once both shutdowns are out and no HTLC or update remains."""
    state, actions = result.state, result.actions
    if state.phase is not Phase.SHUTDOWN or not state.is_live:
        return result
    shutdown = state.shutdown
    if shutdown.local_requested and not shutdown.local_sent:
        ledger = state.require_ledger()
        if has_unsigned_local_updates(ledger):
            signed = sign_commitment(state, ctx)
            state, actions = signed.state, actions + signed.actions
        if not has_unsigned_local_updates(state.require_ledger()):
            actions += (SendMessage(Shutdown(state.channel_id, state.local_shutdown_script)),)
            state = replace(state, shutdown=replace(shutdown, local_sent=True))
    if state.shutdown.local_sent and state.shutdown.remote_script is not None and _quiescent(state):
        started = start_negotiation(replace(state, phase=Phase.NEGOTIATING, negotiation=Negotiation()), ctx)
        state, actions = started.state, actions + started.actions
    return Transition(state, actions)


def start_negotiation(state: ChannelState, ctx: Context) -> Transition:
    """Open fee negotiation (again, after a reconnection): with option_simple_close both sides
    propose their own transaction; otherwise the opener sends the first closing_signed."""
    if uses_simple_close(state):
        return propose_simple_close(state, ctx)
    if state.is_opener:
        return propose_closing(state, ctx)
    return Transition(state)


# --- closing_signed -----------------------------------------------------------------------------------


def _closing_tx(
    state: ChannelState, fee_sat: int, *, ours: bool, omit_signer_output: bool = False
) -> ClosingTransaction:
    """The closing transaction as the signer builds it: with its own dust limit, maybe without
    its own output (BOLT 3 legacy closing: two variants per signer)."""
    local, remote = state.require_params()
    remote_script = state.shutdown.remote_script or b""
    snap = snapshot(state.require_ledger(), View.LOCAL)
    funding = funding_output(state)
    try:
        if ours:
            return build_legacy_closing_tx(
                funding,
                state.local_shutdown_script,
                remote_script,
                snap.local_msat,
                snap.remote_msat,
                fee_sat,
                local_is_opener=state.is_opener,
                dust_limit_sat=local.dust_limit_sat,
                omit_local_output=omit_signer_output,
            )
        theirs = build_legacy_closing_tx(
            funding.swapped(),
            remote_script,
            state.local_shutdown_script,
            snap.remote_msat,
            snap.local_msat,
            fee_sat,
            local_is_opener=not state.is_opener,
            dust_limit_sat=remote.dust_limit_sat,
            omit_local_output=omit_signer_output,
        )
    except TransactionBuildError as exc:
        raise ChannelError(f"closing fee {fee_sat} cannot be paid: {exc}") from exc
    return ClosingTransaction(theirs.tx, funding, theirs.remote_output_index, theirs.local_output_index)


def _fee_for(state: ChannelState, feerate_per_kw: int) -> int:
    weight = _closing_tx(state, 0, ours=True).tx.weight + _CLOSING_WITNESS_WEIGHT
    return feerate_per_kw * weight // 1000


def _opener_balance_sat(state: ChannelState) -> int:
    snap = snapshot(state.require_ledger(), View.LOCAL)
    return (snap.local_msat if state.is_opener else snap.remote_msat) // 1000


def _closing_signed(state: ChannelState, fee_sat: int, low: int, high: int, ctx: Context) -> ClosingSigned:
    signature = ctx.signer.sign_closing_transaction(_closing_tx(state, fee_sat, ours=True))
    return ClosingSigned(state.channel_id, fee_sat, compact(signature), low, high)


def propose_closing(state: ChannelState, ctx: Context) -> Transition:
    """The opener's first closing_signed (also after a reconnection: negotiation restarts)."""
    feerate = ctx.feerate_estimate_per_kw or state.require_ledger().feerate_per_kw
    balance = _opener_balance_sat(state)
    fee = min(_fee_for(state, feerate), balance)
    low = min(_fee_for(state, ctx.config.min_feerate_per_kw), fee)
    high = max(fee, min(balance, fee * ctx.config.closing_fee_max_percent // 100))
    message = _closing_signed(state, fee, low, high, ctx)
    negotiation = Negotiation(our_fee_sat=fee, our_min_fee_sat=low, our_max_fee_sat=high, last_sent=message)
    return Transition(replace(state, negotiation=negotiation), (SendMessage(message),))


def _finish(
    state: ChannelState, theirs: ClosingTransaction, their_sig: bytes, ctx: Context, reply: tuple[Action, ...]
) -> Transition:
    ours = ctx.signer.sign_closing_transaction(theirs)
    tx = finalize_closing(theirs, ours, their_sig)
    for output in tx.outputs:
        if output.value < dust_threshold_sat(output.script_pubkey):
            raise ChannelError("an output of the closing transaction is below its dust threshold")
    state = replace(state, phase=Phase.CLOSING, closing_tx=tx)
    return Transition(
        state,
        (*reply, Broadcast(tx, "mutual close"), ChannelClosed(state.channel_id, CloseType.MUTUAL, tx.txid)),
    )


def closing_signed_received(state: ChannelState, msg: ClosingSigned, ctx: Context) -> Transition:
    fee = msg.fee_satoshis
    if fee > _opener_balance_sat(state):
        raise ChannelError(f"closing fee {fee} exceeds the opener's balance")
    _, remote = state.require_params()
    their_sig = der(msg.signature, "closing_signed signature")
    candidates = [_closing_tx(state, fee, ours=False)]
    # Without its own output the signer's variant may have no output at all: then it has one.
    with suppress(ChannelError):
        candidates.append(_closing_tx(state, fee, ours=False, omit_signer_output=True))
    theirs = next(
        (
            tx
            for tx in candidates
            if verify_closing_signature(tx, remote.basepoints.funding_pubkey, their_sig)
        ),
        None,
    )
    if theirs is None:
        raise ChannelError(f"closing_signed signature is not valid for either variant (fee {fee})")
    negotiation = state.negotiation or Negotiation()
    state = replace(state, negotiation=replace(negotiation, their_fee_sat=fee))
    if negotiation.our_fee_sat == fee:
        return _finish(state, theirs, their_sig, ctx, ())
    config = ctx.config
    if state.is_opener:
        low, high = negotiation.our_min_fee_sat, negotiation.our_max_fee_sat
    else:
        feerate = ctx.feerate_estimate_per_kw or state.require_ledger().feerate_per_kw
        low = min(_fee_for(state, config.min_feerate_per_kw), _fee_for(state, feerate))
        high = max(msg.max_fee_satoshis or fee, fee)
    if msg.fee_range is not None:
        lo, hi = max(low, msg.fee_range[0]), min(high, msg.fee_range[1])
        if lo > hi:
            raise ChannelError("closing_signed fee_range does not overlap ours", ErrorResponse.WARN)
        if not lo <= fee <= hi:
            if state.is_opener or negotiation.last_sent is not None:
                raise ChannelError(f"closing fee {fee} is outside the fee range overlap [{lo}, {hi}]")
            counter = min(max(fee, lo), hi)
            message = _closing_signed(state, counter, low, high, ctx)
            negotiation = replace(state.negotiation or negotiation, our_fee_sat=counter, our_min_fee_sat=low,
                                  our_max_fee_sat=high, last_sent=message)  # fmt: skip
            return Transition(replace(state, negotiation=negotiation), (SendMessage(message),))
    elif not low <= fee <= high:
        # Legacy peer without fee_range: meet it halfway (the spec's "strictly between").
        ours = negotiation.our_fee_sat if negotiation.our_fee_sat is not None else min(max(fee, low), high)
        counter = (ours + fee) // 2
        if counter not in (ours, fee):
            message = _closing_signed(state, counter, low, high, ctx)
            negotiation = replace(state.negotiation or negotiation, our_fee_sat=counter, last_sent=message)
            return Transition(replace(state, negotiation=negotiation), (SendMessage(message),))
    reply = _closing_signed(state, fee, low, high, ctx)
    return _finish(state, theirs, their_sig, ctx, (SendMessage(reply),))


def late_closing_signed(state: ChannelState, msg: ClosingSigned, ctx: Context) -> Transition:
    return Transition(state)


def simple_close_received(state: ChannelState, msg: ClosingComplete | ClosingSig, ctx: Context) -> Transition:
    if not uses_simple_close(state) or state.phase not in (Phase.NEGOTIATING, Phase.CLOSING):
        raise ChannelError(
            f"unexpected {msg.NAME}: option_simple_close was not negotiated", ErrorResponse.WARN
        )
    if isinstance(msg, ClosingComplete):
        return closing_complete_received(state, msg, ctx)
    return closing_sig_received(state, msg, ctx)


# --- the chain ------------------------------------------------------------------------------------------


def pays_own_commitment_scripts(state: ChannelState, tx: Transaction, per_commitment_point: bytes) -> bool:
    """Whether `tx` pays a script only our own commitment at `per_commitment_point` has: our
    `to_local`, or the peer's `to_remote` (the peer's commitments pay its balance elsewhere). Tells
    one of our revoked commitments (a developer cheat, or a node run from an old copy of its state)
    from a revoked commitment of the peer with the same number."""
    local, remote = state.require_params()
    keys = derive_commitment_keys(per_commitment_point, local.basepoints, remote.basepoints)
    ours = {
        p2wsh_script(
            to_local_script(keys.revocation_pubkey, remote.to_self_delay, keys.local_delayed_pubkey)
        ),
        to_remote_script_pubkey(
            remote.basepoints.payment_basepoint, anchors=state.commitment_format.has_anchors
        ),
    }
    return any(output.script_pubkey in ours for output in tx.outputs)


def _classify(state: ChannelState, tx: Transaction, ctx: Context) -> CloseType:
    if state.closing_tx is not None and tx.txid == state.closing_tx.txid:
        return CloseType.MUTUAL
    ledger = state.require_ledger()
    number = commitment_number_from_tx(tx, obscuring_factor(state))
    if number is None:
        return CloseType.MUTUAL
    if not state.data_loss and number == ledger.local_commitment_number:
        from ampere.channel.twoway.common import local_commitment

        if local_commitment(state, ledger, ctx).txid == tx.txid:
            return CloseType.LOCAL_FORCE
    if number < ledger.local_commitment_number and pays_own_commitment_scripts(
        state, tx, ctx.signer.per_commitment_point(number)
    ):
        return CloseType.LOCAL_FORCE  # one of our own revoked commitments: the peer may punish it
    if number < ledger.remote_acked_upto:
        return CloseType.BREACH
    return CloseType.REMOTE_FORCE


def funding_spent(state: ChannelState, event: FundingSpent, ctx: Context) -> Transition:
    close_type = _classify(state, event.transaction, ctx)
    if close_type is CloseType.MUTUAL:
        new_state = replace(state, phase=Phase.CLOSED, closing_tx=event.transaction)
    else:
        new_state = replace(state, phase=Phase.FORCE_CLOSING)
    if (
        state.phase in (Phase.CLOSING, Phase.FORCE_CLOSING)
        and state.closing_tx is not None
        and close_type is CloseType.MUTUAL
    ):
        return Transition(new_state)
    return Transition(new_state, (ChannelClosed(state.channel_id, close_type, event.transaction.txid),))


def onchain_resolved(state: ChannelState, event: OnchainResolved, ctx: Context) -> Transition:
    return Transition(replace(state, phase=Phase.CLOSED))


def _ignore(state: ChannelState, event: object, ctx: Context) -> Transition:
    return Transition(state)


FUNDED_PHASES = (
    Phase.WAIT_CHANNEL_READY,
    Phase.NORMAL,
    Phase.SHUTDOWN,
    Phase.NEGOTIATING,
    Phase.CLOSING,
    Phase.FORCE_CLOSING,
)

TRANSITIONS: dict[tuple[Phase, type], Handler] = {
    (Phase.WAIT_CHANNEL_READY, ShutdownCommand): shutdown_command,
    (Phase.NORMAL, ShutdownCommand): shutdown_command,
    (Phase.SHUTDOWN, ShutdownCommand): shutdown_command,
    (Phase.WAIT_CHANNEL_READY, Shutdown): shutdown_received,
    (Phase.NORMAL, Shutdown): shutdown_received,
    (Phase.SHUTDOWN, Shutdown): shutdown_received,
    (Phase.NEGOTIATING, Shutdown): shutdown_received,
    (Phase.CLOSING, Shutdown): _ignore,
    (Phase.NEGOTIATING, ClosingSigned): closing_signed_received,
    (Phase.CLOSING, ClosingSigned): late_closing_signed,
    (Phase.FORCE_CLOSING, OnchainResolved): onchain_resolved,
    (Phase.CLOSING, OnchainResolved): onchain_resolved,
}
for _phase in Phase:
    TRANSITIONS[(_phase, FailChannel)] = fail_channel
    TRANSITIONS[(_phase, ForceClose)] = force_close
    TRANSITIONS[(_phase, ErrorMessage)] = error_received
    TRANSITIONS[(_phase, WarningMessage)] = warning_received
    TRANSITIONS[(_phase, ClosingComplete)] = simple_close_received
    TRANSITIONS[(_phase, ClosingSig)] = simple_close_received
for _phase in FUNDED_PHASES:
    TRANSITIONS[(_phase, FundingSpent)] = funding_spent
