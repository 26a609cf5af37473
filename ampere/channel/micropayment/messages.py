"""The micropayment channel's custom messages: one frozen dataclass per `micropayment.csv` entry.

The layouts live in `ampere/wire/specs/micropayment.csv` and are added to the BOLT schema with
`Schema.extended`, so the codec, its bounds checks and point validation are the wire layer's own.
Every decoding failure becomes `MalformedMessageError`; nothing else escapes `decode_micro`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from ampere.channel.micropayment.errors import MalformedMessageError
from ampere.channel.micropayment.message_base import MICRO_SCHEMA, ErrorMessage
from ampere.channel.micropayment.message_base import MessageBase as _Base
from ampere.wire import Message, UnknownMessage, WireError
from ampere.wire.messages import decode_message, encode_message, make_message

__all__ = [
    "MICROPAYMENT_FEATURE_BIT",
    "MICRO_MESSAGE_TYPES",
    "MICRO_SCHEMA",
    "Accept",
    "Ack",
    "ErrorMessage",
    "FundingCreated",
    "MicroMessage",
    "Propose",
    "RefundSigned",
    "Sync",
    "Update",
    "decode_micro",
    "encode_micro",
    "is_micro_type",
]

#: Advertised in `init` (optional, so odd): a payer checks it before proposing, to fail fast.
MICROPAYMENT_FEATURE_BIT = 257


@dataclass(frozen=True, slots=True)
class Propose(_Base):
    """Payer -> payee: the channel the payer wants to fund."""

    NAME: ClassVar[str] = "micro_propose"
    chain_hash: bytes
    capacity_sat: int
    refund_height: int
    feerate_per_kw: int
    payer_funding_pubkey: bytes
    refund_script: bytes


@dataclass(frozen=True, slots=True)
class Accept(_Base):
    """Payee -> payer: its key, where it wants to be paid, and the limits it enforces."""

    NAME: ClassVar[str] = "micro_accept"
    payee_funding_pubkey: bytes
    dust_limit_sat: int
    safety_margin: int
    payout_script: bytes


@dataclass(frozen=True, slots=True)
class FundingCreated(_Base):
    """Payer -> payee: the funding outpoint (never the signed funding transaction) and the unsigned refund."""

    NAME: ClassVar[str] = "micro_funding"
    funding_txid: bytes
    funding_vout: int
    refund_tx: bytes


@dataclass(frozen=True, slots=True)
class RefundSigned(_Base):
    """Payee -> payer: the payee's signature of the refund; only now may the funding be broadcast."""

    NAME: ClassVar[str] = "micro_refund_signed"
    signature: bytes


@dataclass(frozen=True, slots=True)
class Sync(_Base):
    """Payee -> payer when the funding is deep enough and on every reconnection: the payee's best
    update, with the payer's own signature of it as proof (all zero while nothing is paid)."""

    NAME: ClassVar[str] = "micro_sync"
    sequence: int
    paid_msat: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class Update(_Base):
    """Payer -> payee: one payment of `amount_msat`, bringing the cumulative total to `paid_msat`;
    `payee_sat`/`change_sat` are the update transaction's outputs (0 = left out as dust)."""

    NAME: ClassVar[str] = "micro_update"
    sequence: int
    amount_msat: int
    paid_msat: int
    payee_sat: int
    change_sat: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class Ack(_Base):
    """Payee -> payer: this update is now the payee's best state, durably."""

    NAME: ClassVar[str] = "micro_ack"
    sequence: int
    paid_msat: int


MicroMessage = Propose | Accept | FundingCreated | RefundSigned | Sync | Update | Ack | ErrorMessage

_CLASSES: tuple[type[_Base], ...] = (
    Propose,
    Accept,
    FundingCreated,
    RefundSigned,
    Sync,
    Update,
    Ack,
    ErrorMessage,
)
_BY_TYPE: dict[int, type[_Base]] = {MICRO_SCHEMA.message(cls.NAME).type: cls for cls in _CLASSES}
MICRO_MESSAGE_TYPES: frozenset[int] = frozenset(_BY_TYPE)


def is_micro_type(msg_type: int) -> bool:
    return msg_type in MICRO_MESSAGE_TYPES


def encode_micro(message: MicroMessage) -> bytes:
    """The message's bytes, type included, as the transport sends them."""
    values = {field.name: getattr(message, field.name) for field in dataclasses.fields(message)}
    try:
        return encode_message(make_message(message.NAME, schema=MICRO_SCHEMA, **values), MICRO_SCHEMA)
    except WireError as exc:
        raise MalformedMessageError(f"cannot encode {message.NAME}: {exc}") from exc


def decode_micro(data: bytes | Message | UnknownMessage) -> MicroMessage:
    """Decode one message (raw bytes, or what the peer layer hands over for a custom type).

    Trailing bytes after the known fields are ignored, as BOLT 1 asks of extensions.
    """
    if isinstance(data, UnknownMessage):
        data = data.type.to_bytes(2, "big") + data.payload
    elif isinstance(data, Message):
        if not is_micro_type(data.type):
            raise MalformedMessageError(f"{data.name} is not a micropayment message")
        data = encode_message(data, MICRO_SCHEMA)
    if len(data) < 2 or not is_micro_type(int.from_bytes(data[:2], "big")):
        raise MalformedMessageError("not a micropayment message type")
    try:
        decoded = decode_message(bytes(data), MICRO_SCHEMA)
    except WireError as exc:
        raise MalformedMessageError(f"malformed micropayment message: {exc}") from exc
    if not isinstance(decoded, Message):  # the type check above makes every one known
        raise MalformedMessageError("unknown micropayment message")
    cls = _BY_TYPE[decoded.type]
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        value = decoded.fields.get(field.name)
        expected = {"int": int, "bytes": bytes, "str": str}[str(field.type)]
        if not isinstance(value, expected):
            raise MalformedMessageError(f"{cls.NAME}.{field.name} is not {field.type}")
        values[field.name] = value
    return cast(MicroMessage, cls(**values))
