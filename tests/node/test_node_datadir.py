"""The data directory: the lock, private files, tokens and the seed's checks."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from ampere.bitcoin.bip39 import is_valid_mnemonic
from ampere.node.bootstrap import prepare_datadir
from ampere.node.config import load_config
from ampere.node.datadir import DataDir, DataDirLockedError, SeedError, normalize_mnemonic

MNEMONIC = " ".join(["abandon"] * 23 + ["art"])


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    datadir = DataDir(tmp_path)
    lock = datadir.lock()
    with pytest.raises(DataDirLockedError, match="in use"):
        datadir.lock()
    lock.release()
    datadir.lock().release()


def test_tokens_are_random_private_and_stable(tmp_path: Path) -> None:
    datadir = DataDir(tmp_path)
    tokens = datadir.ensure_tokens()
    assert tokens.admin != tokens.readonly and len(tokens.admin) == 64
    for path in (datadir.admin_token_file, datadir.readonly_token_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert datadir.ensure_tokens() == tokens
    assert tokens.admin not in repr(tokens)


def test_mnemonic_normalization() -> None:
    assert normalize_mnemonic("  " + MNEMONIC.upper().replace(" ", "\n ") + "\n") == MNEMONIC
    for bad in ("", "abandon " * 12, " ".join(["abandon"] * 24)):
        with pytest.raises(SeedError):
            normalize_mnemonic(bad)


def test_seed_is_made_once_and_shown_once(tmp_path: Path) -> None:
    config = load_config(tmp_path / "node", {})
    out = io.StringIO()
    first = prepare_datadir(config, io.StringIO(), out)
    first.lock.release()
    shown = [line for line in out.getvalue().splitlines() if is_valid_mnemonic(line)]
    assert len(shown) == 1 and first.fresh_seed
    assert stat.S_IMODE(config.datadir.seed_file.stat().st_mode) == 0o600
    out = io.StringIO()
    second = prepare_datadir(config, io.StringIO(), out)
    second.lock.release()
    assert out.getvalue() == "" and not second.fresh_seed
    assert second.keys.node_id == first.keys.node_id


def test_restore_reads_stdin_and_refuses_a_different_seed(tmp_path: Path) -> None:
    config = load_config(tmp_path / "node", {"restore": True})
    out = io.StringIO()
    prepared = prepare_datadir(config, io.StringIO(MNEMONIC + "\n"), out)
    prepared.lock.release()
    assert out.getvalue() == "" and not prepared.fresh_seed
    assert config.datadir.read_seed() == MNEMONIC
    with pytest.raises(SeedError, match="different seed"):
        prepare_datadir(config, io.StringIO(" ".join(["zoo"] * 23 + ["vote"])), out)
    # The failed attempt released the lock.
    config.datadir.lock().release()
