"""JSON-RPC in bitcoind's dialect: parsing, replies and HTTP statuses, batches, named params, amounts."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.tx import MAX_MONEY
from ampere.chain.jsonrpc import (
    MAX_JSON_DEPTH,
    BtcAmount,
    Dispatcher,
    Param,
    ParamType,
    RpcError,
    RpcMethod,
    btc_to_sat,
    dumps,
    loads,
)


async def _add(args: list[Any]) -> Any:
    return args[0] + (args[1] or 0)


async def _fail(args: list[Any]) -> Any:
    raise RpcError(-8, "bad thing")


async def _crash(args: list[Any]) -> Any:
    raise ZeroDivisionError


async def _amount(args: list[Any]) -> Any:
    return {"value": BtcAmount(123_456_789)}


def dispatcher(http_errors: bool = True) -> Dispatcher:
    return Dispatcher(
        [
            RpcMethod("add", (Param("a", ParamType.NUM), Param("b", ParamType.NUM, required=False)), _add),
            RpcMethod("fail", (), _fail),
            RpcMethod("crash", (), _crash),
            RpcMethod("amount", (), _amount),
        ],
        http_errors=http_errors,
    )


def handle(body: bytes | str, http_errors: bool = True) -> tuple[int, Any]:
    raw = body.encode() if isinstance(body, str) else body
    status, reply = asyncio.run(dispatcher(http_errors).handle(raw))
    return status, None if reply is None else json.loads(reply)


# --- replies as bitcoind writes them --------------------------------------------------------------


def test_legacy_success_has_result_error_and_id() -> None:
    assert handle('{"method":"add","params":[1,2],"id":"x"}') == (
        200,
        {"result": 3, "error": None, "id": "x"},
    )


def test_v2_success_omits_error() -> None:
    status, reply = handle('{"jsonrpc":"2.0","method":"add","params":[1,2],"id":5}')
    assert (status, reply) == (200, {"jsonrpc": "2.0", "result": 3, "id": 5})


def test_legacy_request_without_id_gets_a_reply_without_id() -> None:
    assert handle('{"method":"add","params":[1]}') == (200, {"result": 1, "error": None})


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ('{"method":"nope","id":1}', 404, -32601),
        ('{"method":"fail","id":1}', 500, -8),
        ('{"method":"crash","id":1}', 500, -32603),
        ('{"id":1}', 400, -32600),
        ('{"method":5,"id":1}', 400, -32600),
        ('{"method":"add","params":"x","id":1}', 400, -32600),
        ('{"jsonrpc":"3.0","method":"add","id":1}', 400, -32600),
        ('{"jsonrpc":2,"method":"add","id":1}', 400, -32600),
        ('{"method":"add","params":[],"id":1}', 500, -1),
        ('{"method":"add","params":[1,2,3],"id":1}', 500, -1),
        ('{"method":"add","params":["1"],"id":1}', 500, -3),
        ('{"method":"add","params":{"c":1},"id":1}', 500, -8),
        ("{nope", 500, -32700),
        ("", 500, -32700),
        ('"just a string"', 500, -32700),
        ("[1] x", 500, -32700),
        ('{"method":"add","params":[NaN],"id":1}', 500, -32700),
    ],
)
def test_legacy_errors_set_the_http_status(body: str, status: int, code: int) -> None:
    got_status, reply = handle(body)
    assert got_status == status
    assert reply["result"] is None
    assert reply["error"]["code"] == code
    assert isinstance(reply["error"]["message"], str)


def test_v2_errors_are_http_200() -> None:
    status, reply = handle('{"jsonrpc":"2.0","method":"nope","id":1}')
    assert (status, reply) == (
        200,
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 1},
    )


def test_node_dialect_is_always_200() -> None:
    assert handle('{"method":"nope","id":1}', http_errors=False)[0] == 200
    assert handle("{bad", http_errors=False)[0] == 200


def test_parse_error_reply_has_null_id() -> None:
    assert handle("{")[1] == {"result": None, "error": {"code": -32700, "message": "Parse error"}, "id": None}


def test_notification_gets_no_content() -> None:
    assert handle('{"jsonrpc":"2.0","method":"add","params":[1]}') == (204, None)


def test_named_parameters() -> None:
    assert handle('{"method":"add","params":{"a":1,"b":2},"id":1}')[1]["result"] == 3
    assert handle('{"method":"add","params":{"a":1},"id":1}')[1]["result"] == 1
    assert handle('{"method":"add","params":{"b":1},"id":1}')[1]["error"]["code"] == -3


def test_batch() -> None:
    body = json.dumps(
        [
            {"method": "add", "params": [1], "id": 1},
            {"jsonrpc": "2.0", "method": "nope", "id": 2},
            {"jsonrpc": "2.0", "method": "add", "params": [5]},  # notification: no reply
            7,
            {"method": "fail", "id": 3},
        ]
    )
    status, replies = handle(body)
    assert status == 200
    assert replies == [
        {"result": 1, "error": None, "id": 1},
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 2},
        {"result": None, "error": {"code": -32600, "message": "Invalid Request object"}, "id": None},
        {"result": None, "error": {"code": -8, "message": "bad thing"}, "id": 3},
    ]


def test_empty_batch_and_all_notifications() -> None:
    assert handle("[]") == (200, [])
    assert handle('[{"jsonrpc":"2.0","method":"add","params":[1]}]') == (204, None)


def test_amounts_are_written_with_eight_decimals() -> None:
    _status, raw = asyncio.run(dispatcher().handle(b'{"method":"amount","id":1}'))
    assert raw is not None and b'"value":1.23456789' in raw
    assert (
        dumps([BtcAmount(0), BtcAmount(5_000_000_000), BtcAmount(-1)])
        == "[0.00000000,50.00000000,-0.00000001]"
    )


def test_ids_and_numbers_survive_exactly() -> None:
    _status, raw = asyncio.run(dispatcher().handle(b'{"method":"add","params":[1],"id":[1.10,{"a":1e400}]}'))
    assert raw is not None and raw.endswith(b'"id":[1.10,{"a":1E+400}]}\n')


# --- JSON text ------------------------------------------------------------------------------------


def test_loads_uses_decimal() -> None:
    assert loads(b'{"v": 0.1}') == {"v": Decimal("0.1")}


@pytest.mark.parametrize(
    "text", [b"\xff", b"NaN", b"[Infinity]", b"[-Infinity]", b"[1,]", b"1" * 5000, b"\xef\xbb\xbf{}"]
)
def test_loads_rejects(text: bytes) -> None:
    with pytest.raises(RpcError) as info:
        loads(text)
    assert info.value.code == -32700


def test_depth_limit() -> None:
    assert loads(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) is not None
    with pytest.raises(RpcError):
        loads(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))
    with pytest.raises(RpcError):
        loads(b"[" * 100_000)


def test_dumps_escapes_and_refuses_floats_it_cannot_write() -> None:
    assert (
        dumps({"a": "\u00e9\ud800", "b": [True, None, 1.5]}) == '{"a":"\\u00e9\\ud800","b":[true,null,1.5]}'
    )
    with pytest.raises(ValueError):
        dumps(float("nan"))
    with pytest.raises(TypeError):
        dumps(object())


# --- amounts --------------------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=MAX_MONEY))
def test_amount_round_trip(sat: int) -> None:
    text = dumps(BtcAmount(sat))
    assert btc_to_sat(loads(text)) == sat
    assert BtcAmount(sat).btc == loads(text)


@pytest.mark.parametrize(
    ("value", "sat"),
    [
        (Decimal("1"), 100_000_000),
        (Decimal("0.00000001"), 1),
        (Decimal("1E-8"), 1),
        (Decimal("2.10E+7"), MAX_MONEY),
        (0, 0),
        ("0.5", 50_000_000),
        (Decimal("1.000000000000"), 100_000_000),
    ],
)
def test_btc_to_sat(value: Any, sat: int) -> None:
    assert btc_to_sat(value) == sat


@pytest.mark.parametrize(
    "value",
    [
        Decimal("0.000000001"),
        Decimal("-1"),
        Decimal("21000000.00000001"),
        Decimal("1E+999999"),
        Decimal("NaN"),
        True,
        1.5,
        "abc",
        None,
    ],
)
def test_btc_to_sat_refuses(value: Any) -> None:
    with pytest.raises(ValueError):
        btc_to_sat(value)


def test_usage_text() -> None:
    method = RpcMethod("m", (Param("a", ParamType.STR), Param("b", ParamType.NUM, required=False)), _add)
    assert method.usage() == "m a ( b )"
