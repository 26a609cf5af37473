"""Every peer connection of a node: listening, dialing, limits, reconnection and message routing.

One connection per node id (BOLT #1): a newer authenticated connection
replaces the older one.  A peer's misbehaviour only ever closes that peer's
connection.  Layers above register handlers per message type and send with
``send``; they learn about connections and disconnections through
``subscribe``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.network import Network
from ampere.crypto.noise import NoiseTransport
from ampere.node.peer import PeerConnection, accept_incoming, open_outgoing
from ampere.node.peer_address import format_host_port, is_public, net_address
from ampere.node.peer_dispatch import (
    ChangeSignal,
    MessageDispatcher,
    MessageHandler,
    PeerConnected,
    PeerDisconnected,
    PeerEvent,
    PeerEventCallback,
)
from ampere.node.peer_protocol import (
    DEFAULT_FEATURES,
    ErrorReceived,
    PeerError,
    PeerProtocol,
    PeerReady,
    ProtocolConfig,
)
from ampere.wire import Features, Message, UnknownMessage
from ampere.wire.addresses import NetAddress

__all__ = [
    "Backoff",
    "MessageHandler",
    "PeerConnected",
    "PeerDisconnected",
    "PeerEvent",
    "PeerEventCallback",
    "PeerManager",
    "PeerManagerConfig",
    "PeerRecord",
    "crossed_connection_loses",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PeerManagerConfig:
    """Tunables.  Times are seconds; ``ping_interval=None`` turns keep-alive pings off."""

    features: Features = DEFAULT_FEATURES
    handshake_timeout: float = 10.0
    ping_interval: float | None = 60.0
    send_timeout: float = 60.0
    max_connections: int = 256
    max_connections_per_ip: int = 16
    reconnect_initial_delay: float = 1.0
    reconnect_max_delay: float = 300.0
    #: A connection that lasted this long, or longer than the delay waited before it, resets the
    #: reconnection backoff; one that drops sooner (a flapping peer) lets the delay keep growing.
    reconnect_stable_after: float = 60.0
    #: Two connections between the same nodes in opposite directions this close together are a
    #: simultaneous dial, resolved by node id rather than by "newest wins".
    crossed_connection_window: float = 5.0
    #: BOLT #1 says not to report private addresses in ``remote_addr``; tests on loopback want them.
    report_private_remote_addr: bool = False


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """A peer as ``list_peers`` shows it."""

    node_id: bytes
    address: str | None
    connected: bool
    features: Features | None
    negotiated: Features | None
    outgoing: bool | None
    persistent: bool
    remote_addr: NetAddress | None
    reconnect_attempts: int

    def to_json(self) -> dict[str, object]:
        """The ``listpeers`` entry: ``features`` is the peer's init feature vector in hex."""
        return {
            "id": self.node_id.hex(),
            "address": self.address,
            "connected": self.connected,
            "features": None if self.features is None else self.features.to_bytes().hex(),
            "negotiated_features": [] if self.negotiated is None else self.negotiated.names(),
            "persistent": self.persistent,
        }


class Backoff:
    """Exponential backoff with jitter, so that peers that lost each other don't retry in lockstep."""

    def __init__(self, initial: float, maximum: float, *, factor: float = 2.0, jitter: float = 0.1) -> None:
        if initial <= 0 or maximum < initial or factor < 1 or not 0 <= jitter < 1:
            raise PeerError("bad backoff parameters")
        self._initial, self._maximum, self._factor, self._jitter = initial, maximum, factor, jitter
        self._current = initial
        self.attempts = 0
        self.last_delay = 0.0  # the delay (before jitter) that `next` returned last; 0 after a reset

    def next(self) -> float:
        """The delay before the next attempt; each call doubles the following one, up to the maximum."""
        base = self.last_delay = self._current
        self._current = min(self._current * self._factor, self._maximum)
        self.attempts += 1
        return base * (1 + random.uniform(-self._jitter, self._jitter))

    def reset(self) -> None:
        self._current = self._initial
        self.attempts = 0
        self.last_delay = 0.0

    def connection_lasted(self, uptime: float, stable_after: float) -> None:
        """A connection made after this backoff's last delay ended after `uptime` seconds: start again
        from the initial delay if it lasted `stable_after`, or longer than that delay."""
        if uptime >= min(stable_after, self.last_delay):
            self.reset()


@dataclass(eq=False, slots=True)
class _Slot:
    node_id: bytes
    backoff: Backoff
    conn: PeerConnection | None = None
    dial_address: tuple[str, int] | None = None
    persistent: bool = False
    reconnect_task: asyncio.Task[None] | None = None
    last_info: PeerReady | None = None
    last_outgoing: bool | None = None
    reconnect_attempts: int = 0

    def record(self) -> PeerRecord:
        conn = self.conn
        info = self.last_info
        address = conn.address if conn is not None else None
        if address is None and self.dial_address is not None:
            address = format_host_port(*self.dial_address)
        return PeerRecord(
            node_id=self.node_id,
            address=address,
            connected=conn is not None and conn.ready,
            features=None if info is None else info.features,
            negotiated=None if info is None else info.negotiated,
            outgoing=self.last_outgoing,
            persistent=self.persistent,
            remote_addr=None if info is None else info.remote_addr,
            reconnect_attempts=self.reconnect_attempts,
        )


@dataclass(slots=True)
class _Admission:
    """Open sockets, in total and per remote IP (inbound only), against the configured limits."""

    open: int = 0
    per_ip: collections.Counter[str] = field(default_factory=collections.Counter)

    def refusal(self, ip: str, config: PeerManagerConfig) -> str | None:
        if self.open >= config.max_connections:
            return f"{self.open} connections already open"
        if self.per_ip[ip] >= config.max_connections_per_ip:
            return f"{self.per_ip[ip]} connections already from {ip}"
        return None

    def enter(self, ip: str | None = None) -> None:
        self.open += 1
        if ip is not None:
            self.per_ip[ip] += 1

    def leave(self, ip: str | None = None) -> None:
        self.open -= 1
        if ip is not None:
            self.per_ip[ip] -= 1
            if self.per_ip[ip] <= 0:
                del self.per_ip[ip]


class PeerManager:
    """The node's peers: ``await listen(...)`` and/or ``await connect(...)``, then ``await close()``."""

    def __init__(
        self, node_key: PrivateKey, network: Network, config: PeerManagerConfig | None = None
    ) -> None:
        self._key = node_key
        self.node_id = node_key.public_key.data
        self.network = network
        self.config = config or PeerManagerConfig()
        self._protocol_config = ProtocolConfig(features=self.config.features, chains=(network.chain_hash,))
        self._slots: dict[bytes, _Slot] = {}
        self._dispatch = MessageDispatcher()
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._handshaking: set[asyncio.StreamWriter] = set()
        self._admission = _Admission()
        self._closing = False
        self._changes = ChangeSignal()

    # -------------------------------------------------------------- public API

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        """Accept connections on ``host:port`` (0 picks a free port); returns the bound address."""
        if self.closing:
            raise PeerError("peer manager is closed")
        try:
            server = await asyncio.start_server(self._accept, host, port)
        except OSError as exc:
            raise PeerError(f"cannot listen on {format_host_port(host, port)}: {exc}") from exc
        self._servers.append(server)
        bound = server.sockets[0].getsockname()
        logger.info("listening on %s", format_host_port(str(bound[0]), int(bound[1])))
        return str(bound[0]), int(bound[1])

    async def connect(self, node_id: bytes, host: str, port: int, *, persistent: bool = False) -> PeerRecord:
        """Connect (or return the existing connection) and wait until ``init`` has been exchanged.

        ``persistent`` peers are redialed with backoff whenever their
        connection drops, including when this first attempt fails.
        """
        if self.closing:
            raise PeerError("peer manager is closed")
        if node_id == self.node_id:
            raise PeerError("refusing to connect to ourselves")
        slot = self._slot(node_id)
        slot.dial_address = (host, port)
        slot.persistent = slot.persistent or persistent
        if slot.conn is not None and slot.conn.ready:
            return slot.record()
        try:
            await self._dial(slot)
        except PeerError:
            if slot.persistent:
                self._schedule_reconnect(slot)
            else:
                self._forget_if_idle(slot)
            raise
        return slot.record()

    def set_persistent(
        self, node_id: bytes, persistent: bool = True, *, address: tuple[str, int] | None = None
    ) -> None:
        """Mark a peer to be kept connected (the node does so for peers it has channels with)."""
        slot = self._slot(node_id)
        slot.persistent = persistent
        if address is not None:
            slot.dial_address = address
        if not persistent:
            if slot.reconnect_task is not None:
                slot.reconnect_task.cancel()
            self._forget_if_idle(slot)
        elif slot.conn is None:
            self._schedule_reconnect(slot)
        self._notify()

    async def disconnect(self, node_id: bytes, reason: str = "disconnect requested") -> None:
        """Close the connection to ``node_id``; a persistent peer is redialed later all the same."""
        slot = self._slots.get(node_id)
        if slot is None or slot.conn is None:
            raise PeerError(f"not connected to {node_id.hex()}")
        conn = slot.conn
        conn.close(reason)
        await conn.wait_closed()

    def list_peers(self) -> list[PeerRecord]:
        """Connected peers and persistent ones (connected or not)."""
        return [
            slot.record()
            for slot in self._slots.values()
            if slot.persistent or (slot.conn is not None and slot.conn.ready)
        ]

    def peer(self, node_id: bytes) -> PeerRecord | None:
        slot = self._slots.get(node_id)
        return None if slot is None else slot.record()

    def is_connected(self, node_id: bytes) -> bool:
        slot = self._slots.get(node_id)
        return slot is not None and slot.conn is not None and slot.conn.ready

    @property
    def closing(self) -> bool:
        return self._closing

    def _shutting_down(self) -> bool:
        # A call, not an attribute, so that mypy doesn't carry a check from before an ``await``.
        return self._closing

    @property
    def connection_count(self) -> int:
        """Open sockets, handshakes in progress included."""
        return self._admission.open

    def register_handler(self, types: int | str | Iterable[int | str], handler: MessageHandler) -> None:
        """Route messages of these types (numbers or BOLT names) to ``handler(peer_id, message)``.

        Handlers run in the order messages arrive, one at a time per peer:
        slow work belongs in a task of its own.  A handler raising
        ``PeerError`` closes that peer's connection.  Registering an unknown
        type (custom messages, odd types >= 32768) makes the peer layer
        deliver it instead of ignoring it.
        """
        self._dispatch.register(types, handler)

    def unregister_handler(self, types: int | str | Iterable[int | str], handler: MessageHandler) -> None:
        self._dispatch.unregister(types, handler)

    def subscribe(self, callback: PeerEventCallback) -> None:
        """Be told of every ``PeerConnected`` / ``PeerDisconnected``, in order per peer."""
        self._dispatch.subscribe(callback)

    async def send(self, node_id: bytes, message: Message | UnknownMessage) -> None:
        """Send one message; safe to call from many tasks at once."""
        await self._ready_connection(node_id).send(message)

    async def ping(
        self, node_id: bytes, num_pong_bytes: int = 0, padding: int = 0, timeout: float = 10.0
    ) -> float | None:
        """Ping a peer; returns the round trip in seconds, or ``None`` if ``num_pong_bytes`` asks for none."""
        return await self._ready_connection(node_id).ping(num_pong_bytes, padding, timeout)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until ``predicate()`` holds, re-checking on every peer state change."""
        await self._changes.wait_for(predicate, timeout)

    async def close(self) -> None:
        """Stop listening, stop reconnecting, close every connection and wait for it all to end."""
        if self.closing:
            return
        self._closing = True
        for server in self._servers:
            server.close()
        for slot in self._slots.values():
            if slot.reconnect_task is not None:
                slot.reconnect_task.cancel()
            if slot.conn is not None:
                slot.conn.close("shutting down")
        for writer in list(self._handshaking):
            writer.close()
        tasks = [task for task in self._tasks if task is not asyncio.current_task()]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=self.config.handshake_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._notify()

    # -------------------------------------------------------------- connections

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        peer = writer.get_extra_info("peername")
        ip, port = (str(peer[0]), int(peer[1])) if peer else ("?", 0)
        where = format_host_port(ip, port)
        refusal = "shutting down" if self.closing else self._admission.refusal(ip, self.config)
        if refusal is not None:
            logger.warning("refusing %s: %s", where, refusal)
            writer.close()
            return
        self._admission.enter(ip)
        self._notify()
        try:
            self._handshaking.add(writer)
            try:
                transport = await accept_incoming(
                    reader, writer, self._key.secret, self.config.handshake_timeout
                )
            except PeerError as exc:
                logger.info("inbound %s: %s", where, exc)
                return
            finally:
                self._handshaking.discard(writer)
            remote = net_address(ip, port)
            if remote is not None and not (self.config.report_private_remote_addr or is_public(remote)):
                remote = None
            if self._shutting_down():
                writer.close()
                return
            known = self._slots.get(transport.remote_static_pub)
            existing = None if known is None else known.conn
            if existing is not None and self._yields_to(existing, outgoing=False):
                writer.close()
                return
            conn = self._make_connection(reader, writer, transport, outgoing=False, remote_addr=remote)
            await self._serve(conn, self._attach(conn))
        finally:
            self._admission.leave(ip)
            self._notify()

    async def _dial(self, slot: _Slot) -> PeerConnection:
        assert slot.dial_address is not None
        host, port = slot.dial_address
        timeout = self.config.handshake_timeout
        self._admission.enter()
        counted = True
        try:
            reader, writer, transport = await open_outgoing(
                host, port, self._key.secret, slot.node_id, timeout
            )
            existing = slot.conn
            if existing is not None and self._yields_to(existing, outgoing=True):
                writer.close()
                conn = existing
            else:
                conn = self._make_connection(reader, writer, transport, outgoing=True, remote_addr=None)
                old = self._attach(conn)
                counted = False  # from here the serving task owns the count
                self._spawn(self._serve_counted(conn, old))
        finally:
            if counted:
                self._admission.leave()
                self._notify()
        try:
            await conn.wait_ready(timeout)
        except PeerError:
            conn.close("init not completed")
            replacement = slot.conn
            if replacement is None or replacement is conn:
                raise
            # The peer's own connection to us crossed ours and won: it serves just as well.
            await replacement.wait_ready(timeout)
            return replacement
        return conn

    async def _serve_counted(self, conn: PeerConnection, old: PeerConnection | None) -> None:
        try:
            await self._serve(conn, old)
        finally:
            self._admission.leave()
            self._notify()

    def _make_connection(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        transport: NoiseTransport,
        *,
        outgoing: bool,
        remote_addr: NetAddress | None,
    ) -> PeerConnection:
        protocol = PeerProtocol(
            self._protocol_config, remote_addr=remote_addr, is_handled=self._dispatch.is_handled
        )
        return PeerConnection(
            reader,
            writer,
            transport,
            protocol,
            self,
            outgoing=outgoing,
            init_timeout=self.config.handshake_timeout,
            ping_interval=self.config.ping_interval,
            send_timeout=self.config.send_timeout,
        )

    def _attach(self, conn: PeerConnection) -> PeerConnection | None:
        """Make ``conn`` the peer's connection; the one it replaces is closed and returned."""
        slot = self._slot(conn.node_id)
        old, slot.conn = slot.conn, conn
        slot.last_outgoing = conn.outgoing
        if old is not None and not old.closed:
            old.close("replaced by a newer connection")
        if slot.reconnect_task is not None and slot.reconnect_task is not asyncio.current_task():
            slot.reconnect_task.cancel()
        self._notify()
        return old

    async def _serve(self, conn: PeerConnection, old: PeerConnection | None) -> None:
        slot = self._slot(conn.node_id)
        if old is not None:
            # Upper layers must see the old connection go before the new one arrives.
            await self._dispatch.announce_disconnected(old, "replaced by a newer connection")
        try:
            await conn.run()
        finally:
            reason = conn.close_reason or "closed"
            await self._dispatch.announce_disconnected(conn, reason)
            if slot.conn is conn:
                slot.conn = None
                uptime = 0.0 if conn.ready_at is None else time.monotonic() - conn.ready_at
                slot.backoff.connection_lasted(uptime, self.config.reconnect_stable_after)
                if slot.persistent and not self.closing:
                    self._schedule_reconnect(slot)
                else:
                    self._forget_if_idle(slot)
            self._notify()

    # -------------------------------------------------------------- reconnection

    def _schedule_reconnect(self, slot: _Slot) -> None:
        if self.closing or slot.dial_address is None:
            return
        if slot.reconnect_task is not None and not slot.reconnect_task.done():
            return
        slot.reconnect_task = self._spawn(self._reconnect_loop(slot))

    async def _reconnect_loop(self, slot: _Slot) -> None:
        while slot.persistent and not self.closing and slot.conn is None and slot.dial_address:
            delay = slot.backoff.next()
            logger.debug("reconnecting to %s in %.2f s", slot.node_id.hex(), delay)
            await asyncio.sleep(delay)
            if not slot.persistent or self.closing or _has_connection(slot):
                return
            slot.reconnect_attempts += 1
            self._notify()
            try:
                await self._dial(slot)
            except PeerError as exc:
                logger.info("reconnection to %s failed: %s", slot.node_id.hex(), exc)
                continue
            return

    # -------------------------------------------------------------- ConnectionListener

    async def connection_ready(self, conn: PeerConnection, event: PeerReady) -> None:
        slot = self._slot(conn.node_id)
        if slot.conn is not conn:
            return
        slot.last_info = event
        logger.info(
            "peer %s (%s, %s) ready: %s",
            conn.node_id.hex(),
            conn.address,
            "outgoing" if conn.outgoing else "incoming",
            ", ".join(event.negotiated.names()),
        )
        self._notify()
        connected = PeerConnected(conn.node_id, event.features, event.negotiated, conn.outgoing, conn.address)
        await self._dispatch.announce_connected(conn, connected)

    async def message_received(self, conn: PeerConnection, message: Message | UnknownMessage) -> None:
        await self._dispatch.deliver(conn, message)

    async def error_received(self, conn: PeerConnection, event: ErrorReceived) -> None:
        await self._dispatch.deliver_error(conn, event)

    # -------------------------------------------------------------- helpers

    def _slot(self, node_id: bytes) -> _Slot:
        slot = self._slots.get(node_id)
        if slot is None:
            backoff = Backoff(self.config.reconnect_initial_delay, self.config.reconnect_max_delay)
            slot = self._slots[node_id] = _Slot(node_id, backoff)
        return slot

    def _forget_if_idle(self, slot: _Slot) -> None:
        if slot.conn is None and not slot.persistent and self._slots.get(slot.node_id) is slot:
            del self._slots[slot.node_id]

    def _yields_to(self, existing: PeerConnection, *, outgoing: bool) -> bool:
        window = self.config.crossed_connection_window
        if crossed_connection_loses(existing, outgoing=outgoing, our_id=self.node_id, window=window):
            logger.info("peer %s: keeping the connection that crossed this one", existing.node_id.hex())
            return True
        return False

    def _ready_connection(self, node_id: bytes) -> PeerConnection:
        slot = self._slots.get(node_id)
        if slot is None or slot.conn is None or not slot.conn.ready:
            raise PeerError(f"not connected to {node_id.hex()}")
        return slot.conn

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _notify(self) -> None:
        self._changes.notify()


def crossed_connection_loses(
    existing: PeerConnection, *, outgoing: bool, our_id: bytes, window: float
) -> bool:
    """Whether a new connection (in direction ``outgoing``) must yield to a young one going the other way.

    When two nodes dial each other at once, "newest wins" on both sides can
    close both connections.  Both sides instead keep the connection that the
    node with the lower id initiated, so they keep the same one.  An older
    connection is replaced as usual: the peer probably restarted.
    """
    if existing.closed or existing.outgoing == outgoing:
        return False
    if time.monotonic() - existing.connected_at > window:
        return False
    return existing.outgoing == (our_id < existing.node_id)


def _has_connection(slot: _Slot) -> bool:
    # A function, so that type narrowing from before an ``await`` doesn't stick to ``slot.conn``.
    return slot.conn is not None
