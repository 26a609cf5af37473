"""Handler of `listclosed`: every closed channel with its outputs (the contract's JSON, see
`ampere.node.onchain_listing`)."""

from __future__ import annotations

from typing import Any

from ampere.api.registry import MethodRegistry
from ampere.node.onchain_commands import ONCHAIN_METHODS
from ampere.node.onchain_service import OnchainResolutionService

__all__ = ["register_onchain_methods"]


def register_onchain_methods(registry: MethodRegistry, service: OnchainResolutionService) -> None:
    async def listclosed(_params: dict[str, Any]) -> Any:
        return {"channels": service.list_closed()}

    handlers = {"listclosed": listclosed}
    for spec in ONCHAIN_METHODS:
        registry.register(spec, handlers[spec.name])
