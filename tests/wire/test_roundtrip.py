"""Properties over every message in the schema: round trips, canonical decoding, hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.wire import DEFAULT_SCHEMA, UnknownMessage, WireError, decode_message, encode_message
from tests.wire.strategies import any_message, messages, mutations

MESSAGE_NAMES = sorted(DEFAULT_SCHEMA.messages_by_name)


@pytest.mark.parametrize("name", MESSAGE_NAMES)
@given(data=st.data())
def test_encode_decode_identity(name: str, data: st.DataObject) -> None:
    msg = data.draw(messages(name))
    encoded = encode_message(msg)
    assert int.from_bytes(encoded[:2], "big") == msg.type
    decoded = decode_message(encoded)
    assert decoded == msg
    assert encode_message(decoded) == encoded


def _decode_then_reencode(data: bytes) -> None:
    """Whatever decodes must re-encode to the very same bytes (decoding is canonical)."""
    try:
        msg = decode_message(data)
    except WireError:
        return
    assert encode_message(msg) == data


@pytest.mark.fuzz
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_wire_errors(data: bytes) -> None:
    _decode_then_reencode(data)


@pytest.mark.fuzz
@given(st.sampled_from(sorted(DEFAULT_SCHEMA.messages)), st.binary(max_size=300))
def test_random_payload_for_each_known_type(msg_type: int, payload: bytes) -> None:
    _decode_then_reencode(msg_type.to_bytes(2, "big") + payload)


@pytest.mark.fuzz
@given(st.data())
def test_mutated_valid_encodings_raise_only_wire_errors(data: st.DataObject) -> None:
    msg = data.draw(any_message())
    mutated = data.draw(mutations(encode_message(msg)))
    _decode_then_reencode(mutated)


@given(st.integers(0, 0xFFFF).filter(lambda t: t % 2 == 1 and t not in DEFAULT_SCHEMA.messages), st.binary())
def test_unknown_odd_types_round_trip(msg_type: int, payload: bytes) -> None:
    data = msg_type.to_bytes(2, "big") + payload
    msg = decode_message(data)
    assert msg == UnknownMessage(msg_type, payload)
    assert encode_message(msg) == data
