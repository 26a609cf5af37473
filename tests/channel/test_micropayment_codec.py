"""The custom messages on the wire, and each side's state as bytes and back."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.keys import PrivateKey
from ampere.channel.micropayment import (
    MICRO_MESSAGE_TYPES,
    MICRO_SCHEMA,
    MICROPAYMENT_FEATURE_BIT,
    Accept,
    Ack,
    ErrorMessage,
    FundingCreated,
    MalformedMessageError,
    MicroMessage,
    Pay,
    PayeeChannel,
    PayerChannel,
    Propose,
    RefundSigned,
    Response,
    StateDecodeError,
    Sync,
    Update,
    decode_micro,
    encode_micro,
)
from ampere.channel.micropayment.codec import decode_state, encode_state
from ampere.channel.micropayment.loopback import Loopback
from ampere.wire import DEFAULT_SCHEMA, UnknownMessage, decode_message

from .test_micropayment_support import (
    CONFIG,
    PAYEE_KEY,
    PAYER_KEY,
    new_pair,
    open_pair,
    open_proposal,
    pay_all,
)

_u64 = st.integers(0, 2**64 - 1)
_u32 = st.integers(0, 2**32 - 1)
_b32 = st.binary(min_size=32, max_size=32)
_points = st.sampled_from([PrivateKey.from_int(n).public_key.data for n in (1, 2, 3, 0xBEEF)])
_scripts = st.binary(max_size=80)
_signatures = st.binary(min_size=64, max_size=64)

_messages: st.SearchStrategy[MicroMessage] = st.one_of(
    st.builds(Propose, _b32, _b32, _u64, _u32, _u32, _points, _scripts),
    st.builds(Accept, _b32, _points, _u64, _u32, _scripts),
    st.builds(FundingCreated, _b32, _b32, st.integers(0, 0xFFFF), st.binary(max_size=300)),
    st.builds(RefundSigned, _b32, _signatures),
    st.builds(Sync, _b32, _u64, _u64, _signatures),
    st.builds(Update, _b32, _u64, _u64, _u64, _u64, _u64, _signatures),
    st.builds(Ack, _b32, _u64, _u64),
    st.builds(ErrorMessage, _b32, st.integers(0, 0xFFFF), _u64, st.text(max_size=200)),
)


@given(_messages)
def test_every_message_round_trips(message: MicroMessage) -> None:
    data = encode_micro(message)
    assert int.from_bytes(data[:2], "big") == message.type
    assert decode_micro(data) == message
    # What the peer layer hands over for a type the default schema does not know.
    unknown = decode_message(data, DEFAULT_SCHEMA)
    assert isinstance(unknown, UnknownMessage)
    assert decode_micro(unknown) == message


@given(_messages, st.binary(min_size=1, max_size=20))
def test_extension_bytes_are_ignored(message: MicroMessage, extra: bytes) -> None:
    assert decode_micro(encode_micro(message) + extra) == message


def test_types_are_odd_experimental_and_the_feature_bit_optional() -> None:
    assert {32769, 32771, 32773, 32775, 32777, 32779, 32781, 32783} == MICRO_MESSAGE_TYPES
    assert all(t % 2 == 1 and t >= 32768 for t in MICRO_MESSAGE_TYPES)
    assert not MICRO_MESSAGE_TYPES & set(DEFAULT_SCHEMA.messages)
    assert {MICRO_SCHEMA.messages[t].name for t in MICRO_MESSAGE_TYPES} == {
        "micro_propose",
        "micro_accept",
        "micro_funding",
        "micro_refund_signed",
        "micro_sync",
        "micro_update",
        "micro_ack",
        "micro_error",
    }
    assert MICROPAYMENT_FEATURE_BIT % 2 == 1 and MICROPAYMENT_FEATURE_BIT > 255


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not a micropayment message type"),
        (b"\x00\x10" + bytes(4), "not a micropayment message type"),  # init
        (b"\x80\x01" + bytes(10), "malformed"),  # truncated micro_propose
        (encode_micro(Ack(bytes(32), 1, 2))[:-1], "malformed"),
        (
            encode_micro(Accept(bytes(32), PrivateKey.from_int(1).public_key.data, 1, 1, b""))[:34]
            + b"\x02"
            + bytes(32),
            "malformed",
        ),  # not a point on the curve
        (b"\x80\x0f" + bytes(32) + b"\x00\x01" + bytes(8) + b"\x00\x02\xff\xfe", "malformed"),  # bad utf-8
    ],
)
def test_bytes_that_are_not_a_message_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessageError, match=reason) as caught:
        decode_micro(data)
    assert caught.value.response is Response.DISCONNECT


# --- state ---------------------------------------------------------------------------------------


def _states_along_a_channel() -> list[bytes]:
    link = new_pair()
    blobs = [link.payer.machine.to_bytes(), link.payee.machine.to_bytes()]
    link.payer.handle(open_proposal())
    link.deliver()
    blobs += [link.payer.machine.to_bytes(), link.payee.machine.to_bytes()]
    opened = open_pair()
    pay_all(opened, [1_234_567, 1])
    blobs += [opened.payer.machine.to_bytes(), opened.payee.machine.to_bytes()]
    return blobs


@pytest.mark.parametrize("blob", _states_along_a_channel())
def test_state_round_trips(blob: bytes) -> None:
    state = decode_state(blob)
    assert encode_state(state) == blob
    json.loads(blob)  # readable, for whoever debugs a stuck channel
    assert "secret" not in blob.decode() and PAYER_KEY.secret.hex() not in blob.decode()


def test_a_restored_machine_continues_where_it_stopped() -> None:
    link = open_pair()
    pay_all(link, [1_000, 2_000, 3_000])
    payer = PayerChannel.from_bytes(link.payer.machine.to_bytes(), PAYER_KEY)
    payee = PayeeChannel.from_bytes(link.payee.machine.to_bytes(), PAYEE_KEY, CONFIG)
    assert payer.state == link.payer.machine.state and payee.state == link.payee.machine.state
    restored = Loopback(payer, payee)
    pay_all(restored, [4_000])
    assert (payee.sequence, payee.paid_msat) == (4, 10_000)


def test_restoring_checks_the_key_and_the_role() -> None:
    link = open_pair()
    with pytest.raises(StateDecodeError, match="funding key does not match"):
        PayerChannel.from_bytes(link.payer.machine.to_bytes(), PAYEE_KEY)
    with pytest.raises(StateDecodeError, match="payee's"):
        PayerChannel.from_bytes(link.payee.machine.to_bytes(), PAYEE_KEY)
    with pytest.raises(StateDecodeError, match="payer's"):
        PayeeChannel.from_bytes(link.payer.machine.to_bytes(), PAYER_KEY, CONFIG)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"v": 2}, "unknown format version"),
        ({"role": "broker"}, "unknown role"),
        ({"phase": "limbo"}, "limbo"),
        ({"paid_msat": 1.5}, "does not decode"),
        ({"paid_msat": -1}, "non-negative"),
        ({"channel_id": "00"}, "32 bytes"),
        ({"funding_tx": "zz"}, "not hex"),
        ({"funding_tx": "00"}, "not a transaction"),
        ({"terms": []}, "not an object"),
    ],
)
def test_corrupt_states_are_refused(change: dict[str, object], reason: str) -> None:
    link = open_pair()
    record = json.loads(link.payer.machine.to_bytes())
    record.update(change)
    with pytest.raises(StateDecodeError, match=reason):
        decode_state(json.dumps(record).encode())
    missing = json.loads(link.payee.machine.to_bytes())
    del missing["best"]
    with pytest.raises(StateDecodeError, match="missing field 'best'"):
        decode_state(json.dumps(missing).encode())


_BLOBS = _states_along_a_channel()


@given(st.sampled_from(_BLOBS), st.integers(0, 5_000), st.integers(0, 255))
def test_mangled_states_decode_or_raise_only_state_decode_error(
    blob: bytes, position: int, value: int
) -> None:
    mangled = bytearray(blob)
    mangled[position % len(mangled)] = value
    with contextlib.suppress(StateDecodeError):
        decode_state(bytes(mangled))


def test_an_update_carries_its_outputs() -> None:
    link = open_pair()
    link.payer.handle(Pay(2_500_000))
    update = decode_micro(link.payer.outbox[0])
    assert isinstance(update, Update)
    terms = link.payer.machine.terms
    assert terms is not None
    assert (update.sequence, update.amount_msat, update.paid_msat) == (1, 2_500_000, 2_500_000)
    assert (update.payee_sat, update.change_sat) == (2_500, terms.capacity_sat - 2_500 - terms.update_fee_sat)
