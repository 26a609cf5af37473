"""A small blocking JSON-RPC 2.0 client for the node, over HTTP or the node's Unix socket.

Where to connect: `--rpc` (an `http://` URL, or the path of a socket), else `DIR/rpc.json` written by
the daemon. The token: `--token-file`, else `DIR/admin.token`.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ampere.errors import AmpereError

__all__ = ["CliRpcError", "Endpoint", "RpcCallError", "RpcClient", "resolve_endpoint"]

DEFAULT_TIMEOUT = 300.0
_MAX_SOCKET_PATH = 100


class CliRpcError(AmpereError):
    """The call could not be made, or was refused before reaching a method (auth, HTTP errors)."""


class RpcCallError(AmpereError):
    """The node answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str | None  # http://host:port/path
    socket_path: Path | None
    token: str

    def describe(self) -> str:
        return self.url if self.url is not None else f"unix:{self.socket_path}"


def resolve_endpoint(datadir: Path, rpc: str | None, token_file: Path | None) -> Endpoint:
    token_path = token_file if token_file is not None else datadir / "admin.token"
    try:
        token = token_path.read_text().strip()
    except OSError as exc:
        raise CliRpcError(f"cannot read the RPC token {token_path}: {exc.strerror or exc}") from None
    if rpc:
        if rpc.startswith(("http://", "https://")):
            return Endpoint(rpc, None, token)
        return Endpoint(None, Path(rpc.removeprefix("unix:")).expanduser(), token)
    info_path = datadir / "rpc.json"
    try:
        info = json.loads(info_path.read_text())
    except OSError:
        raise CliRpcError(f"no {info_path}: is `ampere node --datadir {datadir}` running?") from None
    except ValueError:
        raise CliRpcError(f"{info_path} is not valid JSON") from None
    url = info.get("url") if isinstance(info, dict) else None
    sock = info.get("socket") if isinstance(info, dict) else None
    if isinstance(url, str):
        return Endpoint(url, None, token)
    if isinstance(sock, str):
        return Endpoint(None, Path(sock), token)
    raise CliRpcError(f"{info_path} names no RPC address")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            if len(os.fsencode(self._path)) < _MAX_SOCKET_PATH:
                sock.connect(str(self._path))
            else:
                # Socket paths are limited to 107 bytes: connect through a name relative to the directory.
                previous = os.getcwd()
                os.chdir(self._path.parent)
                try:
                    sock.connect(self._path.name)
                finally:
                    os.chdir(previous)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class RpcClient:
    """One kept-alive connection; `call` raises RpcCallError for JSON-RPC errors, CliRpcError otherwise."""

    def __init__(self, endpoint: Endpoint, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.endpoint = endpoint
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._path = "/"
        self._next_id = 1

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.endpoint.url is not None:
                parts = urlsplit(self.endpoint.url)
                if parts.scheme != "http" or not parts.hostname:
                    raise CliRpcError(f"unsupported RPC URL {self.endpoint.url!r}")
                self._path = parts.path or "/"
                self._conn = http.client.HTTPConnection(
                    parts.hostname, parts.port or 80, timeout=self._timeout
                )
            else:
                assert self.endpoint.socket_path is not None
                self._conn = _UnixConnection(self.endpoint.socket_path, self._timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def call(self, method: str, params: dict[str, Any] | list[Any] | None = None) -> Any:
        request_id = self._next_id
        self._next_id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}})
        status, data = self._post(body.encode())
        if status in (401, 403):
            raise CliRpcError(_error_message(data) or f"HTTP {status}")
        if status == 413:
            raise CliRpcError("request too large")
        if status != 200:
            raise CliRpcError(f"the node answered HTTP {status}")
        try:
            reply = json.loads(data, parse_float=Decimal)
        except ValueError:
            raise CliRpcError("the node answered something that is not JSON") from None
        if not isinstance(reply, dict):
            raise CliRpcError("malformed JSON-RPC reply")
        error = reply.get("error")
        if error is not None:
            if not isinstance(error, dict):
                raise CliRpcError("malformed JSON-RPC error")
            raise RpcCallError(int(error.get("code", 0)), str(error.get("message", "")), error.get("data"))
        return reply.get("result")

    def _post(self, body: bytes) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {self.endpoint.token}", "Content-Type": "application/json"}
        while True:
            reused = self._conn is not None
            conn = self._connection()
            try:
                conn.request("POST", self._path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
                # Only a kept-alive connection the server closed while idle is retried: on a fresh one the
                # call may have run, and running it twice could spend twice.
                self.close()
                if not reused:
                    raise CliRpcError(
                        f"the node at {self.endpoint.describe()} closed the connection"
                    ) from None
                continue
            except OSError as exc:
                self.close()
                raise CliRpcError(
                    f"cannot reach the node at {self.endpoint.describe()}: {exc.strerror or exc}"
                ) from None
            except http.client.HTTPException as exc:
                self.close()
                raise CliRpcError(f"bad HTTP reply from {self.endpoint.describe()}: {exc}") from None
            if response.will_close:
                self.close()
            return response.status, data


def _error_message(data: bytes) -> str | None:
    try:
        reply = json.loads(data)
        message = reply["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return None
    return message if isinstance(message, str) else None
