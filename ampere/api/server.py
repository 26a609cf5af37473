"""The node's JSON-RPC server: `POST /` over HTTP on localhost and on a Unix socket, bearer tokens.

Order of checks: body size (413, by the HTTP layer, before anything is parsed), path and method,
token (401, body unread), JSON-RPC parsing and permission (403, nothing executed), then the call.
Both tokens are compared in constant time on every request, so timing does not tell which exists.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from ampere.api.errors import ErrorCode, RpcError
from ampere.api.jsonrpc import JsonRpcProcessor, error_body
from ampere.chain.http import HttpServer, Request, Response, ServerLimits, bearer_token_matches
from ampere.node.commands import Permission
from ampere.node.datadir import Tokens

__all__ = ["MAX_REQUEST_BYTES", "RpcServer"]

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1024 * 1024
_JSON = (("Content-Type", "application/json"),)


class RpcServer:
    def __init__(
        self, processor: JsonRpcProcessor, tokens: Tokens, limits: ServerLimits | None = None
    ) -> None:
        self._processor = processor
        self._tokens = tokens
        self.http = HttpServer(self._handle, limits or ServerLimits(max_body_bytes=MAX_REQUEST_BYTES))
        self.url: str | None = None
        self.socket_path: Path | None = None

    async def listen_tcp(self, host: str, port: int) -> str:
        bound_host, bound_port = await self.http.listen_tcp(host, port)
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}/"
        log.info("JSON-RPC listening on %s", self.url)
        return self.url

    async def listen_unix(self, path: Path) -> Path:
        """Bind `path`, through a name relative to its directory: socket paths are limited to 107 bytes."""
        path = path.resolve()
        previous = os.getcwd()
        os.chdir(path.parent)
        try:
            # Nothing in the node resolves relative paths, so the moment in another directory is harmless.
            await self.http.listen_unix(Path(path.name))
        finally:
            os.chdir(previous)
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)
        self.socket_path = path
        log.info("JSON-RPC listening on %s", path)
        return path

    async def close(self) -> None:
        await self.http.close()
        if self.socket_path is not None:
            with contextlib.suppress(OSError):
                self.socket_path.unlink()

    def _permission(self, header: str | None) -> Permission | None:
        admin = bearer_token_matches(header, self._tokens.admin)
        readonly = bearer_token_matches(header, self._tokens.readonly)
        if admin:
            return Permission.ADMIN
        if readonly:
            return Permission.READ
        return None

    async def _handle(self, request: Request) -> Response:
        if request.path != "/":
            return Response(
                404, error_body(RpcError(ErrorCode.INVALID_REQUEST, "Not found: POST to /")), _JSON
            )
        if request.method != "POST":
            body = error_body(RpcError(ErrorCode.INVALID_REQUEST, "Method not allowed: use POST"))
            return Response(405, body, (*_JSON, ("Allow", "POST")))
        permission = self._permission(request.headers.get("Authorization"))
        if permission is None:
            log.debug("unauthenticated RPC request from %s", request.peer)
            body = error_body(RpcError(ErrorCode.UNAUTHORIZED, "Unauthorized: missing or wrong bearer token"))
            return Response(401, body, (*_JSON, ("WWW-Authenticate", 'Bearer realm="ampere"')))
        reply = await self._processor.handle(request.body, permission)
        if reply.body is None:
            return Response(204)
        return Response(reply.status, reply.body, _JSON)
