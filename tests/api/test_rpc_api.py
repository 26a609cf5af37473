"""The node's JSON-RPC API over HTTP against one real daemon: auth, permissions, errors, abuse, fuzz."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.harness import NodeProcess, RpcConnection, start_node, stop_quietly

ADDRESS = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
NODE_ID = "02" + "11" * 32  # well-formed, unknown (and not a valid point: connect fails before dialing)
READ_METHODS = ("getinfo", "listfunds", "listpeers")
ADMIN_CALLS: tuple[tuple[str, Any], ...] = (
    ("withdraw", {"address": ADDRESS, "amount": 100_000}),
    ("withdraw", [ADDRESS, "all"]),
    ("connect", {"peer": f"{NODE_ID}@127.0.0.1:9"}),
    ("disconnect", [NODE_ID]),
    ("newaddress", {}),
    ("generate", [1]),
    ("ping", [NODE_ID]),
    ("stop", {}),
)
JSONRPC_CODES = {-32700, -32600, -32601, -32602, -32603} | set(range(-32099, -31999))


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = start_node(tmp_path_factory.mktemp("api") / "node")
    try:
        process.rpc("generate", [101])
        yield process
    finally:
        stop_quietly(process)


@pytest.fixture
def conn(node: NodeProcess) -> Iterator[RpcConnection]:
    connection = node.connection()
    yield connection
    connection.close()


def _state(node: NodeProcess) -> tuple[Any, ...]:
    info = node.getinfo()
    funds = node.rpc("listfunds")["outputs"]
    return info["blockheight"], info["num_peers"], json.dumps(funds, sort_keys=True)


def _body(method: str, params: Any = None, request_id: Any = 1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}).encode()


def _error(data: bytes) -> dict[str, Any]:
    reply = json.loads(data)
    assert reply["jsonrpc"] == "2.0" and "result" not in reply, reply
    error: dict[str, Any] = reply["error"]
    return {**error, "id": reply["id"]}


# --- authentication and permissions ---------------------------------------------------------------------


def test_missing_or_wrong_token_is_401_and_runs_nothing(node: NodeProcess, conn: RpcConnection) -> None:
    before = _state(node)
    for token in ("", "wrong", node.admin_token + "x", node.admin_token[:-1]):
        for method, params in (("getinfo", {}), *ADMIN_CALLS):
            status, data = conn.post(_body(method, params), token=token)
            assert status == 401, (token, method)
            assert _error(data)["code"] == -32010
    status, _ = conn.post(_body("stop"), token="", headers={"Authorization": "Basic X19jb29raWVfXzp4"})
    assert status == 401
    assert _state(node) == before
    assert node.process.poll() is None


def test_readonly_token_lists_but_cannot_spend_connect_or_stop(node: NodeProcess) -> None:
    readonly = node.connection(node.readonly_token)
    try:
        for method in READ_METHODS:
            status, reply = readonly.call(method)
            assert status == 200 and "result" in reply, (method, reply)
        before = _state(node)
        address_before = node.rpc("newaddress")["address"]
        for method, params in ADMIN_CALLS:
            status, data = readonly.post(_body(method, params, request_id=7))
            assert status == 403, method
            error = _error(data)
            assert error["code"] == -32011 and error["id"] == 7
        # A batch with one admin call is refused whole: its read-only calls do not run either.
        batch = [json.loads(_body("getinfo")), json.loads(_body("generate", [1], request_id=2))]
        status, _ = readonly.post(json.dumps(batch).encode())
        assert status == 403
        assert _state(node) == before
        # newaddress was refused, so the next address is the one after ours, not a skipped one.
        address_after = node.rpc("newaddress")["address"]
        assert address_after != address_before
        assert node.process.poll() is None
    finally:
        readonly.close()


# --- JSON-RPC errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [b"", b"{", b"nul", b"[1,", b'{"jsonrpc":"2.0","method":"getinfo","id":1', b"\xff\xfe", b"NaN"]
)
def test_malformed_json_is_a_parse_error(conn: RpcConnection, body: bytes) -> None:
    status, data = conn.post(body)
    assert status == 200
    error = _error(data)
    assert error["code"] == -32700 and error["id"] is None


@pytest.mark.parametrize(
    ("document", "expected_id"),
    [
        ([], None),
        (1, None),
        ("getinfo", None),
        ([1], None),
        ({"jsonrpc": "2.0", "id": 3}, 3),
        ({"jsonrpc": "2.0", "id": 3, "method": 1}, 3),
        ({"id": 3, "method": "getinfo"}, 3),
        ({"jsonrpc": "1.0", "id": 3, "method": "getinfo"}, 3),
        ({"jsonrpc": "2.0", "id": 3, "method": "getinfo", "params": 5}, 3),
        ({"jsonrpc": "2.0", "id": {"a": 1}, "method": "getinfo"}, None),
        ({"jsonrpc": "2.0", "id": [1], "method": "getinfo"}, None),
        ({"jsonrpc": "2.0", "id": True, "method": "getinfo"}, None),
    ],
)
def test_invalid_requests(conn: RpcConnection, document: Any, expected_id: Any) -> None:
    status, data = conn.post(json.dumps(document).encode())
    assert status == 200
    reply = json.loads(data)
    replies = reply if isinstance(reply, list) else [reply]
    for item in replies:
        assert item["error"]["code"] == -32600
        assert item["id"] == expected_id


def test_unknown_method(conn: RpcConnection) -> None:
    status, data = conn.post(_body("getinfoo", request_id="abc"))
    assert status == 200
    error = _error(data)
    assert error["code"] == -32601 and error["id"] == "abc"


@pytest.mark.parametrize(
    ("method", "params", "param"),
    [
        ("withdraw", {"address": 5, "amount": 1000}, "address"),
        ("withdraw", {"address": ADDRESS, "amount": "lots"}, "amount"),
        ("withdraw", {"address": ADDRESS, "amount": 1.5}, "amount"),
        ("withdraw", {"address": ADDRESS, "amount": True}, "amount"),
        ("withdraw", {"address": ADDRESS, "amount": -5}, "amount"),
        ("withdraw", {"address": ADDRESS, "amount": 1000, "feerate": "fast"}, "feerate"),
        ("withdraw", {"address": ADDRESS}, "amount"),
        ("withdraw", [ADDRESS, 1000, 5, 6], "#4"),
        ("withdraw", {"address": ADDRESS, "amount": 1000, "fee_rate": 5}, "fee_rate"),
        ("withdraw", {"address": "not-an-address", "amount": 1000}, "address"),
        ("withdraw", {"address": "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "amount": 1000}, "address"),
        ("generate", {"count": "1"}, "count"),
        ("generate", {"count": 0}, "count"),
        ("generate", {"count": 10**30}, "count"),
        ("generate", [], "count"),
        ("connect", {"peer": ["x"]}, "peer"),
        ("connect", {"peer": "nobody"}, "peer"),
        ("disconnect", {"node_id": "zz"}, "node_id"),
        ("getinfo", {"verbose": True}, "verbose"),
        ("getinfo", [1], "#1"),
    ],
)
def test_invalid_params(node: NodeProcess, conn: RpcConnection, method: str, params: Any, param: str) -> None:
    before = node.getinfo()["blockheight"]
    status, data = conn.post(_body(method, params, request_id=9))
    assert status == 200
    error = _error(data)
    assert error["code"] == -32602 and error["id"] == 9, error
    data_field = error["data"]
    named = (
        {entry["param"] for entry in data_field["errors"]}
        if "errors" in data_field
        else {data_field["param"]}
    )
    assert param in named, error
    assert node.getinfo()["blockheight"] == before


def test_application_error_carries_details(conn: RpcConnection) -> None:
    status, data = conn.post(_body("withdraw", {"address": ADDRESS, "amount": 10**15}))
    assert status == 200
    error = _error(data)
    assert error["code"] == -32001
    assert error["data"]["needed_sat"] > error["data"]["available_sat"] > 0
    status, data = conn.post(_body("disconnect", {"node_id": "02" + "ab" * 32}))
    error = _error(data)
    assert -32099 <= error["code"] <= -32000


def test_positional_params_notifications_and_batches(node: NodeProcess, conn: RpcConnection) -> None:
    height = node.getinfo()["blockheight"]
    status, reply = conn.call("generate", [1, ADDRESS])
    assert status == 200 and reply["result"]["blockheight"] == height + 1
    # A notification runs and gets no reply.
    status, data = conn.post(json.dumps({"jsonrpc": "2.0", "method": "generate", "params": [1]}).encode())
    assert status == 204 and data == b""
    assert node.getinfo()["blockheight"] == height + 2
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "getinfo"},
        {"jsonrpc": "2.0", "method": "getinfo"},
        {"jsonrpc": "2.0", "id": 2, "method": "nope"},
        {"id": 3},
    ]
    status, data = conn.post(json.dumps(batch).encode())
    assert status == 200
    replies = {item["id"]: item for item in json.loads(data)}
    assert set(replies) == {1, 2, 3}
    assert replies[1]["result"]["blockheight"] == height + 2
    assert replies[2]["error"]["code"] == -32601 and replies[3]["error"]["code"] == -32600


def test_http_level_refusals(node: NodeProcess, conn: RpcConnection) -> None:
    limit = 1024 * 1024
    padded = _body("getinfo")
    padded += b" " * (limit - len(padded))
    assert len(padded) == limit
    status, data = conn.post(padded)
    assert status == 200 and "result" in json.loads(data)
    status, _ = conn.post(padded + b" ")
    assert status == 413
    status, _ = conn.post(b"x" * (4 * limit))
    assert status == 413
    status, _ = conn.post(_body("getinfo"), path="/wallet")
    assert status == 404
    assert node.getinfo()["network"] == "regtest"


def test_daemon_survives_ten_thousand_bad_requests(node: NodeProcess) -> None:
    bad: list[tuple[bytes, str | None]] = [
        (b"{", None),
        (b"[]", None),
        (b'{"jsonrpc":"2.0","id":1}', None),
        (_body("nosuchmethod"), None),
        (_body("withdraw", {"address": 1, "amount": "x"}), None),
        (_body("generate", {"count": "many"}), None),
        (_body("getinfo", {"unknown": 1}), None),
        (_body("stop"), "wrong-token"),
        (_body("withdraw", [ADDRESS, 1000]), ""),
        (b'{"jsonrpc":"2.0","id":1,"method":"getinfo","params":' + b"[" * 600 + b"]" * 600 + b"}", None),
    ]
    conn = node.connection()
    readonly = node.connection(node.readonly_token)
    started = time.monotonic()
    try:
        for index in range(10_000):
            body, token = bad[index % len(bad)]
            status, data = conn.post(body, token=token)
            assert status in (200, 401), status
            assert _error(data)["code"] in JSONRPC_CODES | {-32010}
            if index % 1000 == 0:
                status, _ = readonly.post(_body("stop"))
                assert status == 403
    finally:
        readonly.close()
    elapsed = time.monotonic() - started
    assert elapsed < 120, f"10,000 bad requests took {elapsed:.1f} s"
    assert conn.rpc("getinfo")["network"] == "regtest"
    conn.close()
    assert node.process.poll() is None


# --- fuzz ---------------------------------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
_ADMIN_NAMES = {name for name, _ in ADMIN_CALLS}
_safe_methods = st.sampled_from([*READ_METHODS, "", "GETINFO", "get info", "stop ", "nope", "__init__"])
_requests = st.fixed_dictionaries(
    {
        "jsonrpc": st.sampled_from(["2.0", "2.0", "1.0", 2]),
        "method": _safe_methods | st.text(max_size=12).filter(lambda name: name not in _ADMIN_NAMES),
    },
    optional={"id": _json_values, "params": _json_values},
)
_bodies = (
    st.binary(max_size=256)
    | _json_values.map(lambda value: json.dumps(value).encode())
    | _requests.map(lambda value: json.dumps(value).encode())
    | st.lists(_requests, max_size=4).map(lambda value: json.dumps(value).encode())
)


def _check_reply(status: int, data: bytes) -> None:
    assert status in (200, 204, 403), status
    if status == 204:
        assert data == b""
        return
    reply = json.loads(data)
    for item in reply if isinstance(reply, list) else [reply]:
        assert item["jsonrpc"] == "2.0"
        assert ("result" in item) != ("error" in item)
        if "error" in item:
            assert item["error"]["code"] in JSONRPC_CODES | {-32011}
            assert item["error"]["code"] != -32603, item


@pytest.mark.fuzz
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies)
def test_fuzz_request_bodies_with_the_admin_token(node: NodeProcess, body: bytes) -> None:
    # Method names are drawn from harmless ones: a fuzzed `stop` or `withdraw` would end the test early.
    status, data = node.rpc_conn.post(body)
    _check_reply(status, data)


_admin_requests = st.fixed_dictionaries(
    {
        "jsonrpc": st.just("2.0"),
        "method": st.sampled_from([name for name, _ in ADMIN_CALLS]),
        "id": st.integers(),
    },
    optional={"params": _json_values},
)


@pytest.mark.fuzz
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=_admin_requests)
def test_fuzz_admin_calls_with_the_readonly_token(node: NodeProcess, document: dict[str, Any]) -> None:
    conn = node.connection(node.readonly_token)
    try:
        status, data = conn.post(json.dumps(document).encode())
    finally:
        conn.close()
    if isinstance(document.get("params", []), list | dict):
        assert status == 403
        assert _error(data)["code"] == -32011
    else:  # not a request at all: refused as invalid before anything else
        assert status == 200
        assert _error(data)["code"] == -32600
    assert node.process.poll() is None


def test_node_still_answers_after_the_fuzz(node: NodeProcess) -> None:
    assert node.getinfo()["network"] == "regtest"
