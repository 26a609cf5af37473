"""What goes into the machines (events) and what comes out (actions); all frozen dataclasses.

Events are local commands, chain observations, peer messages (the `messages` dataclasses themselves)
and `PeerConnected`. The shell runs the actions in order; a `Persist` must be durable before anything
after it runs, which the machines enforce by holding those actions back until `PersistCompleted`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.channel.micropayment.messages import MicroMessage, encode_micro

__all__ = [
    "Action",
    "BlockConnected",
    "BlockDisconnected",
    "Broadcast",
    "BuildFunding",
    "ChannelClosed",
    "ChannelOpened",
    "Event",
    "FundingBuilt",
    "FundingConfirmed",
    "FundingSpent",
    "OpenChannel",
    "Pay",
    "PaymentAccepted",
    "PaymentRejected",
    "PeerConnected",
    "Persist",
    "PersistCompleted",
    "Refund",
    "Resumed",
    "Send",
    "Settle",
    "TxKind",
    "Watch",
]


# --- commands ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenChannel:
    """Payer: propose the channel (its id was fixed when the machine was made)."""

    chain_hash: bytes
    capacity_sat: int
    refund_height: int
    feerate_per_kw: int
    refund_script: bytes


@dataclass(frozen=True, slots=True)
class FundingBuilt:
    """Payer: the signed funding transaction the wallet built in answer to `BuildFunding`."""

    tx: Transaction


@dataclass(frozen=True, slots=True)
class Pay:
    """Payer: pay `amount_msat` more."""

    amount_msat: int


@dataclass(frozen=True, slots=True)
class Settle:
    """Payee: put the best update on chain now."""


@dataclass(frozen=True, slots=True)
class Refund:
    """Payer: put the refund on chain (refused before the tip reaches `refund_height`)."""


# --- chain and peer observations -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockConnected:
    """The chain tip is now `height`. Fed again after a restart; a repeat is harmless."""

    height: int


@dataclass(frozen=True, slots=True)
class BlockDisconnected:
    """The block at `height` left the chain (a reorg): the tip is below it, and whatever it confirmed
    is unconfirmed again. Fed once per block, from the old tip down, before the new branch connects."""

    height: int


@dataclass(frozen=True, slots=True)
class FundingConfirmed:
    """The funding transaction is in the block at `height`."""

    tx: Transaction
    height: int


@dataclass(frozen=True, slots=True)
class FundingSpent:
    """A transaction spending the funding output is in the block at `height`."""

    tx: Transaction
    height: int


@dataclass(frozen=True, slots=True)
class PeerConnected:
    """The connection to the peer is (re-)established: time to resend what may have been lost."""


@dataclass(frozen=True, slots=True)
class Resumed:
    """The machine was just restored from its serialized state: re-issue what a restart may have lost
    (watches, broadcasts, the wallet request for the funding)."""


@dataclass(frozen=True, slots=True)
class PersistCompleted:
    """The `Persist` of this revision (and so every earlier one) is durable."""

    revision: int


Event = (
    OpenChannel
    | FundingBuilt
    | Pay
    | Settle
    | Refund
    | BlockConnected
    | BlockDisconnected
    | FundingConfirmed
    | FundingSpent
    | PeerConnected
    | Resumed
    | MicroMessage
)


# --- actions -------------------------------------------------------------------------------------


class TxKind(Enum):
    FUNDING = "funding"
    REFUND = "refund"
    SETTLEMENT = "settlement"


@dataclass(frozen=True, slots=True)
class Persist:
    """Store `blob` under the channel id at `revision` (which only grows), then feed `PersistCompleted`."""

    channel_id: bytes
    revision: int
    blob: bytes


@dataclass(frozen=True, slots=True)
class Send:
    """Send `message` to the channel's peer."""

    message: MicroMessage

    @property
    def data(self) -> bytes:
        return encode_micro(self.message)


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Hand `tx` to the chain. Repeated while it is unconfirmed; "already known" answers are fine."""

    tx: Transaction
    kind: TxKind


@dataclass(frozen=True, slots=True)
class BuildFunding:
    """Payer: ask the wallet for a signed transaction paying exactly `amount_sat` to `script_pubkey`.
    Every input must be segwit, so that the txid announced to the payee cannot be malleated."""

    channel_id: bytes
    script_pubkey: bytes
    amount_sat: int


@dataclass(frozen=True, slots=True)
class Watch:
    """Report `FundingConfirmed` for `txid` and `FundingSpent` for `outpoint` from now on."""

    txid: bytes
    outpoint: OutPoint
    script_pubkey: bytes


@dataclass(frozen=True, slots=True)
class ChannelOpened:
    channel_id: bytes


@dataclass(frozen=True, slots=True)
class PaymentAccepted:
    """The payee holds update `sequence` (payer: it acked; payee: it stored it)."""

    channel_id: bytes
    sequence: int
    paid_msat: int


@dataclass(frozen=True, slots=True)
class PaymentRejected:
    """Payer: the payee refused update `sequence`. Every payment above `paid_msat` (the last total
    the payee acknowledged, where the payer now stands) failed with it."""

    channel_id: bytes
    sequence: int
    code: int
    reason: str
    paid_msat: int


@dataclass(frozen=True, slots=True)
class ChannelClosed:
    """The funding output is spent on chain: `state` is "settled" or "refunded"."""

    channel_id: bytes
    state: str
    txid: bytes
    payee_sat: int


Action = (
    Persist
    | Send
    | Broadcast
    | BuildFunding
    | Watch
    | ChannelOpened
    | PaymentAccepted
    | PaymentRejected
    | ChannelClosed
)
