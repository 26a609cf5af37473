"""BOLT 4 onion contents: the per-hop payload TLV stream and the failure messages.

The Sphinx layers (`ampere.crypto.sphinx`) carry these as opaque bytes; this module gives them meaning.
A payload error reports the offending TLV type and byte offset, because that is exactly what the
`invalid_onion_payload` failure sends back to the payer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ampere.wire.bigsize import encode_bigsize
from ampere.wire.errors import DecodeError, EncodeError, UnknownEvenTlvError, WireError
from ampere.wire.primitives import decode_truncated, encode_truncated
from ampere.wire.tlv import TlvRecord, parse_tlv_records, serialize_tlv_records

__all__ = [
    "FailureCode",
    "FailureMessage",
    "HopPayload",
    "OnionPayloadError",
]

BADONION = 0x8000
PERM = 0x4000
NODE = 0x2000
UPDATE = 0x1000

_AMT_TO_FORWARD = 2
_OUTGOING_CLTV_VALUE = 4
_SHORT_CHANNEL_ID = 6
_PAYMENT_DATA = 8
_PAYMENT_METADATA = 16
_KNOWN_TYPES = frozenset(
    {_AMT_TO_FORWARD, _OUTGOING_CLTV_VALUE, _SHORT_CHANNEL_ID, _PAYMENT_DATA, _PAYMENT_METADATA}
)


class OnionPayloadError(WireError):
    """A hop payload we cannot accept; `tlv_type` and `offset` go into `invalid_onion_payload`."""

    def __init__(self, message: str, tlv_type: int, offset: int = 0) -> None:
        super().__init__(message)
        self.tlv_type = tlv_type
        self.offset = offset


@dataclass(frozen=True, slots=True)
class HopPayload:
    amt_to_forward: int
    outgoing_cltv_value: int
    short_channel_id: bytes | None = None  # 8 bytes; absent for the final hop
    payment_secret: bytes | None = None  # payment_data, with total_msat
    total_msat: int | None = None
    payment_metadata: bytes | None = None
    unknown_odd: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        if (self.payment_secret is None) != (self.total_msat is None):
            raise EncodeError("payment_secret and total_msat travel together (payment_data)")
        if self.payment_secret is not None and len(self.payment_secret) != 32:
            raise EncodeError("payment_secret must be 32 bytes")
        if self.short_channel_id is not None and len(self.short_channel_id) != 8:
            raise EncodeError("short_channel_id must be 8 bytes")

    @property
    def is_final(self) -> bool:
        return self.short_channel_id is None

    def encode(self) -> bytes:
        records: list[TlvRecord] = [
            TlvRecord(_AMT_TO_FORWARD, encode_truncated(self.amt_to_forward, 8)),
            TlvRecord(_OUTGOING_CLTV_VALUE, encode_truncated(self.outgoing_cltv_value, 4)),
        ]
        if self.short_channel_id is not None:
            records.append(TlvRecord(_SHORT_CHANNEL_ID, self.short_channel_id))
        if self.payment_secret is not None and self.total_msat is not None:
            records.append(
                TlvRecord(_PAYMENT_DATA, self.payment_secret + encode_truncated(self.total_msat, 8))
            )
        if self.payment_metadata is not None:
            records.append(TlvRecord(_PAYMENT_METADATA, self.payment_metadata))
        records.extend(self.unknown_odd)
        records.sort(key=_record_type)
        return serialize_tlv_records(records)

    @classmethod
    def decode(cls, data: bytes) -> HopPayload:
        try:
            records = parse_tlv_records(data, known=_KNOWN_TYPES)
        except UnknownEvenTlvError as exc:
            raise OnionPayloadError(str(exc), exc.tlv_type) from None
        except DecodeError as exc:
            raise OnionPayloadError(f"hop payload is not a valid TLV stream: {exc}", 0) from None
        values = {record.type: record.value for record in records}
        offsets = _record_offsets(records)

        def truncated(tlv_type: int, width: int) -> int:
            try:
                return decode_truncated(values[tlv_type], width)
            except DecodeError as exc:
                raise OnionPayloadError(str(exc), tlv_type, offsets[tlv_type]) from None

        for required in (_AMT_TO_FORWARD, _OUTGOING_CLTV_VALUE):
            if required not in values:
                raise OnionPayloadError(f"hop payload lacks TLV type {required}", required, len(data))
        scid = values.get(_SHORT_CHANNEL_ID)
        if scid is not None and len(scid) != 8:
            raise OnionPayloadError("short_channel_id is not 8 bytes", _SHORT_CHANNEL_ID, offsets[6])
        secret: bytes | None = None
        total: int | None = None
        if _PAYMENT_DATA in values:
            raw = values[_PAYMENT_DATA]
            if len(raw) < 32:
                raise OnionPayloadError("payment_data is shorter than 32 bytes", _PAYMENT_DATA, offsets[8])
            secret = raw[:32]
            try:
                total = decode_truncated(raw[32:], 8)
            except DecodeError as exc:
                raise OnionPayloadError(str(exc), _PAYMENT_DATA, offsets[_PAYMENT_DATA]) from None
        return cls(
            amt_to_forward=truncated(_AMT_TO_FORWARD, 8),
            outgoing_cltv_value=truncated(_OUTGOING_CLTV_VALUE, 4),
            short_channel_id=scid,
            payment_secret=secret,
            total_msat=total,
            payment_metadata=values.get(_PAYMENT_METADATA),
            unknown_odd=tuple(record for record in records if record.type not in _KNOWN_TYPES),
        )


def _record_type(record: TlvRecord) -> int:
    return record.type


def _record_offsets(records: tuple[TlvRecord, ...]) -> dict[int, int]:
    """Where each record starts in its stream (records are minimal, so re-serializing measures it)."""
    offsets: dict[int, int] = {}
    position = 0
    for record in records:
        offsets[record.type] = position
        position += len(serialize_tlv_records([record]))
    return offsets


class FailureCode(IntEnum):
    INVALID_REALM = PERM | 1
    TEMPORARY_NODE_FAILURE = NODE | 2
    PERMANENT_NODE_FAILURE = PERM | NODE | 2
    REQUIRED_NODE_FEATURE_MISSING = PERM | NODE | 3
    INVALID_ONION_VERSION = BADONION | PERM | 4
    INVALID_ONION_HMAC = BADONION | PERM | 5
    INVALID_ONION_KEY = BADONION | PERM | 6
    TEMPORARY_CHANNEL_FAILURE = UPDATE | 7
    PERMANENT_CHANNEL_FAILURE = PERM | 8
    REQUIRED_CHANNEL_FEATURE_MISSING = PERM | 9
    UNKNOWN_NEXT_PEER = PERM | 10
    AMOUNT_BELOW_MINIMUM = UPDATE | 11
    FEE_INSUFFICIENT = UPDATE | 12
    INCORRECT_CLTV_EXPIRY = UPDATE | 13
    EXPIRY_TOO_SOON = UPDATE | 14
    INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS = PERM | 15
    FINAL_INCORRECT_CLTV_EXPIRY = 18
    FINAL_INCORRECT_HTLC_AMOUNT = 19
    CHANNEL_DISABLED = UPDATE | 20
    EXPIRY_TOO_FAR = 21
    INVALID_ONION_PAYLOAD = PERM | 22
    MPP_TIMEOUT = 23
    INVALID_ONION_BLINDING = BADONION | PERM | 24


@dataclass(frozen=True, slots=True)
class FailureMessage:
    """`failuremsg`: a two-byte code and the code's data (any TLV extension stays inside `data`)."""

    code: int
    data: bytes = b""

    def encode(self) -> bytes:
        if not 0 <= self.code <= 0xFFFF:
            raise EncodeError(f"failure code {self.code} does not fit u16")
        return self.code.to_bytes(2, "big") + self.data

    @classmethod
    def decode(cls, message: bytes) -> FailureMessage:
        if len(message) < 2:
            raise DecodeError("failure message shorter than its 2-byte code")
        return cls(int.from_bytes(message[:2], "big"), message[2:])

    def describe(self) -> str:
        try:
            name = FailureCode(self.code).name.lower()
        except ValueError:
            name = "unknown failure"
        return f"{name} ({self.code:#06x})"

    # --- the failures a final node sends ------------------------------------------------------------
    @classmethod
    def incorrect_or_unknown_payment_details(cls, htlc_msat: int, height: int) -> FailureMessage:
        data = htlc_msat.to_bytes(8, "big") + height.to_bytes(4, "big")
        return cls(FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, data)

    @classmethod
    def final_incorrect_cltv_expiry(cls, cltv_expiry: int) -> FailureMessage:
        return cls(FailureCode.FINAL_INCORRECT_CLTV_EXPIRY, cltv_expiry.to_bytes(4, "big"))

    @classmethod
    def final_incorrect_htlc_amount(cls, incoming_htlc_amt: int) -> FailureMessage:
        return cls(FailureCode.FINAL_INCORRECT_HTLC_AMOUNT, incoming_htlc_amt.to_bytes(8, "big"))

    @classmethod
    def invalid_onion_payload(cls, tlv_type: int, offset: int) -> FailureMessage:
        return cls(FailureCode.INVALID_ONION_PAYLOAD, encode_bigsize(tlv_type) + offset.to_bytes(2, "big"))

    @classmethod
    def unknown_next_peer(cls) -> FailureMessage:
        return cls(FailureCode.UNKNOWN_NEXT_PEER)

    @classmethod
    def temporary_node_failure(cls) -> FailureMessage:
        return cls(FailureCode.TEMPORARY_NODE_FAILURE)
