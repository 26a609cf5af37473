"""Which transaction spent a channel's funding output (BOLT 5 "Commitment Transaction").

The commitment number comes back from the obscured nLockTime/nSequence; then the candidates are
rebuilt and compared by txid: our newest commitment; the peer's current one and, while it still
owes us a revocation, its next; and, for a number whose secret the peer revealed, the revoked
commitment from the revocation log. A revoked commitment without a log record (a channel
restored from an old backup) is still recognised: its `to_local` and `to_remote` scripts follow
from the keys alone, its HTLC outputs do not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TypeAlias

from ampere.bitcoin.tx import Transaction
from ampere.channel.transactions.commitment import (
    CommitmentTransaction,
    Htlc,
    HtlcDirection,
    build_commitment,
    commitment_number_from_tx,
)
from ampere.channel.transactions.keys import CommitmentKeys, derive_commitment_keys
from ampere.channel.twoway.actions import CommitmentRevoked, RevokedHtlc
from ampere.channel.twoway.close import pays_own_commitment_scripts
from ampere.channel.twoway.ledger import (
    View,
    build_view_commitment,
    commitment_params,
    obscuring_factor,
    snapshot,
)
from ampere.channel.twoway.state import ChannelState
from ampere.channel.twoway.update import remote_commitment_record
from ampere.crypto.keys import per_commitment_point
from ampere.crypto.shachain import ShachainError, ShachainStore
from ampere.onchain.errors import ClassificationError

__all__ = [
    "Classification",
    "LocalCommitment",
    "MutualClose",
    "RemoteCommitment",
    "RemoteWhich",
    "RevocationLookup",
    "RevokedCommitment",
    "RevokedLocalCommitment",
    "UnknownSpend",
    "classify",
    "rebuild_remote_commitment",
    "remote_commitment_keys",
]

# How far from our commitment's number the peer's revoked commitments are searched for the HTLCs our
# revoked commitment may carry: both numbers advance together in every update round.
_HTLC_SEARCH_WINDOW = 16

RevocationLookup: TypeAlias = Callable[[int], CommitmentRevoked | None]
"""The revocation log of one channel: the record of a revoked commitment number, if stored."""


class RemoteWhich(Enum):
    CURRENT = "current"
    NEXT = "next"


@dataclass(frozen=True, slots=True)
class MutualClose:
    tx: Transaction


@dataclass(frozen=True, slots=True)
class LocalCommitment:
    number: int
    commitment: CommitmentTransaction
    per_commitment_point: bytes


@dataclass(frozen=True, slots=True)
class RemoteCommitment:
    number: int
    which: RemoteWhich
    commitment: CommitmentTransaction
    per_commitment_point: bytes


@dataclass(frozen=True, slots=True)
class RevokedCommitment:
    """`commitment` is None when the revocation log has no record of it; `keys` are always known."""

    number: int
    per_commitment_secret: bytes
    keys: CommitmentKeys
    commitment: CommitmentTransaction | None


@dataclass(frozen=True, slots=True)
class RevokedLocalCommitment:
    """One of our own commitments that we revoked: only a developer cheat (`dev-cheat`) or a node run
    from an old copy of its state broadcasts one, and the peer may take all of it with the revocation
    key. `keys` are the commitment's (we are its owner); `htlcs` the HTLCs (our view) its outputs may
    carry, as far as our current state and the revocation log know them."""

    number: int
    per_commitment_point: bytes
    keys: CommitmentKeys
    htlcs: tuple[RevokedHtlc, ...]


@dataclass(frozen=True, slots=True)
class UnknownSpend:
    """Spends the funding output but matches no state we know: our state is stale (data loss)
    or something is badly wrong; the node must alert, there is nothing we can sign."""

    number: int | None
    reason: str


Classification: TypeAlias = (
    MutualClose
    | LocalCommitment
    | RemoteCommitment
    | RevokedCommitment
    | RevokedLocalCommitment
    | UnknownSpend
)


def remote_commitment_keys(state: ChannelState, point: bytes) -> CommitmentKeys:
    local, remote = state.require_params()
    return derive_commitment_keys(point, remote.basepoints, local.basepoints)


def rebuild_remote_commitment(
    state: ChannelState, record: CommitmentRevoked, point: bytes
) -> CommitmentTransaction:
    """The peer's commitment `record.commitment_number` at its per-commitment `point`."""
    htlcs = tuple(
        # Directions as the peer (the owner) sees them: what we offered, it received.
        Htlc(
            HtlcDirection.RECEIVED if h.offered else HtlcDirection.OFFERED,
            h.htlc_id,
            h.amount_msat,
            h.payment_hash,
            h.cltv_expiry,
        )
        for h in record.htlcs
    )
    return build_commitment(
        commitment_params(state, owner_is_local=False),
        remote_commitment_keys(state, point),
        record.commitment_number,
        record.remote_msat,
        record.local_msat,
        htlcs,
        record.feerate_per_kw,
    )


def _revealed_secret(state: ChannelState, number: int) -> bytes | None:
    store = ShachainStore.from_bytes(state.require_ledger().remote_secrets)
    following = store.next_commitment_number
    if following is None or number >= following:
        return None
    try:
        return store.secret_for_commitment(number)
    except ShachainError:
        return None


def classify(
    state: ChannelState,
    tx: Transaction,
    local_point: Callable[[int], bytes],
    revocations: RevocationLookup,
) -> Classification:
    """What `tx` (which must spend the funding output) is; `local_point(n)` gives the point of our
    own commitment n (the signer's `per_commitment_point`)."""
    funding = state.require_funding()
    if not any(txin.prevout == funding for txin in tx.inputs):
        raise ClassificationError(f"{tx.txid_hex} does not spend the funding output {funding}")
    if state.closing_tx is not None and state.closing_tx.txid == tx.txid:
        return MutualClose(tx)
    ledger = state.require_ledger()
    number = commitment_number_from_tx(tx, obscuring_factor(state))
    if number is None:
        # No commitment markers: only a mutual close spends the funding output this way.
        return MutualClose(tx)
    if number == ledger.local_commitment_number and not state.data_loss:
        point = local_point(number)
        ours = build_view_commitment(state, snapshot(ledger, View.LOCAL), number, point)
        if ours.txid == tx.txid:
            return LocalCommitment(number, ours, point)
    newest = ledger.remote_commitment_number
    candidates: list[tuple[int, RemoteWhich, bytes]] = []
    if ledger.awaiting_revocation and ledger.remote_prev_point is not None:
        candidates += [(newest - 1, RemoteWhich.CURRENT, ledger.remote_prev_point)]
        candidates += [(newest, RemoteWhich.NEXT, ledger.remote_point)]
    else:
        candidates += [(newest, RemoteWhich.CURRENT, ledger.remote_point)]
    for candidate, which, point in candidates:
        if candidate == number:
            record = remote_commitment_record(state, ledger, number)
            theirs = rebuild_remote_commitment(state, record, point)
            if theirs.txid == tx.txid:
                return RemoteCommitment(number, which, theirs, point)
    if number < ledger.local_commitment_number:
        point = local_point(number)
        if pays_own_commitment_scripts(state, tx, point):
            local, remote = state.require_params()
            keys = derive_commitment_keys(point, local.basepoints, remote.basepoints)
            return RevokedLocalCommitment(number, point, keys, _known_htlcs(state, number, revocations))
    secret = _revealed_secret(state, number)
    if secret is not None:
        point = per_commitment_point(secret)
        keys = remote_commitment_keys(state, point)
        logged = revocations(number)
        commitment = None
        if logged is not None:
            rebuilt = rebuild_remote_commitment(state, logged, point)
            commitment = rebuilt if rebuilt.txid == tx.txid else None
        return RevokedCommitment(number, secret, keys, commitment)
    return UnknownSpend(number, f"commitment number {number} matches none of our states")


def _known_htlcs(state: ChannelState, number: int, revocations: RevocationLookup) -> tuple[RevokedHtlc, ...]:
    """HTLCs our commitment `number` may have carried: those of our state and of the peer's revoked
    commitments with nearby numbers (the log keeps no record of our own commitments)."""
    ledger = state.require_ledger()
    found = {
        (h.offered, h.htlc_id): RevokedHtlc(
            h.offered, h.htlc_id, h.amount_msat, h.payment_hash, h.cltv_expiry
        )
        for h in ledger.htlcs
    }
    low = max(0, number - _HTLC_SEARCH_WINDOW)
    for candidate in range(low, min(ledger.remote_commitment_number, number + _HTLC_SEARCH_WINDOW + 1)):
        record = revocations(candidate)
        if record is not None:
            found.update(((h.offered, h.htlc_id), h) for h in record.htlcs)
    return tuple(found.values())
