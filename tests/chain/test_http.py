"""The asyncio HTTP/1.1 server and client over real TCP sockets: framing, keep-alive, limits, timeouts."""

from __future__ import annotations

import asyncio
import http.client
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.chain.http import (
    HttpClient,
    HttpConnectionError,
    HttpServer,
    HttpTimeoutError,
    Request,
    Response,
    ServerLimits,
    basic_auth_value,
    basic_credentials_match,
    bearer_token_matches,
    parse_basic_auth,
    parse_bearer_token,
)

Scenario = Callable[[HttpServer, int], Awaitable[None]]


async def echo(request: Request) -> Response:
    if request.path == "/boom":
        raise RuntimeError("handler bug")
    if request.path == "/close":
        return Response(200, b"bye", close=True)
    body = f"{request.method} {request.target} {request.peer} ".encode() + request.body
    return Response(200, body, (("X-Len", str(len(request.body))),))


def run(scenario: Scenario, limits: ServerLimits | None = None) -> None:
    async def main() -> None:
        server = HttpServer(echo, limits)
        _host, port = await server.listen_tcp("127.0.0.1", 0)
        try:
            await asyncio.wait_for(scenario(server, port), 20)
        finally:
            await server.close()

    asyncio.run(main())


async def raw_exchange(port: int, data: bytes, *, read_all: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await reader.read() if read_all else await reader.read(65536)
    finally:
        writer.close()


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


# --- client and server together -------------------------------------------------------------------


def test_keep_alive_reuses_one_connection() -> None:
    async def scenario(_server: HttpServer, port: int) -> None:
        client = HttpClient("127.0.0.1", port)
        peers = set()
        for index in range(5):
            response = await client.request("POST", "/x", f"body{index}".encode())
            assert response.status == 200
            assert response.body.endswith(f"body{index}".encode())
            assert response.header_fields.get("x-len") == "5"
            peers.add(response.body.split(b" ")[2])
        assert len(peers) == 1  # every request came over the same client socket
        await client.close()

    run(scenario)


def test_concurrent_requests_use_separate_connections() -> None:
    async def scenario(_server: HttpServer, port: int) -> None:
        client = HttpClient("127.0.0.1", port, max_idle=2)
        responses = await asyncio.gather(*(client.request("POST", "/", b"%d" % i) for i in range(8)))
        assert sorted(r.body.split(b" ")[-1] for r in responses) == sorted(b"%d" % i for i in range(8))
        await client.close()

    run(scenario)


async def open_kept_alive(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection the server has accepted and answered once, left open."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert status_of(head) == 200
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    return reader, writer


def test_connections_past_the_limit_get_503_and_the_others_are_served() -> None:
    async def scenario(_server: HttpServer, port: int) -> None:
        first = await open_kept_alive(port)
        second = await open_kept_alive(port)
        refused = await raw_exchange(port, b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
        assert status_of(refused) == 503
        assert b"Retry-After: 1\r\n" in refused and b"Connection: close\r\n" in refused
        assert b"too many connections (limit 2)" in refused
        # The connections within the limit still work.
        _reader, writer = second
        writer.write(b"GET /still HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        assert status_of(await second[0].readuntil(b"\r\n\r\n")) == 200
        first[1].close()
        # Once one is closed (the server notices at its own pace), a new client is served again.
        client = HttpClient("127.0.0.1", port, max_idle=0)
        while (response := await client.request("GET", "/again")).status == 503:
            await asyncio.sleep(0.01)
        assert response.status == 200
        second[1].close()

    run(scenario, ServerLimits(max_connections=2))


def test_a_burst_of_clients_gets_answers_not_resets() -> None:
    """Far more simultaneous clients than the limit: each gets a 200 or a 503, none a dropped
    connection, and the server serves normally afterwards."""

    async def scenario(_server: HttpServer, port: int) -> None:
        async def one(index: int) -> int:
            client = HttpClient("127.0.0.1", port, max_idle=0)
            return (await client.request("POST", "/", b"%d" % index)).status

        statuses = await asyncio.gather(*(one(i) for i in range(300)))
        assert set(statuses) <= {200, 503}
        assert statuses.count(200) >= 20
        assert (await HttpClient("127.0.0.1", port).request("GET", "/after")).status == 200

    run(scenario, ServerLimits(max_connections=20))


def test_handler_failure_is_500_and_the_server_keeps_serving() -> None:
    async def scenario(_server: HttpServer, port: int) -> None:
        client = HttpClient("127.0.0.1", port)
        assert (await client.request("GET", "/boom")).status == 500
        assert (await client.request("GET", "/fine")).status == 200
        await client.close()

    run(scenario)


def test_client_retries_a_connection_the_server_closed_while_idle() -> None:
    async def scenario(_server: HttpServer, port: int) -> None:
        client = HttpClient("127.0.0.1", port)
        assert (await client.request("GET", "/a")).status == 200
        await asyncio.sleep(0.3)  # longer than the server's idle timeout
        assert (await client.request("GET", "/b")).status == 200
        await client.close()

    run(scenario, ServerLimits(idle_timeout=0.1))


def test_response_with_close_ends_the_connection() -> None:
    async def scenario(_server: HttpServer, port: int) -> None:
        raw = await raw_exchange(port, b"GET /close HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n")
        assert raw.count(b"HTTP/1.1 ") == 1
        assert b"Connection: close" in raw

    run(scenario)


def test_pipelined_requests_are_answered_in_order() -> None:
    async def scenario(_server: HttpServer, port: int) -> None:
        data = (
            b"".join(b"POST /%d HTTP/1.1\r\nContent-Length: 1\r\n\r\n%d" % (i, i) for i in range(3))
            + b"GET /end HTTP/1.1\r\nConnection: close\r\n\r\n"
        )
        raw = await raw_exchange(port, data)
        assert raw.count(b"HTTP/1.1 200") == 4
        assert raw.index(b"POST /0") < raw.index(b"POST /1") < raw.index(b"POST /2") < raw.index(b"GET /end")

    run(scenario)


def test_http_1_0_closes_unless_keep_alive_is_asked() -> None:
    async def scenario(_server: HttpServer, port: int) -> None:
        raw = await raw_exchange(port, b"GET / HTTP/1.0\r\n\r\n")
        assert b"Connection: close" in raw
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"Connection: keep-alive" in head
        writer.close()

    run(scenario)


def test_chunked_request_body_is_decoded() -> None:
    async def scenario(_server: HttpServer, port: int) -> None:
        data = (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n"
        )
        raw = await raw_exchange(port, data)
        assert status_of(raw) == 200
        assert raw.endswith(b"hello world")

    run(scenario)


def test_expect_100_continue() -> None:
    async def scenario(_server: HttpServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"abc")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        writer.close()

    run(scenario)


def test_client_reads_chunked_and_interim_responses() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = HttpClient("127.0.0.1", port)
        response = await client.request("POST", "/", b"x")
        assert (response.status, response.body) == (200, b"abcde")
        await client.close()
        server.close()

    asyncio.run(main())


def test_client_errors_are_typed() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async def main() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free_port = probe.getsockname()[1]
        with pytest.raises(HttpConnectionError):
            await HttpClient("127.0.0.1", free_port).request("GET", "/")
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(HttpTimeoutError):
            await HttpClient("127.0.0.1", port, timeout=0.2).request("GET", "/")
        server.close()

    asyncio.run(main())


def test_for_url() -> None:
    client, path = HttpClient.for_url("http://127.0.0.1:8332/wallet/x")
    assert (client.host, client.port, path) == ("127.0.0.1", 8332, "/wallet/x")
    with pytest.raises(ValueError):
        HttpClient.for_url("https://example.com/")


# --- limits ---------------------------------------------------------------------------------------


def test_oversized_body_gets_413_and_the_client_can_read_it() -> None:
    limits = ServerLimits(max_body_bytes=1000)

    async def scenario(_server: HttpServer, port: int) -> None:
        def blocking_client() -> int:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/", body=b"x" * 200_000)
            status = conn.getresponse().status
            conn.close()
            return status

        assert await asyncio.to_thread(blocking_client) == 413
        client = HttpClient("127.0.0.1", port)
        assert (await client.request("POST", "/", b"y" * 1000)).status == 200
        await client.close()

    run(scenario, limits)


def test_oversized_body_with_expect_is_refused_before_it_is_sent() -> None:
    async def scenario(_server: HttpServer, port: int) -> None:
        head = b"POST / HTTP/1.1\r\nContent-Length: 99999\r\nExpect: 100-continue\r\n\r\n"
        raw = await raw_exchange(port, head)
        assert status_of(raw) == 413

    run(scenario, ServerLimits(max_body_bytes=10))


def test_oversized_chunked_body_gets_413() -> None:
    async def scenario(_server: HttpServer, port: int) -> None:
        data = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n" + b"z" * 32 + b"\r\n0\r\n\r\n"
        assert status_of(await raw_exchange(port, data)) == 413

    run(scenario, ServerLimits(max_body_bytes=10))


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", 431),
        (b"NOT A REQUEST\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n folded: x\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ],
)
def test_malformed_requests_get_an_error_and_the_server_survives(request_bytes: bytes, status: int) -> None:
    async def scenario(_server: HttpServer, port: int) -> None:
        assert status_of(await raw_exchange(port, request_bytes)) == status
        client = HttpClient("127.0.0.1", port)
        assert (await client.request("GET", "/")).status == 200
        await client.close()

    run(scenario, ServerLimits(max_header_bytes=4096, max_headers=50))


def test_slow_header_is_timed_out() -> None:
    async def scenario(_server: HttpServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nX-Slow: ")  # and never finish
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
        writer.close()

    run(scenario, ServerLimits(header_timeout=0.2))


def test_slow_body_is_timed_out() -> None:
    async def scenario(_server: HttpServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()

    run(scenario, ServerLimits(body_timeout=0.2))


def test_idle_connection_is_closed() -> None:
    async def scenario(_server: HttpServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()

    run(scenario, ServerLimits(idle_timeout=0.2))


@given(st.binary(max_size=300))
def test_garbage_never_kills_the_server(garbage: bytes) -> None:
    async def scenario(_server: HttpServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(garbage)
        writer.write_eof()
        reply = await asyncio.wait_for(reader.read(), 5)
        assert reply == b"" or reply.startswith(b"HTTP/1.1 ")
        writer.close()
        client = HttpClient("127.0.0.1", port)
        assert (await client.request("GET", "/")).status == 200
        await client.close()

    run(scenario, ServerLimits(header_timeout=1, body_timeout=1))


# --- lifecycle ------------------------------------------------------------------------------------


def test_close_lets_a_running_handler_finish() -> None:
    started = asyncio.Event

    async def main() -> None:
        entered = started()

        async def slow(request: Request) -> Response:
            entered.set()
            await asyncio.sleep(0.2)
            return Response(200, b"done")

        server = HttpServer(slow)
        _host, port = await server.listen_tcp("127.0.0.1", 0)
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
        client = HttpClient("127.0.0.1", port)
        pending = asyncio.create_task(client.request("GET", "/"))
        await entered.wait()
        await server.close()
        response = await pending
        assert (response.status, response.body) == (200, b"done")
        assert response.header_fields.get("Connection") == "close"
        assert await asyncio.wait_for(idle_reader.read(), 2) == b""
        idle_writer.close()
        with pytest.raises(HttpConnectionError):
            await client.request("GET", "/")

    asyncio.run(main())


def test_unix_socket(tmp_path: Path) -> None:
    async def main() -> None:
        server = HttpServer(echo)
        path = tmp_path / "rpc.sock"
        await server.listen_unix(path)
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"GET /u HTTP/1.1\r\nConnection: close\r\n\r\n")
        raw = await reader.read()
        assert status_of(raw) == 200 and b"GET /u local" in raw
        writer.close()
        await server.close()

    asyncio.run(main())


# --- auth helpers ---------------------------------------------------------------------------------


def test_basic_auth_round_trip() -> None:
    header = basic_auth_value("__cookie__", "pa:ss")
    assert parse_basic_auth(header) == ("__cookie__", "pa:ss")
    assert basic_credentials_match(header, "__cookie__", "pa:ss")
    assert not basic_credentials_match(header, "__cookie__", "pa:sS")
    assert not basic_credentials_match(None, "__cookie__", "pa:ss")
    assert not basic_credentials_match("Bearer x", "__cookie__", "pa:ss")


@pytest.mark.parametrize("value", [None, "", "Basic", "Basic !!!", "Basic bm9jb2xvbg==", "Digest abc"])
def test_malformed_basic_auth(value: str | None) -> None:
    assert parse_basic_auth(value) is None


def test_bearer_tokens() -> None:
    assert parse_bearer_token("Bearer abc") == "abc"
    assert parse_bearer_token("bearer  abc ") == "abc"
    assert parse_bearer_token("Bearer ") is None
    assert parse_bearer_token("Basic abc") is None
    assert bearer_token_matches("Bearer tok", "tok")
    assert not bearer_token_matches("Bearer tok2", "tok")
    assert not bearer_token_matches(None, "tok")


@given(st.text(), st.text())
def test_basic_auth_property(user: str, password: str) -> None:
    if ":" in user:
        return
    assert parse_basic_auth(basic_auth_value(user, password)) == (user, password)
