"""Handlers of the two-way channel methods: `openchannel`, `listchannels`, `closechannel`.

Replies follow the contracts: `listchannels` balances are before the commitment fee and anchors, so
local + remote + pending HTLCs = capacity × 1000; `short_channel_id` is "HxTxO" or null.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ampere.api.errors import ErrorCode, RpcError, register_error
from ampere.api.registry import Handler, MethodRegistry
from ampere.node.channel_chain import format_short_channel_id
from ampere.node.channel_commands import CHANNEL_METHODS
from ampere.node.channel_open import ChannelCommandError, OpenChannelError, PeerNotConnectedError
from ampere.node.channel_service import ChannelListing, ChannelService
from ampere.node.errors import InvalidArgumentError
from ampere.node.peer_address import parse_node_id
from ampere.node.peer_protocol import PeerError

__all__ = ["listing_json", "register_channel_methods"]


def register_channel_methods(registry: MethodRegistry, service: ChannelService) -> None:
    handlers = _handlers(service)
    for spec in CHANNEL_METHODS:
        registry.register(spec, handlers[spec.name])


def listing_json(listing: ChannelListing) -> dict[str, Any]:
    summary = listing.summary
    scid = summary.short_channel_id
    return {
        "channel_id": summary.channel_id.hex(),
        "short_channel_id": None if scid is None else format_short_channel_id(scid),
        "peer_id": listing.peer_id.hex(),
        "state": summary.status,
        "channel_type": summary.channel_type,
        "funding_outpoint": summary.funding_outpoint,
        "capacity_sat": summary.capacity_sat,
        "local_balance_msat": summary.local_balance_msat,
        "remote_balance_msat": summary.remote_balance_msat,
        "pending_htlcs": [
            {
                "id": htlc.htlc_id,
                "direction": htlc.direction,
                "amount_msat": htlc.amount_msat,
                "payment_hash": htlc.payment_hash.hex(),
                "cltv_expiry": htlc.cltv_expiry,
            }
            for htlc in summary.pending_htlcs
        ],
    }


def _handlers(service: ChannelService) -> Mapping[str, Handler]:
    async def openchannel(params: dict[str, Any]) -> Any:
        try:
            node_id = parse_node_id(params["node_id"])
        except PeerError as exc:
            raise InvalidArgumentError("node_id", str(exc)) from None
        push = params["push_msat"] or 0
        result = await service.open_channel(node_id, params["amount"], push, anchors=bool(params["anchors"]))
        return {"channel_id": result.channel_id.hex(), "funding_txid": result.funding_txid[::-1].hex()}

    async def listchannels(_params: dict[str, Any]) -> Any:
        return {"channels": [listing_json(listing) for listing in service.list_channels()]}

    async def closechannel(params: dict[str, Any]) -> Any:
        if params.get("force"):
            forced = await service.onchain.force_close(params["channel"])
            txid = forced.closing_txid[::-1].hex()
            return {"channel_id": forced.channel_id.hex(), "closing_txid": txid, "type": "unilateral"}
        result = await service.close_channel(params["channel"])
        return {
            "channel_id": result.channel_id.hex(),
            "closing_txid": result.closing_txid[::-1].hex(),
            "type": "mutual",
        }

    return {"openchannel": openchannel, "listchannels": listchannels, "closechannel": closechannel}


def _with_code(code: ErrorCode) -> Any:
    def convert(exc: Exception) -> RpcError:
        return RpcError(code, str(exc))

    return convert


register_error(PeerNotConnectedError, _with_code(ErrorCode.PEER_ERROR))
register_error(OpenChannelError, _with_code(ErrorCode.CHANNEL_REFUSED))
register_error(ChannelCommandError, _with_code(ErrorCode.CHANNEL_REFUSED))
