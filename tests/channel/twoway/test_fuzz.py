"""Fuzzing the state machine: mutated peer messages and random events.

Whatever the input, `step` either returns a transition (whose state keeps the conservation
invariant) or raises `ChannelError`; nothing else escapes, and a refused input leaves the state
exactly as it was (its persisted bytes are unchanged).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ampere.bitcoin.tx import OutPoint, Transaction, TxIn, TxOut
from ampere.channel.signer import InMemorySigner
from ampere.channel.twoway import (
    AddHtlc,
    BlockConnected,
    ChannelConfig,
    ChannelError,
    ChannelState,
    ChannelType,
    Disconnected,
    FailHtlc,
    FailMalformedHtlc,
    ForceClose,
    FulfillHtlc,
    FundingConfirmed,
    FundingSpent,
    Reconnected,
    ShutdownCommand,
    SignCommitment,
    UpdateFeeCommand,
    parse_message,
    serialize_state,
    signer_state_for,
)
from ampere.channel.twoway.common import Context
from ampere.channel.twoway.transitions import step
from ampere.wire import Features, WireError, decode_message, encode_message
from ampere.wire.features import Feature
from tests.channel.twoway.harness import FEATURES, check_conservation, open_pair


@dataclass(frozen=True)
class Sample:
    """A receiver's state just before a real message reached it."""

    root: bytes
    state: ChannelState
    message: bytes


def _dance(channel_type: ChannelType, features: Features) -> list[Sample]:
    """Every delivery of a dance with concurrent updates, a fee change, a reconnection and a
    close, with the receiver's state just before it."""
    pair = open_pair(channel_type, push_msat=300_000_000, features=features)
    found: list[Sample] = []

    def deliver_all() -> None:
        while pair.alice.outbox or pair.bob.outbox:
            pair.fulfill_received()
            sender = pair.alice if pair.alice.outbox else pair.bob
            receiver = pair.other(sender)
            found.append(Sample(receiver.root, receiver.state, sender.outbox[0]))
            pair.deliver_one(sender)

    pair.pay(pair.alice, 20_000_000, sign=False)
    pair.pay(pair.alice, 1_500_000)
    pair.pay(pair.bob, 7_000_000)
    deliver_all()
    pair.pay(pair.bob, 3_000_000, sign=False)
    pair.alice.handle(UpdateFeeCommand(3000))
    pair.alice.handle(SignCommitment())
    deliver_all()
    pair.disconnect()
    pair.reconnect()
    deliver_all()
    pair.alice.handle(ShutdownCommand())
    deliver_all()
    return found


@cache
def samples() -> tuple[Sample, ...]:
    legacy = _dance(ChannelType.STATIC_REMOTEKEY, FEATURES)
    simple = _dance(ChannelType.ANCHORS, FEATURES.with_feature(Feature.SIMPLE_CLOSE))
    return (*legacy, *simple)


def _context(sample: Sample) -> Context:
    signer = InMemorySigner(sample.root)
    signer.restore(signer_state_for(sample.state))
    return Context(signer, ChannelConfig(), 2500)


def _apply(sample: Sample, event: object) -> None:
    before = serialize_state(sample.state)
    try:
        result = step(sample.state, event, _context(sample))  # type: ignore[arg-type]
    except ChannelError:
        assert serialize_state(sample.state) == before
        return
    check_conservation(result.state)


mutations = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000)),
    st.tuples(st.just("set"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=40)),
)


def _mutate(data: bytes, mutation: tuple) -> bytes:  # type: ignore[type-arg]
    kind = mutation[0]
    buf = bytearray(data)
    if len(buf) <= 2 and kind in ("flip", "truncate", "set"):
        return bytes(buf)
    if kind == "flip":
        buf[2 + mutation[1] % max(1, len(buf) - 2)] ^= 1 << mutation[2]
    elif kind == "truncate":
        del buf[2 + mutation[1] % max(1, len(buf) - 2) :]
    elif kind == "set":
        buf[mutation[1] % len(buf)] = mutation[2]
    elif kind == "insert":
        position = mutation[1] % len(buf)
        buf[position:position] = mutation[2]
    else:
        buf += mutation[1]
    return bytes(buf)


@pytest.mark.fuzz
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, 10_000), mutation_list=st.lists(mutations, min_size=1, max_size=4))
def test_mutated_messages_raise_only_channel_errors(index: int, mutation_list: list[tuple]) -> None:  # type: ignore[type-arg]
    sample = samples()[index % len(samples())]
    data = sample.message
    for mutation in mutation_list:
        data = _mutate(data, mutation)
    try:
        message = decode_message(data)
    except WireError:
        return  # the wire layer refused it; the channel never sees it
    try:
        event = parse_message(message)
    except ChannelError:
        return
    _apply(sample, event)


@pytest.mark.fuzz
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, 10_000), other=st.integers(0, 10_000))
def test_messages_delivered_to_the_wrong_state_raise_only_channel_errors(index: int, other: int) -> None:
    sample = samples()[index % len(samples())]
    message = samples()[other % len(samples())].message
    _apply(sample, parse_message(decode_message(message)))


_hashes = st.binary(min_size=0, max_size=40)
_amounts = st.integers(-5, 2**64)
_tx = st.builds(
    lambda value, script, vout: Transaction(
        2,
        (TxIn(OutPoint(hashlib.sha256(script).digest(), vout), b"", 0, (b"\x01",)),),
        (TxOut(value, script),),
    ),
    st.integers(0, 2_000_000),
    st.binary(max_size=40),
    st.integers(0, 5),
)
events = st.one_of(
    st.builds(AddHtlc, _amounts, _hashes, st.integers(0, 2**32), st.binary(max_size=1400)),
    st.builds(FulfillHtlc, st.integers(-1, 10), _hashes),
    st.builds(FailHtlc, st.integers(-1, 10), st.binary(max_size=300)),
    st.builds(FailMalformedHtlc, st.integers(-1, 10), _hashes, st.integers(0, 2**16 - 1)),
    st.builds(UpdateFeeCommand, st.integers(0, 2**32)),
    st.builds(SignCommitment),
    st.builds(ShutdownCommand, st.one_of(st.none(), st.binary(max_size=50))),
    st.builds(ForceClose),
    st.builds(Disconnected),
    st.builds(Reconnected),
    st.builds(BlockConnected, st.integers(0, 2**32)),
    st.builds(FundingConfirmed, _tx, st.integers(0, 10), st.integers(0, 2**64 - 1)),
    st.builds(FundingSpent, _tx),
)


@pytest.mark.fuzz
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, 10_000), event=events)
def test_random_events_raise_only_channel_errors(index: int, event: object) -> None:
    _apply(samples()[index % len(samples())], event)


_field_values = st.one_of(
    st.integers(0, 2**64 - 1),
    st.integers(0, 70_000),
    st.binary(min_size=0, max_size=70),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=64, max_size=64),
    st.none(),
)


@pytest.mark.fuzz
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(0, 10_000),
    changes=st.lists(st.tuples(st.integers(0, 50), _field_values), min_size=1, max_size=3),
)
def test_messages_with_forged_fields_raise_only_channel_errors(
    index: int, changes: list[tuple[int, object]]
) -> None:
    """Well-formed messages with wrong values: what a malicious peer, not a noisy wire, sends."""
    sample = samples()[index % len(samples())]
    message = parse_message(decode_message(sample.message))
    fields = [spec for spec in dataclasses.fields(message) if spec.name != "channel_id"]  # type: ignore[arg-type]
    values = {}
    for position, value in changes:
        spec = fields[position % len(fields)]
        current = getattr(message, spec.name)
        if isinstance(current, tuple):
            value = tuple(v for v in (value,) if isinstance(v, bytes))
        elif current is not None and value is not None and type(value) is not type(current):
            continue
        values[spec.name] = value
    forged = dataclasses.replace(message, **values)  # type: ignore[type-var]
    try:
        encoded = forged.to_wire()
    except (WireError, ValueError, TypeError):
        return  # not encodable: cannot reach us over the wire
    _apply(sample, parse_message(decode_message(encode_message(encoded))))
