"""Base58 and Base58Check, the encodings of legacy addresses, WIF keys and BIP32 extended keys."""

from __future__ import annotations

import hashlib

from ampere.bitcoin.errors import BitcoinError

__all__ = ["ALPHABET", "Base58Error", "b58check_decode", "b58check_encode", "b58decode", "b58encode"]

# No 0, O, I or l: characters easily confused when a human copies a string by hand.
ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_ALPHABET_INDEX = {char: value for value, char in enumerate(ALPHABET)}
_CHECKSUM_LENGTH = 4


class Base58Error(BitcoinError):
    """A string that is not Base58, or whose Base58Check checksum does not match."""


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:_CHECKSUM_LENGTH]


def b58encode(data: bytes) -> str:
    # Leading zero bytes vanish in the integer conversion, so each is kept as a leading '1'.
    zeros = len(data) - len(data.lstrip(b"\0"))
    value = int.from_bytes(data, "big")
    digits: list[str] = []
    while value:
        value, remainder = divmod(value, 58)
        digits.append(ALPHABET[remainder])
    return ALPHABET[0] * zeros + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    zeros = len(text) - len(text.lstrip(ALPHABET[0]))
    value = 0
    for char in text:
        digit = _ALPHABET_INDEX.get(char)
        if digit is None:
            raise Base58Error(f"invalid base58 character {char!r}")
        value = value * 58 + digit
    body = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return b"\0" * zeros + body


def b58check_encode(payload: bytes) -> str:
    return b58encode(payload + _checksum(payload))


def b58check_decode(text: str) -> bytes:
    """Decode and verify the 4-byte double-SHA256 checksum; returns the payload without it."""
    raw = b58decode(text)
    if len(raw) < _CHECKSUM_LENGTH:
        raise Base58Error("base58check string too short for a checksum")
    payload, checksum = raw[:-_CHECKSUM_LENGTH], raw[-_CHECKSUM_LENGTH:]
    if _checksum(payload) != checksum:
        raise Base58Error("base58check checksum mismatch")
    return payload
