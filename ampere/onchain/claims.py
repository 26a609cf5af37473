"""Claims: how one channel output is spent by us, and transactions that batch several.

A `ClaimInput` is everything needed to spend one output on one path: the outpoint and amount,
the witness shape, the script, the key (by family and tweak, see `keys`), the nSequence the path
requires and the nLockTime it needs. `build_claim_tx` puts any number of them into one
transaction paying one destination, with the fee computed over a weight that never undershoots
the signed transaction's; `sign_claim_tx` adds the witnesses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.script import p2pkh_script_code
from ampere.bitcoin.serialize import compact_size
from ampere.bitcoin.sighash import SigHash
from ampere.bitcoin.tx import OutPoint, Transaction, TxIn, TxOut
from ampere.channel.transactions.closing import dust_threshold_sat
from ampere.channel.transactions.weights import MAX_SIGNATURE_SIZE, input_weight, witness_weight
from ampere.onchain._codec import Reader, Writer
from ampere.onchain.errors import ClaimBuildError
from ampere.onchain.keys import KeyFamily, OnchainSigner

__all__ = [
    "MAX_STANDARD_TX_WEIGHT",
    "ClaimInput",
    "WitnessKind",
    "build_claim_tx",
    "claim_weight",
    "sign_claim_tx",
    "weight_of",
]

# Bitcoin Core's policy limit: a heavier transaction does not relay.
MAX_STANDARD_TX_WEIGHT = 400_000
# version + locktime + input and output counts (one byte each up to 252), marker and flag.
_OVERHEAD_WEIGHT = (4 + 4) * 4 + 2


class WitnessKind(Enum):
    """The witness stack of a path (the witness script, where there is one, comes last)."""

    REVOKED_TO_LOCAL = 1  # <revocation_sig> 1           (revoked to_local or HTLC-tx output)
    REVOKED_HTLC = 2  # <revocation_sig> <revocation_pubkey>
    DELAYED = 3  # <delayed_sig> <>                      (our to_local or HTLC-tx output, after CSV)
    TO_REMOTE_P2WPKH = 4  # <sig> <pubkey>
    TO_REMOTE_ANCHORS = 5  # <sig>                        (nSequence 1)
    HTLC_PREIMAGE = 6  # <htlc_sig> <preimage>            (an HTLC the peer offered, on its commitment)
    HTLC_TIMEOUT = 7  # <htlc_sig> <>                     (an HTLC we offered, on the peer's commitment)
    ANCHOR = 8  # <funding_sig>


@dataclass(frozen=True, slots=True)
class ClaimInput:
    """One output and how we spend it. `witness_script` is the P2WSH script (empty for P2WPKH);
    `pubkey` is the P2WPKH key or the revocation pubkey the REVOKED_HTLC witness reveals."""

    outpoint: OutPoint
    amount_sat: int
    kind: WitnessKind
    witness_script: bytes
    family: KeyFamily
    tweak: bytes
    sequence: int
    locktime: int = 0
    pubkey: bytes = b""
    payment_hash: bytes = b""

    @property
    def script_code(self) -> bytes:
        if self.kind is WitnessKind.TO_REMOTE_P2WPKH:
            return p2pkh_script_code(self.pubkey)
        return self.witness_script

    @property
    def witness_weight(self) -> int:
        sig = MAX_SIGNATURE_SIZE
        script = len(self.witness_script)
        kind = self.kind
        if kind is WitnessKind.TO_REMOTE_P2WPKH:
            return witness_weight(sig, len(self.pubkey))
        if kind in (WitnessKind.TO_REMOTE_ANCHORS, WitnessKind.ANCHOR):
            return witness_weight(sig, script)
        middle = {
            WitnessKind.REVOKED_TO_LOCAL: 1,
            WitnessKind.REVOKED_HTLC: 33,
            WitnessKind.DELAYED: 0,
            WitnessKind.HTLC_PREIMAGE: 32,
            WitnessKind.HTLC_TIMEOUT: 0,
        }[kind]
        return witness_weight(sig, middle, script)

    @property
    def weight(self) -> int:
        return input_weight(self.witness_weight)

    def witness(self, signature: bytes, preimage: bytes | None) -> tuple[bytes, ...]:
        sig = signature + bytes([SigHash.ALL])
        kind = self.kind
        if kind is WitnessKind.REVOKED_TO_LOCAL:
            return sig, b"\x01", self.witness_script
        if kind is WitnessKind.REVOKED_HTLC:
            return sig, self.pubkey, self.witness_script
        if kind in (WitnessKind.DELAYED, WitnessKind.HTLC_TIMEOUT):
            return sig, b"", self.witness_script
        if kind is WitnessKind.TO_REMOTE_P2WPKH:
            return sig, self.pubkey
        if kind in (WitnessKind.TO_REMOTE_ANCHORS, WitnessKind.ANCHOR):
            return sig, self.witness_script
        if preimage is None or sha256(preimage) != self.payment_hash:
            raise ClaimBuildError(f"claiming {self.outpoint} needs the preimage of its payment hash")
        return sig, preimage, self.witness_script

    @property
    def needs_preimage(self) -> bool:
        return self.kind is WitnessKind.HTLC_PREIMAGE

    def encode(self, writer: Writer) -> None:
        writer.blob(self.outpoint.serialize()).u64(self.amount_sat).u8(self.kind.value)
        writer.blob(self.witness_script).u8(self.family.value).blob(self.tweak)
        writer.u32(self.sequence).u32(self.locktime).blob(self.pubkey).blob(self.payment_hash)

    @classmethod
    def decode(cls, reader: Reader) -> ClaimInput:
        raw = reader.blob()
        outpoint = OutPoint(raw[:32], int.from_bytes(raw[32:], "little"))
        return cls(
            outpoint=outpoint,
            amount_sat=reader.u64(),
            kind=WitnessKind(reader.u8()),
            witness_script=reader.blob(),
            family=KeyFamily(reader.u8()),
            tweak=reader.blob(),
            sequence=reader.u32(),
            locktime=reader.u32(),
            pubkey=reader.blob(),
            payment_hash=reader.blob(),
        )


def _output_weight(script: bytes) -> int:
    return (8 + len(compact_size(len(script))) + len(script)) * 4


def claim_weight(inputs: Sequence[ClaimInput], destination_script: bytes) -> int:
    """Upper bound of the signed claim transaction's weight."""
    return weight_of(len(inputs), sum(c.weight for c in inputs), destination_script)


def weight_of(input_count: int, inputs_weight: int, destination_script: bytes) -> int:
    """`claim_weight` from the number of inputs and their total weight (for running totals)."""
    count_bytes = len(compact_size(input_count)) + 1  # input and output counts
    return _OVERHEAD_WEIGHT + count_bytes * 4 + inputs_weight + _output_weight(destination_script)


def build_claim_tx(
    inputs: Sequence[ClaimInput],
    destination_script: bytes,
    feerate_per_kw: int,
    *,
    min_fee_sat: int = 0,
) -> Transaction:
    """The unsigned claim of every input to `destination_script`, paying
    max(`feerate_per_kw` × weight, `min_fee_sat`); ClaimBuildError if what is left is dust."""
    if not inputs:
        raise ClaimBuildError("nothing to claim")
    if feerate_per_kw < 0:
        raise ClaimBuildError("feerate must not be negative")
    total = sum(c.amount_sat for c in inputs)
    fee = max(feerate_per_kw * claim_weight(inputs, destination_script) // 1000, min_fee_sat)
    value = total - fee
    if value < max(dust_threshold_sat(destination_script), 1):
        raise ClaimBuildError(f"claiming {total} sat would leave {value} sat after a fee of {fee} sat")
    return Transaction(
        version=2,
        inputs=tuple(TxIn(c.outpoint, b"", c.sequence) for c in inputs),
        outputs=(TxOut(value, destination_script),),
        locktime=max(c.locktime for c in inputs),
    )


def sign_claim_tx(
    tx: Transaction,
    inputs: Sequence[ClaimInput],
    signer: OnchainSigner,
    preimages: Mapping[bytes, bytes] | None = None,
) -> Transaction:
    """Sign every input (`inputs[i]` describes `tx.inputs[i]`) and attach its witness."""
    if len(inputs) != len(tx.inputs):
        raise ClaimBuildError("one claim per input is needed")
    known = preimages or {}
    signed = tx
    for index, claim in enumerate(inputs):
        if tx.inputs[index].prevout != claim.outpoint:
            raise ClaimBuildError(f"input {index} does not spend {claim.outpoint}")
        signature = signer.sign(tx, index, claim.script_code, claim.amount_sat, claim.family, claim.tweak)
        signed = signed.with_witness(index, claim.witness(signature, known.get(claim.payment_hash)))
    return signed
