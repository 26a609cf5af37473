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
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.channel.twoway.actions import CloseType
from ampere.channel.twoway.state import ChannelState, RemovalKind
from ampere.errors import AmpereError
from ampere.onchain._codec import Reader, Writer
from ampere.onchain.claims import ClaimInput, WitnessKind, build_claim_tx, claim_weight, sign_claim_tx
from ampere.onchain.classify import (
    Classification,
    LocalCommitment,
    MutualClose,
    RemoteCommitment,
    RevokedCommitment,
)
from ampere.onchain.errors import ClaimBuildError, OnchainError, ResolverDecodeError
from ampere.onchain.events import (
    BlockConnected,
    BlockDisconnected,
    BroadcastTx,
    BumpCommitment,
    FundAndBroadcast,
    PreimageFound,
    PreimageLearned,
    Resolved,
    ResolverAction,
    ResolverEvent,
    SpendConfirmed,
    WatchOutpoint,
)
from ampere.onchain.fees import anchor_claim
from ampere.onchain.justice import (
    batch_claims,
    min_replacement_fee_sat,
    next_justice_feerate,
    revoked_outputs,
    revoked_second_stage_claims,
    revoked_to_local_script,
)
from ampere.onchain.keys import OnchainSigner
from ampere.onchain.outputs import OutputPath, OutputStatus, TrackedOutput
from ampere.onchain.sweeps import local_outputs, remote_outputs, to_remote_by_script

__all__ = ["ChannelResolver", "ClaimInFlight", "ResolverContext"]

log = logging.getLogger(__name__)

_VERSION = 1
_JUSTICE_KINDS = (WitnessKind.REVOKED_TO_LOCAL, WitnessKind.REVOKED_HTLC)
DEFAULT_RESOLVE_DEPTH = 6
REBROADCAST_AFTER_BLOCKS = 6


@dataclass(frozen=True, slots=True)
class ResolverContext:
    """What each event is handled with: the keys and the node's current feerate estimate."""

    signer: OnchainSigner
    feerate_per_kw: int


@dataclass(frozen=True, slots=True)
class ClaimInFlight:
    """A claim we broadcast (or asked the node to fund and broadcast: `needs_funding`)."""

    tx: Transaction
    inputs: tuple[OutPoint, ...]
    feerate_per_kw: int
    fee_sat: int
    broadcast_height: int
    label: str
    justice: bool = False
    needs_funding: bool = False
    confirmed_height: int | None = None

    def encode(self, writer: Writer) -> None:
        writer.blob(self.tx.serialize()).u32(len(self.inputs))
        for outpoint in self.inputs:
            writer.blob(outpoint.serialize())
        writer.u64(self.feerate_per_kw).u64(self.fee_sat).u64(self.broadcast_height).blob(self.label.encode())
        writer.u8(int(self.justice)).u8(int(self.needs_funding)).optional_u64(self.confirmed_height)

    @classmethod
    def decode(cls, reader: Reader) -> ClaimInFlight:
        tx = Transaction.parse(reader.blob())
        inputs = tuple(_outpoint(reader.blob()) for _ in range(reader.u32()))
        return cls(
            tx=tx,
            inputs=inputs,
            feerate_per_kw=reader.u64(),
            fee_sat=reader.u64(),
            broadcast_height=reader.u64(),
            label=reader.blob().decode(),
            justice=bool(reader.u8()),
            needs_funding=bool(reader.u8()),
            confirmed_height=reader.optional_u64(),
        )


def _outpoint(raw: bytes) -> OutPoint:
    if len(raw) != 36:
        raise ResolverDecodeError("bad outpoint")
    return OutPoint(raw[:32], int.from_bytes(raw[32:], "little"))


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


class ChannelResolver:
    """Resolves one closed channel. Not thread-safe: one event at a time."""

    __slots__ = (
        "channel_id",
        "claims",
        "close_type",
        "closing_fee_sat",
        "closing_height",
        "closing_tx",
        "cpfp_height",
        "destination",
        "justice_delay",
        "outputs",
        "preimages",
        "resolve_depth",
        "resolved",
        "revocable_script",
        "revocation_secret",
        "tip",
    )

    def __init__(
        self,
        channel_id: bytes,
        close_type: CloseType,
        closing_tx: Transaction,
        destination: bytes,
        outputs: Iterable[TrackedOutput],
        *,
        tip: int,
        preimages: dict[bytes, bytes] | None = None,
        revocable_script: bytes = b"",
        revocation_secret: bytes = b"",
        justice_delay: int = 0,
        resolve_depth: int = DEFAULT_RESOLVE_DEPTH,
        closing_fee_sat: int = 0,
    ) -> None:
        self.channel_id = channel_id
        self.close_type = close_type
        self.closing_tx = closing_tx
        self.closing_height: int | None = None
        self.destination = destination
        self.outputs: list[TrackedOutput] = list(outputs)
        self.claims: list[ClaimInFlight] = []
        self.preimages: dict[bytes, bytes] = dict(preimages or {})
        self.tip = tip
        self.resolved = False
        self.revocable_script = revocable_script
        self.revocation_secret = revocation_secret
        self.justice_delay = justice_delay
        self.resolve_depth = resolve_depth
        self.closing_fee_sat = closing_fee_sat
        self.cpfp_height: int | None = None

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
        if isinstance(classification, MutualClose):
            close_type = CloseType.MUTUAL
        elif isinstance(classification, LocalCommitment):
            close_type = CloseType.LOCAL_FORCE
            outputs = local_outputs(state, classification.commitment, classification.per_commitment_point)
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
            **breach,
        )
        return resolver, resolver._watch_all()

    def _watch_all(self) -> list[ResolverAction]:
        return [WatchOutpoint(out.outpoint) for out in self.outputs if out.path is not OutputPath.ANCHOR]

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

    def _output_index(self, outpoint: OutPoint) -> int | None:
        for index, out in enumerate(self.outputs):
            if out.outpoint == outpoint:
                return index
        return None

    def _spend_confirmed(self, tx: Transaction, height: int) -> list[ResolverAction]:
        actions: list[ResolverAction] = []
        if tx.txid == self.closing_tx.txid:
            self.closing_height = height
            self.tip = max(self.tip, height)
            self.outputs = [
                replace(out, created_height=height) if out.parent is None else out for out in self.outputs
            ]
            return actions
        ours = {claim.tx.txid for claim in self.claims if not claim.needs_funding}
        spent: set[OutPoint] = set()
        for input_index, txin in enumerate(tx.inputs):
            index = self._output_index(txin.prevout)
            if index is None:
                continue
            out = self.outputs[index]
            spent.add(out.outpoint)
            stage = out.stage
            delayed = stage.delayed_claim(tx) if stage is not None else None
            by_us = tx.txid in ours or delayed is not None
            self.outputs[index] = replace(
                out, status=OutputStatus.SWEPT, sweep_txid=tx.txid, spent_height=height, by_us=by_us
            )
            if delayed is not None:
                self.outputs.append(
                    TrackedOutput(
                        delayed.outpoint,
                        delayed.amount_sat,
                        out.path,
                        claim=delayed,
                        csv=delayed.sequence,
                        created_height=height,
                        parent=out.outpoint,
                    )
                )
                actions.append(WatchOutpoint(delayed.outpoint))
            if by_us:
                continue
            actions += self._learn_preimage(tx, input_index, out)
            if self.revocable_script and out.path is OutputPath.JUSTICE:
                for claim in revoked_second_stage_claims(tx, self.revocable_script, self.revocation_secret):
                    if self._output_index(claim.outpoint) is None:
                        self.outputs.append(
                            TrackedOutput(
                                claim.outpoint,
                                claim.amount_sat,
                                OutputPath.JUSTICE,
                                claim=claim,
                                created_height=height,
                                parent=out.outpoint,
                            )
                        )
                        actions.append(WatchOutpoint(claim.outpoint))
        kept: list[ClaimInFlight] = []
        for flight in self.claims:
            if flight.tx.txid == tx.txid or (flight.needs_funding and set(flight.inputs) <= spent):
                kept.append(replace(flight, confirmed_height=height))
            elif flight.confirmed_height is None and spent.intersection(flight.inputs):
                continue  # a conflicting spend won: rebuilt from what is left on the next evaluation
            else:
                kept.append(flight)
        self.claims = kept
        return actions

    def _learn_preimage(self, tx: Transaction, input_index: int, out: TrackedOutput) -> list[ResolverAction]:
        if not out.payment_hash:
            return []
        for item in tx.inputs[input_index].witness:
            if len(item) == 32 and sha256(item) == out.payment_hash:
                known = out.payment_hash in self.preimages
                self.preimages[out.payment_hash] = item
                return [] if known else [PreimageFound(out.payment_hash, item)]
        return []

    def _disconnected(self, height: int) -> list[ResolverAction]:
        actions: list[ResolverAction] = []
        self.tip = min(self.tip, height - 1)
        self.resolved = False
        if self.closing_height is not None and self.closing_height >= height:
            self.closing_height = None
            self.outputs = [
                replace(out.reverted(), created_height=None) for out in self.outputs if out.parent is None
            ]
            self.claims = []
            return [BroadcastTx(self.closing_tx, "closing transaction (after a reorganisation)")]
        gone = {
            out.outpoint
            for out in self.outputs
            if out.parent is not None and (out.created_height or 0) >= height
        }
        self.outputs = [
            out.reverted() if out.spent_height is not None and out.spent_height >= height else out
            for out in self.outputs
            if out.outpoint not in gone
        ]
        claims: list[ClaimInFlight] = []
        for claim in self.claims:
            if gone.intersection(claim.inputs):
                continue
            if claim.confirmed_height is not None and claim.confirmed_height >= height:
                claim = replace(claim, confirmed_height=None, broadcast_height=self.tip)
                actions.append(self._rebroadcast(claim))
            claims.append(claim)
        self.claims = claims
        return actions

    def _rebroadcast(self, claim: ClaimInFlight) -> ResolverAction:
        if claim.needs_funding:
            index = self._output_index(claim.inputs[0])
            if index is not None and self.outputs[index].stage is not None:
                out = self.outputs[index]
                assert out.stage is not None
                return FundAndBroadcast(
                    out.outpoint, out.stage, self.preimages.get(out.payment_hash), claim.label
                )
        return BroadcastTx(claim.tx, f"{claim.label} (again)")

    # --- deciding what to claim -----------------------------------------------------------------------------

    def _ready(self, out: TrackedOutput) -> bool:
        at = out.claimable_at()
        if at is None or self.tip < at:
            return False
        return not out.needs_preimage or out.payment_hash in self.preimages

    def _evaluate(self, ctx: ResolverContext, *, bump: bool) -> list[ResolverAction]:
        if self.closing_height is None:
            return self._bump_commitment(ctx) if bump else []
        covered = {
            outpoint for claim in self.claims if claim.confirmed_height is None for outpoint in claim.inputs
        }
        justice: list[ClaimInput] = []
        actions: list[ResolverAction] = []
        for index, out in enumerate(self.outputs):
            if out.status is OutputStatus.SWEPT:
                continue
            if out.path is OutputPath.ANCHOR:
                self.outputs[index] = replace(out, status=OutputStatus.CLAIMABLE)
                continue
            ready = self._ready(out)
            self.outputs[index] = out = replace(
                out, status=OutputStatus.CLAIMABLE if ready else OutputStatus.PENDING
            )
            if not ready or out.outpoint in covered:
                continue
            if out.claim is not None and out.claim.kind in _JUSTICE_KINDS:
                justice.append(out.claim)
            else:
                actions += self._claim_one(out, ctx)
        actions += self._justice(justice, ctx, bump=bump)
        if bump:
            actions += self._retry_stale()
        if not self.resolved and self._settled():
            self.resolved = True
            actions.append(Resolved(self.channel_id))
        return actions

    def _retry_stale(self) -> list[ResolverAction]:
        """Broadcast again what has waited too long (a mempool may have dropped it, or the wallet
        had no coin to fund it); justice transactions are replaced every block instead."""
        actions: list[ResolverAction] = []
        for index, claim in enumerate(self.claims):
            if claim.justice or claim.confirmed_height is not None:
                continue
            if self.tip - claim.broadcast_height >= REBROADCAST_AFTER_BLOCKS:
                self.claims[index] = claim = replace(claim, broadcast_height=self.tip)
                actions.append(self._rebroadcast(claim))
        return actions

    def _bump_commitment(self, ctx: ResolverContext) -> list[ResolverAction]:
        """CPFP through our anchor while the commitment waits at a feerate below today's."""
        anchor = next((o for o in self.outputs if o.path is OutputPath.ANCHOR and o.parent is None), None)
        weight = self.closing_tx.weight
        if (
            anchor is None
            or self.cpfp_height == self.tip
            or self.closing_fee_sat * 1000 >= ctx.feerate_per_kw * weight
        ):
            return []
        self.cpfp_height = self.tip
        claim = anchor_claim(anchor.outpoint, ctx.signer.basepoints.funding_pubkey)
        return [BumpCommitment(claim, weight, self.closing_fee_sat, ctx.feerate_per_kw)]

    def _claim_one(self, out: TrackedOutput, ctx: ResolverContext) -> list[ResolverAction]:
        preimage = self.preimages.get(out.payment_hash)
        label = f"{out.path.value} claim of {out.outpoint}"
        if out.stage is not None:
            stage = out.stage
            if stage.anchors:
                self.claims.append(
                    ClaimInFlight(stage.tx, (out.outpoint,), 0, 0, self.tip, label, needs_funding=True)
                )
                return [FundAndBroadcast(out.outpoint, stage, preimage, label)]
            tx = stage.finalize(ctx.signer, preimage)
            fee = stage.input_amount_sat - tx.total_output_value()
            self.claims.append(ClaimInFlight(tx, (out.outpoint,), 0, fee, self.tip, label))
            return [BroadcastTx(tx, label)]
        assert out.claim is not None
        try:
            unsigned = build_claim_tx([out.claim], self.destination, ctx.feerate_per_kw)
        except ClaimBuildError as exc:
            log.info("not claiming %s yet: %s", out.outpoint, exc)
            return []
        tx = sign_claim_tx(unsigned, [out.claim], ctx.signer, self.preimages)
        fee = out.claim.amount_sat - tx.total_output_value()
        self.claims.append(ClaimInFlight(tx, (out.outpoint,), ctx.feerate_per_kw, fee, self.tip, label))
        return [BroadcastTx(tx, label)]

    def _justice(self, new: list[ClaimInput], ctx: ResolverContext, *, bump: bool) -> list[ResolverAction]:
        """Build (or rebuild, merged with what is in flight, or bump) the justice transactions."""
        pending = [c for c in self.claims if c.justice and c.confirmed_height is None]
        stale = bump and any(self.tip > c.broadcast_height for c in pending)
        if not new and not stale:
            return []
        by_outpoint = {out.outpoint: out.claim for out in self.outputs if out.claim is not None}
        inputs = list(new)
        feerate, old_fee = ctx.feerate_per_kw, 0
        for claim in pending:
            inputs += [c for o in claim.inputs if (c := by_outpoint.get(o)) is not None]
            old_fee += claim.fee_sat
            feerate = max(feerate, claim.feerate_per_kw)
        if stale:
            assert self.closing_height is not None
            blocks_left = self.closing_height + self.justice_delay - 1 - self.tip
            feerate = next_justice_feerate(feerate, blocks_left)
        self.claims = [c for c in self.claims if c not in pending]
        actions: list[ResolverAction] = []
        batches = batch_claims(inputs, self.destination)
        for number, batch in enumerate(batches):
            # The replaced fee is shared across the new batches so that each pays its part.
            min_fee = min_replacement_fee_sat(old_fee // len(batches), claim_weight(batch, self.destination))
            label = "justice" if not pending else "justice (fee bump)"
            if len(batches) > 1:
                label += f" {number + 1}/{len(batches)}"
            try:
                unsigned = build_claim_tx(
                    batch, self.destination, feerate, min_fee_sat=min_fee if pending else 0
                )
            except ClaimBuildError as exc:
                log.warning("justice batch not built: %s", exc)
                continue
            tx = sign_claim_tx(unsigned, batch, ctx.signer, self.preimages)
            fee = sum(c.amount_sat for c in batch) - tx.total_output_value()
            self.claims.append(
                ClaimInFlight(
                    tx, tuple(c.outpoint for c in batch), feerate, fee, self.tip, label, justice=True
                )
            )
            actions.append(BroadcastTx(tx, label))
        return actions

    def _settled(self) -> bool:
        if self.closing_height is None:
            return False
        deep = self.tip - self.resolve_depth + 1
        if self.closing_height > deep:
            return False
        return all(
            out.status is OutputStatus.SWEPT and out.spent_height is not None and out.spent_height <= deep
            for out in self.outputs
            if out.actionable
        )

    # --- reporting ----------------------------------------------------------------------------------------

    def listclosed_entry(self) -> dict[str, Any]:
        """This channel as `listclosed` reports it (the node's contract)."""
        return _listclosed(self)

    # --- persistence ------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return _encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> ChannelResolver:
        """Raises ResolverDecodeError for bytes this code did not write."""
        return _decode(data)


def _encode(resolver: ChannelResolver) -> bytes:
    writer = Writer().u8(_VERSION).blob(resolver.channel_id).blob(resolver.close_type.value.encode())
    writer.blob(resolver.closing_tx.serialize()).optional_u64(resolver.closing_height)
    writer.blob(resolver.destination).u32(len(resolver.outputs))
    for out in resolver.outputs:
        out.encode(writer)
    writer.u32(len(resolver.claims))
    for claim in resolver.claims:
        claim.encode(writer)
    writer.u32(len(resolver.preimages))
    for payment_hash, preimage in sorted(resolver.preimages.items()):
        writer.blob(payment_hash).blob(preimage)
    writer.u64(resolver.tip).u8(int(resolver.resolved))
    writer.blob(resolver.revocable_script).blob(resolver.revocation_secret)
    writer.u32(resolver.justice_delay).u32(resolver.resolve_depth)
    writer.u64(resolver.closing_fee_sat).optional_u64(resolver.cpfp_height)
    return writer.to_bytes()


def _decode(data: bytes) -> ChannelResolver:
    reader = Reader(data)
    try:
        version = reader.u8()
        if version != _VERSION:
            raise ResolverDecodeError(f"unknown resolver state version {version}")
        channel_id = reader.blob()
        close_type = CloseType(reader.blob().decode())
        closing_tx = Transaction.parse(reader.blob())
        closing_height = reader.optional_u64()
        destination = reader.blob()
        outputs = [TrackedOutput.decode(reader) for _ in range(reader.u32())]
        claims = [ClaimInFlight.decode(reader) for _ in range(reader.u32())]
        preimages = {reader.blob(): reader.blob() for _ in range(reader.u32())}
        tip, resolved = reader.u64(), bool(reader.u8())
        revocable_script, revocation_secret = reader.blob(), reader.blob()
        justice_delay, resolve_depth = reader.u32(), reader.u32()
        closing_fee_sat, cpfp_height = reader.u64(), reader.optional_u64()
        reader.finish()
    except ResolverDecodeError:
        raise
    except (ValueError, IndexError, AmpereError) as exc:
        raise ResolverDecodeError(f"resolver state does not decode: {exc}") from exc
    resolver = ChannelResolver(
        channel_id,
        close_type,
        closing_tx,
        destination,
        outputs,
        tip=tip,
        preimages=preimages,
        revocable_script=revocable_script,
        revocation_secret=revocation_secret,
        justice_delay=justice_delay,
        resolve_depth=resolve_depth,
        closing_fee_sat=closing_fee_sat,
    )
    resolver.cpfp_height = cpfp_height
    resolver.closing_height = closing_height
    resolver.claims = claims
    resolver.resolved = resolved
    return resolver


def _listclosed(resolver: ChannelResolver) -> dict[str, Any]:
    return {
        "channel_id": resolver.channel_id.hex(),
        "close_type": resolver.close_type.value,
        "closing_txid": resolver.closing_tx.txid_hex,
        "outputs": [
            {
                "outpoint": str(out.outpoint),
                "amount_sat": out.amount_sat,
                "path": out.path.value,
                "claimable_at_height": out.claimable_at(),
                "status": out.status.value,
                "sweep_txid": None if out.sweep_txid is None else out.sweep_txid[::-1].hex(),
            }
            for out in resolver.outputs
        ],
    }
