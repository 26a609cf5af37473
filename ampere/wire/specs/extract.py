"""Extract the wire-format tables from a BOLT markdown file into Ampere's CSV form.

The BOLTs describe every message, TLV stream and subtype in a small fixed
markdown dialect (``1. type: N (`name`)`` / ``2. data:`` / ``* [`type`:`field`]``,
``1. `tlv_stream`: `name` `` / ``2. types:``, ``1. subtype: `name` ``).  This
script turns those blocks into the line-oriented CSV the codec loads, so that
message layouts live in exactly one place and can be refreshed mechanically
when the spec moves on.

Output lines (the field ``count`` is empty for a single value, a number for a
fixed-size array, the name of an earlier field for a length-prefixed array, or
``...`` for "everything that remains"):

    msgtype,<message>,<type>[,<option>]
    msgdata,<message>,<field>,<type>,<count>
    tlvtype,<stream>,<record>,<type>
    tlvdata,<stream>,<record>,<field>,<type>,<count>
    subtype,<subtype>
    subtypedata,<subtype>,<field>,<type>,<count>

Usage::

    python -m ampere.wire.specs.extract --commit <sha> 01-messaging.md > bolt01.csv

Type definitions whose value is symbolic rather than numeric (onion packet
layouts, ``PERM|NODE|3`` failure codes) are not wire messages; they are skipped
and listed on stderr so that nothing disappears silently.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

_TYPE_LINE = re.compile(
    r"^\s*(?:1\.|\*)\s+type:\s+(?P<value>[-0-9A-Za-z_|]+)\s+\(`(?P<name>[A-Za-z0-9_]+)`\)"
    r"(?:\s+\(`?(?P<option>[^)`]*)`?\))?\s*$"
)
_STREAM_LINE = re.compile(r"^\s*(?:1\.|\*)\s+`tlv_stream`:\s+`(?P<name>[A-Za-z0-9_]+)`\s*$")
_SUBTYPE_LINE = re.compile(r"^\s*(?:1\.|\*)\s+subtype:\s+`(?P<name>[A-Za-z0-9_]+)`\s*$")
_DATA_START = re.compile(r"^\s*(?:2\.|\*)\s+data:\s*$")
_TYPES_START = re.compile(r"^\s*(?:2\.|\*)\s+types:\s*$")
_DATA_LINE = re.compile(
    r"^\s*(?:[0-9]+\.|\*)\s+\[`(?P<typefield>[-._a-zA-Z0-9*+\[\]]+)`:`(?P<name>[_a-z0-9]+)`\]\s*$"
)


class ExtractError(Exception):
    """The markdown did not follow the dialect where a definition was expected."""


@dataclass
class _Field:
    name: str
    type_name: str
    count: str


@dataclass
class _Definition:
    kind: str  # "msg", "tlv" or "subtype"
    name: str
    value: str = ""
    option: str = ""
    stream: str = ""
    fields: list[_Field] = field(default_factory=list)


def _split_typefield(typefield: str) -> tuple[str, str]:
    if "*" in typefield:
        count, type_name = typefield.split("*", 1)
        return type_name, count
    return typefield, ""


class _Lines:
    """A one-line look-ahead cursor over the markdown, keeping line numbers for errors."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = [line.rstrip("\n").rstrip() for line in lines]
        self.index = 0

    def peek(self) -> str | None:
        return self._lines[self.index] if self.index < len(self._lines) else None

    def rest(self) -> list[str]:
        return self._lines[self.index :]

    def take(self) -> str:
        line = self._lines[self.index]
        self.index += 1
        return line


def _indented_type_follows(cursor: _Lines) -> bool:
    """Whether a blank line inside a TLV stream is followed by more of its (indented) records."""
    for line in cursor.rest():
        if line.strip():
            return line.startswith((" ", "\t")) and _TYPE_LINE.match(line) is not None
    return False


def _read_fields(cursor: _Lines) -> list[_Field]:
    fields: list[_Field] = []
    line = cursor.peek()
    if line is None or not _DATA_START.match(line):
        return fields
    cursor.take()
    while (line := cursor.peek()) is not None:
        match = _DATA_LINE.match(line)
        if match is None:
            if line.strip().startswith(("* [`", "1. [`")):
                raise ExtractError(f"line {cursor.index + 1}: unparseable data line {line!r}")
            break
        cursor.take()
        type_name, count = _split_typefield(match.group("typefield"))
        fields.append(_Field(match.group("name"), type_name, count))
    return fields


def _parse(lines: Iterable[str]) -> Iterator[_Definition]:
    cursor = _Lines(lines)
    while (line := cursor.peek()) is not None:
        cursor.take()
        if match := _STREAM_LINE.match(line):
            stream = match.group("name")
            header = cursor.peek()
            if header is None or not _TYPES_START.match(header):
                raise ExtractError(f"line {cursor.index}: tlv_stream {stream} lacks a '2. types:' line")
            cursor.take()
            while (record_line := cursor.peek()) is not None:
                if not record_line.strip() and _indented_type_follows(cursor):
                    cursor.take()
                    continue
                record = _TYPE_LINE.match(record_line)
                if record is None:
                    break
                cursor.take()
                yield _Definition(
                    "tlv",
                    record.group("name"),
                    value=record.group("value"),
                    stream=stream,
                    fields=_read_fields(cursor),
                )
        elif match := _SUBTYPE_LINE.match(line):
            yield _Definition("subtype", match.group("name"), fields=_read_fields(cursor))
        elif match := _TYPE_LINE.match(line):
            if line.startswith((" ", "\t")):
                raise ExtractError(f"line {cursor.index}: indented type outside a tlv_stream: {line!r}")
            yield _Definition(
                "msg",
                match.group("name"),
                value=match.group("value"),
                option=match.group("option") or "",
                fields=_read_fields(cursor),
            )


def extract(lines: Iterable[str], *, skipped: list[str] | None = None) -> list[str]:
    """Return the CSV lines (without a header) for every definition in one markdown document."""
    out: list[str] = []
    for definition in _parse(lines):
        if definition.kind in ("msg", "tlv") and not definition.value.isdigit():
            if skipped is not None:
                skipped.append(f"{definition.name} ({definition.value})")
            continue
        if definition.kind == "msg":
            suffix = f",{definition.option}" if definition.option else ""
            out.append(f"msgtype,{definition.name},{definition.value}{suffix}")
            out.extend(
                f"msgdata,{definition.name},{f.name},{f.type_name},{f.count}" for f in definition.fields
            )
        elif definition.kind == "tlv":
            out.append(f"tlvtype,{definition.stream},{definition.name},{definition.value}")
            out.extend(
                f"tlvdata,{definition.stream},{definition.name},{f.name},{f.type_name},{f.count}"
                for f in definition.fields
            )
        else:
            out.append(f"subtype,{definition.name}")
            out.extend(
                f"subtypedata,{definition.name},{f.name},{f.type_name},{f.count}" for f in definition.fields
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--commit", required=True, help="lightning/bolts commit the markdown was taken from")
    parser.add_argument("markdown", nargs="+", type=Path, help="BOLT markdown file(s)")
    args = parser.parse_args(argv)
    names = ", ".join(path.name for path in args.markdown)
    print(f"# Extracted from lightning/bolts {names} at commit {args.commit}")
    print("# by ampere/wire/specs/extract.py; regenerate rather than edit by hand.")
    for path in args.markdown:
        skipped: list[str] = []
        with path.open(encoding="utf-8") as handle:
            for line in extract(handle, skipped=skipped):
                print(line)
        for name in skipped:
            print(f"{path.name}: skipped non-numeric type {name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
