"""The key-value persistence contract every backend honours, and the checks they share.

Model: namespaces (short ASCII names) hold byte keys mapped to byte values, ordered bytewise. A key is
either *plain* (`put`) or *revisioned* (`put_revisioned`, `compare_and_put`): the latter carries an integer
revision that only ever moves forward, which is how a stale writer of channel state is caught before the
node signs on top of an old state.

Durability: every write outside `transaction()` is its own committed transaction, and a write or a
transaction returns only once the commit is durable (fsync for SQLite, `synchronous_commit=on` for
PostgreSQL). Callers sign or revoke only after that return.

Concurrency: a store object may be shared between threads (calls are serialized by a lock), so
`await asyncio.to_thread(store.put, ...)` is fine. A transaction belongs to the thread and asyncio task
that opened it; never `await` inside a `transaction()` block, since another task on the same loop would
then be refused (rather than silently joining the open transaction).
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Protocol

MAX_KEY_BYTES = 1024  # PostgreSQL's btree refuses index rows past ~2.7 KB; keys are ids, never payloads
MAX_REVISION = 2**63 - 1  # both backends store revisions as signed 64-bit integers
_NAMESPACE_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Revisioned:
    """A revisioned value as stored."""

    revision: int
    value: bytes


class Store(Protocol):
    """What the node needs from a database. Implementations: `SqliteStore`, `PostgresStore`."""

    def get(self, namespace: str, key: bytes) -> bytes | None:
        """The value under `key`, plain or revisioned, or None."""
        ...

    def put(self, namespace: str, key: bytes, value: bytes) -> None:
        """Create or replace a plain value; `KeyKindError` if the key holds a revisioned one."""
        ...

    def delete(self, namespace: str, key: bytes) -> bool:
        """Remove the key whatever its kind; True if it existed."""
        ...

    def list_keys(self, namespace: str, prefix: bytes = b"") -> list[bytes]:
        """Keys starting with `prefix`, in bytewise order."""
        ...

    def items(self, namespace: str, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        """(key, value) pairs starting with `prefix`, in bytewise key order."""
        ...

    def get_revisioned(self, namespace: str, key: bytes) -> Revisioned | None:
        """The revisioned value under `key`, or None; `KeyKindError` if the key is plain."""
        ...

    def put_revisioned(self, namespace: str, key: bytes, revision: int, value: bytes) -> None:
        """Store `value` at `revision`, which must exceed the stored one (`StaleRevisionError` if not)."""
        ...

    def compare_and_put(self, namespace: str, key: bytes, expected_revision: int | None, value: bytes) -> int:
        """Write if the stored revision is `expected_revision` (None: the key must not exist).

        The new revision is `expected_revision + 1` (0 for a new key) and is returned;
        `ConcurrentModificationError` if another writer got there first.
        """
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """All writes in the block commit together, or none if it raises; nesting raises."""
        ...

    @property
    def in_transaction(self) -> bool:
        """True if the caller (this thread and task) is inside this store's `transaction()`."""
        ...

    def close(self) -> None:
        """Release the connection; idempotent. Later calls raise `StoreClosedError`."""
        ...


def atomic(store: Store) -> AbstractContextManager[None]:
    """A transaction, or a no-op inside one: lets repositories compose into a caller's transaction."""
    if store.in_transaction:
        return nullcontext()
    return store.transaction()


def check_namespace(namespace: str) -> None:
    if not isinstance(namespace, str) or _NAMESPACE_RE.fullmatch(namespace) is None:
        raise ValueError(f"invalid namespace {namespace!r}: 1-64 chars of [a-z0-9_.-], starting alphanumeric")


def check_key(key: bytes) -> None:
    if not isinstance(key, bytes):
        raise TypeError(f"keys are bytes, not {type(key).__name__}")
    if len(key) > MAX_KEY_BYTES:
        raise ValueError(f"key of {len(key)} bytes exceeds {MAX_KEY_BYTES}")


def check_value(value: bytes) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"values are bytes, not {type(value).__name__}")


def check_prefix(prefix: bytes) -> None:
    if not isinstance(prefix, bytes):
        raise TypeError(f"prefixes are bytes, not {type(prefix).__name__}")


def check_revision(revision: int) -> None:
    if isinstance(revision, bool) or not isinstance(revision, int):
        raise TypeError(f"revisions are int, not {type(revision).__name__}")
    if not 0 <= revision <= MAX_REVISION:
        raise ValueError(f"revision {revision} outside 0..2**63-1")


def prefix_upper_bound(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix`; None if there is none.

    Turns a prefix scan into an index range (`prefix <= key < bound`) that both backends can use,
    unlike LIKE, which has no byte semantics for BLOB/bytea.
    """
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])
