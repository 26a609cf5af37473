"""`SqliteStore`: the default backend, one file in the datadir (`ampere.sqlite`).

WAL journal with `synchronous=FULL`: a commit returns only after the WAL is fsynced, so a state the node
acknowledged survives power loss, not just a process crash. Each write outside `transaction()` is its own
transaction; `transaction()` starts with `BEGIN IMMEDIATE`, taking the write lock up front so that two
writers never deadlock upgrading read locks.

Threads and asyncio: the connection is opened with `check_same_thread=False` and every call holds the
store's lock, so the object may be handed to `asyncio.to_thread`. A small write costs one fsync (well under
a millisecond to a few milliseconds); the node may call it directly from the event loop where that latency
is acceptable, and should move batches or large blobs to a thread.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from ampere.store._sql import Migration, Params, Row, SqlStore
from ampere.store.errors import (
    StoreCorruptionError,
    StoreError,
    StoreUnavailableError,
)

log = logging.getLogger(__name__)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "key-value table",
        (
            "CREATE TABLE kv (namespace TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, "
            "PRIMARY KEY (namespace, key))",
        ),
    ),
    Migration(2, "revisioned keys", ("ALTER TABLE kv ADD COLUMN revision INTEGER",)),
)
SCHEMA_VERSION = len(MIGRATIONS)


class SqliteStore(SqlStore):
    """A `Store` in one SQLite file. `migrations` exists for tests and tools; the node uses the default."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 10.0,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        try:
            # The file holds preimages and the peer's revocation secrets: create it private. SQLite gives
            # its -wal and -shm files the same mode.
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailableError(f"cannot open SQLite database {self.path}: {exc}") from exc
        try:
            self._configure(busy_timeout)
            self._migrate(migrations)
        except BaseException:
            self._conn.close()
            raise

    def _configure(self, busy_timeout: float) -> None:
        with self._access():
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"SQLite refused WAL mode (got {mode!r}) for {self.path}")
            self._conn.execute("PRAGMA synchronous = FULL")
            # On macOS fsync stops at the drive's cache and F_FULLFSYNC reaches the medium; no-op elsewhere.
            self._conn.execute("PRAGMA fullfsync = ON")

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    def check_integrity(self) -> None:
        """Full consistency check of the file (reads all of it): `StoreCorruptionError` if damaged."""
        with self._access():
            rows = self._conn.execute("PRAGMA integrity_check").fetchall()
        if [tuple(row) for row in rows] != [("ok",)]:
            raise StoreCorruptionError(f"{self.path} failed integrity_check: {rows[:5]}")

    # -- hooks ---------------------------------------------------------------------------------------

    def _query(self, sql: str, params: Params) -> list[Row]:
        return self._conn.execute(sql, params).fetchall()

    def _execute(self, sql: str, params: Params) -> int:
        return self._conn.execute(sql, params).rowcount

    def _begin(self, *, for_migration: bool = False) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self._conn.execute("COMMIT")

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _disconnect(self) -> None:
        self._conn.close()

    def _translate(self, exc: Exception) -> StoreError | None:
        if not isinstance(exc, sqlite3.Error):
            return None
        message = str(exc)
        lowered = message.lower()
        if isinstance(exc, sqlite3.OperationalError) and (
            "locked" in lowered or "busy" in lowered or "unable to open" in lowered or "disk i/o" in lowered
        ):
            return StoreUnavailableError(f"SQLite {self.path}: {message}")
        if isinstance(exc, sqlite3.DatabaseError) and (
            "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered
        ):
            return StoreCorruptionError(f"SQLite {self.path}: {message}")
        return StoreError(f"SQLite {self.path}: {message}")
