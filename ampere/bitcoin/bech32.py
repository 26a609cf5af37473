"""Bech32 (BIP173) and bech32m (BIP350) strings, and regrouping between 8-bit and 5-bit words.

Segwit addresses cap strings at 90 characters, the length up to which the checksum is
designed to detect four errors. BOLT 11 invoices reuse the same checksum on much longer
strings, so the limit is a parameter: pass `max_length=None` to lift it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from ampere.bitcoin.errors import BitcoinError

__all__ = [
    "CHARSET",
    "DEFAULT_MAX_LENGTH",
    "Bech32Decoded",
    "Bech32Error",
    "Encoding",
    "bech32_decode",
    "bech32_encode",
    "convertbits",
]

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_REVERSE = {char: value for value, char in enumerate(CHARSET)}
DEFAULT_MAX_LENGTH = 90
_CHECKSUM_LENGTH = 6
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


class Bech32Error(BitcoinError):
    """A string that is not valid bech32/bech32m, or data that cannot be regrouped."""


class Encoding(Enum):
    """The two checksum variants; the value is the constant the checksum polymod must equal."""

    BECH32 = 1
    BECH32M = 0x2BC830A3


@dataclass(frozen=True, slots=True)
class Bech32Decoded:
    hrp: str
    data: tuple[int, ...]
    encoding: Encoding


def _generator_mix(top: int) -> int:
    mixed = 0
    for bit, generator in enumerate(_GENERATOR):
        if (top >> bit) & 1:
            mixed ^= generator
    return mixed


# The generators to mix in for each value of the checksum's top 5 bits: one lookup per character
# instead of five tests (an invoice has hundreds of characters).
_GENERATOR_MIX = tuple(_generator_mix(top) for top in range(32))


def _polymod(values: Iterable[int]) -> int:
    checksum = 1
    mix = _GENERATOR_MIX
    for value in values:
        checksum = ((checksum & 0x1FFFFFF) << 5) ^ value ^ mix[checksum >> 25]
    return checksum


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(char) >> 5 for char in hrp] + [0] + [ord(char) & 31 for char in hrp]


def _create_checksum(hrp: str, data: Sequence[int], encoding: Encoding) -> list[int]:
    polymod = _polymod([*_hrp_expand(hrp), *data, 0, 0, 0, 0, 0, 0]) ^ encoding.value
    return [(polymod >> 5 * (5 - position)) & 31 for position in range(_CHECKSUM_LENGTH)]


def _check_hrp(hrp: str) -> None:
    if not hrp:
        raise Bech32Error("empty human-readable part")
    for char in hrp:
        if not 33 <= ord(char) <= 126:
            raise Bech32Error(f"human-readable part character {char!r} out of range")


def bech32_encode(
    hrp: str, data: Sequence[int], encoding: Encoding, *, max_length: int | None = DEFAULT_MAX_LENGTH
) -> str:
    """Encode 5-bit `data` under `hrp`; the result is lowercase."""
    _check_hrp(hrp)
    if hrp.lower() != hrp and hrp.upper() != hrp:
        raise Bech32Error("mixed-case human-readable part")
    # The checksum is defined over the lowercase HRP; encoding an uppercase one as-is would
    # produce a string whose checksum only verifies under a different HRP.
    hrp = hrp.lower()
    for value in data:
        if not 0 <= value < 32:
            raise Bech32Error(f"data value {value} is not a 5-bit word")
    length = len(hrp) + 1 + len(data) + _CHECKSUM_LENGTH
    if max_length is not None and length > max_length:
        raise Bech32Error(f"encoded length {length} exceeds the limit of {max_length}")
    checksum = _create_checksum(hrp, data, encoding)
    return hrp + "1" + "".join(CHARSET[value] for value in [*data, *checksum])


def bech32_decode(text: str, *, max_length: int | None = DEFAULT_MAX_LENGTH) -> Bech32Decoded:
    """Decode a bech32 or bech32m string; the HRP comes back lowercase, the checksum stripped."""
    if max_length is not None and len(text) > max_length:
        raise Bech32Error(f"string of length {len(text)} exceeds the limit of {max_length}")
    for char in text:
        if not 33 <= ord(char) <= 126:
            raise Bech32Error(f"character {char!r} out of range")
    lowered = text.lower()
    if lowered != text and text.upper() != text:
        raise Bech32Error("mixed-case string")
    separator = lowered.rfind("1")
    if separator == -1:
        raise Bech32Error("no separator character '1'")
    if separator == 0:
        raise Bech32Error("empty human-readable part")
    if len(lowered) - separator - 1 < _CHECKSUM_LENGTH:
        raise Bech32Error("checksum is too short")
    hrp = lowered[:separator]
    try:
        values = [_CHARSET_REVERSE[char] for char in lowered[separator + 1 :]]
    except KeyError as exc:
        raise Bech32Error(f"invalid data character {exc.args[0]!r}") from None
    polymod = _polymod([*_hrp_expand(hrp), *values])
    for encoding in Encoding:
        if polymod == encoding.value:
            return Bech32Decoded(hrp, tuple(values[:-_CHECKSUM_LENGTH]), encoding)
    raise Bech32Error("invalid checksum")


def convertbits(data: Iterable[int], from_bits: int, to_bits: int, *, pad: bool) -> list[int]:
    """Regroup a sequence of `from_bits`-bit words into `to_bits`-bit words, big-endian.

    With `pad` the last group is zero-filled (encoding direction). Without it, the leftover
    bits must be fewer than `from_bits` and all zero (decoding direction), as BIP173 requires
    so that every byte string has exactly one encoding.
    """
    if not (0 < from_bits <= 32 and 0 < to_bits <= 32):
        raise Bech32Error("word sizes must be between 1 and 32 bits")
    if from_bits == 5 and to_bits == 8:
        return _words_to_bytes(data if isinstance(data, list) else list(data), pad=pad)
    accumulator = 0
    bits = 0
    result: list[int] = []
    max_value = (1 << to_bits) - 1
    for value in data:
        if value < 0 or value >> from_bits:
            raise Bech32Error(f"value {value} does not fit in {from_bits} bits")
        accumulator = ((accumulator << from_bits) | value) & ((1 << (from_bits + to_bits - 1)) - 1)
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            result.append((accumulator >> bits) & max_value)
    if pad:
        if bits:
            result.append((accumulator << (to_bits - bits)) & max_value)
    elif bits >= from_bits:
        raise Bech32Error("more padding bits than allowed")
    elif (accumulator << (to_bits - bits)) & max_value:
        raise Bech32Error("non-zero padding bits")
    return result


# 5-bit values as base-32 digits, so that int(..., 32) reads a whole word string at C speed.
_BASE32_DIGITS = bytes.maketrans(bytes(range(32)), b"0123456789abcdefghijklmnopqrstuv")


def _words_to_bytes(words: list[int], *, pad: bool) -> list[int]:
    """`convertbits(words, 5, 8)` for decoding invoices and addresses: the words read as one number."""
    if not words:
        return []
    if min(words) < 0 or max(words) > 31:
        bad = next(value for value in words if not 0 <= value <= 31)
        raise Bech32Error(f"value {bad} does not fit in 5 bits")
    number = int(bytes(words).translate(_BASE32_DIGITS), 32)
    total_bits = 5 * len(words)
    leftover = total_bits % 8
    if pad:
        if leftover:
            number <<= 8 - leftover
        return list(number.to_bytes((total_bits + 7) // 8, "big"))
    if leftover >= 5:
        raise Bech32Error("more padding bits than allowed")
    if number & ((1 << leftover) - 1):
        raise Bech32Error("non-zero padding bits")
    return list((number >> leftover).to_bytes(total_bits // 8, "big"))
