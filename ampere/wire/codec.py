"""The schema-driven codec: encode and decode any layout described by a ``Schema``.

One interpreter serves messages, subtypes and TLV records alike, so a new
message costs a CSV line rather than code.  Decoding raises only
``WireError`` subclasses; encoding validates every value against its declared
type and raises ``EncodeError`` for anything that would not round-trip.
"""

from __future__ import annotations

from collections.abc import Mapping

from ampere.wire.bigsize import encode_bigsize
from ampere.wire.errors import DecodeError, EncodeError, TlvError, UnknownEvenTlvError
from ampere.wire.primitives import (
    BYTE_TYPES,
    FUNDAMENTAL_TYPES,
    POINT_LEN,
    TRUNCATED_WIDTH,
    Reader,
    ShortChannelId,
    check_point,
    decode_truncated,
    encode_int,
    encode_truncated,
    encode_uint,
)
from ampere.wire.schema import REST, FieldKind, FieldSpec, Layout, Schema, TlvStreamSpec
from ampere.wire.tlv import iter_tlv_records, serialize_tlv_records
from ampere.wire.values import FieldValue, Struct, TlvStream

_UNSIGNED = {"byte": 1, "u8": 1, "u16": 2, "u32": 4, "u64": 8}
_SIGNED = {"s8": 1, "s16": 2, "s32": 4, "s64": 8}
_OPAQUE = {"chain_hash", "channel_id", "sha256", "sha256[..4]", "signature", "bip340sig"}


# --------------------------------------------------------------------------- decoding


def _decode_fundamental(type_name: str, reader: Reader) -> FieldValue:
    width = _UNSIGNED.get(type_name)
    if width is not None or type_name == "utf8":
        return reader.read_uint(width or 1)
    width = _SIGNED.get(type_name)
    if width is not None:
        return reader.read_int(width)
    if type_name in _OPAQUE:
        size = FUNDAMENTAL_TYPES[type_name]
        assert size is not None
        return reader.read(size)
    if type_name == "point":
        return check_point(reader.read(POINT_LEN))
    if type_name == "short_channel_id":
        return ShortChannelId.from_int(reader.read_uint(8))
    if type_name == "bigsize":
        return reader.read_bigsize()
    if type_name in TRUNCATED_WIDTH:
        return decode_truncated(reader.read_rest(), TRUNCATED_WIDTH[type_name])
    if type_name == "sciddir_or_pubkey":
        first = reader.read(1)
        if first[0] in (0, 1):
            return first + reader.read(8)
        if first[0] in (2, 3):
            return check_point(first + reader.read(POINT_LEN - 1))
        raise DecodeError(f"sciddir_or_pubkey has invalid first byte {first[0]}")
    raise DecodeError(f"no decoder for type {type_name!r}")  # schema validation makes this unreachable


def _decode_one(spec: FieldSpec, reader: Reader, schema: Schema) -> FieldValue:
    if spec.kind is FieldKind.FUNDAMENTAL:
        return _decode_fundamental(spec.type_name, reader)
    if spec.kind is FieldKind.SUBTYPE:
        sub = schema.subtype(spec.type_name)
        return Struct(sub.name, decode_layout(sub.layout, reader, schema))
    return decode_tlv_stream(reader, schema.tlv_stream(spec.type_name), schema)


def _decode_array(spec: FieldSpec, count: int | None, reader: Reader, schema: Schema) -> FieldValue:
    if spec.type_name in BYTE_TYPES:
        raw = reader.read_rest() if count is None else reader.read(count)
        if spec.type_name == "utf8":
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DecodeError(f"{spec.name} is not valid UTF-8") from exc
        return raw
    items: list[FieldValue] = []
    if count is None:
        while not reader.at_end():
            items.append(_decode_one(spec, reader, schema))
    else:
        # Each element needs at least one byte, so a hostile count cannot make us loop past the data.
        if count > reader.remaining:
            raise DecodeError(f"{spec.name}: {count} elements cannot fit in {reader.remaining} bytes")
        items.extend(_decode_one(spec, reader, schema) for _ in range(count))
    return tuple(items)


def decode_layout(layout: Layout, reader: Reader, schema: Schema) -> dict[str, FieldValue]:
    """Decode the fields of ``layout`` from ``reader``; length-only fields are consumed and dropped."""
    values: dict[str, FieldValue] = {}
    lengths: dict[str, int] = {}
    implicit = layout.implicit
    for spec in layout.fields:
        count = spec.count
        if count is None:
            value = _decode_one(spec, reader, schema)
            if spec.name in implicit:
                assert isinstance(value, int)
                lengths[spec.name] = value
                continue
        elif isinstance(count, int):
            value = _decode_array(spec, count, reader, schema)
        elif count == REST:
            value = _decode_array(spec, None, reader, schema)
        else:
            value = _decode_array(spec, lengths[count], reader, schema)
        values[spec.name] = value
    return values


def decode_tlv_stream(reader: Reader, stream: TlvStreamSpec, schema: Schema) -> TlvStream:
    """Decode the rest of ``reader`` as ``stream``: known records decoded, unknown odd ones kept raw."""
    records: dict[str, Struct] = {}
    unknown: dict[int, bytes] = {}
    for tlv_type, value in iter_tlv_records(reader):
        record = stream.by_type.get(tlv_type)
        if record is None:
            if tlv_type % 2 == 0:
                raise UnknownEvenTlvError(
                    f"{stream.name}: unknown even TLV type {tlv_type}", tlv_type=tlv_type
                )
            unknown[tlv_type] = value.read_rest()
            continue
        fields = decode_layout(record.layout, value, schema)
        if not value.at_end():
            raise TlvError(f"{stream.name}.{record.name}: {value.remaining} bytes beyond its encoding")
        records[record.name] = Struct(record.name, fields)
    return TlvStream(stream.name, records, unknown)


def decode_tlv(data: bytes, stream: str | TlvStreamSpec, schema: Schema) -> TlvStream:
    """Decode a standalone TLV stream (an onion payload, a test vector...)."""
    spec = schema.tlv_stream(stream) if isinstance(stream, str) else stream
    return decode_tlv_stream(Reader(data), spec, schema)


# --------------------------------------------------------------------------- encoding


def _type_error(spec: FieldSpec, value: object, expected: str) -> EncodeError:
    return EncodeError(f"{spec.name} ({spec.type_name}) needs {expected}, got {type(value).__name__}")


def _encode_fundamental(spec: FieldSpec, value: object, out: bytearray) -> None:
    type_name = spec.type_name
    width = _UNSIGNED.get(type_name) or _SIGNED.get(type_name)
    if width is not None or type_name == "utf8" or type_name == "bigsize" or type_name in TRUNCATED_WIDTH:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _type_error(spec, value, "an int")
        if type_name in _SIGNED:
            out += encode_int(value, _SIGNED[type_name])
        elif type_name == "bigsize":
            out += encode_bigsize(value)
        elif type_name in TRUNCATED_WIDTH:
            out += encode_truncated(value, TRUNCATED_WIDTH[type_name])
        else:
            out += encode_uint(value, width or 1)
        return
    if type_name == "short_channel_id":
        if not isinstance(value, ShortChannelId):
            raise _type_error(spec, value, "a ShortChannelId")
        out += value.to_bytes()
        return
    if not isinstance(value, bytes):
        raise _type_error(spec, value, "bytes")
    if type_name == "sciddir_or_pubkey":
        ok = (len(value) == 9 and value[0] in (0, 1)) or (len(value) == POINT_LEN and value[0] in (2, 3))
    elif type_name == "point":
        ok = len(value) == POINT_LEN and value[0] in (2, 3)
    else:
        ok = len(value) == FUNDAMENTAL_TYPES[type_name]
    if not ok:
        raise EncodeError(f"{spec.name} is not a valid {type_name} ({len(value)} bytes)")
    out += value


def _encode_one(spec: FieldSpec, value: object, out: bytearray, schema: Schema) -> None:
    if spec.kind is FieldKind.FUNDAMENTAL:
        _encode_fundamental(spec, value, out)
    elif spec.kind is FieldKind.SUBTYPE:
        sub = schema.subtype(spec.type_name)
        if not isinstance(value, Struct) or value.name != sub.name:
            raise _type_error(spec, value, f"a Struct named {sub.name!r}")
        encode_layout(sub.layout, value.fields, out, schema, where=sub.name)
    else:
        if not isinstance(value, TlvStream):
            raise _type_error(spec, value, "a TlvStream")
        encode_tlv_stream(value, schema.tlv_stream(spec.type_name), out, schema)


def _array_length(spec: FieldSpec, value: object) -> int:
    if spec.type_name == "utf8":
        if not isinstance(value, str):
            raise _type_error(spec, value, "a str")
        return len(value.encode("utf-8"))
    if spec.type_name in BYTE_TYPES:
        if not isinstance(value, bytes):
            raise _type_error(spec, value, "bytes")
        return len(value)
    if not isinstance(value, tuple):
        raise _type_error(spec, value, "a tuple")
    return len(value)


def _encode_array(spec: FieldSpec, value: object, out: bytearray, schema: Schema) -> None:
    if isinstance(spec.count, int) and _array_length(spec, value) != spec.count:
        raise EncodeError(f"{spec.name} must hold exactly {spec.count} elements")
    if spec.type_name == "utf8":
        assert isinstance(value, str)
        out += value.encode("utf-8")
    elif spec.type_name in BYTE_TYPES:
        assert isinstance(value, bytes)
        out += value
    else:
        assert isinstance(value, tuple)
        for item in value:
            _encode_one(spec, item, out, schema)


def encode_layout(
    layout: Layout, values: Mapping[str, FieldValue], out: bytearray, schema: Schema, *, where: str
) -> None:
    """Append the encoding of ``values`` under ``layout`` to ``out``, deriving length fields."""
    expected = set(layout.field_names())
    if values.keys() != expected:
        missing = sorted(expected - values.keys())
        extra = sorted(values.keys() - expected)
        raise EncodeError(f"{where}: missing fields {missing}, unexpected fields {extra}")
    lengths: dict[str, int] = {}
    for spec in layout.fields:
        length_field = spec.length_field
        if length_field is not None:
            n = _array_length(spec, values[spec.name])
            if lengths.setdefault(length_field, n) != n:
                raise EncodeError(f"{where}: arrays sharing {length_field} differ in length")
    for spec in layout.fields:
        if spec.name in layout.implicit:
            _encode_fundamental(spec, lengths[spec.name], out)
        elif spec.count is None:
            _encode_one(spec, values[spec.name], out, schema)
        else:
            _encode_array(spec, values[spec.name], out, schema)


def encode_tlv_stream(stream: TlvStream, spec: TlvStreamSpec, out: bytearray, schema: Schema) -> None:
    """Append ``stream`` to ``out``: known and unknown records merged in increasing type order."""
    records: list[tuple[int, bytes]] = []
    for name, struct in stream.records.items():
        record = spec.by_name.get(name)
        if record is None:
            raise EncodeError(f"{spec.name} has no record {name!r}")
        if struct.name != name:
            raise EncodeError(f"{spec.name}: record {name!r} holds a Struct named {struct.name!r}")
        body = bytearray()
        encode_layout(record.layout, struct.fields, body, schema, where=f"{spec.name}.{name}")
        records.append((record.type, bytes(body)))
    for tlv_type, value in stream.unknown.items():
        if tlv_type in spec.by_type:
            raise EncodeError(
                f"{spec.name}: raw record {tlv_type} collides with known {spec.by_type[tlv_type].name}"
            )
        records.append((tlv_type, value))
    records.sort(key=lambda item: item[0])
    out += serialize_tlv_records(records)


def encode_tlv(stream: TlvStream, schema: Schema) -> bytes:
    """Encode a standalone TLV stream."""
    out = bytearray()
    encode_tlv_stream(stream, schema.tlv_stream(stream.name), out, schema)
    return bytes(out)
