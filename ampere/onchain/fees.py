"""Fees that the pre-signed transactions cannot carry themselves (anchor channels).

With `option_anchors` the HTLC transactions pay no fee (the peer signed them
SIGHASH_SINGLE|ANYONECANPAY) and the commitment pays a fee fixed when it was signed, possibly
too low for today's mempool. Both are fixed by a wallet coin: `grow_for_fee` adds it to a
zero-fee HTLC transaction (with a change output), `anchor_cpfp_tx` spends our anchor together
with it in a child that pays for the whole package.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from ampere.bitcoin.serialize import compact_size
from ampere.bitcoin.sighash import SigHash
from ampere.bitcoin.tx import SEQUENCE_RBF, OutPoint, Transaction, TxIn, TxOut
from ampere.channel.transactions.closing import dust_threshold_sat
from ampere.channel.transactions.fees import ANCHOR_OUTPUT_SAT, CommitmentFormat
from ampere.channel.transactions.htlc import HtlcTransaction, HtlcTxKind
from ampere.channel.transactions.scripts import anchor_script
from ampere.channel.transactions.weights import (
    ANCHOR_WITNESS_WEIGHT,
    MAX_SIGNATURE_SIZE,
    input_weight,
    witness_weight,
)
from ampere.onchain.claims import ClaimInput, WitnessKind
from ampere.onchain.errors import ClaimBuildError
from ampere.onchain.keys import KeyFamily, OnchainSigner
from ampere.onchain.outputs import SecondStage

__all__ = [
    "P2WPKH_INPUT_WEIGHT",
    "FeeInput",
    "anchor_claim",
    "anchor_cpfp_tx",
    "cpfp_fee_sat",
    "fund_second_stage",
    "grow_for_fee",
    "sign_anchor_input",
]

P2WPKH_INPUT_WEIGHT = input_weight(witness_weight(MAX_SIGNATURE_SIZE, 33))
# version, locktime, marker and flag, one-byte input and output counts.
_TX_OVERHEAD_WEIGHT = (4 + 4 + 1 + 1) * 4 + 2


class FeeInput(Protocol):
    """A P2WPKH wallet coin the node adds to pay a fee (the node signs it afterwards)."""

    @property
    def outpoint(self) -> OutPoint: ...

    @property
    def value(self) -> int: ...


def _change_weight(change_script: bytes) -> int:
    return 4 * (8 + len(compact_size(len(change_script))) + len(change_script))


def grow_for_fee(
    htlc_tx: HtlcTransaction, coin: FeeInput, change_script: bytes, feerate_per_kw: int
) -> Transaction:
    """The zero-fee HTLC transaction with `coin` as input 1 and change as output 1.

    The fee covers the whole grown transaction: BOLT 3's expected weight of the HTLC transaction
    plus the wallet input and the change output. The caller signs input 0 (SIGHASH_ALL, over the
    grown transaction) and input 1.
    """
    return _grow(htlc_tx.tx, htlc_tx.kind, htlc_tx.commitment_format, coin, change_script, feerate_per_kw)


def _grow(
    tx: Transaction,
    kind: HtlcTxKind,
    fmt: CommitmentFormat,
    coin: FeeInput,
    change_script: bytes,
    feerate_per_kw: int,
) -> Transaction:
    base_weight = fmt.htlc_timeout_weight if kind is HtlcTxKind.TIMEOUT else fmt.htlc_success_weight
    fee = feerate_per_kw * (base_weight + P2WPKH_INPUT_WEIGHT + _change_weight(change_script)) // 1000
    change = coin.value - fee
    if change < dust_threshold_sat(change_script):
        raise ClaimBuildError(f"a coin of {coin.value} sat cannot pay a fee of {fee} sat and keep its change")
    return replace(
        tx,
        inputs=(*tx.inputs, TxIn(coin.outpoint, b"", SEQUENCE_RBF)),
        outputs=(*tx.outputs, TxOut(change, change_script)),
    )


def cpfp_fee_sat(parent_weight: int, parent_fee_sat: int, child_weight: int, feerate_per_kw: int) -> int:
    """What a child must pay for parent and child together to reach `feerate_per_kw` (never
    less than its own relay fee at that rate)."""
    package = feerate_per_kw * (parent_weight + child_weight) // 1000 - parent_fee_sat
    return max(package, feerate_per_kw * child_weight // 1000)


def anchor_cpfp_tx(
    anchor: OutPoint,
    coin: FeeInput,
    change_script: bytes,
    parent_weight: int,
    parent_fee_sat: int,
    feerate_per_kw: int,
) -> Transaction:
    """An unsigned child spending our anchor (input 0, nSequence RBF) and `coin` (input 1) to
    `change_script`, paying for the commitment `parent` up to `feerate_per_kw`.

    Sign input 0 with the funding key (`ClaimInput` of kind ANCHOR does exactly that) and input 1
    with the wallet's key.
    """
    child_weight = (
        _TX_OVERHEAD_WEIGHT
        + input_weight(ANCHOR_WITNESS_WEIGHT)
        + P2WPKH_INPUT_WEIGHT
        + _change_weight(change_script)
    )
    fee = cpfp_fee_sat(parent_weight, parent_fee_sat, child_weight, feerate_per_kw)
    change = coin.value + ANCHOR_OUTPUT_SAT - fee
    if change < dust_threshold_sat(change_script):
        raise ClaimBuildError(f"a coin of {coin.value} sat cannot pay a CPFP fee of {fee} sat")
    return Transaction(
        version=2,
        inputs=(TxIn(anchor, b"", SEQUENCE_RBF), TxIn(coin.outpoint, b"", SEQUENCE_RBF)),
        outputs=(TxOut(change, change_script),),
    )


def fund_second_stage(
    stage: SecondStage,
    preimage: bytes | None,
    coin: FeeInput,
    change_script: bytes,
    feerate_per_kw: int,
    signer: OnchainSigner,
) -> Transaction:
    """What the node does with a resolver's `FundAndBroadcast`: our zero-fee HTLC transaction grown
    with `coin`, input 0 signed; the node still signs input 1 (its wallet coin)."""
    if not stage.anchors:
        raise ClaimBuildError("only anchor channels have zero-fee HTLC transactions")
    grown = _grow(stage.tx, stage.kind, CommitmentFormat.ANCHORS, coin, change_script, feerate_per_kw)
    return stage.finalize(signer, preimage, grown)


def anchor_claim(outpoint: OutPoint, funding_pubkey: bytes) -> ClaimInput:
    """Our anchor, spent with our funding key (for CPFP)."""
    return ClaimInput(
        outpoint,
        ANCHOR_OUTPUT_SAT,
        WitnessKind.ANCHOR,
        anchor_script(funding_pubkey),
        KeyFamily.FUNDING,
        b"",
        SEQUENCE_RBF,
    )


def sign_anchor_input(tx: Transaction, claim: ClaimInput, signer: OnchainSigner) -> Transaction:
    """Sign input 0 of an `anchor_cpfp_tx` (the wallet signs input 1)."""
    if tx.inputs[0].prevout != claim.outpoint or claim.kind is not WitnessKind.ANCHOR:
        raise ClaimBuildError("input 0 is not this anchor")
    signature = signer.sign(
        tx, 0, claim.script_code, claim.amount_sat, claim.family, claim.tweak, SigHash.ALL
    )
    return tx.with_witness(0, claim.witness(signature, None))
