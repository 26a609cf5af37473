"""TLV streams: BOLT #1 Appendix B vectors, stream rules and fuzzing."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.wire import (
    DEFAULT_SCHEMA,
    ShortChannelId,
    Struct,
    TlvError,
    TlvRecord,
    TlvStream,
    UnknownEvenTlvError,
    WireError,
    decode_tlv,
    encode_tlv,
    make_tlv_stream,
    parse_tlv_records,
    serialize_tlv_records,
)
from ampere.wire.errors import EncodeError
from tests.conftest import load_vectors
from tests.wire.strategies import tlv_streams

VECTORS = load_vectors("bolt01_tlv.json")
NAMESPACES = ("n1", "n2")


def _cases(group: str) -> list[tuple[str, dict[str, Any]]]:
    return [(ns, case) for case in VECTORS[group] for ns in case["namespaces"]]


def _id(item: tuple[str, dict[str, Any]]) -> str:
    return f"{item[0]}-{item[1]['stream'][:24] or 'empty'}"


def test_vector_counts() -> None:
    counts = VECTORS["counts"]
    assert len(VECTORS["decoding_failures"]) == counts["decoding_failures"] == 33
    assert len(VECTORS["decoding_successes"]) == counts["decoding_successes"] == 19
    assert len(VECTORS["stream_decoding_failures"]) == counts["stream_decoding_failures"] == 5


def test_schema_matches_vector_namespaces() -> None:
    for ns, definition in VECTORS["namespaces"].items():
        stream = DEFAULT_SCHEMA.tlv_stream(ns)
        assert sorted(stream.by_type) == [t["type"] for t in definition["types"]]
        for record in definition["types"]:
            layout = stream.by_type[record["type"]].layout
            assert [(f.name, f.type_name) for f in layout.fields] == [
                (f["name"], f["type"]) for f in record["fields"]
            ]


@pytest.mark.parametrize("item", _cases("decoding_failures"), ids=_id)
def test_decoding_failures(item: tuple[str, dict[str, Any]]) -> None:
    namespace, case = item
    with pytest.raises(WireError):
        decode_tlv(bytes.fromhex(case["stream"]), namespace, DEFAULT_SCHEMA)


def _expected_records(values: dict[str, dict[str, Any]]) -> dict[str, Struct]:
    out: dict[str, Struct] = {}
    for record, fields in values.items():
        converted: dict[str, Any] = {}
        for name, value in fields.items():
            if name == "scid":
                converted[name] = ShortChannelId.parse(value)
            elif name == "node_id":
                converted[name] = bytes.fromhex(value)
            else:
                converted[name] = value
        out[record] = Struct(record, converted)
    return out


@pytest.mark.parametrize("item", _cases("decoding_successes"), ids=_id)
def test_decoding_successes(item: tuple[str, dict[str, Any]]) -> None:
    namespace, case = item
    data = bytes.fromhex(case["stream"])
    stream = decode_tlv(data, namespace, DEFAULT_SCHEMA)
    assert dict(stream.records) == _expected_records(case.get("values", {}))
    # Ignored (unknown odd) records are still kept, so the stream re-encodes byte for byte.
    assert encode_tlv(stream, DEFAULT_SCHEMA) == data


@pytest.mark.parametrize("item", _cases("stream_decoding_failures"), ids=_id)
def test_stream_decoding_failures(item: tuple[str, dict[str, Any]]) -> None:
    namespace, case = item
    with pytest.raises(TlvError):
        decode_tlv(bytes.fromhex(case["stream"]), namespace, DEFAULT_SCHEMA)


def _n1_valid() -> list[bytes]:
    return [bytes.fromhex(c["stream"]) for c in VECTORS["decoding_successes"] if "n1" in c["namespaces"]]


def _types(data: bytes) -> list[int]:
    return [r.type for r in parse_tlv_records(data, known=range(1 << 16))]


def test_appending_invalid_to_valid_fails() -> None:
    invalid = [bytes.fromhex(c["stream"]) for c in VECTORS["decoding_failures"] if "n1" in c["namespaces"]]
    for valid, bad in itertools.product(_n1_valid(), invalid):
        with pytest.raises(WireError):
            decode_tlv(valid + bad, "n1", DEFAULT_SCHEMA)


def test_appending_higher_valid_to_lower_valid_succeeds() -> None:
    pairs = 0
    for low, high in itertools.product(_n1_valid(), repeat=2):
        low_types, high_types = _types(low), _types(high)
        if low_types and high_types and max(low_types) < min(high_types):
            combined = decode_tlv(low + high, "n1", DEFAULT_SCHEMA)
            first = decode_tlv(low, "n1", DEFAULT_SCHEMA)
            second = decode_tlv(high, "n1", DEFAULT_SCHEMA)
            assert dict(combined.records) == {**first.records, **second.records}
            assert encode_tlv(combined, DEFAULT_SCHEMA) == low + high
            pairs += 1
    assert pairs > 20


def test_raw_records() -> None:
    data = bytes.fromhex("0100" + "0301ff" + "fd010003616263")
    records = parse_tlv_records(data, known={256})
    assert records == (TlvRecord(1, b""), TlvRecord(3, b"\xff"), TlvRecord(256, b"abc"))
    assert serialize_tlv_records(records) == data
    with pytest.raises(UnknownEvenTlvError) as info:
        parse_tlv_records(data, known=())
    assert info.value.tlv_type == 256
    assert info.value.must_disconnect
    with pytest.raises(EncodeError):
        serialize_tlv_records([(3, b""), (3, b"")])
    with pytest.raises(EncodeError):
        serialize_tlv_records([(5, b""), (3, b"")])


def test_make_tlv_stream_validates() -> None:
    stream = make_tlv_stream("n1", {"tlv1": {"amount_msat": 1000}}, unknown={7: b"x"})
    assert encode_tlv(stream, DEFAULT_SCHEMA).hex() == "010203e8" + "070178"
    with pytest.raises(EncodeError):
        make_tlv_stream("n1", {"tlv9": {}})
    with pytest.raises(EncodeError):
        make_tlv_stream("n1", {"tlv1": {"amount_msat": -1}})
    with pytest.raises(EncodeError):
        make_tlv_stream("n1", {"tlv1": {"amount_msat": 1}}, unknown={1: b""})
    with pytest.raises(EncodeError):
        make_tlv_stream("n1", {"tlv2": {"scid": 5}})


def test_tlv_stream_accessors() -> None:
    stream = decode_tlv(bytes.fromhex("0100fd00fe020226"), "n1", DEFAULT_SCHEMA)
    assert "tlv1" in stream and "tlv2" not in stream
    assert stream.value("tlv1") == 0
    assert stream.value("tlv2") is None
    assert stream.get("tlv4") == Struct("tlv4", {"cltv_delta": 550})
    assert len(stream) == 2
    assert list(stream) == ["tlv1", "tlv4"]


@given(
    st.sampled_from(NAMESPACES).flatmap(lambda ns: tlv_streams(DEFAULT_SCHEMA.tlv_stream(ns), DEFAULT_SCHEMA))
)
def test_roundtrip(stream: TlvStream) -> None:
    encoded = encode_tlv(stream, DEFAULT_SCHEMA)
    assert decode_tlv(encoded, stream.name, DEFAULT_SCHEMA) == stream


@pytest.mark.fuzz
@given(st.sampled_from(NAMESPACES), st.binary(max_size=64))
def test_random_bytes_raise_only_wire_errors(namespace: str, data: bytes) -> None:
    try:
        stream = decode_tlv(data, namespace, DEFAULT_SCHEMA)
    except WireError:
        return
    assert encode_tlv(stream, DEFAULT_SCHEMA) == data


@pytest.mark.fuzz
@given(st.binary(max_size=64))
def test_raw_parser_random_bytes(data: bytes) -> None:
    try:
        records = parse_tlv_records(data, known=range(0, 1 << 64, 2))
    except WireError:
        return
    assert serialize_tlv_records(records) == data
