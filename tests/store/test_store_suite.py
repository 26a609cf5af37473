"""The storage contract, run identically against SQLite and PostgreSQL (see conftest's `backend`)."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ampere.store import (
    ConcurrentModificationError,
    KeyKindError,
    NestedTransactionError,
    SchemaVersionError,
    StaleRevisionError,
    Store,
    StoreClosedError,
    StoreError,
    atomic,
)
from ampere.store.interface import Revisioned, prefix_upper_bound
from tests.store.conftest import Backend


class Boom(Exception):
    pass


def test_crud(store: Store) -> None:
    assert store.get("ns", b"k") is None
    store.put("ns", b"k", b"v1")
    assert store.get("ns", b"k") == b"v1"
    store.put("ns", b"k", b"v2")
    assert store.get("ns", b"k") == b"v2"
    store.put("ns", b"empty", b"")
    assert store.get("ns", b"empty") == b""
    assert store.delete("ns", b"k") is True
    assert store.delete("ns", b"k") is False
    assert store.get("ns", b"k") is None
    assert store.list_keys("ns") == [b"empty"]


def test_namespaces_are_isolated(store: Store) -> None:
    store.put("alpha", b"k", b"a")
    store.put("beta", b"k", b"b")
    store.put("alpha.x", b"k2", b"c")
    assert store.get("alpha", b"k") == b"a"
    assert store.get("beta", b"k") == b"b"
    assert store.list_keys("alpha") == [b"k"]
    assert store.delete("alpha", b"k")
    assert store.get("beta", b"k") == b"b"
    assert store.items("alpha.x") == [(b"k2", b"c")]
    assert store.items("gamma") == []


@pytest.mark.parametrize("bad", ["", "UPPER", "with space", "x" * 65, "-lead"])
def test_invalid_namespace_refused(store: Store, bad: str) -> None:
    with pytest.raises(ValueError):
        store.put(bad, b"k", b"v")


def test_wrong_types_refused(store: Store) -> None:
    with pytest.raises(TypeError):
        store.put("ns", "k", b"v")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.put("ns", b"k", bytearray(b"v"))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.put("ns", b"k" * 1025, b"v")


EDGE_KEYS = [
    b"", b"\x00", b"\x00\x00", b"a", b"a\x00", b"a\x7f", b"a\x80", b"a\xff", b"a\xff\x00", b"a\xff\xff",
    b"ab", b"b", b"\x7f", b"\x80", b"\xfe\xff", b"\xff", b"\xff\x00", b"\xff\xff", b"\xff\xff\xff",
]  # fmt: skip


def test_prefix_listing_is_bytewise_ordered(store: Store) -> None:
    shuffled = EDGE_KEYS[:]
    random.Random(7).shuffle(shuffled)
    with store.transaction():
        for key in shuffled:
            store.put("ns", key, b"v" + key)
    assert store.list_keys("ns") == sorted(EDGE_KEYS)
    for prefix in [b"", b"\x00", b"a", b"a\xff", b"a\xff\xff", b"\x7f", b"\xff", b"\xff\xff", b"zz"]:
        expected = sorted(k for k in EDGE_KEYS if k.startswith(prefix))
        assert store.list_keys("ns", prefix) == expected, prefix
        assert store.items("ns", prefix) == [(k, b"v" + k) for k in expected], prefix


def test_prefix_upper_bound() -> None:
    assert prefix_upper_bound(b"") is None
    assert prefix_upper_bound(b"\xff\xff") is None
    assert prefix_upper_bound(b"a") == b"b"
    assert prefix_upper_bound(b"a\xff") == b"b"
    assert prefix_upper_bound(b"\x00\xfe\xff") == b"\x00\xff"


def test_transaction_commits_together(store: Store) -> None:
    store.put("ns", b"old", b"1")
    with store.transaction():
        store.put("ns", b"a", b"A")
        store.delete("ns", b"old")
        store.put_revisioned("ns", b"r", 3, b"R")
        assert store.get("ns", b"a") == b"A"  # a transaction reads its own writes
        inside = store.in_transaction
    assert inside and not store.in_transaction
    assert store.items("ns") == [(b"a", b"A"), (b"r", b"R")]


def test_transaction_rolls_back_on_exception(store: Store) -> None:
    store.put("ns", b"keep", b"1")
    store.put_revisioned("ns", b"rev", 1, b"one")
    with pytest.raises(Boom), store.transaction():
        store.put("ns", b"new", b"x")
        store.put("ns", b"keep", b"changed")
        store.delete("ns", b"rev")
        store.put_revisioned("ns", b"rev", 5, b"five")
        raise Boom
    assert store.items("ns") == [(b"keep", b"1"), (b"rev", b"one")]
    assert store.get_revisioned("ns", b"rev") == Revisioned(1, b"one")
    with store.transaction():  # usable afterwards
        store.put("ns", b"after", b"y")
    assert store.get("ns", b"after") == b"y"


def test_nested_transaction_raises_and_rolls_back(store: Store) -> None:
    with pytest.raises(NestedTransactionError), store.transaction():
        store.put("ns", b"k", b"v")
        with store.transaction():
            pass
    assert store.get("ns", b"k") is None
    with store.transaction(), atomic(store):  # repositories compose into an open transaction instead
        store.put("ns", b"k", b"v")
    assert store.get("ns", b"k") == b"v"


def test_revisions_only_move_forward(store: Store) -> None:
    store.put_revisioned("chan", b"c1", 1, b"s1")
    for stale in (1, 0):
        with pytest.raises(StaleRevisionError) as info:
            store.put_revisioned("chan", b"c1", stale, b"old")
        assert (info.value.attempted, info.value.stored) == (stale, 1)
    store.put_revisioned("chan", b"c1", 5, b"s5")  # gaps are allowed
    assert store.get_revisioned("chan", b"c1") == Revisioned(5, b"s5")
    assert store.get("chan", b"c1") == b"s5"
    assert store.get_revisioned("chan", b"none") is None
    with pytest.raises(KeyKindError):
        store.put("chan", b"c1", b"plain")
    store.put("chan", b"plain", b"p")
    with pytest.raises(KeyKindError):
        store.put_revisioned("chan", b"plain", 9, b"x")
    with pytest.raises(KeyKindError):
        store.get_revisioned("chan", b"plain")
    assert store.get("chan", b"c1") == b"s5"
    for bad in (-1, 2**63):
        with pytest.raises(ValueError):
            store.put_revisioned("chan", b"c1", bad, b"x")
    with pytest.raises(TypeError):
        store.put_revisioned("chan", b"c1", True, b"x")
    store.put_revisioned("chan", b"c1", 2**63 - 1, b"max")
    assert store.get_revisioned("chan", b"c1") == Revisioned(2**63 - 1, b"max")


def test_compare_and_put(store: Store) -> None:
    assert store.compare_and_put("chan", b"c", None, b"v0") == 0
    with pytest.raises(ConcurrentModificationError):
        store.compare_and_put("chan", b"c", None, b"again")
    assert store.compare_and_put("chan", b"c", 0, b"v1") == 1
    with pytest.raises(StaleRevisionError):
        store.compare_and_put("chan", b"c", 0, b"stale")
    with pytest.raises(ConcurrentModificationError, match="went backwards"):
        store.compare_and_put("chan", b"c", 7, b"ahead")
    with pytest.raises(ConcurrentModificationError):
        store.compare_and_put("chan", b"missing", 3, b"x")
    store.put("chan", b"plain", b"p")
    with pytest.raises(KeyKindError):
        store.compare_and_put("chan", b"plain", None, b"x")
    assert store.get_revisioned("chan", b"c") == Revisioned(1, b"v1")


def test_durable_across_close_and_reopen(backend: Backend) -> None:
    first = backend.open()
    first.put("ns", b"plain", b"p")
    first.put_revisioned("chan", b"c", 7, b"state7")
    with first.transaction():
        first.put("ns", b"t1", b"x")
        first.put("ns", b"t2", b"y")
    first.close()
    first.close()  # idempotent
    with pytest.raises(StoreClosedError):
        first.get("ns", b"plain")
    with pytest.raises(StoreClosedError), first.transaction():
        pass
    second = backend.open()
    assert second.items("ns") == [(b"plain", b"p"), (b"t1", b"x"), (b"t2", b"y")]
    assert second.get_revisioned("chan", b"c") == Revisioned(7, b"state7")
    with pytest.raises(StaleRevisionError):
        second.put_revisioned("chan", b"c", 7, b"again")


def test_second_store_with_stale_state_is_refused(backend: Backend) -> None:
    writer = backend.open()
    stale = backend.open()
    writer.put_revisioned("chan", b"c", 1, b"s1")
    seen = stale.get_revisioned("chan", b"c")
    assert seen == Revisioned(1, b"s1")
    writer.put_revisioned("chan", b"c", 2, b"s2-writer")
    with pytest.raises(StaleRevisionError) as info:
        stale.put_revisioned("chan", b"c", seen.revision + 1, b"s2-stale")
    assert info.value.stored == 2
    assert stale.get("chan", b"c") == b"s2-writer"
    # The same through compare-and-put.
    expected = writer.get_revisioned("chan", b"c")
    assert expected is not None
    writer.compare_and_put("chan", b"c", expected.revision, b"s3-writer")
    with pytest.raises(ConcurrentModificationError):
        stale.compare_and_put("chan", b"c", expected.revision, b"s3-stale")
    assert writer.get_revisioned("chan", b"c") == Revisioned(3, b"s3-writer")


def _run_threads(workers: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []

    def wrap(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except BaseException as exc:
                errors.append(exc)

        return run

    threads = [threading.Thread(target=wrap(work)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors


def test_concurrent_writers_lose_no_update(backend: Backend) -> None:
    """Two store objects race read-modify-write cycles; refusals are retried and nothing is lost."""
    stores = [backend.open(), backend.open()]
    stores[0].compare_and_put("ctr", b"cas", None, b"0")
    stores[0].put("ctr", b"tx", b"0")
    rounds = 25

    def cas_worker(store: Store) -> Callable[[], None]:
        def work() -> None:
            done = 0
            while done < rounds:
                current = store.get_revisioned("ctr", b"cas")
                assert current is not None
                try:
                    store.compare_and_put("ctr", b"cas", current.revision, b"%d" % (int(current.value) + 1))
                except ConcurrentModificationError:
                    continue
                done += 1

        return work

    def tx_worker(store: Store) -> Callable[[], None]:
        def work() -> None:
            done = 0
            while done < rounds:
                try:
                    with store.transaction():
                        value = store.get("ctr", b"tx")
                        assert value is not None
                        store.put("ctr", b"tx", b"%d" % (int(value) + 1))
                except ConcurrentModificationError:  # PostgreSQL's serialization failure: retry
                    continue
                done += 1

        return work

    _run_threads([cas_worker(s) for s in stores] + [tx_worker(s) for s in stores])
    assert stores[1].get_revisioned("ctr", b"cas") == Revisioned(2 * rounds, b"%d" % (2 * rounds))
    assert stores[1].get("ctr", b"tx") == b"%d" % (2 * rounds)


def test_one_store_shared_by_threads(store: Store) -> None:
    def work(n: int) -> Callable[[], None]:
        def run() -> None:
            for i in range(20):
                with store.transaction():
                    store.put("ns", b"%d-%02d-a" % (n, i), b"x")
                    store.put("ns", b"%d-%02d-b" % (n, i), b"y")

        return run

    _run_threads([work(n) for n in range(4)])
    assert len(store.list_keys("ns")) == 4 * 20 * 2


def test_asyncio_to_thread_and_task_misuse(store: Store) -> None:
    async def main() -> None:
        await asyncio.gather(*(asyncio.to_thread(store.put, "ns", b"%03d" % i, b"v") for i in range(30)))
        assert len(store.list_keys("ns")) == 30

        async def intruder() -> None:
            store.put("ns", b"intruder", b"x")

        with pytest.raises(Boom), store.transaction():
            store.put("ns", b"in-tx", b"y")
            with pytest.raises(StoreError, match="another asyncio task"):
                await asyncio.create_task(intruder())
            raise Boom

    asyncio.run(main())
    assert store.get("ns", b"intruder") is None
    assert store.get("ns", b"in-tx") is None


def test_binary_keys_and_values_with_every_byte(store: Store) -> None:
    every = bytes(range(256))
    with store.transaction():
        store.put("bin", every, every[::-1] * 4)
        for i in range(256):
            store.put("bin", bytes([i]), bytes([i]) * 3 + b"\x00" + every)
    assert store.get("bin", every) == every[::-1] * 4
    keys = store.list_keys("bin")
    assert keys == sorted([bytes([i]) for i in range(256)] + [every])
    assert store.get("bin", b"\x00") == b"\x00" * 4 + every
    assert store.list_keys("bin", b"\x00") == [b"\x00", every]
    store.put_revisioned("bin-rev", every, 1, every)
    assert store.get_revisioned("bin-rev", every) == Revisioned(1, every)


def test_large_values(store: Store) -> None:
    rng = random.Random(1)
    big = rng.randbytes(1 << 20)
    store.put("big", b"plain", big)
    store.put_revisioned("big", b"rev", 1, big[::-1])
    assert store.get("big", b"plain") == big
    assert store.get_revisioned("big", b"rev") == Revisioned(1, big[::-1])
    assert store.items("big") == [(b"plain", big), (b"rev", big[::-1])]
    bigger = big + rng.randbytes(1 << 19)
    store.put_revisioned("big", b"rev", 2, bigger)
    assert store.get("big", b"rev") == bigger


def test_migration_from_v1_to_v2_runs(backend: Backend) -> None:
    v1 = backend.open(migrations=backend.migrations[:1])
    assert v1.schema_version() == 1  # type: ignore[attr-defined]
    v1.close()
    backend.raw("INSERT INTO kv (namespace, key, value) VALUES (?, ?, ?)", ("ns", b"old", b"from-v1"))
    with pytest.raises(Exception, match="revision"):
        backend.raw("SELECT revision FROM kv", ())

    store = backend.open()
    assert store.schema_version() == 2  # type: ignore[attr-defined]
    versions = backend.raw("SELECT version, description FROM schema_version ORDER BY version", ())
    assert versions == [(1, "key-value table"), (2, "revisioned keys")]
    assert store.get("ns", b"old") == b"from-v1"
    with pytest.raises(KeyKindError):  # v1 rows become plain keys
        store.get_revisioned("ns", b"old")
    store.put_revisioned("chan", b"c", 1, b"s1")
    assert store.get_revisioned("chan", b"c") == Revisioned(1, b"s1")
    store.close()
    assert backend.open().schema_version() == 2  # type: ignore[attr-defined]
    assert len(backend.raw("SELECT version FROM schema_version", ())) == 2


def test_newer_schema_is_refused(backend: Backend) -> None:
    backend.open().put("ns", b"k", b"v")
    backend.raw("INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)", (3, "x", 0))
    with pytest.raises(SchemaVersionError) as info:
        backend.open()
    assert (info.value.found, info.value.supported) == (3, 2)
    assert backend.raw("SELECT value FROM kv", ()) == [(b"v",)]


# -- model-based property test ----------------------------------------------------------------------

NAMESPACES = ("alpha", "beta")
_keys = st.sampled_from([b"", b"a", b"a\x00", b"ab", b"a\xff", b"\xff", b"\x00"]) | st.binary(max_size=3)
_values = st.binary(max_size=24)
_simple = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(NAMESPACES), _keys, _values),
    st.tuples(st.just("delete"), st.sampled_from(NAMESPACES), _keys),
    st.tuples(st.just("put_rev"), st.sampled_from(NAMESPACES), _keys, st.integers(0, 4), _values),
    st.tuples(st.just("cas"), st.sampled_from(NAMESPACES), _keys, st.none() | st.integers(0, 3), _values),
)
_ops = st.lists(
    st.one_of(_simple, st.tuples(st.just("tx"), st.lists(_simple, max_size=5), st.booleans())), max_size=20
)

Model = dict[tuple[str, bytes], tuple[bytes, int | None]]


def _model_apply(model: Model, op: tuple[Any, ...]) -> object:
    """Apply one simple op to the dict model; returns the outcome the store must report."""
    kind, ns, key = op[0], op[1], op[2]
    current = model.get((ns, key))
    if kind == "put":
        if current is not None and current[1] is not None:
            return KeyKindError
        model[(ns, key)] = (op[3], None)
        return None
    if kind == "delete":
        return model.pop((ns, key), None) is not None
    if kind == "put_rev":
        revision, value = op[3], op[4]
        if current is not None and current[1] is None:
            return KeyKindError
        if current is not None and current[1] is not None and current[1] >= revision:
            return StaleRevisionError
        model[(ns, key)] = (value, revision)
        return None
    expected, value = op[3], op[4]
    if current is not None and current[1] is None:
        return KeyKindError
    stored = None if current is None else current[1]
    if stored != expected:
        return ConcurrentModificationError
    new = 0 if expected is None else expected + 1
    model[(ns, key)] = (value, new)
    return new


def _store_apply(store: Store, op: tuple[Any, ...]) -> object:
    kind, ns, key = op[0], op[1], op[2]
    try:
        if kind == "put":
            store.put(ns, key, op[3])
            return None
        if kind == "delete":
            return store.delete(ns, key)
        if kind == "put_rev":
            store.put_revisioned(ns, key, op[3], op[4])
            return None
        return store.compare_and_put(ns, key, op[3], op[4])
    except KeyKindError:
        return KeyKindError
    except StaleRevisionError:
        return StaleRevisionError if kind == "put_rev" else ConcurrentModificationError
    except ConcurrentModificationError:
        return ConcurrentModificationError


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(ops=_ops)
def test_store_matches_dict_model(store: Store, ops: list[tuple[Any, ...]]) -> None:
    for ns in NAMESPACES:  # the fixture's store outlives one example: start each from empty
        for key in store.list_keys(ns):
            store.delete(ns, key)
    model: Model = {}
    for op in ops:
        if op[0] != "tx":
            assert _store_apply(store, op) == _model_apply(model, op), op
            continue
        inner, fail = op[1], op[2]
        scratch = dict(model)
        try:
            with store.transaction():
                for sub in inner:
                    assert _store_apply(store, sub) == _model_apply(scratch, sub), sub
                if fail:
                    raise Boom
        except Boom:
            continue
        model = scratch
    for ns in NAMESPACES:
        expected = sorted((key, value) for (space, key), (value, _) in model.items() if space == ns)
        assert store.items(ns) == expected
        assert store.list_keys(ns, b"a") == [key for key, _ in expected if key.startswith(b"a")]
        for (space, key), (value, revision) in model.items():
            if space == ns and revision is not None:
                assert store.get_revisioned(ns, key) == Revisioned(revision, value)
