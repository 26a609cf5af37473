"""The Lightning wire format (BOLT #1, #2, #7): fundamental types, TLV, messages and features.

Sans-IO: everything here maps bytes to values and back; reading and writing
sockets belongs to the peer layer.
"""

from ampere.wire.bigsize import decode_bigsize, encode_bigsize
from ampere.wire.codec import decode_tlv, encode_tlv
from ampere.wire.errors import (
    DecodeError,
    EncodeError,
    FeatureError,
    InvalidPointError,
    MessageTooLongError,
    NonCanonicalError,
    SchemaError,
    TlvError,
    UnexpectedEOFError,
    UnknownEvenMessageError,
    UnknownEvenTlvError,
    WireError,
)
from ampere.wire.features import Feature, Features
from ampere.wire.messages import (
    MAX_MESSAGE_LEN,
    decode_message,
    encode_message,
    make_message,
    make_tlv_stream,
    message_type,
    replace_fields,
)
from ampere.wire.primitives import ShortChannelId
from ampere.wire.schema import DEFAULT_SCHEMA, Schema
from ampere.wire.tlv import TlvRecord, parse_tlv_records, serialize_tlv_records
from ampere.wire.values import FieldValue, Message, Struct, TlvStream, UnknownMessage

__all__ = [
    "DEFAULT_SCHEMA",
    "MAX_MESSAGE_LEN",
    "DecodeError",
    "EncodeError",
    "Feature",
    "FeatureError",
    "Features",
    "FieldValue",
    "InvalidPointError",
    "Message",
    "MessageTooLongError",
    "NonCanonicalError",
    "Schema",
    "SchemaError",
    "ShortChannelId",
    "Struct",
    "TlvError",
    "TlvRecord",
    "TlvStream",
    "UnexpectedEOFError",
    "UnknownEvenMessageError",
    "UnknownEvenTlvError",
    "UnknownMessage",
    "WireError",
    "decode_bigsize",
    "decode_message",
    "decode_tlv",
    "encode_bigsize",
    "encode_message",
    "encode_tlv",
    "make_message",
    "make_tlv_stream",
    "message_type",
    "parse_tlv_records",
    "replace_fields",
    "serialize_tlv_records",
]
