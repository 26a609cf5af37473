"""RPC/CLI declarations of the static channel backup commands (handlers: `ampere.api.backup_methods`)."""

from __future__ import annotations

from ampere.node.method_spec import ADMIN, READ, STR, MethodSpec, ParamSpec

__all__ = ["BACKUP_METHODS"]

_FILE = ParamSpec("file", STR, help="absolute path of the backup file on the node's machine", max_length=4096)

BACKUP_METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        ("exportbackup",),
        (_FILE,),
        ADMIN,
        "write the encrypted static channel backup (the same as DIR/backup.scb) to FILE",
    ),
    MethodSpec(
        ("restorebackup",),
        (_FILE,),
        ADMIN,
        "restore the channels of a backup made from this seed: ask each peer to force close, then sweep",
    ),
    MethodSpec(
        ("listrestored",),
        (),
        READ,
        "channels restored from a backup: waiting_close, sweeping or closed",
    ),
)
