"""Handlers of the core node methods: each turns validated params into a node call and its JSON reply.

Replies follow the contracts: money as integer `*_sat`, hex lowercase, lists wrapped in an object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ampere.api.registry import Handler, MethodRegistry
from ampere.node.commands import NODE_METHODS
from ampere.node.node import DEFAULT_PONG_BYTES, Node

__all__ = ["register_node_methods"]


def register_node_methods(registry: MethodRegistry, node: Node) -> None:
    handlers = _handlers(node)
    for spec in NODE_METHODS:
        registry.register(spec, handlers[spec.name])


def _handlers(node: Node) -> Mapping[str, Handler]:
    async def getinfo(_params: dict[str, Any]) -> Any:
        info = node.info()
        return {
            "id": info.node_id.hex(),
            "network": info.network.value,
            "blockheight": info.blockheight,
            "listen": list(info.listen),
            "num_peers": info.num_peers,
            "num_channels": info.num_channels,
            "version": info.version,
        }

    async def newaddress(_params: dict[str, Any]) -> Any:
        return {"address": node.new_address()}

    async def listfunds(_params: dict[str, Any]) -> Any:
        return {
            "outputs": [
                {
                    "txid": output.outpoint.txid_hex,
                    "vout": output.outpoint.vout,
                    "amount_sat": output.amount_sat,
                    "address": output.address,
                    "status": "unconfirmed" if output.blockheight is None else "confirmed",
                    "blockheight": output.blockheight,
                    "immature": output.immature,
                }
                for output in node.list_funds()
            ]
        }

    async def withdraw(params: dict[str, Any]) -> Any:
        amount = params["amount"]
        result = await node.withdraw(
            params["address"], None if amount == "all" else amount, params["feerate"]
        )
        return {"txid": result.tx.txid_hex, "fee_sat": result.fee_sat}

    async def connect(params: dict[str, Any]) -> Any:
        return (await node.connect(params["peer"])).to_json()

    async def listpeers(_params: dict[str, Any]) -> Any:
        return {"peers": [peer.to_json() for peer in node.list_peers()]}

    async def disconnect(params: dict[str, Any]) -> Any:
        await node.disconnect(params["node_id"])
        return {}

    async def ping(params: dict[str, Any]) -> Any:
        length = DEFAULT_PONG_BYTES if params["len"] is None else params["len"]
        round_trip = await node.ping(params["node_id"], length)
        return {"totlen": length, "round_trip_us": round(round_trip * 1_000_000)}

    async def stop(_params: dict[str, Any]) -> Any:
        node.request_stop()
        return {"message": "ampere node stopping"}

    async def generate(params: dict[str, Any]) -> Any:
        hashes = await node.generate(params["count"], params["address"])
        return {
            "blocks": [block_hash[::-1].hex() for block_hash in hashes],
            "blockheight": node.info().blockheight,
        }

    return {
        "getinfo": getinfo,
        "newaddress": newaddress,
        "listfunds": listfunds,
        "withdraw": withdraw,
        "connect": connect,
        "listpeers": listpeers,
        "disconnect": disconnect,
        "ping": ping,
        "stop": stop,
        "generate": generate,
    }
