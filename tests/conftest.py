"""Shared pytest configuration: hypothesis profiles and the path to the spec vectors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.register_profile("fuzz", max_examples=20_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VECTORS_DIR = PROJECT_ROOT.parent / "shared" / "vectors"


def load_vectors(name: str) -> Any:
    """Load one of the BOLT test-vector files that live beside the project (never copied into it)."""
    path = VECTORS_DIR / name
    if not path.exists():
        raise FileNotFoundError(f"spec vectors not found at {path}; the project expects ../shared/vectors")
    with path.open() as handle:
        return json.load(handle)
