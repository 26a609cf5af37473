"""Handlers of the micropayment methods: `micro_open`, `micro_pay`, `micro_settle`, `micro_refund`,
`micro_list`. Replies follow the contracts; a refund the chain refuses carries its reject reason in
`data` (`{"reason": "non-final", "detail": ..., "txid": ...}`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ampere.api.errors import ErrorCode, RpcError, register_error
from ampere.api.registry import Handler, MethodRegistry
from ampere.node.errors import InvalidArgumentError
from ampere.node.micro_commands import MICRO_METHODS
from ampere.node.micro_service import MicroBroadcastError, MicroCommandError, MicroPeerError, MicroService
from ampere.node.peer_address import parse_node_id
from ampere.node.peer_protocol import PeerError

__all__ = ["register_micro_methods"]


def register_micro_methods(registry: MethodRegistry, service: MicroService) -> None:
    handlers = _handlers(service)
    for spec in MICRO_METHODS:
        registry.register(spec, handlers[spec.name])


def _channel_id(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise InvalidArgumentError("channel", "expected a channel_id of 64 hex digits")
    return raw


def _handlers(service: MicroService) -> Mapping[str, Handler]:
    async def micro_open(params: dict[str, Any]) -> Any:
        try:
            node_id = parse_node_id(params["node_id"])
        except PeerError as exc:
            raise InvalidArgumentError("node_id", str(exc)) from None
        if params.get("refund_after") is None:
            raise InvalidArgumentError("refund_after", "required (--refund-after BLOCKS)")
        result = await service.open(node_id, params["amount"], params["refund_after"])
        return {
            "channel_id": result.channel_id.hex(),
            "funding_txid": result.funding_txid[::-1].hex(),
            "refund_height": result.refund_height,
        }

    async def micro_pay(params: dict[str, Any]) -> Any:
        result = await service.pay(_channel_id(params["channel"]), params["amount_msat"])
        return {"paid_msat": result.paid_msat, "sequence": result.sequence}

    async def micro_settle(params: dict[str, Any]) -> Any:
        txid = await service.settle(_channel_id(params["channel"]))
        return {"txid": txid[::-1].hex()}

    async def micro_refund(params: dict[str, Any]) -> Any:
        txid = await service.refund(_channel_id(params["channel"]))
        return {"txid": txid[::-1].hex()}

    async def micro_list(_params: dict[str, Any]) -> Any:
        return {"channels": [info.to_json() for info in service.list_channels()]}

    return {
        "micro_open": micro_open,
        "micro_pay": micro_pay,
        "micro_settle": micro_settle,
        "micro_refund": micro_refund,
        "micro_list": micro_list,
    }


def _broadcast_error(exc: Exception) -> RpcError:
    assert isinstance(exc, MicroBroadcastError)
    data = {"reason": exc.reason.value, "detail": exc.detail, "txid": exc.txid[::-1].hex()}
    return RpcError(ErrorCode.MICRO_CHAIN_REFUSED, str(exc), data)


register_error(MicroPeerError, lambda exc: RpcError(ErrorCode.PEER_ERROR, str(exc)))
register_error(MicroCommandError, lambda exc: RpcError(ErrorCode.CHANNEL_REFUSED, str(exc)))
register_error(MicroBroadcastError, _broadcast_error)
