"""`ChannelResolver`: the sans-IO resolution of one closed channel's outputs (BOLT 5).

The node creates one (`create`) as soon as a transaction spending the funding output is seen
(our own commitment: when we broadcast it, so that a CPFP can start), with what `classify` made
of it, feeds it chain events and carries out what it returns, in order:
broadcasts, outpoints to watch, preimages to pass upstream, and finally `Resolved`. Per block,
the node reports `SpendConfirmed` for every transaction in it that spends the closing
transaction's input or a watched outpoint, then `BlockConnected`: decisions (claims, fee bumps)
are taken on `BlockConnected` and `PreimageLearned` only, once the block is fully known.

Its whole state is `to_bytes()`; the node stores it after every event that changed it and
before it broadcasts (a lost broadcast is simply redone on the next block; a lost state would
forget what we owe the chain).

Reorganisations: `BlockDisconnected` undoes everything confirmed in that block or above —
spends go back to pending, outputs created by a disconnected second stage disappear, our
disconnected claims are broadcast again, and if the closing transaction itself left the chain
it is broadcast again and every claim waits for it.

The class is assembled from its concerns: `resolver_state` (its fields), `resolver_chain` (spends and
reorganisations), `resolver_claims` (claims, justice, CPFP, settling), `resolver_codec` (bytes and the
`listclosed` entry), `flight` (claims in flight).
"""

from __future__ import annotations

import logging
from typing import Any

from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.tx import Transaction
from ampere.channel.twoway.actions import CloseType
from ampere.channel.twoway.state import ChannelState, RemovalKind
from ampere.onchain.classify import (
    Classification,
    LocalCommitment,
    MutualClose,
    RemoteCommitment,
    RevokedCommitment,
    RevokedLocalCommitment,
)
from ampere.onchain.errors import OnchainError
from ampere.onchain.events import (
    BlockConnected,
    BlockDisconnected,
    PreimageLearned,
    ResolverAction,
    ResolverEvent,
    SpendConfirmed,
    WatchOutpoint,
)
from ampere.onchain.flight import ClaimInFlight, ResolverContext
from ampere.onchain.justice import revoked_outputs, revoked_to_local_script
from ampere.onchain.outputs import TrackedOutput
from ampere.onchain.own_revoked import revoked_local_outputs
from ampere.onchain.resolver_chain import ChainTracking
from ampere.onchain.resolver_claims import ClaimDecisions
from ampere.onchain.resolver_codec import decode_resolver, encode_resolver, listclosed_entry
from ampere.onchain.resolver_state import DEFAULT_RESOLVE_DEPTH, REBROADCAST_AFTER_BLOCKS
from ampere.onchain.sweeps import local_outputs, remote_outputs, to_remote_by_script

__all__ = [
    "DEFAULT_RESOLVE_DEPTH",
    "REBROADCAST_AFTER_BLOCKS",
    "ChannelResolver",
    "ClaimInFlight",
    "ResolverContext",
]

log = logging.getLogger(__name__)


def _known_preimages(state: ChannelState) -> dict[bytes, bytes]:
    """Preimages of incoming HTLCs we already fulfilled off-chain."""
    ledger = state.ledger
    found: dict[bytes, bytes] = {}
    if ledger is None:
        return found
    for entry in ledger.htlcs:
        removal = entry.removal
        if not entry.offered and removal is not None and removal.kind is RemovalKind.FULFILL:
            found[entry.payment_hash] = removal.payment_preimage
    return found


class ChannelResolver(ChainTracking, ClaimDecisions):
    """Resolves one closed channel. Not thread-safe: one event at a time."""

    __slots__ = ()

    # --- creation -----------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        state: ChannelState,
        classification: Classification,
        tx: Transaction,
        destination: bytes,
        *,
        tip: int,
        resolve_depth: int = DEFAULT_RESOLVE_DEPTH,
    ) -> tuple[ChannelResolver, list[ResolverAction]]:
        """A resolver for the funding spend `tx` that `classification` describes, sending what it
        claims to `destination`; and the outpoints the node must watch for it."""
        local, _ = state.require_params()
        breach: dict[str, Any] = {}
        outputs: tuple[TrackedOutput, ...] = ()
        revoked_local = isinstance(classification, RevokedLocalCommitment)
        if isinstance(classification, MutualClose):
            close_type = CloseType.MUTUAL
        elif isinstance(classification, LocalCommitment):
            close_type = CloseType.LOCAL_FORCE
            outputs = local_outputs(state, classification.commitment, classification.per_commitment_point)
        elif isinstance(classification, RevokedLocalCommitment):
            close_type = CloseType.LOCAL_FORCE
            outputs = revoked_local_outputs(state, classification, tx)
        elif isinstance(classification, RemoteCommitment):
            close_type = CloseType.REMOTE_FORCE
            outputs = remote_outputs(state, classification.commitment, classification.per_commitment_point)
        elif isinstance(classification, RevokedCommitment):
            close_type = CloseType.BREACH
            outputs = revoked_outputs(state, classification, tx)
            breach = {
                "revocable_script": revoked_to_local_script(state, classification),
                "revocation_secret": classification.per_commitment_secret,
                "justice_delay": local.to_self_delay,
            }
        else:
            # A commitment of the peer we cannot rebuild (our state is stale, e.g. restored from
            # a backup): our own balance pays a script we know without its per-commitment point.
            close_type = CloseType.REMOTE_FORCE
            outputs = to_remote_by_script(state, tx)
            if not outputs:
                raise OnchainError(f"nothing of ours in an unknown spend: {classification.reason}")
        resolver = cls(
            state.channel_id,
            close_type,
            tx,
            destination,
            outputs,
            tip=tip,
            preimages=_known_preimages(state),
            resolve_depth=resolve_depth,
            closing_fee_sat=state.funding_sat - tx.total_output_value(),
            revoked_local=revoked_local,
            **breach,
        )
        return resolver, resolver._watch_all()

    def _watch_all(self) -> list[ResolverAction]:
        return [WatchOutpoint(out.outpoint) for out in self.outputs]

    # --- events -----------------------------------------------------------------------------------------

    def handle(self, event: ResolverEvent, ctx: ResolverContext) -> list[ResolverAction]:
        actions: list[ResolverAction] = []
        if isinstance(event, SpendConfirmed):
            actions += self._spend_confirmed(event.tx, event.height)
        elif isinstance(event, BlockConnected):
            self.tip = max(self.tip, event.height)
            if self.tip != event.height:
                log.warning("block %d connected below the tip %d", event.height, self.tip)
            self.tip = event.height
        elif isinstance(event, BlockDisconnected):
            actions += self._disconnected(event.height)
        elif isinstance(event, PreimageLearned):
            self.preimages[sha256(event.preimage)] = event.preimage
        if isinstance(event, BlockConnected | PreimageLearned):
            # Decisions are taken once a block's spends are all known, never halfway through it.
            actions += self._evaluate(ctx, bump=isinstance(event, BlockConnected))
        return actions

    # --- reporting ----------------------------------------------------------------------------------------

    def listclosed_entry(self) -> dict[str, Any]:
        """This channel as `listclosed` reports it (the node's contract)."""
        return listclosed_entry(self)

    # --- persistence ------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return encode_resolver(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> ChannelResolver:
        """Raises ResolverDecodeError for bytes this code did not write."""
        return decode_resolver(cls, data)
