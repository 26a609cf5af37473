"""The embedded chain every on-chain test runs on: a new one per test, in its temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ampere.chain.embedded import EmbeddedChain


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[EmbeddedChain]:
    with EmbeddedChain(tmp_path / "chain") as opened:
        yield opened
