"""Developer mode (`ampere node --developer`): our old commitments kept fully signed, and `dev-cheat`.

With developer mode the channel service runs its channels with `keep_signed_commitments`, and each
`LocalCommitmentSigned` the core emits is stored here before the channel's next effect (for a new
commitment, the revoke_and_ack of the previous one) runs. `dev_cheat` broadcasts one of them: if it is
revoked, the peer's node must punish it, which is what tests and the demo need to show.

After cheating, our node does not fight the peer's justice transaction: the channel is told at once that
the funding output is spent by the cheat (it goes `force_closing` without putting a commitment of its own
on chain). The cheat is resolved as our own revoked commitment (`ampere.onchain.own_revoked`): listed as a
`local_force` close with `revoked` true, its outputs followed until the peer's justice transaction takes
them (`to_local` comes back to us after `to_self_delay` only if the peer never punishes).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ampere.bitcoin.tx import Transaction
from ampere.channel.twoway import FundingSpent, Phase
from ampere.channel.twoway.actions import LocalCommitmentSigned
from ampere.node.errors import NodeError, NotFoundError
from ampere.store import Store

if TYPE_CHECKING:
    from ampere.node.channel_service import ChannelService

__all__ = ["DEV_COMMITMENTS_NAMESPACE", "CheatError", "CheatResult", "KeptCommitmentRepository", "dev_cheat"]

log = logging.getLogger(__name__)

DEV_COMMITMENTS_NAMESPACE = "dev_commitments"
_NUMBER = struct.Struct(">Q")
_CHANNEL_ID_LEN = 32
_ENDED = (Phase.CLOSING, Phase.FORCE_CLOSING, Phase.CLOSED, Phase.ABORTED)


class CheatError(NodeError):
    """The channel is in no state to broadcast an old commitment."""


@dataclass(frozen=True, slots=True)
class CheatResult:
    channel_id: bytes
    commitment_number: int
    txid: bytes


class KeptCommitmentRepository:
    """Our fully signed commitments, keyed by channel id and commitment number."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def put(self, kept: LocalCommitmentSigned) -> None:
        key = _key(kept.channel_id, kept.commitment_number)
        self._store.put(DEV_COMMITMENTS_NAMESPACE, key, kept.transaction.serialize())

    def get(self, channel_id: bytes, number: int) -> Transaction | None:
        raw = self._store.get(DEV_COMMITMENTS_NAMESPACE, _key(channel_id, number))
        return None if raw is None else Transaction.parse(raw)

    def numbers(self, channel_id: bytes) -> list[int]:
        keys = self._store.list_keys(DEV_COMMITMENTS_NAMESPACE, channel_id)
        return sorted(_NUMBER.unpack(key[_CHANNEL_ID_LEN:])[0] for key in keys)


def _key(channel_id: bytes, number: int) -> bytes:
    if len(channel_id) != _CHANNEL_ID_LEN:
        raise ValueError("channel_id must be 32 bytes")
    return channel_id + _NUMBER.pack(number)


def _describe(numbers: list[int]) -> str:
    if not numbers:
        return "none (was the node running with --developer when the channel was updated?)"
    return f"{numbers[0]}..{numbers[-1]}" if len(numbers) > 1 else str(numbers[0])


async def dev_cheat(service: ChannelService, reference: str, number: int) -> CheatResult:
    """Broadcast our kept commitment `number` of the channel `reference`; returns once the chain took it."""
    managed = service.find(reference)
    state = managed.state
    channel_id = state.channel_id
    # Once a commitment is out (a cheat or a force close), another one would only race it.
    if not managed.is_funded or state.phase in _ENDED:
        raise CheatError(f"channel {reference} is {state.phase.value}: no commitment of it can be broadcast")
    repository = KeptCommitmentRepository(service.node.store)
    tx = repository.get(channel_id, number)
    if tx is None:
        kept = _describe(repository.numbers(channel_id))
        raise NotFoundError(f"channel {reference} has no kept commitment {number} (kept: {kept})")
    # A refusal (BroadcastError) reaches the caller with the chain's reason; the channel is untouched.
    await service.node.chain.backend.broadcast(tx)
    log.warning(
        "channel %s: developer broadcast of our commitment %d (%s)", channel_id.hex(), number, tx.txid_hex
    )
    # Resolved from now on like a commitment of ours going out (a restart rebroadcasts the cheat, never
    # another commitment), and the channel must not put one of its own on chain against it.
    await service.onchain.local_commitment_broadcast(managed, tx)
    managed.handle(FundingSpent(tx))
    service.after_event(managed)
    return CheatResult(channel_id, number, tx.txid)
