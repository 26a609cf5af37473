"""Shared helpers: the spec's signing key and a raw invoice writer independent of the encoder under test."""

from __future__ import annotations

from collections.abc import Sequence

from ampere.bitcoin.bech32 import Encoding, bech32_encode, convertbits
from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.keys import PrivateKey, sign_recoverable
from tests.conftest import load_vectors

VECTORS = load_vectors("bolt11_invoices.json")
SPEC_KEY = PrivateKey(bytes.fromhex(VECTORS["private_key"]))
HASH = bytes(range(32))
SECRET = bytes([0x11]) * 32


def to_words(data: bytes) -> list[int]:
    return convertbits(data, 8, 5, pad=True)


def field(letter: str, words: Sequence[int]) -> list[int]:
    tag = "qpzry9x8gf2tvdw0s3jn54khce6mua7l".index(letter)
    return [tag, len(words) >> 5, len(words) & 31, *words]


def basic_fields() -> list[int]:
    """p, s and d: the fields every valid invoice needs, plus the required features 8 and 14."""
    return [
        *field("p", to_words(HASH)),
        *field("s", to_words(SECRET)),
        *field("d", to_words(b"test")),
        *field("9", [16, 8, 0]),
    ]


def write_raw(
    field_words: Sequence[int],
    *,
    hrp: str = "lnbc",
    timestamp: int = 1496314658,
    key: PrivateKey = SPEC_KEY,
    recovery_override: int | None = None,
    encoding: Encoding = Encoding.BECH32,
) -> str:
    """Sign arbitrary field words the way BOLT 11 describes, without going through encode_invoice."""
    words = [(timestamp >> 5 * shift) & 31 for shift in range(6, -1, -1)] + list(field_words)
    digest = sha256(hrp.encode() + bytes(convertbits(words, 5, 8, pad=True)))
    signature = sign_recoverable(key.secret, digest)
    if recovery_override is not None:
        signature = signature[:64] + bytes([recovery_override])
    return bech32_encode(hrp, [*words, *to_words(signature)], encoding, max_length=None)
