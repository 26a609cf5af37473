"""Typed errors of the micropayment channel.

Every failure the machines report is a `MicropaymentError`. Each one carries the `response` the shell
owes the peer (LDK's `ErrorAction`), a wire `code`, and, where the peer should hear about it, the
`micro_error` reply to send. Raising never changes a machine: its state is an immutable value that is
only replaced once a transition has succeeded, so a rejected input leaves the channel as it was.
"""

from __future__ import annotations

from enum import Enum

from ampere.channel.micropayment.message_base import ErrorCode, ErrorMessage
from ampere.errors import AmpereError

__all__ = [
    "ChainEventError",
    "CommandRejectedError",
    "ErrorCode",
    "MalformedMessageError",
    "MicropaymentError",
    "OpeningRejectedError",
    "PeerErrorReceived",
    "Response",
    "StateDecodeError",
    "UnexpectedMessageError",
    "UpdateRejectedError",
]


class Response(Enum):
    """What the shell does about an error."""

    IGNORE = "ignore"  # drop the input; nothing to tell the peer
    WARN = "warn"  # send the carried `micro_error` reply; the channel keeps working
    DISCONNECT = "disconnect"  # the peer sent bytes that do not parse: drop the connection
    CLOSE = "close"  # the negotiation is over; forget the channel if nothing of it is on chain


class MicropaymentError(AmpereError):
    """Base of every micropayment error; the machine that raised it is unchanged."""

    default_response = Response.WARN
    default_code = ErrorCode.UNSPECIFIED

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        response: Response | None = None,
        sequence: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = self.default_code if code is None else code
        self.response = self.default_response if response is None else response
        self.sequence = sequence  # the update this error is about, 0 if none
        # Set by the machine when the error answers a peer's message and the peer should hear of it.
        self.reply: ErrorMessage | None = None


class MalformedMessageError(MicropaymentError):
    """Bytes that are not a micropayment message, or a message whose fields are out of range."""

    default_response = Response.DISCONNECT
    default_code = ErrorCode.MALFORMED


class UnexpectedMessageError(MicropaymentError):
    """A well-formed message the channel does not expect in its current phase."""

    default_code = ErrorCode.UNEXPECTED_MESSAGE


class OpeningRejectedError(MicropaymentError):
    """A proposal, acceptance, funding or refund the receiving side refuses; the negotiation ends."""

    default_response = Response.CLOSE
    default_code = ErrorCode.PROPOSAL_REJECTED


class UpdateRejectedError(MicropaymentError):
    """A payment update the payee refuses: its best state stays as it was and the payer is told why."""


class PeerErrorReceived(MicropaymentError):
    """The peer sent `micro_error` about something the channel cannot recover from by itself."""

    default_response = Response.IGNORE


class CommandRejectedError(MicropaymentError):
    """A local command (open, pay, settle, refund, ...) that is not possible now or has bad arguments."""

    default_response = Response.IGNORE


class ChainEventError(MicropaymentError):
    """A chain event that does not fit the channel (a transaction that is not its funding or spend)."""

    default_response = Response.IGNORE


class StateDecodeError(MicropaymentError):
    """A serialized channel state that this code did not write, or a key that does not match it."""

    default_response = Response.IGNORE
