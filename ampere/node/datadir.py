"""The node's data directory: its files, the lock that makes it one process's, tokens and seed.

Layout (see docs/node.md): `config.toml`, `ampere.lock`, `seed`, `admin.token`, `readonly.token`,
`rpc.json`, `rpc.sock`, `ampere.sqlite`, `ampere.log`, `backup.scb`, and `chain/` for the embedded
chain. Secrets are written 0600 and atomically, so that a crash never leaves half a seed behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ampere.bitcoin.bip39 import Bip39Error, mnemonic_to_entropy
from ampere.errors import AmpereError

__all__ = [
    "DataDir",
    "DataDirError",
    "DataDirLock",
    "DataDirLockedError",
    "SeedError",
    "Tokens",
    "normalize_mnemonic",
    "write_private",
]

log = logging.getLogger(__name__)


class DataDirError(AmpereError):
    """The data directory cannot be used (permissions, corrupt files)."""


class DataDirLockedError(DataDirError):
    """Another process holds the data directory's lock."""


class SeedError(DataDirError):
    """No usable seed: malformed file, invalid mnemonic, or a restore that contradicts the stored one."""


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600, atomically (readers never see a partial file)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is: a crash must not lose a fresh seed.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def normalize_mnemonic(text: str) -> str:
    """The words of a mnemonic, lowercased and single-spaced; SeedError if it is not valid BIP39."""
    words = text.lower().split()
    if len(words) != 24:
        raise SeedError(f"expected a 24-word mnemonic, got {len(words)} words")
    mnemonic = " ".join(words)
    try:
        mnemonic_to_entropy(mnemonic)
    except Bip39Error as exc:
        raise SeedError(f"invalid mnemonic: {exc}") from None
    return mnemonic


@dataclass(frozen=True, slots=True, repr=False)
class Tokens:
    admin: str
    readonly: str

    def __repr__(self) -> str:
        return "Tokens(<hidden>)"


class DataDirLock:
    """An exclusive `flock` on `ampere.lock`: the kernel drops it when the process dies, even by kill -9."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise DataDirLockedError(
                f"data directory {self.path.parent} is in use by another ampere node{who}"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.seek(0)
                self._file.truncate()
            self._file.close()  # closing the descriptor releases the flock
            self._file = None

    @property
    def held(self) -> bool:
        return self._file is not None


class DataDir:
    """Paths inside one node data directory, and the operations on its small files."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()

    @property
    def config_file(self) -> Path:
        return self.root / "config.toml"

    @property
    def lock_file(self) -> Path:
        return self.root / "ampere.lock"

    @property
    def seed_file(self) -> Path:
        return self.root / "seed"

    @property
    def admin_token_file(self) -> Path:
        return self.root / "admin.token"

    @property
    def readonly_token_file(self) -> Path:
        return self.root / "readonly.token"

    @property
    def rpc_json(self) -> Path:
        return self.root / "rpc.json"

    @property
    def rpc_socket(self) -> Path:
        return self.root / "rpc.sock"

    @property
    def sqlite_file(self) -> Path:
        return self.root / "ampere.sqlite"

    @property
    def log_file(self) -> Path:
        return self.root / "ampere.log"

    @property
    def backup_file(self) -> Path:
        return self.root / "backup.scb"

    @property
    def chain_dir(self) -> Path:
        return self.root / "chain"

    def create(self) -> None:
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise DataDirError(f"cannot create data directory {self.root}: {exc}") from exc

    def lock(self) -> DataDirLock:
        lock = DataDirLock(self.lock_file)
        lock.acquire()
        return lock

    # --- seed ----------------------------------------------------------------------------------------
    def has_seed(self) -> bool:
        return self.seed_file.exists()

    def read_seed(self) -> str:
        try:
            text = self.seed_file.read_text()
        except OSError as exc:
            raise SeedError(f"cannot read {self.seed_file}: {exc}") from exc
        return normalize_mnemonic(text)

    def write_seed(self, mnemonic: str) -> None:
        write_private(self.seed_file, normalize_mnemonic(mnemonic) + "\n")

    # --- tokens --------------------------------------------------------------------------------------
    def ensure_tokens(self) -> Tokens:
        """Read both RPC tokens, creating any that is missing (first start)."""
        return Tokens(
            admin=self._ensure_token(self.admin_token_file),
            readonly=self._ensure_token(self.readonly_token_file),
        )

    @staticmethod
    def _ensure_token(path: Path) -> str:
        if path.exists():
            token = path.read_text().strip()
            if len(token) >= 32:
                return token
            log.warning("%s is too short to be a token; replacing it", path.name)
        token = secrets.token_hex(32)
        write_private(path, token + "\n")
        return token

    # --- rpc.json ------------------------------------------------------------------------------------
    def write_rpc_info(self, url: str, socket_path: Path | None) -> None:
        info = {"url": url, "socket": None if socket_path is None else str(socket_path)}
        write_private(self.rpc_json, json.dumps(info) + "\n")

    def clear_rpc_info(self) -> None:
        for path in (self.rpc_json, self.rpc_socket):
            with contextlib.suppress(OSError):
                path.unlink()
