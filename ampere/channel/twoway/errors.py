"""The channel protocol's one error type, and the response each failure calls for.

Every check a handler makes on peer input raises `ChannelError`; nothing else escapes the state
machine for bad input (the fuzz tests hold it to that). The error says how the shell must react,
as LDK's errors do, because BOLT 1/2 prescribe different reactions to different faults: some
messages are merely ignored, some earn a `warning` (and maybe a disconnection, after which the
channel is re-established), and some mean the channel is failed: send `error` and force close.
"""

from __future__ import annotations

from enum import Enum

from ampere.errors import AmpereError

__all__ = ["ChannelError", "CommandError", "ErrorResponse"]


class ErrorResponse(Enum):
    """What the shell does about a failure."""

    IGNORE = "ignore"  # drop the input; the channel carries on
    WARN = "warn"  # send `warning`, keep the connection
    DISCONNECT = "disconnect"  # send `warning` and close the connection; reestablish later
    CLOSE = "close"  # send `error` and fail the channel (force close if it is funded)


class ChannelError(AmpereError):
    """A protocol violation by the peer, or an input the channel cannot act on."""

    def __init__(
        self, reason: str, response: ErrorResponse = ErrorResponse.CLOSE, *, channel_id: bytes | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.response = response
        # The id the error message must carry when the channel has none yet (a refused open).
        self.channel_id = channel_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, {self.response.value})"


class CommandError(ChannelError):
    """A local command the channel refuses (over a limit, wrong phase): nothing is sent and the
    channel is unaffected; the caller learns why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, ErrorResponse.IGNORE)
