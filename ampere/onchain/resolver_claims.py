"""What a resolver decides once a block (or a preimage) is fully known: which outputs are ready and
their claims, second stages (wallet-funded with anchors), the batched justice transaction and its fee
bumps, the CPFP of our unconfirmed commitment, retries of what went missing, and when all is settled."""

from __future__ import annotations

import logging
from dataclasses import replace

from ampere.onchain.claims import ClaimInput, WitnessKind, build_claim_tx, claim_weight, sign_claim_tx
from ampere.onchain.errors import ClaimBuildError
from ampere.onchain.events import BroadcastTx, BumpCommitment, FundAndBroadcast, Resolved, ResolverAction
from ampere.onchain.fees import anchor_claim
from ampere.onchain.flight import ClaimInFlight, ResolverContext, claim_total
from ampere.onchain.justice import (
    batch_claims,
    build_justice_tx,
    min_replacement_fee_sat,
    next_justice_feerate,
)
from ampere.onchain.outputs import OutputPath, OutputStatus, TrackedOutput
from ampere.onchain.resolver_state import REBROADCAST_AFTER_BLOCKS, ResolverState

__all__ = ["ClaimDecisions"]

log = logging.getLogger(__name__)

_JUSTICE_KINDS = (WitnessKind.REVOKED_TO_LOCAL, WitnessKind.REVOKED_HTLC)


class ClaimDecisions(ResolverState):
    """The half of `ChannelResolver` that decides and builds claims."""

    __slots__ = ()

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
            or self.revoked_local  # never spend on getting a revoked commitment confirmed
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
        built: list[ClaimInFlight] = []
        batches = batch_claims(inputs, self.destination)
        for number, batch in enumerate(batches):
            # The replaced fee is shared across the new batches so that each pays its part.
            min_fee = min_replacement_fee_sat(old_fee // len(batches), claim_weight(batch, self.destination))
            label = "justice" if not pending else "justice (fee bump)"
            if len(batches) > 1:
                label += f" {number + 1}/{len(batches)}"
            unsigned = build_justice_tx(batch, self.destination, feerate, min_fee if pending else 0)
            if unsigned is None:
                if pending:
                    # Already paying all it can: the transactions in flight stay (and are rebroadcast).
                    log.warning("justice not replaced: %d sat cannot pay more than it does", min_fee)
                    return []
                log.warning("justice batch of %d sat not built: it cannot pay its fee", claim_total(batch))
                continue
            tx = sign_claim_tx(unsigned, batch, ctx.signer, self.preimages)
            fee = claim_total(batch) - tx.total_output_value()
            outpoints = tuple(c.outpoint for c in batch)
            built.append(ClaimInFlight(tx, outpoints, feerate, fee, self.tip, label, justice=True))
        self.claims = [c for c in self.claims if c not in pending] + built
        return [BroadcastTx(claim.tx, claim.label) for claim in built]

    def _settled(self) -> bool:
        if self.closing_height is None:
            return False
        deep = self.tip - self.resolve_depth + 1
        if self.closing_height > deep:
            return False
        return all(
            out.status is OutputStatus.SWEPT and out.spent_height is not None and out.spent_height <= deep
            for out in self.outputs
            if out.actionable or (self.revoked_local and out.path is not OutputPath.ANCHOR)
        )
