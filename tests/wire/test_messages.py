"""Message codec: BOLT #1 extension rules, typed access, construction and validation."""

from __future__ import annotations

from typing import Any

import pytest

from ampere.wire import (
    DEFAULT_SCHEMA,
    MAX_MESSAGE_LEN,
    EncodeError,
    Message,
    MessageTooLongError,
    SchemaError,
    ShortChannelId,
    Struct,
    TlvStream,
    UnknownEvenMessageError,
    UnknownMessage,
    WireError,
    decode_message,
    encode_message,
    make_message,
    message_type,
    replace_fields,
)
from ampere.wire.errors import InvalidPointError, TlvError, UnexpectedEOFError, UnknownEvenTlvError
from ampere.wire.values import FieldValue
from tests.conftest import load_vectors
from tests.wire.strategies import POINTS

INIT = load_vectors("bolt01_tlv.json")["init_message_extension"]
CHANNEL_ID = bytes(range(32))

#: Every message the brief and the spec require, with its type number.
EXPECTED_TYPES = {
    "warning": 1, "stfu": 2, "peer_storage": 7, "peer_storage_retrieval": 9, "init": 16, "error": 17,
    "ping": 18, "pong": 19, "open_channel": 32, "accept_channel": 33, "funding_created": 34,
    "funding_signed": 35, "channel_ready": 36, "shutdown": 38, "closing_signed": 39,
    "closing_complete": 40, "closing_sig": 41, "open_channel2": 64, "accept_channel2": 65,
    "tx_add_input": 66, "tx_add_output": 67, "tx_remove_input": 68, "tx_remove_output": 69,
    "tx_complete": 70, "tx_signatures": 71, "tx_init_rbf": 72, "tx_ack_rbf": 73, "tx_abort": 74,
    "splice_locked": 77, "splice_init": 80, "splice_ack": 81, "start_batch": 127,
    "update_add_htlc": 128, "update_fulfill_htlc": 130, "update_fail_htlc": 131,
    "commitment_signed": 132, "revoke_and_ack": 133, "update_fee": 134,
    "update_fail_malformed_htlc": 135, "channel_reestablish": 136, "channel_announcement": 256,
    "node_announcement": 257, "channel_update": 258, "announcement_signatures": 259,
    "query_short_channel_ids": 261, "reply_short_channel_ids_end": 262, "query_channel_range": 263,
    "reply_channel_range": 264, "gossip_timestamp_filter": 265,
}  # fmt: skip


def test_schema_has_every_message() -> None:
    assert {name: spec.type for name, spec in DEFAULT_SCHEMA.messages_by_name.items()} == EXPECTED_TYPES
    for name, number in EXPECTED_TYPES.items():
        assert message_type(name) == number


@pytest.mark.parametrize(
    ("message", "stream"),
    [
        ("update_add_htlc", "update_add_htlc_tlvs"),
        ("update_fulfill_htlc", "update_fulfill_htlc_tlvs"),
        ("update_fail_htlc", "update_fail_htlc_tlvs"),
        ("channel_reestablish", "channel_reestablish_tlvs"),
        ("start_batch", "start_batch_tlvs"),
        ("open_channel2", "opening_tlvs"),
        ("closing_complete", "closing_tlvs"),
        ("init", "init_tlvs"),
    ],
)
def test_tlv_streams_bound_to_messages(message: str, stream: str) -> None:
    assert DEFAULT_SCHEMA.message(message).tlv_stream == stream


@pytest.mark.parametrize("case", INIT["valid"], ids=lambda c: c["message"])
def test_init_extension_valid(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["message"])
    msg = decode_message(data)
    assert isinstance(msg, Message) and msg.name == "init"
    assert msg.get_bytes("features") == b"" and msg.get_bytes("globalfeatures") == b""
    assert msg.tlvs is not None and not msg.tlvs.records
    assert encode_message(msg) == data


def test_init_extension_unknown_odd_records_kept() -> None:
    msg = decode_message(bytes.fromhex("001000000000c9012acb0104"))
    assert isinstance(msg, Message) and msg.tlvs is not None
    assert dict(msg.tlvs.unknown) == {0xC9: b"\x2a", 0xCB: b"\x04"}


@pytest.mark.parametrize("case", INIT["invalid"], ids=lambda c: c["message"])
def test_init_extension_invalid(case: dict[str, Any]) -> None:
    with pytest.raises(WireError) as info:
        decode_message(bytes.fromhex(case["message"]))
    assert info.value.must_disconnect
    assert info.value.msg_type == 16


def test_init_with_known_tlvs() -> None:
    chain = bytes.fromhex("6fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000")
    msg = make_message(
        "init",
        globalfeatures=b"",
        features=bytes.fromhex("0a8a"),
        tlvs={"networks": {"chains": (chain,)}, "remote_addr": {"data": bytes.fromhex("017f00000126ac")}},
    )
    data = encode_message(msg)
    assert data.hex() == "0010" + "0000" + "0002" + "0a8a" + "0120" + chain.hex() + "0307017f00000126ac"
    decoded = decode_message(data)
    assert decoded == msg
    assert isinstance(decoded, Message)
    assert decoded.tlv_value("networks") == (chain,)


def test_unknown_odd_message_is_ignorable() -> None:
    msg = decode_message(bytes.fromhex("8001deadbeef"))
    assert msg == UnknownMessage(0x8001, bytes.fromhex("deadbeef"))
    assert encode_message(msg).hex() == "8001deadbeef"


@pytest.mark.parametrize("data", ["8000", "00fe01", "0104"])
def test_unknown_even_message_disconnects(data: str) -> None:
    with pytest.raises(UnknownEvenMessageError) as info:
        decode_message(bytes.fromhex(data))
    assert info.value.must_disconnect
    assert info.value.msg_type == int(data[:4], 16)


@pytest.mark.parametrize("data", ["", "00"])
def test_too_short_for_type(data: str) -> None:
    with pytest.raises(WireError):
        decode_message(bytes.fromhex(data))


def test_ping_pong() -> None:
    ping = make_message("ping", num_pong_bytes=3, ignored=b"\x00\x00")
    assert encode_message(ping).hex() == "0012" + "0003" + "0002" + "0000"
    assert ping["num_pong_bytes"] == 3 and ping.get_int("num_pong_bytes") == 3
    assert "byteslen" not in ping.fields  # length-only fields are derived
    with pytest.raises(UnexpectedEOFError):
        decode_message(bytes.fromhex("0012000300030000"))


def test_trailing_bytes_kept_for_messages_without_tlvs() -> None:
    update = make_message(
        "channel_update",
        signature=bytes(64),
        chain_hash=bytes(32),
        short_channel_id=ShortChannelId(539268, 845, 1),
        timestamp=1_700_000_000,
        message_flags=1,
        channel_flags=0,
        cltv_expiry_delta=144,
        htlc_minimum_msat=1000,
        fee_base_msat=1000,
        fee_proportional_millionths=1,
        htlc_maximum_msat=10**9,
    )
    data = encode_message(update) + b"\x02\x00\xff"  # even "TLV" junk: not parsed, but signed over
    decoded = decode_message(data)
    assert isinstance(decoded, Message)
    assert decoded.extension == b"\x02\x00\xff"
    assert decoded.get_scid("short_channel_id") == ShortChannelId(539268, 845, 1)
    assert encode_message(decoded) == data


def test_update_add_htlc_blinding_tlv() -> None:
    msg = make_message(
        "update_add_htlc",
        channel_id=CHANNEL_ID,
        id=7,
        amount_msat=5000,
        payment_hash=bytes(32),
        cltv_expiry=800_000,
        onion_routing_packet=bytes(1366),
        tlvs={"blinded_path": {"path_key": POINTS[0]}},
    )
    data = encode_message(msg)
    assert len(data) == 2 + 32 + 8 + 8 + 32 + 4 + 1366 + 2 + 33
    decoded = decode_message(data)
    assert decoded == msg
    assert isinstance(decoded, Message)
    blinded = decoded.tlv("blinded_path")
    assert blinded is not None and blinded.get_bytes("path_key") == POINTS[0]
    with pytest.raises(InvalidPointError):
        decode_message(data[:-33] + b"\x02" + bytes(32))
    with pytest.raises(UnknownEvenTlvError):
        decode_message(data + b"\x02\x00")


def test_tx_signatures_subtype_array() -> None:
    witnesses = (Struct("witness", {"witness_data": b"\x01\x02"}), Struct("witness", {"witness_data": b""}))
    msg = make_message("tx_signatures", channel_id=CHANNEL_ID, txid=bytes(32), witnesses=witnesses)
    data = encode_message(msg)
    assert data[2 + 64 :].hex() == "0002" + "0002" + "0102" + "0000"
    assert decode_message(data) == msg


def test_commitment_signed_signature_array() -> None:
    sigs = tuple(bytes([i]) * 64 for i in range(3))
    msg = make_message("commitment_signed", channel_id=CHANNEL_ID, signature=bytes(64), htlc_signature=sigs)
    decoded = decode_message(encode_message(msg))
    assert isinstance(decoded, Message)
    assert decoded.get_tuple("htlc_signature") == sigs


def test_record_without_data_must_be_empty() -> None:
    msg = make_message(
        "tx_init_rbf", channel_id=CHANNEL_ID, locktime=0, feerate=253, tlvs={"require_confirmed_inputs": {}}
    )
    data = encode_message(msg)
    assert data.endswith(b"\x02\x00")
    assert decode_message(data) == msg
    with pytest.raises(TlvError):
        decode_message(data[:-1] + b"\x01\x00")


def test_attribution_data_fixed_arrays() -> None:
    attribution: dict[str, FieldValue] = {
        "htlc_hold_times": tuple(range(20)),
        "truncated_hmacs": tuple(b"abcd" for _ in range(210)),
    }
    msg = make_message(
        "update_fulfill_htlc",
        channel_id=CHANNEL_ID,
        id=1,
        payment_preimage=bytes(32),
        tlvs={"attribution_data": attribution},
    )
    assert decode_message(encode_message(msg)) == msg
    with pytest.raises(EncodeError):
        make_message(
            "update_fulfill_htlc",
            channel_id=CHANNEL_ID,
            id=1,
            payment_preimage=bytes(32),
            tlvs={"attribution_data": {**attribution, "htlc_hold_times": (1,)}},
        )


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"num_pong_bytes": 1}, "missing"),
        ({"num_pong_bytes": 1, "ignored": b"", "byteslen": 0}, "length fields are derived"),
        ({"num_pong_bytes": 1 << 16, "ignored": b""}, "out of range"),
        ({"num_pong_bytes": True, "ignored": b""}, "bool is not an int"),
        ({"num_pong_bytes": 1, "ignored": "text"}, "str is not bytes"),
    ],
)
def test_make_message_validates(fields: dict[str, Any], why: str) -> None:
    with pytest.raises(EncodeError):
        make_message("ping", **fields)


def test_make_message_rejects_bad_values() -> None:
    with pytest.raises(SchemaError):
        make_message("no_such_message")
    with pytest.raises(EncodeError):
        make_message("funding_signed", channel_id=bytes(31), signature=bytes(64))
    with pytest.raises(EncodeError):
        make_message("revoke_and_ack", channel_id=CHANNEL_ID, per_commitment_secret=bytes(32),
                     next_per_commitment_point=b"\x04" + bytes(32))  # fmt: skip
    with pytest.raises(EncodeError):
        make_message("ping", num_pong_bytes=0, ignored=b"", tlvs={})
    with pytest.raises(EncodeError):
        make_message("init", globalfeatures=b"", features=b"", extension=b"\x01")


def test_message_too_long() -> None:
    with pytest.raises(MessageTooLongError) as info:
        make_message("pong", ignored=bytes(MAX_MESSAGE_LEN - 3))
    assert not info.value.must_disconnect
    assert len(encode_message(make_message("pong", ignored=bytes(MAX_MESSAGE_LEN - 4)))) == MAX_MESSAGE_LEN


def test_replace_fields() -> None:
    msg = make_message("update_fee", channel_id=CHANNEL_ID, feerate_per_kw=253)
    bumped = replace_fields(msg, feerate_per_kw=1000)
    assert bumped.get_int("feerate_per_kw") == 1000 and msg.get_int("feerate_per_kw") == 253
    with pytest.raises(EncodeError):
        replace_fields(msg, nope=1)


def test_typed_accessors_check_types() -> None:
    msg = make_message("update_fee", channel_id=CHANNEL_ID, feerate_per_kw=253)
    with pytest.raises(SchemaError):
        msg.get_bytes("feerate_per_kw")
    with pytest.raises(SchemaError):
        msg.get_int("channel_id")
    with pytest.raises(SchemaError):
        msg["missing"]
    assert msg.tlv("anything") is None and msg.tlv_value("anything") is None


def test_encode_checks_the_stream_name() -> None:
    msg = make_message("tx_ack_rbf", channel_id=CHANNEL_ID)
    wrong = Message(msg.type, msg.name, msg.fields, TlvStream("tx_init_rbf_tlvs"))
    with pytest.raises(EncodeError):
        encode_message(wrong)
    with pytest.raises(EncodeError):
        encode_message(Message(999, "tx_ack_rbf", msg.fields, msg.tlvs))


def test_struct_names_must_match_their_definitions() -> None:
    with pytest.raises(EncodeError):
        make_message(
            "tx_signatures",
            channel_id=CHANNEL_ID,
            txid=bytes(32),
            witnesses=(Struct("other", {"witness_data": b""}),),
        )
    with pytest.raises(EncodeError):
        make_message(
            "tx_ack_rbf",
            channel_id=CHANNEL_ID,
            tlvs={"require_confirmed_inputs": Struct("funding_output_contribution", {})},
        )
