"""An in-memory shell for one payer and one payee: messages pass between them as bytes.

It runs actions the way a node must (a `Persist` is stored and confirmed before the actions behind it
run), keeps the last persisted blob of each side so that a side can be restarted from it, and collects
what would go to the chain. Tests drive channels with it; `ampere demo` can narrate with it. A real
node replaces it with the peer layer, the store and the chain backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.tx import Transaction
from ampere.channel.micropayment.errors import MicropaymentError, Response
from ampere.channel.micropayment.events import (
    Action,
    Broadcast,
    BuildFunding,
    Event,
    FundingBuilt,
    PeerConnected,
    Persist,
    PersistCompleted,
    Resumed,
    Send,
    Watch,
)
from ampere.channel.micropayment.machine import PayeeChannel, PayerChannel
from ampere.channel.micropayment.state import PayeeConfig

__all__ = ["Loopback", "Side"]

FundingBuilder = Callable[[BuildFunding], Transaction]
M = TypeVar("M", PayerChannel, PayeeChannel)


@dataclass
class Side(Generic[M]):
    """One machine and what its shell did: stored blob, outgoing bytes, broadcasts, notices, errors."""

    machine: M
    stored: bytes | None = None
    stored_revision: int = 0
    outbox: list[bytes] = field(default_factory=list)
    broadcasts: list[Broadcast] = field(default_factory=list)
    watches: list[Watch] = field(default_factory=list)
    notices: list[Action] = field(default_factory=list)
    errors: list[MicropaymentError] = field(default_factory=list)
    funding_builder: FundingBuilder | None = None

    def run(self, actions: Iterable[Action]) -> None:
        for action in actions:
            if isinstance(action, Persist):
                if action.revision <= self.stored_revision:
                    raise AssertionError(f"persist revision {action.revision} does not move forward")
                self.stored, self.stored_revision = action.blob, action.revision
                self.run(self.machine.handle(PersistCompleted(action.revision)))
            elif isinstance(action, Send):
                self.outbox.append(action.data)
            elif isinstance(action, Broadcast):
                self.broadcasts.append(action)
            elif isinstance(action, Watch):
                self.watches.append(action)
            elif isinstance(action, BuildFunding) and self.funding_builder is not None:
                self.notices.append(action)
                self.run(self.machine.handle(FundingBuilt(self.funding_builder(action))))
            else:
                self.notices.append(action)

    def handle(self, event: Event) -> None:
        """Feed a local event; refusals propagate to the caller."""
        self.run(self.machine.handle(event))

    def receive(self, data: bytes) -> None:
        """A message from the peer; a refusal is recorded and answered as the shell would."""
        try:
            self.run(self.machine.receive(data))
        except MicropaymentError as exc:
            self.errors.append(exc)
            if exc.reply is not None and exc.response is not Response.DISCONNECT:
                self.run([Send(exc.reply)])


class Loopback:
    """A payer and a payee joined by an in-memory connection that can drop and come back."""

    def __init__(self, payer: PayerChannel, payee: PayeeChannel) -> None:
        self.payer: Side[PayerChannel] = Side(payer)
        self.payee: Side[PayeeChannel] = Side(payee)
        self.connected = True

    def deliver(self, limit: int = 100_000) -> int:
        """Pass messages both ways until both sides are quiet; returns how many were delivered.
        While disconnected, whatever is sent is lost, as with a dropped TCP connection."""
        delivered = 0
        while self.payer.outbox or self.payee.outbox:
            if not self.connected:
                self.payer.outbox.clear()
                self.payee.outbox.clear()
                break
            for sender, receiver in ((self.payer, self.payee), (self.payee, self.payer)):
                pending, sender.outbox = sender.outbox, []
                for data in pending:
                    receiver.receive(data)
                    delivered += 1
            if delivered > limit:
                raise AssertionError("the two sides keep talking")
        return delivered

    def disconnect(self) -> None:
        self.connected = False
        self.deliver()

    def reconnect(self) -> int:
        self.connected = True
        self.payee.handle(PeerConnected())
        self.payer.handle(PeerConnected())
        return self.deliver()

    def restart_payer(self, key: PrivateKey) -> None:
        """Rebuild the payer from its last persisted blob; what it had not sent is lost."""
        if self.payer.stored is None:
            raise MicropaymentError("the payer never persisted anything", response=Response.IGNORE)
        self.payer.outbox.clear()
        self.payer.machine = PayerChannel.from_bytes(self.payer.stored, key)
        self.payer.handle(Resumed())

    def restart_payee(self, key: PrivateKey, config: PayeeConfig) -> None:
        if self.payee.stored is None:
            raise MicropaymentError("the payee never persisted anything", response=Response.IGNORE)
        self.payee.outbox.clear()
        self.payee.machine = PayeeChannel.from_bytes(self.payee.stored, key, config)
        self.payee.handle(Resumed())
