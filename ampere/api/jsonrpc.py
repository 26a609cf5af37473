"""JSON-RPC 2.0 for the node API: request checks, permission, dispatch through the registry, replies.

Every reply to an authenticated call travels with HTTP 200 (or 204 when only notifications were sent);
only authentication (401) and permission (403) show in the HTTP status, and a read-only caller's batch
is refused whole, before anything in it runs, if one of its calls needs the admin token.

JSON text goes through `ampere.chain.jsonrpc.loads`/`dumps`: numbers with a fraction parse as Decimal
(never float) and nesting depth is bounded, so a hostile body costs parsing time and nothing else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from ampere.api.errors import ErrorCode, RpcError, to_rpc_error
from ampere.api.registry import MethodRegistry, bind_params
from ampere.chain.jsonrpc import dumps, loads
from ampere.node.commands import Permission

__all__ = ["MAX_BATCH", "JsonRpcProcessor", "RpcReply", "error_body"]

log = logging.getLogger(__name__)

MAX_BATCH: Final = 100
_NO_ID: Final = object()


@dataclass(frozen=True, slots=True)
class RpcReply:
    status: int  # HTTP status
    body: bytes | None  # None: nothing to send (204)


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    params: list[Any] | dict[str, Any]
    id: Any  # _NO_ID for a notification


def error_body(error: RpcError, request_id: Any = None) -> bytes:
    return _encode({"jsonrpc": "2.0", "error": error.to_json(), "id": request_id})


def _encode(document: Any) -> bytes:
    try:
        return (dumps(document) + "\n").encode("ascii")
    except (TypeError, ValueError):
        log.exception("a JSON-RPC reply could not be encoded")
        fallback = {
            "jsonrpc": "2.0",
            "error": {"code": ErrorCode.INTERNAL_ERROR.value, "message": "Internal error"},
        }
        return (dumps({**fallback, "id": None}) + "\n").encode("ascii")


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return value is None or isinstance(value, str | int | Decimal)


def _parse_call(document: Any) -> _Call:
    """One request object; RpcError(-32600) carrying the id when it could be read."""
    if not isinstance(document, dict):
        raise _BadRequest("Invalid Request: not an object", None)
    request_id = document.get("id", _NO_ID)
    shown_id = request_id if request_id is not _NO_ID and _valid_id(request_id) else None
    if request_id is not _NO_ID and not _valid_id(request_id):
        raise _BadRequest("Invalid Request: id must be a string, a number or null", None)
    if document.get("jsonrpc") != "2.0":
        raise _BadRequest('Invalid Request: "jsonrpc" must be "2.0"', shown_id)
    method = document.get("method")
    if not isinstance(method, str):
        raise _BadRequest('Invalid Request: "method" must be a string', shown_id)
    params = document.get("params", [])
    if not isinstance(params, list | dict):
        raise _BadRequest('Invalid Request: "params" must be an array or an object', shown_id)
    return _Call(method, params, request_id)


class _BadRequest(RpcError):
    def __init__(self, message: str, request_id: Any) -> None:
        super().__init__(ErrorCode.INVALID_REQUEST, message)
        self.request_id = request_id


class JsonRpcProcessor:
    def __init__(self, registry: MethodRegistry) -> None:
        self.registry = registry

    async def handle(self, body: bytes, permission: Permission) -> RpcReply:
        try:
            document = loads(body)
        except RpcError:
            return RpcReply(200, error_body(RpcError(ErrorCode.PARSE_ERROR, "Parse error")))
        if isinstance(document, list):
            return await self._handle_batch(document, permission)
        try:
            call = _parse_call(document)
        except _BadRequest as exc:
            return RpcReply(200, error_body(exc, exc.request_id))
        if not self._allowed(call, permission):
            return self._forbidden(call)
        reply = await self._execute(call)
        if reply is None:
            return RpcReply(204, None)
        return RpcReply(200, _encode(reply))

    async def _handle_batch(self, documents: list[Any], permission: Permission) -> RpcReply:
        if not documents:
            return RpcReply(
                200, error_body(RpcError(ErrorCode.INVALID_REQUEST, "Invalid Request: empty batch"))
            )
        if len(documents) > MAX_BATCH:
            error = RpcError(
                ErrorCode.INVALID_REQUEST, f"Invalid Request: more than {MAX_BATCH} calls in a batch"
            )
            return RpcReply(200, error_body(error))
        parsed: list[_Call | _BadRequest] = []
        for document in documents:
            try:
                parsed.append(_parse_call(document))
            except _BadRequest as exc:
                parsed.append(exc)
        for item in parsed:
            if isinstance(item, _Call) and not self._allowed(item, permission):
                return self._forbidden(item)
        replies: list[dict[str, Any]] = []
        for item in parsed:
            if isinstance(item, _BadRequest):
                replies.append({"jsonrpc": "2.0", "error": item.to_json(), "id": item.request_id})
                continue
            reply = await self._execute(item)
            if reply is not None:
                replies.append(reply)
        if not replies:
            return RpcReply(204, None)
        return RpcReply(200, _encode(replies))

    def _allowed(self, call: _Call, permission: Permission) -> bool:
        method = self.registry.get(call.method)
        # An unknown method is allowed through to get its -32601.
        return method is None or permission is Permission.ADMIN or method.spec.permission is Permission.READ

    @staticmethod
    def _forbidden(call: _Call) -> RpcReply:
        error = RpcError(ErrorCode.FORBIDDEN, f"Forbidden: {call.method} needs the admin token")
        return RpcReply(403, error_body(error, None if call.id is _NO_ID else call.id))

    async def _execute(self, call: _Call) -> dict[str, Any] | None:
        """Run one call; the reply object, or None for a notification."""
        try:
            method = self.registry.get(call.method)
            if method is None:
                raise RpcError(ErrorCode.METHOD_NOT_FOUND, "Method not found", {"method": call.method[:64]})
            args = bind_params(method.spec, call.params)
            result = await method.handler(args)
            reply: dict[str, Any] = {"jsonrpc": "2.0", "result": result}
        except RpcError as exc:
            reply = {"jsonrpc": "2.0", "error": exc.to_json()}
        except Exception as exc:
            error = to_rpc_error(exc)
            if error.code != ErrorCode.INTERNAL_ERROR:
                log.info("%s failed: %s", call.method, error.message)
            reply = {"jsonrpc": "2.0", "error": error.to_json()}
        if call.id is _NO_ID:
            return None
        reply["id"] = call.id
        return reply
