"""Test helpers for the peer layer: an async test runner, running managers, and a scripted peer.

The scripted peer speaks BOLT #8 with the project's own noise module over a
raw asyncio socket, so that tests can send exactly the bytes they want
(garbage, half handshakes, unknown even messages) to a real ``PeerManager``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.network import Network
from ampere.crypto.noise import (
    ACT_TWO_SIZE,
    HEADER_SIZE,
    MAC_SIZE,
    NoiseInitiator,
    NoiseTransport,
)
from ampere.node.peer_manager import PeerManager, PeerManagerConfig
from ampere.node.peer_protocol import DEFAULT_FEATURES
from ampere.wire import (
    Features,
    FieldValue,
    Message,
    UnknownMessage,
    decode_message,
    encode_message,
    make_message,
)

P = ParamSpec("P")
T = TypeVar("T")

#: Upper bound for one whole test; individual waits use much shorter timeouts.
TEST_TIMEOUT = 30.0
#: How long a test waits for something that should happen promptly.
WAIT = 5.0


def async_test(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """Run an async test in a fresh event loop with an overall timeout (no pytest-asyncio needed)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        async def bounded() -> T:
            return await asyncio.wait_for(fn(*args, **kwargs), TEST_TIMEOUT)

        return asyncio.run(bounded())

    return wrapper


def fast_config(**overrides: Any) -> PeerManagerConfig:
    """Short timeouts and no keep-alive unless a test asks for it."""
    base: dict[str, Any] = {
        "handshake_timeout": 3.0,
        "ping_interval": None,
        "reconnect_initial_delay": 0.05,
        "reconnect_max_delay": 0.4,
        "report_private_remote_addr": True,
    }
    base.update(overrides)
    return PeerManagerConfig(**base)


@contextlib.asynccontextmanager
async def running_manager(
    config: PeerManagerConfig | None = None, *, network: Network = Network.REGTEST, listen: bool = True
) -> AsyncIterator[tuple[PeerManager, int]]:
    """A manager listening on 127.0.0.1 (port 0); yields it and its bound port, closes it afterwards."""
    manager = PeerManager(PrivateKey.generate(), network, config or fast_config())
    port = 0
    try:
        if listen:
            _host, port = await manager.listen("127.0.0.1", 0)
        yield manager, port
    finally:
        await manager.close()


async def connected_pair(a: PeerManager, b: PeerManager, b_port: int, *, persistent: bool = False) -> None:
    """``a`` dials ``b`` and both see the other as connected."""
    await a.connect(b.node_id, "127.0.0.1", b_port, persistent=persistent)
    await b.wait_for(lambda: b.is_connected(a.node_id), WAIT)


class ScriptedPeer:
    """A hand-driven Lightning peer for misbehaviour tests."""

    def __init__(self, key: PrivateKey | None = None) -> None:
        self.key = key or PrivateKey.generate()
        self.node_id = self.key.public_key.data
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.transport: NoiseTransport | None = None

    async def open(self, port: int, host: str = "127.0.0.1") -> ScriptedPeer:
        self.reader, self.writer = await asyncio.open_connection(host, port)
        return self

    async def handshake(self, remote_id: bytes) -> None:
        reader, writer = self._streams()
        initiator = NoiseInitiator(self.key.secret, remote_id)
        writer.write(initiator.act_one())
        act_two = await asyncio.wait_for(reader.readexactly(ACT_TWO_SIZE), WAIT)
        act_three, self.transport = initiator.read_act_two(act_two)
        writer.write(act_three)
        await writer.drain()

    async def connect(self, port: int, remote_id: bytes) -> ScriptedPeer:
        await self.open(port)
        await self.handshake(remote_id)
        return self

    async def write(self, data: bytes) -> None:
        _reader, writer = self._streams()
        writer.write(data)
        await writer.drain()

    async def send_raw(self, plaintext: bytes) -> None:
        """Encrypt and frame arbitrary message bytes (the type included)."""
        assert self.transport is not None, "handshake first"
        await self.write(self.transport.encrypt_message(plaintext))

    async def send(self, message: Message | UnknownMessage) -> None:
        await self.send_raw(encode_message(message))

    async def recv_raw(self, timeout: float = WAIT) -> bytes:
        reader, _writer = self._streams()
        assert self.transport is not None, "handshake first"
        header = await asyncio.wait_for(reader.readexactly(HEADER_SIZE), timeout)
        length = self.transport.decrypt_header(header)
        body = await asyncio.wait_for(reader.readexactly(length + MAC_SIZE), timeout)
        return self.transport.decrypt_body(body)

    async def recv(self, timeout: float = WAIT) -> Message | UnknownMessage:
        return decode_message(await self.recv_raw(timeout))

    async def recv_named(self, name: str, timeout: float = WAIT) -> Message:
        """Skip messages until one called ``name`` arrives (pings from keep-alive, for instance)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = await self.recv(max(deadline - loop.time(), 0.01))
            if message.name == name:
                assert isinstance(message, Message)
                return message

    async def init(
        self,
        features: Features = DEFAULT_FEATURES,
        chains: tuple[bytes, ...] | None = (Network.REGTEST.chain_hash,),
    ) -> Message:
        """Exchange ``init``: send ours, return theirs."""
        tlvs: dict[str, dict[str, FieldValue]] = {}
        if chains is not None:
            tlvs["networks"] = {"chains": chains}
        await self.send(make_message("init", globalfeatures=b"", features=features.to_bytes(), tlvs=tlvs))
        return await self.recv_named("init")

    async def expect_closed(self, timeout: float = WAIT) -> list[bytes]:
        """Read until the other side closes; returns the plaintext messages received meanwhile.

        Raises ``TimeoutError`` if the connection is still open after ``timeout``.
        """
        reader, _writer = self._streams()
        received: list[bytes] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError("connection still open")
                if self.transport is None:
                    chunk = await asyncio.wait_for(reader.read(4096), remaining)
                    if not chunk:
                        return received
                    continue
                received.append(await self.recv_raw(remaining))
        except (asyncio.IncompleteReadError, ConnectionError):
            return received

    def close(self) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.close()

    def _streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        assert self.reader is not None and self.writer is not None, "open first"
        return self.reader, self.writer


def ping(num_pong_bytes: int, padding: int = 0) -> Message:
    return make_message("ping", num_pong_bytes=num_pong_bytes, ignored=bytes(padding))


def names(messages: list[bytes]) -> list[str]:
    return [decode_message(m).name for m in messages]
