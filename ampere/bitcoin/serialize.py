"""Bitcoin's little-endian integers and CompactSize lengths, and a bounds-checked reader."""

from __future__ import annotations

import struct

from ampere.bitcoin.errors import DeserializationError


def compact_size(value: int) -> bytes:
    if value < 0:
        raise ValueError("CompactSize cannot encode a negative number")
    if value < 0xFD:
        return bytes([value])
    if value <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", value)
    if value <= 0xFFFF_FFFF:
        return b"\xfe" + struct.pack("<I", value)
    return b"\xff" + struct.pack("<Q", value)


def var_bytes(data: bytes) -> bytes:
    return compact_size(len(data)) + data


class ByteReader:
    """Reads a byte string front to back; running off the end raises DeserializationError."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def position(self) -> int:
        return self._pos

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def at_end(self) -> bool:
        return self._pos == len(self._data)

    def read(self, size: int) -> bytes:
        end = self._pos + size
        if size < 0 or end > len(self._data):
            raise DeserializationError(f"need {size} bytes at offset {self._pos}, have {self.remaining()}")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def peek(self, size: int) -> bytes:
        return self._data[self._pos : self._pos + size]

    def u8(self) -> int:
        return self.read(1)[0]

    def u32(self) -> int:
        value: int = struct.unpack("<I", self.read(4))[0]
        return value

    def i32(self) -> int:
        value: int = struct.unpack("<i", self.read(4))[0]
        return value

    def u64(self) -> int:
        value: int = struct.unpack("<Q", self.read(8))[0]
        return value

    def compact_size(self) -> int:
        first = self.u8()
        if first < 0xFD:
            return first
        if first == 0xFD:
            value: int = struct.unpack("<H", self.read(2))[0]
            minimum = 0xFD
        elif first == 0xFE:
            value = struct.unpack("<I", self.read(4))[0]
            minimum = 0x1_0000
        else:
            value = struct.unpack("<Q", self.read(8))[0]
            minimum = 0x1_0000_0000
        if value < minimum:
            raise DeserializationError("non-canonical CompactSize")
        return value

    def var_bytes(self) -> bytes:
        size = self.compact_size()
        if size > self.remaining():
            raise DeserializationError(f"length {size} exceeds the {self.remaining()} bytes left")
        return self.read(size)
