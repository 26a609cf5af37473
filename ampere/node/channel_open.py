"""Opening a channel as its funder, the incoming-open policy, channel references, and the typed errors.

`start_open` checks what can be checked before anything is sent (the peer is connected, the wallet can
fund the amount), takes a fresh key index, feeds `OpenChannelCommand` and waits until the funding
transaction is broadcast (after funding_signed, with the state durable) or the open fails.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ampere.bitcoin.script import Op, build_script, p2wsh_script
from ampere.bitcoin.tx import TxOut
from ampere.channel.twoway import ChannelType, Error, OpenChannelCommand, Phase
from ampere.node.channel_managed import ManagedChannel
from ampere.node.errors import InvalidArgumentError, NodeError
from ampere.store import Store

if TYPE_CHECKING:
    from ampere.node.channel_service import ChannelService

__all__ = [
    "ChannelCommandError",
    "ChannelRecords",
    "CloseResult",
    "OpenChannelError",
    "OpenResult",
    "PeerNotConnectedError",
    "incoming_open_refusal",
    "parse_channel_ref",
    "start_open",
]

OPEN_TIMEOUT = 120.0
# Opens from one peer still negotiating at once; more is a peer trying to exhaust our keys.
MAX_PENDING_OPENS_PER_PEER = 4
_NAMESPACE = "channel_service"
_NEXT_KEY_INDEX = b"next_key_index"
_META = b"channel:"
# The funding output is a P2WSH: a stand-in of the same size lets the wallet price the transaction.
_FUNDING_STAND_IN = p2wsh_script(build_script(Op.OP_1))
_SCID = re.compile(r"(\d+)x(\d+)x(\d+)", re.ASCII)


class ChannelServiceError(NodeError):
    """A channel command failed; the message says why."""


class PeerNotConnectedError(ChannelServiceError):
    """The command needs the peer online."""


class OpenChannelError(ChannelServiceError):
    """The peer refused the channel, or the open failed before the funding was broadcast."""


class ChannelCommandError(ChannelServiceError):
    """The channel refused the command in its current state."""


@dataclass(frozen=True, slots=True)
class OpenResult:
    channel_id: bytes
    funding_txid: bytes


@dataclass(frozen=True, slots=True)
class CloseResult:
    channel_id: bytes
    closing_txid: bytes


class ChannelRecords:
    """What the node must know to restore a channel besides its state: key index and peer."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def allocate_key_index(self) -> int:
        raw = self._store.get(_NAMESPACE, _NEXT_KEY_INDEX)
        index = 0 if raw is None else int(raw.decode("ascii"))
        # Stored before the keys are used: a crash never hands the same keys to two channels.
        self._store.put(_NAMESPACE, _NEXT_KEY_INDEX, str(index + 1).encode("ascii"))
        return index

    def put(self, channel_id: bytes, key_index: int, peer_id: bytes) -> None:
        self._store.put(_NAMESPACE, _META + channel_id, key_index.to_bytes(4, "big") + peer_id)

    def get(self, channel_id: bytes) -> tuple[int, bytes] | None:
        raw = self._store.get(_NAMESPACE, _META + channel_id)
        if raw is None or len(raw) != 4 + 33:
            return None
        return int.from_bytes(raw[:4], "big"), raw[4:]


def parse_channel_ref(reference: str) -> tuple[str, object]:
    """("id", 32 bytes) for 64 hex digits, ("scid", int) for `HxTxO`."""
    text = reference.strip().lower()
    if len(text) == 64:
        try:
            return "id", bytes.fromhex(text)
        except ValueError:
            pass
    match = _SCID.fullmatch(text)
    if match is not None:
        block, tx, out = (int(part) for part in match.groups())
        if block < 1 << 24 and tx < 1 << 24 and out < 1 << 16:
            return "scid", (block << 40) | (tx << 16) | out
    raise InvalidArgumentError("channel", "expected a channel_id (64 hex digits) or a short_channel_id HxTxO")


def incoming_open_refusal(existing: list[ManagedChannel]) -> str | None:
    opening = sum(1 for m in existing if not m.is_funded and m.state.phase is not Phase.ABORTED)
    if opening >= MAX_PENDING_OPENS_PER_PEER:
        return f"too many channels being opened at once ({opening})"
    return None


async def start_open(
    service: ChannelService, node_id: bytes, funding_sat: int, push_msat: int, anchors: bool
) -> OpenResult:
    node = service.node
    record = node.peers.peer(node_id)
    if record is None or not record.connected or record.features is None:
        raise PeerNotConnectedError(f"not connected to {node_id.hex()}; connect first")
    if funding_sat <= 0:
        raise InvalidArgumentError("amount", "must be a positive number of satoshis")
    if not 0 <= push_msat <= funding_sat * 1000:
        raise InvalidArgumentError("push_msat", "must be between 0 and the channel's capacity")
    feerate = await service.watcher.refresh_feerate()
    # Fails with InsufficientFundsError now rather than after the peer has accepted.
    node.wallet.wallet.build_transaction(
        [TxOut(funding_sat, _FUNDING_STAND_IN)], feerate, node.follower.height, reserve=False
    )
    managed = service.new_channel(node_id, record.features)
    temporary_id = os.urandom(32)
    service.index_temporary_for(managed, temporary_id)
    waiter = service.effects.open_waiter(managed)
    channel_type = ChannelType.ANCHORS if anchors else ChannelType.STATIC_REMOTEKEY
    # The commitment starts where the update_fee policy would keep it (anchors: capped).
    commitment_feerate = service.fees.policy.target(feerate, anchors=anchors)
    actions = managed.handle(
        OpenChannelCommand(temporary_id, funding_sat, push_msat, commitment_feerate, channel_type)
    )
    for action in actions:
        if isinstance(action, Error):
            service.effects.drop_waiters(managed)
            service.forget(managed)
            raise OpenChannelError(action.reason)
    service.after_event(managed)
    try:
        return await asyncio.wait_for(waiter, OPEN_TIMEOUT)
    except TimeoutError:
        raise OpenChannelError(f"the peer did not complete the open within {OPEN_TIMEOUT:.0f} s") from None
