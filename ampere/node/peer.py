"""One peer connection over asyncio streams: the BOLT #8 handshake, framing, and the BOLT #1 protocol.

``PeerConnection.run`` drives a ``PeerProtocol`` from the socket: it sends
``init``, reads frames until the connection ends, answers pings, sends
keep-alive pings, and hands everything meant for the layers above to a
``ConnectionListener`` (the ``PeerManager``).  Writes from any number of
tasks go through one lock, which keeps frames and nonces in the same order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Protocol

from ampere.crypto.noise import (
    ACT_ONE_SIZE,
    ACT_THREE_SIZE,
    ACT_TWO_SIZE,
    HEADER_SIZE,
    MAC_SIZE,
    NoiseError,
    NoiseInitiator,
    NoiseResponder,
    NoiseTransport,
)
from ampere.node.peer_address import format_host_port
from ampere.node.peer_protocol import (
    Action,
    Disconnect,
    ErrorReceived,
    MessageReceived,
    PeerError,
    PeerProtocol,
    PeerReady,
    PongReceived,
    SendMessage,
)
from ampere.wire import EncodeError, Message, UnknownMessage, encode_message

__all__ = [
    "ConnectionListener",
    "PeerConnection",
    "PeerError",
    "accept_incoming",
    "handshake_incoming",
    "handshake_outgoing",
    "open_outgoing",
]

logger = logging.getLogger(__name__)

#: How long a closing connection may take to flush before it is aborted.
CLOSE_GRACE = 2.0
#: Bytes queued in the socket's buffer before a sender waits for the peer to read.
DRAIN_THRESHOLD = 256 * 1024


async def handshake_outgoing(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, local_key: bytes, remote_id: bytes
) -> NoiseTransport:
    """BOLT #8 as initiator; the caller bounds it with a timeout."""
    initiator = NoiseInitiator(local_key, remote_id)
    writer.write(initiator.act_one())
    await writer.drain()
    act_two = await reader.readexactly(ACT_TWO_SIZE)
    act_three, transport = initiator.read_act_two(act_two)
    writer.write(act_three)
    await writer.drain()
    return transport


async def handshake_incoming(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, local_key: bytes
) -> NoiseTransport:
    """BOLT #8 as responder; the peer's node id is ``transport.remote_static_pub``."""
    responder = NoiseResponder(local_key)
    act_one = await reader.readexactly(ACT_ONE_SIZE)
    writer.write(responder.read_act_one(act_one))
    await writer.drain()
    act_three = await reader.readexactly(ACT_THREE_SIZE)
    return responder.read_act_three(act_three)


async def open_outgoing(
    host: str, port: int, local_key: bytes, remote_id: bytes, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, NoiseTransport]:
    """Dial and handshake within ``timeout`` each; any failure is a ``PeerError`` saying which step."""
    where = format_host_port(host, port)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as exc:
        raise PeerError(f"cannot reach {where}: {describe_failure(exc)}") from exc
    try:
        transport = await asyncio.wait_for(handshake_outgoing(reader, writer, local_key, remote_id), timeout)
    except (TimeoutError, asyncio.IncompleteReadError, NoiseError, OSError) as exc:
        writer.close()
        raise PeerError(
            f"handshake with {remote_id.hex()} at {where} failed: {describe_failure(exc)}"
        ) from exc
    return reader, writer, transport


async def accept_incoming(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, local_key: bytes, timeout: float
) -> NoiseTransport:
    """The responder's handshake within ``timeout``; a failure closes the socket and raises ``PeerError``."""
    try:
        return await asyncio.wait_for(handshake_incoming(reader, writer, local_key), timeout)
    except (TimeoutError, asyncio.IncompleteReadError, NoiseError, OSError) as exc:
        writer.close()
        raise PeerError(f"handshake failed: {describe_failure(exc)}") from exc


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, asyncio.IncompleteReadError):
        return f"connection closed after {len(exc.partial)} of {exc.expected} bytes"
    return str(exc) or type(exc).__name__


class ConnectionListener(Protocol):
    """What a connection reports to whoever manages it."""

    async def connection_ready(self, conn: PeerConnection, event: PeerReady) -> None: ...

    async def message_received(self, conn: PeerConnection, message: Message | UnknownMessage) -> None: ...

    async def error_received(self, conn: PeerConnection, event: ErrorReceived) -> None: ...


class PeerConnection:
    """An authenticated connection to one node.  Create it after the handshake, then ``await run()``."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        transport: NoiseTransport,
        protocol: PeerProtocol,
        listener: ConnectionListener,
        *,
        outgoing: bool,
        init_timeout: float,
        ping_interval: float | None,
        send_timeout: float,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._transport = transport
        self.protocol = protocol
        self._listener = listener
        self.outgoing = outgoing
        self._init_timeout = init_timeout
        self._ping_interval = ping_interval
        self._send_timeout = send_timeout
        self._write_lock = asyncio.Lock()
        self._ready = asyncio.Event()
        self._closed = asyncio.Event()
        self._close_reason: str | None = None
        self._pong_waiters: dict[int, asyncio.Future[float]] = {}
        self._ping_sent_at: dict[int, float] = {}
        self._keepalive_task: asyncio.Task[None] | None = None
        self._run_task: asyncio.Task[None] | None = None
        self.node_id = transport.remote_static_pub
        peer = writer.get_extra_info("peername")
        self.peer_host: str = str(peer[0]) if peer else "?"
        self.peer_port: int = int(peer[1]) if peer else 0
        self.connected_at = time.monotonic()
        self.ready_at: float | None = None
        self.info: PeerReady | None = None
        self.messages_in = 0
        self.messages_out = 0

    def __repr__(self) -> str:
        direction = "out" if self.outgoing else "in"
        return f"<PeerConnection {self.node_id.hex()[:16]} {direction} {self.address}>"

    @property
    def address(self) -> str:
        return format_host_port(self.peer_host, self.peer_port)

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and not self.closed

    @property
    def closed(self) -> bool:
        return self._close_reason is not None

    @property
    def close_reason(self) -> str | None:
        return self._close_reason

    async def wait_ready(self, timeout: float) -> None:
        """Wait until ``init`` has been exchanged; ``PeerError`` if the connection ends first."""
        ready = asyncio.ensure_future(self._ready.wait())
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({ready, closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            closed.cancel()
        if self.closed:
            raise PeerError(f"connection to {self.node_id.hex()} closed: {self._close_reason}")
        if not self._ready.is_set():
            raise PeerError(f"no init from {self.node_id.hex()} within {timeout} s")

    async def wait_closed(self) -> None:
        await self._closed.wait()
        if self._run_task is not None and self._run_task is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._run_task)

    # -------------------------------------------------------------- the read loop

    async def run(self) -> None:
        """Serve the connection until it ends; never raises (the reason is kept in ``close_reason``)."""
        self._run_task = asyncio.current_task()
        try:
            await self._execute(self.protocol.start())
            while not self.closed:
                if self.protocol.ready:
                    data = await self._read_message()
                else:
                    # The handshake proved who they are, not that they will talk: bound the wait for init.
                    data = await asyncio.wait_for(self._read_message(), self._init_timeout)
                self.messages_in += 1
                await self._execute(self.protocol.receive(data))
        except asyncio.IncompleteReadError:
            self._mark_closed("connection closed by peer")
        except TimeoutError:
            self._mark_closed(f"no init within {self._init_timeout} s")
        except NoiseError as exc:
            self._mark_closed(f"transport error: {exc}")
        except (ConnectionError, OSError) as exc:
            self._mark_closed(f"socket error: {exc}")
        except PeerError as exc:
            self._mark_closed(str(exc))
        except Exception as exc:
            logger.exception("peer %s: internal error", self.node_id.hex())
            self._mark_closed(f"internal error: {exc!r}")
        except asyncio.CancelledError:
            self._mark_closed("cancelled")
            raise
        finally:
            self._mark_closed("connection ended")
            await self._teardown()

    async def _read_message(self) -> bytes:
        header = await self._reader.readexactly(HEADER_SIZE)
        length = self._transport.decrypt_header(header)
        body = await self._reader.readexactly(length + MAC_SIZE)
        return self._transport.decrypt_body(body)

    async def _execute(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SendMessage):
                await self._write(action.message)
            elif isinstance(action, Disconnect):
                self._mark_closed(action.reason)
            elif isinstance(action, PeerReady):
                self.info = action
                self.ready_at = time.monotonic()
                self._ready.set()
                if self._ping_interval:
                    self._keepalive_task = asyncio.create_task(self._keepalive_loop())
                await self._listener.connection_ready(self, action)
            elif isinstance(action, MessageReceived):
                await self._listener.message_received(self, action.message)
            elif isinstance(action, ErrorReceived):
                await self._listener.error_received(self, action)
            elif isinstance(action, PongReceived):
                self._pong_arrived(action)

    # -------------------------------------------------------------- writing

    async def send(self, message: Message | UnknownMessage) -> None:
        """Send a message from the layers above (``PeerError`` if the connection is not usable)."""
        self.protocol.check_sendable(message)
        await self._write(message)

    async def _write(self, message: Message | UnknownMessage) -> None:
        try:
            data = encode_message(message)
        except EncodeError as exc:
            raise PeerError(f"cannot send {message.name}: {exc}") from exc
        async with self._write_lock:
            if self._writer.is_closing():
                raise PeerError(f"connection to {self.node_id.hex()} is closed")
            # Encrypting under the lock keeps the nonce order equal to the order on the wire.
            self._writer.write(self._transport.encrypt_message(data))
            self.messages_out += 1
            if self._writer.transport.get_write_buffer_size() < DRAIN_THRESHOLD:
                return  # the common case; a timed drain costs a task per message
            try:
                await asyncio.wait_for(self._writer.drain(), self._send_timeout)
            except TimeoutError:
                self._mark_closed(f"peer did not read for {self._send_timeout} s")
                raise PeerError(f"send to {self.node_id.hex()} timed out") from None
            except (ConnectionError, OSError) as exc:
                self._mark_closed(f"socket error: {exc}")
                raise PeerError(f"send to {self.node_id.hex()} failed: {exc}") from exc

    # -------------------------------------------------------------- pings

    async def ping(self, num_pong_bytes: int, padding: int = 0, timeout: float = 10.0) -> float | None:
        """Ping and wait for the pong; returns the round trip in seconds (``None`` when none is due)."""
        token, actions = self.protocol.ping(num_pong_bytes, padding)
        waiter: asyncio.Future[float] | None = None
        if token is not None:
            waiter = asyncio.get_running_loop().create_future()
            self._pong_waiters[token] = waiter
            self._ping_sent_at[token] = time.monotonic()
        try:
            await self._execute(actions)
            if waiter is None:
                return None
            closed: asyncio.Future[Any] = asyncio.ensure_future(self._closed.wait())
            pending: set[asyncio.Future[Any]] = {waiter, closed}
            try:
                await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
            if waiter.done():
                return waiter.result()
            if self.closed:
                raise PeerError(f"connection closed before the pong: {self._close_reason}")
            raise PeerError(f"no pong within {timeout} s")
        finally:
            if token is not None:
                self._pong_waiters.pop(token, None)
                self._ping_sent_at.pop(token, None)

    def _pong_arrived(self, event: PongReceived) -> None:
        waiter = self._pong_waiters.pop(event.token, None)
        sent = self._ping_sent_at.pop(event.token, None)
        if waiter is not None and not waiter.done() and sent is not None:
            waiter.set_result(time.monotonic() - sent)

    async def _keepalive_loop(self) -> None:
        assert self._ping_interval is not None
        try:
            while not self.closed:
                await asyncio.sleep(self._ping_interval)
                await self._execute(self.protocol.keepalive())
        except PeerError:
            pass
        finally:
            if self.closed:
                self._wake_reader()

    # -------------------------------------------------------------- closing

    def close(self, reason: str) -> None:
        """Close on our side; ``run`` returns soon after."""
        self._mark_closed(reason)

    def _mark_closed(self, reason: str) -> None:
        if self._close_reason is None:
            # The one place every ending passes through, misbehaviour or not: log it here.
            logger.info("peer %s (%s): connection closed: %s", self.node_id.hex(), self.address, reason)
            self._close_reason = reason
            self.protocol.close(reason)
        self._wake_reader()

    def _wake_reader(self) -> None:
        # Closing the stream ends the read loop (EOF) even while it is blocked in readexactly.
        if not self._writer.is_closing():
            self._writer.close()
            asyncio.get_running_loop().call_later(CLOSE_GRACE, self._abort)
        if self._run_task is not None and self._run_task is not asyncio.current_task():
            # A read loop parked in a slow handler or a stalled read still has to end.
            self._reader.feed_eof()

    def _abort(self) -> None:
        # A peer that stopped reading would keep a graceful close (flush first) pending forever.
        self._writer.transport.abort()

    async def _teardown(self) -> None:
        if self._keepalive_task is not None and self._keepalive_task is not asyncio.current_task():
            self._keepalive_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._keepalive_task
        for waiter in self._pong_waiters.values():
            if not waiter.done():
                waiter.set_exception(PeerError(f"connection closed: {self._close_reason}"))
                waiter.exception()  # marks it retrieved: nobody may be waiting any more
        self._pong_waiters.clear()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), CLOSE_GRACE)
        self._closed.set()
