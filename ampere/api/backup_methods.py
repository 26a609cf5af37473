"""Handlers of the static channel backup methods: `exportbackup`, `restorebackup`, `listrestored`.

A backup that cannot be read (damaged, truncated, another seed or network) is a JSON-RPC error
`BACKUP_INVALID` (-32050) with `data.reason` "format" or "key"; the node keeps running.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ampere.api.errors import RpcError, register_error
from ampere.api.registry import Handler, MethodRegistry
from ampere.node.backup_codec import BackupError, BackupFormatError, BackupKeyError
from ampere.node.backup_commands import BACKUP_METHODS
from ampere.node.backup_service import BackupService

__all__ = ["BACKUP_ERROR", "BACKUP_INVALID", "register_backup_methods"]

BACKUP_ERROR = -32051  # the file cannot be read or written
BACKUP_INVALID = -32050  # the file is not a backup this node can restore


def register_backup_methods(registry: MethodRegistry, service: BackupService) -> None:
    handlers = _handlers(service)
    for spec in BACKUP_METHODS:
        registry.register(spec, handlers[spec.name])


def _handlers(service: BackupService) -> Mapping[str, Handler]:
    async def exportbackup(params: dict[str, Any]) -> Any:
        result = service.export(params["file"])
        return {"file": str(result.file), "channels": result.channels}

    async def restorebackup(params: dict[str, Any]) -> Any:
        restored = await service.restore(params["file"])
        return {"channels": len(restored), "channel_ids": [r.channel_id.hex() for r in restored]}

    async def listrestored(_params: dict[str, Any]) -> Any:
        return {"channels": [restored.to_json() for restored in service.list_restored()]}

    return {"exportbackup": exportbackup, "restorebackup": restorebackup, "listrestored": listrestored}


def _convert(exc: Exception) -> RpcError:
    if isinstance(exc, BackupFormatError):
        return RpcError(BACKUP_INVALID, str(exc), {"reason": "format"})
    if isinstance(exc, BackupKeyError):
        return RpcError(BACKUP_INVALID, str(exc), {"reason": "key"})
    return RpcError(BACKUP_ERROR, str(exc))


register_error(BackupError, _convert)
