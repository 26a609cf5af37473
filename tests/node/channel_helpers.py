"""Nodes with two-way channels on one embedded chain, for tests that close channels on chain.

`Member` is a node (real TCP, SQLite in its datadir) with the channel service and, when asked, the
payment service; it restarts from its datadir. `HoldingListener` settles only the HTLCs whose preimage
the test gave it and holds the rest (so that they are still pending when a channel goes to chain).
Blocks are mined to a script no wallet owns, so each wallet holds exactly what the test put there.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ampere.bitcoin.bip32 import ExtendedPrivateKey
from ampere.bitcoin.network import Network
from ampere.bitcoin.tx import OutPoint
from ampere.chain.embedded import EmbeddedChain, EmbeddedChainBackend
from ampere.channel.twoway import ChannelConfig, HtlcFailed, HtlcFulfilled, HtlcReceived
from ampere.node.channel_managed import ManagedChannel
from ampere.node.channel_service import ChannelService
from ampere.node.config import NodeConfig
from ampere.node.datadir import DataDir
from ampere.node.keys import NodeKeys
from ampere.node.node import ChainConnection, Node
from ampere.node.payment_onion_sphinx import SphinxOnion
from ampere.node.payments import PaymentService
from ampere.store import open_store
from ampere.wire import Features, Message, UnknownMessage
from tests.chain.helpers import SINK_SCRIPT

from .helpers import fast_config

WAIT = 30.0
ONION = bytes(1366)


async def _no_close() -> None:
    return None


async def wait_until(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class HoldingListener:
    """An `HtlcListener` that fulfils the HTLCs whose preimage it knows and holds the others."""

    service: ChannelService
    preimages: dict[bytes, bytes] = field(default_factory=dict)
    received: dict[tuple[bytes, int], HtlcReceived] = field(default_factory=dict)
    fulfilled: dict[bytes, HtlcFulfilled] = field(default_factory=dict)
    failed: list[HtlcFailed] = field(default_factory=list)

    def htlc_arriving(self, channel_id: bytes, htlc_id: int, payment_hash: bytes, onion: bytes) -> None:
        return None

    async def htlc_received(self, channel_id: bytes, htlc: HtlcReceived) -> None:
        key = (channel_id, htlc.htlc_id)
        if key in self.received:
            return
        self.received[key] = htlc
        preimage = self.preimages.get(htlc.payment_hash)
        if preimage is not None:
            await self.service.fulfill_htlc(channel_id, htlc.htlc_id, preimage)

    async def htlc_fulfilled(self, channel_id: bytes, outcome: HtlcFulfilled) -> None:
        self.fulfilled[outcome.payment_hash] = outcome

    async def htlc_failed(self, channel_id: bytes, outcome: HtlcFailed) -> None:
        self.failed.append(outcome)


class Member:
    """A node restartable from its datadir; `payments` adds the payment service."""

    def __init__(
        self,
        name: str,
        root: Path,
        chain: EmbeddedChain,
        config: ChannelConfig | None = None,
        *,
        payments: bool = False,
    ) -> None:
        self.name = name
        self.chain = chain
        self.config = config
        self.with_payments = payments
        self.datadir = DataDir(root / name)
        self.datadir.root.mkdir(parents=True, exist_ok=True)
        seed = hashlib.sha256(name.encode()).digest()
        self.keys = NodeKeys(ExtendedPrivateKey.from_seed(seed), Network.REGTEST)
        self.node: Node | None = None
        self.channels = ChannelService(config)
        self.payments: PaymentService | None = None
        self.listener = HoldingListener(self.channels)
        # Called with each new node before it starts (e.g. to watch what it sends from the first message).
        self.before_start: Callable[[Node], None] | None = None
        self.features: Features | None = None  # the init features to advertise, if not the default

    async def start(self) -> Node:
        config = NodeConfig(datadir=self.datadir, listen=("127.0.0.1", 0), poll_interval=0.05)
        connection = ChainConnection(EmbeddedChainBackend(self.chain), Network.REGTEST, close=_no_close)
        peer_config = fast_config() if self.features is None else fast_config(features=self.features)
        node = Node(config, self.keys, open_store(config.db_url), connection, 0, peer_config)
        self.channels = ChannelService(self.config)
        node.add_service(self.channels)
        if self.with_payments:
            self.payments = PaymentService(SphinxOnion(), pay_timeout=1.0)
            node.add_service(self.payments)
        if self.before_start is not None:
            self.before_start(node)
        await node.start()
        if not self.with_payments:
            self.listener = HoldingListener(self.channels, self.listener.preimages)
            self.channels.add_htlc_listener(self.listener)
        self.node = node
        return node

    async def stop(self) -> None:
        if self.node is not None:
            await self.node.close()
            self.node = None

    @property
    def running(self) -> Node:
        assert self.node is not None, f"{self.name} is not running"
        return self.node

    @property
    def port(self) -> int:
        return int(self.running.info().listen[0].rsplit(":", 1)[1])

    def channel(self, channel_id: bytes) -> ManagedChannel:
        return self.channels.find(channel_id.hex())

    def wallet_coins(self) -> dict[OutPoint, int]:
        """Confirmed wallet coins."""
        return {
            funds.outpoint: funds.amount_sat
            for funds in self.running.list_funds()
            if funds.blockheight is not None
        }


async def mine(chain: EmbeddedChain, count: int, *members: Member) -> int:
    """Mine `count` blocks to a script no wallet owns; wait until every running member handled them."""
    chain.generate(count, SINK_SCRIPT)
    return await followed(chain, *members)


async def followed(chain: EmbeddedChain, *members: Member) -> int:
    tip = chain.tip_height()
    for member in members:
        if member.node is not None:
            node = member.node
            await wait_until(lambda node=node: node.follower.height >= tip, f"{member.name} to follow")  # type: ignore[misc]
    return tip


async def mine_to(chain: EmbeddedChain, height: int, *members: Member) -> int:
    """Mine one block at a time (so that every claim goes out at the first height it may)."""
    while chain.tip_height() < height:
        await mine(chain, 1, *members)
    return chain.tip_height()


async def open_channel(alice: Member, bob: Member, capacity_sat: int, push_msat: int) -> bytes:
    """Alice (funded with 101 blocks of her own) opens to Bob; returns once both see it normal."""
    alice_node, bob_node = alice.running, bob.running
    await alice_node.generate(101)
    await followed(alice.chain, bob)
    await alice_node.connect(f"{bob_node.node_id.hex()}@127.0.0.1:{bob.port}")
    opened = await alice.channels.open_channel(bob_node.node_id, capacity_sat, push_msat)
    await wait_until(lambda: bob.channels.list_channels(), "bob to see the channel")
    await mine(alice.chain, 3, alice, bob)
    await wait_until(
        lambda: alice.channels.usable_channels() and bob.channels.usable_channels(), "a usable channel"
    )
    return opened.channel_id


def preimage(n: int) -> bytes:
    return hashlib.sha256(b"onchain test preimage" + n.to_bytes(4, "big")).digest()


async def offer(sender: Member, channel_id: bytes, amount_msat: int, n: int, cltv: int) -> int:
    """An HTLC from `sender` for `preimage(n)`; the receiver fulfils it only if it was told the preimage."""
    payment_hash = hashlib.sha256(preimage(n)).digest()
    return await sender.channels.add_htlc(channel_id, amount_msat, payment_hash, cltv, ONION)


class SentMessages:
    """The messages named `names` a member's nodes send, in order, across restarts."""

    def __init__(self, member: Member, names: frozenset[str]) -> None:
        self.names = names
        self.sent: list[Message | UnknownMessage] = []
        member.before_start = self._watch

    @property
    def sent_names(self) -> list[str]:
        return [message.name for message in self.sent]

    def _watch(self, node: Node) -> None:
        send = node.peers.send

        async def recording(node_id: bytes, message: Message | UnknownMessage) -> None:
            await send(node_id, message)
            if message.name in self.names:
                self.sent.append(message)

        node.peers.send = recording  # type: ignore[method-assign]


@asynccontextmanager
async def unstarted_pair(
    tmp_path: Path, features: Features | None = None
) -> AsyncIterator[tuple[EmbeddedChain, Member, Member]]:
    """Alice and Bob on a new chain, not started yet (a test attaches recorders first); `features`
    replaces both nodes' init features."""
    chain = EmbeddedChain(tmp_path / "chain")
    alice = Member("alice", tmp_path, chain)
    bob = Member("bob", tmp_path, chain)
    if features is not None:
        alice.features = bob.features = features
    try:
        yield chain, alice, bob
    finally:
        await alice.stop()
        await bob.stop()
        chain.close()
