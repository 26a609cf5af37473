"""What is particular to one backend: SQLite's file, pragmas and crash safety, PostgreSQL's session
settings, and `open_store`'s choice between them."""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from ampere.store import StoreCorruptionError, StoreError, open_store
from ampere.store.postgres import PostgresStore
from ampere.store.sqlite import SqliteStore
from tests.store import crash_writer
from tests.store.conftest import PgServer

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_sqlite_file_is_private_and_durable(tmp_path: Path) -> None:
    path = tmp_path / "ampere.sqlite"
    with SqliteStore(path) as store:
        store.put("ns", b"k", b"v")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert store._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert store._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        store.check_integrity()


def test_sqlite_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite"
    path.write_bytes(b"this is not sqlite" * 1000)
    with pytest.raises(StoreCorruptionError):
        SqliteStore(path)


def test_sqlite_unopenable_path(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        SqliteStore(tmp_path / "missing-dir" / "x.sqlite")


def test_sqlite_survives_sigkill_mid_write(tmp_path: Path) -> None:
    """kill -9 a writer at random points: the reopened store holds a whole, acknowledged, latest state."""
    seed = int(os.environ.get("AMPERE_CRASH_SEED", random.randrange(1 << 32)))
    rng = random.Random(seed)
    # (commits to wait for, then microseconds more) per round: the kill lands anywhere in a commit.
    schedule = [(rng.randrange(1, 8), rng.randrange(20_000)) for _ in range(12)]
    print(f"crash schedule: seed={seed} {schedule}")  # shown by pytest on failure
    path = tmp_path / "crash.sqlite"
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    previous = 0
    for round_no, (commits, extra_us) in enumerate(schedule):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.store.crash_writer", str(path)],
            stdout=subprocess.PIPE,
            cwd=PROJECT_ROOT,
            env=env,
            text=True,
        )
        assert child.stdout is not None
        acknowledged = previous
        try:
            for _ in range(commits):
                line = child.stdout.readline()
                assert line, f"writer died early (seed={seed}, round {round_no})"
                acknowledged = int(line)
            time.sleep(extra_us / 1e6)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            child.stdout.close()
        with SqliteStore(path) as store:
            store.check_integrity()
            state = store.get_revisioned(crash_writer.NAMESPACE, crash_writer.STATE_KEY)
            mirror = store.get(crash_writer.NAMESPACE, crash_writer.MIRROR_KEY)
        context = f"seed={seed} round={round_no} acknowledged={acknowledged}"
        assert state is not None, context
        assert crash_writer.check_payload(state.value) == state.revision, context
        assert mirror == state.revision.to_bytes(8, "big"), f"transaction torn: {context}"
        assert state.revision >= acknowledged, f"acknowledged commit lost: {context}"
        assert state.revision >= previous, f"went backwards: {context}"
        previous = state.revision


@pytest.mark.postgres
def test_postgres_session_is_durable_and_never_claims_an_aborted_commit(pg_server: PgServer) -> None:
    dbname = pg_server.create_database()
    try:
        with PostgresStore(pg_server.dsn(dbname)) as store:
            assert store._conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
            with pytest.raises(StoreError, match="did not commit"), store.transaction():
                store.put("ns", b"k", b"v")
                with pytest.raises(psycopg.Error):
                    store._conn.execute("SELECT 1/0")  # a failure the caller swallows
            assert store.get("ns", b"k") is None
            assert "dbname='t" in repr(store) and "postgres@" not in repr(store)
    finally:
        pg_server.drop_database(dbname)


@pytest.mark.postgres
def test_postgres_unreachable_is_typed(pg_server: PgServer) -> None:
    with pytest.raises(StoreError, match="cannot connect"):
        PostgresStore(f"postgresql://postgres@127.0.0.1:{pg_server.port}/no_such_db", connect_timeout=5)


def test_open_store_picks_sqlite_by_path_and_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = open_store(tmp_path / "a.sqlite")
    assert isinstance(plain, SqliteStore) and plain.path == tmp_path / "a.sqlite"
    plain.close()
    absolute = open_store(f"sqlite://{tmp_path}/b.sqlite")
    assert isinstance(absolute, SqliteStore) and absolute.path == tmp_path / "b.sqlite"
    absolute.close()
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:c%20d.sqlite")
    assert isinstance(relative, SqliteStore) and (tmp_path / "c d.sqlite").exists()
    relative.close()
    with pytest.raises(StoreError, match="unsupported"):
        open_store("mysql://localhost/db")
    with pytest.raises(StoreError, match="local file"):
        open_store("sqlite://host/x.sqlite")


@pytest.mark.postgres
def test_open_store_picks_postgres_by_url(pg_server: PgServer) -> None:
    dbname = pg_server.create_database()
    try:
        for url in (pg_server.dsn(dbname), pg_server.dsn(dbname).replace("postgresql://", "postgres://")):
            store = open_store(url)
            assert isinstance(store, PostgresStore)
            store.put("ns", b"k", b"v")
            store.close()
    finally:
        pg_server.drop_database(dbname)


@pytest.mark.postgres
def test_postgres_reconnects_after_losing_the_server_session(pg_server: PgServer) -> None:
    dbname = pg_server.create_database()
    try:
        with PostgresStore(pg_server.dsn(dbname)) as store:
            store.put("ns", b"k", b"v")
            pg_server.admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{dbname}' AND pid <> pg_backend_pid()"
            )
            with pytest.raises(StoreError):  # the call that discovers the loss fails: it may not have run
                store.get("ns", b"k")
            assert store.get("ns", b"k") == b"v"
            assert store._conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
    finally:
        pg_server.drop_database(dbname)
