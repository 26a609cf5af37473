"""The wire tables: message, TLV-stream and subtype layouts loaded from the extracted CSV files.

The CSV files under ``specs/`` are the single declaration of every layout;
this module turns them into immutable ``Schema`` objects and checks them for
consistency once, at load time, so the codec can trust what it is handed.

Two conventions of the spec are made explicit here:

* A field that only states the size of a later array (``len`` before
  ``len*byte``) is *implicit*: callers never supply it, the encoder derives
  it and the decoder uses it and drops it.
* Several messages define a ``<message>_tlvs`` stream without listing it as
  their last data field (``update_add_htlc``, ``channel_reestablish``, ...).
  Such a stream is bound to the message as its extension all the same.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

from ampere.wire.errors import SchemaError
from ampere.wire.primitives import FUNDAMENTAL_TYPES, LENGTH_TYPES, TRUNCATED_WIDTH

REST = "..."


class FieldKind(enum.Enum):
    FUNDAMENTAL = "fundamental"
    SUBTYPE = "subtype"
    TLV_STREAM = "tlv_stream"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a layout.

    ``count`` is ``None`` for a single value, an ``int`` for a fixed-size array,
    ``"..."`` for an array running to the end of its container, or the name of
    the earlier field holding the array's length.
    """

    name: str
    type_name: str
    kind: FieldKind
    count: int | str | None = None

    @property
    def is_array(self) -> bool:
        return self.count is not None

    @property
    def length_field(self) -> str | None:
        if isinstance(self.count, str) and self.count != REST:
            return self.count
        return None


@dataclass(frozen=True, slots=True)
class Layout:
    """An ordered list of fields; ``implicit`` names the length-only fields."""

    fields: tuple[FieldSpec, ...]
    implicit: frozenset[str]

    @property
    def public_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.name not in self.implicit)

    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.name not in self.implicit)


@dataclass(frozen=True, slots=True)
class MessageSpec:
    type: int
    name: str
    layout: Layout
    tlv_stream: str | None
    option: str | None = None


@dataclass(frozen=True, slots=True)
class TlvRecordSpec:
    type: int
    name: str
    layout: Layout


@dataclass(frozen=True, slots=True)
class TlvStreamSpec:
    name: str
    by_type: Mapping[int, TlvRecordSpec]
    by_name: Mapping[str, TlvRecordSpec]


@dataclass(frozen=True, slots=True)
class SubtypeSpec:
    name: str
    layout: Layout


@dataclass
class _RawDef:
    """A definition as read from CSV, before cross-references are resolved."""

    name: str
    value: int | None
    option: str | None
    fields: list[tuple[str, str, str]]


class Schema:
    """An immutable set of message, TLV stream and subtype definitions."""

    def __init__(
        self,
        messages: Iterable[MessageSpec],
        tlv_streams: Iterable[TlvStreamSpec],
        subtypes: Iterable[SubtypeSpec],
    ) -> None:
        by_type: dict[int, MessageSpec] = {}
        by_name: dict[str, MessageSpec] = {}
        for message in messages:
            if message.type in by_type or message.name in by_name:
                raise SchemaError(f"message {message.name} ({message.type}) defined twice")
            by_type[message.type] = message
            by_name[message.name] = message
        self.messages: Mapping[int, MessageSpec] = MappingProxyType(by_type)
        self.messages_by_name: Mapping[str, MessageSpec] = MappingProxyType(by_name)
        self.tlv_streams: Mapping[str, TlvStreamSpec] = MappingProxyType({s.name: s for s in tlv_streams})
        self.subtypes: Mapping[str, SubtypeSpec] = MappingProxyType({s.name: s for s in subtypes})

    def message(self, name: str) -> MessageSpec:
        try:
            return self.messages_by_name[name]
        except KeyError:
            raise SchemaError(f"unknown message {name!r}") from None

    def tlv_stream(self, name: str) -> TlvStreamSpec:
        try:
            return self.tlv_streams[name]
        except KeyError:
            raise SchemaError(f"unknown TLV stream {name!r}") from None

    def subtype(self, name: str) -> SubtypeSpec:
        try:
            return self.subtypes[name]
        except KeyError:
            raise SchemaError(f"unknown subtype {name!r}") from None

    @classmethod
    def from_csv(cls, *texts: str) -> Schema:
        """Build a schema from one or more CSV documents (as produced by ``specs/extract.py``)."""
        return _SchemaBuilder(texts).build()

    def extended(self, *texts: str) -> Schema:
        """A new schema holding this one's definitions plus those in ``texts`` (custom messages)."""
        extra = Schema.from_csv(*texts) if texts else Schema((), (), ())
        return Schema(
            [*self.messages.values(), *extra.messages.values()],
            {**self.tlv_streams, **extra.tlv_streams}.values(),
            {**self.subtypes, **extra.subtypes}.values(),
        )


class _SchemaBuilder:
    def __init__(self, texts: Iterable[str]) -> None:
        self.messages: dict[str, _RawDef] = {}
        self.streams: dict[str, dict[str, _RawDef]] = {}
        self.subtypes: dict[str, _RawDef] = {}
        for text in texts:
            for lineno, line in enumerate(text.splitlines(), 1):
                stripped = line.strip()
                if stripped and not stripped.startswith("#"):
                    self._add(stripped.split(","), lineno, line)

    def _add(self, cols: list[str], lineno: int, line: str) -> None:
        kind = cols[0]
        try:
            if kind == "msgtype":
                option = cols[3] if len(cols) > 3 and cols[3] else None
                self.messages[cols[1]] = _RawDef(cols[1], int(cols[2]), option, [])
            elif kind == "msgdata":
                self.messages[cols[1]].fields.append((cols[2], cols[3], cols[4]))
            elif kind == "tlvtype":
                self.streams.setdefault(cols[1], {})[cols[2]] = _RawDef(cols[2], int(cols[3]), None, [])
            elif kind == "tlvdata":
                self.streams[cols[1]][cols[2]].fields.append((cols[3], cols[4], cols[5]))
            elif kind == "subtype":
                self.subtypes[cols[1]] = _RawDef(cols[1], None, None, [])
            elif kind == "subtypedata":
                self.subtypes[cols[1]].fields.append((cols[2], cols[3], cols[4]))
            else:
                raise SchemaError(f"line {lineno}: unknown record kind {kind!r}")
        except (IndexError, KeyError, ValueError) as exc:
            raise SchemaError(f"line {lineno}: malformed wire table line {line!r}") from exc

    def _kind(self, type_name: str, where: str) -> FieldKind:
        if type_name in FUNDAMENTAL_TYPES:
            return FieldKind.FUNDAMENTAL
        if type_name in self.subtypes:
            return FieldKind.SUBTYPE
        if type_name in self.streams:
            return FieldKind.TLV_STREAM
        raise SchemaError(f"{where}: unknown type {type_name!r}")

    def _layout(self, raw: list[tuple[str, str, str]], where: str, *, in_tlv: bool) -> Layout:
        fields: list[FieldSpec] = []
        implicit: set[str] = set()
        seen: dict[str, FieldSpec] = {}
        for index, (name, type_name, count_text) in enumerate(raw):
            kind = self._kind(type_name, f"{where}.{name}")
            count: int | str | None
            if not count_text:
                count = None
            elif count_text.isdigit():
                count = int(count_text)
            elif count_text == REST:
                count = REST
            else:
                length_field = seen.get(count_text)
                if (
                    length_field is None
                    or length_field.is_array
                    or length_field.type_name not in LENGTH_TYPES
                ):
                    raise SchemaError(f"{where}.{name}: {count_text!r} is not an earlier integer field")
                implicit.add(count_text)
                count = count_text
            last = index == len(raw) - 1
            takes_rest = count == REST or type_name in TRUNCATED_WIDTH or kind is FieldKind.TLV_STREAM
            if takes_rest and not last:
                raise SchemaError(f"{where}.{name}: a field that runs to the end must come last")
            if type_name in TRUNCATED_WIDTH and (not in_tlv or count is not None):
                raise SchemaError(f"{where}.{name}: truncated integers only end TLV records")
            spec = FieldSpec(name, type_name, kind, count)
            if name in seen:
                raise SchemaError(f"{where}: field {name!r} appears twice")
            seen[name] = spec
            fields.append(spec)
        return Layout(tuple(fields), frozenset(implicit))

    def build(self) -> Schema:
        subtypes = [
            SubtypeSpec(raw.name, self._layout(raw.fields, raw.name, in_tlv=False))
            for raw in self.subtypes.values()
        ]
        streams: list[TlvStreamSpec] = []
        for stream_name, records in self.streams.items():
            specs = [
                TlvRecordSpec(
                    raw.value or 0,
                    raw.name,
                    self._layout(raw.fields, f"{stream_name}.{raw.name}", in_tlv=True),
                )
                for raw in records.values()
            ]
            by_type = {spec.type: spec for spec in sorted(specs, key=lambda s: s.type)}
            if len(by_type) != len(specs):
                raise SchemaError(f"TLV stream {stream_name}: duplicate record type")
            streams.append(
                TlvStreamSpec(
                    stream_name,
                    MappingProxyType(by_type),
                    MappingProxyType({spec.name: spec for spec in specs}),
                )
            )
        messages: list[MessageSpec] = []
        for raw in self.messages.values():
            fields = list(raw.fields)
            stream: str | None = None
            if fields and fields[-1][1] in self.streams:
                stream = fields.pop()[1]
            elif f"{raw.name}_tlvs" in self.streams:
                stream = f"{raw.name}_tlvs"
            layout = self._layout(fields, raw.name, in_tlv=False)
            messages.append(MessageSpec(raw.value or 0, raw.name, layout, stream, raw.option))
        return Schema(messages, streams, subtypes)


SPEC_FILES = ("bolt01.csv", "bolt02.csv", "bolt07.csv")


def load_default_schema() -> Schema:
    """The schema of every BOLT #1, #2 and #7 message, from the packaged CSV tables."""
    specs = resources.files("ampere.wire.specs")
    return Schema.from_csv(*(specs.joinpath(name).read_text(encoding="utf-8") for name in SPEC_FILES))


DEFAULT_SCHEMA = load_default_schema()
