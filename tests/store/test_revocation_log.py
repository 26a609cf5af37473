"""The revocation log on every backend: append-only, keyed by channel and commitment number."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.channel.twoway.actions import CommitmentRevoked, RevokedHtlc
from ampere.store import DuplicateRecordError, Store, StoreCorruptionError
from ampere.store.revocation_log import REVOCATION_LOG, RevocationLogRepository

CHANNEL = bytes(range(32))
OTHER = bytes(32)


def _record(number: int, htlcs: int = 2, channel_id: bytes = CHANNEL) -> CommitmentRevoked:
    return CommitmentRevoked(
        channel_id,
        number,
        local_msat=700_000_000 - number,
        remote_msat=300_000_000,
        feerate_per_kw=2500,
        htlcs=tuple(
            RevokedHtlc(i % 2 == 0, i, 1_000_000 + i, bytes([i]) * 32, 500 + i) for i in range(htlcs)
        ),
    )


def test_append_get_and_list_in_numeric_order(store: Store) -> None:
    log = RevocationLogRepository(store)
    for number in (300, 0, 2, 1):
        log.append(_record(number))
    log.append(_record(5, channel_id=OTHER))
    assert log.commitment_numbers(CHANNEL) == [0, 1, 2, 300]
    assert log.get(CHANNEL, 300) == _record(300)
    assert log.get(CHANNEL, 3) is None
    assert log.get(OTHER, 5) == _record(5, channel_id=OTHER)


def test_append_is_idempotent_but_never_rewrites(store: Store) -> None:
    log = RevocationLogRepository(store)
    log.append(_record(7))
    log.append(_record(7))
    with pytest.raises(DuplicateRecordError):
        log.append(_record(7, htlcs=0))
    assert log.get(CHANNEL, 7) == _record(7)


def test_joins_the_callers_transaction(store: Store) -> None:
    log = RevocationLogRepository(store)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), store.transaction():
        log.append(_record(1))
        raise Boom
    assert log.get(CHANNEL, 1) is None


def test_corrupt_record_is_a_typed_error(store: Store) -> None:
    log = RevocationLogRepository(store)
    log.append(_record(4))
    store.put(REVOCATION_LOG, CHANNEL + (4).to_bytes(8, "big"), b"\x01\x02")
    with pytest.raises(StoreCorruptionError):
        log.get(CHANNEL, 4)


def test_delete_channel(store: Store) -> None:
    log = RevocationLogRepository(store)
    for number in range(3):
        log.append(_record(number))
    log.append(_record(0, channel_id=OTHER))
    assert log.delete_channel(CHANNEL) == 3
    assert log.commitment_numbers(CHANNEL) == []
    assert log.commitment_numbers(OTHER) == [0]


def test_rejects_bad_keys(store: Store) -> None:
    log = RevocationLogRepository(store)
    with pytest.raises(ValueError):
        log.get(b"short", 0)
    with pytest.raises(ValueError):
        log.get(CHANNEL, 1 << 48)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_decode_into_garbage(data: bytes) -> None:
    try:
        record = CommitmentRevoked.from_bytes(CHANNEL, data)
    except ValueError:
        return
    assert record.to_bytes() == data


def test_direction_byte_must_be_boolean() -> None:
    data = bytearray(_record(1, htlcs=1).to_bytes())
    header = len(data) - 53
    data[header] = 2
    with pytest.raises(ValueError):
        CommitmentRevoked.from_bytes(CHANNEL, bytes(data))
