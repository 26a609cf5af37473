"""What the node stores for each closed channel: its resolver and what the node itself needs besides.

One record per channel in the `onchain_resolutions` namespace, keyed by channel id and rewritten as a
whole (one store write, so one transaction) after every resolver event that changed it and before the
actions of that event are carried out. Records of resolved channels stay: `listclosed` reads them.

Besides the resolver's bytes a record keeps the channel's key index (the claims are signed with the
channel's keys), the funding outpoint (a different spend of it replaces the resolver), our outputs of a
mutual close (for `listclosed`), the HTLCs we had offered (a preimage the peer reveals on chain, or a
timeout we claim, is reported to the HTLC listeners by id) and which timeouts were reported already.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ampere.bitcoin.tx import OutPoint
from ampere.errors import AmpereError
from ampere.onchain import ChannelResolver, OnchainError
from ampere.store import Store
from ampere.store.repositories import CHANNEL_ID_LEN, ONCHAIN_RESOLUTIONS

__all__ = ["OfferedHtlc", "ResolutionRecord", "ResolutionRecordError", "ResolutionRepository"]

_VERSION = 1
_HEADER = struct.Struct(">BI33s36sHHH")  # version, key index, peer id, funding, counts
_OFFERED = struct.Struct(">Q32s")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class ResolutionRecordError(AmpereError):
    """A stored resolution record does not decode (written by other code, or damaged)."""


@dataclass(frozen=True, slots=True)
class OfferedHtlc:
    htlc_id: int
    payment_hash: bytes


@dataclass(slots=True)
class ResolutionRecord:
    channel_id: bytes
    key_index: int
    peer_id: bytes
    funding: OutPoint
    resolver: ChannelResolver
    mutual_vouts: tuple[int, ...] = ()
    offered: tuple[OfferedHtlc, ...] = ()
    failures_reported: set[int] = field(default_factory=set)

    def to_bytes(self) -> bytes:
        header = _HEADER.pack(
            _VERSION,
            self.key_index,
            self.peer_id,
            self.funding.serialize(),
            len(self.mutual_vouts),
            len(self.offered),
            len(self.failures_reported),
        )
        parts = [header]
        parts += [_U32.pack(vout) for vout in self.mutual_vouts]
        parts += [_OFFERED.pack(htlc.htlc_id, htlc.payment_hash) for htlc in self.offered]
        parts += [_U64.pack(htlc_id) for htlc_id in sorted(self.failures_reported)]
        parts.append(self.resolver.to_bytes())
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, channel_id: bytes, data: bytes) -> ResolutionRecord:
        try:
            version, key_index, peer_id, funding, vouts, offered, reported = _HEADER.unpack_from(data)
            if version != _VERSION:
                raise ResolutionRecordError(f"unknown resolution record version {version}")
            pos = _HEADER.size
            mutual = []
            for _ in range(vouts):
                mutual.append(_U32.unpack_from(data, pos)[0])
                pos += _U32.size
            htlcs = []
            for _ in range(offered):
                htlc_id, payment_hash = _OFFERED.unpack_from(data, pos)
                htlcs.append(OfferedHtlc(htlc_id, payment_hash))
                pos += _OFFERED.size
            failures = set()
            for _ in range(reported):
                failures.add(_U64.unpack_from(data, pos)[0])
                pos += _U64.size
            resolver = ChannelResolver.from_bytes(data[pos:])
        except (struct.error, OnchainError, ValueError) as exc:
            raise ResolutionRecordError(f"resolution record of {channel_id.hex()}: {exc}") from exc
        if resolver.channel_id != channel_id:
            raise ResolutionRecordError(f"resolution record of {channel_id.hex()} holds another channel")
        outpoint = OutPoint(funding[:32], int.from_bytes(funding[32:], "little"))
        return cls(channel_id, key_index, peer_id, outpoint, resolver, tuple(mutual), tuple(htlcs), failures)


class ResolutionRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def put(self, record: ResolutionRecord) -> None:
        self._store.put(ONCHAIN_RESOLUTIONS, record.channel_id, record.to_bytes())

    def get(self, channel_id: bytes) -> ResolutionRecord | None:
        data = self._store.get(ONCHAIN_RESOLUTIONS, channel_id)
        return None if data is None else ResolutionRecord.from_bytes(channel_id, data)

    def load_all(self) -> list[ResolutionRecord]:
        """Every record; one that does not decode raises (a closed channel must not be forgotten)."""
        return [
            ResolutionRecord.from_bytes(key, value)
            for key, value in self._store.items(ONCHAIN_RESOLUTIONS)
            if len(key) == CHANNEL_ID_LEN
        ]
