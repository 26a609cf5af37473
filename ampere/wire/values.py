"""Decoded wire values: messages, subtype structs and TLV streams.

These are plain immutable values; the schema-driven codec produces and
consumes them.  Field values are ``int`` (integers, ``byte``), ``bytes``
(hashes, points, signatures, byte arrays), ``str`` (``utf8`` arrays),
``ShortChannelId``, ``Struct`` (a subtype), ``TlvStream`` (nested stream) or a
``tuple`` of those (arrays of non-byte types).

Length-only fields (``len`` before ``len*byte``) never appear: the encoder
derives them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeAlias

from ampere.wire.errors import SchemaError
from ampere.wire.primitives import ShortChannelId

FieldValue: TypeAlias = "int | bytes | str | ShortChannelId | Struct | TlvStream | tuple[FieldValue, ...]"


def _frozen(mapping: Mapping[str, FieldValue]) -> Mapping[str, FieldValue]:
    if isinstance(mapping, MappingProxyType):
        return mapping
    return MappingProxyType(dict(mapping))


def _brief(value: object) -> str:
    """A log-friendly rendering: long byte strings are cut, so a 1366-byte onion stays one short line."""
    if isinstance(value, bytes):
        text = value[:16].hex()
        return f"{text}…({len(value)}B)" if len(value) > 16 else (text or "''")
    if isinstance(value, tuple):
        inner = ", ".join(_brief(item) for item in value[:4])
        return f"({inner}{', …' if len(value) > 4 else ''})"
    if isinstance(value, ShortChannelId):
        return str(value)
    return repr(value)


def _fields_repr(fields: Mapping[str, FieldValue]) -> str:
    return ", ".join(f"{key}={_brief(value)}" for key, value in fields.items())


class _FieldAccess:
    """Typed accessors shared by everything that carries named fields."""

    __slots__ = ()

    name: str
    fields: Mapping[str, FieldValue]

    def __getitem__(self, key: str) -> FieldValue:
        try:
            return self.fields[key]
        except KeyError:
            raise SchemaError(f"{self.name} has no field {key!r}") from None

    def __contains__(self, key: object) -> bool:
        return key in self.fields

    def get_int(self, key: str) -> int:
        value = self[key]
        if not isinstance(value, int):
            raise SchemaError(f"{self.name}.{key} is not an integer")
        return value

    def get_bytes(self, key: str) -> bytes:
        value = self[key]
        if not isinstance(value, bytes):
            raise SchemaError(f"{self.name}.{key} is not a byte string")
        return value

    def get_str(self, key: str) -> str:
        value = self[key]
        if not isinstance(value, str):
            raise SchemaError(f"{self.name}.{key} is not a string")
        return value

    def get_scid(self, key: str) -> ShortChannelId:
        value = self[key]
        if not isinstance(value, ShortChannelId):
            raise SchemaError(f"{self.name}.{key} is not a short_channel_id")
        return value

    def get_struct(self, key: str) -> Struct:
        value = self[key]
        if not isinstance(value, Struct):
            raise SchemaError(f"{self.name}.{key} is not a struct")
        return value

    def get_tuple(self, key: str) -> tuple[FieldValue, ...]:
        value = self[key]
        if not isinstance(value, tuple):
            raise SchemaError(f"{self.name}.{key} is not an array")
        return value


@dataclass(frozen=True, slots=True)
class Struct(_FieldAccess):
    """A subtype instance or a known TLV record: a name and its field values."""

    name: str
    fields: Mapping[str, FieldValue]

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", _frozen(self.fields))

    def __repr__(self) -> str:
        return f"{self.name}({_fields_repr(self.fields)})"


@dataclass(frozen=True, slots=True)
class TlvStream:
    """A decoded TLV stream: known records by name, unknown (odd) records kept raw for re-encoding."""

    name: str
    records: Mapping[str, Struct] = field(default_factory=dict)
    unknown: Mapping[int, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "records", MappingProxyType(dict(self.records)))
        object.__setattr__(self, "unknown", MappingProxyType(dict(self.unknown)))

    def __contains__(self, record: object) -> bool:
        return record in self.records

    def __iter__(self) -> Iterator[str]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records) + len(self.unknown)

    def get(self, record: str) -> Struct | None:
        return self.records.get(record)

    def __repr__(self) -> str:
        parts = [repr(struct) for struct in self.records.values()]
        parts += [f"unknown_{t}={_brief(v)}" for t, v in self.unknown.items()]
        return f"{self.name}[{', '.join(parts)}]"

    def value(self, record: str) -> FieldValue | None:
        """The value of a single-field record, or ``None`` when the record is absent."""
        struct = self.records.get(record)
        if struct is None:
            return None
        if len(struct.fields) != 1:
            raise SchemaError(f"{self.name}.{record} has {len(struct.fields)} fields, not one")
        return next(iter(struct.fields.values()))


@dataclass(frozen=True, slots=True)
class Message(_FieldAccess):
    """A known Lightning message.

    ``tlvs`` is the decoded extension stream for messages that declare one
    (``None`` otherwise); ``extension`` keeps the raw trailing bytes of
    messages that declare none, because signatures over gossip cover them.
    """

    type: int
    name: str
    fields: Mapping[str, FieldValue]
    tlvs: TlvStream | None = None
    extension: bytes = b""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", _frozen(self.fields))

    def __repr__(self) -> str:
        extra = ""
        if self.tlvs is not None and len(self.tlvs):
            extra = f", tlvs={self.tlvs!r}"
        if self.extension:
            extra += f", extension={_brief(self.extension)}"
        return f"<{self.name} ({self.type}) {_fields_repr(self.fields)}{extra}>"

    def tlv(self, record: str) -> Struct | None:
        """A known TLV record of this message's extension, or ``None`` when absent."""
        return None if self.tlvs is None else self.tlvs.get(record)

    def tlv_value(self, record: str) -> FieldValue | None:
        """The value of a single-field TLV record, or ``None`` when absent."""
        return None if self.tlvs is None else self.tlvs.value(record)


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A message of unknown odd type: BOLT #1 says to ignore it, so it is kept only as raw bytes."""

    type: int
    payload: bytes

    @property
    def name(self) -> str:
        return f"unknown_{self.type}"
