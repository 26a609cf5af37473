"""`fast_replace` makes the same copies as `dataclasses.replace`, and refuses what it cannot copy."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.channel.twoway.fast_replace import fast_replace
from ampere.channel.twoway.state import HtlcEntry, Marks, Removal, RemovalKind


def _entry(htlc_id: int, amount_msat: int) -> HtlcEntry:
    return HtlcEntry(True, htlc_id, amount_msat, bytes(32), 500, b"onion", Marks(1))


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**40), st.integers(0, 2**40), st.booleans())
def test_same_copy_as_dataclasses_replace(htlc_id: int, amount: int, seq: int, removed: bool) -> None:
    entry = _entry(htlc_id, amount)
    removal = Removal(RemovalKind.FAIL, Marks(seq), reason=b"why") if removed else None
    fast = fast_replace(entry, removal=removal, amount_msat=amount + 1)
    slow = dataclasses.replace(entry, removal=removal, amount_msat=amount + 1)
    assert fast == slow and type(fast) is HtlcEntry
    assert entry.amount_msat == amount and entry.removal is None  # the original is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.amount_msat = 0  # type: ignore[misc]


def test_unknown_fields_and_unsuitable_classes_are_refused() -> None:
    with pytest.raises(TypeError, match="no field 'amount'"):
        fast_replace(_entry(1, 1), amount=5)

    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        value: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError("negative")

    for value in (NoSlots(1), Checked(1)):
        with pytest.raises(TypeError, match="not a plain slotted dataclass"):
            fast_replace(value, value=-1)
