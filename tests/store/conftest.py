"""Fixtures for the storage suite: a `backend` (SQLite file or a database on a throwaway PostgreSQL
server) and a `store` opened on it.

The PostgreSQL server is started once per session per xdist worker: `initdb` and `pg_ctl` from
`/usr/lib/postgresql/*/bin`, run as the `postgres` user when we are root, in a private temporary
directory (data dir and unix socket) on a free TCP port. Each test gets its own database. Without the
binaries the PostgreSQL tests skip, except under CI=true, where they fail so CI cannot skip silently.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ampere.store._sql import Migration
from ampere.store.interface import Store

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def _pg_bindir() -> tuple[int, Path] | None:
    """The newest installed server's major version and bin directory."""
    found = []
    for candidate in glob.glob(PG_BIN_GLOB):
        bindir = Path(candidate)
        version = bindir.parent.name
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file() and version.isdigit():
            found.append((int(version), bindir))
    return max(found) if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PgServer:
    bindir: Path
    version: int
    base: Path
    port: int
    as_postgres: list[str]
    _names: Iterator[int] = field(default_factory=itertools.count)

    def dsn(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(sql)  # test-made names, not user input

    def create_database(self) -> str:
        name = f"t{next(self._names)}"
        # FILE_COPY (PostgreSQL 15+) skips WAL-logging the template: ~10x faster per test here.
        strategy = " STRATEGY FILE_COPY" if self.version >= 15 else ""
        self.admin(f"CREATE DATABASE {name}{strategy}")
        return name

    def drop_database(self, name: str) -> None:
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        pg_ctl = str(self.bindir / "pg_ctl")
        subprocess.run(
            [*self.as_postgres, pg_ctl, "-D", str(self.base / "data"), "-m", "immediate", "stop"],
            cwd=self.base,
            capture_output=True,
            check=False,
        )


def _unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true requires the PostgreSQL tests to run", pytrace=False)
    pytest.skip(message)


def _run(cmd: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False, timeout=120)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    found = _pg_bindir()
    if found is None:
        _unavailable(f"no PostgreSQL server binaries under {PG_BIN_GLOB} (Debian package: postgresql)")
        raise AssertionError("unreachable")
    version, bindir = found
    as_postgres: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root but there is no 'postgres' user to run the server as")
            raise AssertionError("unreachable") from None
        as_postgres = ["runuser", "-u", "postgres", "--"]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    base = Path(tempfile.mkdtemp(prefix=f"ampere-pg-{worker}-"))
    if owner is not None:
        os.chown(base, owner.pw_uid, owner.pw_gid)
    server: PgServer | None = None
    try:
        data = str(base / "data")
        initdb = [str(bindir / "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync"]
        init = _run([*as_postgres, *initdb, "--encoding=UTF8", "--no-locale"], base)
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        # Two workers can be handed the same free port between our probe and the server's bind; retry.
        for _attempt in range(5):
            port = _free_port()
            options = (
                f"-p {port} -k {base} -c listen_addresses=127.0.0.1 "
                # Durability of the test server's disk is not under test (the store's own settings are).
                "-c fsync=off -c full_page_writes=off -c max_connections=50"
            )
            pg_ctl = [str(bindir / "pg_ctl"), "-D", data, "-l", str(base / "server.log"), "-o", options]
            start = _run([*as_postgres, *pg_ctl, "-w", "-t", "60", "start"], base)
            if start.returncode == 0:
                server = PgServer(bindir, version, base, port, as_postgres)
                break
        else:
            log = (base / "server.log").read_text(errors="replace")[-4000:]
            raise RuntimeError(f"pg_ctl start failed:\n{start.stdout}\n{start.stderr}\n{log}")
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Backend:
    """One database on one backend, with the means to open stores on it and poke it with raw SQL."""

    name: str
    _open: Callable[..., Store]
    raw: Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]  # SQL with ? placeholders
    migrations: tuple[Migration, ...]
    opened: list[Store] = field(default_factory=list)

    def open(self, **kwargs: Any) -> Store:
        store = self._open(**kwargs)
        self.opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self.opened:
            store.close()


def _sqlite_backend(path: Path) -> Backend:
    from ampere.store.sqlite import MIGRATIONS, SqliteStore

    def raw(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    return Backend("sqlite", lambda **kw: SqliteStore(path, **kw), raw, MIGRATIONS)


def _postgres_backend(dsn: str) -> Backend:
    import psycopg

    from ampere.store.postgres import MIGRATIONS, PostgresStore

    def raw(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            cursor = conn.execute(sql.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []

    return Backend("postgres", lambda **kw: PostgresStore(dsn, **kw), raw, MIGRATIONS)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        handle = _sqlite_backend(tmp_path / "ampere.sqlite")
        yield handle
        handle.close_all()
        return
    server: PgServer = request.getfixturevalue("pg_server")
    dbname = server.create_database()
    handle = _postgres_backend(server.dsn(dbname))
    try:
        yield handle
    finally:
        handle.close_all()
        server.drop_database(dbname)


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.open()
