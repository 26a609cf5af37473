"""A minimal length-prefixed encoding for the resolver's persisted state (versioned by its user)."""

from __future__ import annotations

import struct

from ampere.onchain.errors import ResolverDecodeError

__all__ = ["Reader", "Writer"]


class Writer:
    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, value: int) -> Writer:
        self._parts.append(struct.pack(">B", value))
        return self

    def u32(self, value: int) -> Writer:
        self._parts.append(struct.pack(">I", value))
        return self

    def u64(self, value: int) -> Writer:
        self._parts.append(struct.pack(">Q", value))
        return self

    def optional_u64(self, value: int | None) -> Writer:
        if value is None:
            return self.u8(0)
        return self.u8(1).u64(value)

    def blob(self, value: bytes) -> Writer:
        self._parts.append(struct.pack(">I", len(value)) + value)
        return self

    def optional_blob(self, value: bytes | None) -> Writer:
        if value is None:
            return self.u8(0)
        return self.u8(1).blob(value)

    def to_bytes(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, size: int) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise ResolverDecodeError("resolver state is truncated")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def u8(self) -> int:
        value: int = struct.unpack(">B", self._take(1))[0]
        return value

    def u32(self) -> int:
        value: int = struct.unpack(">I", self._take(4))[0]
        return value

    def u64(self) -> int:
        value: int = struct.unpack(">Q", self._take(8))[0]
        return value

    def optional_u64(self) -> int | None:
        return self.u64() if self._flag() else None

    def blob(self) -> bytes:
        return self._take(self.u32())

    def optional_blob(self) -> bytes | None:
        return self.blob() if self._flag() else None

    def _flag(self) -> bool:
        flag = self.u8()
        if flag > 1:
            raise ResolverDecodeError(f"bad presence flag {flag}")
        return flag == 1

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise ResolverDecodeError(f"{len(self._data) - self._pos} trailing bytes in resolver state")
