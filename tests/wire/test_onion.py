"""BOLT 4 hop payloads and failure messages (`ampere.wire.onion`)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.wire.bigsize import decode_bigsize
from ampere.wire.errors import WireError
from ampere.wire.onion import FailureCode, FailureMessage, HopPayload, OnionPayloadError
from ampere.wire.tlv import TlvRecord
from tests.conftest import load_vectors

ONION: dict[str, Any] = load_vectors("bolt04_onion.json")["onion_test"]["data"]


def _payloads() -> list[bytes]:
    out = []
    for hop in ONION["generate"]["hops"]:
        framed = bytes.fromhex(hop["payload"])
        length, offset = decode_bigsize(framed)
        out.append(framed[offset : offset + length])
    return out


def test_vector_payloads_decode_and_reencode_byte_for_byte() -> None:
    payloads = _payloads()
    decoded = [HopPayload.decode(payload) for payload in payloads]
    # The spec's route: each forwarding hop names the next channel, the last hop is final.
    assert [payload.is_final for payload in decoded] == [False, False, False, False, True]
    assert decoded[0].amt_to_forward == 15000 and decoded[0].outgoing_cltv_value == 1500
    assert decoded[0].short_channel_id == (1).to_bytes(8, "big")
    assert decoded[4].payment_secret is not None and decoded[4].total_msat is not None
    assert decoded[1].unknown_odd  # the vector's odd type 65535 record is kept
    for payload, value in zip(payloads, decoded, strict=True):
        assert value.encode() == payload


def test_missing_required_field_names_it() -> None:
    only_amount = bytes([2, 2, 0x03, 0xE8])  # amt_to_forward alone
    with pytest.raises(OnionPayloadError) as info:
        HopPayload.decode(only_amount)
    assert info.value.tlv_type == 4


def test_unknown_even_type_is_reported_with_its_type() -> None:
    data = HopPayload(1000, 144).encode() + bytes([10, 1, 0])
    with pytest.raises(OnionPayloadError) as info:
        HopPayload.decode(data)
    assert info.value.tlv_type == 10


def test_non_minimal_amount_reports_its_offset() -> None:
    data = bytes([2, 2, 0, 5, 4, 1, 144])
    with pytest.raises(OnionPayloadError) as info:
        HopPayload.decode(data)
    assert (info.value.tlv_type, info.value.offset) == (2, 0)


payloads = st.builds(
    HopPayload,
    amt_to_forward=st.integers(0, 2**64 - 1),
    outgoing_cltv_value=st.integers(0, 2**32 - 1),
    short_channel_id=st.none() | st.binary(min_size=8, max_size=8),
    payment_metadata=st.none() | st.binary(max_size=40),
    unknown_odd=st.lists(st.integers(17, 1000).map(lambda n: n | 1), unique=True, max_size=3).map(
        lambda types: tuple(TlvRecord(t, b"x") for t in sorted(types))
    ),
)


@given(payloads, st.none() | st.tuples(st.binary(min_size=32, max_size=32), st.integers(0, 2**64 - 1)))
def test_payload_round_trip(payload: HopPayload, data: tuple[bytes, int] | None) -> None:
    if data is not None:
        payload = HopPayload(
            payload.amt_to_forward,
            payload.outgoing_cltv_value,
            payload.short_channel_id,
            data[0],
            data[1],
            payload.payment_metadata,
            payload.unknown_odd,
        )
    assert HopPayload.decode(payload.encode()) == payload


@given(st.binary(max_size=300))
def test_garbage_payloads_raise_only_wire_errors(data: bytes) -> None:
    with contextlib.suppress(WireError):
        HopPayload.decode(data)


@pytest.mark.parametrize(
    "message",
    [
        FailureMessage.incorrect_or_unknown_payment_details(123_456, 800_000),
        FailureMessage.final_incorrect_cltv_expiry(144),
        FailureMessage.final_incorrect_htlc_amount(5000),
        FailureMessage.invalid_onion_payload(8, 17),
        FailureMessage.unknown_next_peer(),
        FailureMessage.temporary_node_failure(),
    ],
)
def test_failure_messages_round_trip(message: FailureMessage) -> None:
    assert FailureMessage.decode(message.encode()) == message
    assert FailureCode(message.code).name.lower() in message.describe()


def test_failure_codes_carry_the_spec_flags() -> None:
    assert FailureCode.INVALID_ONION_HMAC == 0xC005
    assert FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS == 0x400F
    assert FailureCode.TEMPORARY_CHANNEL_FAILURE == 0x1007
    details = FailureMessage.incorrect_or_unknown_payment_details(1, 2)
    assert details.data == (1).to_bytes(8, "big") + (2).to_bytes(4, "big")


@given(st.binary(max_size=40))
def test_garbage_failure_messages_raise_only_wire_errors(data: bytes) -> None:
    try:
        decoded = FailureMessage.decode(data)
    except WireError:
        assert len(data) < 2
    else:
        assert decoded.encode() == data
