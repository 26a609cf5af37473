"""What the channel asks the shell to do.

Ordering contract (LDK-style "persist before send"): the shell executes a transition's actions
in list order, and NO action that follows a `PersistState` may have any effect outside the
process (a message sent, a transaction broadcast, a payment reported) until that state is
durably stored. Every transition that changes the state puts its `PersistState` first, so a
signature for a new commitment, a revocation secret or a broadcast can only ever leave after
the state that commits us to it is on disk. The shell MAY coalesce consecutive `PersistState`
actions and write only the newest (the revision increases), as long as it writes before
performing the effects that follow them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TypeAlias

from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.channel.twoway.errors import ErrorResponse
from ampere.channel.twoway.messages import ChannelMessage
from ampere.channel.twoway.persistence import serialize_state
from ampere.channel.twoway.state import ChannelState
from ampere.wire import Message, encode_message

__all__ = [
    "Action",
    "Broadcast",
    "ChannelClosed",
    "ChannelReady",
    "CloseType",
    "Error",
    "HtlcFailed",
    "HtlcFulfilled",
    "HtlcOffered",
    "HtlcReceived",
    "OpenFailed",
    "PersistState",
    "RequestFundingTransaction",
    "SendMessage",
    "WatchFunding",
]


@dataclass(frozen=True, slots=True)
class PersistState:
    """Store the channel durably before performing any later action."""

    revision: int
    state: ChannelState

    @property
    def data(self) -> bytes:
        """The versioned bytes to store (computed on demand so coalesced writes are cheap)."""
        return serialize_state(self.state)


@dataclass(frozen=True, slots=True)
class SendMessage:
    message: ChannelMessage

    @property
    def wire(self) -> Message:
        return self.message.to_wire()

    def to_bytes(self) -> bytes:
        return encode_message(self.message.to_wire())


@dataclass(frozen=True, slots=True)
class Broadcast:
    transaction: Transaction
    label: str


@dataclass(frozen=True, slots=True)
class RequestFundingTransaction:
    """Build (and sign, but not broadcast) a transaction paying `amount_sat` to this script."""

    script_pubkey: bytes
    amount_sat: int


@dataclass(frozen=True, slots=True)
class WatchFunding:
    """Report `FundingConfirmed` once the output is `minimum_depth` deep, and `FundingSpent`."""

    outpoint: OutPoint
    script_pubkey: bytes
    minimum_depth: int


@dataclass(frozen=True, slots=True)
class ChannelReady:
    channel_id: bytes
    short_channel_id: int | None


@dataclass(frozen=True, slots=True)
class HtlcOffered:
    """Our `AddHtlc` was accepted and got this id."""

    htlc_id: int
    payment_hash: bytes
    amount_msat: int


@dataclass(frozen=True, slots=True)
class HtlcReceived:
    """An incoming HTLC is irrevocably committed: the node may now fulfill, fail or forward it."""

    htlc_id: int
    amount_msat: int
    payment_hash: bytes
    cltv_expiry: int
    onion_routing_packet: bytes
    # BOLT 2 max_dust_htlc_exposure_msat: the node SHOULD fail it and not reveal the preimage.
    dust_exposure_exceeded: bool = False


@dataclass(frozen=True, slots=True)
class HtlcFulfilled:
    """The peer revealed the preimage of one of our HTLCs (may repeat after a reconnection)."""

    htlc_id: int
    payment_hash: bytes
    payment_preimage: bytes


@dataclass(frozen=True, slots=True)
class HtlcFailed:
    """The failure of one of our HTLCs is irrevocably committed: the node may fail upstream."""

    htlc_id: int
    payment_hash: bytes
    reason: bytes
    # Set for update_fail_malformed_htlc (then `reason` is empty).
    failure_code: int = 0
    sha256_of_onion: bytes = b""


class CloseType(Enum):
    MUTUAL = "mutual"
    LOCAL_FORCE = "local_force"
    REMOTE_FORCE = "remote_force"
    BREACH = "breach"


@dataclass(frozen=True, slots=True)
class ChannelClosed:
    """The channel can no longer be used; `closing_txid` is None while we wait for the peer's
    commitment (after data loss)."""

    channel_id: bytes
    close_type: CloseType
    closing_txid: bytes | None


@dataclass(frozen=True, slots=True)
class OpenFailed:
    """Opening stopped before anything reached the chain; the wallet may release its inputs."""

    temporary_channel_id: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class Error:
    """A failure and how the shell must react (see `ErrorResponse`)."""

    response: ErrorResponse
    reason: str


Action: TypeAlias = (
    PersistState
    | SendMessage
    | Broadcast
    | RequestFundingTransaction
    | WatchFunding
    | ChannelReady
    | HtlcOffered
    | HtlcReceived
    | HtlcFulfilled
    | HtlcFailed
    | ChannelClosed
    | OpenFailed
    | Error
)
