"""The wire tables: the extractor, the committed CSV files and schema validation."""

from __future__ import annotations

from importlib import resources

import pytest

from ampere.wire import (
    DEFAULT_SCHEMA,
    Message,
    Schema,
    SchemaError,
    ShortChannelId,
    Struct,
    decode_message,
    encode_message,
    make_message,
)
from ampere.wire.schema import SPEC_FILES, FieldKind
from ampere.wire.specs.extract import ExtractError, extract

SPEC_COMMIT = "a3772650d8ebc06acf457fcadf97968ebfc4dfff"

MARKDOWN = """\
Some prose with a type: 3 (`not_a_definition`) in the middle of a sentence.

1. type: 32769 (`custom_thing`) (`option_custom`)
2. data:
   * [`channel_id`:`channel_id`]
   * [`u16`:`num_items`]
   * [`num_items*item`:`items`]
   * [`byte`:`flags`]
1. `tlv_stream`: `custom_thing_tlvs`
2. types:
    1. type: 1 (`note`)
    2. data:
        * [`...*utf8`:`text`]

    1. type: 2 (`marker`)

1. subtype: `item`
2. data:
    * [`short_channel_id`:`scid`]
    * [`u8`:`len`]
    * [`len*byte`:`blob`]

1. type: `onion_like_packet`
2. data:
   * [`byte`:`version`]

1. type: PERM|NODE|2 (`symbolic_failure`)
"""

EXPECTED = [
    "msgtype,custom_thing,32769,option_custom",
    "msgdata,custom_thing,channel_id,channel_id,",
    "msgdata,custom_thing,num_items,u16,",
    "msgdata,custom_thing,items,item,num_items",
    "msgdata,custom_thing,flags,byte,",
    "tlvtype,custom_thing_tlvs,note,1",
    "tlvdata,custom_thing_tlvs,note,text,utf8,...",
    "tlvtype,custom_thing_tlvs,marker,2",
    "subtype,item",
    "subtypedata,item,scid,short_channel_id,",
    "subtypedata,item,len,u8,",
    "subtypedata,item,blob,byte,len",
]


def test_extractor_on_the_markdown_dialect() -> None:
    skipped: list[str] = []
    assert extract(MARKDOWN.splitlines(), skipped=skipped) == EXPECTED
    assert skipped == ["symbolic_failure (PERM|NODE|2)"]


def test_extractor_rejects_malformed_definitions() -> None:
    with pytest.raises(ExtractError):
        extract(["1. `tlv_stream`: `x`", "no types line"])
    with pytest.raises(ExtractError):
        extract(["1. type: 1 (`m`)", "2. data:", "   * [`u16`: `spaced`]"])


def test_committed_tables_name_their_spec_commit() -> None:
    specs = resources.files("ampere.wire.specs")
    for name in SPEC_FILES:
        header = specs.joinpath(name).read_text(encoding="utf-8").splitlines()[0]
        assert header.startswith("# Extracted from lightning/bolts ")
        assert header.endswith(f"at commit {SPEC_COMMIT}")


def test_custom_messages_extend_the_schema() -> None:
    schema = DEFAULT_SCHEMA.extended("\n".join(EXPECTED))
    spec = schema.message("custom_thing")
    assert spec.option == "option_custom" and spec.tlv_stream == "custom_thing_tlvs"
    assert spec.layout.implicit == {"num_items"}
    assert [f.kind for f in spec.layout.fields] == [
        FieldKind.FUNDAMENTAL, FieldKind.FUNDAMENTAL, FieldKind.SUBTYPE, FieldKind.FUNDAMENTAL
    ]  # fmt: skip
    item = Struct("item", {"scid": ShortChannelId(1, 2, 3), "blob": b"\xaa"})
    msg = make_message(
        "custom_thing",
        schema=schema,
        channel_id=bytes(32),
        items=(item,),
        flags=1,
        tlvs={"note": {"text": "héllo"}, "marker": {}},
    )
    data = encode_message(msg, schema)
    assert decode_message(data, schema) == msg
    # The default schema does not know it: an odd unknown type is simply ignorable.
    assert not isinstance(decode_message(data), Message)


@pytest.mark.parametrize(
    ("csv", "why"),
    [
        ("msgtype,m,1\nmsgdata,m,x,nonsense,", "unknown type"),
        ("msgtype,m,1\nmsgdata,m,x,byte,len", "length field not declared"),
        ("msgtype,m,1\nmsgdata,m,len,point,\nmsgdata,m,x,byte,len", "length field not an integer"),
        ("msgtype,m,1\nmsgdata,m,x,byte,...\nmsgdata,m,y,u8,", "rest field not last"),
        ("msgtype,m,1\nmsgdata,m,x,tu64,", "truncated outside a TLV"),
        ("msgtype,m,1\nmsgtype,n,1", "duplicate type"),
        ("tlvtype,s,a,1\ntlvtype,s,b,1", "duplicate record type"),
        ("msgdata,m,x,byte,", "data before its type"),
        ("bogus,line", "unknown record kind"),
        ("msgtype,m,notanumber", "bad type number"),
    ],
)
def test_schema_validation(csv: str, why: str) -> None:
    with pytest.raises(SchemaError):
        Schema.from_csv(csv)


def test_lookups_of_unknown_names() -> None:
    for lookup in (DEFAULT_SCHEMA.message, DEFAULT_SCHEMA.tlv_stream, DEFAULT_SCHEMA.subtype):
        with pytest.raises(SchemaError):
            lookup("nope")
