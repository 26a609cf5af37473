"""The public keys one commitment transaction uses, seen from the commitment's owner.

BOLT 3 calls the owner of a commitment transaction "local" and the other peer "remote", whoever
is running the code: our own commitment has us as local; the commitment we sign for our peer has
the peer as local. `CommitmentKeys` follows that convention, so the same builder serves both.

The builders take `CommitmentKeys` as plain data; `derive_commitment_keys` is a convenience that
derives them from both peers' basepoints and the owner's per-commitment point.
"""

from __future__ import annotations

from dataclasses import dataclass

from ampere.channel.transactions.scripts import check_pubkey
from ampere.crypto.keys import derive_pubkey, derive_revocation_pubkey

__all__ = ["ChannelBasepoints", "CommitmentKeys", "derive_commitment_keys"]


@dataclass(frozen=True, slots=True)
class CommitmentKeys:
    """Keys of one commitment transaction; "local" is the commitment's owner."""

    local_funding_pubkey: bytes
    remote_funding_pubkey: bytes
    # From the remote's revocation basepoint and the owner's per-commitment point.
    revocation_pubkey: bytes
    local_delayed_pubkey: bytes
    local_htlc_pubkey: bytes
    remote_htlc_pubkey: bytes
    # `remotepubkey`: with static_remotekey, simply the remote's payment basepoint.
    remote_payment_pubkey: bytes

    def __post_init__(self) -> None:
        check_pubkey(self.local_funding_pubkey, "local funding pubkey")
        check_pubkey(self.remote_funding_pubkey, "remote funding pubkey")
        check_pubkey(self.revocation_pubkey, "revocation pubkey")
        check_pubkey(self.local_delayed_pubkey, "local delayed pubkey")
        check_pubkey(self.local_htlc_pubkey, "local htlc pubkey")
        check_pubkey(self.remote_htlc_pubkey, "remote htlc pubkey")
        check_pubkey(self.remote_payment_pubkey, "remote payment pubkey")


@dataclass(frozen=True, slots=True)
class ChannelBasepoints:
    """One peer's long-lived public keys, as sent in open_channel/accept_channel."""

    funding_pubkey: bytes
    revocation_basepoint: bytes
    payment_basepoint: bytes
    delayed_payment_basepoint: bytes
    htlc_basepoint: bytes


def derive_commitment_keys(
    per_commitment_point: bytes, owner: ChannelBasepoints, counterparty: ChannelBasepoints
) -> CommitmentKeys:
    """Keys for the commitment owned by `owner` at the owner's `per_commitment_point`.

    Either peer can compute this for either commitment: it needs only public basepoints.
    """
    return CommitmentKeys(
        local_funding_pubkey=owner.funding_pubkey,
        remote_funding_pubkey=counterparty.funding_pubkey,
        revocation_pubkey=derive_revocation_pubkey(counterparty.revocation_basepoint, per_commitment_point),
        local_delayed_pubkey=derive_pubkey(owner.delayed_payment_basepoint, per_commitment_point),
        local_htlc_pubkey=derive_pubkey(owner.htlc_basepoint, per_commitment_point),
        remote_htlc_pubkey=derive_pubkey(counterparty.htlc_basepoint, per_commitment_point),
        remote_payment_pubkey=counterparty.payment_basepoint,
    )
