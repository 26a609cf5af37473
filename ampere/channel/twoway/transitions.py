"""The dispatcher: one table from (phase, event type) to handler, built from the phase modules'
tables, and `step`, the whole state machine as one pure function.

`step` also enforces what holds for every transition: messages are for this channel and arrive
only once the connection is re-established; any change of state is persisted before anything
else happens (a `PersistState` heads the action list); nothing is sent while the peer is away;
and no exception other than `ChannelError` escapes for any input.
"""

from __future__ import annotations

from typing import Any

from ampere.channel.twoway import close, reestablish, update
from ampere.channel.twoway import open as opening
from ampere.channel.twoway.actions import Action, PersistState, SendMessage
from ampere.channel.twoway.common import Context, Handler, Transition
from ampere.channel.twoway.errors import ChannelError, CommandError, ErrorResponse
from ampere.channel.twoway.events import (
    COMMAND_TYPES,
    BlockConnected,
    Event,
    FundingConfirmed,
    FundingSpent,
    OnchainResolved,
)
from ampere.channel.twoway.fast_replace import fast_replace
from ampere.channel.twoway.messages import (
    ChannelReestablish,
    ErrorMessage,
    OpenChannel,
    WarningMessage,
)
from ampere.channel.twoway.state import ChannelState, Connection, Phase
from ampere.errors import AmpereError

__all__ = ["TABLE", "step"]


def _merge(*tables: dict[tuple[Phase, type], Handler]) -> dict[tuple[Phase, type], Handler]:
    merged: dict[tuple[Phase, type], Handler] = {}
    for table in tables:
        clash = merged.keys() & table.keys()
        if clash:
            raise RuntimeError(f"transition defined twice: {sorted((p.value, t.__name__) for p, t in clash)}")
        merged.update(table)
    return merged


TABLE: dict[tuple[Phase, type], Handler] = _merge(
    opening.TRANSITIONS, update.TRANSITIONS, close.TRANSITIONS, reestablish.TRANSITIONS
)

_CHAIN_EVENTS = (FundingConfirmed, FundingSpent, BlockConnected, OnchainResolved)
_CLOSED_PHASES = frozenset({Phase.CLOSING, Phase.FORCE_CLOSING, Phase.CLOSED, Phase.ABORTED})
_ALLOWED_WHILE_AWAY = (ChannelReestablish, ErrorMessage, WarningMessage)
_SENDABLE_WHILE_REESTABLISHING = (ChannelReestablish, ErrorMessage)


def _unexpected(state: ChannelState, event: Any) -> Transition:
    name = type(event).__name__
    if isinstance(event, COMMAND_TYPES):
        raise CommandError(f"{name} is not possible while the channel is {state.phase.value}")
    if isinstance(event, _CHAIN_EVENTS):
        return Transition(state)
    if state.phase in _CLOSED_PHASES:
        raise ChannelError(f"{name} ignored: the channel is {state.phase.value}", ErrorResponse.IGNORE)
    raise ChannelError(f"unexpected {name} while the channel is {state.phase.value}")


def _check_message(state: ChannelState, message: Any) -> None:
    channel_id = getattr(message, "channel_id", None)
    if isinstance(message, OpenChannel) and state.phase is Phase.INIT:
        return
    accepted = {state.channel_id, state.temporary_channel_id}
    if isinstance(message, ErrorMessage | WarningMessage):
        accepted.add(bytes(32))
    if channel_id not in accepted:
        raise ChannelError("message for another channel", ErrorResponse.IGNORE)
    if state.connection is not Connection.LIVE and not isinstance(message, _ALLOWED_WHILE_AWAY):
        raise ChannelError(f"{type(message).__name__} before channel_reestablish", ErrorResponse.DISCONNECT)


def _outgoing(state: ChannelState, actions: tuple[Action, ...]) -> tuple[Action, ...]:
    if state.connection is Connection.LIVE:
        return actions
    allowed: tuple[type, ...] = (
        _SENDABLE_WHILE_REESTABLISHING if state.connection is Connection.REESTABLISHING else ()
    )
    return tuple(
        action
        for action in actions
        if not isinstance(action, SendMessage) or isinstance(action.message, allowed)
    )


def step(state: ChannelState, event: Event, ctx: Context) -> Transition:
    """Apply one event. Raises only `ChannelError` (a `CommandError` for refused commands)."""
    is_command = isinstance(event, COMMAND_TYPES)
    try:
        if not is_command and not isinstance(event, _CHAIN_EVENTS):
            _check_message(state, event)
        handler = TABLE.get((state.phase, type(event)))
        result = _unexpected(state, event) if handler is None else handler(state, event, ctx)
        result = close.shutdown_progress(result, ctx)
    except ChannelError:
        raise
    except AmpereError as exc:
        # Lower layers (keys, transactions, signer enforcement) refusing an input the checks
        # above let through: still our failure, still the protocol error type.
        error_type = CommandError if is_command else ChannelError
        raise error_type(f"{type(event).__name__}: {exc}") from exc
    new_state, actions = result.state, _outgoing(result.state, result.actions)
    if new_state == state:
        return Transition(state, actions)
    new_state = fast_replace(new_state, revision=state.revision + 1)
    return Transition(new_state, (PersistState(new_state.revision, new_state), *actions))
