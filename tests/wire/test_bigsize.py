"""BigSize: BOLT #1 Appendix A vectors and properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.wire import NonCanonicalError, UnexpectedEOFError, WireError, decode_bigsize, encode_bigsize
from ampere.wire.bigsize import MAX_BIGSIZE, bigsize_length
from ampere.wire.errors import EncodeError
from tests.conftest import load_vectors

VECTORS = load_vectors("bolt01_bigsize.json")
_ERRORS: dict[str, type[WireError]] = {
    "decoded bigsize is not canonical": NonCanonicalError,
    "unexpected EOF": UnexpectedEOFError,
    "EOF": UnexpectedEOFError,
}


def test_vector_counts() -> None:
    assert len(VECTORS["decoding"]) == VECTORS["counts"]["decoding"] == 18
    assert len(VECTORS["encoding"]) == VECTORS["counts"]["encoding"] == 8


@pytest.mark.parametrize("case", VECTORS["decoding"], ids=lambda c: c["name"])
def test_decoding_vectors(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["bytes"])
    if "exp_error" in case:
        with pytest.raises(_ERRORS[case["exp_error"]], match=f"^{case['exp_error']}$"):
            decode_bigsize(data)
    else:
        assert decode_bigsize(data) == (case["value"], len(data))


@pytest.mark.parametrize("case", VECTORS["encoding"], ids=lambda c: c["name"])
def test_encoding_vectors(case: dict[str, Any]) -> None:
    encoded = encode_bigsize(case["value"])
    assert encoded.hex() == case["bytes"]
    assert bigsize_length(case["value"]) == len(encoded)


@given(st.integers(0, MAX_BIGSIZE), st.binary(max_size=4))
def test_roundtrip_with_trailing_data(value: int, tail: bytes) -> None:
    encoded = encode_bigsize(value)
    assert decode_bigsize(encoded + tail) == (value, len(encoded))


@given(st.binary(max_size=12), st.integers(0, 12))
def test_random_bytes_raise_only_wire_errors(data: bytes, offset: int) -> None:
    try:
        value, end = decode_bigsize(data, offset)
    except WireError:
        return
    assert encode_bigsize(value) == data[offset:end]


def test_limit_bounds_the_read() -> None:
    with pytest.raises(UnexpectedEOFError):
        decode_bigsize(bytes.fromhex("fd00fd"), 0, 2)


@pytest.mark.parametrize("value", [-1, MAX_BIGSIZE + 1])
def test_encode_out_of_range(value: int) -> None:
    with pytest.raises(EncodeError):
        encode_bigsize(value)
