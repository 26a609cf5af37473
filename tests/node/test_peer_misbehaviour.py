"""Hostile peers, scripted byte by byte over real TCP: each one loses its own connection and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ampere.bitcoin.network import Network
from ampere.crypto.noise import ACT_ONE_SIZE, NoiseInitiator
from ampere.node.peer_manager import PeerManager
from ampere.node.peer_protocol import DEFAULT_FEATURES
from ampere.wire import DEFAULT_SCHEMA, UnknownMessage, decode_message, make_message
from ampere.wire.gossip_queries import make_query_channel_range, make_query_short_channel_ids
from tests.node.helpers import (
    WAIT,
    ScriptedPeer,
    async_test,
    connected_pair,
    fast_config,
    names,
    ping,
    running_manager,
)

REGTEST = Network.REGTEST.chain_hash


@contextlib.asynccontextmanager
async def node_with_witness(**config: object) -> AsyncIterator[tuple[PeerManager, int, PeerManager]]:
    """A node under attack plus a well-behaved peer connected to it, which must stay connected."""
    async with running_manager(fast_config(**config)) as (node, port), running_manager() as (witness, _):
        await connected_pair(witness, node, port)
        yield node, port, witness
        assert node.is_connected(witness.node_id), "a misbehaving peer took an innocent one down"
        assert await witness.ping(node.node_id, 16) is not None


@async_test
async def test_unknown_even_message_disconnects_only_that_peer(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ampere.node")
    async with node_with_witness() as (node, port, _witness):
        rogue = await ScriptedPeer().connect(port, node.node_id)
        await rogue.init()
        await node.wait_for(lambda: node.is_connected(rogue.node_id), WAIT)
        await rogue.send_raw((0x1234).to_bytes(2, "big") + b"evil")
        received = await rogue.expect_closed()
        assert names(received) == ["warning"]
        assert b"unknown even message type 4660" in decode_message(received[0]).get_bytes("data")  # type: ignore[union-attr]
        await node.wait_for(lambda: not node.is_connected(rogue.node_id), WAIT)
        rogue.close()
    logged = [r.getMessage() for r in caplog.records if rogue.node_id.hex() in r.getMessage()]
    assert any("unknown even message type 4660" in line for line in logged)


@async_test
async def test_unknown_odd_message_is_ignored() -> None:
    async with running_manager() as (node, port):
        peer = await ScriptedPeer().connect(port, node.node_id)
        await peer.init()
        await peer.send(UnknownMessage(0x1235, b"harmless"))
        await peer.send(ping(5))
        assert len((await peer.recv_named("pong")).get_bytes("ignored")) == 5
        peer.close()


@async_test
async def test_garbage_instead_of_act_one() -> None:
    async with node_with_witness() as (_node, port, _witness):
        for garbage in (os.urandom(ACT_ONE_SIZE), b"\x00" * ACT_ONE_SIZE, os.urandom(500)):
            rogue = await ScriptedPeer().open(port)
            await rogue.write(garbage)
            assert await rogue.expect_closed() == []
            rogue.close()


@async_test
async def test_half_act_one_then_silence_times_out() -> None:
    async with node_with_witness(handshake_timeout=0.3) as (node, port, _witness):
        rogue = await ScriptedPeer().open(port)
        act_one = NoiseInitiator(rogue.key.secret, node.node_id).act_one()
        await rogue.write(act_one[:20])
        assert await rogue.expect_closed(timeout=WAIT) == []
        rogue.close()
        await node.wait_for(lambda: node.connection_count == 1, WAIT)


@async_test
async def test_garbage_act_three() -> None:
    async with node_with_witness() as (node, port, _witness):
        rogue = await ScriptedPeer().open(port)
        initiator = NoiseInitiator(rogue.key.secret, node.node_id)
        await rogue.write(initiator.act_one())
        assert rogue.reader is not None
        await rogue.reader.readexactly(50)
        await rogue.write(os.urandom(66))
        assert await rogue.expect_closed() == []
        rogue.close()


@async_test
async def test_silence_after_handshake_times_out() -> None:
    async with node_with_witness(handshake_timeout=0.3) as (node, port, _witness):
        rogue = await ScriptedPeer().connect(port, node.node_id)
        assert names(await rogue.expect_closed()) == ["init"]
        rogue.close()


@async_test
async def test_corrupted_frames_close_the_connection() -> None:
    async with node_with_witness() as (node, port, _witness):
        for corrupt_at in (3, 20, -1):  # the length MAC, the body, the body MAC
            rogue = await ScriptedPeer().connect(port, node.node_id)
            await rogue.init()
            assert rogue.transport is not None
            frame = bytearray(rogue.transport.encrypt_message(b"\x00\x13" + bytes(40)))
            frame[corrupt_at] ^= 0x01
            await rogue.write(bytes(frame))
            assert await rogue.expect_closed() == []
            rogue.close()


@async_test
async def test_largest_frame_is_accepted() -> None:
    async with running_manager() as (node, port):
        peer = await ScriptedPeer().connect(port, node.node_id)
        await peer.init()
        await peer.send(UnknownMessage(0x8001, bytes(65533)))  # 65535 bytes with its type
        await peer.send(ping(1))
        await peer.recv_named("pong")
        peer.close()


@async_test
async def test_message_before_init() -> None:
    async with node_with_witness() as (node, port, _witness):
        rogue = await ScriptedPeer().connect(port, node.node_id)
        await rogue.send(ping(4))
        assert names(await rogue.expect_closed()) == ["init"]  # no pong, no warning
        rogue.close()


@async_test
async def test_required_unknown_feature_in_init() -> None:
    async with node_with_witness() as (node, port, _witness):
        rogue = await ScriptedPeer().connect(port, node.node_id)
        await rogue.init(features=DEFAULT_FEATURES.set_bit(200))
        assert names(await rogue.expect_closed()) == ["warning"]
        assert not node.is_connected(rogue.node_id)
        rogue.close()


@async_test
async def test_wrong_chain_in_init() -> None:
    async with node_with_witness() as (node, port, _witness):
        rogue = await ScriptedPeer().connect(port, node.node_id)
        await rogue.init(chains=(Network.MAINNET.chain_hash,))
        assert names(await rogue.expect_closed()) == ["warning"]
        rogue.close()


@async_test
async def test_connection_limit_per_ip() -> None:
    async with running_manager(fast_config(max_connections_per_ip=2)) as (node, port):
        first = await ScriptedPeer().open(port)
        second = await ScriptedPeer().open(port)
        await node.wait_for(lambda: node.connection_count == 2, WAIT)
        third = await ScriptedPeer().open(port)
        assert await third.expect_closed() == []
        # The two handshakes in progress are unaffected and can finish.
        await first.handshake(node.node_id)
        await first.init()
        await node.wait_for(lambda: node.is_connected(first.node_id), WAIT)
        second.close()
        await node.wait_for(lambda: node.connection_count == 1, WAIT)
        fourth = await ScriptedPeer().connect(port, node.node_id)
        await fourth.init()
        for peer in (first, third, fourth):
            peer.close()


@async_test
async def test_total_connection_limit_counts_outgoing_too() -> None:
    async with (
        running_manager() as (other, other_port),
        running_manager(fast_config(max_connections=2)) as (node, port),
    ):
        await node.connect(other.node_id, "127.0.0.1", other_port)
        held = await ScriptedPeer().open(port)
        await node.wait_for(lambda: node.connection_count == 2, WAIT)
        refused = await ScriptedPeer().open(port)
        assert await refused.expect_closed() == []
        assert node.is_connected(other.node_id)
        for peer in (held, refused):
            peer.close()


@async_test
async def test_gossip_queries_answered_empty() -> None:
    async with running_manager() as (node, port):
        peer = await ScriptedPeer().connect(port, node.node_id)
        await peer.init()
        await peer.send(make_query_channel_range(REGTEST, 0, 0xFFFFFFFF))
        reply = await peer.recv_named("reply_channel_range")
        assert reply.get_int("sync_complete") == 1 and reply.get_bytes("encoded_short_ids") == b"\x00"
        await peer.send(make_query_short_channel_ids(REGTEST, []))
        end = await peer.recv_named("reply_short_channel_ids_end")
        assert end.get_int("full_information") == 1
        filt = make_message(
            "gossip_timestamp_filter", chain_hash=REGTEST, first_timestamp=0, timestamp_range=1
        )
        await peer.send(filt)
        await peer.send(ping(2))
        await peer.recv_named("pong")
        peer.close()


# --------------------------------------------------------------------------- random messages

_KNOWN_TYPES = sorted(DEFAULT_SCHEMA.messages)
_message_bytes = st.one_of(
    st.binary(max_size=400),
    st.builds(
        lambda t, body: t.to_bytes(2, "big") + body, st.sampled_from(_KNOWN_TYPES), st.binary(max_size=400)
    ),
    st.builds(lambda t, body: t.to_bytes(2, "big") + body, st.integers(0, 0xFFFF), st.binary(max_size=64)),
)


async def _one_random_message(port: int, node_id: bytes, data: bytes) -> None:
    """Send ``data`` as one message after init; the node must answer a ping or close, never hang."""
    peer = await ScriptedPeer().connect(port, node_id)
    try:
        await peer.init()
        await peer.send_raw(data)
        await peer.send(ping(3))
        try:
            while True:
                message = await peer.recv(WAIT)
                if message.name == "pong" and len(message.get_bytes("ignored")) == 3:  # type: ignore[union-attr]
                    return
        except asyncio.IncompleteReadError:
            return  # closed on us: allowed for anything malformed or forbidden
    finally:
        peer.close()


def test_random_message_bytes_do_not_hurt_the_node() -> None:
    loop = asyncio.new_event_loop()
    node = PeerManager(ScriptedPeer().key, Network.REGTEST, fast_config())
    witness = PeerManager(ScriptedPeer().key, Network.REGTEST, fast_config())
    try:
        _host, port = loop.run_until_complete(node.listen("127.0.0.1", 0))
        loop.run_until_complete(witness.connect(node.node_id, "127.0.0.1", port))

        @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(_message_bytes)
        def one(data: bytes) -> None:
            loop.run_until_complete(asyncio.wait_for(_one_random_message(port, node.node_id, data), 2 * WAIT))

        one()
        assert witness.is_connected(node.node_id)
        assert loop.run_until_complete(witness.ping(node.node_id, 1)) is not None
    finally:
        loop.run_until_complete(witness.close())
        loop.run_until_complete(node.close())
        loop.close()
