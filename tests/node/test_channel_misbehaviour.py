"""A real node against channel peers that cheat, over real TCP, SQLite and the embedded chain.

Bob is the node under test. Alice, another real node, has a healthy channel with him; scripted
peers (`ScriptedChannelPeer`, our own channel core with hooks to lie) open channels to him and then
misbehave. Each time Bob must fail exactly the cheater's channel as BOLT 2 prescribes (`error`,
and his commitment on chain when the channel is funded), stay up, and still route Alice's HTLCs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.tx import Transaction, TxOut
from ampere.chain.embedded import EmbeddedChain
from ampere.channel.twoway import ChannelConfig, ChannelMessage, Phase
from ampere.channel.twoway.messages import CommitmentSigned, RevokeAndAck, UpdateAddHtlc, UpdateFulfillHtlc
from ampere.node.channel_service import ChannelListing
from ampere.wire import Message, decode_message, make_message

from .helpers import async_test
from .scripted_channel_peer import ONION, ScriptedChannelPeer, bad_signature, with_fields
from .test_channel_service import NodeUnderTest, check_conservation, mine, pay, wait_until

HEALTHY_SAT = 500_000
SCRIPTED_SAT = 300_000
SCRIPTED_PUSH_MSAT = 50_000_000


@dataclass
class Arena:
    chain: EmbeddedChain
    alice: NodeUnderTest
    bob: NodeUnderTest
    healthy_id: bytes
    peers: list[ScriptedChannelPeer]
    payments: int = 0

    def listing_of(self, peer: ScriptedChannelPeer) -> ChannelListing:
        [listing] = [each for each in self.bob.service.list_channels() if each.peer_id == peer.node_id]
        return listing

    def status_of(self, peer: ScriptedChannelPeer) -> str:
        return self.listing_of(peer).summary.status

    async def healthy_payment(self) -> None:
        """An HTLC from Alice through the healthy channel is fulfilled by Bob; balances add up."""
        alice, bob = self.alice, self.bob
        self.payments += 1
        n = 7000 + self.payments
        before = len(alice.recorder.fulfilled)
        await pay(alice, bob, self.healthy_id, 1_000_000 + n, n)
        await wait_until(lambda: len(alice.recorder.fulfilled) == before + 1, "the healthy HTLC")
        await wait_until(lambda: not alice.listing().summary.pending_htlcs, "the healthy HTLC to settle")
        healthy = next(each for each in bob.service.list_channels() if each.peer_id == alice.keys.node_id)
        assert healthy.summary.status == "normal"
        check_conservation(healthy)
        check_conservation(alice.listing())
        assert bob.node is not None and bob.node.peers.is_connected(alice.keys.node_id)

    def spends_of_funding(self, peer: ScriptedChannelPeer) -> list[Transaction]:
        """Transactions spending the cheater's funding output, in the mempool or in the last blocks."""
        outpoint = peer.state.funding_outpoint
        candidates = [self.chain.mempool_tx(txid) for txid in self.chain.mempool_txids()]
        tip = self.chain.tip_height()
        for block_height in range(max(0, tip - 5), tip + 1):
            block_hash = self.chain.block_hash(block_height)
            block = None if block_hash is None else self.chain.get_block(block_hash)
            if block is not None:
                candidates.extend(block.transactions)
        return [tx for tx in candidates if tx is not None and any(i.prevout == outpoint for i in tx.inputs)]

    async def assert_force_closed(self, peer: ScriptedChannelPeer, reason: str) -> None:
        """Bob sent `error` for the cheater's channel, lists it force_closing and broadcast his commitment."""
        error = await peer.wait_for_message("error")
        assert error.get_bytes("channel_id") == peer.channel_id
        assert reason in error.get_bytes("data").decode(), error.get_bytes("data")
        await wait_until(lambda: self.status_of(peer) == "force_closing", "bob to force close")
        check_conservation(self.listing_of(peer))
        await wait_until(lambda: bool(self.spends_of_funding(peer)), "bob's commitment on chain")
        [commitment] = self.spends_of_funding(peer)
        # Bob's: the scripted peer never broadcasts a commitment.
        assert all(tx.txid != commitment.txid for tx in peer.broadcasts)
        await mine(self.alice, 1, self.bob)
        assert self.chain.tx_status(commitment.txid).block_height is not None


@contextlib.asynccontextmanager
async def arena(
    root: Path, scripted: int = 1, bob_config: ChannelConfig | None = None, *, confirm: bool = True
) -> AsyncIterator[Arena]:
    """Alice and Bob with a normal channel, and `scripted` cheaters connected to Bob, each with an
    open channel (funded by the cheater, normal too when `confirm`)."""
    chain = EmbeddedChain(root / "chain")
    alice = NodeUnderTest("alice", root, chain)
    bob = NodeUnderTest("bob", root, chain, bob_config)
    peers = [ScriptedChannelPeer(f"mallory{i}", chain) for i in range(scripted)]
    try:
        await alice.start()
        await bob.start()
        assert alice.node is not None and bob.node is not None
        for peer in peers:
            peer.fund_wallet()
        await mine(alice, 101, bob)
        await alice.node.connect(f"{bob.node.node_id.hex()}@127.0.0.1:{bob.port}")
        opened = await alice.service.open_channel(bob.node.node_id, HEALTHY_SAT, push_msat=100_000_000)
        for peer in peers:
            await peer.connect(bob.port, bob.node.node_id)
        world = Arena(chain, alice, bob, opened.channel_id, peers)
        if confirm:
            for peer in peers:
                await peer.open_channel(SCRIPTED_SAT, SCRIPTED_PUSH_MSAT)
            await mine(alice, 3, bob)
            for peer in peers:
                await peer.follow_chain()
            for peer in peers:
                await peer.wait_for(lambda peer=peer: peer.state.phase is Phase.NORMAL, "normal")  # type: ignore[misc]
        else:
            await mine(alice, 3, bob)
        await wait_until(lambda: alice.service.usable_channels() != [], "the healthy channel")
        await wait_until(
            lambda: len(bob.service.usable_channels()) == 1 + (scripted if confirm else 0),
            "bob's channels to be usable",
        )
        yield world
    finally:
        for peer in peers:
            await peer.close()
        await alice.stop()
        await bob.stop()
        chain.close()


def hash_of(n: int) -> bytes:
    return hashlib.sha256(hashlib.sha256(b"scripted preimage" + n.to_bytes(4, "big")).digest()).digest()


def height(arena: Arena) -> int:
    return arena.chain.tip_height()


# --- 1. commitment_signed with a bad signature ------------------------------------------------------------


@async_test
async def test_bad_commitment_signature_fails_the_channel(tmp_path: Path) -> None:
    async with arena(tmp_path, scripted=2) as world:
        bad_commit, bad_htlc = world.peers
        bad_commit.tamper_next("commitment_signed", with_fields(signature=bad_signature()))
        await bad_commit.add_htlc(5_000_000, hash_of(1), height(world) + 40)

        def wrong_htlc_signature(message: ChannelMessage) -> ChannelMessage:
            assert isinstance(message, CommitmentSigned) and len(message.htlc_signature) == 1
            return dataclasses.replace(message, htlc_signature=(bad_signature(b"htlc"),))

        bad_htlc.tamper_next("commitment_signed", wrong_htlc_signature)
        await bad_htlc.add_htlc(5_000_000, hash_of(2), height(world) + 40)

        await world.assert_force_closed(bad_commit, "signature")
        await world.assert_force_closed(bad_htlc, "signature")
        await world.healthy_payment()


# --- 2. revoke_and_ack with the wrong secret --------------------------------------------------------------


@async_test
async def test_wrong_revocation_secret_fails_the_channel(tmp_path: Path) -> None:
    async with arena(tmp_path) as world:
        [cheater] = world.peers
        wrong = PrivateKey(hashlib.sha256(b"not the secret").digest()).secret
        cheater.tamper_next("revoke_and_ack", with_fields(per_commitment_secret=wrong))
        await cheater.add_htlc(5_000_000, hash_of(3), height(world) + 40)
        await world.assert_force_closed(cheater, "per_commitment_secret")
        assert [m.name for m in map(decode_message, cheater.sent)].count("revoke_and_ack") == 1
        await world.healthy_payment()


# --- 3. update_add_htlc over a limit or below the minimum -------------------------------------------------

LIMITS = ChannelConfig(
    htlc_minimum_msat=10_000, max_htlc_value_in_flight_msat=280_000_000, max_accepted_htlcs=2
)


def add(peer: ScriptedChannelPeer, htlc_id: int, amount_msat: int, cltv_expiry: int) -> UpdateAddHtlc:
    return UpdateAddHtlc(peer.channel_id, htlc_id, amount_msat, hash_of(100 + htlc_id), cltv_expiry, ONION)


@async_test
async def test_htlcs_breaking_the_limits_fail_the_channel(tmp_path: Path) -> None:
    """BOLT 2 lets the receiver warn and disconnect or fail the channel; our core fails it (ChannelError
    with the CLOSE response), so each cheater gets `error` and Bob's commitment goes on chain."""
    async with arena(tmp_path, scripted=4, bob_config=LIMITS) as world:
        too_small, too_much_in_flight, too_many, too_poor = world.peers
        expiry = height(world) + 40
        # The cheater's balance is 250_000_000 msat, less its 3_000 sat reserve.
        await too_small.send(add(too_small, 0, 9_999, expiry))
        await too_much_in_flight.send(add(too_much_in_flight, 0, 280_000_001, expiry))
        for htlc_id in range(3):
            await too_many.send(add(too_many, htlc_id, 1_000_000, expiry))
        await too_poor.send(add(too_poor, 0, 249_000_000, expiry))

        await world.assert_force_closed(too_small, "below htlc_minimum_msat 10000")
        await world.assert_force_closed(too_much_in_flight, "exceeds max_htlc_value_in_flight_msat")
        await world.assert_force_closed(too_many, "update_add_htlc 2: more than max_accepted_htlcs (2)")
        await world.assert_force_closed(too_poor, "cannot afford")
        await world.healthy_payment()


# --- 4. funding -------------------------------------------------------------------------------------------


@async_test
async def test_funding_with_the_wrong_output_never_opens(tmp_path: Path) -> None:
    async with arena(tmp_path, scripted=2, confirm=False) as world:
        short, elsewhere = world.peers
        short.funding_output = lambda agreed: TxOut(agreed.value - 10_000, agreed.script_pubkey)
        elsewhere.funding_output = lambda agreed: TxOut(agreed.value, elsewhere.wallet_script)
        for cheater in world.peers:
            await cheater.open_channel(SCRIPTED_SAT, SCRIPTED_PUSH_MSAT)
            # Bob signed his commitment for the agreed output, not knowing the transaction yet.
            assert cheater.messages("funding_signed")
            funding = cheater.funding_tx
            assert funding is not None and cheater.broadcasts == [funding]
            assert world.status_of(cheater) == "opening"
        assert short.funding_tx is not None and short.funding_tx.outputs[0].value == SCRIPTED_SAT - 10_000
        assert elsewhere.funding_tx is not None
        assert elsewhere.funding_tx.outputs[0].script_pubkey == elsewhere.wallet_script

        await mine(world.alice, 3, world.bob)
        for cheater in world.peers:
            error = await cheater.wait_for_message("error")
            assert error.get_bytes("channel_id") == cheater.channel_id
            assert b"does not pay funding_satoshis" in error.get_bytes("data")
            assert not cheater.messages("channel_ready")
            # The channel never opened: Bob forgets it and puts nothing on chain (no commitment of
            # his could spend an output that does not pay what it signed for).
            await wait_until(lambda c=cheater: world.status_of(c) == "closed", "bob to give it up")  # type: ignore[misc]
        await world.bob.service.drain()
        for cheater in world.peers:
            assert not world.spends_of_funding(cheater)
        assert [u.peer_id for u in world.bob.service.usable_channels()] == [world.alice.keys.node_id]
        await world.healthy_payment()


@async_test
async def test_funding_never_broadcast_leaves_the_channel_opening(tmp_path: Path) -> None:
    async with arena(tmp_path, scripted=1, confirm=False) as world:
        [cheater] = world.peers
        cheater.broadcast_funding = False
        await cheater.open_channel(SCRIPTED_SAT, SCRIPTED_PUSH_MSAT)
        funding = cheater.funding_tx
        assert funding is not None and not cheater.broadcasts
        await mine(world.alice, 6, world.bob)
        await world.healthy_payment()
        assert world.chain.tx_status(funding.txid).block_height is None
        assert world.status_of(cheater) == "opening"
        assert not cheater.messages("error") and not cheater.messages("channel_ready")
        assert world.bob.node is not None and world.bob.node.peers.is_connected(cheater.node_id)


# --- 5. garbage and messages out of order -----------------------------------------------------------------


@async_test
async def test_revoke_and_ack_with_nothing_to_revoke(tmp_path: Path) -> None:
    async with arena(tmp_path) as world:
        [cheater] = world.peers
        point = PrivateKey(hashlib.sha256(b"some point").digest()).public_key.data
        await cheater.send(RevokeAndAck(cheater.channel_id, bytes(range(32)), point))
        await world.assert_force_closed(cheater, "revoke_and_ack without a commitment_signed")
        await world.healthy_payment()


@async_test
async def test_fulfill_with_the_wrong_preimage(tmp_path: Path) -> None:
    async with arena(tmp_path) as world:
        [cheater] = world.peers
        bob = world.bob
        htlc_id = await bob.service.add_htlc(
            cheater.channel_id, 2_000_000, hash_of(9), height(world) + 40, ONION
        )
        await cheater.wait_for(lambda: bool(cheater.htlcs_received), "the HTLC to reach the cheater")
        await cheater.send(UpdateFulfillHtlc(cheater.channel_id, htlc_id, bytes(32)))
        await world.assert_force_closed(cheater, "preimage does not hash")
        assert not bob.recorder.fulfilled
        await world.healthy_payment()


@async_test
async def test_unknown_channel_and_garbage(tmp_path: Path) -> None:
    async with arena(tmp_path, scripted=2) as world:
        polite, rude = world.peers
        bob = world.bob
        stranger_id = hashlib.sha256(b"no such channel").digest()
        await polite.send(
            dataclasses.replace(add(polite, 0, 1_000_000, height(world) + 40), channel_id=stranger_id)
        )
        error = await polite.wait_for_message("error")
        assert error.get_bytes("channel_id") == stranger_id
        # Only that id: the polite peer's real channel still carries a payment to Bob.
        assert world.status_of(polite) == "normal"
        secret = hashlib.sha256(b"polite payment").digest()
        bob.recorder.preimages[hashlib.sha256(secret).digest()] = secret
        await polite.add_htlc(3_000_000, hashlib.sha256(secret).digest(), height(world) + 40)
        await polite.wait_for(lambda: bool(polite.fulfilled), "bob to fulfill the polite HTLC")
        assert polite.fulfilled[0].payment_preimage == secret

        # A truncated update_add_htlc: undecodable, so Bob drops the connection (the channel survives).
        await rude.send((128).to_bytes(2, "big") + rude.channel_id + b"\x00" * 5)
        await rude.wait_for(lambda: rude.connection_closed, "bob to drop the rude peer")
        assert world.status_of(rude) == "normal"
        assert not rude.messages("error")
        await world.healthy_payment()
        assert bob.node is not None and bob.node.peers.is_connected(polite.node_id)


# --- fuzz: mutated messages never hurt the node or its other channels -------------------------------------

MUTABLE = ("update_add_htlc", "commitment_signed", "revoke_and_ack")


@settings(max_examples=10)
@given(
    target=st.sampled_from(MUTABLE),
    flips=st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 255)), min_size=1, max_size=4),
)
def test_mutated_channel_messages_never_hurt_the_node(target: str, flips: list[tuple[int, int]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        run_mutation(Path(directory), target, flips)


@async_test
async def run_mutation(root: Path, target: str, flips: list[tuple[int, int]]) -> None:
    async with arena(root) as world:
        [cheater] = world.peers

        def mutate(name: str, data: bytes) -> bytes:
            if name != target:
                return data
            mutated = bytearray(data)
            for position, mask in flips:
                # Never the type: a different message is another test's business.
                index = 2 + position % (len(mutated) - 2)
                mutated[index] ^= mask
            return bytes(mutated)

        cheater.mutate = mutate
        await cheater.add_htlc(5_000_000, hash_of(50), height(world) + 40)
        await cheater.wait_for(
            lambda: cheater.connection_closed or target in cheater.sent_names, f"our {target} to leave"
        )
        # Bob handles a connection's messages in order: once he answers a ping, he has seen the rest.
        if not cheater.connection_closed:
            await cheater.send(make_message("ping", num_pong_bytes=4, ignored=b""))
            await cheater.wait_for(
                lambda: cheater.connection_closed or bool(cheater.messages("pong")), "a pong or a hang-up"
            )
        await world.healthy_payment()
        listing = world.listing_of(cheater)
        assert listing.summary.status in ("normal", "force_closing")
        check_conservation(listing)

        # Bob's `error` for the channel itself follows its failure (once the state is stored); one for
        # another id (a mutated channel_id) leaves the channel alone.
        def channel_errors() -> list[Message]:
            return [m for m in cheater.messages("error") if m.get_bytes("channel_id") == cheater.channel_id]

        if listing.summary.status == "force_closing":
            await cheater.wait_for(lambda: bool(channel_errors()), "bob's error for the failed channel")
        else:
            assert not channel_errors()
