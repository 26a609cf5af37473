"""TLV streams (BOLT #1 "Type-Length-Value Format") at the record level.

This module splits a stream into ``(type, value)`` records and joins them
back, enforcing everything BOLT #1 demands of the *stream*: minimal BigSize
type and length, strictly increasing types (so no duplicates), lengths within
the data, and rejection of unknown even types.  Decoding the *values* of known
records according to a schema is the codec's job (``ampere.wire.codec``).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass

from ampere.wire.bigsize import encode_bigsize
from ampere.wire.errors import EncodeError, TlvError, UnknownEvenTlvError
from ampere.wire.primitives import Reader


@dataclass(frozen=True, slots=True)
class TlvRecord:
    type: int
    value: bytes


def iter_tlv_records(reader: Reader) -> Iterator[tuple[int, Reader]]:
    """Yield ``(type, value_reader)`` for each record left in ``reader``.

    Ordering is checked before the record is yielded, so callers never act on
    a record that makes the stream invalid.
    """
    previous = -1
    while not reader.at_end():
        tlv_type = reader.read_bigsize()
        if tlv_type <= previous:
            kind = "duplicate" if tlv_type == previous else "out-of-order"
            raise TlvError(f"{kind} TLV type {tlv_type} after {previous}")
        previous = tlv_type
        length = reader.read_bigsize()
        yield tlv_type, reader.sub_reader(length)


def parse_tlv_records(data: bytes, *, known: Container[int] = ()) -> tuple[TlvRecord, ...]:
    """Split a whole TLV stream into records.

    Types in ``known`` are returned for the caller to interpret; unknown odd
    types are returned too (callers keep them for re-encoding and signature
    checks); an unknown even type fails the stream.
    """
    records: list[TlvRecord] = []
    for tlv_type, value in iter_tlv_records(Reader(data)):
        if tlv_type % 2 == 0 and tlv_type not in known:
            raise UnknownEvenTlvError(f"unknown even TLV type {tlv_type}", tlv_type=tlv_type)
        records.append(TlvRecord(tlv_type, value.read_rest()))
    return tuple(records)


def serialize_tlv_records(records: Iterable[tuple[int, bytes] | TlvRecord]) -> bytes:
    """Join records into a stream; they must already be in strictly increasing type order."""
    out = bytearray()
    previous = -1
    for record in records:
        tlv_type, value = (record.type, record.value) if isinstance(record, TlvRecord) else record
        if tlv_type <= previous:
            raise EncodeError(f"TLV type {tlv_type} is not greater than {previous}")
        previous = tlv_type
        out += encode_bigsize(tlv_type)
        out += encode_bigsize(len(value))
        out += value
    return bytes(out)
