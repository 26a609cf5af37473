"""Disconnection and channel_reestablish (BOLT 2 "Message Retransmission"), as a table.

On disconnection the peer's unsigned updates are forgotten (it re-sends them); ours are kept and
re-sent. On reconnection each side says which commitment_signed and revoke_and_ack it expects
next, proves it knows the other's last revocation secret, and then each retransmits exactly what
the other missed: channel_ready if nothing happened since, the last revoke_and_ack, the last
commitment_signed with its updates in their original order (and the two in their original
relative order). A peer that proves we have lost state gets an `error` asking it to close, and we
never broadcast our stale commitment.
"""

from __future__ import annotations

from dataclasses import replace

from ampere.channel.twoway.actions import Action, ChannelClosed, CloseType, OpenFailed, SendMessage
from ampere.channel.twoway.close import shutdown_progress, start_negotiation
from ampere.channel.twoway.common import Context, Handler, Transition
from ampere.channel.twoway.errors import ChannelError, ErrorResponse
from ampere.channel.twoway.events import Disconnected, Reconnected
from ampere.channel.twoway.ledger import drop_uncommitted_remote_updates, sent_update_messages
from ampere.channel.twoway.messages import (
    ChannelMessage,
    ChannelReady,
    ChannelReestablish,
    ErrorMessage,
    Shutdown,
)
from ampere.channel.twoway.state import PRE_FUNDING_PHASES, ChannelState, Connection, Ledger, Phase
from ampere.channel.twoway.update import auto_sign
from ampere.crypto.keys import KeyDerivationError, per_commitment_point
from ampere.crypto.shachain import ShachainStore

__all__ = ["TRANSITIONS", "disconnect", "expected_reestablish"]

REESTABLISH_PHASES = (
    Phase.WAIT_CHANNEL_READY,
    Phase.NORMAL,
    Phase.SHUTDOWN,
    Phase.NEGOTIATING,
    Phase.CLOSING,
)


def disconnect(state: ChannelState) -> ChannelState:
    """The state as it must be after a disconnection (also what a restart starts from)."""
    state = replace(state, connection=Connection.DISCONNECTED)
    if state.ledger is not None:
        state = replace(state, ledger=drop_uncommitted_remote_updates(state.ledger))
    if state.phase is Phase.NEGOTIATING:
        # BOLT 2: fee negotiation restarts on reconnection.
        state = replace(state, negotiation=None)
    return state


def disconnected(state: ChannelState, event: Disconnected, ctx: Context) -> Transition:
    if state.phase in PRE_FUNDING_PHASES:
        # Nothing is on chain: both sides forget the channel (BOLT 2 "SHOULD NOT remember").
        reason = "disconnected while opening"
        return Transition(
            replace(state, phase=Phase.ABORTED, failure=reason, connection=Connection.DISCONNECTED),
            (OpenFailed(state.temporary_channel_id, reason),),
        )
    return Transition(disconnect(state))


def expected_reestablish(state: ChannelState, ctx: Context) -> ChannelReestablish:
    ledger = state.require_ledger()
    next_revocation = (
        ledger.remote_commitment_number - 1 if ledger.awaiting_revocation else ledger.remote_commitment_number
    )
    last_secret = bytes(32)
    if next_revocation > 0:
        last_secret = ShachainStore.from_bytes(ledger.remote_secrets).secret_for_commitment(
            next_revocation - 1
        )
    return ChannelReestablish(
        channel_id=state.channel_id,
        next_commitment_number=ledger.local_commitment_number + 1,
        next_revocation_number=next_revocation,
        your_last_per_commitment_secret=last_secret,
        my_current_per_commitment_point=ctx.signer.per_commitment_point(ledger.local_commitment_number),
    )


def reconnected(state: ChannelState, event: Reconnected, ctx: Context) -> Transition:
    if state.phase in REESTABLISH_PHASES:
        state = replace(state, connection=Connection.REESTABLISHING)
        return Transition(state, (SendMessage(expected_reestablish(state, ctx)),))
    state = replace(state, connection=Connection.LIVE)
    if state.phase is Phase.FORCE_CLOSING and state.failure:
        # BOLT 2: a channel in an error state retransmits its error and ignores the rest.
        return Transition(
            state, (SendMessage(ErrorMessage(state.wire_channel_id, state.failure.encode()[:1000])),)
        )
    return Transition(state)


def _check_revocation(state: ChannelState, ledger: Ledger, msg: ChannelReestablish, ctx: Context) -> bool:
    """Returns True when the peer proved that we have lost state; raises when it lies."""
    local_number = ledger.local_commitment_number
    claimed = msg.next_revocation_number
    secret = msg.your_last_per_commitment_secret
    if claimed > local_number:
        try:
            genuine = per_commitment_point(secret) == ctx.signer.per_commitment_point(claimed - 1)
        except KeyDerivationError:
            genuine = False
        if genuine:
            return True
        raise ChannelError("peer claims a future state with a wrong your_last_per_commitment_secret")
    if claimed > 0 and secret != ctx.signer.release_commitment_secret(claimed - 1):
        raise ChannelError("your_last_per_commitment_secret does not match our secret")
    if claimed < local_number - 1:
        raise ChannelError(
            f"next_revocation_number {claimed} is behind our last revocation ({local_number - 1})"
        )
    return False


def _retransmissions(state: ChannelState, ledger: Ledger, msg: ChannelReestablish) -> list[ChannelMessage]:
    resend_revocation = (
        ledger.local_commitment_number > 0
        and msg.next_revocation_number == ledger.local_commitment_number - 1
    )
    remote_number = ledger.remote_commitment_number
    if msg.next_commitment_number == remote_number + 1:
        resend_commitment = False
    elif msg.next_commitment_number == remote_number and ledger.awaiting_revocation:
        resend_commitment = True
    else:
        raise ChannelError(
            f"next_commitment_number {msg.next_commitment_number} does not follow "
            f"our commitment {remote_number}"
        )
    revocation: list[ChannelMessage] = []
    if resend_revocation:
        if ledger.last_sent_revoke_and_ack is None:
            raise ChannelError("peer asks for a revoke_and_ack we never sent")
        revocation = [ledger.last_sent_revoke_and_ack]
    commitment: list[ChannelMessage] = []
    if resend_commitment:
        if ledger.last_sent_commitment_signed is None:
            raise ChannelError("peer asks for a commitment_signed we never sent")
        commitment = [*sent_update_messages(state, ledger, remote_number), ledger.last_sent_commitment_signed]
    ordered = commitment + revocation if ledger.revoke_sent_after_commit else revocation + commitment
    # Updates no commitment_signed of ours covered: the peer forgot them, so they go again.
    return ordered + list(sent_update_messages(state, ledger, None))


def reestablish_received(state: ChannelState, msg: ChannelReestablish, ctx: Context) -> Transition:
    if state.connection is Connection.LIVE:
        raise ChannelError("unexpected channel_reestablish", ErrorResponse.IGNORE)
    if state.connection is not Connection.REESTABLISHING:
        raise ChannelError("channel_reestablish before we reconnected", ErrorResponse.DISCONNECT)
    ledger = state.require_ledger()
    if msg.next_commitment_number == 0:
        raise ChannelError("next_commitment_number is zero")
    if _check_revocation(state, ledger, msg, ctx):
        from ampere.channel.twoway.close import fail_channel
        from ampere.channel.twoway.events import FailChannel

        reason = "we have lost channel state: please close the channel"
        failed = fail_channel(
            replace(state, data_loss=True, connection=Connection.LIVE), FailChannel(reason), ctx
        )
        closed = [a for a in failed.actions if not isinstance(a, ChannelClosed)]
        return Transition(
            failed.state, (*closed, ChannelClosed(state.channel_id, CloseType.REMOTE_FORCE, None))
        )
    messages: list[ChannelMessage] = []
    if msg.next_commitment_number == 1 and ledger.local_commitment_number == 0 and state.channel_ready_sent:
        messages.append(ChannelReady(state.channel_id, ctx.signer.per_commitment_point(1)))
    messages += _retransmissions(state, ledger, msg)
    if state.shutdown.local_sent:
        messages.append(Shutdown(state.channel_id, state.local_shutdown_script))
    state = replace(state, connection=Connection.LIVE)
    actions: tuple[Action, ...] = tuple(SendMessage(message) for message in messages)
    if state.phase is Phase.NEGOTIATING:
        proposed = start_negotiation(state, ctx)
        state, actions = proposed.state, actions + proposed.actions
    elif (
        state.phase is Phase.CLOSING
        and state.negotiation is not None
        and state.negotiation.last_sent is not None
    ):
        actions += (SendMessage(state.negotiation.last_sent),)
    result = Transition(state, actions)
    if state.phase in (Phase.NORMAL, Phase.SHUTDOWN):
        result = auto_sign(result, ctx)
    return shutdown_progress(result, ctx)


TRANSITIONS: dict[tuple[Phase, type], Handler] = {}
for _phase in Phase:
    TRANSITIONS[(_phase, Disconnected)] = disconnected
    TRANSITIONS[(_phase, Reconnected)] = reconnected
for _phase in REESTABLISH_PHASES:
    TRANSITIONS[(_phase, ChannelReestablish)] = reestablish_received
