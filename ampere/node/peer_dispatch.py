"""Routing between connections and the layers above: message handlers, peer events, state changes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from ampere.node.peer import PeerConnection
from ampere.node.peer_protocol import ErrorReceived, PeerError
from ampere.wire import Features, Message, SchemaError, UnknownMessage, message_type

__all__ = [
    "ChangeSignal",
    "MessageDispatcher",
    "MessageHandler",
    "PeerConnected",
    "PeerDisconnected",
    "PeerEvent",
    "PeerEventCallback",
]

logger = logging.getLogger(__name__)

MessageHandler = Callable[[bytes, Message | UnknownMessage], Awaitable[None]]

#: Types the peer layer consumes itself (init, ping, pong); a handler for them would never run.
_RESERVED_TYPES = frozenset({16, 18, 19})


@dataclass(frozen=True, slots=True)
class PeerConnected:
    node_id: bytes
    features: Features
    negotiated: Features
    outgoing: bool
    address: str


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    node_id: bytes
    reason: str


PeerEvent = PeerConnected | PeerDisconnected
PeerEventCallback = Callable[[PeerEvent], Awaitable[None]]


class MessageDispatcher:
    """Handlers by message type, and subscribers to connection events."""

    def __init__(self) -> None:
        self._handlers: dict[int, list[MessageHandler]] = {}
        self._subscribers: list[PeerEventCallback] = []
        self._announced: set[PeerConnection] = set()

    def is_handled(self, msg_type: int) -> bool:
        return msg_type in self._handlers

    def register(self, types: int | str | Iterable[int | str], handler: MessageHandler) -> None:
        for msg_type in resolve_types(types):
            self._handlers.setdefault(msg_type, []).append(handler)

    def unregister(self, types: int | str | Iterable[int | str], handler: MessageHandler) -> None:
        for msg_type in resolve_types(types):
            handlers = self._handlers.get(msg_type, [])
            if handler in handlers:
                handlers.remove(handler)
            if not handlers:
                self._handlers.pop(msg_type, None)

    def subscribe(self, callback: PeerEventCallback) -> None:
        self._subscribers.append(callback)

    async def deliver(self, conn: PeerConnection, message: Message | UnknownMessage) -> None:
        handlers = self._handlers.get(message.type)
        if not handlers:
            logger.debug("peer %s: no handler for %s", conn.node_id.hex(), message.name)
            return
        for handler in list(handlers):
            try:
                await handler(conn.node_id, message)
            except PeerError as exc:
                conn.close(f"{message.name} handler: {exc}")
                return
            except Exception:
                logger.exception("peer %s: handler for %s failed", conn.node_id.hex(), message.name)

    async def deliver_error(self, conn: PeerConnection, event: ErrorReceived) -> None:
        kind = "warning" if event.warning else "error"
        scope = "all channels" if event.all_channels else f"channel {event.channel_id.hex()}"
        logger.warning("peer %s sent %s (%s): %s", conn.node_id.hex(), kind, scope, event.text)
        await self.deliver(conn, event.message)

    async def announce_connected(self, conn: PeerConnection, event: PeerConnected) -> None:
        self._announced.add(conn)
        await self._publish(event)

    async def announce_disconnected(self, conn: PeerConnection, reason: str) -> None:
        """Tell subscribers, once, that a connection they were told about has gone."""
        if conn in self._announced:
            self._announced.discard(conn)
            await self._publish(PeerDisconnected(conn.node_id, reason))

    async def _publish(self, event: PeerEvent) -> None:
        for callback in list(self._subscribers):
            try:
                await callback(event)
            except Exception:
                logger.exception("peer event subscriber failed on %s", type(event).__name__)


def resolve_types(types: int | str | Iterable[int | str]) -> list[int]:
    """Message types from numbers and BOLT names; ``PeerError`` for unknown names and reserved types."""
    items: Iterable[int | str] = [types] if isinstance(types, int | str) else types
    resolved: list[int] = []
    for item in items:
        if isinstance(item, str):
            try:
                msg_type = message_type(item)
            except SchemaError as exc:
                raise PeerError(f"unknown message name {item!r}") from exc
        else:
            msg_type = item
        if not 0 <= msg_type <= 0xFFFF:
            raise PeerError(f"message type {msg_type} out of range")
        if msg_type in _RESERVED_TYPES:
            raise PeerError(f"message type {msg_type} is handled by the peer layer itself")
        resolved.append(msg_type)
    return resolved


class ChangeSignal:
    """Wakes everyone waiting for "something changed" (``wait_for``), with no polling."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout} s")
            event = self._event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
