"""`fast_replace`: `dataclasses.replace` for the channel's frozen, slotted records, on the hot path.

`dataclasses.replace` goes through `fields()` and `__init__` on every call; with a hundred HTLCs in
flight the ledger's functional updates made it the single largest cost of a payment. The records here
(`ChannelState`, `Ledger`, `HtlcEntry`, `Removal`, `Marks`, the totals) are frozen slotted dataclasses
with no `__post_init__` and no `init=False` field, so copying their slots is the same operation. Unknown
field names are refused as `replace` refuses them; the types are not checked statically, so only the
few hottest call sites use it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["fast_replace"]

T = TypeVar("T")

_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        fields = dataclasses.fields(cls)
        if any(not f.init for f in fields) or hasattr(cls, "__post_init__") or "__slots__" not in vars(cls):
            raise TypeError(f"{cls.__name__} is not a plain slotted dataclass")
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields)
    return names


def fast_replace(obj: T, **changes: Any) -> T:
    """A copy of `obj` with `changes`, like `dataclasses.replace`."""
    cls = type(obj)
    names = _field_names(cls)
    new = object.__new__(cls)
    put = object.__setattr__
    for name in names:
        put(new, name, changes.pop(name) if name in changes else getattr(obj, name))
    if changes:
        raise TypeError(f"{cls.__name__} has no field {sorted(changes)[0]!r}")
    return new
