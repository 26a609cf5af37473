"""Micropayment channels inside the node: the `NodeService` that runs a `MicropaymentManager`.

Every manager call and the run of its outputs happen under one lock, in order: a `Persist` is written
(with the next key index) in one store transaction before `persisted(...)` releases what follows it, so
nothing signed leaves the node before the state behind it is durable. Messages travel as odd custom
types over the peer layer; blocks come from the node's chain follower; broadcasts go to the chain
backend, where "already in the mempool / chain" counts as success.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from dataclasses import dataclass, field

from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.tx import OutPoint, Transaction, TxOut
from ampere.chain.errors import BroadcastError, ChainError, RejectReason
from ampere.chain.interface import BlockInfo
from ampere.channel.micropayment.errors import CommandRejectedError, MicropaymentError
from ampere.channel.micropayment.events import (
    Broadcast,
    BuildFunding,
    ChannelClosed,
    ChannelOpened,
    PaymentAccepted,
    PaymentRejected,
    Persist,
    Send,
    TxKind,
    Watch,
)
from ampere.channel.micropayment.machine import PayerChannel
from ampere.channel.micropayment.manager import (
    ChannelInfo,
    Forget,
    ManagerOutput,
    MicropaymentManager,
    Refused,
    StoredChannel,
)
from ampere.channel.micropayment.messages import MICRO_MESSAGE_TYPES
from ampere.channel.micropayment.state import PayeeConfig
from ampere.errors import AmpereError
from ampere.node.errors import InvalidArgumentError, NodeError
from ampere.node.node import Node
from ampere.node.peer_manager import PeerConnected, PeerEvent
from ampere.node.peer_protocol import PeerError
from ampere.store.micro import MicroChannelRepository
from ampere.wire import Feature, Message, UnknownMessage

__all__ = [
    "MicroBroadcastError",
    "MicroCommandError",
    "MicroOpenResult",
    "MicroPeerError",
    "MicroService",
    "micro_service_of",
]

log = logging.getLogger(__name__)

_NAMESPACE = "micro_service"
_NEXT_KEY_INDEX = b"next_key_index"
_SCANNED_HEIGHT = b"scanned_height"
_PROPOSE_TYPE = 32769
# Blocks replayed below the last one seen, in case the last ones were reorganised away meanwhile.
REPLAY_MARGIN = 6
FEERATE_FLOOR_PER_KW = 253
FEE_TARGET_BLOCKS = 6
COMMAND_TIMEOUT = 60.0
# Channels one peer may have still negotiating with us: more is a peer trying to exhaust our keys.
MAX_OPENING_PER_PEER = 4
# Messages one peer may send per second on average (a burst of the same size is allowed).
PEER_MESSAGE_RATE = 2000.0


class MicroServiceError(NodeError):
    """A micropayment command failed; the message says why."""


class MicroPeerError(MicroServiceError):
    """The peer is not connected, or does not support micropayment channels (feature bit 257)."""


class MicroCommandError(MicroServiceError):
    """The channel refused the command in its current state, or the peer refused the payment."""


class MicroBroadcastError(MicroServiceError):
    """The chain refused a channel transaction; `reason` is the chain's reject reason."""

    def __init__(self, reason: RejectReason, detail: str, txid: bytes) -> None:
        super().__init__(f"the chain refused the transaction: {reason.value} ({detail})")
        self.reason = reason
        self.detail = detail
        self.txid = txid


@dataclass(frozen=True, slots=True)
class MicroOpenResult:
    channel_id: bytes
    funding_txid: bytes
    refund_height: int


@dataclass(frozen=True, slots=True)
class MicroPayResult:
    paid_msat: int
    sequence: int


@dataclass
class _Registered:
    """A micropayment channel as `node.channels` sees it (counted by getinfo.num_channels)."""

    service: MicroService
    channel_id: bytes
    peer_id: bytes

    @property
    def is_active(self) -> bool:
        info = self.service.info(self.channel_id)
        return info is not None and info.state in ("opening", "open")


class _Keys:
    def __init__(self, node: Node) -> None:
        self._node = node

    def funding_key(self, key_index: int) -> PrivateKey:
        return self._node.keys.micro_funding_key(key_index)


@dataclass
class _TokenBucket:
    tokens: float = PEER_MESSAGE_RATE
    stamp: float = field(default_factory=lambda: asyncio.get_running_loop().time())

    def take(self) -> bool:
        now = asyncio.get_running_loop().time()
        self.tokens = min(PEER_MESSAGE_RATE, self.tokens + (now - self.stamp) * PEER_MESSAGE_RATE)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class MicroService:
    """Add it to the node (`node.add_service`) before `node.start()`."""

    def __init__(self) -> None:
        self._node: Node | None = None
        self._manager: MicropaymentManager | None = None
        self._repo: MicroChannelRepository | None = None
        self._lock = asyncio.Lock()
        self._feerate_per_kw = FEERATE_FLOOR_PER_KW
        self._open_waiters: dict[bytes, asyncio.Future[bytes]] = {}
        self._pay_waiters: dict[bytes, list[tuple[int, asyncio.Future[MicroPayResult]]]] = {}
        self._broadcast_results: dict[bytes, BaseException | None] = {}
        self._funding_inputs: dict[bytes, list[OutPoint]] = {}
        self._buckets: dict[bytes, _TokenBucket] = {}

    # --- lifecycle ----------------------------------------------------------------------------------
    @property
    def node(self) -> Node:
        if self._node is None:
            raise MicroServiceError("the micropayment service is not running")
        return self._node

    @property
    def manager(self) -> MicropaymentManager:
        if self._manager is None:
            raise MicroServiceError("the micropayment service is not running")
        return self._manager

    async def start(self, node: Node) -> None:
        self._node = node
        self._repo = MicroChannelRepository(node.store)
        await self._refresh_feerate()
        raw = node.store.get(_NAMESPACE, _NEXT_KEY_INDEX)
        next_index = 0 if raw is None else int(raw.decode("ascii"))
        self._manager = MicropaymentManager(
            _Keys(node), self._payee_config, tip_height=node.follower.height, next_key_index=next_index
        )
        stored = self._repo.load_all()
        node.follower.add_listener(self)
        async with self._lock:
            outputs = self.manager.restore(stored, self._payee_config(b""))
            await self._run(outputs)
            await self._catch_up(node.follower.height)
        self._sync_registry()
        node.peers.subscribe(self._on_peer_event)
        node.peers.register_handler(sorted(MICRO_MESSAGE_TYPES), self._on_message)
        for peer in node.peers.list_peers():
            if peer.connected:
                await self._locked(lambda pid=peer.node_id: self.manager.peer_connected(pid))
        log.info("micropayment service started with %d channels", len(stored))

    async def stop(self) -> None:
        node = self._node
        if node is None:
            return
        node.peers.unregister_handler(sorted(MICRO_MESSAGE_TYPES), self._on_message)
        for future in list(self._open_waiters.values()):
            future.cancel()
        for waiters in self._pay_waiters.values():
            for _, waiter in waiters:
                waiter.cancel()
        self._node = None

    def _payee_config(self, _peer_id: bytes) -> PayeeConfig:
        node = self.node
        return PayeeConfig(node.network.chain_hash, node.wallet.new_script_pubkey())

    # --- queries ------------------------------------------------------------------------------------
    def list_channels(self) -> list[ChannelInfo]:
        return self.manager.list_channels()

    def info(self, channel_id: bytes) -> ChannelInfo | None:
        return next((c for c in self.manager.list_channels() if c.channel_id == channel_id), None)

    def _sync_registry(self) -> None:
        registry = self.node.channels
        for info in self.manager.list_channels():
            if registry.get(info.channel_id) is None:
                registry.register(_Registered(self, info.channel_id, info.peer_id))

    # --- running outputs ---------------------------------------------------------------------------
    async def _locked(self, call: object) -> list[ManagerOutput]:
        async with self._lock:
            assert callable(call)
            outputs: list[ManagerOutput] = call()
            await self._run(outputs)
            self._sync_registry()
            return outputs

    async def _run(self, outputs: list[ManagerOutput]) -> list[ManagerOutput]:
        """Run outputs in order (a Persist's follow-ups before the outputs behind it); returns all run."""
        queue = deque(outputs)
        done: list[ManagerOutput] = []
        while queue:
            output = queue.popleft()
            done.append(output)
            follow = await self._perform(output)
            queue.extendleft(reversed(follow))
        return done

    async def _perform(self, output: ManagerOutput) -> list[ManagerOutput]:
        action, channel_id, peer_id = output.action, output.channel_id, output.peer_id
        if isinstance(action, Persist):
            self._persist(StoredChannel(action.channel_id, peer_id, action.revision, action.blob))
            return self.manager.persisted(action.channel_id, action.revision)
        if isinstance(action, Send):
            data = action.data
            try:
                await self.node.peers.send(peer_id, UnknownMessage(int.from_bytes(data[:2], "big"), data[2:]))
            except PeerError as exc:
                log.info("micro %s: cannot send to %s: %s", channel_id.hex(), peer_id.hex(), exc)
        elif isinstance(action, Broadcast):
            await self._broadcast(channel_id, action)
        elif isinstance(action, BuildFunding):
            return self._build_funding(action)
        elif isinstance(action, Watch):
            pass  # every block's transactions reach the manager already
        elif isinstance(action, ChannelOpened):
            log.info("micro %s: open", channel_id.hex())
        elif isinstance(action, PaymentAccepted):
            self._answer_pays(channel_id, action.sequence, None, action.paid_msat)
        elif isinstance(action, PaymentRejected):
            error = MicroCommandError(f"the payee refused update {action.sequence}: {action.reason}")
            self._answer_pays(channel_id, action.sequence, error, action.paid_msat)
        elif isinstance(action, ChannelClosed):
            log.info("micro %s: %s by %s", channel_id.hex(), action.state, action.txid[::-1].hex())
        elif isinstance(action, Forget):
            self._forget(channel_id)
        elif isinstance(action, Refused):
            log.warning("micro %s: refused (%d): %s", channel_id.hex(), action.code, action.reason)
            waiter = self._open_waiters.pop(channel_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_exception(MicroCommandError(action.reason))
        return []

    def _persist(self, record: StoredChannel) -> None:
        assert self._repo is not None
        store = self.node.store
        with store.transaction():
            self._repo.put(record)
            store.put(_NAMESPACE, _NEXT_KEY_INDEX, str(self.manager.next_key_index).encode("ascii"))

    def _forget(self, channel_id: bytes) -> None:
        assert self._repo is not None
        self._repo.delete(channel_id)
        self.node.channels.unregister(channel_id)
        inputs = self._funding_inputs.pop(channel_id, None)
        if inputs:
            self.node.wallet.wallet.release(inputs)
        waiter = self._open_waiters.pop(channel_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_exception(MicroCommandError("the peer refused the channel"))

    async def _broadcast(self, channel_id: bytes, action: Broadcast) -> None:
        tx = action.tx
        error: BaseException | None = None
        try:
            await self.node.chain.backend.broadcast(tx)
            log.info("micro %s: broadcast %s %s", channel_id.hex(), action.kind.value, tx.txid[::-1].hex())
        except BroadcastError as exc:
            if exc.reason not in (RejectReason.ALREADY_IN_MEMPOOL, RejectReason.ALREADY_IN_CHAIN):
                log.warning("micro %s: broadcast of %s: %s", channel_id.hex(), action.kind.value, exc)
                error = MicroBroadcastError(exc.reason, exc.detail, tx.txid)
        except ChainError as exc:
            log.warning("micro %s: broadcast of %s: %s", channel_id.hex(), action.kind.value, exc)
            error = MicroServiceError(f"the chain backend failed: {exc}")
        self._broadcast_results[tx.txid] = error
        if action.kind is TxKind.FUNDING:
            self._funding_inputs.pop(channel_id, None)
            await self.node.wallet.transaction_seen(tx)
            waiter = self._open_waiters.pop(channel_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(tx.txid)

    def _build_funding(self, action: BuildFunding) -> list[ManagerOutput]:
        node = self.node
        try:
            tx = node.wallet.wallet.build_transaction(
                [TxOut(action.amount_sat, action.script_pubkey)], self._feerate, node.follower.height
            )
        except AmpereError as exc:
            log.warning("micro %s: cannot fund: %s", action.channel_id.hex(), exc)
            waiter = self._open_waiters.pop(action.channel_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
            return []
        self._funding_inputs[action.channel_id] = [txin.prevout for txin in tx.inputs]
        return self.manager.funding_built(action.channel_id, tx)

    def _answer_pays(self, channel_id: bytes, sequence: int, error: Exception | None, paid_msat: int) -> None:
        waiters = self._pay_waiters.get(channel_id, [])
        keep = []
        for wanted, future in waiters:
            if future.done():
                continue
            if error is None and wanted <= sequence:
                future.set_result(MicroPayResult(paid_msat, wanted))
            elif error is not None and wanted >= sequence:
                future.set_exception(error)
            else:
                keep.append((wanted, future))
        self._pay_waiters[channel_id] = keep

    # --- peers and chain ------------------------------------------------------------------------------
    async def _on_message(self, peer_id: bytes, message: Message | UnknownMessage) -> None:
        bucket = self._buckets.setdefault(peer_id, _TokenBucket())
        if not bucket.take():
            log.warning("micro: peer %s sends too fast; message %d dropped", peer_id.hex(), message.type)
            return
        if message.type == _PROPOSE_TYPE and self._opening_with(peer_id) >= MAX_OPENING_PER_PEER:
            log.warning("micro: peer %s has too many channels opening; proposal dropped", peer_id.hex())
            return
        try:
            await self._locked(lambda: self.manager.receive(peer_id, message))
        except MicropaymentError as exc:
            log.warning("micro: peer %s sent an unreadable message: %s", peer_id.hex(), exc)
            raise PeerError(str(exc)) from exc

    def _opening_with(self, peer_id: bytes) -> int:
        return sum(1 for c in self.manager.list_channels() if c.peer_id == peer_id and c.state == "opening")

    async def _on_peer_event(self, event: PeerEvent) -> None:
        if self._node is None:
            return
        if isinstance(event, PeerConnected):
            node_id = event.node_id
            await self._locked(lambda: self.manager.peer_connected(node_id))

    async def _catch_up(self, tip: int) -> None:
        """Replay the blocks connected while the service was not running (a repeat is harmless).
        A channel transaction that a reorg took out of the replayed window meanwhile is first
        treated as disconnected."""
        raw = self.node.store.get(_NAMESPACE, _SCANNED_HEIGHT)
        scanned = tip if raw is None else int(raw.decode("ascii"))
        if self.manager.list_channels():
            blocks: list[BlockInfo] = []
            for height in range(max(0, min(scanned, tip) - REPLAY_MARGIN), tip + 1):
                try:
                    blocks.append(await self.node.chain.backend.block_at(height))
                except ChainError as exc:
                    log.warning("micro: cannot read block %d: %s", height, exc)
                    break
            stale = _first_stale_height(self.manager.confirmed_transactions(), blocks, tip)
            if stale is not None:
                log.warning("micro: block %d of a channel transaction left the chain meanwhile", stale)
                await self._run(self.manager.block_disconnected(stale))
            for block in blocks:
                await self._run(self.manager.block_connected(block.height, block.transactions))
        await self._run(self.manager.block_connected(tip))
        self.node.store.put(_NAMESPACE, _SCANNED_HEIGHT, str(tip).encode("ascii"))

    async def block_connected(self, block: BlockInfo) -> None:
        if self._node is None:
            return
        await self._locked(lambda: self.manager.block_connected(block.height, block.transactions))
        self.node.store.put(_NAMESPACE, _SCANNED_HEIGHT, str(block.height).encode("ascii"))

    async def block_disconnected(self, height: int, block_hash: bytes) -> None:
        """A reorg: what the block confirmed is unconfirmed again. The channels recompute their depth,
        send their funding, settlement or refund again, and an open channel whose funding left the
        chain waits for its confirmation again, with its payments kept."""
        if self._node is None:
            return
        before = {info.channel_id: info.state for info in self.manager.list_channels()}
        await self._locked(lambda: self.manager.block_disconnected(height))
        for info in self.manager.list_channels():
            if before.get(info.channel_id) not in (None, info.state):
                log.warning(
                    "micro %s: block %d left the chain; %s again", info.channel_id.hex(), height, info.state
                )
        raw = self.node.store.get(_NAMESPACE, _SCANNED_HEIGHT)
        if raw is None or int(raw.decode("ascii")) >= height:
            self.node.store.put(_NAMESPACE, _SCANNED_HEIGHT, str(height - 1).encode("ascii"))

    async def transaction_seen(self, tx: Transaction) -> None:
        return None

    async def transaction_dropped(self, txid: bytes) -> None:
        return None

    @property
    def _feerate(self) -> int:
        return self._feerate_per_kw

    async def _refresh_feerate(self) -> None:
        """The chain's estimate, so channel transactions confirm on a real network too."""
        try:
            estimate = await self.node.chain.backend.feerate_per_kw(FEE_TARGET_BLOCKS)
        except ChainError as exc:
            log.warning("no fee estimate (%s); keeping %d sat/kw", exc, self._feerate_per_kw)
            return
        self._feerate_per_kw = max(FEERATE_FLOOR_PER_KW, estimate)

    # --- commands -------------------------------------------------------------------------------------
    async def open(self, peer_id: bytes, capacity_sat: int, refund_after_blocks: int) -> MicroOpenResult:
        node = self.node
        record = node.peers.peer(peer_id)
        if record is None or not record.connected or record.features is None:
            raise MicroPeerError(f"not connected to {peer_id.hex()}; connect first")
        if not record.features.has(Feature.MICROPAYMENT_CHANNEL):
            raise MicroPeerError(
                f"peer {peer_id.hex()} does not support micropayment channels (feature bit 257)"
            )
        if refund_after_blocks <= 0:
            raise InvalidArgumentError("refund_after", "must be a positive number of blocks")
        await self._refresh_feerate()
        channel_id = os.urandom(32)
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._open_waiters[channel_id] = waiter
        try:
            await self._locked(
                lambda: self.manager.open(
                    peer_id,
                    channel_id,
                    node.network.chain_hash,
                    capacity_sat,
                    refund_after_blocks,
                    node.wallet.new_script_pubkey(),
                    self._feerate,
                )
            )
        except CommandRejectedError as exc:
            self._open_waiters.pop(channel_id, None)
            raise MicroCommandError(exc.message) from None
        try:
            funding_txid = await asyncio.wait_for(waiter, COMMAND_TIMEOUT)
        except TimeoutError:
            raise MicroCommandError(
                f"the peer did not complete the open within {COMMAND_TIMEOUT:.0f} s"
            ) from None
        info = self.info(channel_id)
        refund_height = info.refund_height if info is not None and info.refund_height is not None else 0
        return MicroOpenResult(channel_id, funding_txid, refund_height)

    async def pay(self, channel_id: bytes, amount_msat: int) -> MicroPayResult:
        if amount_msat <= 0:
            raise InvalidArgumentError("amount_msat", "must be positive")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[MicroPayResult] = loop.create_future()
        async with self._lock:
            try:
                peer = self.node.peers.peer(self.manager.peer_of(channel_id))
                if peer is None or not peer.connected:
                    raise MicroPeerError("the payee is not connected; the payment would not be acknowledged")
                outputs = self.manager.pay(channel_id, amount_msat)
            except CommandRejectedError as exc:
                raise MicroCommandError(exc.message) from None
            sequence = self.manager.channel(channel_id).sequence
            self._pay_waiters.setdefault(channel_id, []).append((sequence, future))
            await self._run(outputs)
        try:
            return await asyncio.wait_for(future, COMMAND_TIMEOUT)
        except TimeoutError:
            raise MicroCommandError("the payee did not acknowledge the payment in time") from None

    async def settle(self, channel_id: bytes) -> bytes:
        return await self._close(channel_id, TxKind.SETTLEMENT)

    async def refund(self, channel_id: bytes) -> bytes:
        return await self._close(channel_id, TxKind.REFUND)

    async def _close(self, channel_id: bytes, kind: TxKind) -> bytes:
        async with self._lock:
            try:
                if kind is TxKind.REFUND:
                    outputs = self.manager.refund(channel_id)
                else:
                    outputs = self.manager.settle(channel_id)
            except CommandRejectedError as exc:
                if kind is TxKind.REFUND:
                    accepted = await self._probe_refund(channel_id)
                    if accepted is not None:
                        return accepted
                raise MicroCommandError(exc.message) from None
            outputs = await self._run(outputs)
        broadcasts = [o.action for o in outputs if isinstance(o.action, Broadcast) and o.action.kind is kind]
        if not broadcasts:
            raise MicroCommandError(f"the channel did not produce a {kind.value} transaction")
        txid = broadcasts[-1].tx.txid
        error = self._broadcast_results.pop(txid, None)
        if error is not None:
            raise error
        return txid

    async def _probe_refund(self, channel_id: bytes) -> bytes | None:
        """Before the locktime the channel refuses; ask the chain anyway so the caller reads its reason.
        A refused broadcast changes nothing. The chain accepts one block early (the refund is valid in
        the next block): then it is in the mempool, the channel takes it up at the next block, and its
        txid is the answer."""
        channel = self.manager.channel(channel_id)
        if not isinstance(channel, PayerChannel):
            return None
        try:
            tx = channel.signed_refund()
        except MicropaymentError:
            return None
        try:
            await self.node.chain.backend.broadcast(tx)
        except BroadcastError as exc:
            raise MicroBroadcastError(exc.reason, exc.detail, tx.txid) from None
        return tx.txid


def _first_stale_height(confirmed: list[tuple[int, bytes]], blocks: list[BlockInfo], tip: int) -> int | None:
    """The lowest height at which a channel counts a transaction confirmed that is not there now."""
    in_block = {block.height: {tx.txid for tx in block.transactions} for block in blocks}
    stale = [
        height
        for height, txid in confirmed
        if height > tip or (height in in_block and txid not in in_block[height])
    ]
    return min(stale, default=None)


def micro_service_of(node: Node) -> MicroService | None:
    return next((s for s in node.services if isinstance(s, MicroService)), None)
