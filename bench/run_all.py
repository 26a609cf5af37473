"""Run every benchmark script in bench/ in turn, each in its own process, and print their figures.

Run: ``.venv/bin/python bench/run_all.py`` (what ``make bench`` does). Scripts are run with their
default arguments by the same interpreter; a script that fails is reported and makes the exit
status non-zero, but the others still run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent


def scripts() -> list[Path]:
    """Every bench/*.py but this one and private helpers (leading underscore)."""
    this = Path(__file__).resolve()
    return sorted(p for p in BENCH_DIR.glob("*.py") if p.resolve() != this and not p.name.startswith("_"))


def main() -> int:
    failed: list[str] = []
    for script in scripts():
        header = f"== {script.name} "
        print(f"\n{header}{'=' * max(0, 78 - len(header))}", flush=True)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(script)], cwd=PROJECT_ROOT, check=False)
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            failed.append(script.name)
            print(
                f"-- {script.name} FAILED (exit status {result.returncode}) after {elapsed:.1f} s", flush=True
            )
        else:
            print(f"-- {elapsed:.1f} s", flush=True)
    if failed:
        print(f"\n{len(failed)} benchmark(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
