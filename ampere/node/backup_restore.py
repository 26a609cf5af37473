"""Channels restored from a static backup: ask each peer to force close, then sweep our balance.

A node restored from its seed has lost every channel state, so it must never broadcast a commitment
of its own (the peer could hold a revocation for it). Instead, for each restored channel it tells the
peer what BOLT 2 tells a node that has fallen behind to say: a `channel_reestablish` with
`next_commitment_number` 0 (the receiver "MUST immediately fail the channel and broadcast any relevant
latest commitment transaction"), followed by an `error` for the channel (BOLT 1: the receiver MUST fail
the channel). Both are sent every time the peer connects, until the funding output is spent.

When a transaction spending the funding output confirms, our balance on it is found by its script
alone: with static_remotekey a P2WPKH to our payment basepoint, with anchors the P2WSH of
`<payment_basepoint> OP_CHECKSIGVERIFY 1 OP_CSV`, spendable once the commitment has one confirmation.
The sweep to a wallet address is stored before it is broadcast and rebroadcast on every block until
it confirms; then the restored channel is closed. HTLCs in flight when the state was lost are not
recovered (a static backup cannot know them).

Restored channels live in their own store namespace and are listed by `listrestored`, not
`listchannels`: they have no channel state, only what the backup held.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

from ampere.bitcoin.script import p2wpkh_script, p2wsh_script
from ampere.bitcoin.tx import SEQUENCE_RBF, OutPoint, Transaction
from ampere.chain.errors import ChainError
from ampere.chain.interface import FEERATE_FLOOR_PER_KW, BlockInfo
from ampere.channel.transactions.scripts import to_remote_anchors_script
from ampere.channel.twoway.messages import ChannelReestablish, ErrorMessage
from ampere.channel.twoway.state import ChannelType
from ampere.node.backup_codec import BackupFormatError, ChannelBackup, decode_channel, encode_channel
from ampere.node.node import Node
from ampere.node.peer_manager import PeerConnected, PeerEvent
from ampere.node.peer_protocol import PeerError
from ampere.onchain.claims import ClaimInput, WitnessKind, build_claim_tx, sign_claim_tx
from ampere.onchain.errors import OnchainError
from ampere.onchain.keys import InMemoryOnchainSigner, KeyFamily

__all__ = ["RestoreState", "RestoredChannel", "RestoredChannels", "close_request_messages"]

log = logging.getLogger(__name__)

NAMESPACE = "channel_backup"
_RESTORED = b"restored:"
# How far back a close that happened before the restore is looked for.
MAX_LOOKBACK_BLOCKS = 2016
_FEE_TARGET_BLOCKS = 6
CLOSE_REQUEST_TEXT = b"we lost our channel state (restored from a static backup): please force close"


class RestoreState(Enum):
    WAITING_CLOSE = "waiting_close"  # asking the peer to force close; the funding output is unspent
    SWEEPING = "sweeping"  # the peer's commitment confirmed; our sweep is out
    CLOSED = "closed"  # our balance is back in the wallet (or there was none to take)


@dataclass(frozen=True, slots=True)
class RestoredChannel:
    backup: ChannelBackup
    state: RestoreState
    closing_txid: bytes | None = None
    closing_height: int | None = None
    sweep_tx: Transaction | None = None
    sweep_height: int | None = None
    swept_sat: int = 0  # the value of our output(s) on the closing transaction

    @property
    def channel_id(self) -> bytes:
        return self.backup.channel_id

    def encode(self) -> bytes:
        channel = encode_channel(self.backup)
        sweep = b"" if self.sweep_tx is None else self.sweep_tx.serialize()
        parts = [
            len(channel).to_bytes(4, "big"),
            channel,
            self.state.value.encode().ljust(16, b"\0"),
            self.closing_txid or bytes(32),
            (self.closing_height if self.closing_height is not None else -1).to_bytes(4, "big", signed=True),
            (self.sweep_height if self.sweep_height is not None else -1).to_bytes(4, "big", signed=True),
            self.swept_sat.to_bytes(8, "big"),
            sweep,
        ]
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> RestoredChannel:
        size = int.from_bytes(data[:4], "big")
        rest = data[4 + size :]
        if len(rest) < 16 + 32 + 4 + 4 + 8:
            raise BackupFormatError("stored restored channel is truncated")
        backup = decode_channel(data[4 : 4 + size])
        state = RestoreState(rest[:16].rstrip(b"\0").decode())
        closing_txid = rest[16:48]
        closing_height = int.from_bytes(rest[48:52], "big", signed=True)
        sweep_height = int.from_bytes(rest[52:56], "big", signed=True)
        swept = int.from_bytes(rest[56:64], "big")
        sweep = rest[64:]
        return cls(
            backup,
            state,
            None if closing_txid == bytes(32) else closing_txid,
            None if closing_height < 0 else closing_height,
            Transaction.parse(sweep) if sweep else None,
            None if sweep_height < 0 else sweep_height,
            swept,
        )

    def to_json(self) -> dict[str, object]:
        backup = self.backup
        return {
            "channel_id": backup.channel_id.hex(),
            "peer_id": backup.peer_id.hex(),
            "peer_addresses": list(backup.peer_addresses),
            "funding_outpoint": str(backup.funding_outpoint),
            "capacity_sat": backup.capacity_sat,
            "channel_type": backup.channel_type.value,
            "funder": backup.is_funder,
            "state": self.state.value,
            "closing_txid": None if self.closing_txid is None else self.closing_txid[::-1].hex(),
            "sweep_txid": None if self.sweep_tx is None else self.sweep_tx.txid_hex,
            "swept_sat": self.swept_sat,
        }


@dataclass(frozen=True, slots=True)
class _Registration:
    """What the node's channel registry sees of a restored channel: it keeps the peer, counts as no
    open channel."""

    channel_id: bytes
    peer_id: bytes
    is_active: bool = False


def close_request_messages(backup: ChannelBackup) -> tuple[ChannelReestablish, ErrorMessage]:
    """The two messages of a node that lost the channel's state (see the module docstring)."""
    reestablish = ChannelReestablish(
        channel_id=backup.channel_id,
        next_commitment_number=0,
        next_revocation_number=0,
        your_last_per_commitment_secret=bytes(32),
        # Any valid point will do (the receiver ignores it); this one is ours and public anyway.
        my_current_per_commitment_point=backup.local_payment_basepoint,
    )
    return reestablish, ErrorMessage(backup.channel_id, CLOSE_REQUEST_TEXT)


def to_remote_claims(backup: ChannelBackup, tx: Transaction) -> list[ClaimInput]:
    """Our outputs on a commitment of the peer, recognised by script (see the module docstring)."""
    payment = backup.local_payment_basepoint
    if backup.channel_type is ChannelType.ANCHORS:
        witness_script = to_remote_anchors_script(payment)
        script_pubkey = p2wsh_script(witness_script)
    else:
        witness_script, script_pubkey = b"", p2wpkh_script(payment)
    claims = []
    for vout, txout in enumerate(tx.outputs):
        if txout.script_pubkey != script_pubkey:
            continue
        if witness_script:
            claims.append(
                ClaimInput(
                    tx.outpoint(vout),
                    txout.value,
                    WitnessKind.TO_REMOTE_ANCHORS,
                    witness_script,
                    KeyFamily.PAYMENT,
                    b"",
                    1,
                )
            )
        else:
            claims.append(
                ClaimInput(
                    tx.outpoint(vout),
                    txout.value,
                    WitnessKind.TO_REMOTE_P2WPKH,
                    b"",
                    KeyFamily.PAYMENT,
                    b"",
                    SEQUENCE_RBF,
                    pubkey=payment,
                )
            )
    return claims


class RestoredChannels:
    """The restored channels of one node: their store, the close requests, the chain watch, the sweeps.

    A `ChainListener` on the node's follower; `on_peer_event` subscribes to the peer manager."""

    def __init__(self, node: Node, changed: Callable[[], None]) -> None:
        self._node = node
        self._changed = changed
        self._channels: dict[bytes, RestoredChannel] = {}
        self._lock = asyncio.Lock()
        self.running = False

    # --- store ------------------------------------------------------------------------------------------
    def load(self) -> None:
        for key, value in self._node.store.items(NAMESPACE, _RESTORED):
            try:
                restored = RestoredChannel.decode(value)
            except (BackupFormatError, ValueError) as exc:
                log.error("restored channel %s cannot be read: %s", key[len(_RESTORED) :].hex(), exc)
                continue
            self._channels[restored.channel_id] = restored
            if restored.state is not RestoreState.CLOSED:
                self._register(restored)

    def _put(self, restored: RestoredChannel) -> None:
        self._node.store.put(NAMESPACE, _RESTORED + restored.channel_id, restored.encode())
        self._channels[restored.channel_id] = restored
        if restored.state is RestoreState.CLOSED:
            self._node.channels.unregister(restored.channel_id)

    def _register(self, restored: RestoredChannel) -> None:
        if self._node.channels.get(restored.channel_id) is None:
            self._node.channels.register(_Registration(restored.channel_id, restored.backup.peer_id))

    def knows(self, channel_id: bytes) -> bool:
        return channel_id in self._channels

    def add(self, backup: ChannelBackup) -> RestoredChannel:
        restored = RestoredChannel(backup, RestoreState.WAITING_CLOSE)
        self._put(restored)
        self._register(restored)
        return restored

    def all(self) -> list[RestoredChannel]:
        return sorted(self._channels.values(), key=lambda r: r.channel_id)

    def unresolved(self) -> list[RestoredChannel]:
        return [r for r in self._channels.values() if r.state is not RestoreState.CLOSED]

    # --- asking the peer --------------------------------------------------------------------------------
    async def on_peer_event(self, event: PeerEvent) -> None:
        if self.running and isinstance(event, PeerConnected):
            await self.request_close(event.node_id)

    async def request_close(self, peer_id: bytes) -> None:
        for restored in list(self._channels.values()):
            if restored.backup.peer_id != peer_id or restored.state is not RestoreState.WAITING_CLOSE:
                continue
            log.info("asking %s to force close restored channel %s", peer_id.hex(), restored.channel_id.hex())
            for message in close_request_messages(restored.backup):
                try:
                    await self._node.peers.send(peer_id, message.to_wire())
                except PeerError as exc:
                    log.info("cannot ask %s to close yet: %s", peer_id.hex(), exc)
                    return

    # --- ChainListener ----------------------------------------------------------------------------------
    async def block_connected(self, block: BlockInfo) -> None:
        if not self.running:
            return
        async with self._lock:
            await self._rebroadcast()  # before the scan: a sweep made for this block just went out
            await self._scan_block(block)

    async def block_disconnected(self, height: int, block_hash: bytes) -> None:
        async with self._lock:
            for restored in list(self._channels.values()):
                if restored.sweep_height == height:
                    self._put(replace(restored, state=RestoreState.SWEEPING, sweep_height=None))
                elif restored.closing_height == height and restored.state is not RestoreState.WAITING_CLOSE:
                    log.warning("the close of restored channel %s left the chain", restored.channel_id.hex())
                    self._put(RestoredChannel(restored.backup, RestoreState.WAITING_CLOSE))
                    self._register(restored)

    async def transaction_seen(self, tx: Transaction) -> None:
        """Nothing to do before the close confirms (and with anchors we could not spend it anyway)."""

    async def transaction_dropped(self, txid: bytes) -> None:
        """See `transaction_seen`."""

    async def _scan_block(self, block: BlockInfo) -> None:
        by_funding = {
            r.backup.funding_outpoint: r
            for r in self._channels.values()
            if r.state is RestoreState.WAITING_CLOSE
        }
        by_sweep = {
            r.sweep_tx.txid: r
            for r in self._channels.values()
            if r.state is RestoreState.SWEEPING and r.sweep_tx is not None
        }
        if not by_funding and not by_sweep:
            return
        for tx in block.transactions:
            swept = by_sweep.get(tx.txid)
            if swept is not None:
                log.info("restored channel %s: sweep %s confirmed", swept.channel_id.hex(), tx.txid_hex)
                self._put(replace(swept, state=RestoreState.CLOSED, sweep_height=block.height))
                self._changed()
            for txin in tx.inputs:
                restored = by_funding.pop(txin.prevout, None)
                if restored is not None:
                    await self._closed_on_chain(restored, tx, block.height)

    async def _closed_on_chain(self, restored: RestoredChannel, tx: Transaction, height: int) -> None:
        backup = restored.backup
        claims = to_remote_claims(backup, tx)
        swept = sum(claim.amount_sat for claim in claims)
        log.info(
            "restored channel %s closed by %s at height %d; ours: %d sat",
            backup.channel_id.hex(),
            tx.txid_hex,
            height,
            swept,
        )
        closed = replace(restored, closing_txid=tx.txid, closing_height=height, swept_sat=swept)
        if not claims:
            self._put(replace(closed, state=RestoreState.CLOSED))
            self._changed()
            return
        signer = InMemoryOnchainSigner(self._node.keys.channel_keys_root(backup.key_index).private_key)
        feerate = await self._feerate()
        try:
            unsigned = build_claim_tx(claims, self._node.wallet.new_script_pubkey(), feerate)
            sweep = sign_claim_tx(unsigned, claims, signer)
        except OnchainError as exc:
            log.warning("restored channel %s: nothing worth sweeping: %s", backup.channel_id.hex(), exc)
            self._put(replace(closed, state=RestoreState.CLOSED))
            self._changed()
            return
        # Stored before it leaves: after a crash it is rebroadcast, never built twice to two addresses.
        self._put(replace(closed, state=RestoreState.SWEEPING, sweep_tx=sweep))
        self._changed()
        await self._broadcast(sweep)

    async def _feerate(self) -> int:
        try:
            return max(
                FEERATE_FLOOR_PER_KW, await self._node.chain.backend.feerate_per_kw(_FEE_TARGET_BLOCKS)
            )
        except ChainError as exc:
            log.warning("no fee estimate for the sweep (%s); using %d sat/kw", exc, FEERATE_FLOOR_PER_KW)
            return FEERATE_FLOOR_PER_KW

    async def _broadcast(self, sweep: Transaction) -> None:
        try:
            await self._node.chain.backend.broadcast(sweep)
            log.info("broadcast sweep %s", sweep.txid_hex)
        except ChainError as exc:
            log.info("sweep %s not accepted (yet): %s", sweep.txid_hex, exc)
            return
        await self._node.wallet.transaction_seen(sweep)

    async def _rebroadcast(self) -> None:
        for restored in list(self._channels.values()):
            sweep = restored.sweep_tx
            if (
                restored.state is RestoreState.SWEEPING
                and sweep is not None
                and restored.sweep_height is None
            ):
                await self._broadcast(sweep)

    # --- catching up --------------------------------------------------------------------------------------
    async def catch_up(self) -> None:
        """Find closes that confirmed while we were not watching (before the restore, or while down)."""
        chain = self._node.chain.backend
        async with self._lock:
            waiting = {
                r.backup.funding_outpoint: r
                for r in self._channels.values()
                if r.state is RestoreState.WAITING_CLOSE
            }
            spent: dict[OutPoint, RestoredChannel] = {}
            for outpoint, restored in waiting.items():
                try:
                    if await chain.get_txout(outpoint, include_mempool=False) is None:
                        spent[outpoint] = restored
                except ChainError as exc:
                    log.warning("cannot look up funding %s: %s", outpoint, exc)
            await self._rebroadcast()
            if spent:
                await self._look_back(spent)

    async def _look_back(self, spent: dict[OutPoint, RestoredChannel]) -> None:
        chain = self._node.chain.backend
        tip = await chain.tip_height()
        for height in range(tip, max(-1, tip - MAX_LOOKBACK_BLOCKS), -1):
            if not spent:
                return
            block = await chain.block_at(height)
            for tx in block.transactions:
                for txin in tx.inputs:
                    restored = spent.pop(txin.prevout, None)
                    if restored is not None:
                        await self._closed_on_chain(restored, tx, height)
        for restored in spent.values():
            log.warning(
                "restored channel %s: funding %s is spent or unconfirmed, and no close was found in the "
                "last %d blocks",
                restored.channel_id.hex(),
                restored.backup.funding_outpoint,
                MAX_LOOKBACK_BLOCKS,
            )
