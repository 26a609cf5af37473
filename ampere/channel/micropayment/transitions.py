"""Both machines' transitions, as tables: (phase, event type) -> handler and the phases it may lead to.

A pair missing from a table is refused with the error its kind of event calls for (a command is
rejected, an unexpected message answered with `micro_error`, a chain event ignored), so no
handler ever runs in a phase it was not written for. The target sets are checked on every step:
a handler that tried to move elsewhere would be a bug, caught before its state is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from ampere.channel.micropayment import payee, payer
from ampere.channel.micropayment.errors import (
    ChainEventError,
    CommandRejectedError,
    ErrorCode,
    MicropaymentError,
    PeerErrorReceived,
    UnexpectedMessageError,
)
from ampere.channel.micropayment.events import (
    BlockConnected,
    BlockDisconnected,
    FundingBuilt,
    FundingConfirmed,
    FundingSpent,
    OpenChannel,
    Pay,
    PeerConnected,
    Refund,
    Resumed,
    Settle,
)
from ampere.channel.micropayment.messages import (
    Accept,
    Ack,
    ErrorMessage,
    FundingCreated,
    Propose,
    RefundSigned,
    Sync,
    Update,
)
from ampere.channel.micropayment.state import PayeePhase, PayerPhase

__all__ = ["PAYEE_TABLE", "PAYER_TABLE", "Transition", "TransitionTable", "unexpected"]

PhaseT = TypeVar("PhaseT", bound=Enum)


@dataclass(frozen=True, slots=True)
class Transition(Generic[PhaseT]):
    handler: Callable[[Any, Any, Any], Any]
    targets: frozenset[PhaseT]


TransitionTable = Mapping[tuple[PhaseT, type[object]], Transition[PhaseT]]


def _table(
    rows: Iterable[tuple[Iterable[PhaseT], type[object], Callable[[Any, Any, Any], Any], Iterable[PhaseT]]],
) -> TransitionTable[PhaseT]:
    table: dict[tuple[PhaseT, type[object]], Transition[PhaseT]] = {}
    for phases, event_type, handler, targets in rows:
        for phase in phases:
            key = (phase, event_type)
            if key in table:
                raise RuntimeError(f"two transitions for {event_type.__name__} in {phase}")
            table[key] = Transition(handler, frozenset(targets))
    return MappingProxyType(table)


_COMMANDS = (OpenChannel, FundingBuilt, Pay, Settle, Refund)
_CHAIN = (BlockConnected, BlockDisconnected, FundingConfirmed, FundingSpent)


def unexpected(phase: Enum, event: object) -> MicropaymentError:
    """The refusal for an event its machine has no transition for in `phase`."""
    name = type(event).__name__
    where = f"while the channel is {phase.value.replace('_', ' ')}"
    if isinstance(event, _COMMANDS):
        return CommandRejectedError(f"cannot {name.lower()} {where}")
    if isinstance(event, _CHAIN):
        return ChainEventError(f"{name} is not expected {where}")
    if isinstance(event, ErrorMessage):
        return PeerErrorReceived(f"the peer reports: {event.data}")
    code = ErrorCode.NOT_OPEN if isinstance(event, Update) else ErrorCode.UNEXPECTED_MESSAGE
    return UnexpectedMessageError(f"{getattr(event, 'NAME', name)} is not expected {where}", code=code)


R = PayerPhase
_FUNDED = (R.FUNDING_BROADCAST, R.OPEN, R.REFUNDING)
_OPENING_TALK = (R.PROPOSED, R.AWAITING_FUNDING_TX, R.AWAITING_REFUND_SIGNATURE)

PAYER_TABLE: TransitionTable[PayerPhase] = _table(
    [
        # opening
        ((R.NEW,), OpenChannel, payer.open_channel, {R.PROPOSED}),
        ((R.PROPOSED,), Accept, payer.accept, {R.AWAITING_FUNDING_TX}),
        ((R.AWAITING_FUNDING_TX, R.AWAITING_REFUND_SIGNATURE), Accept, payer.duplicate_accept, set()),
        ((R.AWAITING_FUNDING_TX,), FundingBuilt, payer.funding_built, {R.AWAITING_REFUND_SIGNATURE}),
        ((R.AWAITING_REFUND_SIGNATURE,), RefundSigned, payer.refund_signed, {R.FUNDING_BROADCAST}),
        (_FUNDED, RefundSigned, payer.duplicate_refund_signed, set()),
        (_OPENING_TALK, ErrorMessage, payer.opening_refused, set()),
        # payments
        ((R.FUNDING_BROADCAST, R.OPEN), Sync, payer.sync, {R.OPEN}),
        ((R.REFUNDING, R.SETTLED, R.REFUNDED), Sync, payer.ignore_sync, set()),
        ((R.OPEN,), Pay, payer.pay, set()),
        ((R.OPEN,), Ack, payer.ack, set()),
        ((R.OPEN,), ErrorMessage, payer.update_refused, set()),
        ((R.FUNDING_BROADCAST, R.REFUNDING, R.SETTLED, R.REFUNDED), ErrorMessage, payer.error_noted, set()),
        # chain
        (tuple(R), BlockConnected, payer.block_connected, {R.REFUNDING}),
        (tuple(R), BlockDisconnected, payer.block_disconnected, {R.FUNDING_BROADCAST, R.OPEN, R.REFUNDING}),
        (_FUNDED, FundingConfirmed, payer.funding_confirmed, set()),
        (_FUNDED, FundingSpent, payer.funding_spent, {R.SETTLED, R.REFUNDED}),
        (_FUNDED, Refund, payer.refund, {R.REFUNDING}),
        # reconnection and restart
        (tuple(R), PeerConnected, payer.peer_connected, set()),
        (tuple(R), Resumed, payer.resumed, set()),
    ]
)

E = PayeePhase
_WATCHING = (E.AWAITING_CONFIRMATION, E.OPEN, E.SETTLING)

PAYEE_TABLE: TransitionTable[PayeePhase] = _table(
    [
        # opening
        ((E.NEW,), Propose, payee.propose, {E.AWAITING_FUNDING}),
        ((E.AWAITING_FUNDING,), Propose, payee.repeated_propose, set()),
        ((E.AWAITING_FUNDING,), FundingCreated, payee.funding_created, {E.AWAITING_CONFIRMATION}),
        (_WATCHING, FundingCreated, payee.repeated_funding_created, set()),
        # payments
        ((E.OPEN,), Update, payee.update, set()),
        ((E.AWAITING_CONFIRMATION, E.SETTLING, E.SETTLED, E.REFUNDED), Update, payee.update_not_open, set()),
        (tuple(E), ErrorMessage, payee.error_received, set()),
        ((E.OPEN, E.SETTLING), Settle, payee.settle, {E.SETTLING}),
        # chain
        (tuple(E), BlockConnected, payee.block_connected, {E.OPEN, E.SETTLING}),
        (
            tuple(E),
            BlockDisconnected,
            payee.block_disconnected,
            {E.AWAITING_CONFIRMATION, E.OPEN, E.SETTLING},
        ),
        (_WATCHING, FundingConfirmed, payee.funding_confirmed, {E.OPEN, E.SETTLING}),
        (_WATCHING, FundingSpent, payee.funding_spent, {E.SETTLED, E.REFUNDED}),
        # reconnection and restart
        (tuple(E), PeerConnected, payee.peer_connected, set()),
        (tuple(E), Resumed, payee.resumed, set()),
    ]
)
