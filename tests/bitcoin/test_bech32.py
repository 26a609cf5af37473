"""Bech32/bech32m strings against the BIP173 and BIP350 vectors, plus round-trip properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.bech32 import (
    CHARSET,
    Bech32Error,
    Encoding,
    bech32_decode,
    bech32_encode,
    convertbits,
)

# Valid/invalid bech32 strings from bip-0173.mediawiki "Test vectors" and valid/invalid bech32m
# strings from bip-0350.mediawiki "Test vectors for Bech32m" (github.com/bitcoin/bips).
VALID_BECH32 = [
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j",
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    "?1ezyfcl",
]

VALID_BECH32M = [
    "A1LQFN3A",
    "a1lqfn3a",
    "an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6",
    "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
    "11llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllludsr8",
    "split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
    "?1v759aa",
]

INVALID_BECH32 = [
    ("\x201nwldj5", "HRP character out of range"),
    ("\x7f1axkwrx", "HRP character out of range"),
    ("\x801eym55h", "HRP character out of range"),
    (
        "an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx",
        "overall max length exceeded",
    ),
    ("pzry9x0s0muk", "No separator character"),
    ("1pzry9x0s0muk", "Empty HRP"),
    ("x1b4n0q5v", "Invalid data character"),
    ("li1dgmt3", "Too short checksum"),
    ("de1lg7wt\xff", "Invalid character in checksum"),
    ("A1G7SGD8", "checksum calculated with uppercase form of HRP"),
    ("10a06t8", "empty HRP"),
    ("1qzzfhee", "empty HRP"),
]

INVALID_BECH32M = [
    ("\x201xj0phk", "HRP character out of range"),
    ("\x7f1g6xzxy", "HRP character out of range"),
    ("\x801vctc34", "HRP character out of range"),
    (
        "an84characterslonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11d6pts4",
        "overall max length exceeded",
    ),
    ("qyrz8wqd2c9m", "No separator character"),
    ("1qyrz8wqd2c9m", "Empty HRP"),
    ("y1b0jsk6g", "Invalid data character"),
    ("lt1igcx5c0", "Invalid data character"),
    ("in1muywd", "Too short checksum"),
    ("mm1crxm3i", "Invalid character in checksum"),
    ("au1s5cgom", "Invalid character in checksum"),
    ("M1VUXWEZ", "checksum calculated with uppercase form of HRP"),
    ("16plkw9", "empty HRP"),
    ("1p2gdwpf", "empty HRP"),
]


@pytest.mark.parametrize(
    ("text", "encoding"),
    [(text, Encoding.BECH32) for text in VALID_BECH32] + [(text, Encoding.BECH32M) for text in VALID_BECH32M],
)
def test_valid_strings(text: str, encoding: Encoding) -> None:
    decoded = bech32_decode(text)
    assert decoded.encoding is encoding
    assert bech32_encode(decoded.hrp, decoded.data, encoding) == text.lower()


@pytest.mark.parametrize(("text", "reason"), INVALID_BECH32 + INVALID_BECH32M)
def test_invalid_strings(text: str, reason: str) -> None:
    with pytest.raises(Bech32Error):
        bech32_decode(text)


def test_one_character_changed_is_detected() -> None:
    text = VALID_BECH32[3]
    position = len(text) - 3
    mutated = text[:position] + ("q" if text[position] != "q" else "p") + text[position + 1 :]
    with pytest.raises(Bech32Error):
        bech32_decode(mutated)


def test_length_limit_is_configurable() -> None:
    data = [0] * 200
    with pytest.raises(Bech32Error):
        bech32_encode("lnbc", data, Encoding.BECH32)
    long_text = bech32_encode("lnbc", data, Encoding.BECH32, max_length=None)
    with pytest.raises(Bech32Error):
        bech32_decode(long_text)
    assert bech32_decode(long_text, max_length=None).data == tuple(data)
    assert bech32_decode(long_text, max_length=len(long_text)).hrp == "lnbc"


def test_mixed_case_rejected() -> None:
    with pytest.raises(Bech32Error):
        bech32_decode("A12uEL5L")


def test_encode_rejects_bad_input() -> None:
    with pytest.raises(Bech32Error):
        bech32_encode("", [], Encoding.BECH32)
    with pytest.raises(Bech32Error):
        bech32_encode("bc", [32], Encoding.BECH32)
    with pytest.raises(Bech32Error):
        bech32_encode("Bc", [], Encoding.BECH32)
    with pytest.raises(Bech32Error):
        bech32_encode("b c", [], Encoding.BECH32)


def test_uppercase_hrp_encodes_lowercase() -> None:
    assert bech32_encode("A", [], Encoding.BECH32) == "a12uel5l"


@pytest.mark.parametrize(
    ("data", "from_bits", "to_bits", "pad", "expected"),
    [
        ([0xFF], 8, 5, True, [31, 28]),
        ([31, 28], 5, 8, False, [0xFF]),
        ([0x00, 0x01], 8, 5, True, [0, 0, 0, 16]),
        ([], 8, 5, True, []),
        ([1, 2, 3], 5, 5, False, [1, 2, 3]),
    ],
)
def test_convertbits_examples(
    data: list[int], from_bits: int, to_bits: int, pad: bool, expected: list[int]
) -> None:
    assert convertbits(data, from_bits, to_bits, pad=pad) == expected


@pytest.mark.parametrize(
    ("data", "from_bits", "to_bits"),
    [
        ([31, 29], 5, 8),  # non-zero padding
        ([0, 0, 0], 5, 8),  # 15 bits: 7 padding bits, more than a 5-bit group
        ([256], 8, 5),  # value out of range
        ([-1], 8, 5),
    ],
)
def test_convertbits_rejects(data: list[int], from_bits: int, to_bits: int) -> None:
    with pytest.raises(Bech32Error):
        convertbits(data, from_bits, to_bits, pad=False)


_HRP = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20).map(
    str.lower
)
_DATA = st.lists(st.integers(min_value=0, max_value=31), max_size=400)


@given(_HRP, _DATA, st.sampled_from(list(Encoding)))
def test_encode_decode_round_trip(hrp: str, data: list[int], encoding: Encoding) -> None:
    text = bech32_encode(hrp, data, encoding, max_length=None)
    decoded = bech32_decode(text, max_length=None)
    assert decoded.hrp == hrp
    assert decoded.data == tuple(data)
    assert decoded.encoding is encoding
    assert bech32_decode(text.upper(), max_length=None).data == tuple(data)


@given(_HRP, _DATA, st.sampled_from(list(Encoding)), st.data())
def test_single_substitution_detected(
    hrp: str, data: list[int], encoding: Encoding, drawer: st.DataObject
) -> None:
    text = bech32_encode(hrp, data, encoding, max_length=None)
    separator = text.rfind("1")
    position = drawer.draw(st.integers(min_value=separator + 1, max_value=len(text) - 1))
    replacement = drawer.draw(st.sampled_from(CHARSET).filter(lambda char: char != text[position]))
    mutated = text[:position] + replacement + text[position + 1 :]
    with pytest.raises(Bech32Error):
        bech32_decode(mutated, max_length=None)


@given(st.binary(max_size=200))
def test_convertbits_round_trip(payload: bytes) -> None:
    words = convertbits(payload, 8, 5, pad=True)
    assert all(0 <= word < 32 for word in words)
    assert bytes(convertbits(words, 5, 8, pad=False)) == payload
