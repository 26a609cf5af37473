"""BOLT #7 gossip queries: the extended-queries vectors (uncompressed decode/encode, zlib rejected)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.wire import DecodeError, EncodeError, Message, ShortChannelId, decode_message, encode_message
from ampere.wire.gossip_queries import (
    QueryOption,
    UpdatePair,
    channel_update_checksum,
    crc32c,
    decode_query_flags,
    decode_short_channel_ids,
    decode_timestamps,
    encode_short_channel_ids,
    make_query_channel_range,
    make_query_short_channel_ids,
    make_reply_channel_range,
    query_flags,
    reply_checksums,
    reply_timestamps,
    short_channel_ids,
    validate_query,
)
from tests.conftest import load_vectors
from tests.wire.strategies import short_channel_ids as scid_strategy

CASES = load_vectors("bolt07_gossip.json")["extended_queries"]["cases"]
ZLIB = [c for c in CASES if "COMPRESSED_ZLIB" in json.dumps(c["msg"])]
PLAIN = [c for c in CASES if c not in ZLIB]


def test_case_counts() -> None:
    assert len(CASES) == 10 and len(ZLIB) == 5 and len(PLAIN) == 5


def _decode(case: dict[str, Any]) -> Message:
    msg = decode_message(bytes.fromhex(case["hex"]))
    assert isinstance(msg, Message)
    return msg


def _scids(texts: list[str]) -> tuple[ShortChannelId, ...]:
    return tuple(ShortChannelId.parse(t) for t in texts)


def _pairs(items: list[dict[str, int]], prefix: str) -> tuple[UpdatePair, ...]:
    return tuple(UpdatePair(item[f"{prefix}1"], item[f"{prefix}2"]) for item in items)


@pytest.mark.parametrize("case", PLAIN, ids=lambda c: c["hex"][:4] + "-" + c["hex"][-12:])
def test_uncompressed_vectors_decode_and_rebuild(case: dict[str, Any]) -> None:
    expected = case["msg"]
    msg = _decode(case)
    data = bytes.fromhex(case["hex"])
    assert encode_message(msg) == data
    validate_query(msg)
    chain_hash = bytes.fromhex(expected["chainHash"])
    assert msg.get_bytes("chain_hash") == chain_hash
    if expected["type"] == "QueryChannelRange":
        assert msg.name == "query_channel_range"
        assert msg.get_int("first_blocknum") == expected["firstBlockNum"]
        assert msg.get_int("number_of_blocks") == expected["numberOfBlocks"]
        options = None
        if expected["tlvStream"]["records"]:
            assert expected["tlvStream"]["records"] == ["WANT_TIMESTAMPS | WANT_CHECKSUMS"]
            options = QueryOption.WANT_TIMESTAMPS | QueryOption.WANT_CHECKSUMS
            assert msg.tlv_value("query_option") == int(options)
        rebuilt = make_query_channel_range(
            chain_hash, expected["firstBlockNum"], expected["numberOfBlocks"], options
        )
    elif expected["type"] == "ReplyChannelRange":
        assert msg.name == "reply_channel_range"
        scids = _scids(expected["shortChannelIds"]["array"])
        assert short_channel_ids(msg) == scids
        assert msg.get_int("sync_complete") == expected["complete"]
        timestamps = (
            _pairs(expected["timestamps"]["timestamps"], "timestamp") if "timestamps" in expected else None
        )
        checksums = (
            _pairs(expected["checksums"]["checksums"], "checksum") if "checksums" in expected else None
        )
        assert reply_timestamps(msg) == timestamps
        assert reply_checksums(msg) == checksums
        rebuilt = make_reply_channel_range(
            chain_hash,
            expected["firstBlockNum"],
            expected["numberOfBlocks"],
            sync_complete=bool(expected["complete"]),
            scids=scids,
            timestamps=timestamps,
            checksums=checksums,
        )
    else:
        assert expected["type"] == "QueryShortChannelIds" and msg.name == "query_short_channel_ids"
        scids = _scids(expected["shortChannelIds"]["array"])
        assert short_channel_ids(msg) == scids
        assert query_flags(msg) is None and not expected["tlvStream"]["records"]
        rebuilt = make_query_short_channel_ids(chain_hash, scids)
    assert encode_message(rebuilt) == data


@pytest.mark.parametrize("case", ZLIB, ids=lambda c: c["hex"][:4] + "-" + c["hex"][-12:])
def test_zlib_vectors_are_rejected(case: dict[str, Any]) -> None:
    msg = _decode(case)  # the envelope is well-formed; the forbidden encoding is inside it
    assert encode_message(msg) == bytes.fromhex(case["hex"])
    with pytest.raises(DecodeError, match="zlib"):
        validate_query(msg)


def test_query_flags_roundtrip() -> None:
    scids = (ShortChannelId(1, 2, 3), ShortChannelId(4, 5, 6))
    msg = make_query_short_channel_ids(bytes(32), scids, [1, 0x1F])
    decoded = decode_message(encode_message(msg))
    assert isinstance(decoded, Message)
    assert query_flags(decoded) == (1, 0x1F)
    validate_query(decoded)
    with pytest.raises(EncodeError):
        make_query_short_channel_ids(bytes(32), scids, [1])


def test_mismatched_counts_are_invalid() -> None:
    msg = make_reply_channel_range(
        bytes(32), 0, 10, sync_complete=True, scids=[ShortChannelId(1, 0, 0)], checksums=[UpdatePair(1, 2)]
    )
    tampered = make_reply_channel_range(bytes(32), 0, 10, sync_complete=True, scids=[], checksums=[])
    assert reply_checksums(msg) == (UpdatePair(1, 2),)
    forged = Message(msg.type, msg.name, tampered.fields, msg.tlvs)
    with pytest.raises(DecodeError):
        validate_query(forged)


def test_encodings() -> None:
    assert decode_short_channel_ids(b"") == ()
    with pytest.raises(DecodeError):
        decode_short_channel_ids(b"\x00" + bytes(7))
    with pytest.raises(DecodeError):
        decode_short_channel_ids(b"\x02")
    with pytest.raises(EncodeError):
        encode_short_channel_ids([ShortChannelId(2, 0, 0), ShortChannelId(1, 0, 0)])
    with pytest.raises(DecodeError):
        decode_timestamps(0, bytes(7))
    with pytest.raises(DecodeError):
        decode_query_flags(1, b"")
    with pytest.raises(DecodeError):
        decode_query_flags(0, b"\xfd\x00\x01")  # non-canonical bigsize


@given(st.lists(scid_strategy, max_size=20).map(sorted))
def test_short_channel_ids_roundtrip(scids: list[ShortChannelId]) -> None:
    assert decode_short_channel_ids(encode_short_channel_ids(scids)) == tuple(scids)


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # RFC 3720 / iSCSI standard check value
    assert crc32c(b"") == 0


def test_channel_update_checksum_skips_signature_and_timestamp() -> None:
    base = bytes.fromhex("0102") + bytes(64) + bytes(32) + bytes(8)
    tail = bytes(range(30))
    update = base + (1).to_bytes(4, "big") + tail
    resigned = bytes.fromhex("0102") + b"\xff" * 64 + bytes(32) + bytes(8) + (2).to_bytes(4, "big") + tail
    assert channel_update_checksum(update) == channel_update_checksum(resigned)
    assert channel_update_checksum(update) == crc32c(bytes(40) + tail)
    with pytest.raises(DecodeError):
        channel_update_checksum(update[:50])
