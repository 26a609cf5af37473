"""`PostgresStore`: the same `Store` over PostgreSQL (psycopg 3), selected with `--db postgresql://...`.

Durability: the session forces `synchronous_commit = on`, so a commit returns after the server flushed
its WAL, whatever the server's default. Plain writes run in autocommit, each its own transaction.
`transaction()` runs at SERIALIZABLE: a conflict with another writer surfaces as
`ConcurrentModificationError` (at a statement or at commit), never as a silently merged result. The
database should belong to one node: the schema uses fixed table names (`kv`, `schema_version`); give each
node its own database or its own schema through `options=-csearch_path=...` in the DSN.

The store reconnects on its next call after losing the server, except inside a transaction, which fails.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import psycopg
from psycopg import errors as pg_errors

from ampere.store._sql import Migration, Params, Row, SqlStore
from ampere.store.errors import (
    ConcurrentModificationError,
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
            "CREATE TABLE kv (namespace TEXT NOT NULL, key BYTEA NOT NULL, value BYTEA NOT NULL, "
            "PRIMARY KEY (namespace, key))",
        ),
    ),
    Migration(2, "revisioned keys", ("ALTER TABLE kv ADD COLUMN revision BIGINT CHECK (revision >= 0)",)),
)
SCHEMA_VERSION = len(MIGRATIONS)

# Held while migrating so that two nodes opening one database at once do not both run the DDL.
_MIGRATION_LOCK_ID = 0x616D_7065_7265  # "ampere"

_sql_cache: dict[str, str] = {}


def _dialect(sql: str) -> str:
    """`?` placeholders (shared with SQLite) to psycopg's `%s`; our SQL contains no literal ? or %."""
    converted = _sql_cache.get(sql)
    if converted is None:
        converted = _sql_cache[sql] = sql.replace("?", "%s")
    return converted


class PostgresStore(SqlStore):
    """A `Store` in a PostgreSQL database named by a libpq DSN or URL."""

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout: int = 10,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        super().__init__()
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._conn = self._connect()
        try:
            self._migrate(migrations)
        except BaseException:
            self._conn.close()
            raise

    def _connect(self) -> psycopg.Connection[Row]:
        try:
            conn = psycopg.connect(
                self._dsn, autocommit=True, connect_timeout=self._connect_timeout, application_name="ampere"
            )
            conn.execute("SET synchronous_commit TO on")
        except psycopg.Error as exc:
            # The message names host and database, never the password.
            raise StoreUnavailableError(f"cannot connect to PostgreSQL: {exc}") from exc
        return conn

    def __repr__(self) -> str:
        info = self._conn.info
        return f"PostgresStore(host={info.host!r}, port={info.port}, dbname={info.dbname!r})"

    def _live(self) -> psycopg.Connection[Row]:
        if self._conn.broken and self._tx_owner is None:
            log.warning("lost the PostgreSQL connection; reconnecting")
            self._conn.close()
            self._conn = self._connect()
        return self._conn

    # -- hooks ---------------------------------------------------------------------------------------

    def _query(self, sql: str, params: Params) -> list[Row]:
        return self._live().execute(_dialect(sql), params).fetchall()

    def _execute(self, sql: str, params: Params) -> int:
        return self._live().execute(_dialect(sql), params).rowcount

    def _begin(self, *, for_migration: bool = False) -> None:
        if for_migration:
            self._live().execute("BEGIN")
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_ID,))
        else:
            self._live().execute("BEGIN ISOLATION LEVEL SERIALIZABLE")

    def _commit(self) -> None:
        status = self._conn.execute("COMMIT").statusmessage
        # PostgreSQL answers COMMIT of a transaction that an earlier statement aborted with ROLLBACK and
        # no error; reporting success there would claim durability for writes that were discarded.
        if status != "COMMIT":
            raise StoreError(f"PostgreSQL did not commit (answered {status!r}); nothing was written")

    def _rollback(self) -> None:
        if not self._conn.broken and self._conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self._conn.execute("ROLLBACK")

    def _disconnect(self) -> None:
        self._conn.close()

    def _translate(self, exc: Exception) -> StoreError | None:
        if not isinstance(exc, psycopg.Error):
            return None
        message = f"PostgreSQL: {exc}"
        if isinstance(exc, pg_errors.SerializationFailure | pg_errors.DeadlockDetected):
            return ConcurrentModificationError(message)
        if isinstance(exc, pg_errors.DataCorrupted | pg_errors.IndexCorrupted):
            return StoreCorruptionError(message)
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return StoreUnavailableError(message)
        return StoreError(message)
