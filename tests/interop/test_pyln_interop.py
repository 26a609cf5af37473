"""Interop with pyln-proto, an independent BOLT 8 implementation: handshake, init, ping/pong, key rotation.

pyln-proto lives in its own virtualenv (.venv-interop, made by setup_interop_venv.sh) and runs as a
subprocess (pyln_peer.py).  Without that virtualenv the tests skip, except under CI=true, where
they fail: the issue requires interop to be checked.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.network import Network
from ampere.node.peer_manager import PeerManager
from ampere.node.peer_protocol import DEFAULT_FEATURES
from ampere.wire import Feature, Features, Message, UnknownMessage
from tests.node.helpers import WAIT, async_test, running_manager

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SETUP = HERE / "setup_interop_venv.sh"
SCRIPT = HERE / "pyln_peer.py"
VENV = Path(os.environ.get("INTEROP_VENV", ROOT / ".venv-interop"))
PYLN_FEATURES = Features.from_bit_numbers([1, 9, 13, 15, 101])
ECHO_REQUEST, ECHO_REPLY = 32769, 32771
#: More than 500 messages each way, so both directions go through BOLT 8 key rotation (every 1000 nonces).
ECHO_COUNT = 700


def _interop_python() -> Path:
    python = VENV / "bin" / "python"
    # Outside the work tree, so that no stray file shows up in git status.
    digest = hashlib.sha256(str(VENV).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"ampere-interop-venv-{digest}.lock"
    with lock_path.open("w") as lock:
        # pytest-xdist workers may get here together; one creates the venv, the other waits.
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(
            ["bash", str(SETUP)],
            env={**os.environ, "INTEROP_VENV": str(VENV)},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if result.returncode != 0 or not python.exists():
        message = (
            f"the pyln-proto interop virtualenv could not be created ({SETUP} exited {result.returncode}): "
            f"{result.stderr.strip()[-2000:]}"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message + " -- run `make interop-venv` with network access to the package index")
    return python


@pytest.fixture(scope="session")
def pyln_python() -> Path:
    return _interop_python()


class Events:
    """The JSON lines the pyln peer prints, read in order."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        self._stdout = proc.stdout
        self.seen: list[dict[str, Any]] = []

    async def expect(self, name: str, timeout: float = WAIT) -> dict[str, Any]:
        while True:
            line = await asyncio.wait_for(self._stdout.readline(), timeout)
            if not line:
                raise AssertionError(f"pyln peer exited before {name!r}; saw {self.seen}")
            event: dict[str, Any] = json.loads(line)
            self.seen.append(event)
            if event["event"] == name:
                return event


@asynccontextmanager
async def pyln_peer(python: Path, *args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, Events]]:
    proc = await asyncio.create_subprocess_exec(
        str(python), str(SCRIPT), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        yield proc, Events(proc)
    finally:
        if proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), WAIT)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _exercise(node: PeerManager, pyln_id: bytes, events: Events) -> dict[str, Any]:
    """What both directions check once the connection is up; returns pyln's report of our init."""
    [record] = node.list_peers()
    assert record.connected and record.features == PYLN_FEATURES
    assert record.negotiated is not None and record.negotiated.has(Feature.STATIC_REMOTEKEY)
    init = await events.expect("init")
    assert Features.from_bytes(bytes.fromhex(init["features"])) == DEFAULT_FEATURES
    assert init["networks"] == [Network.REGTEST.chain_hash.hex()]
    assert (await events.expect("pong"))["length"] == 42  # we answered pyln's ping
    rtt = await node.ping(pyln_id, num_pong_bytes=300, padding=20)
    assert rtt is not None
    assert (await events.expect("ping"))["num_pong_bytes"] == 300

    echoes: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_echo(_peer: bytes, message: Message | UnknownMessage) -> None:
        assert isinstance(message, UnknownMessage)
        await echoes.put(message.payload)

    node.register_handler(ECHO_REPLY, on_echo)
    payloads = [i.to_bytes(2, "big") * (1 + i % 40) for i in range(ECHO_COUNT)]
    for payload in payloads:
        await node.send(pyln_id, UnknownMessage(ECHO_REQUEST, payload))
    got = [await asyncio.wait_for(echoes.get(), WAIT) for _ in payloads]
    assert got == payloads
    assert await node.ping(pyln_id, 1) is not None  # still in step after key rotation

    await node.disconnect(pyln_id)
    closed = await events.expect("closed")
    assert closed["echoed"] == ECHO_COUNT
    return init


@async_test
async def test_our_dialer_with_pyln_listener(pyln_python: Path) -> None:
    key = PrivateKey.generate()
    async with pyln_peer(pyln_python, "listen", "--key", key.secret.hex()) as (proc, events):
        listening = await events.expect("listening")
        pyln_id = bytes.fromhex(listening["node_id"])
        assert pyln_id == key.public_key.data
        async with running_manager(listen=False) as (node, _):
            record = await node.connect(pyln_id, "127.0.0.1", int(listening["port"]))
            assert record.connected
            accepted = await events.expect("accepted")
            assert accepted["peer"] == node.node_id.hex()
            init = await _exercise(node, pyln_id, events)
            assert init["remote_addr"] is None  # only the receiving side reports it
        assert await asyncio.wait_for(proc.wait(), WAIT) == 0


@async_test
async def test_pyln_dialer_with_our_listener(pyln_python: Path) -> None:
    key = PrivateKey.generate()
    pyln_id = key.public_key.data
    async with running_manager() as (node, port):
        args = ("connect", "--key", key.secret.hex(), "--node-id", node.node_id.hex(), "--port", str(port))
        async with pyln_peer(pyln_python, *args) as (proc, events):
            await events.expect("connected")
            await node.wait_for(lambda: node.is_connected(pyln_id), WAIT)
            init = await _exercise(node, pyln_id, events)
        assert await asyncio.wait_for(proc.wait(), WAIT) == 0
    # We were the receiver, so our init told pyln the address we see it at (BOLT 7 IPv4 descriptor).
    remote_addr = bytes.fromhex(init["remote_addr"])
    assert remote_addr[:5] == bytes([1, 127, 0, 0, 1]) and len(remote_addr) == 7
