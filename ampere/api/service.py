"""The running daemon: a started `Node` behind the RPC server, until a signal or `stop`.

Start order: node (wallet rescan, peers), then the RPC server (TCP, then the Unix socket), then
`rpc.json`, so that a client finding `rpc.json` finds a node ready to answer. Stop order is the
reverse, and `rpc.json` goes first so that nobody is sent to a closing port.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from ampere.api.backup_methods import register_backup_methods
from ampere.api.channel_methods import register_channel_methods
from ampere.api.dev_methods import register_dev_methods
from ampere.api.jsonrpc import JsonRpcProcessor
from ampere.api.micro_methods import register_micro_methods
from ampere.api.node_methods import register_node_methods
from ampere.api.onchain_methods import register_onchain_methods
from ampere.api.payment_methods import register_payment_methods
from ampere.api.registry import MethodRegistry
from ampere.api.server import RpcServer
from ampere.node.backup_service import BackupService, backup_service_of
from ampere.node.bootstrap import Prepared
from ampere.node.channel_service import ChannelService, channel_service_of
from ampere.node.config import NodeConfig
from ampere.node.micro_service import MicroService, micro_service_of
from ampere.node.node import Node
from ampere.node.payment_onion_sphinx import SphinxOnion
from ampere.node.payments import PaymentService, payment_service_of

__all__ = ["build_registry", "serve"]

log = logging.getLogger(__name__)


def build_registry(node: Node) -> MethodRegistry:
    """Every method the node serves; the channel issues register theirs here too."""
    registry = MethodRegistry()
    register_node_methods(registry, node)
    channels = channel_service_of(node)
    if channels is not None:
        register_channel_methods(registry, channels)
        register_onchain_methods(registry, channels.onchain)
        if node.config.developer:
            register_dev_methods(registry, channels)
    payments = payment_service_of(node)
    if payments is not None:
        register_payment_methods(registry, payments)
    micro = micro_service_of(node)
    if micro is not None:
        register_micro_methods(registry, micro)
    backups = backup_service_of(node)
    if backups is not None:
        register_backup_methods(registry, backups)
    return registry


async def serve(config: NodeConfig, prepared: Prepared) -> int:
    node = await Node.open(config, prepared.keys, fresh_seed=prepared.fresh_seed)
    node.add_service(ChannelService())
    node.add_service(PaymentService(SphinxOnion()))
    node.add_service(MicroService())
    node.add_service(BackupService())  # after the channel service, whose channels it backs up
    server: RpcServer | None = None
    try:
        await node.start()
        server = RpcServer(JsonRpcProcessor(build_registry(node)), prepared.tokens)
        url = await server.listen_tcp(config.rpc_host, config.rpc_port)
        socket_path = await server.listen_unix(config.datadir.rpc_socket)
        config.datadir.write_rpc_info(url, socket_path)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, node.request_stop)
        log.info("ampere node %s ready (RPC %s)", node.node_id.hex(), url)
        await node.stop_requested.wait()
        log.info("shutting down")
    finally:
        config.datadir.clear_rpc_info()
        if server is not None:
            await server.close()
        await node.close()
    return 0
