"""Errors the node raises to its callers (the RPC layer maps each to a JSON-RPC error)."""

from __future__ import annotations

from ampere.errors import AmpereError

__all__ = ["InvalidArgumentError", "NodeError", "NotFoundError", "NotSupportedError"]


class NodeError(AmpereError):
    """A node operation failed for a reason the caller should read."""


class InvalidArgumentError(NodeError):
    """An argument has the right type but an unusable value (a mainnet address on regtest, say)."""

    def __init__(self, param: str, reason: str) -> None:
        super().__init__(f"{param}: {reason}")
        self.param = param
        self.reason = reason


class NotSupportedError(NodeError):
    """The operation does not exist in this configuration (mining outside regtest, say)."""


class NotFoundError(NodeError):
    """The thing named (a peer, a channel) is not known to the node."""
