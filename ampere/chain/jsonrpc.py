"""JSON-RPC 1.0 and 2.0 as bitcoind speaks them: parsing, dispatch, replies, batches, amounts.

bitcoind's dialect (v28): a request without `"jsonrpc": "2.0"` is "legacy" and gets
`{"result", "error", "id"}` with an HTTP status that follows the error (400 invalid request,
404 unknown method, 500 anything else); a 2.0 request gets `{"jsonrpc", "result"|"error", "id"}`
with HTTP 200. Batches always get 200, and notifications (2.0 without an id) get no reply at all.
The node's own API uses the same machinery with HTTP 200 for every JSON-RPC error.

Numbers are parsed with `parse_float=Decimal` so that amounts never pass through a binary float.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum, IntEnum
from typing import Any, Final

from ampere.bitcoin.tx import COIN, MAX_MONEY
from ampere.errors import AmpereError

__all__ = [
    "MAX_JSON_DEPTH",
    "BtcAmount",
    "Dispatcher",
    "JsonRpcVersion",
    "Param",
    "ParamType",
    "RpcError",
    "RpcErrorCode",
    "RpcMethod",
    "RpcRequest",
    "btc_to_sat",
    "dumps",
    "loads",
    "parse_request",
    "reply_object",
]

log = logging.getLogger(__name__)

# UniValue's limit; deeper documents are a parse error, which also keeps recursion bounded here.
MAX_JSON_DEPTH: Final = 512


class RpcErrorCode(IntEnum):
    """bitcoind's error codes (src/rpc/protocol.h)."""

    MISC_ERROR = -1
    TYPE_ERROR = -3
    INVALID_ADDRESS_OR_KEY = -5
    OUT_OF_MEMORY = -7
    INVALID_PARAMETER = -8
    DATABASE_ERROR = -20
    DESERIALIZATION_ERROR = -22
    VERIFY_ERROR = -25
    VERIFY_REJECTED = -26
    VERIFY_ALREADY_IN_CHAIN = -27
    IN_WARMUP = -28
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    PARSE_ERROR = -32700


class RpcError(AmpereError):
    """A JSON-RPC error object, raised by method handlers and by the client side alike."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = int(code)
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class JsonRpcVersion(Enum):
    LEGACY = "1.0"  # also what bitcoind assumes when "jsonrpc" is absent
    V2 = "2.0"


_ABSENT: Final = object()


@dataclass(frozen=True, slots=True)
class RpcRequest:
    method: str
    params: list[Any] | dict[str, Any]
    id: Any  # any JSON value; meaningful only when has_id
    has_id: bool
    version: JsonRpcVersion

    @property
    def is_notification(self) -> bool:
        return self.version is JsonRpcVersion.V2 and not self.has_id


@dataclass(frozen=True, slots=True)
class BtcAmount:
    """An amount in satoshis, written to JSON as a BTC number with exactly 8 decimals."""

    sat: int

    @property
    def text(self) -> str:
        sign = "-" if self.sat < 0 else ""
        whole, frac = divmod(abs(self.sat), COIN)
        return f"{sign}{whole}.{frac:08d}"

    @property
    def btc(self) -> Decimal:
        return Decimal(self.text)


def btc_to_sat(value: object) -> int:
    """BTC (a JSON number parsed as Decimal, an int, or a numeric string) to satoshis, exactly.

    Like bitcoind's AmountFromValue, more than 8 decimals or a value outside the money range is an error
    (ValueError), never a silent rounding.
    """
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise ValueError("Amount is not a number or string")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError("Invalid amount") from None
    if not amount.is_finite():
        raise ValueError("Invalid amount")
    if amount and amount.adjusted() > 10:  # keeps 10**exponent below small before any arithmetic
        raise ValueError("Amount out of range")
    sign, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)
    magnitude = int("".join(map(str, digits)) or "0")
    shift = exponent + 8
    if shift >= 0:
        factor: int = 10**shift
        sat = magnitude * factor
    else:
        divisor: int = 10 ** (-shift)
        sat, remainder = divmod(magnitude, divisor)
        if remainder:
            raise ValueError("Invalid amount")
    if sign:
        sat = -sat
    if not 0 <= sat <= MAX_MONEY:
        raise ValueError("Amount out of range")
    return sat


# --- JSON text --------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth_ok(value: Any) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


def loads(body: bytes | str) -> Any:
    """Parse a JSON document with Decimal floats; anything unparsable is RpcError(-32700)."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        value = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise RpcError(RpcErrorCode.PARSE_ERROR, "Parse error") from None
    if not _depth_ok(value):
        raise RpcError(RpcErrorCode.PARSE_ERROR, "Parse error")
    return value


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(json.dumps(value))  # ASCII-escaped: lone surrogates from the input survive
    elif isinstance(value, BtcAmount):
        out.append(value.text)
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("non-finite number")
        out.append(str(value))
    elif isinstance(value, float):
        out.append(json.dumps(value, allow_nan=False))
    elif isinstance(value, Mapping):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(json.dumps(str(key)))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(value: Any) -> str:
    """Compact JSON as bitcoind writes it; BtcAmount becomes a number with 8 decimals."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out)


# --- requests and replies ---------------------------------------------------------------------------------


class _BadRequest(RpcError):
    """An invalid request object; carries what could be read of it, so the reply can echo the id."""

    def __init__(self, message: str, request_id: Any, version: JsonRpcVersion) -> None:
        super().__init__(RpcErrorCode.INVALID_REQUEST, message)
        self.request_id = request_id
        self.version = version


def parse_request(value: Any) -> RpcRequest:
    """One request object, checked as bitcoind's JSONRPCRequest::parse does."""
    if not isinstance(value, dict):
        raise _BadRequest("Invalid Request object", None, JsonRpcVersion.LEGACY)
    request_id = value.get("id", _ABSENT)
    version = JsonRpcVersion.LEGACY
    declared = value.get("jsonrpc")
    if declared is not None:
        if not isinstance(declared, str):
            raise _BadRequest("jsonrpc field must be a string", request_id, version)
        if declared == "2.0":
            version = JsonRpcVersion.V2
        elif declared != "1.0":
            raise _BadRequest("JSON-RPC version not supported", request_id, version)
    method = value.get("method")
    if method is None:
        raise _BadRequest("Missing method", request_id, version)
    if not isinstance(method, str):
        raise _BadRequest("Method must be a string", request_id, version)
    params = value.get("params")
    if params is None:
        params = []
    elif not isinstance(params, list | dict):
        raise _BadRequest("Params must be an array or object", request_id, version)
    return RpcRequest(
        method, params, None if request_id is _ABSENT else request_id, request_id is not _ABSENT, version
    )


def reply_object(
    request_id: Any, version: JsonRpcVersion, *, result: Any = None, error: RpcError | None = None
) -> dict[str, Any]:
    """bitcoind's JSONRPCReplyObj: both fields in 1.0, only the relevant one in 2.0; `id` if present."""
    reply: dict[str, Any] = {}
    if version is JsonRpcVersion.V2:
        reply["jsonrpc"] = "2.0"
    if error is None:
        reply["result"] = result
        if version is JsonRpcVersion.LEGACY:
            reply["error"] = None
    else:
        if version is JsonRpcVersion.LEGACY:
            reply["result"] = None
        reply["error"] = error.to_json()
    if request_id is not _ABSENT:
        reply["id"] = request_id
    return reply


# --- methods ----------------------------------------------------------------------------------------------


class ParamType(Enum):
    NUM = "number"
    STR = "string"
    BOOL = "boolean"
    ARR = "array"
    OBJ = "object"
    ANY = "any"  # the handler checks it (bitcoind's skip_type_check, e.g. verbosity as bool or number)


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: ParamType
    required: bool = True


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


_TYPE_NAMES = {
    ParamType.NUM: "number",
    ParamType.STR: "string",
    ParamType.BOOL: "bool",
    ParamType.ARR: "array",
    ParamType.OBJ: "object",
}


MethodHandler = Callable[[list[Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class RpcMethod:
    """A method and its parameters; the handler receives them by position, absent ones as None."""

    name: str
    params: tuple[Param, ...]
    handler: MethodHandler

    def usage(self) -> str:
        words = [self.name]
        optional = [param.name for param in self.params if not param.required]
        words.extend(param.name for param in self.params if param.required)
        if optional:
            words.append("( " + " ".join(optional) + " )")
        return " ".join(words)

    def bind(self, params: list[Any] | dict[str, Any]) -> list[Any]:
        """Named parameters to positions, then arity and type checks with bitcoind's errors."""
        if isinstance(params, dict):
            names = [param.name for param in self.params]
            for key in params:
                if key not in names:
                    raise RpcError(RpcErrorCode.INVALID_PARAMETER, f"Unknown named parameter {key}")
            positional = [params.get(name) for name in names]
            while positional and positional[-1] is None:
                positional.pop()
        else:
            positional = list(params)
        required = sum(1 for param in self.params if param.required)
        if len(positional) > len(self.params) or len(positional) < required:
            raise RpcError(RpcErrorCode.MISC_ERROR, self.usage())
        positional.extend([None] * (len(self.params) - len(positional)))
        mismatches: dict[str, str] = {}
        for index, (param, value) in enumerate(zip(self.params, positional, strict=True)):
            if param.type is ParamType.ANY or (value is None and not param.required):
                continue
            actual = _json_type(value)
            expected = _TYPE_NAMES[param.type]
            if actual != expected:
                mismatches[f"Position {index + 1} ({param.name})"] = (
                    f"JSON value of type {actual} is not of expected type {expected}"
                )
        if mismatches:
            raise RpcError(RpcErrorCode.TYPE_ERROR, "Wrong type passed:\n" + json.dumps(mismatches, indent=4))
        return positional


class Dispatcher:
    """Turns an HTTP body into an HTTP status and reply body by calling registered methods.

    With `http_errors=True` (bitcoind) a legacy request's error sets the HTTP status; with False
    (the node's API) every JSON-RPC reply travels with HTTP 200.
    """

    def __init__(self, methods: Sequence[RpcMethod] = (), *, http_errors: bool = True) -> None:
        self._methods: dict[str, RpcMethod] = {}
        self._http_errors = http_errors
        for method in methods:
            self.register(method)

    def register(self, method: RpcMethod) -> None:
        self._methods[method.name] = method

    @property
    def method_names(self) -> list[str]:
        return sorted(self._methods)

    async def handle(self, body: bytes) -> tuple[int, bytes | None]:
        """(HTTP status, body); the body is None for 204 (nothing but notifications)."""
        try:
            document = loads(body)
        except RpcError as exc:
            return self._error_status(exc.code), _encode_reply(
                reply_object(None, JsonRpcVersion.LEGACY, error=exc)
            )
        if isinstance(document, dict):
            return await self._handle_single(document)
        if isinstance(document, list):
            return await self._handle_batch(document)
        error = RpcError(RpcErrorCode.PARSE_ERROR, "Top-level object parse error")
        return self._error_status(error.code), _encode_reply(
            reply_object(None, JsonRpcVersion.LEGACY, error=error)
        )

    async def call(self, request: RpcRequest) -> Any:
        """Run one request; raises RpcError."""
        method = self._methods.get(request.method)
        if method is None:
            raise RpcError(RpcErrorCode.METHOD_NOT_FOUND, "Method not found")
        args = method.bind(request.params)
        try:
            return await method.handler(args)
        except RpcError:
            raise
        except AmpereError as exc:
            raise RpcError(RpcErrorCode.MISC_ERROR, str(exc)) from exc
        except Exception as exc:
            log.exception("RPC method %s failed", request.method)
            raise RpcError(RpcErrorCode.INTERNAL_ERROR, "Internal error") from exc

    def _error_status(self, code: int) -> int:
        if not self._http_errors:
            return 200
        if code == RpcErrorCode.INVALID_REQUEST:
            return 400
        if code == RpcErrorCode.METHOD_NOT_FOUND:
            return 404
        return 500

    async def _handle_single(self, document: dict[str, Any]) -> tuple[int, bytes | None]:
        try:
            request = parse_request(document)
        except _BadRequest as exc:
            return self._error_status(exc.code), _encode_reply(
                reply_object(exc.request_id, exc.version, error=exc)
            )
        try:
            result = await self.call(request)
            reply = reply_object(_id_of(request), request.version, result=result)
            status = 200
        except RpcError as exc:
            reply = reply_object(_id_of(request), request.version, error=exc)
            # A 2.0 request's failure is still a successful HTTP exchange (bitcoind v28).
            status = 200 if request.version is JsonRpcVersion.V2 else self._error_status(exc.code)
        if request.is_notification:
            return 204, None
        return status, _encode_reply(reply)

    async def _handle_batch(self, documents: list[Any]) -> tuple[int, bytes | None]:
        replies: list[dict[str, Any]] = []
        for document in documents:
            try:
                request = parse_request(document)
            except _BadRequest as exc:
                replies.append(reply_object(exc.request_id, exc.version, error=exc))
                continue
            try:
                reply = reply_object(_id_of(request), request.version, result=await self.call(request))
            except RpcError as exc:
                reply = reply_object(_id_of(request), request.version, error=exc)
            if not request.is_notification:
                replies.append(reply)
        if documents and not replies:
            return 204, None
        return 200, _encode_reply(replies)


def _id_of(request: RpcRequest) -> Any:
    return request.id if request.has_id else _ABSENT


def _encode_reply(reply: Any) -> bytes:
    try:
        return (dumps(reply) + "\n").encode("ascii")
    except (TypeError, ValueError):
        log.exception("unencodable JSON-RPC reply")
        fallback = reply_object(
            None, JsonRpcVersion.LEGACY, error=RpcError(RpcErrorCode.INTERNAL_ERROR, "Internal error")
        )
        return (dumps(fallback) + "\n").encode("ascii")
