"""The `Store` semantics written once over a minimal SQL driver interface; backends supply the dialect.

Both backends keep everything in one table, `kv(namespace, key, value, revision)`, where `revision` is
NULL for plain keys. Every check that protects money (revision monotonicity, key kinds) is a single
conditional upsert, so it holds even against another process writing the same database: the database
decides, not a read the caller made earlier.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from ampere.store.errors import (
    ConcurrentModificationError,
    KeyKindError,
    NestedTransactionError,
    SchemaVersionError,
    StaleRevisionError,
    StoreClosedError,
    StoreError,
)
from ampere.store.interface import (
    MAX_REVISION,
    Revisioned,
    check_key,
    check_namespace,
    check_prefix,
    check_revision,
    check_value,
    prefix_upper_bound,
)

log = logging.getLogger(__name__)

Row = tuple[Any, ...]
Params = tuple[object, ...]

_SCHEMA_VERSION_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at BIGINT NOT NULL)"
)


@dataclass(frozen=True)
class Migration:
    """One step of a backend's schema history; `version` numbers are consecutive from 1."""

    version: int
    description: str
    statements: tuple[str, ...]


def _caller() -> tuple[int, object | None]:
    """Identifies who may use an open transaction: the thread, and the asyncio task if any."""
    try:
        task: object | None = asyncio.current_task()
    except RuntimeError:  # no running loop in this thread
        task = None
    return threading.get_ident(), task


class SqlStore(ABC):
    """A `Store` over a DB-API-like connection; subclasses implement the hooks below."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tx_owner: tuple[int, object | None] | None = None
        self._closed = False

    # -- backend hooks -------------------------------------------------------------------------------

    @abstractmethod
    def _query(self, sql: str, params: Params) -> list[Row]:
        """Run a SELECT (written with `?` placeholders) and return every row."""

    @abstractmethod
    def _execute(self, sql: str, params: Params) -> int:
        """Run a statement (written with `?` placeholders) and return its row count."""

    @abstractmethod
    def _begin(self, *, for_migration: bool = False) -> None:
        """Open a transaction that will serialize against other writers of the database."""

    @abstractmethod
    def _commit(self) -> None:
        """Commit durably, or raise if the database did not commit."""

    @abstractmethod
    def _rollback(self) -> None:
        """Abandon the open transaction, if any."""

    @abstractmethod
    def _disconnect(self) -> None:
        """Close the connection."""

    @abstractmethod
    def _translate(self, exc: Exception) -> StoreError | None:
        """The typed error for a driver exception, or None if `exc` is not the driver's."""

    # -- plumbing ------------------------------------------------------------------------------------

    def _wrap(self, exc: Exception) -> Exception:
        translated = self._translate(exc)
        return exc if translated is None else translated

    @contextmanager
    def _access(self) -> Iterator[None]:
        with self._lock:
            if self._closed:
                raise StoreClosedError("store is closed")
            if self._tx_owner is not None and self._tx_owner != _caller():
                raise StoreError(
                    "store used by another asyncio task while a transaction is open "
                    "(is there an await inside a transaction() block?)"
                )
            try:
                yield
            except StoreError:
                raise
            except Exception as exc:
                translated = self._translate(exc)
                if translated is None:
                    raise
                raise translated from exc

    def _rollback_quietly(self) -> None:
        try:
            self._rollback()
        except Exception:  # the original error matters more; a broken connection shows on the next call
            log.exception("rollback failed")

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        """Bring the schema to the last of `migrations` in one transaction; refuse a newer schema."""
        if [m.version for m in migrations] != list(range(1, len(migrations) + 1)):
            raise ValueError("migrations must be numbered 1, 2, 3, ... in order")
        supported = len(migrations)
        with self._access():
            self._begin(for_migration=True)
            try:
                self._execute(_SCHEMA_VERSION_DDL, ())
                rows = self._query("SELECT MAX(version) FROM schema_version", ())
                current = int(rows[0][0]) if rows and rows[0][0] is not None else 0
                if current > supported:
                    raise SchemaVersionError(current, supported)
                for migration in migrations[current:]:
                    log.info("store schema migration %d: %s", migration.version, migration.description)
                    for statement in migration.statements:
                        self._execute(statement, ())
                    self._execute(
                        "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                        (migration.version, migration.description, int(time.time())),
                    )
                self._commit()
            except BaseException:
                self._rollback_quietly()
                raise

    def schema_version(self) -> int:
        """The schema version recorded in the database."""
        with self._access():
            rows = self._query("SELECT MAX(version) FROM schema_version", ())
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def _stored_revision(self, namespace: str, key: bytes) -> tuple[bool, int | None]:
        rows = self._query("SELECT revision FROM kv WHERE namespace = ? AND key = ?", (namespace, key))
        if not rows:
            return False, None
        revision = rows[0][0]
        return True, None if revision is None else int(revision)

    # -- Store ---------------------------------------------------------------------------------------

    def get(self, namespace: str, key: bytes) -> bytes | None:
        check_namespace(namespace)
        check_key(key)
        with self._access():
            rows = self._query("SELECT value FROM kv WHERE namespace = ? AND key = ?", (namespace, key))
        return bytes(rows[0][0]) if rows else None

    def put(self, namespace: str, key: bytes, value: bytes) -> None:
        check_namespace(namespace)
        check_key(key)
        check_value(value)
        with self._access():
            changed = self._execute(
                "INSERT INTO kv (namespace, key, value, revision) VALUES (?, ?, ?, NULL) "
                "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value "
                "WHERE kv.revision IS NULL",
                (namespace, key, value),
            )
            if changed == 0:
                raise KeyKindError(f"{namespace}/{key.hex()} is revisioned; write it with put_revisioned")

    def delete(self, namespace: str, key: bytes) -> bool:
        check_namespace(namespace)
        check_key(key)
        with self._access():
            changed = self._execute("DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key))
        return changed > 0

    def _range(self, columns: str, namespace: str, prefix: bytes) -> list[Row]:
        check_namespace(namespace)
        check_prefix(prefix)
        upper = prefix_upper_bound(prefix)
        sql = f"SELECT {columns} FROM kv WHERE namespace = ? AND key >= ?"
        params: Params = (namespace, prefix)
        if upper is not None:
            sql += " AND key < ?"
            params += (upper,)
        with self._access():
            return self._query(sql + " ORDER BY key", params)

    def list_keys(self, namespace: str, prefix: bytes = b"") -> list[bytes]:
        return [bytes(row[0]) for row in self._range("key", namespace, prefix)]

    def items(self, namespace: str, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        return [(bytes(row[0]), bytes(row[1])) for row in self._range("key, value", namespace, prefix)]

    def get_revisioned(self, namespace: str, key: bytes) -> Revisioned | None:
        check_namespace(namespace)
        check_key(key)
        with self._access():
            rows = self._query(
                "SELECT value, revision FROM kv WHERE namespace = ? AND key = ?", (namespace, key)
            )
        if not rows:
            return None
        value, revision = rows[0]
        if revision is None:
            raise KeyKindError(f"{namespace}/{key.hex()} is a plain key; read it with get")
        return Revisioned(int(revision), bytes(value))

    def put_revisioned(self, namespace: str, key: bytes, revision: int, value: bytes) -> None:
        check_namespace(namespace)
        check_key(key)
        check_revision(revision)
        check_value(value)
        with self._access():
            changed = self._execute(
                "INSERT INTO kv (namespace, key, value, revision) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (namespace, key) DO UPDATE "
                "SET value = excluded.value, revision = excluded.revision "
                "WHERE kv.revision IS NOT NULL AND kv.revision < excluded.revision",
                (namespace, key, value, revision),
            )
            if changed == 0:
                exists, stored = self._stored_revision(namespace, key)
                if exists and stored is None:
                    raise KeyKindError(f"{namespace}/{key.hex()} is a plain key; write it with put")
                raise StaleRevisionError(namespace, key, revision, stored)

    def compare_and_put(self, namespace: str, key: bytes, expected_revision: int | None, value: bytes) -> int:
        check_namespace(namespace)
        check_key(key)
        check_value(value)
        if expected_revision is not None:
            check_revision(expected_revision)
            if expected_revision >= MAX_REVISION:
                raise ValueError("revision would overflow")
        new_revision = 0 if expected_revision is None else expected_revision + 1
        with self._access():
            if expected_revision is None:
                changed = self._execute(
                    "INSERT INTO kv (namespace, key, value, revision) VALUES (?, ?, ?, 0) "
                    "ON CONFLICT (namespace, key) DO NOTHING",
                    (namespace, key, value),
                )
            else:
                changed = self._execute(
                    "UPDATE kv SET value = ?, revision = ? WHERE namespace = ? AND key = ? AND revision = ?",
                    (value, new_revision, namespace, key, expected_revision),
                )
            if changed == 0:
                exists, stored = self._stored_revision(namespace, key)
                if exists and stored is None:
                    raise KeyKindError(f"{namespace}/{key.hex()} is a plain key")
                if stored is not None and expected_revision is not None and stored < expected_revision:
                    # The database is behind the caller: an old backup restored under a running writer.
                    raise ConcurrentModificationError(
                        f"{namespace}/{key.hex()} is at revision {stored}, behind the expected "
                        f"{expected_revision}: the database went backwards"
                    )
                if not exists:
                    raise ConcurrentModificationError(f"{namespace}/{key.hex()} does not exist")
                raise StaleRevisionError(namespace, key, new_revision, stored)
        return new_revision

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            caller = _caller()
            if self._tx_owner is not None:
                if self._tx_owner == caller:
                    raise NestedTransactionError("transaction() is already open; nesting is not supported")
                raise StoreError("another asyncio task has a transaction open on this store")
            if self._closed:
                raise StoreClosedError("store is closed")
            try:
                self._begin()
            except Exception as exc:
                raise self._wrap(exc) from exc
            self._tx_owner = caller
            try:
                yield
            except BaseException:
                self._tx_owner = None
                self._rollback_quietly()
                raise
            self._tx_owner = None
            try:
                self._commit()
            except Exception as exc:
                self._rollback_quietly()
                raise self._wrap(exc) from exc

    @property
    def in_transaction(self) -> bool:
        return self._tx_owner is not None and self._tx_owner == _caller()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self._tx_owner is not None:
                raise StoreError("cannot close the store inside a transaction")
            self._closed = True
            try:
                self._disconnect()
            except Exception as exc:
                raise self._wrap(exc) from exc

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
