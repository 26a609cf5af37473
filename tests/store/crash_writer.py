"""Child process of the SQLite crash test: commits ever-higher revisions until it is killed.

Each commit writes a self-checking channel-state blob of varying size (so pages split and merge) and, in
the same transaction, a second key holding the revision; it prints the revision only after the commit
returned, so every printed revision must survive the kill.
"""

from __future__ import annotations

import hashlib
import sys

from ampere.store.sqlite import SqliteStore

NAMESPACE = "channel_state"
STATE_KEY = b"\x11" * 32
MIRROR_KEY = b"mirror"


def payload(revision: int) -> bytes:
    header = revision.to_bytes(8, "big")
    size = 512 + (revision * 7919) % 1_500_000
    block = hashlib.sha256(header).digest()
    body = (block * (size // 32 + 1))[:size]
    return header + body + hashlib.sha256(header + body).digest()


def check_payload(value: bytes) -> int:
    """The revision a blob was written at; AssertionError if it is torn or foreign."""
    header, body, digest = value[:8], value[8:-32], value[-32:]
    assert hashlib.sha256(header + body).digest() == digest, "torn or corrupt state blob"
    revision = int.from_bytes(header, "big")
    assert value == payload(revision), "blob does not match its revision"
    return revision


def main(path: str) -> None:
    store = SqliteStore(path)
    current = store.get_revisioned(NAMESPACE, STATE_KEY)
    revision = 0 if current is None else current.revision
    while True:
        revision += 1
        with store.transaction():
            store.put_revisioned(NAMESPACE, STATE_KEY, revision, payload(revision))
            store.put(NAMESPACE, MIRROR_KEY, revision.to_bytes(8, "big"))
        print(revision, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
