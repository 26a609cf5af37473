"""Typed BOLT 2 channel messages: the state machine's input and output vocabulary.

Each message is a frozen dataclass whose fields carry the spec's names. `parse_message` turns a
decoded wire `Message` into one (raising only `ChannelError`), and `to_wire()` goes back; the
shell encodes and decodes bytes with `ampere.wire`. Signatures are the wire's 64-byte compact
form; points are 33-byte compressed keys (the wire layer has already checked they are valid).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

from ampere.channel.twoway.errors import ChannelError, ErrorResponse
from ampere.wire import Message, WireError, make_message
from ampere.wire.primitives import ShortChannelId
from ampere.wire.values import UnknownMessage

__all__ = [
    "AcceptChannel",
    "ChannelMessage",
    "ChannelReady",
    "ChannelReestablish",
    "ClosingComplete",
    "ClosingSig",
    "ClosingSigned",
    "CommitmentSigned",
    "ErrorMessage",
    "FundingCreated",
    "FundingSigned",
    "OpenChannel",
    "RevokeAndAck",
    "Shutdown",
    "UpdateAddHtlc",
    "UpdateFailHtlc",
    "UpdateFailMalformedHtlc",
    "UpdateFee",
    "UpdateFulfillHtlc",
    "WarningMessage",
    "parse_message",
]

ZERO_CHANNEL_ID = bytes(32)


class _Plain:
    """Fields that map one to one onto the wire message of the same name (TLVs excluded)."""

    __slots__ = ()

    NAME: ClassVar[str]
    # Dataclass fields filled from TLV records rather than from the message body.
    TLV_FIELDS: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def _body(cls, message: Message) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
            if spec.name in cls.TLV_FIELDS:
                continue
            value = message.fields.get(spec.name)
            expected = spec.type
            if expected == "int" and not isinstance(value, int):
                raise ChannelError(f"{cls.NAME}.{spec.name} is not an integer")
            if expected == "bytes" and not isinstance(value, bytes):
                raise ChannelError(f"{cls.NAME}.{spec.name} is not a byte string")
            if expected == "tuple[bytes, ...]" and not (
                isinstance(value, tuple) and all(isinstance(item, bytes) for item in value)
            ):
                raise ChannelError(f"{cls.NAME}.{spec.name} is not a list of byte strings")
            values[spec.name] = value
        return values

    def _wire_fields(self) -> dict[str, Any]:
        return {
            spec.name: getattr(self, spec.name)
            for spec in dataclasses.fields(self)  # type: ignore[arg-type]
            if spec.name not in self.TLV_FIELDS
        }

    @classmethod
    def from_wire(cls, message: Message) -> Any:
        return cls(**cls._body(message))

    def to_wire(self) -> Message:
        return make_message(self.NAME, **self._wire_fields())


def _tlv_bytes(message: Message, record: str) -> bytes | None:
    value = message.tlv_value(record)
    if value is None:
        return None
    if not isinstance(value, bytes):
        raise ChannelError(f"{message.name} TLV {record} is malformed")
    return value


# --- channel establishment ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenChannel(_Plain):
    chain_hash: bytes
    temporary_channel_id: bytes
    funding_satoshis: int
    push_msat: int
    dust_limit_satoshis: int
    max_htlc_value_in_flight_msat: int
    channel_reserve_satoshis: int
    htlc_minimum_msat: int
    feerate_per_kw: int
    to_self_delay: int
    max_accepted_htlcs: int
    funding_pubkey: bytes
    revocation_basepoint: bytes
    payment_basepoint: bytes
    delayed_payment_basepoint: bytes
    htlc_basepoint: bytes
    first_per_commitment_point: bytes
    channel_flags: int
    upfront_shutdown_script: bytes | None = None
    channel_type: bytes | None = None

    NAME: ClassVar[str] = "open_channel"
    TLV_FIELDS: ClassVar[frozenset[str]] = frozenset({"upfront_shutdown_script", "channel_type"})

    @property
    def channel_id(self) -> bytes:
        return self.temporary_channel_id

    @classmethod
    def from_wire(cls, message: Message) -> OpenChannel:
        return cls(
            **cls._body(message),
            upfront_shutdown_script=_tlv_bytes(message, "upfront_shutdown_script"),
            channel_type=_tlv_bytes(message, "channel_type"),
        )

    def to_wire(self) -> Message:
        return make_message(self.NAME, tlvs=_opening_tlvs(self), **self._wire_fields())


def _opening_tlvs(message: OpenChannel | AcceptChannel) -> dict[str, dict[str, Any]]:
    tlvs: dict[str, dict[str, Any]] = {}
    if message.upfront_shutdown_script is not None:
        tlvs["upfront_shutdown_script"] = {"shutdown_scriptpubkey": message.upfront_shutdown_script}
    if message.channel_type is not None:
        tlvs["channel_type"] = {"type": message.channel_type}
    return tlvs


@dataclass(frozen=True, slots=True)
class AcceptChannel(_Plain):
    temporary_channel_id: bytes
    dust_limit_satoshis: int
    max_htlc_value_in_flight_msat: int
    channel_reserve_satoshis: int
    htlc_minimum_msat: int
    minimum_depth: int
    to_self_delay: int
    max_accepted_htlcs: int
    funding_pubkey: bytes
    revocation_basepoint: bytes
    payment_basepoint: bytes
    delayed_payment_basepoint: bytes
    htlc_basepoint: bytes
    first_per_commitment_point: bytes
    upfront_shutdown_script: bytes | None = None
    channel_type: bytes | None = None

    NAME: ClassVar[str] = "accept_channel"
    TLV_FIELDS: ClassVar[frozenset[str]] = frozenset({"upfront_shutdown_script", "channel_type"})

    @property
    def channel_id(self) -> bytes:
        return self.temporary_channel_id

    @classmethod
    def from_wire(cls, message: Message) -> AcceptChannel:
        return cls(
            **cls._body(message),
            upfront_shutdown_script=_tlv_bytes(message, "upfront_shutdown_script"),
            channel_type=_tlv_bytes(message, "channel_type"),
        )

    def to_wire(self) -> Message:
        return make_message(self.NAME, tlvs=_opening_tlvs(self), **self._wire_fields())


@dataclass(frozen=True, slots=True)
class FundingCreated(_Plain):
    temporary_channel_id: bytes
    funding_txid: bytes
    funding_output_index: int
    signature: bytes

    NAME: ClassVar[str] = "funding_created"

    @property
    def channel_id(self) -> bytes:
        return self.temporary_channel_id


@dataclass(frozen=True, slots=True)
class FundingSigned(_Plain):
    channel_id: bytes
    signature: bytes

    NAME: ClassVar[str] = "funding_signed"


@dataclass(frozen=True, slots=True)
class ChannelReady(_Plain):
    channel_id: bytes
    second_per_commitment_point: bytes
    alias: int | None = None  # short_channel_id alias, as its integer form

    NAME: ClassVar[str] = "channel_ready"
    TLV_FIELDS: ClassVar[frozenset[str]] = frozenset({"alias"})

    @classmethod
    def from_wire(cls, message: Message) -> ChannelReady:
        alias = message.tlv_value("short_channel_id")
        if alias is not None and not isinstance(alias, ShortChannelId):
            raise ChannelError("channel_ready alias is malformed")
        return cls(**cls._body(message), alias=None if alias is None else alias.to_int())

    def to_wire(self) -> Message:
        tlvs = (
            {} if self.alias is None else {"short_channel_id": {"alias": ShortChannelId.from_int(self.alias)}}
        )
        return make_message(self.NAME, tlvs=tlvs, **self._wire_fields())


# --- normal operation ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpdateAddHtlc(_Plain):
    channel_id: bytes
    id: int
    amount_msat: int
    payment_hash: bytes
    cltv_expiry: int
    onion_routing_packet: bytes

    NAME: ClassVar[str] = "update_add_htlc"


@dataclass(frozen=True, slots=True)
class UpdateFulfillHtlc(_Plain):
    channel_id: bytes
    id: int
    payment_preimage: bytes

    NAME: ClassVar[str] = "update_fulfill_htlc"


@dataclass(frozen=True, slots=True)
class UpdateFailHtlc(_Plain):
    channel_id: bytes
    id: int
    reason: bytes

    NAME: ClassVar[str] = "update_fail_htlc"


@dataclass(frozen=True, slots=True)
class UpdateFailMalformedHtlc(_Plain):
    channel_id: bytes
    id: int
    sha256_of_onion: bytes
    failure_code: int

    NAME: ClassVar[str] = "update_fail_malformed_htlc"


@dataclass(frozen=True, slots=True)
class UpdateFee(_Plain):
    channel_id: bytes
    feerate_per_kw: int

    NAME: ClassVar[str] = "update_fee"


@dataclass(frozen=True, slots=True)
class CommitmentSigned(_Plain):
    channel_id: bytes
    signature: bytes
    htlc_signature: tuple[bytes, ...]
    funding_txid: bytes | None = None

    NAME: ClassVar[str] = "commitment_signed"
    TLV_FIELDS: ClassVar[frozenset[str]] = frozenset({"funding_txid"})

    @classmethod
    def from_wire(cls, message: Message) -> CommitmentSigned:
        return cls(**cls._body(message), funding_txid=_tlv_bytes(message, "funding_txid"))

    def to_wire(self) -> Message:
        tlvs = {} if self.funding_txid is None else {"funding_txid": {"funding_txid": self.funding_txid}}
        return make_message(self.NAME, tlvs=tlvs, **self._wire_fields())


@dataclass(frozen=True, slots=True)
class RevokeAndAck(_Plain):
    channel_id: bytes
    per_commitment_secret: bytes
    next_per_commitment_point: bytes

    NAME: ClassVar[str] = "revoke_and_ack"


# --- closing -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shutdown(_Plain):
    channel_id: bytes
    scriptpubkey: bytes

    NAME: ClassVar[str] = "shutdown"


@dataclass(frozen=True, slots=True)
class ClosingSigned(_Plain):
    channel_id: bytes
    fee_satoshis: int
    signature: bytes
    min_fee_satoshis: int | None = None
    max_fee_satoshis: int | None = None

    NAME: ClassVar[str] = "closing_signed"
    TLV_FIELDS: ClassVar[frozenset[str]] = frozenset({"min_fee_satoshis", "max_fee_satoshis"})

    @property
    def fee_range(self) -> tuple[int, int] | None:
        if self.min_fee_satoshis is None or self.max_fee_satoshis is None:
            return None
        return self.min_fee_satoshis, self.max_fee_satoshis

    @classmethod
    def from_wire(cls, message: Message) -> ClosingSigned:
        record = message.tlv("fee_range")
        low = high = None
        if record is not None:
            low, high = record.get_int("min_fee_satoshis"), record.get_int("max_fee_satoshis")
        return cls(**cls._body(message), min_fee_satoshis=low, max_fee_satoshis=high)

    def to_wire(self) -> Message:
        tlvs: dict[str, dict[str, Any]] = {}
        if self.fee_range is not None:
            tlvs["fee_range"] = {
                "min_fee_satoshis": self.min_fee_satoshis,
                "max_fee_satoshis": self.max_fee_satoshis,
            }
        return make_message(self.NAME, tlvs=tlvs, **self._wire_fields())


@dataclass(frozen=True, slots=True)
class _SimpleClose(_Plain):
    channel_id: bytes
    closer_scriptpubkey: bytes
    closee_scriptpubkey: bytes
    fee_satoshis: int
    locktime: int
    closer_output_only: bytes | None = None
    closee_output_only: bytes | None = None
    closer_and_closee_outputs: bytes | None = None

    TLV_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"closer_output_only", "closee_output_only", "closer_and_closee_outputs"}
    )

    @classmethod
    def from_wire(cls, message: Message) -> Any:
        sigs: dict[str, Any] = {}
        for name in sorted(cls.TLV_FIELDS):
            record = message.tlv(name)
            sigs[name] = None if record is None else record.get_bytes("sig")
        return cls(**cls._body(message), **sigs)

    def to_wire(self) -> Message:
        tlvs = {
            name: {"sig": getattr(self, name)}
            for name in sorted(self.TLV_FIELDS)
            if getattr(self, name) is not None
        }
        return make_message(self.NAME, tlvs=tlvs, **self._wire_fields())


@dataclass(frozen=True, slots=True)
class ClosingComplete(_SimpleClose):
    NAME: ClassVar[str] = "closing_complete"


@dataclass(frozen=True, slots=True)
class ClosingSig(_SimpleClose):
    NAME: ClassVar[str] = "closing_sig"


# --- reconnection and errors -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelReestablish(_Plain):
    channel_id: bytes
    next_commitment_number: int
    next_revocation_number: int
    your_last_per_commitment_secret: bytes
    my_current_per_commitment_point: bytes

    NAME: ClassVar[str] = "channel_reestablish"


@dataclass(frozen=True, slots=True)
class ErrorMessage(_Plain):
    channel_id: bytes
    data: bytes

    NAME: ClassVar[str] = "error"

    @property
    def text(self) -> str:
        """Printable ASCII only (BOLT 1: never print the data verbatim otherwise)."""
        return "".join(chr(b) if 32 <= b <= 126 else "?" for b in self.data)


@dataclass(frozen=True, slots=True)
class WarningMessage(_Plain):
    channel_id: bytes
    data: bytes

    NAME: ClassVar[str] = "warning"

    @property
    def text(self) -> str:
        return "".join(chr(b) if 32 <= b <= 126 else "?" for b in self.data)


ChannelMessage: TypeAlias = (
    OpenChannel
    | AcceptChannel
    | FundingCreated
    | FundingSigned
    | ChannelReady
    | UpdateAddHtlc
    | UpdateFulfillHtlc
    | UpdateFailHtlc
    | UpdateFailMalformedHtlc
    | UpdateFee
    | CommitmentSigned
    | RevokeAndAck
    | Shutdown
    | ClosingSigned
    | ClosingComplete
    | ClosingSig
    | ChannelReestablish
    | ErrorMessage
    | WarningMessage
)

_BY_NAME: dict[str, type[Any]] = {
    cls.NAME: cls
    for cls in (
        OpenChannel,
        AcceptChannel,
        FundingCreated,
        FundingSigned,
        ChannelReady,
        UpdateAddHtlc,
        UpdateFulfillHtlc,
        UpdateFailHtlc,
        UpdateFailMalformedHtlc,
        UpdateFee,
        CommitmentSigned,
        RevokeAndAck,
        Shutdown,
        ClosingSigned,
        ClosingComplete,
        ClosingSig,
        ChannelReestablish,
        ErrorMessage,
        WarningMessage,
    )
}

CHANNEL_MESSAGE_NAMES: frozenset[str] = frozenset(_BY_NAME)


def parse_message(message: Message | UnknownMessage) -> ChannelMessage:
    """The typed form of a decoded channel message; `ChannelError` for anything else."""
    if isinstance(message, UnknownMessage):
        raise ChannelError(f"unknown message type {message.type}", ErrorResponse.IGNORE)
    cls = _BY_NAME.get(message.name)
    if cls is None:
        raise ChannelError(f"{message.name} is not a channel message", ErrorResponse.IGNORE)
    try:
        parsed: ChannelMessage = cls.from_wire(message)
    except WireError as exc:
        raise ChannelError(f"malformed {message.name}: {exc}", ErrorResponse.DISCONNECT) from exc
    return parsed
