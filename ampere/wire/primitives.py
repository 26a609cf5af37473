"""BOLT #1 fundamental types: fixed and truncated integers, signed integers, points, short channel ids.

Readers never raise anything but ``WireError`` subclasses: every bound check is
explicit, so a malicious peer cannot turn a short message into an ``IndexError``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import coincurve

from ampere.wire.bigsize import decode_bigsize
from ampere.wire.errors import (
    DecodeError,
    EncodeError,
    InvalidPointError,
    NonCanonicalError,
    UnexpectedEOFError,
)

POINT_LEN = 33
SIGNATURE_LEN = 64
HASH_LEN = 32

#: BOLT #1 upper bounds for amounts (21 million BTC).
MAX_SATOSHIS = 0x000775F05A074000
MAX_MSATS = 0x1D24B2DFAC520000


class Reader:
    """A bounds-checked cursor over an immutable byte string."""

    __slots__ = ("_data", "_end", "pos")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self._data = data
        self._end = len(data) if end is None else end
        self.pos = start

    @property
    def remaining(self) -> int:
        return self._end - self.pos

    def at_end(self) -> bool:
        return self.pos >= self._end

    def read(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > self._end:
            raise UnexpectedEOFError(f"need {n} bytes, have {self._end - self.pos}")
        chunk = self._data[self.pos : end]
        self.pos = end
        return chunk

    def read_rest(self) -> bytes:
        chunk = self._data[self.pos : self._end]
        self.pos = self._end
        return chunk

    def read_uint(self, width: int) -> int:
        return int.from_bytes(self.read(width), "big")

    def read_int(self, width: int) -> int:
        return int.from_bytes(self.read(width), "big", signed=True)

    def read_bigsize(self) -> int:
        value, self.pos = decode_bigsize(self._data, self.pos, self._end)
        return value

    def sub_reader(self, n: int) -> Reader:
        """A reader over the next ``n`` bytes; this reader skips past them."""
        if n < 0 or self.pos + n > self._end:
            raise UnexpectedEOFError(f"need {n} bytes, have {self._end - self.pos}")
        sub = Reader(self._data, self.pos, self.pos + n)
        self.pos += n
        return sub


def encode_uint(value: int, width: int) -> bytes:
    if value < 0 or value >> (8 * width):
        raise EncodeError(f"value {value} does not fit u{8 * width}")
    return value.to_bytes(width, "big")


def encode_int(value: int, width: int) -> bytes:
    try:
        return value.to_bytes(width, "big", signed=True)
    except OverflowError as exc:
        raise EncodeError(f"value {value} does not fit s{8 * width}") from exc


def encode_truncated(value: int, max_width: int) -> bytes:
    """Encode a ``tu16``/``tu32``/``tu64``: big-endian with every leading zero byte dropped."""
    if value < 0 or value >> (8 * max_width):
        raise EncodeError(f"value {value} does not fit tu{8 * max_width}")
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def decode_truncated(data: bytes, max_width: int) -> int:
    """Decode a truncated integer occupying all of ``data``, insisting on minimality."""
    if len(data) > max_width:
        raise DecodeError(f"truncated integer of {len(data)} bytes exceeds tu{8 * max_width}")
    if data and data[0] == 0:
        raise NonCanonicalError("truncated integer has a leading zero byte")
    return int.from_bytes(data, "big")


def encode_signed_minimal(value: int) -> bytes:
    """Encode ``value`` in the narrowest of s8/s16/s32/s64 that holds it (BOLT #1 Appendix D)."""
    for width in (1, 2, 4, 8):
        if -(1 << (8 * width - 1)) <= value < (1 << (8 * width - 1)):
            return value.to_bytes(width, "big", signed=True)
    raise EncodeError(f"value {value} does not fit s64")


@functools.lru_cache(maxsize=8192)
def _point_is_valid(data: bytes) -> bool:
    # Node ids and basepoints recur constantly in gossip; caching keeps the
    # libsecp256k1 parse off the hot path.
    try:
        coincurve.PublicKey(data)
    except ValueError:
        return False
    return True


def is_valid_point(data: bytes) -> bool:
    """Whether ``data`` is a 33-byte compressed secp256k1 point on the curve."""
    return len(data) == POINT_LEN and data[0] in (2, 3) and _point_is_valid(bytes(data))


def check_point(data: bytes) -> bytes:
    if not is_valid_point(data):
        raise InvalidPointError(f"not a valid compressed secp256k1 point: {data.hex()}")
    return data


_SCID_TEXT = re.compile(r"^(\d+)x(\d+)x(\d+)$")


@dataclass(frozen=True, order=True, slots=True)
class ShortChannelId:
    """BOLT #7 ``short_channel_id``: funding block height, transaction index, output index."""

    block_height: int
    tx_index: int
    output_index: int

    def __post_init__(self) -> None:
        if not (0 <= self.block_height < 1 << 24 and 0 <= self.tx_index < 1 << 24):
            raise EncodeError(f"short_channel_id component out of range: {self}")
        if not 0 <= self.output_index < 1 << 16:
            raise EncodeError(f"short_channel_id output index out of range: {self}")

    @classmethod
    def from_int(cls, value: int) -> ShortChannelId:
        if not 0 <= value < 1 << 64:
            raise EncodeError(f"short_channel_id out of range: {value}")
        return cls(value >> 40, (value >> 16) & 0xFFFFFF, value & 0xFFFF)

    @classmethod
    def from_bytes(cls, data: bytes) -> ShortChannelId:
        if len(data) != 8:
            raise DecodeError(f"short_channel_id must be 8 bytes, got {len(data)}")
        return cls.from_int(int.from_bytes(data, "big"))

    @classmethod
    def parse(cls, text: str) -> ShortChannelId:
        """Parse the human-readable ``BLOCKxTXxOUT`` form."""
        match = _SCID_TEXT.match(text)
        if match is None:
            raise EncodeError(f"not a short channel id: {text!r}")
        return cls(int(match.group(1)), int(match.group(2)), int(match.group(3)))

    def to_int(self) -> int:
        return (self.block_height << 40) | (self.tx_index << 16) | self.output_index

    def to_bytes(self) -> bytes:
        return self.to_int().to_bytes(8, "big")

    def __str__(self) -> str:
        return f"{self.block_height}x{self.tx_index}x{self.output_index}"


#: Every fundamental type the wire tables may name, with its width in bytes
#: (``None`` for types whose width depends on the value or on what follows).
FUNDAMENTAL_TYPES: dict[str, int | None] = {
    "byte": 1,
    "u8": 1,
    "utf8": 1,
    "u16": 2,
    "u32": 4,
    "u64": 8,
    "s8": 1,
    "s16": 2,
    "s32": 4,
    "s64": 8,
    "tu16": None,
    "tu32": None,
    "tu64": None,
    "bigsize": None,
    "chain_hash": HASH_LEN,
    "channel_id": HASH_LEN,
    "sha256": HASH_LEN,
    # BOLT #4 attribution data: HMACs truncated to their first four bytes.
    "sha256[..4]": 4,
    "signature": SIGNATURE_LEN,
    "bip340sig": SIGNATURE_LEN,
    "point": POINT_LEN,
    "short_channel_id": 8,
    "sciddir_or_pubkey": None,
}

#: Types whose arrays are carried as a single ``bytes`` (``str`` for ``utf8``) value.
BYTE_TYPES = frozenset({"byte", "u8", "utf8"})

#: Types that may serve as the length of a later array.
LENGTH_TYPES = frozenset({"byte", "u8", "u16", "u32", "u64", "bigsize"})

#: Truncated integers: they take whatever remains of their TLV record.
TRUNCATED_WIDTH = {"tu16": 2, "tu32": 4, "tu64": 8}
