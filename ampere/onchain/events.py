"""What a `ChannelResolver` is told and what it asks the node to do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.onchain.claims import ClaimInput
from ampere.onchain.outputs import SecondStage

__all__ = [
    "BlockConnected",
    "BlockDisconnected",
    "BroadcastTx",
    "BumpCommitment",
    "FundAndBroadcast",
    "PreimageFound",
    "PreimageLearned",
    "Resolved",
    "ResolverAction",
    "ResolverEvent",
    "SpendConfirmed",
    "WatchOutpoint",
]


@dataclass(frozen=True, slots=True)
class SpendConfirmed:
    """`tx` confirmed at `height`: the closing transaction itself, or a spend of an outpoint the
    resolver asked to watch (ours or the peer's)."""

    tx: Transaction
    height: int


@dataclass(frozen=True, slots=True)
class BlockConnected:
    height: int


@dataclass(frozen=True, slots=True)
class BlockDisconnected:
    """The block at `height` left the best chain (the tip is now `height - 1`)."""

    height: int


@dataclass(frozen=True, slots=True)
class PreimageLearned:
    """A payment preimage became known elsewhere (an invoice, another channel)."""

    preimage: bytes


ResolverEvent: TypeAlias = SpendConfirmed | BlockConnected | BlockDisconnected | PreimageLearned


@dataclass(frozen=True, slots=True)
class BroadcastTx:
    tx: Transaction
    label: str


@dataclass(frozen=True, slots=True)
class FundAndBroadcast:
    """Anchor channels: our zero-fee HTLC transaction for `outpoint` needs a wallet input. The
    node grows it with `fees.grow_for_fee`, signs input 0 with `stage.finalize(signer, preimage,
    grown)` and its own input, and broadcasts it."""

    outpoint: OutPoint
    stage: SecondStage
    preimage: bytes | None
    label: str


@dataclass(frozen=True, slots=True)
class BumpCommitment:
    """Anchor channels: the commitment is still unconfirmed and pays less than `feerate_per_kw`.
    The node spends our `anchor` with a wallet coin in a child paying for both
    (`fees.anchor_cpfp_tx`, input 0 signed by `fees.sign_anchor_input`); asked again each block
    while it stays unconfirmed, the node replaces its previous child."""

    anchor: ClaimInput
    commitment_weight: int
    commitment_fee_sat: int
    feerate_per_kw: int


@dataclass(frozen=True, slots=True)
class WatchOutpoint:
    """Report `SpendConfirmed` for the transaction that spends it, whoever's it is."""

    outpoint: OutPoint


@dataclass(frozen=True, slots=True)
class PreimageFound:
    """The peer revealed a preimage on chain: an incoming HTLC upstream can be fulfilled."""

    payment_hash: bytes
    preimage: bytes


@dataclass(frozen=True, slots=True)
class Resolved:
    """Every output is settled deeply enough: the channel can be marked closed."""

    channel_id: bytes


ResolverAction: TypeAlias = (
    BroadcastTx | FundAndBroadcast | BumpCommitment | WatchOutpoint | PreimageFound | Resolved
)
