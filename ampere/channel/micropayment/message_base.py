"""What every micropayment message shares, and `micro_error` itself with its codes.

Kept apart from `messages` so that `errors` can name the `micro_error` reply an error carries while
`messages` raises those errors: both import from here, and `errors` never imports `messages`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from importlib import resources
from typing import ClassVar

from ampere.wire import DEFAULT_SCHEMA
from ampere.wire.schema import Schema

__all__ = ["MICRO_SCHEMA", "ErrorCode", "ErrorMessage", "MessageBase"]

_CSV = resources.files("ampere.wire.specs").joinpath("micropayment.csv").read_text(encoding="utf-8")
MICRO_SCHEMA: Schema = DEFAULT_SCHEMA.extended(_CSV)


class ErrorCode(IntEnum):
    """The `code` field of `micro_error`, so that the payer's software can react without parsing text."""

    UNSPECIFIED = 0
    BAD_SEQUENCE = 1
    LOWER_AMOUNT = 2
    AMOUNT_MISMATCH = 3
    BAD_SIGNATURE = 4
    DUST_OUTPUT = 5
    OVER_CAPACITY = 6
    OUTPUT_MISMATCH = 7
    NOT_OPEN = 8
    CLOSING = 9
    PROPOSAL_REJECTED = 10
    BAD_REFUND = 11
    BAD_FUNDING = 12
    MALFORMED = 13
    UNEXPECTED_MESSAGE = 14
    OUT_OF_SYNC = 15


@dataclass(frozen=True, slots=True)
class MessageBase:
    """Field names equal the CSV's; `channel_id` comes first in every message."""

    NAME: ClassVar[str]

    channel_id: bytes

    @property
    def type(self) -> int:
        return MICRO_SCHEMA.message(self.NAME).type


@dataclass(frozen=True, slots=True)
class ErrorMessage(MessageBase):
    """Either way: why a message was refused; `sequence` names the refused update (0 if none)."""

    NAME: ClassVar[str] = "micro_error"
    code: int
    sequence: int
    data: str

    @property
    def error_code(self) -> ErrorCode:
        try:
            return ErrorCode(self.code)
        except ValueError:
            return ErrorCode.UNSPECIFIED
