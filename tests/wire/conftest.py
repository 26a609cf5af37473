"""Wire-test configuration: the ``fuzz`` marker used by ``make fuzz``."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: property tests feeding hostile bytes to decoders")
