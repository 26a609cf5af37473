"""BigSize: the big-endian CompactSize variable-length integer of BOLT #1.

Decoding insists on the minimal encoding, because TLV streams are signed and
compared byte-for-byte: two encodings of the same value would let a peer
produce distinct-but-equal messages.
"""

from __future__ import annotations

from ampere.wire.errors import EncodeError, NonCanonicalError, UnexpectedEOFError

MAX_BIGSIZE = 0xFFFF_FFFF_FFFF_FFFF

_MIN_FOR_WIDTH = {0xFD: 0xFD, 0xFE: 0x1_0000, 0xFF: 0x1_0000_0000}
_WIDTH = {0xFD: 2, 0xFE: 4, 0xFF: 8}


def encode_bigsize(value: int) -> bytes:
    """Encode ``value`` (0 ≤ value < 2^64) in its unique minimal BigSize form."""
    if value < 0 or value > MAX_BIGSIZE:
        raise EncodeError(f"bigsize out of range: {value}")
    if value < 0xFD:
        return bytes((value,))
    if value < 0x1_0000:
        return b"\xfd" + value.to_bytes(2, "big")
    if value < 0x1_0000_0000:
        return b"\xfe" + value.to_bytes(4, "big")
    return b"\xff" + value.to_bytes(8, "big")


def bigsize_length(value: int) -> int:
    """The number of bytes ``encode_bigsize(value)`` produces."""
    if value < 0xFD:
        return 1
    if value < 0x1_0000:
        return 3
    if value < 0x1_0000_0000:
        return 5
    return 9


def decode_bigsize(data: bytes, offset: int = 0, limit: int | None = None) -> tuple[int, int]:
    """Decode one BigSize at ``offset``; return ``(value, offset_after)``.

    ``limit`` (default ``len(data)``) bounds how far the encoding may reach.
    Raises ``UnexpectedEOFError`` on truncation and ``NonCanonicalError`` when
    the value would fit a shorter encoding.
    """
    if limit is None:
        limit = len(data)
    if offset >= limit:
        raise UnexpectedEOFError("EOF")
    prefix = data[offset]
    if prefix < 0xFD:
        return prefix, offset + 1
    width = _WIDTH[prefix]
    end = offset + 1 + width
    if end > limit:
        raise UnexpectedEOFError("unexpected EOF")
    value = int.from_bytes(data[offset + 1 : end], "big")
    if value < _MIN_FOR_WIDTH[prefix]:
        raise NonCanonicalError("decoded bigsize is not canonical")
    return value, end
