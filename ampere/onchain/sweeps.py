"""What we claim from a commitment that is not revoked (BOLT 5 "Unilateral Close Handling").

Our own commitment (`local_outputs`): `to_local` after `to_self_delay`; every HTLC through its
second-stage transaction — HTLC-timeout at the HTLC's `cltv_expiry`, HTLC-success once we have the
preimage — whose output is ours after `to_self_delay` again (the resolver adds that claim when
the second stage confirms); our anchor, for fee bumping only.

The peer's commitment (`remote_outputs`): `to_remote` at once (with anchors after one block),
the HTLCs we offered after their `cltv_expiry`, the HTLCs the peer offered us with the
preimage, both straight from the commitment (no second stage on this side).
"""

from __future__ import annotations

from ampere.bitcoin.keys import compact_to_der
from ampere.bitcoin.script import p2wpkh_script, p2wsh_script
from ampere.bitcoin.tx import SEQUENCE_RBF, OutPoint, Transaction
from ampere.channel.transactions.commitment import CommitmentTransaction, HtlcDirection, OutputKind
from ampere.channel.transactions.htlc import HtlcTxKind, htlc_transaction_for_output
from ampere.channel.transactions.scripts import to_remote_anchors_script
from ampere.channel.twoway.state import ChannelState
from ampere.onchain.claims import ClaimInput, WitnessKind
from ampere.onchain.keys import KeyFamily
from ampere.onchain.outputs import OutputPath, SecondStage, TrackedOutput

__all__ = ["local_outputs", "remote_outputs", "to_remote_by_script", "to_remote_output"]


def local_outputs(
    state: ChannelState, commitment: CommitmentTransaction, per_commitment_point: bytes
) -> tuple[TrackedOutput, ...]:
    """Our outputs on our own commitment, with the peer's HTLC signatures from our ledger."""
    ledger = state.require_ledger()
    _, remote = state.require_params()
    delay = remote.to_self_delay
    anchors = commitment.commitment_format.has_anchors
    txid = commitment.txid
    signatures = dict(
        zip(
            (output.index for output in commitment.htlc_outputs),
            ledger.local_htlc_signatures,
            strict=True,
        )
    )
    tracked: list[TrackedOutput] = []
    for output in commitment.outputs:
        outpoint = OutPoint(txid, output.index)
        if output.kind is OutputKind.TO_LOCAL and output.witness_script is not None:
            claim = ClaimInput(
                outpoint,
                output.amount_sat,
                WitnessKind.DELAYED,
                output.witness_script,
                KeyFamily.DELAYED,
                per_commitment_point,
                delay,
            )
            tracked.append(
                TrackedOutput(outpoint, output.amount_sat, OutputPath.TO_LOCAL, claim=claim, csv=delay)
            )
        elif output.kind is OutputKind.LOCAL_ANCHOR:
            tracked.append(TrackedOutput(outpoint, output.amount_sat, OutputPath.ANCHOR))
        elif output.htlc is not None:
            htlc_tx = htlc_transaction_for_output(commitment, output)
            stage = SecondStage(
                tx=htlc_tx.tx,
                kind=htlc_tx.kind,
                payment_hash=output.htlc.payment_hash,
                input_amount_sat=htlc_tx.input_amount_sat,
                input_witness_script=htlc_tx.input_witness_script,
                output_witness_script=htlc_tx.output_witness_script,
                remote_signature=compact_to_der(signatures[output.index]),
                anchors=anchors,
                per_commitment_point=per_commitment_point,
                to_self_delay=delay,
            )
            timeout = htlc_tx.kind is HtlcTxKind.TIMEOUT
            tracked.append(
                TrackedOutput(
                    outpoint,
                    output.amount_sat,
                    OutputPath.HTLC_TIMEOUT if timeout else OutputPath.HTLC_SUCCESS,
                    stage=stage,
                    csv=1 if anchors else 0,
                    cltv=output.htlc.cltv_expiry if timeout else 0,
                    payment_hash=output.htlc.payment_hash,
                )
            )
    return tuple(tracked)


def to_remote_output(commitment: CommitmentTransaction, payment_pubkey: bytes) -> TrackedOutput | None:
    """Our balance on the peer's commitment (revoked or not): P2WPKH to our payment basepoint
    (static_remotekey), or its CSV-1 script with anchors."""
    output = commitment.output_of_kind(OutputKind.TO_REMOTE)
    if output is None:
        return None
    return _to_remote(
        OutPoint(commitment.txid, output.index), output.amount_sat, output.witness_script, payment_pubkey
    )


def _to_remote(
    outpoint: OutPoint, amount_sat: int, witness_script: bytes | None, payment_pubkey: bytes
) -> TrackedOutput:
    if witness_script is None:
        claim = ClaimInput(
            outpoint,
            amount_sat,
            WitnessKind.TO_REMOTE_P2WPKH,
            b"",
            KeyFamily.PAYMENT,
            b"",
            SEQUENCE_RBF,
            pubkey=payment_pubkey,
        )
        return TrackedOutput(outpoint, amount_sat, OutputPath.TO_REMOTE, claim=claim)
    claim = ClaimInput(
        outpoint, amount_sat, WitnessKind.TO_REMOTE_ANCHORS, witness_script, KeyFamily.PAYMENT, b"", 1
    )
    return TrackedOutput(outpoint, amount_sat, OutputPath.TO_REMOTE, claim=claim, csv=1)


def remote_outputs(
    state: ChannelState, commitment: CommitmentTransaction, per_commitment_point: bytes
) -> tuple[TrackedOutput, ...]:
    """Our outputs on the peer's (unrevoked) commitment built at its `per_commitment_point`."""
    local, _ = state.require_params()
    anchors = commitment.commitment_format.has_anchors
    htlc_sequence = 1 if anchors else SEQUENCE_RBF
    txid = commitment.txid
    tracked: list[TrackedOutput] = []
    for output in commitment.outputs:
        outpoint = OutPoint(txid, output.index)
        if output.kind is OutputKind.TO_REMOTE:
            tracked.append(
                _to_remote(
                    outpoint, output.amount_sat, output.witness_script, local.basepoints.payment_basepoint
                )
            )
        elif output.kind is OutputKind.REMOTE_ANCHOR:
            tracked.append(TrackedOutput(outpoint, output.amount_sat, OutputPath.ANCHOR))
        elif output.htlc is not None and output.witness_script is not None:
            htlc = output.htlc
            # Directions are the owner's (the peer's): an HTLC it offered is one we received.
            if htlc.direction is HtlcDirection.OFFERED:
                claim = ClaimInput(
                    outpoint,
                    output.amount_sat,
                    WitnessKind.HTLC_PREIMAGE,
                    output.witness_script,
                    KeyFamily.HTLC,
                    per_commitment_point,
                    htlc_sequence,
                    payment_hash=htlc.payment_hash,
                )
                path, cltv = OutputPath.HTLC_SUCCESS, 0
            else:
                claim = ClaimInput(
                    outpoint,
                    output.amount_sat,
                    WitnessKind.HTLC_TIMEOUT,
                    output.witness_script,
                    KeyFamily.HTLC,
                    per_commitment_point,
                    htlc_sequence,
                    locktime=htlc.cltv_expiry,
                    payment_hash=htlc.payment_hash,
                )
                path, cltv = OutputPath.HTLC_TIMEOUT, htlc.cltv_expiry
            tracked.append(
                TrackedOutput(
                    outpoint,
                    output.amount_sat,
                    path,
                    claim=claim,
                    csv=1 if anchors else 0,
                    cltv=cltv,
                    payment_hash=htlc.payment_hash,
                )
            )
    return tuple(tracked)


def to_remote_by_script(state: ChannelState, tx: Transaction) -> tuple[TrackedOutput, ...]:
    """Our balance on any commitment of the peer, found by its script alone: with
    static_remotekey the key is our payment basepoint, whatever the commitment's point."""
    local, _ = state.require_params()
    payment = local.basepoints.payment_basepoint
    anchors_script = to_remote_anchors_script(payment) if state.commitment_format.has_anchors else None
    script_pubkey = p2wpkh_script(payment) if anchors_script is None else p2wsh_script(anchors_script)
    return tuple(
        _to_remote(tx.outpoint(vout), txout.value, anchors_script, payment)
        for vout, txout in enumerate(tx.outputs)
        if txout.script_pubkey == script_pubkey
    )
