"""Handler of `dev_cheat`, registered only when the node runs with `--developer`."""

from __future__ import annotations

from typing import Any

from ampere.api.errors import ErrorCode, RpcError, register_error
from ampere.api.registry import MethodRegistry
from ampere.node.channel_service import ChannelService
from ampere.node.dev_commands import DEV_METHODS
from ampere.node.dev_commitments import CheatError, dev_cheat

__all__ = ["register_dev_methods"]


def register_dev_methods(registry: MethodRegistry, service: ChannelService) -> None:
    async def dev_cheat_method(params: dict[str, Any]) -> Any:
        result = await dev_cheat(service, params["channel"], params["commitment_number"])
        return {
            "channel_id": result.channel_id.hex(),
            "commitment_number": result.commitment_number,
            "txid": result.txid[::-1].hex(),
        }

    handlers = {"dev_cheat": dev_cheat_method}
    for spec in DEV_METHODS:
        registry.register(spec, handlers[spec.name])


def _cheat_error(exc: Exception) -> RpcError:
    return RpcError(ErrorCode.CHANNEL_REFUSED, str(exc))


register_error(CheatError, _cheat_error)
