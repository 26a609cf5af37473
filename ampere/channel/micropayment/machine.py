"""`PayerChannel` and `PayeeChannel`: one side of one channel, driven by events, returning actions.

Each machine holds an immutable state and a transition table. `handle(event)` looks the pair
(phase, event type) up, runs the handler and keeps the new state only if it returned; when the state
changed it returns just a `Persist`, and holds the handler's other actions until the shell reports
`PersistCompleted` for that revision (LDK's rule: nothing leaves before the state behind it is durable).
A refused event raises `MicropaymentError` and changes nothing; if a peer's message was refused and
the peer should hear of it, the error's `reply` is the `micro_error` to send.
"""

from __future__ import annotations

from dataclasses import replace
from enum import Enum
from typing import Any, Generic, TypeVar

from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.channel.micropayment import payee, payer
from ampere.channel.micropayment.codec import decode_state, encode_state
from ampere.channel.micropayment.errors import (
    MicropaymentError,
    Response,
    StateDecodeError,
    UnexpectedMessageError,
)
from ampere.channel.micropayment.events import Action, Event, Persist, PersistCompleted
from ampere.channel.micropayment.messages import (
    Accept,
    Ack,
    ErrorMessage,
    FundingCreated,
    Propose,
    RefundSigned,
    Sync,
    Update,
    decode_micro,
)
from ampere.channel.micropayment.state import (
    ChannelState,
    PayeeConfig,
    PayeePhase,
    PayeeState,
    PayerPhase,
    PayerState,
    Role,
)
from ampere.channel.micropayment.transactions import ChannelTerms
from ampere.channel.micropayment.transitions import PAYEE_TABLE, PAYER_TABLE, TransitionTable, unexpected

__all__ = ["PayeeChannel", "PayerChannel"]

_MESSAGES = (Propose, Accept, FundingCreated, RefundSigned, Sync, Update, Ack, ErrorMessage)
_REPLY_LIMIT = 1000  # characters of error text sent back; enough to explain, small enough to never matter

StateT = TypeVar("StateT", PayerState, PayeeState)
PhaseT = TypeVar("PhaseT", bound=Enum)


class _Channel(Generic[StateT, PhaseT]):
    role: Role

    def __init__(self, state: StateT, context: object, table: TransitionTable[PhaseT]) -> None:
        self._state: StateT = state
        self._context = context
        self._table = table
        self._held: list[tuple[int, list[Action]]] = []

    # --- driving -------------------------------------------------------------------------------------
    def handle(self, event: Event | PersistCompleted) -> list[Action]:
        """Feed one event; returns the actions to run now, in order."""
        if isinstance(event, PersistCompleted):
            return self._release(event.revision)
        state = self._state
        phase: Any = state.phase
        try:
            if isinstance(event, _MESSAGES) and event.channel_id != state.channel_id:
                raise UnexpectedMessageError("message for another channel", response=Response.IGNORE)
            transition = self._table.get((phase, type(event)))
            if transition is None:
                raise unexpected(phase, event)
            new_state, actions = transition.handler(self._context, state, event)
        except MicropaymentError as exc:
            # Never answer an error with an error: two confused peers would bounce them forever.
            replying = isinstance(event, _MESSAGES) and not isinstance(event, ErrorMessage)
            if replying and exc.response in (Response.WARN, Response.CLOSE):
                text = exc.message[:_REPLY_LIMIT]
                exc.reply = ErrorMessage(state.channel_id, exc.code, exc.sequence, text)
            raise
        if new_state.phase is not phase and new_state.phase not in transition.targets:
            raise RuntimeError(f"{type(event).__name__} may not lead from {phase} to {new_state.phase}")
        return self._emit(new_state, list(actions))

    def receive(self, data: bytes) -> list[Action]:
        """Decode a message from the peer and handle it."""
        try:
            message = decode_micro(data)
        except MicropaymentError as exc:
            if exc.response is not Response.DISCONNECT:
                exc.reply = ErrorMessage(self._state.channel_id, exc.code, 0, exc.message[:_REPLY_LIMIT])
            raise
        return self.handle(message)

    def _emit(self, new_state: StateT, actions: list[Action]) -> list[Action]:
        if new_state != self._state:
            revision = self._state.revision + 1
            new_state = replace(new_state, revision=revision)
            self._state = new_state
            self._held.append((revision, actions))
            return [Persist(new_state.channel_id, revision, encode_state(new_state))]
        if self._held:  # nothing overtakes a state that is not durable yet
            self._held[-1][1].extend(actions)
            return []
        return actions

    def _release(self, revision: int) -> list[Action]:
        if revision > self._state.revision:
            raise MicropaymentError(
                f"persist of revision {revision} reported, but the latest is {self._state.revision}",
                response=Response.IGNORE,
            )
        released: list[Action] = []
        while self._held and self._held[0][0] <= revision:
            released += self._held.pop(0)[1]
        return released

    # --- what the shell reads -------------------------------------------------------------------------
    @property
    def state(self) -> StateT:
        return self._state

    @property
    def channel_id(self) -> bytes:
        return self._state.channel_id

    @property
    def public_state(self) -> ChannelState:
        return self._state.phase.public

    @property
    def revision(self) -> int:
        return self._state.revision

    @property
    def awaiting_persist(self) -> bool:
        return bool(self._held)

    @property
    def terms(self) -> ChannelTerms | None:
        return self._state.terms

    @property
    def capacity_sat(self) -> int:
        proposal = self._state.proposal
        return 0 if proposal is None else proposal.capacity_sat

    @property
    def refund_height(self) -> int | None:
        proposal = self._state.proposal
        return None if proposal is None else proposal.refund_height

    def to_bytes(self) -> bytes:
        return encode_state(self._state)

    @staticmethod
    def key_index_of(data: bytes) -> int:
        """The key index a stored blob needs its funding key derived from."""
        return decode_state(data).key_index


def _check_key(state: PayerState | PayeeState, key: PrivateKey) -> None:
    if key.public_key.data != state.funding_pubkey:
        raise StateDecodeError("the funding key does not match the stored channel")


class PayerChannel(_Channel[PayerState, PayerPhase]):
    """The payer's side. Start with `create(...)` then `handle(OpenChannel(...))`."""

    role = Role.PAYER

    @property
    def phase(self) -> PayerPhase:
        return self._state.phase

    def __init__(self, state: PayerState, key: PrivateKey) -> None:
        super().__init__(state, payer.PayerContext(key), PAYER_TABLE)
        self._key = key

    @classmethod
    def create(cls, key: PrivateKey, key_index: int, channel_id: bytes, tip_height: int = 0) -> PayerChannel:
        if len(channel_id) != 32:
            raise MicropaymentError("a channel id is 32 bytes", response=Response.IGNORE)
        return cls(PayerState(channel_id, key_index, key.public_key.data, tip_height=tip_height), key)

    @classmethod
    def from_bytes(cls, data: bytes, key: PrivateKey) -> PayerChannel:
        state = decode_state(data)
        if not isinstance(state, PayerState):
            raise StateDecodeError("the stored state is a payee's")
        _check_key(state, key)
        return cls(state, key)

    @property
    def sequence(self) -> int:
        return self._state.sequence

    @property
    def paid_msat(self) -> int:
        """The total of the last update signed (acknowledged or not)."""
        return self._state.paid_msat

    @property
    def acked_paid_msat(self) -> int:
        return self._state.acked_paid_msat

    @property
    def funding_tx(self) -> Transaction | None:
        return self._state.funding_tx

    @property
    def funding_outpoint(self) -> OutPoint | None:
        return self._state.funding_outpoint

    def signed_refund(self) -> Transaction:
        """The fully signed refund (valid on chain from `refund_height`); only once the payee signed it."""
        if self._state.phase in (PayerPhase.NEW, PayerPhase.PROPOSED, PayerPhase.AWAITING_FUNDING_TX):
            raise MicropaymentError("the refund does not exist yet", response=Response.IGNORE)
        return payer.signed_refund(payer.PayerContext(self._key), self._state)

    @property
    def can_forget(self) -> bool:
        """True when nothing of the channel is or can get on chain: the record may be dropped."""
        return self._state.phase in (
            PayerPhase.NEW,
            PayerPhase.PROPOSED,
            PayerPhase.AWAITING_FUNDING_TX,
            PayerPhase.AWAITING_REFUND_SIGNATURE,
        )


class PayeeChannel(_Channel[PayeeState, PayeePhase]):
    """The payee's side. Made by `create(...)` when a `micro_propose` arrives, which it then handles."""

    role = Role.PAYEE

    @property
    def phase(self) -> PayeePhase:
        return self._state.phase

    def __init__(self, state: PayeeState, key: PrivateKey, config: PayeeConfig) -> None:
        self._payee_context = payee.PayeeContext(key, config)
        super().__init__(state, self._payee_context, PAYEE_TABLE)

    @classmethod
    def create(
        cls, key: PrivateKey, key_index: int, config: PayeeConfig, channel_id: bytes, tip_height: int = 0
    ) -> PayeeChannel:
        if len(channel_id) != 32:
            raise MicropaymentError("a channel id is 32 bytes", response=Response.IGNORE)
        state = PayeeState(
            channel_id, key_index, key.public_key.data, config.minimum_depth, tip_height=tip_height
        )
        return cls(state, key, config)

    @classmethod
    def from_bytes(cls, data: bytes, key: PrivateKey, config: PayeeConfig) -> PayeeChannel:
        """Restore; `config` only matters for a channel still waiting for its proposal."""
        state = decode_state(data)
        if not isinstance(state, PayeeState):
            raise StateDecodeError("the stored state is a payer's")
        _check_key(state, key)
        return cls(state, key, config)

    @property
    def sequence(self) -> int:
        return self._state.best.sequence

    @property
    def paid_msat(self) -> int:
        return self._state.best.paid_msat

    @property
    def funding_outpoint(self) -> OutPoint | None:
        return self._state.funding_outpoint

    def settlement_tx(self) -> Transaction:
        """The best update with both signatures (what `Settle` broadcasts)."""
        if self._state.phase not in (PayeePhase.OPEN, PayeePhase.SETTLING) or self._state.best.sequence == 0:
            raise MicropaymentError("there is no update to settle", response=Response.IGNORE)
        return payee.settlement_tx(self._payee_context, self._state)

    @property
    def can_forget(self) -> bool:
        return self._state.phase in (PayeePhase.NEW, PayeePhase.AWAITING_FUNDING)
