"""Per-commitment secrets: BOLT 3 Appendix D vectors, the compact store, and its persistence."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ampere.crypto.keys import per_commitment_point
from ampere.crypto.shachain import (
    MAX_INDEX,
    PerCommitmentSecretGenerator,
    ShachainError,
    ShachainStore,
    commitment_number_to_index,
    derive_secret,
    generate_from_seed,
    index_to_commitment_number,
    where_to_put_secret,
)
from tests.conftest import load_vectors

VECTORS = load_vectors("bolt03_keys.json")
GENERATION: list[dict[str, Any]] = VECTORS["generate_from_seed"]["cases"]
STORAGE: list[dict[str, Any]] = VECTORS["insert_secret"]["cases"]


def test_vector_counts() -> None:
    assert len(GENERATION) == 5
    assert len(STORAGE) == 9
    assert sum(len(case["steps"]) for case in STORAGE) == 56


@pytest.mark.parametrize("case", GENERATION, ids=[case["name"] for case in GENERATION])
def test_generate_from_seed(case: dict[str, Any]) -> None:
    assert generate_from_seed(bytes.fromhex(case["seed"]), case["I"]).hex() == case["output"]
    if "I_as_written" in case:
        assert int(case["I_as_written"], 16) == case["I"]


@pytest.mark.parametrize("case", STORAGE, ids=[case["name"] for case in STORAGE])
def test_insert_secret_sequences(case: dict[str, Any]) -> None:
    store = ShachainStore()
    failed_at = None
    for step_number, step in enumerate(case["steps"]):
        secret = bytes.fromhex(step["secret"])
        if step["output"] == "OK":
            store.insert_secret(secret, step["I"])
            assert store.derive_secret(step["I"]) == secret
        else:
            assert step["output"] == "ERROR"
            before = store.to_bytes()
            with pytest.raises(ShachainError):
                store.insert_secret(secret, step["I"])
            # A refused secret must leave the store as it was.
            assert store.to_bytes() == before
            failed_at = step_number
            break
    assert failed_at == case["expect_error_at_step"]


def test_correct_sequence_derives_every_secret() -> None:
    case = STORAGE[0]
    assert case["expect_error_at_step"] is None
    store = ShachainStore()
    for step in case["steps"]:
        store.insert_secret(bytes.fromhex(step["secret"]), step["I"])
    for step in case["steps"]:
        assert store.get(step["I"]).hex() == step["secret"]
    seed = b"\xff" * 32
    for step in case["steps"]:
        assert generate_from_seed(seed, step["I"]).hex() == step["secret"]


def test_where_to_put_secret() -> None:
    assert where_to_put_secret(0) == 48
    assert where_to_put_secret(MAX_INDEX) == 0
    assert where_to_put_secret(MAX_INDEX - 1) == 1
    assert where_to_put_secret(1 << 47) == 47
    assert where_to_put_secret(0b1011000) == 3
    for bad in (-1, MAX_INDEX + 1):
        with pytest.raises(ShachainError):
            where_to_put_secret(bad)


def test_index_range_checked() -> None:
    with pytest.raises(ShachainError):
        generate_from_seed(bytes(32), MAX_INDEX + 1)
    with pytest.raises(ShachainError):
        generate_from_seed(bytes(32), -1)
    with pytest.raises(ShachainError):
        generate_from_seed(bytes(31), 0)
    with pytest.raises(ShachainError):
        derive_secret(bytes(32), 49, 0)


def test_generate_from_seed_of_index_zero_is_the_seed() -> None:
    seed = bytes(range(32))
    assert generate_from_seed(seed, 0) == seed


def test_commitment_number_mapping() -> None:
    assert commitment_number_to_index(0) == MAX_INDEX
    assert commitment_number_to_index(MAX_INDEX) == 0
    assert index_to_commitment_number(MAX_INDEX - 41) == 41
    with pytest.raises(ShachainError):
        commitment_number_to_index(-1)
    with pytest.raises(ShachainError):
        commitment_number_to_index(1 << 48)


def test_generator() -> None:
    seed = b"\x11" * 32
    generator = PerCommitmentSecretGenerator(seed)
    assert generator.secret(0) == generate_from_seed(seed, MAX_INDEX)
    assert generator.secret(7) == generate_from_seed(seed, MAX_INDEX - 7)
    assert generator.point(7) == per_commitment_point(generator.secret(7))
    assert seed.hex() not in repr(generator)
    with pytest.raises(ShachainError):
        PerCommitmentSecretGenerator(bytes(16))


def test_store_rejects_out_of_order_and_unknown() -> None:
    generator = PerCommitmentSecretGenerator(b"\x22" * 32)
    store = ShachainStore()
    assert store.next_index == MAX_INDEX
    assert store.next_commitment_number == 0
    with pytest.raises(ShachainError):
        store.insert_secret(generator.secret(1), MAX_INDEX - 1)
    store.insert_commitment_secret(generator.secret(0), 0)
    with pytest.raises(ShachainError):
        store.insert_commitment_secret(generator.secret(0), 0)
    with pytest.raises(ShachainError):
        store.insert_commitment_secret(generator.secret(2), 2)
    with pytest.raises(ShachainError):
        store.secret_for_commitment(1)
    with pytest.raises(ShachainError):
        store.insert_secret(bytes(31), MAX_INDEX - 1)
    store.insert_commitment_secret(generator.secret(1), 1)
    assert store.secret_for_commitment(0) == generator.secret(0)
    assert store.next_commitment_number == 2


def test_empty_store() -> None:
    store = ShachainStore()
    assert len(store) == 0
    assert store.latest_index is None
    with pytest.raises(ShachainError):
        store.get(MAX_INDEX)
    assert ShachainStore.from_bytes(store.to_bytes()) == store


def test_secrets_hidden_from_repr() -> None:
    generator = PerCommitmentSecretGenerator(b"\x33" * 32)
    store = ShachainStore()
    store.insert_commitment_secret(generator.secret(0), 0)
    assert generator.secret(0).hex() not in repr(store)
    assert all(generator.secret(0).hex() not in repr(entry) for entry in store.entries())


def _filled_store(seed: bytes, count: int) -> ShachainStore:
    generator = PerCommitmentSecretGenerator(seed)
    store = ShachainStore()
    for number in range(count):
        store.insert_commitment_secret(generator.secret(number), number)
    return store


def _reseal(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()[:4]


def test_checksum_catches_any_flipped_bit() -> None:
    data = _filled_store(b"\x44" * 32, 12).to_bytes()
    for position in range(len(data)):
        corrupted = bytearray(data)
        corrupted[position] ^= 0x10
        with pytest.raises(ShachainError):
            ShachainStore.from_bytes(bytes(corrupted))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda body: body[:-1],  # truncated entry
        lambda body: b"\x02" + body[1:],  # unknown version
        lambda body: body[:1] + bytes([body[1] + 1]) + body[2:],  # count mismatch
        lambda body: body[:1] + bytes([50]) + body[2:],  # more entries than buckets
        lambda body: body[: 2 + 38] + bytes([body[2 + 38] ^ 1]) + body[2 + 39 :],  # secret of bucket 0
        lambda body: body[:2] + bytes([body[2] + 1]) + body[3:],  # wrong bucket for index
        lambda body: body[:2] + body[2 + 39 : 2 + 78] + body[2:41] + body[80:],  # buckets out of order
        lambda body: body[:1] + bytes([body[1] - 1]) + body[2 + 39 :],  # an entry dropped
        lambda body: body[:3] + (1).to_bytes(6, "big") + body[9:],  # index not from in-order inserts
        lambda body: b"",
    ],
)
def test_from_bytes_rejects_inconsistent_stores(mutate: Any) -> None:
    # Resealed so that the structural checks, not the checksum, have to catch these.
    body = _filled_store(b"\x44" * 32, 12).to_bytes()[:-4]
    with pytest.raises(ShachainError):
        ShachainStore.from_bytes(_reseal(mutate(body)))


_SEEDS = st.binary(min_size=32, max_size=32)


@settings(max_examples=50)
@given(_SEEDS, st.integers(min_value=1, max_value=300))
def test_store_derives_every_revealed_secret(seed: bytes, count: int) -> None:
    store = _filled_store(seed, count)
    assert len(store) <= 49
    # Only one secret per trailing-zero count is kept: at most bit_length(count) + 1 of them.
    assert len(store) <= count.bit_length() + 1
    generator = PerCommitmentSecretGenerator(seed)
    for number in range(count):
        assert store.secret_for_commitment(number) == generator.secret(number)
    with pytest.raises(ShachainError):
        store.secret_for_commitment(count)
    restored = ShachainStore.from_bytes(store.to_bytes())
    assert restored == store
    assert restored.next_commitment_number == count


@settings(max_examples=50)
@given(_SEEDS, _SEEDS, st.integers(min_value=0, max_value=200), st.data())
def test_store_rejects_a_secret_from_another_seed(
    seed: bytes, other_seed: bytes, count: int, data: st.DataObject
) -> None:
    store = _filled_store(seed, count)
    wrong = generate_from_seed(other_seed, store.next_index or 0)
    if wrong == generate_from_seed(seed, store.next_index or 0):
        return
    index = store.next_index
    assert index is not None
    # A wrong secret is caught as soon as its bucket covers some already stored secret: at once
    # unless it lands in bucket 0, which covers nothing and can only be checked later.
    if where_to_put_secret(index) > 0 and count > 0:
        with pytest.raises(ShachainError):
            store.insert_secret(wrong, index)
    else:
        store.insert_secret(wrong, index)
        generator = PerCommitmentSecretGenerator(seed)
        # The next insert whose bucket covers it must fail, however correct it is itself.
        failed = False
        for number in range(count + 1, count + 1 + 64):
            try:
                store.insert_commitment_secret(generator.secret(number), number)
            except ShachainError:
                failed = True
                break
        assert failed
