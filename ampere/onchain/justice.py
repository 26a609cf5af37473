"""Punishing a revoked commitment (BOLT 5 "Revoked Transaction Close Handling").

Every output of a revoked commitment but our own `to_remote` is taken with the revocation key:
`to_local`, every HTLC output, and the output of any HTLC-timeout/HTLC-success transaction the
peer manages to confirm (it pays the same revocable script as `to_local`). They all go into one
transaction where they fit (`batch_claims` splits past the standard weight), and its fee rises
(`next_justice_feerate`, a BIP125 replacement each time) while it stays unconfirmed, faster as
the peer's `to_self_delay` runs out: after that the peer could take its `to_local` itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from ampere.bitcoin.script import p2wsh_script
from ampere.bitcoin.tx import SEQUENCE_RBF, OutPoint, Transaction
from ampere.channel.transactions.closing import dust_threshold_sat
from ampere.channel.transactions.commitment import OutputKind
from ampere.channel.transactions.scripts import to_local_script
from ampere.channel.twoway.state import ChannelState
from ampere.onchain.claims import (
    MAX_STANDARD_TX_WEIGHT,
    ClaimInput,
    WitnessKind,
    build_claim_tx,
    weight_of,
)
from ampere.onchain.classify import RevokedCommitment
from ampere.onchain.errors import ClaimBuildError
from ampere.onchain.keys import KeyFamily
from ampere.onchain.outputs import OutputPath, TrackedOutput
from ampere.onchain.sweeps import to_remote_by_script, to_remote_output

__all__ = [
    "batch_claims",
    "build_justice_tx",
    "min_replacement_fee_sat",
    "next_justice_feerate",
    "revoked_outputs",
    "revoked_second_stage_claims",
    "revoked_to_local_script",
]

# Leave room for signatures one byte shorter or longer than the estimate assumes.
_LIMIT = MAX_STANDARD_TX_WEIGHT - 4_000
# Bitcoin Core's incremental relay feerate (1 sat/vB) in sat per 1000 weight units.
INCREMENTAL_RELAY_PER_KW = 250


def revoked_to_local_script(state: ChannelState, revoked: RevokedCommitment) -> bytes:
    """The revocable script of the revoked commitment's `to_local` and of its HTLC transactions'
    outputs; the delay is the one we imposed on the peer."""
    local, _ = state.require_params()
    keys = revoked.keys
    return to_local_script(keys.revocation_pubkey, local.to_self_delay, keys.local_delayed_pubkey)


def _revocation_claim(
    outpoint: OutPoint, amount_sat: int, script: bytes, secret: bytes, kind: WitnessKind, pubkey: bytes = b""
) -> ClaimInput:
    return ClaimInput(
        outpoint, amount_sat, kind, script, KeyFamily.REVOCATION, secret, SEQUENCE_RBF, pubkey=pubkey
    )


def revoked_outputs(
    state: ChannelState, revoked: RevokedCommitment, tx: Transaction
) -> tuple[TrackedOutput, ...]:
    """Every output of the revoked commitment `tx` we take: by the rebuilt commitment when the
    revocation log had its record, else by script (then only `to_local` and `to_remote`)."""
    local, _ = state.require_params()
    secret = revoked.per_commitment_secret
    keys = revoked.keys
    tracked: list[TrackedOutput] = []
    commitment = revoked.commitment
    if commitment is not None:
        for output in commitment.outputs:
            outpoint = OutPoint(tx.txid, output.index)
            if output.kind is OutputKind.TO_LOCAL and output.witness_script is not None:
                claim = _revocation_claim(
                    outpoint, output.amount_sat, output.witness_script, secret, WitnessKind.REVOKED_TO_LOCAL
                )
                tracked.append(TrackedOutput(outpoint, output.amount_sat, OutputPath.JUSTICE, claim=claim))
            elif output.htlc is not None and output.witness_script is not None:
                claim = _revocation_claim(
                    outpoint,
                    output.amount_sat,
                    output.witness_script,
                    secret,
                    WitnessKind.REVOKED_HTLC,
                    keys.revocation_pubkey,
                )
                tracked.append(
                    TrackedOutput(
                        outpoint,
                        output.amount_sat,
                        OutputPath.JUSTICE,
                        claim=claim,
                        payment_hash=output.htlc.payment_hash,
                    )
                )
            elif output.kind is OutputKind.REMOTE_ANCHOR:
                tracked.append(TrackedOutput(outpoint, output.amount_sat, OutputPath.ANCHOR))
        remote = to_remote_output(commitment, local.basepoints.payment_basepoint)
        if remote is not None:
            tracked.append(remote)
        return tuple(tracked)
    to_local = revoked_to_local_script(state, revoked)
    for vout, txout in enumerate(tx.outputs):
        if txout.script_pubkey == p2wsh_script(to_local):
            outpoint = tx.outpoint(vout)
            claim = _revocation_claim(outpoint, txout.value, to_local, secret, WitnessKind.REVOKED_TO_LOCAL)
            tracked.append(TrackedOutput(outpoint, txout.value, OutputPath.JUSTICE, claim=claim))
    return (*tracked, *to_remote_by_script(state, tx))


def revoked_second_stage_claims(
    spending_tx: Transaction, revocable_script: bytes, secret: bytes
) -> tuple[ClaimInput, ...]:
    """The outputs of the peer's HTLC transaction (spending a revoked HTLC output) that pay the
    revocable script: ours with the revocation key, at once."""
    script_pubkey = p2wsh_script(revocable_script)
    return tuple(
        _revocation_claim(
            spending_tx.outpoint(vout), txout.value, revocable_script, secret, WitnessKind.REVOKED_TO_LOCAL
        )
        for vout, txout in enumerate(spending_tx.outputs)
        if txout.script_pubkey == script_pubkey
    )


def batch_claims(claims: Sequence[ClaimInput], destination_script: bytes) -> list[list[ClaimInput]]:
    """Claims grouped into as few transactions as stay under the standard weight, largest first."""
    batches: list[list[ClaimInput]] = []
    current: list[ClaimInput] = []
    current_weight = 0
    for claim in sorted(claims, key=lambda c: (-c.amount_sat, c.outpoint)):
        if (
            current
            and weight_of(len(current) + 1, current_weight + claim.weight, destination_script) > _LIMIT
        ):
            batches.append(current)
            current, current_weight = [], 0
        current.append(claim)
        current_weight += claim.weight
    if current:
        batches.append(current)
    return batches


def next_justice_feerate(previous_feerate_per_kw: int, blocks_left: int) -> int:
    """The feerate of the next replacement of an unconfirmed justice transaction: a quarter more
    each block, doubled once the peer is two blocks from taking its `to_local`."""
    if blocks_left <= 2:
        return previous_feerate_per_kw * 2
    return previous_feerate_per_kw + max(previous_feerate_per_kw // 4, INCREMENTAL_RELAY_PER_KW)


def min_replacement_fee_sat(previous_fee_sat: int, weight: int) -> int:
    """BIP125 rule 4: a replacement pays the old fee plus the incremental relay fee of its own size."""
    return previous_fee_sat + (INCREMENTAL_RELAY_PER_KW * weight + 999) // 1000


def build_justice_tx(
    batch: Sequence[ClaimInput], destination_script: bytes, feerate_per_kw: int, min_fee_sat: int
) -> Transaction | None:
    """The unsigned justice transaction of `batch`. When the feerate asks for more than the outputs
    hold, everything above the dust threshold goes to the fee: better the miners than the cheater. None
    when even that cannot pay `min_fee_sat` (a replacement must pay more than what it replaces)."""
    try:
        return build_claim_tx(batch, destination_script, feerate_per_kw, min_fee_sat=min_fee_sat)
    except ClaimBuildError:
        pass
    most = sum(c.amount_sat for c in batch) - max(dust_threshold_sat(destination_script), 1)
    if most < max(min_fee_sat, 1):
        return None
    return build_claim_tx(batch, destination_script, 0, min_fee_sat=most)
