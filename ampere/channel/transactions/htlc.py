"""Second-stage HTLC transactions: HTLC-timeout (for HTLCs the owner offered) and HTLC-success
(for HTLCs it received).

They exist so that an HTLC can be resolved on time while the owner's share still waits out
`to_self_delay`: their single output uses the to_local script. Both are pre-signed by the peer,
whose signature is what keeps the owner from timing out early or skipping the delay.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ampere.bitcoin.script import p2wsh_script
from ampere.bitcoin.tx import OutPoint, Transaction, TxIn, TxOut
from ampere.channel.transactions.commitment import (
    CommitmentOutput,
    CommitmentTransaction,
    Htlc,
    HtlcDirection,
)
from ampere.channel.transactions.errors import TransactionBuildError
from ampere.channel.transactions.fees import CommitmentFormat, htlc_success_fee_sat, htlc_timeout_fee_sat
from ampere.channel.transactions.scripts import htlc_output_script

__all__ = [
    "HtlcTransaction",
    "HtlcTxKind",
    "build_htlc_success_tx",
    "build_htlc_timeout_tx",
    "htlc_transaction_for_output",
    "htlc_transactions",
]


class HtlcTxKind(Enum):
    TIMEOUT = "htlc-timeout"
    SUCCESS = "htlc-success"


def _htlc_tx(
    commitment_outpoint: OutPoint,
    amount_sat: int,
    fee_sat: int,
    locktime: int,
    revocation_pubkey: bytes,
    local_delayed_pubkey: bytes,
    to_self_delay: int,
    fmt: CommitmentFormat,
) -> Transaction:
    value = amount_sat - fee_sat
    if value <= 0:
        raise TransactionBuildError("HTLC amount does not cover its second-stage fee (it should be trimmed)")
    script = htlc_output_script(revocation_pubkey, to_self_delay, local_delayed_pubkey)
    # With anchors the HTLC output script demands CSV 1, so the spending input must say so.
    sequence = 1 if fmt.has_anchors else 0
    return Transaction(
        version=2,
        inputs=(TxIn(commitment_outpoint, b"", sequence),),
        outputs=(TxOut(value, p2wsh_script(script)),),
        locktime=locktime,
    )


def build_htlc_timeout_tx(
    commitment_outpoint: OutPoint,
    amount_msat: int,
    cltv_expiry: int,
    revocation_pubkey: bytes,
    local_delayed_pubkey: bytes,
    to_self_delay: int,
    feerate_per_kw: int,
    fmt: CommitmentFormat,
) -> Transaction:
    """nLockTime is the HTLC's cltv_expiry: the peer's signature is only usable after it."""
    if not 0 <= cltv_expiry <= 0xFFFF_FFFF:
        raise TransactionBuildError("cltv_expiry must fit in a u32")
    return _htlc_tx(
        commitment_outpoint,
        amount_msat // 1000,
        htlc_timeout_fee_sat(feerate_per_kw, fmt),
        cltv_expiry,
        revocation_pubkey,
        local_delayed_pubkey,
        to_self_delay,
        fmt,
    )


def build_htlc_success_tx(
    commitment_outpoint: OutPoint,
    amount_msat: int,
    revocation_pubkey: bytes,
    local_delayed_pubkey: bytes,
    to_self_delay: int,
    feerate_per_kw: int,
    fmt: CommitmentFormat,
) -> Transaction:
    return _htlc_tx(
        commitment_outpoint,
        amount_msat // 1000,
        htlc_success_fee_sat(feerate_per_kw, fmt),
        0,
        revocation_pubkey,
        local_delayed_pubkey,
        to_self_delay,
        fmt,
    )


@dataclass(frozen=True, slots=True)
class HtlcTransaction:
    """An unsigned HTLC transaction and what signing it needs."""

    tx: Transaction
    kind: HtlcTxKind
    htlc: Htlc
    commitment_output_index: int
    input_amount_sat: int
    # The commitment's HTLC output script: the BIP143 scriptCode and the last witness item.
    input_witness_script: bytes
    output_witness_script: bytes
    commitment_format: CommitmentFormat


def htlc_transaction_for_output(
    commitment: CommitmentTransaction, output: CommitmentOutput
) -> HtlcTransaction:
    htlc = output.htlc
    if htlc is None or output.witness_script is None:
        raise TransactionBuildError(f"commitment output {output.index} is not an HTLC")
    keys, params = commitment.keys, commitment.params
    fmt = params.commitment_format
    outpoint = OutPoint(commitment.txid, output.index)
    if htlc.direction is HtlcDirection.OFFERED:
        kind = HtlcTxKind.TIMEOUT
        tx = build_htlc_timeout_tx(
            outpoint,
            htlc.amount_msat,
            htlc.cltv_expiry,
            keys.revocation_pubkey,
            keys.local_delayed_pubkey,
            params.to_self_delay,
            commitment.feerate_per_kw,
            fmt,
        )
    else:
        kind = HtlcTxKind.SUCCESS
        tx = build_htlc_success_tx(
            outpoint,
            htlc.amount_msat,
            keys.revocation_pubkey,
            keys.local_delayed_pubkey,
            params.to_self_delay,
            commitment.feerate_per_kw,
            fmt,
        )
    return HtlcTransaction(
        tx=tx,
        kind=kind,
        htlc=htlc,
        commitment_output_index=output.index,
        input_amount_sat=output.amount_sat,
        input_witness_script=output.witness_script,
        output_witness_script=htlc_output_script(
            keys.revocation_pubkey, params.to_self_delay, keys.local_delayed_pubkey
        ),
        commitment_format=fmt,
    )


def htlc_transactions(commitment: CommitmentTransaction) -> tuple[HtlcTransaction, ...]:
    """One HTLC transaction per untrimmed HTLC, in commitment output order (the order in which
    commitment_signed carries their signatures)."""
    return tuple(htlc_transaction_for_output(commitment, output) for output in commitment.htlc_outputs)
