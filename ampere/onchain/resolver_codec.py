"""A resolver's bytes (`ChannelResolver.to_bytes`/`from_bytes`) and its `listclosed` entry."""

from __future__ import annotations

from typing import Any, TypeVar

from ampere.bitcoin.tx import Transaction
from ampere.channel.twoway.actions import CloseType
from ampere.errors import AmpereError
from ampere.onchain._codec import Reader, Writer
from ampere.onchain.errors import ResolverDecodeError
from ampere.onchain.flight import ClaimInFlight
from ampere.onchain.outputs import TrackedOutput
from ampere.onchain.resolver_state import ResolverState

__all__ = ["decode_resolver", "encode_resolver", "listclosed_entry"]

_VERSION = 2  # 2 added `revoked_local`

S = TypeVar("S", bound=ResolverState)


def encode_resolver(resolver: ResolverState) -> bytes:
    writer = Writer().u8(_VERSION).blob(resolver.channel_id).blob(resolver.close_type.value.encode())
    writer.blob(resolver.closing_tx.serialize()).optional_u64(resolver.closing_height)
    writer.blob(resolver.destination).u32(len(resolver.outputs))
    for out in resolver.outputs:
        out.encode(writer)
    writer.u32(len(resolver.claims))
    for claim in resolver.claims:
        claim.encode(writer)
    writer.u32(len(resolver.preimages))
    for payment_hash, preimage in sorted(resolver.preimages.items()):
        writer.blob(payment_hash).blob(preimage)
    writer.u64(resolver.tip).u8(int(resolver.resolved))
    writer.blob(resolver.revocable_script).blob(resolver.revocation_secret)
    writer.u32(resolver.justice_delay).u32(resolver.resolve_depth)
    writer.u64(resolver.closing_fee_sat).optional_u64(resolver.cpfp_height)
    writer.u8(int(resolver.revoked_local))
    return writer.to_bytes()


def decode_resolver(cls: type[S], data: bytes) -> S:
    reader = Reader(data)
    try:
        version = reader.u8()
        if version not in (1, _VERSION):
            raise ResolverDecodeError(f"unknown resolver state version {version}")
        channel_id = reader.blob()
        close_type = CloseType(reader.blob().decode())
        closing_tx = Transaction.parse(reader.blob())
        closing_height = reader.optional_u64()
        destination = reader.blob()
        outputs = [TrackedOutput.decode(reader) for _ in range(reader.u32())]
        claims = [ClaimInFlight.decode(reader) for _ in range(reader.u32())]
        preimages = {reader.blob(): reader.blob() for _ in range(reader.u32())}
        tip, resolved = reader.u64(), bool(reader.u8())
        revocable_script, revocation_secret = reader.blob(), reader.blob()
        justice_delay, resolve_depth = reader.u32(), reader.u32()
        closing_fee_sat, cpfp_height = reader.u64(), reader.optional_u64()
        revoked_local = bool(reader.u8()) if version >= 2 else False
        reader.finish()
    except ResolverDecodeError:
        raise
    except (ValueError, IndexError, AmpereError) as exc:
        raise ResolverDecodeError(f"resolver state does not decode: {exc}") from exc
    resolver = cls(
        channel_id,
        close_type,
        closing_tx,
        destination,
        outputs,
        tip=tip,
        preimages=preimages,
        revocable_script=revocable_script,
        revocation_secret=revocation_secret,
        justice_delay=justice_delay,
        resolve_depth=resolve_depth,
        closing_fee_sat=closing_fee_sat,
        revoked_local=revoked_local,
    )
    resolver.cpfp_height = cpfp_height
    resolver.closing_height = closing_height
    resolver.claims = claims
    resolver.resolved = resolved
    return resolver


def listclosed_entry(resolver: ResolverState) -> dict[str, Any]:
    """The entry of the `listclosed` contract (see docs/rpc.md)."""
    return {
        "channel_id": resolver.channel_id.hex(),
        "close_type": resolver.close_type.value,
        # A revoked commitment: the peer's (`breach`, which we punish) or ours (`local_force`, punishable).
        "revoked": resolver.revoked_local or resolver.close_type is CloseType.BREACH,
        "closing_txid": resolver.closing_tx.txid_hex,
        "outputs": [
            {
                "outpoint": str(out.outpoint),
                "amount_sat": out.amount_sat,
                "path": out.path.value,
                "claimable_at_height": out.claimable_at(),
                "status": out.status.value,
                "sweep_txid": None if out.sweep_txid is None else out.sweep_txid[::-1].hex(),
                "swept_by": None if out.sweep_txid is None else "us" if out.by_us else "peer",
            }
            for out in resolver.outputs
        ],
    }
