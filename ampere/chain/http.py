"""A small HTTP/1.1 server and client on asyncio streams, enough for JSON-RPC over real sockets.

Both ends speak keep-alive HTTP/1.1 with Content-Length bodies (chunked bodies are read too, since
some clients and proxies send them). Everything a peer controls is bounded: the size of the request
head and body, the number of headers, and the time each phase may take, so that a slow or hostile
client costs one connection and nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

from ampere.errors import AmpereError

__all__ = [
    "Handler",
    "Headers",
    "HttpClient",
    "HttpConnectionError",
    "HttpError",
    "HttpProtocolError",
    "HttpServer",
    "HttpTimeoutError",
    "Request",
    "Response",
    "ServerLimits",
    "basic_auth_value",
    "basic_credentials_match",
    "bearer_token_matches",
    "parse_basic_auth",
    "parse_bearer_token",
]

log = logging.getLogger(__name__)

_TOKEN_CHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_MAX_CHUNK_SIZE_DIGITS = 16
_MAX_TRAILER_LINES = 64


class HttpError(AmpereError):
    """Base of the HTTP layer's errors."""


class HttpProtocolError(HttpError):
    """The peer sent something that is not HTTP/1.1, or that breaks one of our limits."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status  # what a server answers to it: 400, or 431 for an oversized head


class HttpConnectionError(HttpError):
    """The connection could not be made, or broke before a whole response arrived."""


class HttpTimeoutError(HttpError):
    """The peer did not answer in time."""


class _RequestRejected(Exception):
    """Internal: answer the request with `status` and close the connection."""

    def __init__(self, status: int, detail: str, *, discard: int = 0) -> None:
        super().__init__(detail)
        self.status = status
        self.discard = discard  # body bytes to swallow so the client reads our reply, not a reset


class _ConnectionDone(Exception):
    """Internal: the peer closed the connection (or went idle) between requests."""


@dataclass(frozen=True, slots=True)
class Headers:
    """Header fields in arrival order; lookups ignore case, as HTTP requires."""

    items: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.items:
            if key.lower() == wanted:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.items if key.lower() == wanted]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    version: str
    headers: Headers
    body: bytes
    peer: str = ""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False  # server side: close the connection after this response

    @property
    def header_fields(self) -> Headers:
        return Headers(self.headers)

    @classmethod
    def json(cls, status: int, body: bytes) -> Response:
        return cls(status, body, (("Content-Type", "application/json"),))

    @classmethod
    def text(cls, status: int, text: str) -> Response:
        return cls(status, text.encode(), (("Content-Type", "text/plain; charset=utf-8"),))


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class ServerLimits:
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    max_body_bytes: int = 1024 * 1024
    # After a 413 the unread body is swallowed (up to this much) before closing: closing a socket with
    # unread data makes the kernel send a reset, and the client would never see the 413.
    max_discard_bytes: int = 64 * 1024 * 1024
    idle_timeout: float = 120.0  # waiting for the next request on a kept-alive connection
    header_timeout: float = 30.0  # from a request's first byte to the end of its head
    body_timeout: float = 60.0
    write_timeout: float = 60.0
    shutdown_grace: float = 5.0  # how long close() lets running handlers finish
    # Connections served at once; each one past this gets its request read and answered 503 (with
    # Retry-After), instead of the server running out of file descriptors.
    max_connections: int = 1024
    # Connections the kernel queues before we accept them (asyncio's default is 100, too few for a
    # burst of clients: the rest see their SYNs dropped, retried after seconds, then reset).
    backlog: int = 1024
    busy_retry_after: int = 1  # seconds, the Retry-After of a 503


# --- auth helpers ------------------------------------------------------------------------------------


def basic_auth_value(user: str, password: str) -> str:
    """The `Authorization` header value for HTTP basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def parse_basic_auth(value: str | None) -> tuple[str, str] | None:
    """(user, password) from a basic `Authorization` header, or None if it is not one."""
    if value is None:
        return None
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, colon, password = decoded.partition(":")
    if not colon:
        return None
    return user, password


def parse_bearer_token(value: str | None) -> str | None:
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def basic_credentials_match(value: str | None, user: str, password: str) -> bool:
    """Constant-time check of a basic `Authorization` header against one user/password pair."""
    parsed = parse_basic_auth(value)
    if parsed is None:
        # Still compare, so that a missing header takes as long as a wrong one.
        parsed = ("", "")
    user_ok = hmac.compare_digest(parsed[0].encode(), user.encode())
    password_ok = hmac.compare_digest(parsed[1].encode(), password.encode())
    return user_ok and password_ok


def bearer_token_matches(value: str | None, token: str) -> bool:
    presented = parse_bearer_token(value) or ""
    return hmac.compare_digest(presented.encode(), token.encode())


# --- shared wire helpers -----------------------------------------------------------------------------


def _is_token(text: bytes) -> bool:
    return bool(text) and all(byte in _TOKEN_CHARS for byte in text)


async def _read_line(reader: asyncio.StreamReader, budget: int) -> bytes:
    """One CRLF- (or bare LF-) terminated line, not longer than `budget`; b"" at a clean EOF."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise HttpProtocolError("connection closed in the middle of a line") from None
        return b""
    except asyncio.LimitOverrunError:
        raise HttpProtocolError("header line too long", status=431) from None
    if len(line) > budget:
        raise HttpProtocolError("header section too large", status=431)
    return line


def _strip_eol(line: bytes) -> bytes:
    return line[:-2] if line.endswith(b"\r\n") else line[:-1]


async def _read_header_fields(
    reader: asyncio.StreamReader, budget: int, max_fields: int
) -> tuple[Headers, int]:
    """Read header lines up to the blank line; returns the fields and what is left of `budget`."""
    fields: list[tuple[str, str]] = []
    while True:
        line = await _read_line(reader, budget)
        if not line:
            raise HttpProtocolError("connection closed inside the header section")
        budget -= len(line)
        raw = _strip_eol(line)
        if not raw:
            return Headers(tuple(fields)), budget
        if len(fields) >= max_fields:
            raise HttpProtocolError("too many header fields", status=431)
        name, colon, value = raw.partition(b":")
        # Leading whitespace would be an obsolete line folding, which RFC 9112 lets us refuse.
        if not colon or not _is_token(name):
            raise HttpProtocolError("malformed header field")
        fields.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))


async def _read_chunked(reader: asyncio.StreamReader, limit: int, line_budget: int) -> bytes:
    body = bytearray()
    while True:
        line = _strip_eol(await _read_line(reader, line_budget))
        size_text = line.split(b";", 1)[0].strip()
        if not size_text or len(size_text) > _MAX_CHUNK_SIZE_DIGITS:
            raise HttpProtocolError("malformed chunk size")
        try:
            size = int(size_text, 16)
        except ValueError:
            raise HttpProtocolError("malformed chunk size") from None
        if size == 0:
            break
        if len(body) + size > limit:
            raise _BodyTooLarge
        body += await reader.readexactly(size)
        if _strip_eol(await _read_line(reader, line_budget)):
            raise HttpProtocolError("chunk not followed by CRLF")
    for _ in range(_MAX_TRAILER_LINES):
        if not _strip_eol(await _read_line(reader, line_budget)):
            return bytes(body)
    raise HttpProtocolError("too many trailer fields")


class _BodyTooLarge(Exception):
    pass


def _content_length(headers: Headers) -> int | None:
    values = headers.get_all("Content-Length")
    if not values:
        return None
    distinct = {value.strip() for value in values}
    if len(distinct) != 1:
        raise HttpProtocolError("conflicting Content-Length fields")
    text = distinct.pop()
    if not text.isdigit() or not text.isascii() or len(text) > 18:
        raise HttpProtocolError("malformed Content-Length")
    return int(text)


def _status_line(status: int) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return f"HTTP/1.1 {status} {phrase}\r\n"


def _encode_head(first_line: str, fields: Iterable[tuple[str, str]]) -> bytes:
    lines = [first_line]
    for name, value in fields:
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError("header field contains a line break")
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


# --- server --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Connection:
    task: asyncio.Task[None]
    writer: asyncio.StreamWriter
    busy: bool = False
    over_limit: bool = False  # accepted past max_connections: its request gets a 503


@dataclass(slots=True)
class _Head:
    method: str
    target: str
    version: str
    headers: Headers
    budget_left: int


class HttpServer:
    """Serves `handler` on TCP and/or Unix sockets, one task per connection, requests in order."""

    def __init__(self, handler: Handler, limits: ServerLimits | None = None) -> None:
        self._handler = handler
        self._limits = limits or ServerLimits()
        self._servers: list[asyncio.Server] = []
        self._connections: dict[asyncio.Task[None], _Connection] = {}
        self._closing = False
        self._refusing = False  # the newest connection came past max_connections
        self.tcp_addresses: list[tuple[str, int]] = []

    @property
    def limits(self) -> ServerLimits:
        return self._limits

    async def listen_tcp(self, host: str, port: int) -> tuple[str, int]:
        """Bind and start serving; returns the bound (host, port), useful with port 0."""
        server = await asyncio.start_server(
            self._serve,
            host,
            port,
            limit=self._limits.max_header_bytes,
            reuse_address=True,
            backlog=self._limits.backlog,
        )
        self._servers.append(server)
        sockname = server.sockets[0].getsockname()
        address = (str(sockname[0]), int(sockname[1]))
        self.tcp_addresses.append(address)
        return address

    async def listen_unix(self, path: str | Path) -> None:
        path = Path(path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        server = await asyncio.start_unix_server(
            self._serve, os.fspath(path), limit=self._limits.max_header_bytes, backlog=self._limits.backlog
        )
        self._servers.append(server)

    async def close(self) -> None:
        """Stop listening, drop idle connections, let running handlers finish within the grace period."""
        self._closing = True
        for server in self._servers:
            server.close()
        # Closing the transport ends an idle connection's read with EOF. Cancelling its task instead
        # would trip asyncio's connection callback (3.11), which logs cancelled handler tasks as errors.
        for conn in list(self._connections.values()):
            if not conn.busy:
                conn.writer.close()
        tasks = [conn.task for conn in self._connections.values()]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=self._limits.shutdown_grace)
            for conn in list(self._connections.values()):
                if conn.task in pending:
                    conn.writer.transport.abort()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        conn = _Connection(task, writer)
        conn.over_limit = len(self._connections) >= self._limits.max_connections
        if conn.over_limit and not self._refusing:
            log.warning("%d connections open: answering new ones 503", len(self._connections))
        self._refusing = conn.over_limit
        self._connections[task] = conn
        peer = writer.get_extra_info("peername")
        peer_text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "local"
        try:
            await self._serve_requests(reader, writer, conn, peer_text)
        except (ConnectionError, _ConnectionDone, asyncio.IncompleteReadError):
            pass
        except TimeoutError:
            log.debug("connection from %s timed out", peer_text)
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Connection, peer: str
    ) -> None:
        while not self._closing:
            try:
                head = await self._read_head(reader)
            except HttpProtocolError as exc:
                log.debug("bad request head from %s: %s", peer, exc)
                await self._write(writer, Response.text(exc.status, f"{exc}\n"), keep_alive=False)
                return
            conn.busy = True
            try:
                body = await self._read_body(reader, writer, head)
            except _RequestRejected as exc:
                log.debug("request from %s refused: %s", peer, exc)
                await self._write(writer, Response.text(exc.status, f"{exc}\n"), keep_alive=False)
                await self._discard(reader, exc.discard)
                return
            except HttpProtocolError as exc:
                log.debug("bad request body from %s: %s", peer, exc)
                await self._write(writer, Response.text(exc.status, f"{exc}\n"), keep_alive=False)
                return
            if conn.over_limit:
                log.debug("request from %s refused: too many connections", peer)
                await self._write(writer, self._busy_response(), keep_alive=False)
                return
            request = Request(head.method, head.target, head.version, head.headers, body, peer)
            try:
                response = await self._handler(request)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("HTTP handler failed on %s %s", request.method, request.path)
                response = Response(500)
            keep_alive = _wants_keep_alive(head) and not response.close and not self._closing
            await self._write(writer, response, keep_alive, head.version, send_body=head.method != "HEAD")
            conn.busy = False
            if not keep_alive:
                return

    def _busy_response(self) -> Response:
        text = f"too many connections (limit {self._limits.max_connections}); retry later\n"
        return Response(
            503,
            text.encode(),
            (
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Retry-After", str(self._limits.busy_retry_after)),
            ),
        )

    async def _read_head(self, reader: asyncio.StreamReader) -> _Head:
        limits = self._limits
        budget = limits.max_header_bytes
        # RFC 9112 asks servers to skip empty lines before a request line (left over by some clients).
        for _ in range(4):
            async with asyncio.timeout(limits.idle_timeout):
                first = await _read_line(reader, budget)
            if not first:
                raise _ConnectionDone
            if _strip_eol(first):
                break
            budget -= len(first)
        else:
            raise HttpProtocolError("no request line")
        budget -= len(first)
        async with asyncio.timeout(limits.header_timeout):
            parts = _strip_eol(first).split(b" ")
            if len(parts) != 3 or not _is_token(parts[0]) or not parts[1]:
                raise HttpProtocolError("malformed request line")
            method, target, version = (part.decode("latin-1") for part in parts)
            if version not in ("HTTP/1.1", "HTTP/1.0"):
                raise HttpProtocolError("unsupported HTTP version")
            headers, budget = await _read_header_fields(reader, budget, limits.max_headers)
        return _Head(method, target, version, headers, budget)

    async def _read_body(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: _Head
    ) -> bytes:
        limits = self._limits
        headers = head.headers
        transfer_encoding = headers.get("Transfer-Encoding")
        length = _content_length(headers)
        if transfer_encoding is not None:
            if length is not None:
                # Both framings at once is the classic request-smuggling shape: refuse it.
                raise HttpProtocolError("both Transfer-Encoding and Content-Length")
            if transfer_encoding.strip().lower() != "chunked":
                raise _RequestRejected(501, "unsupported Transfer-Encoding")
        elif length is not None and length > limits.max_body_bytes:
            discard = length if length <= limits.max_discard_bytes else 0
            if (headers.get("Expect") or "").lower() == "100-continue":
                discard = 0  # the client waits for our verdict before sending the body
            raise _RequestRejected(413, "request body too large", discard=discard)
        if (headers.get("Expect") or "").lower() == "100-continue" and head.version == "HTTP/1.1":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        async with asyncio.timeout(limits.body_timeout):
            if transfer_encoding is not None:
                try:
                    return await _read_chunked(reader, limits.max_body_bytes, head.budget_left + 4096)
                except _BodyTooLarge:
                    raise _RequestRejected(413, "request body too large") from None
            if not length:
                return b""
            return await reader.readexactly(length)

    async def _discard(self, reader: asyncio.StreamReader, amount: int) -> None:
        with contextlib.suppress(TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            async with asyncio.timeout(self._limits.body_timeout):
                while amount > 0:
                    data = await reader.read(min(amount, 1 << 16))
                    if not data:
                        return
                    amount -= len(data)

    async def _write(
        self,
        writer: asyncio.StreamWriter,
        response: Response,
        keep_alive: bool,
        version: str = "HTTP/1.1",
        *,
        send_body: bool = True,
    ) -> None:
        fields = list(response.headers)
        fields.append(("Content-Length", str(len(response.body))))
        fields.append(("Date", formatdate(usegmt=True)))
        if not keep_alive:
            fields.append(("Connection", "close"))
        elif version == "HTTP/1.0":
            fields.append(("Connection", "keep-alive"))
        head = _encode_head(_status_line(response.status), fields)
        writer.write(head + response.body if send_body else head)
        async with asyncio.timeout(self._limits.write_timeout):
            await writer.drain()


def _wants_keep_alive(head: _Head) -> bool:
    tokens = {token.strip().lower() for token in (head.headers.get("Connection") or "").split(",")}
    if head.version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


# --- client ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _ClientConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        self.writer.close()


class HttpClient:
    """Keep-alive HTTP/1.1 client for one origin; concurrent requests each take their own connection."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_idle: int = 4,
        max_response_bytes: int = 256 * 1024 * 1024,
        max_header_bytes: int = 64 * 1024,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self.max_response_bytes = max_response_bytes
        self.max_header_bytes = max_header_bytes
        self._idle: list[_ClientConnection] = []

    @classmethod
    def for_url(cls, url: str, *, timeout: float = 60.0) -> tuple[HttpClient, str]:
        """A client for `http://host:port/path`, and the path to send requests to."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not an http:// URL: {url!r}")
        port = parts.port or 80
        path = parts.path or "/"
        return cls(parts.hostname, port, timeout=timeout), path

    async def request(
        self, method: str, target: str, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()
    ) -> Response:
        fields = [("Host", f"{self.host}:{self.port}"), *headers, ("Content-Length", str(len(body)))]
        message = _encode_head(f"{method} {target} HTTP/1.1\r\n", fields) + body
        while self._idle:
            conn = self._idle.pop()
            try:
                return await self._exchange(conn, message, method, reused=True)
            except _StaleConnection:
                # The server had closed this kept-alive connection before reading our request
                # (nothing of a reply arrived), so sending again on a fresh one cannot double it.
                continue
        conn = await self._connect()
        try:
            return await self._exchange(conn, message, method, reused=False)
        except _StaleConnection:
            raise HttpConnectionError("connection closed before a response") from None

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.writer.wait_closed()

    async def _connect(self) -> _ClientConnection:
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, limit=self.max_header_bytes
                )
        except TimeoutError:
            raise HttpTimeoutError(f"connecting to {self.host}:{self.port} timed out") from None
        except OSError as exc:
            raise HttpConnectionError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        return _ClientConnection(reader, writer)

    async def _exchange(
        self, conn: _ClientConnection, message: bytes, method: str, *, reused: bool
    ) -> Response:
        keep = False
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    conn.writer.write(message)
                    await conn.writer.drain()
                except ConnectionError:
                    pass  # the server may have answered (a 413, say) before closing: read it
                try:
                    first = await _read_line(conn.reader, self.max_header_bytes)
                except ConnectionError:
                    first = b""
                if not first:
                    if reused:
                        raise _StaleConnection
                    raise HttpConnectionError("connection closed before a response")
                response, keep = await self._read_response(conn.reader, first, method)
        except TimeoutError:
            raise HttpTimeoutError(f"no response from {self.host}:{self.port} in {self.timeout}s") from None
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise HttpConnectionError(f"connection to {self.host}:{self.port} broke: {exc}") from exc
        finally:
            if keep and len(self._idle) < self.max_idle:
                self._idle.append(conn)
            else:
                conn.close()
        return response

    async def _read_response(
        self, reader: asyncio.StreamReader, first: bytes, method: str
    ) -> tuple[Response, bool]:
        while True:
            parts = _strip_eol(first).split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise HttpProtocolError("malformed status line")
            version, status = parts[0].decode("ascii"), int(parts[1])
            headers, _ = await _read_header_fields(reader, self.max_header_bytes, 1000)
            if 100 <= status < 200:
                first = await _read_line(reader, self.max_header_bytes)
                if not first:
                    raise HttpConnectionError("connection closed after an interim response")
                continue
            break
        tokens = {token.strip().lower() for token in (headers.get("Connection") or "").split(",")}
        keep = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
        length = _content_length(headers)
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif (headers.get("Transfer-Encoding") or "").strip().lower() == "chunked":
            try:
                body = await _read_chunked(reader, self.max_response_bytes, self.max_header_bytes)
            except _BodyTooLarge:
                raise HttpProtocolError("response body too large") from None
        elif length is not None:
            if length > self.max_response_bytes:
                raise HttpProtocolError("response body too large")
            body = await reader.readexactly(length)
        else:
            body = await reader.read(self.max_response_bytes + 1)
            while len(body) <= self.max_response_bytes:
                more = await reader.read(self.max_response_bytes + 1 - len(body))
                if not more:
                    break
                body += more
            if len(body) > self.max_response_bytes:
                raise HttpProtocolError("response body too large")
            keep = False
        return Response(status, body, headers.items), keep


class _StaleConnection(Exception):
    pass
