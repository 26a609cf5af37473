"""Binds handlers to method declarations and validates parameters generically, from the declarations.

A handler receives a dict with every declared parameter by name (absent optional ones as None), already
checked against its `ParamSpec`: so handlers hold no type checks of their own, and every method rejects
wrong types, missing or unknown parameters with the same -32602 error shape:
`data = {"errors": [{"param", "problem", "expected"?, "got"?}]}`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ampere.api.errors import ErrorCode, RpcError
from ampere.node.commands import MethodSpec, ParamKind, ParamSpec

__all__ = ["BoundMethod", "Handler", "MethodRegistry", "bind_params"]

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class BoundMethod:
    spec: MethodSpec
    handler: Handler


class MethodRegistry:
    def __init__(self) -> None:
        self._methods: dict[str, BoundMethod] = {}

    def register(self, spec: MethodSpec, handler: Handler) -> None:
        if spec.name in self._methods:
            raise ValueError(f"method {spec.name} registered twice")
        self._methods[spec.name] = BoundMethod(spec, handler)

    def get(self, name: str) -> BoundMethod | None:
        return self._methods.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self._methods)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, Decimal | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _check(param: ParamSpec, value: Any) -> dict[str, Any] | None:
    """None if `value` fits `param`, else the error entry describing why."""
    kind = param.kind
    if kind is ParamKind.STRING:
        if not isinstance(value, str):
            return _type_error(param, value)
        if len(value) > param.max_length:
            return {"param": param.name, "problem": f"longer than {param.max_length} characters"}
        return None
    if kind is ParamKind.BOOLEAN:
        return None if isinstance(value, bool) else _type_error(param, value)
    if kind is ParamKind.AMOUNT_OR_ALL and value == "all":
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return _type_error(param, value)
    if param.minimum is not None and value < param.minimum:
        return {"param": param.name, "problem": f"below the minimum {param.minimum}"}
    if param.maximum is not None and value > param.maximum:
        return {"param": param.name, "problem": f"above the maximum {param.maximum}"}
    return None


def _type_error(param: ParamSpec, value: Any) -> dict[str, Any]:
    return {
        "param": param.name,
        "problem": "wrong type",
        "expected": param.kind.value,
        "got": _json_type(value),
    }


def _invalid(errors: list[dict[str, Any]]) -> RpcError:
    summary = "; ".join(f"{error['param']}: {error['problem']}" for error in errors)
    return RpcError(ErrorCode.INVALID_PARAMS, f"Invalid params: {summary}", {"errors": errors})


def bind_params(spec: MethodSpec, params: list[Any] | Mapping[str, Any]) -> dict[str, Any]:
    """Positional or named params -> {name: value} for every declared param; RpcError(-32602) if unfit."""
    declared = spec.params
    if isinstance(params, list):
        if len(params) > len(declared):
            problem = f"{spec.name} takes at most {len(declared)} params"
            raise _invalid([{"param": f"#{len(declared) + 1}", "problem": problem}])
        given: dict[str, Any] = {param.name: value for param, value in zip(declared, params, strict=False)}
    else:
        unknown = [name for name in params if spec.param(name) is None]
        if unknown:
            raise _invalid(
                [{"param": str(name)[:64], "problem": "unknown parameter"} for name in unknown[:16]]
            )
        given = dict(params)
    bound: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for param in declared:
        value = given.get(param.name)
        if value is None:
            if param.required:
                errors.append({"param": param.name, "problem": "missing", "expected": param.kind.value})
            bound[param.name] = None
            continue
        error = _check(param, value)
        if error is not None:
            errors.append(error)
        bound[param.name] = value
    if errors:
        raise _invalid(errors)
    return bound
