"""Versioned binary persistence of `ChannelState`.

The layout follows the dataclasses' field order and type hints (ints as zigzag LEB128, bytes and
strings length-prefixed, optionals flagged, enums by value, transactions in consensus form), so
it is deterministic: the same state always gives the same bytes, which is what lets the tests
compare states through their encodings. A magic, a format version and a checksum frame it; a
change to any persisted dataclass must bump `FORMAT_VERSION` and keep a reader for the old one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import types
import typing
from collections.abc import Callable
from enum import Enum
from typing import Any

from ampere.bitcoin.errors import BitcoinError
from ampere.bitcoin.tx import Transaction
from ampere.errors import AmpereError

__all__ = ["FORMAT_VERSION", "StateDecodeError", "decode_value", "encode_value"]

MAGIC = b"AMPC"
FORMAT_VERSION = 1
_CHECKSUM_LEN = 4

_Encoder = Callable[[Any, bytearray], None]
_Decoder = Callable[["_Reader"], Any]


class StateDecodeError(AmpereError):
    """Persisted channel bytes that are truncated, corrupted or of an unknown version."""


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def read(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise StateDecodeError("channel state is truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def varint(self) -> int:
        data, pos = self.data, self.pos
        if pos < len(data) and data[pos] < 0x80:
            # Most values (lengths, flags, small numbers) fit one byte: skip the loop.
            self.pos = pos + 1
            return data[pos]
        shift = result = 0
        while True:
            if self.pos >= len(self.data):
                raise StateDecodeError("channel state is truncated")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift > 7 * 20:
                raise StateDecodeError("integer too long")


def _write_varint(value: int, out: bytearray) -> None:
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _enc_int(value: Any, out: bytearray) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected int, got {type(value).__name__}")
    _write_varint(value * 2 if value >= 0 else -value * 2 - 1, out)


def _dec_int(reader: _Reader) -> int:
    raw = reader.varint()
    return raw // 2 if raw % 2 == 0 else -(raw + 1) // 2


def _enc_bool(value: Any, out: bytearray) -> None:
    out.append(1 if value else 0)


def _dec_bool(reader: _Reader) -> bool:
    flag = reader.varint()
    if flag > 1:
        raise StateDecodeError("invalid boolean")
    return flag == 1


def _enc_bytes(value: Any, out: bytearray) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    _write_varint(len(value), out)
    out += value


def _dec_bytes(reader: _Reader) -> bytes:
    return reader.read(reader.varint())


def _enc_str(value: Any, out: bytearray) -> None:
    _enc_bytes(value.encode(), out)


def _dec_str(reader: _Reader) -> str:
    try:
        return _dec_bytes(reader).decode()
    except UnicodeDecodeError as exc:
        raise StateDecodeError("invalid string") from exc


def _enc_tx(value: Any, out: bytearray) -> None:
    _enc_bytes(value.serialize(), out)


def _dec_tx(reader: _Reader) -> Transaction:
    try:
        return Transaction.parse(_dec_bytes(reader))
    except BitcoinError as exc:
        raise StateDecodeError(f"invalid transaction: {exc}") from exc


_PRIMITIVES: dict[Any, tuple[_Encoder, _Decoder]] = {
    int: (_enc_int, _dec_int),
    bool: (_enc_bool, _dec_bool),
    bytes: (_enc_bytes, _dec_bytes),
    str: (_enc_str, _dec_str),
    Transaction: (_enc_tx, _dec_tx),
}
_CACHE: dict[Any, tuple[_Encoder, _Decoder]] = {}


def _enum_codec(tp: type[Enum]) -> tuple[_Encoder, _Decoder]:
    members = list(tp)

    def enc(value: Any, out: bytearray) -> None:
        _write_varint(members.index(value), out)

    def dec(reader: _Reader) -> Any:
        index = reader.varint()
        if index >= len(members):
            raise StateDecodeError(f"invalid {tp.__name__}")
        return members[index]

    return enc, dec


def _optional_codec(inner: Any) -> tuple[_Encoder, _Decoder]:
    enc_inner, dec_inner = _codec(inner)

    def enc(value: Any, out: bytearray) -> None:
        if value is None:
            out.append(0)
        else:
            out.append(1)
            enc_inner(value, out)

    def dec(reader: _Reader) -> Any:
        return dec_inner(reader) if _dec_bool(reader) else None

    return enc, dec


def _tuple_codec(item: Any) -> tuple[_Encoder, _Decoder]:
    enc_item, dec_item = _codec(item)

    def enc(value: Any, out: bytearray) -> None:
        _write_varint(len(value), out)
        for element in value:
            enc_item(element, out)

    def dec(reader: _Reader) -> tuple[Any, ...]:
        count = reader.varint()
        if count > len(reader.data):
            raise StateDecodeError("implausible element count")
        return tuple(dec_item(reader) for _ in range(count))

    return enc, dec


def _dataclass_codec(tp: type[Any]) -> tuple[_Encoder, _Decoder]:
    hints = typing.get_type_hints(tp)
    # Transient fields (caches) are not persisted: the decoder leaves them at their defaults.
    specs = [spec for spec in dataclasses.fields(tp) if not spec.metadata.get("transient")]
    if any(not spec.init or spec.kw_only for spec in specs):
        raise TypeError(f"{tp.__name__}: only positional init fields can be persisted")
    names = [spec.name for spec in specs]
    encoders = [(name, _codec(hints[name])[0]) for name in names]
    decoders = [_codec(hints[name])[1] for name in names]

    def enc(value: Any, out: bytearray) -> None:
        for name, enc_field in encoders:
            enc_field(getattr(value, name), out)

    def dec(reader: _Reader) -> Any:
        values = [dec_field(reader) for dec_field in decoders]
        try:
            return tp(*values)
        except (AmpereError, ValueError, TypeError) as exc:
            raise StateDecodeError(f"invalid {tp.__name__}: {exc}") from exc

    return enc, dec


def _codec(tp: Any) -> tuple[_Encoder, _Decoder]:
    cached = _CACHE.get(tp)
    if cached is not None:
        return cached
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    result: tuple[_Encoder, _Decoder]
    if tp in _PRIMITIVES:
        result = _PRIMITIVES[tp]
    elif isinstance(tp, type) and issubclass(tp, Enum):
        result = _enum_codec(tp)
    elif origin in (types.UnionType, typing.Union) and len(args) == 2 and type(None) in args:
        result = _optional_codec(next(arg for arg in args if arg is not type(None)))
    elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        result = _tuple_codec(args[0])
    elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
        result = _dataclass_codec(tp)
    else:
        raise TypeError(f"no persistence codec for {tp!r}")
    _CACHE[tp] = result
    return result


def encode_value(value: Any, tp: Any) -> bytes:
    """Frame `value` (of type `tp`) with magic, version and checksum."""
    out = bytearray(MAGIC)
    out.append(FORMAT_VERSION)
    _codec(tp)[0](value, out)
    return bytes(out) + hashlib.sha256(out).digest()[:_CHECKSUM_LEN]


def decode_value(data: bytes, tp: Any) -> Any:
    if len(data) < len(MAGIC) + 1 + _CHECKSUM_LEN or not data.startswith(MAGIC):
        raise StateDecodeError("not a persisted channel state")
    body, checksum = data[:-_CHECKSUM_LEN], data[-_CHECKSUM_LEN:]
    if hashlib.sha256(body).digest()[:_CHECKSUM_LEN] != checksum:
        raise StateDecodeError("channel state checksum mismatch")
    version = body[len(MAGIC)]
    if version != FORMAT_VERSION:
        raise StateDecodeError(f"unknown channel state format version {version}")
    reader = _Reader(body[len(MAGIC) + 1 :])
    value = _codec(tp)[1](reader)
    if reader.pos != len(reader.data):
        raise StateDecodeError("trailing bytes after channel state")
    return value
