"""Daemon start-up before any network or chain: data directory, lock, seed, tokens and logging.

The seed is shown exactly once, on stdout, when it is made; it is never logged.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import TextIO

from ampere.bitcoin.bip39 import generate_mnemonic
from ampere.node.config import NodeConfig
from ampere.node.datadir import DataDirLock, SeedError, Tokens, normalize_mnemonic
from ampere.node.keys import NodeKeys

__all__ = ["Prepared", "prepare_datadir", "setup_logging"]

log = logging.getLogger(__name__)

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True, slots=True)
class Prepared:
    lock: DataDirLock
    keys: NodeKeys
    tokens: Tokens
    fresh_seed: bool  # made in this run: the wallet has no history before the current tip


def prepare_datadir(config: NodeConfig, stdin: TextIO, stdout: TextIO) -> Prepared:
    """Create and lock the data directory, load (or make, or restore) the seed, and the RPC tokens.

    Raises DataDirLockedError if another node holds the directory, SeedError for a bad or conflicting seed.
    """
    datadir = config.datadir
    datadir.create()
    lock = datadir.lock()
    try:
        mnemonic, fresh = _load_seed(config, stdin, stdout)
        tokens = datadir.ensure_tokens()
        keys = NodeKeys.from_mnemonic(mnemonic, config.network)
    except BaseException:
        lock.release()
        raise
    return Prepared(lock, keys, tokens, fresh)


def _load_seed(config: NodeConfig, stdin: TextIO, stdout: TextIO) -> tuple[str, bool]:
    datadir = config.datadir
    if config.restore:
        mnemonic = normalize_mnemonic(stdin.read())
        if datadir.has_seed():
            if datadir.read_seed() != mnemonic:
                raise SeedError(f"{datadir.seed_file} holds a different seed; move it away to restore")
        else:
            datadir.write_seed(mnemonic)
        log.info("seed restored from stdin")
        return mnemonic, False
    if datadir.has_seed():
        return datadir.read_seed(), False
    mnemonic = generate_mnemonic(24)
    # Stored before it is shown: a seed the user wrote down must be the node's seed.
    datadir.write_seed(mnemonic)
    stdout.write(
        "New node seed. Write these 24 words down and keep them safe; they are shown only this once:\n"
        f"{mnemonic}\n"
    )
    stdout.flush()
    log.info("created a new seed in %s", datadir.seed_file)
    return mnemonic, True


def setup_logging(config: NodeConfig, stderr: TextIO | None = None) -> None:
    """Log to DIR/ampere.log and stderr at the configured level (replacing earlier handlers)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter(_LOG_FORMAT)
    file_handler = logging.FileHandler(config.datadir.log_file, encoding="utf-8")
    file_handler.setFormatter(formatter)
    stream_handler = logging.StreamHandler(stderr or sys.stderr)
    stream_handler.setFormatter(formatter)
    root.addHandler(file_handler)
    root.addHandler(stream_handler)
    root.setLevel(getattr(logging, config.log_level.upper()))
