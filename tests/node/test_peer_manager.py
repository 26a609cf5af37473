"""Two real PeerManagers over loopback TCP with real BOLT 8 encryption."""

from __future__ import annotations

import asyncio

import pytest

from ampere.bitcoin.network import Network
from ampere.node.peer_manager import Backoff, PeerConnected, PeerDisconnected, PeerEvent, PeerManager
from ampere.node.peer_protocol import DEFAULT_FEATURES, PeerError
from ampere.wire import Feature, Message, UnknownMessage, make_message
from tests.node.helpers import WAIT, ScriptedPeer, async_test, connected_pair, fast_config, running_manager

CUSTOM = 32769  # an odd custom type, as the micropayment protocol will use


@async_test
async def test_connect_exchanges_init_and_features() -> None:
    features_b = DEFAULT_FEATURES.with_feature(Feature.VAR_ONION_OPTIN, required=True)
    async with running_manager() as (a, _), running_manager(fast_config(features=features_b)) as (b, port):
        record = await a.connect(b.node_id, "127.0.0.1", port)
        assert record.connected and record.outgoing
        assert record.features == features_b
        assert record.negotiated is not None and record.negotiated.requires(Feature.VAR_ONION_OPTIN)
        assert record.address == f"127.0.0.1:{port}"
        await b.wait_for(lambda: b.is_connected(a.node_id), WAIT)
        [seen_by_b] = b.list_peers()
        assert seen_by_b.node_id == a.node_id and seen_by_b.outgoing is False
        assert seen_by_b.features == DEFAULT_FEATURES
        assert seen_by_b.negotiated is not None
        assert "gossip_queries" in seen_by_b.negotiated.names()
        assert "var_onion_optin(required)" in seen_by_b.negotiated.names()
        # b reported the address it sees a at; a is the receiver of that remote_addr.
        assert record.remote_addr is not None and record.remote_addr.host == "127.0.0.1"
        assert b.peer(a.node_id) is not None
        as_json = a.list_peers()[0].to_json()
        assert as_json["id"] == b.node_id.hex() and as_json["connected"] is True
        assert as_json["features"] == features_b.to_bytes().hex()
        # Connecting again reuses the connection.
        again = await a.connect(b.node_id, "127.0.0.1", port)
        assert again.connected and a.connection_count == 1


@async_test
async def test_ping_pong_round_trip() -> None:
    async with running_manager() as (a, _), running_manager() as (b, port):
        await connected_pair(a, b, port)
        rtt = await a.ping(b.node_id, num_pong_bytes=1000, padding=500)
        assert rtt is not None and 0 <= rtt < WAIT
        assert await b.ping(a.node_id, 0) is not None
        assert await a.ping(b.node_id, num_pong_bytes=65532) is None  # no reply is due
        # The ignored ping left nothing outstanding: the next pong still matches.
        assert await a.ping(b.node_id, num_pong_bytes=7) is not None


@async_test
async def test_big_ping_from_scripted_peer_is_ignored() -> None:
    async with running_manager() as (b, port):
        peer = await ScriptedPeer().connect(port, b.node_id)
        await peer.init()
        await peer.send(make_message("ping", num_pong_bytes=65532, ignored=b""))
        await peer.send(make_message("ping", num_pong_bytes=65535, ignored=b""))
        await peer.send(make_message("ping", num_pong_bytes=4, ignored=bytes(10)))
        pong = await peer.recv_named("pong")
        assert pong.get_bytes("ignored") == bytes(4)
        peer.close()


@async_test
async def test_handlers_and_concurrent_sends() -> None:
    async with running_manager() as (a, _), running_manager() as (b, port):
        received: list[tuple[bytes, Message | UnknownMessage]] = []
        done = asyncio.Event()
        count = 200

        async def handler(peer_id: bytes, message: Message | UnknownMessage) -> None:
            received.append((peer_id, message))
            if len(received) == count:
                done.set()

        b.register_handler(CUSTOM, handler)
        await connected_pair(a, b, port)
        payloads = [i.to_bytes(4, "big") * (i % 50 + 1) for i in range(count)]
        await asyncio.gather(*(a.send(b.node_id, UnknownMessage(CUSTOM, p)) for p in payloads))
        await asyncio.wait_for(done.wait(), WAIT)
        assert {peer for peer, _ in received} == {a.node_id}
        got = sorted(m.payload for _, m in received if isinstance(m, UnknownMessage))
        assert got == sorted(payloads)
        # Unhandled odd types are dropped quietly and the connection stays up.
        await a.send(b.node_id, UnknownMessage(CUSTOM + 2, b"ignored"))
        assert await a.ping(b.node_id, 1) is not None


@async_test
async def test_handler_by_name_and_errors_delivered() -> None:
    async with running_manager() as (a, _), running_manager() as (b, port):
        seen: asyncio.Queue[Message | UnknownMessage] = asyncio.Queue()

        async def handler(_peer: bytes, message: Message | UnknownMessage) -> None:
            await seen.put(message)

        b.register_handler(["shutdown", "warning"], handler)
        await connected_pair(a, b, port)
        await a.send(b.node_id, make_message("shutdown", channel_id=bytes(32), scriptpubkey=b"\x51"))
        await a.send(b.node_id, make_message("warning", channel_id=bytes(32), data=b"careful"))
        first = await asyncio.wait_for(seen.get(), WAIT)
        second = await asyncio.wait_for(seen.get(), WAIT)
        assert (first.name, second.name) == ("shutdown", "warning")
        assert b.is_connected(a.node_id)
        with pytest.raises(PeerError):
            b.register_handler("ping", handler)
        with pytest.raises(PeerError):
            b.register_handler("no_such_message", handler)
        b.unregister_handler(["shutdown", "warning"], handler)


@async_test
async def test_handler_raising_peer_error_closes_only_that_peer() -> None:
    async with running_manager() as (a, _), running_manager() as (c, _), running_manager() as (b, port):

        async def angry(_peer: bytes, _message: Message | UnknownMessage) -> None:
            raise PeerError("protocol violation")

        b.register_handler(CUSTOM, angry)
        await connected_pair(a, b, port)
        await connected_pair(c, b, port)
        await a.send(b.node_id, UnknownMessage(CUSTOM, b""))
        await b.wait_for(lambda: not b.is_connected(a.node_id), WAIT)
        assert await c.ping(b.node_id, 2) is not None


@async_test
async def test_send_errors() -> None:
    async with running_manager() as (a, _), running_manager() as (b, port):
        with pytest.raises(PeerError):
            await a.send(b.node_id, UnknownMessage(CUSTOM, b""))
        await connected_pair(a, b, port)
        with pytest.raises(PeerError):  # over the 65535-byte frame limit
            await a.send(b.node_id, UnknownMessage(CUSTOM, bytes(65534)))
        with pytest.raises(PeerError):
            await a.send(b.node_id, make_message("init", globalfeatures=b"", features=b""))
        await a.send(b.node_id, UnknownMessage(CUSTOM, bytes(65533)))  # exactly 65535 bytes
        assert await a.ping(b.node_id, 1) is not None


@async_test
async def test_events_and_disconnect() -> None:
    async with running_manager() as (a, _), running_manager() as (b, port):
        events: list[PeerEvent] = []

        async def on_event(event: PeerEvent) -> None:
            events.append(event)

        a.subscribe(on_event)
        await connected_pair(a, b, port)
        await a.disconnect(b.node_id)
        assert not a.is_connected(b.node_id)
        await b.wait_for(lambda: not b.is_connected(a.node_id), WAIT)
        assert a.list_peers() == [] and b.list_peers() == []
        assert [type(e) for e in events] == [PeerConnected, PeerDisconnected]
        assert isinstance(events[0], PeerConnected) and events[0].outgoing
        with pytest.raises(PeerError):
            await a.disconnect(b.node_id)


@async_test
async def test_persistent_peer_reconnects_with_backoff() -> None:
    async with running_manager() as (a, _), running_manager() as (b, port):
        await a.connect(b.node_id, "127.0.0.1", port, persistent=True)
        await b.wait_for(lambda: b.is_connected(a.node_id), WAIT)
        first = b.list_peers()[0]
        await b.disconnect(a.node_id)  # the other side drops us: a redials
        await a.wait_for(lambda: a.list_peers()[0].reconnect_attempts >= 1, WAIT)
        await a.wait_for(lambda: a.is_connected(b.node_id), WAIT)
        await b.wait_for(lambda: b.is_connected(a.node_id), WAIT)
        assert b.list_peers()[0].address != first.address  # a new connection, from a new port
        [record] = a.list_peers()
        assert record.persistent and record.connected


@async_test
async def test_reconnect_keeps_trying_until_peer_is_back() -> None:
    async with running_manager() as (a, _):
        async with running_manager() as (b, port):
            await a.connect(b.node_id, "127.0.0.1", port, persistent=True)
        key = b._key  # the same node comes back on the same port
        await a.wait_for(lambda: not a.is_connected(b.node_id), WAIT)
        await a.wait_for(lambda: a.list_peers()[0].reconnect_attempts >= 3, WAIT)
        assert not a.list_peers()[0].connected
        b2 = PeerManager(key, Network.REGTEST, fast_config())
        try:
            await b2.listen("127.0.0.1", port)
            await a.wait_for(lambda: a.is_connected(b.node_id), WAIT)
        finally:
            await b2.close()
        a.set_persistent(b.node_id, False)
        await a.wait_for(lambda: a.list_peers() == [], WAIT)


def test_backoff_doubles_up_to_max_and_resets() -> None:
    backoff = Backoff(1.0, 10.0, jitter=0.0)
    assert [backoff.next() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.attempts == 6
    backoff.reset()
    assert backoff.next() == 1.0
    jittery = Backoff(1.0, 10.0, jitter=0.1)
    assert all(0.9 <= jittery.next() / base <= 1.1 for base in (1.0, 2.0, 4.0))
    with pytest.raises(PeerError):
        Backoff(0, 1)


def test_backoff_resets_after_a_connection_that_outlived_its_delay() -> None:
    backoff = Backoff(1.0, 300.0, jitter=0.0)
    assert [backoff.next() for _ in range(3)] == [1.0, 2.0, 4.0]
    backoff.connection_lasted(3.9, stable_after=60.0)  # dropped before the 4 s it waited: flapping
    assert backoff.next() == 8.0
    backoff.connection_lasted(8.0, stable_after=60.0)
    assert backoff.next() == 1.0
    for _ in range(8):
        backoff.next()
    assert backoff.last_delay == 256.0
    backoff.connection_lasted(60.0, stable_after=60.0)  # long enough whatever the delay was
    assert backoff.next() == 1.0


@async_test
async def test_connect_failures() -> None:
    async with running_manager() as (a, _), running_manager() as (b, port):
        wrong = ScriptedPeer().node_id
        with pytest.raises(PeerError, match="handshake"):
            await a.connect(wrong, "127.0.0.1", port)  # b cannot decrypt act one meant for another key
        with pytest.raises(PeerError):
            await a.connect(a.node_id, "127.0.0.1", port)
        async with running_manager() as (closed, closed_port):
            pass
        with pytest.raises(PeerError, match="cannot reach"):
            await a.connect(closed.node_id, "127.0.0.1", closed_port)
        assert a.list_peers() == []
        assert not b.is_connected(a.node_id)


@async_test
async def test_network_mismatch_refused() -> None:
    async with running_manager() as (a, _), running_manager(network=Network.TESTNET) as (b, port):
        with pytest.raises(PeerError, match="chain"):
            await a.connect(b.node_id, "127.0.0.1", port)
        assert not b.is_connected(a.node_id)


@async_test
async def test_second_connection_replaces_first() -> None:
    async with running_manager() as (b, port):
        events: list[PeerEvent] = []

        async def on_event(event: PeerEvent) -> None:
            events.append(event)

        b.subscribe(on_event)
        peer = ScriptedPeer()
        first = await peer.connect(port, b.node_id)
        await first.init()
        await b.wait_for(lambda: b.is_connected(peer.node_id), WAIT)
        second = ScriptedPeer(peer.key)
        await second.connect(port, b.node_id)
        await first.expect_closed()
        await second.init()
        await b.wait_for(lambda: b.is_connected(peer.node_id), WAIT)
        assert len(b.list_peers()) == 1
        await b.wait_for(lambda: len(events) == 3, WAIT)
        assert [type(e) for e in events] == [PeerConnected, PeerDisconnected, PeerConnected]
        first.close()
        second.close()


@async_test
async def test_keepalive_keeps_live_peer_and_drops_silent_one() -> None:
    async with running_manager(fast_config(ping_interval=0.05)) as (b, port), running_manager() as (a, _):
        silent = await ScriptedPeer().connect(port, b.node_id)
        await silent.init()
        await connected_pair(a, b, port)
        await silent.recv_named("ping")  # never answered
        closed = await silent.expect_closed()
        assert all(m[:2] == (18).to_bytes(2, "big") for m in closed)  # only pings, no warning
        # The managed peer answers every keep-alive ping and stays.
        assert b.is_connected(a.node_id)
        await b.wait_for(lambda: not b.is_connected(silent.node_id), WAIT)
        assert await a.ping(b.node_id, 3) is not None
        silent.close()


@async_test
async def test_close_ends_every_connection() -> None:
    async with running_manager() as (a, _), running_manager() as (c, _), running_manager() as (b, port):
        await connected_pair(a, b, port)
        await connected_pair(c, b, port)
        half_open = await ScriptedPeer().open(port)
        await b.wait_for(lambda: b.connection_count == 3, WAIT)
        await b.close()
        assert b.connection_count == 0 and b.list_peers() == []
        await a.wait_for(lambda: not a.is_connected(b.node_id), WAIT)
        await c.wait_for(lambda: not c.is_connected(b.node_id), WAIT)
        assert await half_open.expect_closed() == []
        half_open.close()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
        with pytest.raises(PeerError):
            await b.connect(a.node_id, "127.0.0.1", 1)


@async_test
async def test_simultaneous_dials_settle_on_one_connection() -> None:
    for _ in range(5):
        async with running_manager() as (a, a_port), running_manager() as (b, b_port):
            results = await asyncio.gather(
                a.connect(b.node_id, "127.0.0.1", b_port, persistent=True),
                b.connect(a.node_id, "127.0.0.1", a_port, persistent=True),
                return_exceptions=True,
            )
            assert not [r for r in results if isinstance(r, BaseException)]
            await a.wait_for(lambda: a.is_connected(b.node_id) and a.connection_count == 1, WAIT)
            await b.wait_for(lambda: b.is_connected(a.node_id) and b.connection_count == 1, WAIT)
            [seen_by_a], [seen_by_b] = a.list_peers(), b.list_peers()
            assert seen_by_a.outgoing != seen_by_b.outgoing  # both kept the same TCP connection
            assert seen_by_a.reconnect_attempts == seen_by_b.reconnect_attempts == 0
            assert await a.ping(b.node_id, 1) is not None
