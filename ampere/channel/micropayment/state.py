"""The data of each side: phases, the immutable state records, and the payee's policy.

A state is a frozen value. A transition builds a new one; the machine swaps it in only when the
transition succeeded, which is what makes every rejected input leave the channel untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, StrEnum

from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.channel.micropayment.messages import Propose
from ampere.channel.micropayment.transactions import ChannelTerms

__all__ = [
    "BestUpdate",
    "ChannelState",
    "PayeeConfig",
    "PayeePhase",
    "PayeeState",
    "PayerPhase",
    "PayerState",
    "Role",
]


class ChannelState(StrEnum):
    """The four states users see (`micro list`)."""

    OPENING = "opening"
    OPEN = "open"
    SETTLED = "settled"
    REFUNDED = "refunded"


class Role(StrEnum):
    PAYER = "payer"
    PAYEE = "payee"


class PayerPhase(Enum):
    NEW = "new"
    PROPOSED = "proposed"  # micro_propose sent
    AWAITING_FUNDING_TX = "awaiting_funding_tx"  # accepted; the wallet is building the funding
    AWAITING_REFUND_SIGNATURE = "awaiting_refund_signature"  # micro_funding sent, funding withheld
    FUNDING_BROADCAST = "funding_broadcast"  # refund signed; funding on its way; waiting for micro_sync
    OPEN = "open"
    REFUNDING = "refunding"  # the refund is broadcast
    SETTLED = "settled"
    REFUNDED = "refunded"

    @property
    def public(self) -> ChannelState:
        return _PAYER_PUBLIC[self]


_PAYER_PUBLIC = {
    PayerPhase.NEW: ChannelState.OPENING,
    PayerPhase.PROPOSED: ChannelState.OPENING,
    PayerPhase.AWAITING_FUNDING_TX: ChannelState.OPENING,
    PayerPhase.AWAITING_REFUND_SIGNATURE: ChannelState.OPENING,
    PayerPhase.FUNDING_BROADCAST: ChannelState.OPENING,
    PayerPhase.OPEN: ChannelState.OPEN,
    PayerPhase.REFUNDING: ChannelState.OPEN,
    PayerPhase.SETTLED: ChannelState.SETTLED,
    PayerPhase.REFUNDED: ChannelState.REFUNDED,
}


class PayeePhase(Enum):
    NEW = "new"
    AWAITING_FUNDING = "awaiting_funding"  # micro_accept sent
    AWAITING_CONFIRMATION = "awaiting_confirmation"  # refund signed; waiting for minimum_depth
    OPEN = "open"
    SETTLING = "settling"  # the settlement is broadcast
    SETTLED = "settled"
    REFUNDED = "refunded"

    @property
    def public(self) -> ChannelState:
        return _PAYEE_PUBLIC[self]


_PAYEE_PUBLIC = {
    PayeePhase.NEW: ChannelState.OPENING,
    PayeePhase.AWAITING_FUNDING: ChannelState.OPENING,
    PayeePhase.AWAITING_CONFIRMATION: ChannelState.OPENING,
    PayeePhase.OPEN: ChannelState.OPEN,
    PayeePhase.SETTLING: ChannelState.OPEN,
    PayeePhase.SETTLED: ChannelState.SETTLED,
    PayeePhase.REFUNDED: ChannelState.REFUNDED,
}

ZERO_SIGNATURE = bytes(64)


@dataclass(frozen=True, slots=True)
class PayeeConfig:
    """The payee's policy for one channel. `payout_script` is a fresh wallet script of the payee."""

    chain_hash: bytes
    payout_script: bytes
    dust_limit_sat: int = 330
    safety_margin: int = 6
    minimum_depth: int = 3
    min_capacity_sat: int = 10_000
    max_capacity_sat: int = 100_000_000
    min_feerate_per_kw: int = 253
    max_feerate_per_kw: int = 100_000
    min_refund_delta: int = 144  # blocks between the proposal's tip and refund_height
    max_refund_delta: int = 4032


@dataclass(frozen=True, slots=True)
class BestUpdate:
    """The payee's best update: the highest valid one it has acknowledged (sequence 0: none yet)."""

    sequence: int = 0
    paid_msat: int = 0
    payee_sat: int = 0
    change_sat: int = 0
    signature: bytes = ZERO_SIGNATURE


@dataclass(frozen=True, slots=True)
class PayerState:
    channel_id: bytes
    key_index: int  # where the shell derives the funding key from; the secret is never serialized
    funding_pubkey: bytes
    phase: PayerPhase = PayerPhase.NEW
    tip_height: int = 0
    proposal: Propose | None = None
    terms: ChannelTerms | None = None
    funding_tx: Transaction | None = None
    funding_vout: int = 0
    refund_signature: bytes | None = None
    funding_height: int | None = None
    sequence: int = 0  # last update signed
    paid_msat: int = 0  # its cumulative amount
    acked_sequence: int = 0
    acked_paid_msat: int = 0
    max_signed_msat: int = 0  # the most the payer ever signed: what a dishonest payee could claim
    closing_txid: bytes | None = None
    closing_height: int | None = None  # the block that confirmed closing_txid, for reorgs
    revision: int = 0

    @property
    def funding_outpoint(self) -> OutPoint | None:
        return None if self.funding_tx is None else self.funding_tx.outpoint(self.funding_vout)


@dataclass(frozen=True, slots=True)
class PayeeState:
    channel_id: bytes
    key_index: int
    funding_pubkey: bytes
    minimum_depth: int
    phase: PayeePhase = PayeePhase.NEW
    tip_height: int = 0
    proposal: Propose | None = None
    terms: ChannelTerms | None = None
    funding_outpoint: OutPoint | None = None
    refund_tx: Transaction | None = None  # unsigned, as the payer sent it
    funding_height: int | None = None
    best: BestUpdate = field(default_factory=BestUpdate)
    closing_txid: bytes | None = None
    closing_height: int | None = None  # the block that confirmed closing_txid, for reorgs
    revision: int = 0
