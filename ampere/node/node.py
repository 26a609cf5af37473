"""The node core: chain backend, chain follower, wallet, store, peers and channel registry, composed.

`Node.open(config, keys)` builds every part, `start()` rescans the wallet, listens for peers and
reconnects to the persistent ones, and `close()` takes it all down in reverse order. The RPC layer
(`ampere.api`) drives the node through its public methods and never reaches into the parts.

Extension points for the channel issues: `NodeService` objects added with `add_service` start after
the core and stop before it (they register peer message handlers and chain listeners in `start`);
channels go into `node.channels` (a `ChannelRegistry`), which is what `getinfo` counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ampere import __version__
from ampere.bitcoin.network import Network
from ampere.chain.bitcoind import BitcoindChain
from ampere.chain.errors import ChainError, ChainUnavailableError
from ampere.chain.interface import ChainBackend
from ampere.node.chain_follow import ChainFollower
from ampere.node.channels import ChannelRegistry
from ampere.node.config import ChainKind, NodeConfig
from ampere.node.errors import InvalidArgumentError, NodeError, NotFoundError, NotSupportedError
from ampere.node.keys import NodeKeys
from ampere.node.onchain_wallet import FundsOutput, NodeWallet, WithdrawResult, birth_height, set_birth_height
from ampere.node.peer_address import format_host_port, parse_host_port, parse_node_id
from ampere.node.peer_manager import PeerConnected, PeerEvent, PeerManager, PeerManagerConfig, PeerRecord
from ampere.node.peer_protocol import PeerError
from ampere.store import Store, open_store
from ampere.store.repositories import PeerRecord as StoredPeer
from ampere.store.repositories import PeerRepository
from ampere.wallet.wallet import Wallet

__all__ = ["ChainConnection", "Node", "NodeInfo", "NodeService"]

log = logging.getLogger(__name__)

_CHAIN_STARTUP_TIMEOUT = 30.0
MAX_GENERATE = 10_000
DEFAULT_PONG_BYTES = 128


class NodeService(Protocol):
    """A part added on top of the core (micropayments, channels): started last, stopped first."""

    async def start(self, node: Node) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node_id: bytes
    network: Network
    blockheight: int
    listen: tuple[str, ...]
    num_peers: int
    num_channels: int
    version: str


class ChainConnection:
    """The chain backend, and on regtest the means to mine on it."""

    def __init__(
        self, backend: ChainBackend, network: Network, *, close: Callable[[], Awaitable[None]]
    ) -> None:
        self.backend = backend
        self.network = network
        self._close = close

    @classmethod
    async def open(cls, config: NodeConfig) -> ChainConnection:
        if config.chain is ChainKind.EMBEDDED:
            # Imported here: loading libbitcoinkernel is only worth it when the chain is ours.
            from ampere.chain.embedded import EmbeddedChain, EmbeddedChainBackend

            chain = EmbeddedChain(config.datadir.chain_dir)

            async def close_embedded() -> None:
                chain.close()

            return cls(EmbeddedChainBackend(chain), config.network, close=close_embedded)
        assert config.bitcoind_rpc is not None and config.bitcoind_cookie is not None
        client = BitcoindChain.with_cookie(config.bitcoind_rpc, config.bitcoind_cookie)
        try:
            await _check_network(client, config.network)
        except BaseException:
            await client.close()
            raise
        return cls(client, config.network, close=client.close)

    async def generate(self, count: int, script_pubkey: bytes, address: str) -> list[bytes]:
        if self.network is not Network.REGTEST:
            raise NotSupportedError("generate works on regtest only")
        backend = self.backend
        if isinstance(backend, BitcoindChain):
            return await backend.generate_to_address(count, address)
        generate = getattr(backend, "generate", None)
        if generate is None:
            raise NotSupportedError("this chain backend cannot mine")
        hashes: list[bytes] = await generate(count, script_pubkey)
        return hashes

    async def close(self) -> None:
        await self._close()


async def _check_network(client: BitcoindChain, network: Network) -> None:
    """Wait for bitcoind to answer, then make sure it follows our network."""
    deadline = time.monotonic() + _CHAIN_STARTUP_TIMEOUT
    while True:
        try:
            genesis = await client.block_hash(0)
            break
        except ChainUnavailableError as exc:
            if time.monotonic() >= deadline:
                raise
            log.info("waiting for bitcoind: %s", exc)
            await asyncio.sleep(0.5)
    if genesis != network.genesis_hash:
        raise ChainError(
            f"bitcoind at {client.url} is not on {network.value} (genesis {genesis[::-1].hex()})"
        )


class Node:
    def __init__(
        self,
        config: NodeConfig,
        keys: NodeKeys,
        store: Store,
        chain: ChainConnection,
        wallet_birth_height: int,
        peer_config: PeerManagerConfig | None = None,
    ) -> None:
        self.config = config
        self.keys = keys
        self.network = config.network
        self.store = store
        self.chain = chain
        self.channels = ChannelRegistry()
        self.wallet = NodeWallet(
            Wallet(keys.wallet_master, config.network, wallet_birth_height),
            store,
            chain.backend,
            config.network,
        )
        self.follower = ChainFollower(chain.backend, wallet_birth_height, poll_interval=config.poll_interval)
        self.follower.add_listener(self.wallet)
        self.peers = PeerManager(keys.node_key, config.network, peer_config)
        self.peers.subscribe(self._on_peer_event)
        self._peer_store = PeerRepository(store)
        self._services: list[NodeService] = []
        self._started_services: list[NodeService] = []
        self._listen: list[tuple[str, int]] = []
        self._follow_task: asyncio.Task[None] | None = None
        self.stop_requested = asyncio.Event()
        self._closed = False

    @classmethod
    async def open(cls, config: NodeConfig, keys: NodeKeys, *, fresh_seed: bool = False) -> Node:
        """Open the store and the chain. `fresh_seed`: the seed was made just now, so the wallet's history
        starts at the current tip; otherwise (a restore, a new database) it is scanned from genesis."""
        store = open_store(config.db_url)
        try:
            chain = await ChainConnection.open(config)
        except BaseException:
            store.close()
            raise
        try:
            birth = birth_height(store)
            if birth is None:
                birth = await chain.backend.tip_height() if fresh_seed else 0
                set_birth_height(store, birth)
                log.info("wallet birth height %d", birth)
            peer_config = PeerManagerConfig(report_private_remote_addr=config.network is Network.REGTEST)
            return cls(config, keys, store, chain, birth, peer_config)
        except BaseException:
            await chain.close()
            store.close()
            raise

    @property
    def node_id(self) -> bytes:
        return self.keys.node_id

    def add_service(self, service: NodeService) -> None:
        self._services.append(service)

    @property
    def services(self) -> tuple[NodeService, ...]:
        return tuple(self._services)

    # --- lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        started = time.monotonic()
        await self.follower.sync(mempool=True)
        log.info("wallet synced to height %d in %.2f s", self.follower.height, time.monotonic() - started)
        host, port = self.config.listen
        self._listen.append(await self.peers.listen(host, port))
        self._reconnect_stored_peers()
        self._follow_task = asyncio.create_task(self.follower.run(), name="chain-follower")
        for service in self._services:
            await service.start(self)
            self._started_services.append(service)
        log.info("node %s started on %s", self.node_id.hex(), self.network.value)

    def request_stop(self) -> None:
        self.stop_requested.set()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for service in reversed(self._started_services):
            try:
                await service.stop()
            except Exception:
                log.exception("service %s failed to stop", type(service).__name__)
        if self._follow_task is not None:
            self._follow_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow_task
        await self.peers.close()
        try:
            await self.chain.close()
        finally:
            self.store.close()
        log.info("node stopped")

    # --- queries -----------------------------------------------------------------------------------------
    def info(self) -> NodeInfo:
        return NodeInfo(
            node_id=self.node_id,
            network=self.network,
            blockheight=self.follower.height,
            listen=tuple(format_host_port(host, port) for host, port in self._listen),
            num_peers=sum(1 for peer in self.peers.list_peers() if peer.connected),
            num_channels=self.channels.num_active,
            version=__version__,
        )

    def new_address(self) -> str:
        return self.wallet.new_address()

    def list_funds(self) -> list[FundsOutput]:
        return self.wallet.list_funds()

    async def withdraw(
        self, address: str, amount_sat: int | None, feerate_sat_per_vb: int | None = None
    ) -> WithdrawResult:
        return await self.wallet.withdraw(address, amount_sat, feerate_sat_per_vb, self.follower.height)

    async def generate(self, count: int, address: str | None = None) -> list[bytes]:
        """Mine `count` blocks on regtest (to a new wallet address by default) and wait for the wallet."""
        if not 1 <= count <= MAX_GENERATE:
            raise InvalidArgumentError("count", f"must be 1..{MAX_GENERATE}")
        if address is None:
            address = self.wallet.new_address()
        script_pubkey = self.wallet.parse_address(address)
        hashes = await self.chain.generate(count, script_pubkey, address)
        await self.follower.sync(mempool=True)
        return hashes

    # --- peers -------------------------------------------------------------------------------------------
    async def connect(self, target: str) -> PeerRecord:
        """Connect to `NODEID@HOST[:PORT]` and remember it as a persistent peer."""
        node_hex, sep, address = target.strip().partition("@")
        if not sep:
            raise InvalidArgumentError("peer", "expected NODEID@HOST:PORT")
        try:
            node_id = parse_node_id(node_hex)
            host, port = parse_host_port(address)
        except PeerError as exc:
            raise InvalidArgumentError("peer", str(exc)) from None
        if node_id == self.node_id:
            raise InvalidArgumentError("peer", "that is this node's own id")
        # Persistent only once it worked: a mistyped address must not be redialed forever.
        record = await self.peers.connect(node_id, host, port)
        features = b"" if record.features is None else record.features.to_bytes()
        self._peer_store.put(StoredPeer(node_id, format_host_port(host, port), features))
        self.peers.set_persistent(node_id, True, address=(host, port))
        return self.peers.peer(node_id) or record

    def list_peers(self) -> list[PeerRecord]:
        return self.peers.list_peers()

    async def disconnect(self, node_hex: str) -> None:
        """Close the connection and forget the peer, so that it is not redialed."""
        node_id = _node_id_param(node_hex)
        known = self.peers.peer(node_id) is not None or self._peer_store.get(node_id) is not None
        if not known:
            raise NotFoundError(f"unknown peer {node_id.hex()}")
        if self.channels.for_peer(node_id):
            raise NodeError("the peer has channels with us; it stays connected")
        self._peer_store.delete(node_id)
        self.peers.set_persistent(node_id, False)
        if self.peers.is_connected(node_id):
            await self.peers.disconnect(node_id)

    async def ping(self, node_hex: str, pong_bytes: int = DEFAULT_PONG_BYTES) -> float:
        """Round trip of a ping to a connected peer, in seconds."""
        node_id = _node_id_param(node_hex)
        if not self.peers.is_connected(node_id):
            raise NotFoundError(f"not connected to {node_id.hex()}")
        round_trip = await self.peers.ping(node_id, pong_bytes)
        assert round_trip is not None  # pong_bytes below the "no pong" threshold
        return round_trip

    def _reconnect_stored_peers(self) -> None:
        for stored in self._peer_store.list_all():
            try:
                address = parse_host_port(stored.address)
            except PeerError:
                log.warning("stored peer %s has an unusable address %r", stored.node_id.hex(), stored.address)
                continue
            log.info("reconnecting to %s at %s", stored.node_id.hex(), stored.address)
            self.peers.set_persistent(stored.node_id, True, address=address)

    async def _on_peer_event(self, event: PeerEvent) -> None:
        if not isinstance(event, PeerConnected):
            return
        stored = self._peer_store.get(event.node_id)
        features = event.features.to_bytes()
        if stored is not None and stored.features != features:
            self._peer_store.put(StoredPeer(stored.node_id, stored.address, features))


def _node_id_param(node_hex: str) -> bytes:
    try:
        return parse_node_id(node_hex)
    except PeerError as exc:
        raise InvalidArgumentError("node_id", str(exc)) from None
