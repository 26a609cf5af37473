"""Lightning messages: ``decode_message``, ``encode_message`` and ``make_message``.

A message on the wire is a big-endian ``u16`` type, the payload its layout
describes, and an optional extension (BOLT #1).  For messages that declare a
TLV stream the extension is parsed strictly (unknown even records and
malformed streams fail); for the others the trailing bytes are kept verbatim
so that re-encoding — and therefore signature checking over gossip — is
byte-identical.
"""

from __future__ import annotations

from collections.abc import Mapping

from ampere.wire.codec import decode_layout, decode_tlv_stream, encode_layout, encode_tlv_stream
from ampere.wire.errors import (
    DecodeError,
    EncodeError,
    MessageTooLongError,
    UnknownEvenMessageError,
    WireError,
)
from ampere.wire.primitives import Reader
from ampere.wire.schema import DEFAULT_SCHEMA, Schema
from ampere.wire.values import FieldValue, Message, Struct, TlvStream, UnknownMessage

MAX_MESSAGE_LEN = 65535

TlvInput = TlvStream | Mapping[str, Mapping[str, FieldValue] | Struct]


def decode_message(data: bytes, schema: Schema = DEFAULT_SCHEMA) -> Message | UnknownMessage:
    """Decode one whole (decrypted) Lightning message.

    Returns ``UnknownMessage`` for an unknown odd type, which the caller
    ignores.  Raises ``UnknownEvenMessageError`` for an unknown even type and
    another ``WireError`` for a malformed known message; both carry
    ``must_disconnect`` (BOLT #1 says to close the connection) and ``msg_type``.
    """
    if len(data) < 2:
        raise DecodeError("message shorter than its 2-byte type")
    msg_type = int.from_bytes(data[:2], "big")
    spec = schema.messages.get(msg_type)
    if spec is None:
        if msg_type % 2:
            return UnknownMessage(msg_type, bytes(data[2:]))
        raise UnknownEvenMessageError(f"unknown even message type {msg_type}", msg_type=msg_type)
    reader = Reader(bytes(data), 2)
    try:
        fields = decode_layout(spec.layout, reader, schema)
        if spec.tlv_stream is not None:
            tlvs = decode_tlv_stream(reader, schema.tlv_stream(spec.tlv_stream), schema)
            return Message(msg_type, spec.name, fields, tlvs)
        return Message(msg_type, spec.name, fields, None, reader.read_rest())
    except WireError as exc:
        exc.msg_type = msg_type
        exc.args = (f"{spec.name}: {exc.args[0] if exc.args else ''}",)
        raise


def encode_message(message: Message | UnknownMessage, schema: Schema = DEFAULT_SCHEMA) -> bytes:
    """Encode a message (type included); raises ``EncodeError`` if it is invalid or over 65535 bytes."""
    if not 0 <= message.type <= 0xFFFF:
        raise EncodeError(f"message type {message.type} out of range")
    out = bytearray(message.type.to_bytes(2, "big"))
    if isinstance(message, UnknownMessage):
        out += message.payload
    else:
        spec = schema.messages.get(message.type)
        if spec is None or spec.name != message.name:
            raise EncodeError(f"message {message.name} ({message.type}) is not in the schema")
        encode_layout(spec.layout, message.fields, out, schema, where=spec.name)
        if spec.tlv_stream is not None:
            if message.extension:
                raise EncodeError(f"{spec.name} carries its extension as TLVs, not raw bytes")
            if message.tlvs is not None:
                if message.tlvs.name != spec.tlv_stream:
                    raise EncodeError(f"{spec.name} takes {spec.tlv_stream}, not {message.tlvs.name}")
                encode_tlv_stream(message.tlvs, schema.tlv_stream(spec.tlv_stream), out, schema)
        else:
            if message.tlvs is not None:
                raise EncodeError(f"{spec.name} declares no TLV stream")
            out += message.extension
    if len(out) > MAX_MESSAGE_LEN:
        raise MessageTooLongError(f"{message.name} is {len(out)} bytes, over {MAX_MESSAGE_LEN}")
    return bytes(out)


def make_tlv_stream(
    stream: str,
    records: Mapping[str, Mapping[str, FieldValue] | Struct] | None = None,
    *,
    unknown: Mapping[int, bytes] | None = None,
    schema: Schema = DEFAULT_SCHEMA,
) -> TlvStream:
    """Build a TLV stream value from ``{record_name: {field: value}}`` and validate it."""
    spec = schema.tlv_stream(stream)
    structs: dict[str, Struct] = {}
    for name, value in (records or {}).items():
        if name not in spec.by_name:
            raise EncodeError(f"{stream} has no record {name!r}")
        structs[name] = value if isinstance(value, Struct) else Struct(name, value)
    result = TlvStream(stream, structs, unknown or {})
    encode_tlv_stream(result, spec, bytearray(), schema)
    return result


def make_message(
    name: str,
    /,
    *,
    tlvs: TlvInput | None = None,
    extension: bytes = b"",
    schema: Schema = DEFAULT_SCHEMA,
    **fields: FieldValue,
) -> Message:
    """Build a validated message by name, e.g. ``make_message("ping", num_pong_bytes=4, ignored=b"")``.

    Length-only fields are derived and must not be passed.  ``tlvs`` may be a
    ``TlvStream`` or a mapping ``{record_name: {field: value}}``.
    """
    spec = schema.message(name)
    stream: TlvStream | None = None
    if tlvs is not None:
        if spec.tlv_stream is None:
            raise EncodeError(f"{name} declares no TLV stream")
        stream = (
            tlvs if isinstance(tlvs, TlvStream) else make_tlv_stream(spec.tlv_stream, tlvs, schema=schema)
        )
    elif spec.tlv_stream is not None:
        stream = TlvStream(spec.tlv_stream)
    message = Message(spec.type, spec.name, fields, stream, extension)
    encode_message(message, schema)
    return message


def replace_fields(
    message: Message,
    /,
    *,
    tlvs: TlvInput | None = None,
    schema: Schema = DEFAULT_SCHEMA,
    **changes: FieldValue,
) -> Message:
    """A copy of ``message`` with some fields (and optionally its TLVs) replaced, validated."""
    unknown_fields = changes.keys() - message.fields.keys()
    if unknown_fields:
        raise EncodeError(f"{message.name} has no fields {sorted(unknown_fields)}")
    return make_message(
        message.name,
        tlvs=message.tlvs if tlvs is None else tlvs,
        extension=message.extension,
        schema=schema,
        **{**message.fields, **changes},
    )


def message_type(name: str, schema: Schema = DEFAULT_SCHEMA) -> int:
    """The numeric type of the message called ``name``."""
    return schema.message(name).type
