"""What the chain tells a resolver: confirmed spends of the outputs it tracks (ours, the peer's, second
stages and their delayed outputs, preimages revealed on the way) and disconnected blocks (reorganisations
undo what they confirmed and broadcast our claims again)."""

from __future__ import annotations

from dataclasses import replace

from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.keys import verify_der
from ampere.bitcoin.sighash import bip143_sighash
from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.onchain.events import BroadcastTx, PreimageFound, ResolverAction, WatchOutpoint
from ampere.onchain.flight import ClaimInFlight
from ampere.onchain.justice import revoked_second_stage_claims
from ampere.onchain.outputs import OutputPath, OutputStatus, TrackedOutput
from ampere.onchain.resolver_state import ResolverState

__all__ = ["ChainTracking"]


def _signed_anchor_spend(out: TrackedOutput, tx: Transaction, input_index: int) -> bool:
    """Our anchor spent with a valid signature of its key (our CPFP child): only we hold that key;
    anyone else may spend it only after 16 blocks, without one."""
    witness = tx.inputs[input_index].witness
    if out.path is not OutputPath.ANCHOR or len(witness) != 2 or len(witness[0]) < 2:
        return False
    signature, script = witness
    # The anchor script opens with its key (33 bytes, pushed); the output's P2WSH committed to it.
    if len(script) < 34 or script[0] != 33:
        return False
    digest = bip143_sighash(tx, input_index, script, out.amount_sat, signature[-1])
    return verify_der(script[1:34], signature[:-1], digest)


class ChainTracking(ResolverState):
    """The half of `ChannelResolver` that follows the chain."""

    __slots__ = ()

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
            by_us = tx.txid in ours or delayed is not None or _signed_anchor_spend(out, tx, input_index)
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
