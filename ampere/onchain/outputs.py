"""The outputs a resolver tracks, and our pre-signed second-stage HTLC transactions.

Each `TrackedOutput` is one output we may claim (or must watch): where it is, how much, which
path (the names `listclosed` reports), when it becomes claimable and how far it got. Heights
follow the node's contract: `claimable_at_height` is the tip height at which a claim is
accepted, i.e. the claim is valid in block `claimable_at_height + 1`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.script import p2wsh_script
from ampere.bitcoin.sighash import SigHash
from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.channel.transactions.htlc import HtlcTxKind
from ampere.onchain._codec import Reader, Writer
from ampere.onchain.claims import ClaimInput, WitnessKind
from ampere.onchain.errors import ClaimBuildError
from ampere.onchain.keys import KeyFamily, OnchainSigner

__all__ = ["OutputPath", "OutputStatus", "SecondStage", "TrackedOutput"]


class OutputPath(Enum):
    TO_LOCAL = "to_local"
    TO_REMOTE = "to_remote"
    ANCHOR = "anchor"
    HTLC_TIMEOUT = "htlc_timeout"
    HTLC_SUCCESS = "htlc_success"
    JUSTICE = "justice"


class OutputStatus(Enum):
    PENDING = "pending"
    CLAIMABLE = "claimable"
    SWEPT = "swept"


def _outpoint_bytes(outpoint: OutPoint) -> bytes:
    return outpoint.serialize()


def _outpoint_from(raw: bytes) -> OutPoint:
    return OutPoint(raw[:32], int.from_bytes(raw[32:36], "little"))


@dataclass(frozen=True, slots=True)
class SecondStage:
    """Our HTLC-timeout/HTLC-success transaction for one HTLC output of our commitment: unsigned,
    with the peer's signature from commitment_signed. Its output is ours after `to_self_delay`."""

    tx: Transaction
    kind: HtlcTxKind
    payment_hash: bytes
    input_amount_sat: int
    input_witness_script: bytes
    output_witness_script: bytes
    remote_signature: bytes
    anchors: bool
    per_commitment_point: bytes
    to_self_delay: int

    @property
    def remote_sighash(self) -> SigHash:
        return SigHash.SINGLE_ANYONECANPAY if self.anchors else SigHash.ALL

    def finalize(
        self, signer: OnchainSigner, preimage: bytes | None, tx: Transaction | None = None
    ) -> Transaction:
        """Sign input 0 of `tx` (this transaction, or a fee-grown copy of it) and add its witness."""
        target = self.tx if tx is None else tx
        if self.kind is HtlcTxKind.SUCCESS:
            if preimage is None or sha256(preimage) != self.payment_hash:
                raise ClaimBuildError("HTLC-success needs the payment preimage")
            last = preimage
        else:
            last = b""
        ours = signer.sign(
            target,
            0,
            self.input_witness_script,
            self.input_amount_sat,
            KeyFamily.HTLC,
            self.per_commitment_point,
        )
        witness = (
            b"",
            self.remote_signature + bytes([self.remote_sighash]),
            ours + bytes([SigHash.ALL]),
            last,
            self.input_witness_script,
        )
        return target.with_witness(0, witness)

    def delayed_claim(self, htlc_tx: Transaction) -> ClaimInput | None:
        """The delayed claim of the confirmed HTLC transaction's output, found by its script."""
        script_pubkey = p2wsh_script(self.output_witness_script)
        for vout, txout in enumerate(htlc_tx.outputs):
            if txout.script_pubkey == script_pubkey:
                return ClaimInput(
                    outpoint=htlc_tx.outpoint(vout),
                    amount_sat=txout.value,
                    kind=WitnessKind.DELAYED,
                    witness_script=self.output_witness_script,
                    family=KeyFamily.DELAYED,
                    tweak=self.per_commitment_point,
                    sequence=self.to_self_delay,
                )
        return None

    def encode(self, writer: Writer) -> None:
        writer.blob(self.tx.serialize()).u8(0 if self.kind is HtlcTxKind.TIMEOUT else 1)
        writer.blob(self.payment_hash).u64(self.input_amount_sat).blob(self.input_witness_script)
        writer.blob(self.output_witness_script).blob(self.remote_signature).u8(int(self.anchors))
        writer.blob(self.per_commitment_point).u32(self.to_self_delay)

    @classmethod
    def decode(cls, reader: Reader) -> SecondStage:
        return cls(
            tx=Transaction.parse(reader.blob()),
            kind=HtlcTxKind.TIMEOUT if reader.u8() == 0 else HtlcTxKind.SUCCESS,
            payment_hash=reader.blob(),
            input_amount_sat=reader.u64(),
            input_witness_script=reader.blob(),
            output_witness_script=reader.blob(),
            remote_signature=reader.blob(),
            anchors=bool(reader.u8()),
            per_commitment_point=reader.blob(),
            to_self_delay=reader.u32(),
        )


@dataclass(frozen=True, slots=True)
class TrackedOutput:
    """One output of the closing transaction (or of a second-stage transaction).

    `csv` and `cltv` are the relative and absolute locks of our claim; `created_height` is the
    confirmation height of the transaction that created the output (None: unconfirmed);
    `parent` is the output whose spend created it (None: an output of the closing transaction).
    `by_us` tells whether the spend that resolved it is ours or the peer's.
    """

    outpoint: OutPoint
    amount_sat: int
    path: OutputPath
    status: OutputStatus = OutputStatus.PENDING
    claim: ClaimInput | None = None
    stage: SecondStage | None = None
    csv: int = 0
    cltv: int = 0
    payment_hash: bytes = b""
    created_height: int | None = None
    parent: OutPoint | None = None
    sweep_txid: bytes | None = None
    spent_height: int | None = None
    by_us: bool = False

    @property
    def needs_preimage(self) -> bool:
        if self.stage is not None:
            return self.stage.kind is HtlcTxKind.SUCCESS
        return self.claim is not None and self.claim.needs_preimage

    @property
    def actionable(self) -> bool:
        """Whether we ever spend it ourselves (anchors are only for fee bumping)."""
        return self.claim is not None or self.stage is not None

    def claimable_at(self) -> int | None:
        if self.created_height is None or not self.actionable:
            return None
        # A CSV of n blocks: valid in block created + n, accepted at tip created + n - 1.
        relative = self.created_height + max(self.csv, 1) - 1
        return max(relative, self.cltv)

    def reverted(self) -> TrackedOutput:
        """Its spend was reorganised out."""
        return replace(self, status=OutputStatus.PENDING, sweep_txid=None, spent_height=None, by_us=False)

    def encode(self, writer: Writer) -> None:
        writer.blob(_outpoint_bytes(self.outpoint)).u64(self.amount_sat).blob(self.path.value.encode())
        writer.blob(self.status.value.encode())
        if self.claim is None:
            writer.u8(0)
        else:
            writer.u8(1)
            self.claim.encode(writer)
        if self.stage is None:
            writer.u8(0)
        else:
            writer.u8(1)
            self.stage.encode(writer)
        writer.u32(self.csv).u32(self.cltv).blob(self.payment_hash).optional_u64(self.created_height)
        writer.optional_blob(None if self.parent is None else _outpoint_bytes(self.parent))
        writer.optional_blob(self.sweep_txid).optional_u64(self.spent_height).u8(int(self.by_us))

    @classmethod
    def decode(cls, reader: Reader) -> TrackedOutput:
        outpoint = _outpoint_from(reader.blob())
        amount = reader.u64()
        path = OutputPath(reader.blob().decode())
        status = OutputStatus(reader.blob().decode())
        claim = ClaimInput.decode(reader) if reader.u8() else None
        stage = SecondStage.decode(reader) if reader.u8() else None
        csv, cltv, payment_hash = reader.u32(), reader.u32(), reader.blob()
        created = reader.optional_u64()
        parent_raw = reader.optional_blob()
        return cls(
            outpoint=outpoint,
            amount_sat=amount,
            path=path,
            status=status,
            claim=claim,
            stage=stage,
            csv=csv,
            cltv=cltv,
            payment_hash=payment_hash,
            created_height=created,
            parent=None if parent_raw is None else _outpoint_from(parent_raw),
            sweep_txid=reader.optional_blob(),
            spent_height=reader.optional_u64(),
            by_us=bool(reader.u8()),
        )
