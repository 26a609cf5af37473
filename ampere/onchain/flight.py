"""What a resolver handles events with (`ResolverContext`), and the claims it has in flight."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.onchain._codec import Reader, Writer
from ampere.onchain.claims import ClaimInput
from ampere.onchain.errors import ResolverDecodeError
from ampere.onchain.keys import OnchainSigner

__all__ = ["ClaimInFlight", "ResolverContext", "claim_total", "decode_outpoint"]


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
        inputs = tuple(decode_outpoint(reader.blob()) for _ in range(reader.u32()))
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


def claim_total(batch: Iterable[ClaimInput]) -> int:
    """What the claimed outputs hold together."""
    return sum(c.amount_sat for c in batch)


def decode_outpoint(raw: bytes) -> OutPoint:
    if len(raw) != 36:
        raise ResolverDecodeError("bad outpoint")
    return OutPoint(raw[:32], int.from_bytes(raw[32:], "little"))
