"""The channel's inputs other than peer messages: local commands and chain events.

Peer messages are the typed dataclasses of `messages`; together with these they form `Event`.
Nothing here carries a clock or randomness: the caller supplies the temporary channel id, the
funding transaction and the chain's view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from ampere.bitcoin.tx import Transaction
from ampere.channel.twoway.messages import ChannelMessage
from ampere.channel.twoway.state import ChannelType

__all__ = [
    "AddHtlc",
    "BlockConnected",
    "ChainEvent",
    "Command",
    "Disconnected",
    "Event",
    "FailChannel",
    "FailHtlc",
    "FailMalformedHtlc",
    "ForceClose",
    "FulfillHtlc",
    "FundingConfirmed",
    "FundingSpent",
    "FundingTransactionBuilt",
    "OnchainResolved",
    "OpenChannelCommand",
    "Reconnected",
    "ShutdownCommand",
    "SignCommitment",
    "UpdateFeeCommand",
]


# --- local commands ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenChannelCommand:
    """Open a channel as its funder. The caller picks the random `temporary_channel_id`."""

    temporary_channel_id: bytes
    funding_sat: int
    push_msat: int
    feerate_per_kw: int
    channel_type: ChannelType = ChannelType.STATIC_REMOTEKEY
    announce: bool = False


@dataclass(frozen=True, slots=True)
class FundingTransactionBuilt:
    """The wallet's answer to `RequestFundingTransaction`: a signed, unbroadcast transaction."""

    transaction: Transaction
    output_index: int


@dataclass(frozen=True, slots=True)
class AddHtlc:
    amount_msat: int
    payment_hash: bytes
    cltv_expiry: int
    onion_routing_packet: bytes


@dataclass(frozen=True, slots=True)
class FulfillHtlc:
    htlc_id: int
    payment_preimage: bytes


@dataclass(frozen=True, slots=True)
class FailHtlc:
    htlc_id: int
    reason: bytes


@dataclass(frozen=True, slots=True)
class FailMalformedHtlc:
    htlc_id: int
    sha256_of_onion: bytes
    failure_code: int


@dataclass(frozen=True, slots=True)
class UpdateFeeCommand:
    feerate_per_kw: int


@dataclass(frozen=True, slots=True)
class SignCommitment:
    """Send commitment_signed for every update not yet signed (a no-op when there are none)."""


@dataclass(frozen=True, slots=True)
class ShutdownCommand:
    """Start a cooperative close; `scriptpubkey` overrides the one given at creation."""

    scriptpubkey: bytes | None = None


@dataclass(frozen=True, slots=True)
class ForceClose:
    reason: str = "force close requested"


@dataclass(frozen=True, slots=True)
class FailChannel:
    """Internal: fail the channel after a `ChannelError` with the CLOSE response."""

    reason: str
    channel_id: bytes | None = None


@dataclass(frozen=True, slots=True)
class Disconnected:
    pass


@dataclass(frozen=True, slots=True)
class Reconnected:
    pass


# --- chain events --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FundingConfirmed:
    """The funding transaction is `depth` blocks deep at `short_channel_id` (its integer form)."""

    transaction: Transaction
    depth: int
    short_channel_id: int


@dataclass(frozen=True, slots=True)
class FundingSpent:
    """A transaction spending the funding output has confirmed."""

    transaction: Transaction


@dataclass(frozen=True, slots=True)
class BlockConnected:
    height: int


@dataclass(frozen=True, slots=True)
class OnchainResolved:
    """The on-chain resolver has settled every output of the closing transaction."""


Command: TypeAlias = (
    OpenChannelCommand
    | FundingTransactionBuilt
    | AddHtlc
    | FulfillHtlc
    | FailHtlc
    | FailMalformedHtlc
    | UpdateFeeCommand
    | SignCommitment
    | ShutdownCommand
    | ForceClose
    | FailChannel
    | Disconnected
    | Reconnected
)
ChainEvent: TypeAlias = FundingConfirmed | FundingSpent | BlockConnected | OnchainResolved
Event: TypeAlias = ChannelMessage | Command | ChainEvent

COMMAND_TYPES: tuple[type, ...] = (
    OpenChannelCommand,
    FundingTransactionBuilt,
    AddHtlc,
    FulfillHtlc,
    FailHtlc,
    FailMalformedHtlc,
    UpdateFeeCommand,
    SignCommitment,
    ShutdownCommand,
    ForceClose,
    FailChannel,
    Disconnected,
    Reconnected,
)
