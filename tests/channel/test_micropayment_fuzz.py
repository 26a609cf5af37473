"""Fuzz: bad peer bytes and random events raise only `MicropaymentError` and leave the machine as it was.

Machines are taken at every phase of an honest run (snapshots of their immutable state) and fed
random bytes, mutations of the messages that really flowed, and random local and chain events.
`make fuzz` runs these with many more examples.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.tx import OutPoint, Transaction, TxIn, TxOut
from ampere.channel.micropayment import (
    MICRO_MESSAGE_TYPES,
    BlockConnected,
    BlockDisconnected,
    Event,
    FundingBuilt,
    FundingConfirmed,
    FundingSpent,
    MicropaymentError,
    OpenChannel,
    Pay,
    PayeeChannel,
    PayerChannel,
    PeerConnected,
    Persist,
    PersistCompleted,
    Refund,
    Resumed,
    Settle,
)
from ampere.channel.micropayment.loopback import Loopback
from ampere.channel.micropayment.state import PayeeState, PayerState

from .test_micropayment_support import (
    CONFIG,
    PAYEE_KEY,
    PAYER_KEY,
    REFUND_HEIGHT,
    REFUND_SCRIPT,
    TIP,
    fake_funding,
    new_pair,
    open_proposal,
    pay_all,
)

pytestmark = pytest.mark.fuzz


class _Recorder(Loopback):
    """A loopback that delivers one message at a time, keeping each message and the states between."""

    def __init__(self) -> None:
        base = new_pair()
        super().__init__(base.payer.machine, base.payee.machine)
        self.payer.funding_builder = fake_funding
        self.wire: list[bytes] = []
        self.payer_states: list[PayerState] = []
        self.payee_states: list[PayeeState] = []
        self.snapshot()

    def snapshot(self) -> None:
        self.payer_states.append(self.payer.machine.state)
        self.payee_states.append(self.payee.machine.state)

    def deliver(self, limit: int = 100_000) -> int:
        delivered = 0
        while self.payer.outbox or self.payee.outbox:
            sender, receiver = (self.payer, self.payee) if self.payer.outbox else (self.payee, self.payer)
            data = sender.outbox.pop(0)
            self.wire.append(data)
            receiver.receive(data)
            self.snapshot()
            delivered += 1
        return delivered


def _honest_run() -> _Recorder:
    link = _Recorder()
    link.payer.handle(open_proposal())
    link.deliver()
    funding = link.payer.machine.funding_tx
    assert funding is not None
    for side in (link.payer, link.payee):
        side.handle(FundingConfirmed(funding, TIP + 1))
    link.payee.handle(BlockConnected(TIP + 1))
    link.deliver()
    pay_all(link, [1_000_000, 250_000, 3])
    link.payer.handle(Pay(10))  # left undelivered: one update in flight
    link.wire += link.payer.outbox
    link.snapshot()
    return link


_RUN = _honest_run()
_PAYER_STATES = list(dict.fromkeys(_RUN.payer_states))
_PAYEE_STATES = list(dict.fromkeys(_RUN.payee_states))
_WIRE = list(dict.fromkeys(_RUN.wire))
_FUNDING = _RUN.payer.machine.funding_tx
assert _FUNDING is not None
_FUNDING_TX: Transaction = _FUNDING
_FUNDING_OUTPOINT = _FUNDING.outpoint(_RUN.payer.machine.state.funding_vout)


@dataclass(frozen=True)
class _Target:
    role: str
    index: int

    def machine(self) -> PayerChannel | PayeeChannel:
        if self.role == "payer":
            return PayerChannel(_PAYER_STATES[self.index], PAYER_KEY)
        return PayeeChannel(_PAYEE_STATES[self.index], PAYEE_KEY, CONFIG)


_targets = st.one_of(
    st.builds(_Target, st.just("payer"), st.integers(0, len(_PAYER_STATES) - 1)),
    st.builds(_Target, st.just("payee"), st.integers(0, len(_PAYEE_STATES) - 1)),
)


def _survives(machine: PayerChannel | PayeeChannel, feed: bytes | Event) -> None:
    """Feed `feed`: success (its persists then confirmed, as a shell would), or a MicropaymentError
    with the state and the held-back actions untouched."""
    before, held = machine.state, machine.awaiting_persist
    try:
        actions = machine.receive(feed) if isinstance(feed, bytes) else machine.handle(feed)
    except MicropaymentError:
        assert machine.state is before
        assert machine.awaiting_persist == held
        return
    for action in actions:
        if isinstance(action, Persist):
            machine.handle(PersistCompleted(action.revision))
    assert not machine.awaiting_persist


@given(_targets, st.binary(max_size=400))
def test_random_bytes(target: _Target, data: bytes) -> None:
    _survives(target.machine(), data)


@given(_targets, st.sampled_from(sorted(MICRO_MESSAGE_TYPES)), st.binary(max_size=400))
def test_random_payloads_of_micropayment_types(target: _Target, msg_type: int, payload: bytes) -> None:
    _survives(target.machine(), msg_type.to_bytes(2, "big") + payload)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_WIRE)))
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "truncate", "extend", "set"]))
        if how == "flip" and data:
            position = draw(st.integers(0, len(data) - 1))
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif how == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif how == "extend":
            data += draw(st.binary(min_size=1, max_size=40))
        elif data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@given(_targets, _mutated())
def test_mutated_real_messages(target: _Target, data: bytes) -> None:
    _survives(target.machine(), data)


@given(_targets, st.sampled_from(_WIRE))
def test_replayed_real_messages(target: _Target, data: bytes) -> None:
    _survives(target.machine(), data)


_heights = st.integers(-5, REFUND_HEIGHT + 50)


@st.composite
def _transactions(draw: st.DrawFn) -> Transaction:
    prevouts = st.one_of(
        st.just(_FUNDING_OUTPOINT),
        st.builds(OutPoint, st.binary(min_size=32, max_size=32), st.integers(0, 3)),
    )
    inputs = draw(
        st.lists(
            st.builds(TxIn, prevouts, st.just(b""), st.integers(0, 2**32 - 1), st.just((b"w",))),
            max_size=3,
        )
    )
    outputs = draw(
        st.lists(
            st.builds(TxOut, st.integers(0, 200_000), st.sampled_from([REFUND_SCRIPT, b"\x51"])), max_size=3
        )
    )
    if draw(st.booleans()):
        return _FUNDING_TX
    return Transaction(2, tuple(inputs), tuple(outputs), draw(st.integers(0, 2**32 - 1)))


_events: st.SearchStrategy[Event] = st.one_of(
    st.builds(Pay, st.integers(-(2**64), 2**70)),
    st.builds(BlockConnected, _heights),
    st.builds(BlockDisconnected, _heights),
    st.builds(FundingConfirmed, _transactions(), _heights),
    st.builds(FundingSpent, _transactions(), _heights),
    st.builds(FundingBuilt, _transactions()),
    st.builds(
        OpenChannel,
        st.binary(min_size=31, max_size=33),
        st.integers(-1, 2**64),
        st.integers(-1, 2**33),
        st.integers(-1, 2**33),
        st.sampled_from([REFUND_SCRIPT, b"", b"\x6a"]),
    ),
    st.just(Settle()),
    st.just(Refund()),
    st.just(PeerConnected()),
    st.just(Resumed()),
)


@given(_targets, st.lists(_events, min_size=1, max_size=8))
def test_random_events(target: _Target, events: list[Event]) -> None:
    machine = target.machine()
    for event in events:
        _survives(machine, event)


def test_the_honest_run_reached_every_phase_worth_fuzzing() -> None:
    payer_phases = {state.phase.value for state in _PAYER_STATES}
    assert payer_phases >= {"new", "proposed", "awaiting_refund_signature", "funding_broadcast", "open"}
    payee_phases = {state.phase.value for state in _PAYEE_STATES}
    assert payee_phases >= {"new", "awaiting_funding", "awaiting_confirmation", "open"}
    assert len(_WIRE) >= 10
