"""Real `ampere node` and `ampere chain` processes for end-to-end tests, driven through the CLI and RPC.

Everything binds port 0; readiness is a condition polled (rpc.json, then `getinfo`), never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

AMPERE = [sys.executable, "-m", "ampere.cli.main"]
STARTUP_TIMEOUT = 60.0
T = TypeVar("T")


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll `condition` until it returns something truthy; returns that."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class RpcConnection:
    """One kept-alive HTTP connection to a node's RPC, reopened when the server closes it."""

    def __init__(self, url: str, token: str | None) -> None:
        host_port = url.split("//", 1)[1].rstrip("/")
        host, _, port = host_port.rpartition(":")
        self.host, self.port = host, int(port)
        self.token = token
        self._conn: http.client.HTTPConnection | None = None
        self._ids = iter(range(1, 1 << 62))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def post(
        self, body: bytes, *, token: str | None = None, headers: dict[str, str] | None = None, path: str = "/"
    ) -> tuple[int, bytes]:
        """(HTTP status, body) of one POST; `token` overrides the connection's ("" sends none)."""
        sent = dict(headers or {})
        used = self.token if token is None else token
        if used:
            sent["Authorization"] = f"Bearer {used}"
        sent.setdefault("Content-Type", "application/json")
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                self._conn.request("POST", path, body=body, headers=sent)
                response = self._conn.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
                continue
            if response.will_close:
                self.close()
            return response.status, data
        raise AssertionError("unreachable")

    def call(self, method: str, params: Any = None, *, token: str | None = None) -> tuple[int, Any]:
        document = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or {}}
        status, data = self.post(json.dumps(document).encode(), token=token)
        return status, json.loads(data) if data else None

    def rpc(self, method: str, params: Any = None) -> Any:
        status, reply = self.call(method, params)
        assert status == 200, (status, reply)
        assert "error" not in reply, reply["error"]
        return reply["result"]


@dataclass
class NodeProcess:
    datadir: Path
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    _rpc: RpcConnection | None = field(default=None, repr=False)

    # --- files ---------------------------------------------------------------------------------------
    @property
    def rpc_info(self) -> dict[str, Any]:
        info: dict[str, Any] = json.loads((self.datadir / "rpc.json").read_text())
        return info

    @property
    def url(self) -> str:
        return str(self.rpc_info["url"])

    @property
    def admin_token(self) -> str:
        return (self.datadir / "admin.token").read_text().strip()

    @property
    def readonly_token(self) -> str:
        return (self.datadir / "readonly.token").read_text().strip()

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    # --- RPC -----------------------------------------------------------------------------------------
    def connection(self, token: str | None = None) -> RpcConnection:
        """A new connection (the caller closes it); `token` defaults to the admin token."""
        return RpcConnection(self.url, self.admin_token if token is None else token)

    @property
    def rpc_conn(self) -> RpcConnection:
        if self._rpc is None:
            self._rpc = self.connection()
        return self._rpc

    def rpc(self, method: str, params: Any = None) -> Any:
        return self.rpc_conn.rpc(method, params)

    def getinfo(self) -> dict[str, Any]:
        result: dict[str, Any] = self.rpc("getinfo")
        return result

    # --- CLI -----------------------------------------------------------------------------------------
    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*AMPERE, "--datadir", str(self.datadir), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"ampere {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    # --- process -------------------------------------------------------------------------------------
    def close_rpc(self) -> None:
        if self._rpc is not None:
            self._rpc.close()
            self._rpc = None

    def wait_exit(self, timeout: float = 30.0) -> int:
        self.close_rpc()
        return self.process.wait(timeout=timeout)

    def stop(self) -> int:
        """`ampere stop`, then wait for the process to exit."""
        if self.process.poll() is None:
            self.cli("stop")
        return self.wait_exit()

    def terminate(self, sig: int = signal.SIGTERM) -> int:
        self.close_rpc()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=30)

    def kill9(self) -> None:
        self.close_rpc()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


def launch_node(datadir: Path, *extra: str, stdin_text: str | None = None, tag: str = "") -> NodeProcess:
    """Start `ampere node` without waiting for it (see `start_node`)."""
    datadir.mkdir(parents=True, exist_ok=True)
    suffix = tag or str(int(time.monotonic() * 1000))
    stdout_path = datadir.parent / f"{datadir.name}.{suffix}.stdout"
    stderr_path = datadir.parent / f"{datadir.name}.{suffix}.stderr"
    args = [*AMPERE, "node", "--datadir", str(datadir), "--listen", "127.0.0.1:0", "--rpc-port", "0", *extra]
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    if stdin_text is not None:
        assert process.stdin is not None
        process.stdin.write(stdin_text.encode())
        process.stdin.close()
    return NodeProcess(datadir, process, stdout_path, stderr_path)


def start_node(datadir: Path, *extra: str, stdin_text: str | None = None) -> NodeProcess:
    """Start `ampere node` on port 0 and wait until it answers `getinfo`."""
    node = launch_node(datadir, *extra, stdin_text=stdin_text)
    wait_ready(node)
    return node


def wait_ready(node: NodeProcess, timeout: float = STARTUP_TIMEOUT) -> None:
    def ready() -> bool:
        if node.process.poll() is not None:
            raise AssertionError(f"ampere node exited with {node.process.returncode}:\n{node.stderr()}")
        if not (node.datadir / "rpc.json").exists():
            return False
        try:
            node.getinfo()
        except (OSError, http.client.HTTPException, ValueError):
            node.close_rpc()
            return False
        return True

    wait_for(ready, timeout=timeout, what=f"ampere node in {node.datadir}")


@contextlib.contextmanager
def running_node(datadir: Path, *extra: str) -> Iterator[NodeProcess]:
    node = start_node(datadir, *extra)
    try:
        yield node
    finally:
        stop_quietly(node)


def stop_quietly(node: NodeProcess) -> None:
    if node.process.poll() is None:
        try:
            node.terminate()
        except subprocess.TimeoutExpired:
            node.kill9()
    node.close_rpc()


# --- ampere chain ----------------------------------------------------------------------------------------


@dataclass
class ChainProcess:
    datadir: Path
    process: subprocess.Popen[bytes]
    url: str

    @property
    def cookie_file(self) -> Path:
        return self.datadir / "regtest" / ".cookie"

    def node_args(self) -> Sequence[str]:
        """What a node needs to use this chain."""
        return ("--chain", "bitcoind", "--bitcoind-rpc", self.url, "--bitcoind-cookie", str(self.cookie_file))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_chain(datadir: Path) -> ChainProcess:
    datadir.mkdir(parents=True, exist_ok=True)
    log = (datadir / "chain.stderr").open("wb")
    process = subprocess.Popen(
        [*AMPERE, "chain", "--datadir", str(datadir), "--rpc-port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    log.close()
    info_path = datadir / "regtest" / "rpc.json"

    def ready() -> str | None:
        if process.poll() is not None:
            raise AssertionError(f"ampere chain exited: {(datadir / 'chain.stderr').read_text()}")
        if not info_path.exists() or not (datadir / "regtest" / ".cookie").exists():
            return None
        return str(json.loads(info_path.read_text())["url"])

    url = wait_for(ready, timeout=STARTUP_TIMEOUT, what="ampere chain")
    return ChainProcess(datadir, process, url)


def printed_mnemonic(node: NodeProcess) -> str:
    """The seed words a node printed on stdout at its first start (shown once, never logged)."""
    lines = node.stdout().splitlines()
    for index, line in enumerate(lines[:-1]):
        if line.startswith("New node seed."):
            return lines[index + 1].strip()
    raise AssertionError(f"no seed printed by the node in {node.datadir}")


@contextlib.contextmanager
def chain_and_nodes(root: Path, names: Sequence[str], *node_args: str) -> Iterator[list[NodeProcess]]:
    """One `ampere chain` and a node per name on it (each started with `node_args`), stopped after."""
    chain = start_chain(root / "chain")
    started: list[NodeProcess] = []
    try:
        for name in names:
            started.append(start_node(root / name, *chain.node_args(), *node_args))
        yield started
    finally:
        for node in started:
            stop_quietly(node)
        chain.stop()


# --- channel rows ------------------------------------------------------------------------------------------


def channel_row(node: NodeProcess, channel_id: str) -> dict[str, Any] | None:
    """The channel's `listchannels` row, if the node lists it."""
    for channel in node.rpc("listchannels")["channels"]:
        if channel["channel_id"] == channel_id:
            return dict(channel)
    return None


def channel_in_state(node: NodeProcess, channel_id: str, state: str) -> dict[str, Any] | None:
    channel = channel_row(node, channel_id)
    return channel if channel is not None and channel["state"] == state else None


def closed_row(node: NodeProcess, channel_id: str) -> dict[str, Any] | None:
    """The channel's `listclosed` row, if the node lists it."""
    for channel in node.rpc("listclosed")["channels"]:
        if channel["channel_id"] == channel_id:
            return dict(channel)
    return None


def _at_height(node: NodeProcess, height: int) -> bool:
    return int(node.getinfo()["blockheight"]) >= height


def mine_blocks(miner: NodeProcess, count: int, address: str, *followers: NodeProcess) -> int:
    """Mine `count` blocks paying `address` through `miner`; return the new height once every
    follower has reached it."""
    miner.rpc("generate", [count, address])
    height = int(miner.getinfo()["blockheight"])
    for node in followers:
        wait_for(functools.partial(_at_height, node, height), what=f"{node.datadir.name} to follow")
    return height


def restart_node(node: NodeProcess, *extra: str, how: str = "stop", same_port: bool = False) -> NodeProcess:
    """End `node` (`ampere stop` through the CLI, or kill -9 with how="kill") and start it again from the
    same datadir with `extra`; `same_port` keeps its peer port, so that peers that dial it find it again."""
    keep_port = ("--listen", str(node.getinfo()["listen"][0])) if same_port else ()
    if how == "stop":
        assert node.stop() == 0, node.stderr()
    elif how == "kill":
        node.kill9()
    else:
        raise ValueError(f"how must be 'stop' or 'kill', not {how!r}")
    return start_node(node.datadir, *extra, *keep_port)
