"""JSON records for repositories: canonical bytes out, strictly typed fields back in.

Money is integer msat, so a float anywhere in a stored record means it was not written by this code and
is reported as corruption rather than rounded.
"""

from __future__ import annotations

import json
from typing import NoReturn

from ampere.store.errors import StoreCorruptionError

RECORD_VERSION = 1


def _refuse_float(text: str) -> NoReturn:
    raise ValueError(f"non-integer number {text!r}")


def encode_record(fields: dict[str, object]) -> bytes:
    body = {"v": RECORD_VERSION, **fields}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


class RecordReader:
    """Typed access to a decoded record; every mismatch is a `StoreCorruptionError` naming the field."""

    def __init__(self, data: bytes, what: str) -> None:
        self._what = what
        try:
            obj = json.loads(data, parse_float=_refuse_float, parse_constant=_refuse_float)
        except (ValueError, UnicodeDecodeError) as exc:
            raise StoreCorruptionError(f"{what}: undecodable record: {exc}") from exc
        if not isinstance(obj, dict):
            raise StoreCorruptionError(f"{what}: record is not a JSON object")
        self._obj: dict[str, object] = obj
        version = obj.get("v")
        if version != RECORD_VERSION:
            raise StoreCorruptionError(f"{what}: unknown record version {version!r}")

    def corrupt(self, message: str) -> StoreCorruptionError:
        return StoreCorruptionError(f"{self._what}: {message}")

    def _field(self, name: str, optional: bool) -> object:
        if name not in self._obj:
            if optional:
                return None
            raise self.corrupt(f"missing field {name!r}")
        value = self._obj[name]
        if value is None and not optional:
            raise self.corrupt(f"field {name!r} is null")
        return value

    def opt_int(self, name: str) -> int | None:
        value = self._field(name, optional=True)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.corrupt(f"field {name!r} is not an integer")
        return value

    def req_int(self, name: str) -> int:
        value = self.opt_int(name)
        if value is None:
            raise self.corrupt(f"missing field {name!r}")
        return value

    def opt_str(self, name: str) -> str | None:
        value = self._field(name, optional=True)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.corrupt(f"field {name!r} is not a string")
        return value

    def req_str(self, name: str) -> str:
        value = self.opt_str(name)
        if value is None:
            raise self.corrupt(f"missing field {name!r}")
        return value

    def opt_hex(self, name: str) -> bytes | None:
        text = self.opt_str(name)
        if text is None:
            return None
        try:
            return bytes.fromhex(text)
        except ValueError as exc:
            raise self.corrupt(f"field {name!r} is not hex") from exc

    def req_hex(self, name: str) -> bytes:
        value = self.opt_hex(name)
        if value is None:
            raise self.corrupt(f"missing field {name!r}")
        return value


def hex_or_none(value: bytes | None) -> str | None:
    return None if value is None else value.hex()
