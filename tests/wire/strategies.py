"""Hypothesis strategies that produce valid values for any layout in a wire ``Schema``.

They are derived from the schema itself, so every message, subtype and TLV
record the CSV tables declare is covered without per-message code.
"""

from __future__ import annotations

import coincurve
from hypothesis import strategies as st

from ampere.wire import DEFAULT_SCHEMA, Message, Schema, ShortChannelId, Struct, TlvStream
from ampere.wire.primitives import FUNDAMENTAL_TYPES, TRUNCATED_WIDTH
from ampere.wire.schema import REST, FieldKind, FieldSpec, Layout, TlvStreamSpec
from ampere.wire.values import FieldValue

# Valid points are costly to find at random; a fixed pool of real public keys is enough.
POINTS: tuple[bytes, ...] = tuple(
    coincurve.PrivateKey((i + 1).to_bytes(32, "big")).public_key.format() for i in range(48)
)

MAX_BYTES = 48
MAX_ITEMS = 4

_UNSIGNED = {"byte": 8, "u8": 8, "utf8": 8, "u16": 16, "u32": 32, "u64": 64, "bigsize": 64}
_SIGNED = {"s8": 8, "s16": 16, "s32": 32, "s64": 64}

short_channel_ids = st.builds(
    ShortChannelId,
    st.integers(0, (1 << 24) - 1),
    st.integers(0, (1 << 24) - 1),
    st.integers(0, (1 << 16) - 1),
)
points = st.sampled_from(POINTS)


def fundamental(type_name: str) -> st.SearchStrategy[FieldValue]:
    if type_name in _UNSIGNED:
        return st.integers(0, (1 << _UNSIGNED[type_name]) - 1)
    if type_name in _SIGNED:
        bits = _SIGNED[type_name]
        return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    if type_name in TRUNCATED_WIDTH:
        return st.integers(0, (1 << (8 * TRUNCATED_WIDTH[type_name])) - 1)
    if type_name == "point":
        return points
    if type_name == "short_channel_id":
        return short_channel_ids
    if type_name == "sciddir_or_pubkey":
        return st.one_of(
            points,
            st.builds(lambda d, s: bytes((d,)) + s, st.integers(0, 1), st.binary(min_size=8, max_size=8)),
        )
    size = FUNDAMENTAL_TYPES[type_name]
    assert size is not None, type_name
    return st.binary(min_size=size, max_size=size)


def single(spec: FieldSpec, schema: Schema) -> st.SearchStrategy[FieldValue]:
    if spec.kind is FieldKind.FUNDAMENTAL:
        return fundamental(spec.type_name)
    if spec.kind is FieldKind.SUBTYPE:
        sub = schema.subtype(spec.type_name)
        return layout_values(sub.layout, schema).map(lambda fields: Struct(sub.name, fields))
    return tlv_streams(schema.tlv_stream(spec.type_name), schema)


def array(spec: FieldSpec, count: int | None, schema: Schema) -> st.SearchStrategy[FieldValue]:
    if spec.type_name == "utf8":
        text = st.text(max_size=MAX_BYTES)
        if count is None:
            return text
        # ASCII keeps the character count equal to the byte count the length field states.
        return st.text(st.characters(max_codepoint=127), min_size=count, max_size=count)
    if spec.type_name in ("byte", "u8"):
        if count is None:
            return st.binary(max_size=MAX_BYTES)
        return st.binary(min_size=count, max_size=count)
    item = single(spec, schema)
    if count is None:
        return st.lists(item, max_size=MAX_ITEMS).map(tuple)
    return st.lists(item, min_size=count, max_size=count).map(tuple)


@st.composite
def layout_values(draw: st.DrawFn, layout: Layout, schema: Schema) -> dict[str, FieldValue]:
    lengths = {
        name: draw(st.integers(0, MAX_BYTES if _only_bytes(layout, name) else MAX_ITEMS))
        for name in layout.implicit
    }
    values: dict[str, FieldValue] = {}
    for spec in layout.public_fields:
        if spec.count is None:
            values[spec.name] = draw(single(spec, schema))
        elif isinstance(spec.count, int):
            values[spec.name] = draw(array(spec, spec.count, schema))
        elif spec.count == REST:
            values[spec.name] = draw(array(spec, None, schema))
        else:
            values[spec.name] = draw(array(spec, lengths[spec.count], schema))
    return values


def _only_bytes(layout: Layout, length_field: str) -> bool:
    return all(f.type_name in ("byte", "u8", "utf8") for f in layout.fields if f.count == length_field)


@st.composite
def tlv_streams(draw: st.DrawFn, spec: TlvStreamSpec, schema: Schema) -> TlvStream:
    records: dict[str, Struct] = {}
    for record in spec.by_type.values():
        if draw(st.booleans()):
            records[record.name] = Struct(record.name, draw(layout_values(record.layout, schema)))
    unknown_types = st.integers(0, 1 << 20).map(lambda n: 2 * n + 1).filter(lambda t: t not in spec.by_type)
    unknown = draw(st.dictionaries(unknown_types, st.binary(max_size=16), max_size=2))
    return TlvStream(spec.name, records, unknown)


@st.composite
def messages(draw: st.DrawFn, name: str, schema: Schema = DEFAULT_SCHEMA) -> Message:
    spec = schema.message(name)
    fields = draw(layout_values(spec.layout, schema))
    if spec.tlv_stream is not None:
        stream = draw(tlv_streams(schema.tlv_stream(spec.tlv_stream), schema))
        return Message(spec.type, spec.name, fields, stream)
    return Message(spec.type, spec.name, fields, None, draw(st.binary(max_size=24)))


def any_message(schema: Schema = DEFAULT_SCHEMA) -> st.SearchStrategy[Message]:
    return st.sampled_from(sorted(schema.messages_by_name)).flatmap(lambda n: messages(n, schema))


def mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """Truncations, byte flips, insertions and appended junk of a valid encoding."""
    n = len(data)
    truncate = st.integers(0, max(n - 1, 0)).map(lambda i: data[:i])

    def flip(pos: int, value: int) -> bytes:
        if n == 0:
            return bytes((value,))
        pos %= n
        return data[:pos] + bytes((value,)) + data[pos + 1 :]

    def insert(pos: int, junk: bytes) -> bytes:
        pos %= n + 1
        return data[:pos] + junk + data[pos:]

    return st.one_of(
        truncate,
        st.builds(flip, st.integers(0, 1 << 16), st.integers(0, 255)),
        st.builds(insert, st.integers(0, 1 << 16), st.binary(min_size=1, max_size=12)),
        st.binary(min_size=1, max_size=32).map(lambda junk: data + junk),
    )
