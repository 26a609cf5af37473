"""The outcome log of offered HTLCs on every backend: recorded with channel states, read and forgotten
per payment hash."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.channel.twoway.actions import HtlcFailed, HtlcFulfilled
from ampere.store import Store, StoreCorruptionError
from ampere.store.htlc_outcomes import HTLC_OUTCOMES, HtlcOutcome, HtlcOutcomeRepository
from ampere.store.htlc_outcomes import _decode as decode_outcome

CHANNEL = bytes(range(32))
OTHER = bytes(32)
PREIMAGE = b"\x42" * 32
HASH = hashlib.sha256(PREIMAGE).digest()
OTHER_HASH = hashlib.sha256(b"other").digest()


def test_outcomes_round_trip_per_payment(store: Store) -> None:
    log = HtlcOutcomeRepository(store)
    fulfilled = HtlcFulfilled(7, HASH, PREIMAGE)
    failed = HtlcFailed(3, HASH, b"\x01" * 292)
    malformed = HtlcFailed(9, OTHER_HASH, b"", 0x8000 | 0x4000 | 5, b"\x07" * 32)
    log.record(CHANNEL, fulfilled)
    log.record(OTHER, failed)
    log.record(CHANNEL, malformed)
    assert log.for_payment(HASH) == [HtlcOutcome(OTHER, failed), HtlcOutcome(CHANNEL, fulfilled)]
    assert log.for_payment(OTHER_HASH) == [HtlcOutcome(CHANNEL, malformed)]
    assert log.payment_hashes() == sorted([HASH, OTHER_HASH])
    log.record(CHANNEL, fulfilled)  # a repeat after a reconnection
    assert len(log.for_payment(HASH)) == 2
    assert log.forget(HASH) == 2
    assert log.for_payment(HASH) == []
    assert log.payment_hashes() == [OTHER_HASH]


def test_a_fulfilment_must_carry_the_preimage_of_its_hash(store: Store) -> None:
    with pytest.raises(ValueError):
        HtlcOutcomeRepository(store).record(CHANNEL, HtlcFulfilled(1, OTHER_HASH, PREIMAGE))
    with pytest.raises(ValueError):
        HtlcOutcomeRepository(store).for_payment(b"short")


def test_joins_the_callers_transaction(store: Store) -> None:
    log = HtlcOutcomeRepository(store)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), store.transaction():
        log.record(CHANNEL, HtlcFulfilled(1, HASH, PREIMAGE))
        raise Boom
    assert log.for_payment(HASH) == []


def test_corrupt_records_are_typed_errors(store: Store) -> None:
    log = HtlcOutcomeRepository(store)
    key = HASH + CHANNEL + (1).to_bytes(8, "big")
    for value in (b"", b"\x01" + b"\x00" * 32, b"\x02\x00", b"\x02\x00\x00\x20" + b"\x00" * 5, b"\x03"):
        store.put(HTLC_OUTCOMES, key, value)
        with pytest.raises(StoreCorruptionError):
            log.for_payment(HASH)


@given(st.binary(max_size=80))
def test_arbitrary_values_decode_to_an_outcome_or_a_typed_error(value: bytes) -> None:
    key = HASH + CHANNEL + (5).to_bytes(8, "big")
    try:
        outcome = decode_outcome(key, value)
    except StoreCorruptionError:
        return
    assert outcome.channel_id == CHANNEL
    assert outcome.outcome.htlc_id == 5 and outcome.outcome.payment_hash == HASH
