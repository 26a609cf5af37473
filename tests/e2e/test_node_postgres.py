"""`ampere node --db postgresql://...`: the node's state lives in PostgreSQL and survives kill -9."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import start_node, stop_quietly
from tests.store.conftest import PgServer, pg_server

__all__ = ["pg_server"]  # the fixture, shared with the storage suite

pytestmark = pytest.mark.postgres


def test_node_on_postgres_restarts_after_kill9(pg_server: PgServer, tmp_path: Path) -> None:
    dsn = pg_server.dsn(pg_server.create_database())
    datadir = tmp_path / "node"
    node = start_node(datadir, "--db", dsn)
    try:
        address = node.rpc("newaddress")["address"]
        node.rpc("generate", [3, address])
        funds = node.rpc("listfunds")["outputs"]
        assert len(funds) == 3
        node.kill9()
        node = start_node(datadir, "--db", dsn)
        assert node.rpc("listfunds")["outputs"] == funds
        assert node.rpc("newaddress")["address"] != address
        assert not (datadir / "ampere.sqlite").exists()
        assert node.stop() == 0
    finally:
        stop_quietly(node)
