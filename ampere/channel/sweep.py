"""Sweep transactions: one channel output, spent on one of its paths, to one destination.

Each path of a BOLT 3 output asks something of the spending input, and getting it wrong makes
the spend invalid rather than merely late: the delayed path needs nSequence = to_self_delay
(BIP68 enforces what OP_CHECKSEQUENCEVERIFY checks), the CSV-1 paths of anchor channels
nSequence 1, the peer's HTLC timeout nLockTime = cltv_expiry under a non-final nSequence. A
`SweepSpec` carries those together with the output and the worst-case weight of its witness,
so the fee is known before anything is signed: `feerate_per_kw * weight // 1000`, BOLT 3's
rounding, over a weight that never undershoots the signed transaction's.

Usage: pick the spec constructor for the path, `build_sweep_tx`, sign input 0 with
`sign_sweep`, attach the matching witness from `ampere.channel.transactions.signing`.
Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from ampere.bitcoin.script import p2pkh_script_code
from ampere.bitcoin.serialize import compact_size
from ampere.bitcoin.sighash import SigHash
from ampere.bitcoin.tx import SEQUENCE_RBF, OutPoint, Transaction, TxIn, TxOut
from ampere.channel.transactions import weights
from ampere.channel.transactions.closing import dust_threshold_sat
from ampere.channel.transactions.errors import TransactionBuildError
from ampere.channel.transactions.scripts import MAX_CLTV_EXPIRY, MAX_TO_SELF_DELAY, check_pubkey
from ampere.channel.transactions.signing import sign_input

__all__ = [
    "SweepSpec",
    "build_sweep_tx",
    "htlc_revocation_spec",
    "offered_htlc_preimage_spec",
    "received_htlc_timeout_spec",
    "sign_sweep",
    "sweep_fee_sat",
    "sweep_weight",
    "to_local_delayed_spec",
    "to_local_revocation_spec",
    "to_remote_anchors_spec",
    "to_remote_spec",
]

# version + locktime + one-byte input and output counts, all non-witness; then marker and flag.
_TX_OVERHEAD_WEIGHT = (4 + 4 + 1 + 1) * 4 + 2
# A path with no relative lock still signals replaceability: a sweep racing the other peer
# (a justice transaction above all) may need a fee bump.
_NO_RELATIVE_LOCK = SEQUENCE_RBF


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """How to spend one output: where it is, what the input must carry, how heavy its witness is.

    `script_code` is what BIP143 signs: the P2WSH witness script, or the P2PKH script code of a
    P2WPKH output.
    """

    outpoint: OutPoint
    amount_sat: int
    script_code: bytes
    witness_weight: int
    sequence: int
    locktime: int = 0

    def __post_init__(self) -> None:
        if self.amount_sat <= 0:
            raise TransactionBuildError("swept amount must be positive")
        if self.witness_weight <= 0:
            raise TransactionBuildError("witness weight must be positive")
        if not 0 <= self.sequence <= 0xFFFF_FFFF:
            raise TransactionBuildError("nSequence must fit in a u32")
        if not 0 <= self.locktime <= MAX_CLTV_EXPIRY:
            raise TransactionBuildError("nLockTime must fit in a u32")


def _check_delay(to_self_delay: int) -> None:
    # Zero would put no BIP68 lock on the input while the script still runs OP_CSV: harmless but
    # never what a channel negotiated, so it is refused as a caller's mistake.
    if not 1 <= to_self_delay <= MAX_TO_SELF_DELAY:
        raise TransactionBuildError("to_self_delay must be in 1..65535 blocks")


# --- one constructor per spending path -------------------------------------------------------------


def to_local_delayed_spec(
    outpoint: OutPoint, amount_sat: int, witness_script: bytes, to_self_delay: int
) -> SweepSpec:
    """The owner's own `to_local`, or the output of its HTLC-timeout/success transaction (same script)."""
    _check_delay(to_self_delay)
    return SweepSpec(
        outpoint, amount_sat, witness_script, weights.TO_LOCAL_DELAYED_WITNESS_WEIGHT, to_self_delay
    )


def to_local_revocation_spec(outpoint: OutPoint, amount_sat: int, witness_script: bytes) -> SweepSpec:
    """The penalty: the peer takes a revoked `to_local` (or HTLC transaction output) at once."""
    return SweepSpec(
        outpoint, amount_sat, witness_script, weights.TO_LOCAL_REVOCATION_WITNESS_WEIGHT, _NO_RELATIVE_LOCK
    )


def to_remote_spec(outpoint: OutPoint, amount_sat: int, remote_pubkey: bytes) -> SweepSpec:
    """`to_remote` of a static_remotekey commitment: a plain P2WPKH, spendable at once."""
    check_pubkey(remote_pubkey, "remote pubkey")
    return SweepSpec(
        outpoint,
        amount_sat,
        p2pkh_script_code(remote_pubkey),
        weights.TO_REMOTE_P2WPKH_WITNESS_WEIGHT,
        _NO_RELATIVE_LOCK,
    )


def to_remote_anchors_spec(outpoint: OutPoint, amount_sat: int, witness_script: bytes) -> SweepSpec:
    """`to_remote` of an anchor commitment: its script demands `1 OP_CSV`, hence nSequence 1."""
    return SweepSpec(outpoint, amount_sat, witness_script, weights.TO_REMOTE_ANCHORS_WITNESS_WEIGHT, 1)


def offered_htlc_preimage_spec(
    outpoint: OutPoint, amount_sat: int, witness_script: bytes, *, anchors: bool
) -> SweepSpec:
    """The commitment's non-owner claims an HTLC the owner offered, with the preimage."""
    return SweepSpec(
        outpoint,
        amount_sat,
        witness_script,
        weights.offered_htlc_preimage_witness_weight(anchors),
        1 if anchors else _NO_RELATIVE_LOCK,
    )


def received_htlc_timeout_spec(
    outpoint: OutPoint, amount_sat: int, witness_script: bytes, cltv_expiry: int, *, anchors: bool
) -> SweepSpec:
    """The non-owner takes back an HTLC the owner received, once `cltv_expiry` is reached.

    OP_CHECKLOCKTIMEVERIFY compares against nLockTime, which only counts under a non-final
    nSequence; both the anchors' 1 and the replaceable default are non-final.
    """
    if not 0 <= cltv_expiry <= MAX_CLTV_EXPIRY:
        raise TransactionBuildError("cltv_expiry must fit in a u32")
    return SweepSpec(
        outpoint,
        amount_sat,
        witness_script,
        weights.received_htlc_timeout_witness_weight(anchors),
        1 if anchors else _NO_RELATIVE_LOCK,
        cltv_expiry,
    )


def htlc_revocation_spec(
    outpoint: OutPoint, amount_sat: int, witness_script: bytes, *, offered: bool, anchors: bool
) -> SweepSpec:
    """The penalty on a revoked commitment's HTLC output (the revocation branch has no CSV)."""
    witness_weight = (
        weights.offered_htlc_revocation_witness_weight(anchors)
        if offered
        else weights.received_htlc_revocation_witness_weight(anchors)
    )
    return SweepSpec(outpoint, amount_sat, witness_script, witness_weight, _NO_RELATIVE_LOCK)


# --- the transaction -----------------------------------------------------------------------------------


def sweep_weight(spec: SweepSpec, destination_script: bytes) -> int:
    """Upper bound of the signed sweep's weight (73-byte signatures, as `weights` assumes)."""
    output_bytes = 8 + len(compact_size(len(destination_script))) + len(destination_script)
    return _TX_OVERHEAD_WEIGHT + weights.input_weight(spec.witness_weight) + output_bytes * 4


def sweep_fee_sat(spec: SweepSpec, destination_script: bytes, feerate_per_kw: int) -> int:
    if feerate_per_kw < 0:
        raise TransactionBuildError("feerate must not be negative")
    return feerate_per_kw * sweep_weight(spec, destination_script) // 1000


def build_sweep_tx(spec: SweepSpec, destination_script: bytes, feerate_per_kw: int) -> Transaction:
    """The unsigned sweep: `spec`'s output, less the fee, to `destination_script`.

    Raises TransactionBuildError when what is left would be dust: such a sweep would never relay,
    and the output is better left for a later, cheaper moment or a batch.
    """
    value = spec.amount_sat - sweep_fee_sat(spec, destination_script, feerate_per_kw)
    dust = dust_threshold_sat(destination_script)
    if value < max(dust, 1):
        raise TransactionBuildError(
            f"sweeping {spec.amount_sat} sat at {feerate_per_kw} sat/kw leaves {value} sat, "
            f"below the dust threshold ({dust})"
        )
    return Transaction(
        version=2,
        inputs=(TxIn(spec.outpoint, b"", spec.sequence),),
        outputs=(TxOut(value, destination_script),),
        locktime=spec.locktime,
    )


def sign_sweep(tx: Transaction, spec: SweepSpec, privkey: bytes, sighash: SigHash = SigHash.ALL) -> bytes:
    """DER signature (no sighash byte) of the sweep's input, for the witness builders of `signing`."""
    return sign_input(tx, 0, spec.script_code, spec.amount_sat, privkey, sighash)
