"""Generic parameter validation from the method table, and the JSON-RPC processor without HTTP."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ampere.api.errors import ErrorCode, RpcError
from ampere.api.jsonrpc import JsonRpcProcessor
from ampere.api.registry import MethodRegistry, bind_params
from ampere.node.commands import ALL_METHODS, MethodSpec, ParamKind, ParamSpec, Permission, method_name
from ampere.wallet.errors import InsufficientFundsError

SPEC = MethodSpec(
    ("pay", "out"),
    (
        ParamSpec("target", ParamKind.STRING, max_length=10),
        ParamSpec("amount", ParamKind.AMOUNT_OR_ALL, minimum=1),
        ParamSpec("fast", ParamKind.BOOLEAN, required=False, option=True),
        ParamSpec("limit", ParamKind.INTEGER, required=False, minimum=0, maximum=100),
    ),
    Permission.ADMIN,
    "test method",
)


def _problems(params: Any) -> dict[str, str]:
    with pytest.raises(RpcError) as caught:
        bind_params(SPEC, params)
    assert caught.value.code == ErrorCode.INVALID_PARAMS
    return {entry["param"]: entry["problem"] for entry in caught.value.data["errors"]}


def test_names_and_positions_bind_alike() -> None:
    expected = {"target": "x", "amount": 5, "fast": None, "limit": None}
    assert bind_params(SPEC, {"target": "x", "amount": 5}) == expected
    assert bind_params(SPEC, ["x", 5]) == expected
    assert bind_params(SPEC, ["x", "all", True, 3]) == {
        "target": "x",
        "amount": "all",
        "fast": True,
        "limit": 3,
    }
    assert bind_params(SPEC, {"target": "x", "amount": 5, "limit": None})["limit"] is None


def test_every_problem_is_reported() -> None:
    assert _problems({}) == {"target": "missing", "amount": "missing"}
    assert _problems({"target": 1, "amount": True, "fast": 1, "limit": Decimal("1.5")}) == {
        "target": "wrong type",
        "amount": "wrong type",
        "fast": "wrong type",
        "limit": "wrong type",
    }
    assert _problems({"target": "x" * 11, "amount": 0, "limit": 101}) == {
        "target": "longer than 10 characters",
        "amount": "below the minimum 1",
        "limit": "above the maximum 100",
    }
    assert _problems({"target": "x", "amount": 1, "speed": 1}) == {"speed": "unknown parameter"}
    assert _problems(["x", 1, True, 1, "extra"]) == {"#5": "pay_out takes at most 4 params"}


def test_method_names_follow_the_commands() -> None:
    assert method_name("micro open") == "micro_open"
    assert method_name("dev-cheat") == "dev_cheat"
    assert SPEC.name == "pay_out"
    names = [spec.name for spec in ALL_METHODS]
    assert len(names) == len(set(names))
    assert {
        "getinfo",
        "newaddress",
        "listfunds",
        "withdraw",
        "connect",
        "listpeers",
        "disconnect",
        "stop",
    } <= set(names)
    spending = {"withdraw", "connect", "stop", "newaddress", "generate", "disconnect"}
    spending |= {"openchannel", "closechannel"}
    spending |= {"invoice", "pay"}
    spending |= {"micro_open", "micro_pay", "micro_settle", "micro_refund"}
    spending |= {"exportbackup", "restorebackup"}
    spending |= {"dev_cheat"}
    for spec in ALL_METHODS:
        assert (spec.permission is Permission.ADMIN) == (spec.name in spending | {"ping"}), spec.name


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.lists(st.none() | st.booleans() | st.integers() | st.text(max_size=12), max_size=6),
        st.dictionaries(
            st.sampled_from(["target", "amount", "fast", "limit", "other"]),
            st.none() | st.booleans() | st.integers() | st.text(max_size=12),
        ),
    )
)
def test_bind_accepts_exactly_what_fits(params: Any) -> None:
    try:
        bound = bind_params(SPEC, params)
    except RpcError as exc:
        assert exc.code == ErrorCode.INVALID_PARAMS and exc.data["errors"]
        return
    assert isinstance(bound["target"], str) and len(bound["target"]) <= 10
    assert bound["amount"] == "all" or (type(bound["amount"]) is int and bound["amount"] >= 1)
    assert bound["fast"] in (None, True, False)
    assert bound["limit"] is None or (type(bound["limit"]) is int and 0 <= bound["limit"] <= 100)


def _processor() -> tuple[JsonRpcProcessor, list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []

    async def handler(params: dict[str, Any]) -> Any:
        calls.append(params)
        if params["target"] == "poor":
            raise InsufficientFundsError(10, 5)
        if params["target"] == "boom":
            raise RuntimeError("bug")
        return {"ok": True}

    registry = MethodRegistry()
    registry.register(SPEC, handler)
    return JsonRpcProcessor(registry), calls


def _handle(processor: JsonRpcProcessor, document: Any, permission: Permission = Permission.ADMIN) -> Any:
    reply = asyncio.run(processor.handle(json.dumps(document).encode(), permission))
    return reply.status, None if reply.body is None else json.loads(reply.body)


def test_errors_map_to_codes() -> None:
    processor, calls = _processor()
    request = {"jsonrpc": "2.0", "id": 1, "method": "pay_out"}
    status, reply = _handle(processor, {**request, "params": ["poor", 1]})
    assert status == 200 and reply["error"]["code"] == -32001
    assert reply["error"]["data"] == {"needed_sat": 10, "available_sat": 5}
    status, reply = _handle(processor, {**request, "params": ["boom", 1]})
    assert reply["error"] == {"code": -32603, "message": "Internal error"}
    status, reply = _handle(processor, {**request, "params": ["x", 1]}, Permission.READ)
    assert status == 403 and reply["error"]["code"] == -32011 and reply["id"] == 1
    assert len(calls) == 2
    status, reply = _handle(processor, {**request, "params": ["x", 1]})
    assert reply == {"jsonrpc": "2.0", "result": {"ok": True}, "id": 1}
    status, reply = _handle(processor, [{**request, "params": ["x", 1], "id": n} for n in range(101)])
    assert reply["error"]["code"] == -32600
