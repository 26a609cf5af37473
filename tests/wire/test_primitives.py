"""Fundamental types: signed integers (Appendix D), truncated integers, points, short channel ids."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.wire import ShortChannelId, WireError
from ampere.wire.errors import DecodeError, EncodeError, InvalidPointError, NonCanonicalError
from ampere.wire.primitives import (
    Reader,
    check_point,
    decode_truncated,
    encode_int,
    encode_signed_minimal,
    encode_truncated,
    encode_uint,
    is_valid_point,
)
from tests.conftest import load_vectors
from tests.wire.strategies import POINTS

SIGNED = load_vectors("bolt01_signed_integers.json")
GOSSIP = load_vectors("bolt07_gossip.json")


@pytest.mark.parametrize("case", SIGNED["cases"], ids=lambda c: str(c["value"]))
def test_signed_integer_vectors(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["bytes"])
    assert encode_signed_minimal(case["value"]) == data
    assert encode_int(case["value"], len(data)) == data
    assert Reader(data).read_int(len(data)) == case["value"]


def test_signed_vector_count() -> None:
    assert len(SIGNED["cases"]) == SIGNED["counts"]["cases"] == 23


@pytest.mark.parametrize(("value", "width"), [(128, 1), (-129, 1), (1 << 63, 8), (-(1 << 63) - 1, 8)])
def test_signed_out_of_range(value: int, width: int) -> None:
    with pytest.raises(EncodeError):
        encode_int(value, width)


@pytest.mark.parametrize(("value", "width"), [(-1, 2), (1 << 16, 2), (1 << 64, 8)])
def test_unsigned_out_of_range(value: int, width: int) -> None:
    with pytest.raises(EncodeError):
        encode_uint(value, width)


@given(
    st.sampled_from([2, 4, 8]).flatmap(lambda w: st.tuples(st.just(w), st.integers(0, (1 << (8 * w)) - 1)))
)
def test_truncated_roundtrip(width_value: tuple[int, int]) -> None:
    width, value = width_value
    encoded = encode_truncated(value, width)
    assert len(encoded) == (value.bit_length() + 7) // 8
    assert decode_truncated(encoded, width) == value


def test_truncated_rejects_leading_zero_and_overlong() -> None:
    with pytest.raises(NonCanonicalError):
        decode_truncated(b"\x00\x01", 8)
    with pytest.raises(NonCanonicalError):
        decode_truncated(b"\x00", 8)
    with pytest.raises(DecodeError):
        decode_truncated(b"\x01\x00\x00", 2)
    assert decode_truncated(b"", 4) == 0


def test_short_channel_id_example() -> None:
    example = GOSSIP["short_channel_id_example"]
    scid = ShortChannelId.parse(example["human_readable"])
    assert (scid.block_height, scid.tx_index, scid.output_index) == (
        example["block_height"],
        example["tx_index"],
        example["output_index"],
    )
    assert scid.to_int() == example["u64_derived"]
    assert scid.to_bytes().hex() == example["u64_hex_derived"]
    assert str(scid) == example["human_readable"]
    assert ShortChannelId.from_bytes(scid.to_bytes()) == scid


@given(st.integers(0, (1 << 64) - 1))
def test_short_channel_id_int_roundtrip(value: int) -> None:
    scid = ShortChannelId.from_int(value)
    assert scid.to_int() == value
    assert ShortChannelId.parse(str(scid)) == scid


@pytest.mark.parametrize("text", ["1x2", "ax1x1", "16777216x0x0", "1x1x65536", ""])
def test_short_channel_id_rejects_bad_text(text: str) -> None:
    with pytest.raises(EncodeError):
        ShortChannelId.parse(text)


def test_points() -> None:
    assert all(is_valid_point(p) for p in POINTS)
    assert check_point(POINTS[0]) == POINTS[0]
    bad_prefix = b"\x04" + POINTS[0][1:]
    not_on_curve = bytes.fromhex("02" + "00" * 32)
    for bad in (bad_prefix, not_on_curve, POINTS[0][:32], b""):
        assert not is_valid_point(bad)
        with pytest.raises(InvalidPointError):
            check_point(bad)


@given(st.binary(max_size=40), st.integers(-2, 40))
def test_reader_raises_only_wire_errors(data: bytes, n: int) -> None:
    reader = Reader(data)
    try:
        reader.read(n)
        reader.read_bigsize()
        reader.sub_reader(n).read_rest()
    except WireError:
        pass
