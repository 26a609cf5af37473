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

import struct
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
    "CommitmentRevoked",
    "Error",
    "HtlcFailed",
    "HtlcFulfilled",
    "HtlcOffered",
    "HtlcReceived",
    "LocalCommitmentSigned",
    "OpenFailed",
    "PersistState",
    "RequestFundingTransaction",
    "RevokedHtlc",
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
    # Set by the node for a failure decided without the peer (an HTLC timed out on chain): shown as is.
    local_reason: str = ""


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
class RevokedHtlc:
    """One HTLC of a revoked peer commitment; `offered` is True when we offered it."""

    offered: bool
    htlc_id: int
    amount_msat: int
    payment_hash: bytes
    cltv_expiry: int


_REVOKED_HEADER = struct.Struct(">BQQQIH")
_REVOKED_HTLC = struct.Struct(">BQQ32sI")
_REVOKED_VERSION = 1


@dataclass(frozen=True, slots=True)
class CommitmentRevoked:
    """The peer revoked its commitment `commitment_number`: what punishing it needs that the chain
    cannot tell (its HTLCs), with its balances (our view, before fees) and feerate so that the exact
    transaction can be rebuilt. The node appends it to the revocation log in the same store
    transaction as the state that follows it; a watchtower needs the same record."""

    channel_id: bytes
    commitment_number: int
    local_msat: int
    remote_msat: int
    feerate_per_kw: int
    htlcs: tuple[RevokedHtlc, ...]

    def to_bytes(self) -> bytes:
        """Compact form (about 53 bytes per HTLC), without the channel id, the store's key."""
        header = _REVOKED_HEADER.pack(
            _REVOKED_VERSION,
            self.commitment_number,
            self.local_msat,
            self.remote_msat,
            self.feerate_per_kw,
            len(self.htlcs),
        )
        return header + b"".join(
            _REVOKED_HTLC.pack(h.offered, h.htlc_id, h.amount_msat, h.payment_hash, h.cltv_expiry)
            for h in self.htlcs
        )

    @classmethod
    def from_bytes(cls, channel_id: bytes, data: bytes) -> CommitmentRevoked:
        """Raises ValueError on bytes that are not a record of this version."""
        if len(data) < _REVOKED_HEADER.size:
            raise ValueError("revocation record too short")
        version, number, local, remote, feerate, count = _REVOKED_HEADER.unpack_from(data)
        if version != _REVOKED_VERSION:
            raise ValueError(f"unknown revocation record version {version}")
        if len(data) != _REVOKED_HEADER.size + count * _REVOKED_HTLC.size:
            raise ValueError("revocation record length does not match its HTLC count")
        htlcs = []
        for i in range(count):
            offered, *rest = _REVOKED_HTLC.unpack_from(data, _REVOKED_HEADER.size + i * _REVOKED_HTLC.size)
            if offered > 1:
                raise ValueError(f"bad direction byte {offered} in revocation record")
            htlcs.append(RevokedHtlc(bool(offered), *rest))
        return cls(channel_id, number, local, remote, feerate, tuple(htlcs))


@dataclass(frozen=True, slots=True)
class LocalCommitmentSigned:
    """Developer mode only (`ChannelConfig.keep_signed_commitments`): our commitment `commitment_number`
    with both signatures, emitted when we accept it and before we revoke the one it replaces (our
    signer refuses to sign a revoked commitment later). Broadcasting one that is revoked is cheating."""

    channel_id: bytes
    commitment_number: int
    transaction: Transaction


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
    | CommitmentRevoked
    | LocalCommitmentSigned
    | OpenFailed
    | Error
)
