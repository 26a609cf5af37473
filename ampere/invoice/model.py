"""The values a BOLT 11 invoice carries, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field

from ampere.bitcoin.bech32 import CHARSET
from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.keys import is_valid_pubkey
from ampere.bitcoin.network import Network
from ampere.invoice.errors import InvoiceError
from ampere.wire.features import Features
from ampere.wire.primitives import ShortChannelId

__all__ = [
    "DEFAULT_EXPIRY",
    "DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA",
    "MAX_AMOUNT_MSAT",
    "MAX_TIMESTAMP",
    "Invoice",
    "InvoiceEncoding",
    "RouteHint",
    "RouteHintHop",
    "TaggedField",
]

DEFAULT_EXPIRY = 3600
DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA = 18
#: 21 million bitcoin: anything above is a typo or an attack, never a payment.
MAX_AMOUNT_MSAT = 21_000_000 * 100_000_000 * 1000
MAX_TIMESTAMP = (1 << 35) - 1
#: `x` and `c` are unbounded in the format; we refuse values a u32 cannot hold so that they stay
#: storable and comparable everywhere (136 years of expiry is already absurd).
MAX_U32 = (1 << 32) - 1
_MAX_U16 = (1 << 16) - 1


def _check_length(name: str, value: bytes | None, length: int) -> None:
    if value is not None and len(value) != length:
        raise InvoiceError(f"{name} must be {length} bytes, got {len(value)}")


@dataclass(frozen=True, slots=True)
class RouteHintHop:
    """One channel of a private route: `pubkey` is the node at the start of the channel (BOLT 11 `r`)."""

    pubkey: bytes
    short_channel_id: ShortChannelId
    fee_base_msat: int
    fee_proportional_millionths: int
    cltv_expiry_delta: int

    def __post_init__(self) -> None:
        if not is_valid_pubkey(self.pubkey):
            raise InvoiceError("route hint pubkey is not a valid compressed secp256k1 point")
        for name in ("fee_base_msat", "fee_proportional_millionths"):
            if not 0 <= getattr(self, name) <= MAX_U32:
                raise InvoiceError(f"route hint {name} must fit in 32 bits")
        if not 0 <= self.cltv_expiry_delta <= _MAX_U16:
            raise InvoiceError("route hint cltv_expiry_delta must fit in 16 bits")


@dataclass(frozen=True, slots=True)
class RouteHint:
    """An ordered route from a public node to the payee; one `r` field."""

    hops: tuple[RouteHintHop, ...]

    def __post_init__(self) -> None:
        if not self.hops:
            raise InvoiceError("a route hint needs at least one hop")


@dataclass(frozen=True, slots=True)
class TaggedField:
    """One tagged field as written: its 5-bit type and its data as 5-bit words."""

    tag: int
    data: tuple[int, ...]

    @property
    def letter(self) -> str:
        return CHARSET[self.tag]


@dataclass(frozen=True, slots=True)
class InvoiceEncoding:
    """How a decoded invoice was written, so that it can be re-encoded byte for byte.

    Includes fields we skip (unknown types, `f` with unknown versions) and their order.
    """

    hrp: str
    fields: tuple[TaggedField, ...]
    signature: bytes  # r || s || recovery id, as transmitted


@dataclass(frozen=True)
class Invoice:
    """A decoded (or to-be-encoded) BOLT 11 invoice. Amounts in millisatoshi, times in seconds."""

    network: Network
    amount_msat: int | None
    timestamp: int
    payment_hash: bytes
    payment_secret: bytes | None
    payee: bytes
    description: str | None = None
    description_hash: bytes | None = None
    expiry: int = DEFAULT_EXPIRY
    min_final_cltv_expiry_delta: int = DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA
    features: Features = field(default_factory=Features)
    route_hints: tuple[RouteHint, ...] = ()
    fallback_addresses: tuple[str, ...] = ()
    metadata: bytes | None = None
    #: Set by the decoder; equality ignores it so a decoded invoice equals the one that was encoded.
    encoding: InvoiceEncoding | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.amount_msat is not None and not 0 < self.amount_msat <= MAX_AMOUNT_MSAT:
            raise InvoiceError(f"amount_msat {self.amount_msat} must be positive and at most 21M BTC")
        if not 0 <= self.timestamp <= MAX_TIMESTAMP:
            raise InvoiceError(f"timestamp {self.timestamp} does not fit in 35 bits")
        _check_length("payment_hash", self.payment_hash, 32)
        _check_length("payment_secret", self.payment_secret, 32)
        _check_length("description_hash", self.description_hash, 32)
        if not is_valid_pubkey(self.payee):
            raise InvoiceError("payee is not a valid 33-byte compressed public key")
        if (self.description is None) == (self.description_hash is None):
            raise InvoiceError("an invoice carries exactly one of description and description_hash")
        if not 0 <= self.expiry <= MAX_U32:
            raise InvoiceError(f"expiry {self.expiry} must fit in 32 bits")
        if not 0 <= self.min_final_cltv_expiry_delta <= MAX_U32:
            raise InvoiceError(f"min_final_cltv_expiry_delta {self.min_final_cltv_expiry_delta} out of range")

    @property
    def expires_at(self) -> int:
        return self.timestamp + self.expiry

    def is_expired(self, now: int) -> bool:
        """True once `expiry` seconds have elapsed since `timestamp` (the payer SHOULD NOT pay then)."""
        return now >= self.expires_at

    def description_matches(self, description: str) -> bool:
        """Whether `description` is this invoice's: equal to `d`, or (the reader's MUST) hashing to `h`."""
        if self.description_hash is not None:
            return sha256(description.encode("utf-8")) == self.description_hash
        return self.description == description

    @property
    def signature(self) -> bytes | None:
        """r || s || recovery id of a decoded invoice; None for one built locally."""
        return None if self.encoding is None else self.encoding.signature
