"""`ChannelService` in two in-process nodes on one embedded chain, over real TCP and SQLite.

Alice opens to Bob, both confirm, HTLCs flow both ways at once through `ChannelOperations`, Alice
restarts from her datadir and the channel reestablishes, and a mutual close pays each side its balance
less the closing fee. Balances are checked against the capacity at every look.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from ampere.bitcoin.bip32 import ExtendedPrivateKey
from ampere.bitcoin.network import Network
from ampere.chain.embedded import EmbeddedChain, EmbeddedChainBackend
from ampere.channel.twoway import ChannelConfig
from ampere.node.channel_open import OpenChannelError, PeerNotConnectedError
from ampere.node.channel_service import ChannelListing, ChannelService
from ampere.node.config import NodeConfig
from ampere.node.datadir import DataDir
from ampere.node.keys import NodeKeys
from ampere.node.node import ChainConnection, Node
from ampere.store import open_store
from ampere.wire import make_message

from .channel_helpers import HoldingListener
from .helpers import ScriptedPeer, async_test, fast_config

ONION = bytes(1366)
WAIT = 20.0


async def _no_close() -> None:
    return None


class NodeUnderTest:
    def __init__(
        self, name: str, root: Path, chain: EmbeddedChain, config: ChannelConfig | None = None
    ) -> None:
        self.name = name
        self.config = config
        self.datadir = DataDir(root / name)
        self.datadir.root.mkdir(parents=True, exist_ok=True)
        seed = hashlib.sha256(name.encode()).digest()
        self.keys = NodeKeys(ExtendedPrivateKey.from_seed(seed), Network.REGTEST)
        self.chain = chain
        self.node: Node | None = None
        self.service = ChannelService()
        self.recorder = HoldingListener(self.service)

    async def start(self) -> Node:
        config = NodeConfig(datadir=self.datadir, listen=("127.0.0.1", 0), poll_interval=0.05)
        store = open_store(config.db_url)
        connection = ChainConnection(EmbeddedChainBackend(self.chain), Network.REGTEST, close=_no_close)
        self.service = ChannelService(self.config)
        preimages = self.recorder.preimages
        self.recorder = HoldingListener(self.service, preimages)
        node = Node(config, self.keys, store, connection, 0, fast_config())
        node.add_service(self.service)
        await node.start()
        self.service.add_htlc_listener(self.recorder)
        self.node = node
        return node

    async def stop(self) -> None:
        if self.node is not None:
            await self.node.close()
            self.node = None

    @property
    def port(self) -> int:
        assert self.node is not None
        return int(self.node.info().listen[0].rsplit(":", 1)[1])

    def listing(self) -> ChannelListing:
        [listing] = self.service.list_channels()
        return listing


def check_conservation(listing: ChannelListing) -> None:
    summary = listing.summary
    pending = sum(htlc.amount_msat for htlc in summary.pending_htlcs)
    assert summary.local_balance_msat + summary.remote_balance_msat + pending == summary.capacity_sat * 1000


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def two_nodes(
    tmp_path: Path, bob_config: ChannelConfig | None = None
) -> AsyncIterator[tuple[NodeUnderTest, NodeUnderTest]]:
    chain = EmbeddedChain(tmp_path / "chain")
    alice, bob = NodeUnderTest("alice", tmp_path, chain), NodeUnderTest("bob", tmp_path, chain, bob_config)
    try:
        await alice.start()
        await bob.start()
        yield alice, bob
    finally:
        await alice.stop()
        await bob.stop()
        chain.close()


async def mine(miner: NodeUnderTest, count: int, *others: NodeUnderTest) -> None:
    assert miner.node is not None
    await miner.node.generate(count)
    height = miner.node.follower.height
    for other in others:
        assert other.node is not None
        node = other.node
        await wait_until(lambda node=node: node.follower.height >= height, "the other node to follow")  # type: ignore[misc]


def preimage(n: int) -> bytes:
    return hashlib.sha256(b"test preimage" + n.to_bytes(4, "big")).digest()


async def pay(
    sender: NodeUnderTest, receiver: NodeUnderTest, channel_id: bytes, amount_msat: int, n: int
) -> int:
    secret = preimage(n)
    payment_hash = hashlib.sha256(secret).digest()
    receiver.recorder.preimages[payment_hash] = secret
    assert sender.node is not None
    cltv = sender.node.follower.height + 40
    return await sender.service.add_htlc(channel_id, amount_msat, payment_hash, cltv, ONION)


@async_test
async def test_open_pay_restart_close(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (alice, bob):
        assert alice.node is not None and bob.node is not None
        await mine(alice, 101, bob)
        await alice.node.connect(f"{bob.node.node_id.hex()}@127.0.0.1:{bob.port}")

        opened = await alice.service.open_channel(bob.node.node_id, 500_000, push_msat=100_000_000)
        assert alice.listing().summary.status == "opening"
        await wait_until(lambda: bool(bob.service.list_channels()), "bob to see the channel")
        await mine(alice, 3, bob)
        await wait_until(
            lambda: alice.listing().summary.status == "normal" and bob.listing().summary.status == "normal",
            "the channel to be normal on both sides",
        )
        channel_id = opened.channel_id
        summary = alice.listing().summary
        assert summary.channel_id == channel_id == bob.listing().summary.channel_id
        assert summary.local_balance_msat == 400_000_000 and summary.remote_balance_msat == 100_000_000
        assert summary.short_channel_id is not None
        assert alice.node.info().num_channels == 1
        check_conservation(alice.listing())

        # 200 payments at once, 150 one way and 50 the other, through ChannelOperations.
        transactions_before = alice.service.committer.transactions
        states_before = alice.service.committer.states_written
        forward = [pay(alice, bob, channel_id, 1_000_000 + i, i) for i in range(150)]
        backward = [pay(bob, alice, channel_id, 500_000 + i, 1000 + i) for i in range(50)]
        ids = await asyncio.gather(*forward, *backward)
        assert sorted(ids[:150]) == list(range(150)) and sorted(ids[150:]) == list(range(50))
        check_conservation(alice.listing())
        check_conservation(bob.listing())
        await wait_until(
            lambda: len(alice.recorder.fulfilled) == 150 and len(bob.recorder.fulfilled) == 50,
            "every HTLC to be fulfilled",
        )
        await wait_until(
            lambda: not alice.listing().summary.pending_htlcs and not bob.listing().summary.pending_htlcs,
            "the HTLCs to be settled",
        )
        moved = sum(1_000_000 + i for i in range(150)) - sum(500_000 + i for i in range(50))
        assert alice.listing().summary.local_balance_msat == 400_000_000 - moved
        assert bob.listing().summary.local_balance_msat == 100_000_000 + moved
        check_conservation(alice.listing())
        # Batching: the 200 adds (and as many fulfills) coalesce into far fewer durable states, each
        # written in one store transaction (one channel here, so one state per transaction).
        transactions = alice.service.committer.transactions - transactions_before
        states = alice.service.committer.states_written - states_before
        assert 0 < transactions <= states < 200

        # Restart Alice from her datadir: the channel comes back and reestablishes.
        await alice.stop()
        await wait_until(lambda: not bob.node.peers.is_connected(alice.keys.node_id), "bob to notice")  # type: ignore[union-attr]
        await alice.start()
        assert alice.node is not None
        await wait_until(
            lambda: bool(alice.service.usable_channels()) and bool(bob.service.usable_channels()),
            "the channel to be usable again after the restart",
        )
        assert alice.listing().summary.local_balance_msat == 400_000_000 - moved
        await asyncio.gather(*(pay(alice, bob, channel_id, 2_000_000, 5000 + i) for i in range(5)))
        await wait_until(lambda: len(alice.recorder.fulfilled) == 5, "payments after the restart")
        await wait_until(lambda: not alice.listing().summary.pending_htlcs, "settlement after the restart")
        final_local = alice.listing().summary.local_balance_msat
        assert final_local == 400_000_000 - moved - 10_000_000
        final_remote = alice.listing().summary.remote_balance_msat

        # Mutual close: outputs are the balances less the closing fee (paid by the opener).
        closed = await alice.service.close_channel(channel_id.hex())
        assert alice.listing().summary.status == "closing"
        closing_tx = alice.chain.mempool_tx(closed.closing_txid)
        assert closing_tx is not None
        values = sorted(out.value for out in closing_tx.outputs)
        assert final_remote // 1000 in values
        fee = 500_000 - sum(values)
        assert 0 < fee < 10_000
        # Outputs are whole satoshis: the msat fractions truncated from both balances go to the fee too.
        truncated = 500_000 - final_local // 1000 - final_remote // 1000
        assert final_local // 1000 - (fee - truncated) in values
        await mine(alice, 1, bob)
        await wait_until(
            lambda: alice.listing().summary.status == "closed" and bob.listing().summary.status == "closed",
            "both sides to see the close confirmed",
        )
        assert alice.node.info().num_channels == 0


@async_test
async def test_group_commit_across_channels(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (alice, bob):
        assert alice.node is not None and bob.node is not None
        await mine(alice, 101, bob)
        await alice.node.connect(f"{bob.node.node_id.hex()}@127.0.0.1:{bob.port}")
        opened = [await alice.service.open_channel(bob.node.node_id, 200_000) for _ in range(3)]
        await mine(alice, 3, bob)
        await wait_until(lambda: len(alice.service.usable_channels()) == 3, "three usable channels")
        await wait_until(lambda: len(bob.service.usable_channels()) == 3, "three usable channels at bob")
        await alice.service.drain()
        before = alice.service.committer.transactions
        states_before = alice.service.committer.states_written
        # One HTLC on each channel in the same loop turn: their states share one transaction.
        await asyncio.gather(
            *(pay(alice, bob, o.channel_id, 1_000_000, 9000 + i) for i, o in enumerate(opened))
        )
        assert alice.service.committer.states_written - states_before == 3
        assert alice.service.committer.transactions - before == 1


@async_test
async def test_refusals_and_a_misbehaving_peer(tmp_path: Path) -> None:
    async with two_nodes(tmp_path, ChannelConfig(min_funding_sat=1_000_000)) as (alice, bob):
        assert alice.node is not None and bob.node is not None
        await mine(alice, 101, bob)
        try:
            await alice.service.open_channel(bob.node.node_id, 200_000)
            raise AssertionError("opened without a connection")
        except PeerNotConnectedError:
            pass
        await alice.node.connect(f"{bob.node.node_id.hex()}@127.0.0.1:{bob.port}")
        try:
            await alice.service.open_channel(bob.node.node_id, 200_000)
            raise AssertionError("bob accepted a channel below his minimum")
        except OpenChannelError as exc:
            assert "funding" in str(exc)
        assert not alice.service.list_channels() and not bob.service.list_channels()
        # Alice's coins are free again: a second open, large enough, goes through.
        await alice.service.open_channel(bob.node.node_id, 1_500_000)

        # A stranger asks to reestablish a channel nobody has, then sends a malformed update.
        stranger = await ScriptedPeer().connect(bob.port, bob.node.node_id)
        await stranger.init()
        reestablish = make_message(
            "channel_reestablish",
            channel_id=bytes(32).replace(bytes(1), b"\x07"),
            next_commitment_number=1,
            next_revocation_number=0,
            your_last_per_commitment_secret=bytes(32),
            my_current_per_commitment_point=alice.keys.node_id,
        )
        await stranger.send(reestablish)
        reply = await stranger.recv_named("error")
        assert reply.fields["channel_id"] == bytes(32).replace(bytes(1), b"\x07")
        await stranger.send_raw((128).to_bytes(2, "big") + b"\x00" * 5)  # update_add_htlc, truncated
        await stranger.expect_closed()
        stranger.close()
        # Bob is still there for Alice.
        await mine(alice, 3, bob)
        await wait_until(lambda: len(bob.service.usable_channels()) == 1, "bob's channel to be usable")
