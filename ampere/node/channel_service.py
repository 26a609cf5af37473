"""Two-way BOLT 2 channels inside the node: the `NodeService` that runs them and `ChannelOperations`.

Peer messages are routed to channels by channel id (the temporary id while opening); each channel's
actions run through its `ManagedChannel` (persist before anything leaves, group commit across
channels); the chain reaches channels through `ChannelChainWatcher`. Commands (`openchannel`,
`closechannel`, `listchannels`) and the HTLC operations the payment service uses are the public face.
Opening and the RPC-facing errors live in `channel_open`; action effects in `channel_effects`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ampere.channel.signer import InMemorySigner
from ampere.channel.twoway import (
    AddHtlc,
    Channel,
    ChannelConfig,
    ChannelError,
    ChannelStatus,
    Disconnected,
    Error,
    FailHtlc,
    FailMalformedHtlc,
    FulfillHtlc,
    HtlcFulfilled,
    HtlcOffered,
    Phase,
    Reconnected,
    ShutdownCommand,
    SignCommitment,
    parse_message,
    pending_incoming_htlcs,
)
from ampere.channel.twoway.errors import ErrorResponse
from ampere.channel.twoway.ledger import View
from ampere.channel.twoway.messages import (
    CHANNEL_MESSAGE_NAMES,
    ChannelReestablish,
    ErrorMessage,
    OpenChannel,
    UpdateAddHtlc,
)
from ampere.channel.twoway.state import Connection, RemovalKind
from ampere.channel.twoway.summary import ChannelSummary, summarize
from ampere.channel.twoway.totals import view_totals
from ampere.node.channel_chain import ChannelChainWatcher
from ampere.node.channel_effects import ChannelEffects
from ampere.node.channel_fees import CommitmentFeeUpdater
from ampere.node.channel_managed import ManagedChannel
from ampere.node.channel_open import (
    ChannelCommandError,
    ChannelRecords,
    CloseResult,
    OpenResult,
    PeerNotConnectedError,
    incoming_open_refusal,
    parse_channel_ref,
    start_open,
)
from ampere.node.channel_persist import GroupCommitter
from ampere.node.errors import NotFoundError
from ampere.node.htlc_interface import (
    ChannelUnavailableError,
    HtlcListener,
    HtlcRefusedError,
    OfferedHtlcReport,
    UsableChannel,
)
from ampere.node.node import Node
from ampere.node.onchain_service import OnchainResolutionService
from ampere.node.peer_manager import PeerConnected, PeerDisconnected, PeerEvent
from ampere.node.peer_protocol import PeerError
from ampere.store.htlc_outcomes import HtlcOutcomeRepository
from ampere.store.repositories import ChannelStateRepository, PreimageRepository
from ampere.wire import Features, Message, UnknownMessage

__all__ = ["ChannelListing", "ChannelService", "CloseResult", "OpenResult"]

log = logging.getLogger(__name__)

_ZERO_ID = bytes(32)
CLOSE_TIMEOUT = 120.0
# Weight of a commitment without HTLCs and per HTLC output (BOLT 3), for the spendable estimate.
_BASE_WEIGHT, _ANCHOR_BASE_WEIGHT, _HTLC_WEIGHT, _ANCHORS_MSAT = 724, 1124, 172, 660_000
_FEE_SPIKE_MULTIPLIER = 2


@dataclass(frozen=True, slots=True)
class ChannelListing:
    summary: ChannelSummary
    peer_id: bytes


class ChannelService:
    """Start it with the node (`node.add_service`); it is also the node's `ChannelOperations`."""

    def __init__(self, config: ChannelConfig | None = None) -> None:
        self.config = config or ChannelConfig()
        self._node: Node | None = None
        self._channels: list[ManagedChannel] = []
        self._by_id: dict[bytes, ManagedChannel] = {}
        self._by_temporary: dict[tuple[bytes, bytes], ManagedChannel] = {}
        self._listeners: list[HtlcListener] = []
        self._committer: GroupCommitter | None = None
        self._watcher: ChannelChainWatcher | None = None
        self._effects: ChannelEffects | None = None
        self._records: ChannelRecords | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.onchain = OnchainResolutionService(self)
        self.fees = CommitmentFeeUpdater(self)  # the opener's update_fee
        self._change_listeners: list[Callable[[], None]] = []  # a channel got funded or ended (backups)

    # --- lifecycle --------------------------------------------------------------------------------------
    @property
    def node(self) -> Node:
        if self._node is None:
            raise ChannelUnavailableError("the channel service is not running")
        return self._node

    @property
    def committer(self) -> GroupCommitter:
        assert self._committer is not None
        return self._committer

    @property
    def watcher(self) -> ChannelChainWatcher:
        assert self._watcher is not None
        return self._watcher

    @property
    def records(self) -> ChannelRecords:
        assert self._records is not None
        return self._records

    async def start(self, node: Node) -> None:
        self._node = node
        if node.config.developer:  # keep our commitments signed for `dev-cheat`
            self.config = replace(self.config, keep_signed_commitments=True)
        self._committer = GroupCommitter(node.store)
        self._records = ChannelRecords(node.store)
        self._effects = ChannelEffects(self)
        self._watcher = ChannelChainWatcher(
            node.chain.backend, node.store, self.live_channels, self.after_event
        )
        feerate = await self._watcher.refresh_feerate()
        self._restore_all(feerate)
        self.onchain.load()
        self._watcher.hooks.append(self.onchain)
        self._watcher.hooks.append(self.fees)
        await self._watcher.start(node.follower.height)
        await self.onchain.resume()
        node.follower.add_listener(self._watcher)
        node.peers.subscribe(self._on_peer_event)
        node.peers.register_handler(sorted(CHANNEL_MESSAGE_NAMES), self._on_message)
        for peer in node.peers.list_peers():
            if peer.connected:
                self._peer_connected(peer.node_id)
        log.info("channel service started with %d channels", len(self._channels))

    async def stop(self) -> None:
        node = self._node
        if node is None:
            return
        node.peers.unregister_handler(sorted(CHANNEL_MESSAGE_NAMES), self._on_message)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for managed in self._channels:
            await managed.stop()
        await self.committer.close()
        self._node = None

    def _restore_all(self, feerate: int) -> None:
        node = self.node
        repo = ChannelStateRepository(node.store)
        for stored in repo.load_all():
            meta = self.records.get(stored.channel_id)
            if meta is None:
                log.error("channel %s has a state but no key record; not loaded", stored.channel_id.hex())
                continue
            key_index, peer_id = meta
            signer = InMemorySigner(node.keys.channel_keys_root(key_index).private_key)
            try:
                channel = Channel.restore(stored.blob, signer, self.config, feerate)
            except Exception:
                log.exception("channel %s cannot be restored", stored.channel_id.hex())
                continue
            managed = ManagedChannel(channel, peer_id, key_index, self.committer, self.effects, stored=True)
            if channel.state.status is ChannelStatus.CLOSED:
                repo.archive(stored.channel_id)
                continue
            self._channels.append(managed)
            self._by_id[stored.channel_id] = managed
            node.channels.register(managed)

    @property
    def effects(self) -> ChannelEffects:
        assert self._effects is not None
        return self._effects

    # --- channel bookkeeping -----------------------------------------------------------------------------
    def live_channels(self) -> list[ManagedChannel]:
        return [m for m in self._channels if not m.archived and m.halted is None]

    def new_channel(self, peer_id: bytes, remote_features: Features) -> ManagedChannel:
        """A channel before opening, with a fresh key index (stored before the keys are used)."""
        node = self.node
        key_index = self.records.allocate_key_index()
        signer = InMemorySigner(node.keys.channel_keys_root(key_index).private_key)
        channel = Channel.new(
            signer,
            chain_hash=node.network.chain_hash,
            local_features=node.peers.config.features,
            remote_features=remote_features,
            shutdown_script=node.wallet.new_script_pubkey(),
            config=self.config,
            feerate_estimate_per_kw=self.watcher.feerate_per_kw,
        )
        managed = ManagedChannel(channel, peer_id, key_index, self.committer, self.effects)
        self._channels.append(managed)
        return managed

    def after_event(self, managed: ManagedChannel) -> None:
        """Bookkeeping after the channel handled something: its ids, the registry, archiving."""
        state = managed.state
        if state.channel_id != _ZERO_ID and state.channel_id not in self._by_id and managed.is_funded:
            # Stored before the state's first write is queued to the writer: restorable from then on.
            self.records.put(state.channel_id, managed.key_index, managed.peer_id)
            self._by_id[state.channel_id] = managed
            self._by_temporary.pop((managed.peer_id, state.temporary_channel_id), None)
            self.node.channels.register(managed)
            self._changed()
        if state.phase is Phase.ABORTED:
            self.forget(managed)
        elif state.phase is Phase.CLOSED and not managed.archived:
            managed.archived = True
            managed.after_durable(lambda: self._archive(managed))

    def forget(self, managed: ManagedChannel) -> None:
        """Drop a channel that never got funded (or aborted) from the routing tables."""
        self._by_temporary.pop((managed.peer_id, managed.state.temporary_channel_id), None)
        if managed.state.channel_id in self._by_id and self._by_id[managed.state.channel_id] is managed:
            del self._by_id[managed.state.channel_id]
            self.node.channels.unregister(managed.state.channel_id)
        if managed in self._channels and not managed.stored:
            self._channels.remove(managed)

    async def _archive(self, managed: ManagedChannel) -> None:
        channel_id = managed.state.channel_id
        ChannelStateRepository(self.node.store).archive(channel_id)
        self.node.channels.unregister(channel_id)
        log.info("channel %s closed and archived", channel_id.hex())
        self._changed()

    def add_change_listener(self, callback: Callable[[], None]) -> None:
        """`callback()` runs whenever a channel's funding becomes known or a channel is archived."""
        self._change_listeners.append(callback)

    def _changed(self) -> None:
        for callback in self._change_listeners:
            callback()

    def funded_channels(self) -> list[ManagedChannel]:
        """Channels whose funding is known and that are not archived (what a static backup holds)."""
        return [m for m in self._channels if m.is_funded and not m.archived]

    def _route(self, peer_id: bytes, channel_id: bytes) -> ManagedChannel | None:
        managed = self._by_id.get(channel_id)
        if managed is not None and managed.peer_id == peer_id:
            return managed
        managed = self._by_temporary.get((peer_id, channel_id))
        if managed is not None:
            return managed
        # The funder learns the real id before funding_signed makes the channel funded.
        for candidate in self.channels_of(peer_id):
            if candidate.state.channel_id == channel_id and candidate.state.phase is not Phase.ABORTED:
                return candidate
        return None

    def find(self, reference: str) -> ManagedChannel:
        """A channel by its 64-hex channel_id or its short_channel_id `HxTxO`."""
        kind, value = parse_channel_ref(reference)
        for managed in self._channels:
            state = managed.state
            if (kind == "id" and state.channel_id == value) or (
                kind == "scid" and state.short_channel_id == value
            ):
                return managed
        raise NotFoundError(f"unknown channel {reference}")

    def channels_of(self, peer_id: bytes) -> list[ManagedChannel]:
        return [m for m in self._channels if m.peer_id == peer_id]

    # --- peers ---------------------------------------------------------------------------------------------
    async def _on_message(self, peer_id: bytes, message: Message | UnknownMessage) -> None:
        try:
            parsed = parse_message(message)
        except ChannelError as exc:
            log.warning("peer %s: %s", peer_id.hex(), exc.reason)
            if exc.response is ErrorResponse.DISCONNECT:
                raise PeerError(exc.reason) from exc
            return
        channel_id: bytes = parsed.channel_id
        if isinstance(parsed, OpenChannel):
            await self._incoming_open(peer_id, parsed)
            return
        managed = self._route(peer_id, channel_id)
        if managed is None:
            if isinstance(parsed, ErrorMessage) and channel_id == _ZERO_ID:
                for each in self.channels_of(peer_id):
                    each.handle(parsed.__class__(each.state.wire_channel_id, parsed.data))
                    self.after_event(each)
            elif 32 <= message.type <= 255:
                # BOLT 1: SHOULD reply `error` with the unknown channel_id (types 32-255).
                await self._send(peer_id, ErrorMessage(channel_id, b"unknown channel").to_wire())
            else:
                log.info(
                    "peer %s: %s for unknown channel %s ignored",
                    peer_id.hex(),
                    message.name,
                    channel_id.hex(),
                )
            return
        managed.handle(parsed)
        self.after_event(managed)
        if isinstance(parsed, UpdateAddHtlc):
            for listener in self._listeners:
                listener.htlc_arriving(
                    managed.state.channel_id, parsed.id, parsed.payment_hash, parsed.onion_routing_packet
                )
        if isinstance(parsed, ChannelReestablish):
            self.fees.maybe_update(managed)  # the estimate may have moved while the peer was away
        self.schedule_sign(managed)

    async def _incoming_open(self, peer_id: bytes, message: OpenChannel) -> None:
        if self._route(peer_id, message.temporary_channel_id) is not None:
            await self._refuse(peer_id, message.temporary_channel_id, "temporary_channel_id already in use")
            return
        refusal = incoming_open_refusal(self.channels_of(peer_id))
        if refusal is not None:
            await self._refuse(peer_id, message.temporary_channel_id, refusal)
            return
        record = self.node.peers.peer(peer_id)
        if record is None or record.features is None:
            return
        managed = self.new_channel(peer_id, record.features)
        self.index_temporary_for(managed, message.temporary_channel_id)
        managed.handle(message)
        self.after_event(managed)

    def index_temporary_for(self, managed: ManagedChannel, temporary_id: bytes) -> None:
        self._by_temporary[(managed.peer_id, temporary_id)] = managed

    async def _refuse(self, peer_id: bytes, temporary_id: bytes, reason: str) -> None:
        log.info("refusing a channel from %s: %s", peer_id.hex(), reason)
        await self._send(peer_id, ErrorMessage(temporary_id, reason.encode()).to_wire())

    async def _send(self, peer_id: bytes, message: Message) -> None:
        try:
            await self.node.peers.send(peer_id, message)
        except PeerError as exc:
            log.info("cannot send %s to %s: %s", message.name, peer_id.hex(), exc)

    async def _on_peer_event(self, event: PeerEvent) -> None:
        if self._node is None:
            return  # stopped: the peer layer closes its connections after the services
        if isinstance(event, PeerConnected):
            self._peer_connected(event.node_id)
        elif isinstance(event, PeerDisconnected):
            for managed in self.channels_of(event.node_id):
                if managed.state.phase not in (Phase.CLOSED, Phase.ABORTED):
                    managed.handle(Disconnected())
                    self.after_event(managed)

    def _peer_connected(self, peer_id: bytes) -> None:
        for managed in self.channels_of(peer_id):
            state = managed.state
            if state.phase in (Phase.CLOSED, Phase.ABORTED) or not managed.is_funded:
                continue
            if state.connection is Connection.LIVE:
                managed.handle(Disconnected())
            managed.handle(Reconnected())
            self.after_event(managed)

    # --- commands ------------------------------------------------------------------------------------------
    async def open_channel(
        self, node_id: bytes, funding_sat: int, push_msat: int = 0, *, anchors: bool = False
    ) -> OpenResult:
        return await start_open(self, node_id, funding_sat, push_msat, anchors)

    async def close_channel(self, reference: str) -> CloseResult:
        managed = self.find(reference)
        state = managed.state
        if state.closing_tx is not None and state.phase in (Phase.CLOSING, Phase.CLOSED):
            return CloseResult(state.channel_id, state.closing_tx.txid)
        if not self.node.peers.is_connected(managed.peer_id):
            raise PeerNotConnectedError(
                f"peer {managed.peer_id.hex()} is not connected; a mutual close needs it"
            )
        waiter = self.effects.close_waiter(managed)
        actions = managed.handle(ShutdownCommand())
        _raise_command_error(actions)
        self.after_event(managed)
        return await asyncio.wait_for(waiter, CLOSE_TIMEOUT)

    def list_channels(self) -> list[ChannelListing]:
        return [ChannelListing(summarize(m.state), m.peer_id) for m in self._channels if m.is_funded]

    # --- ChannelOperations ---------------------------------------------------------------------------------
    def usable_channels(self, peer_id: bytes | None = None) -> list[UsableChannel]:
        usable = []
        for managed in self._channels:
            if not self.is_usable(managed) or (peer_id is not None and managed.peer_id != peer_id):
                continue
            spendable, receivable = _spendable(managed)
            state = managed.state
            usable.append(
                UsableChannel(
                    state.channel_id, managed.peer_id, state.short_channel_id, spendable, receivable
                )
            )
        return usable

    def is_usable(self, managed: ManagedChannel) -> bool:
        """Normal, live, not halted, and its peer connected: the channel may take new updates."""
        state = managed.state
        return (
            state.phase is Phase.NORMAL
            and state.is_live
            and managed.halted is None
            and self._node is not None
            and self._node.peers.is_connected(managed.peer_id)
        )

    def _usable(self, channel_id: bytes) -> ManagedChannel:
        managed = self._by_id.get(channel_id)
        if managed is None or not self.is_usable(managed):
            raise ChannelUnavailableError(f"channel {channel_id.hex()} cannot carry a new HTLC now")
        return managed

    def _settling(self, channel_id: bytes) -> ManagedChannel:
        managed = self._by_id.get(channel_id)
        if managed is None or managed.halted is not None:
            raise ChannelUnavailableError(f"unknown channel {channel_id.hex()}")
        return managed

    async def add_htlc(
        self, channel_id: bytes, amount_msat: int, payment_hash: bytes, cltv_expiry: int, onion: bytes
    ) -> int:
        managed = self._usable(channel_id)
        actions = managed.handle(AddHtlc(amount_msat, payment_hash, cltv_expiry, onion))
        htlc_id = None
        for action in actions:
            if isinstance(action, HtlcOffered):
                htlc_id = action.htlc_id
            elif isinstance(action, Error):
                raise HtlcRefusedError(action.reason)
        if htlc_id is None:
            raise HtlcRefusedError("the channel did not take the HTLC")
        self.schedule_sign(managed)
        await _durable(managed)
        return htlc_id

    async def fulfill_htlc(self, channel_id: bytes, htlc_id: int, preimage: bytes) -> None:
        managed = self._settling(channel_id)
        # On a live channel the preimage goes into the state, stored (group-committed) before the
        # update_fulfill_htlc leaves, and a resolution on chain starts from that state. Otherwise, or if
        # the channel refuses it, the resolution finds it in the preimage store, written first.
        live = managed.state.phase in (Phase.NORMAL, Phase.SHUTDOWN)
        if not live:
            PreimageRepository(self.node.store).add(channel_id, preimage)
        try:
            await self._settle(managed, FulfillHtlc(htlc_id, preimage))
        except HtlcRefusedError:
            if live:
                PreimageRepository(self.node.store).add(channel_id, preimage)
            raise

    async def fail_htlc(self, channel_id: bytes, htlc_id: int, reason: bytes) -> None:
        await self._settle(self._settling(channel_id), FailHtlc(htlc_id, reason))

    async def fail_malformed_htlc(
        self, channel_id: bytes, htlc_id: int, sha256_of_onion: bytes, failure_code: int
    ) -> None:
        await self._settle(
            self._settling(channel_id), FailMalformedHtlc(htlc_id, sha256_of_onion, failure_code)
        )

    async def _settle(
        self, managed: ManagedChannel, command: FulfillHtlc | FailHtlc | FailMalformedHtlc
    ) -> None:
        actions = managed.handle(command)
        for action in actions:
            if isinstance(action, Error):
                raise HtlcRefusedError(action.reason)
        self.after_event(managed)
        self.schedule_sign(managed)
        await _durable(managed)

    def add_htlc_listener(self, listener: HtlcListener) -> None:
        """Also replays what a listener that starts after us must still hear (after a restart)."""
        self._listeners.append(listener)
        for managed in self._channels:
            self._spawn(self._replay(managed, listener))
        self._spawn(self.onchain.replay_outcomes(listener))

    def offered_htlcs(self, payment_hash: bytes) -> OfferedHtlcReport:
        """Our HTLCs for `payment_hash`: in the live channels' ledgers, in the outcome log and in the
        on-chain resolutions (see `HtlcListener` for the promises behind it)."""
        on_chain = self.onchain.offered_htlcs(payment_hash)
        in_flight, fulfilled, failed = on_chain.in_flight, on_chain.fulfilled, on_chain.failed
        for managed in self._channels:
            ledger = managed.state.ledger
            for entry in () if ledger is None else ledger.htlcs:
                if not entry.offered or entry.payment_hash != payment_hash:
                    continue
                removal = entry.removal
                if removal is not None and removal.kind is RemovalKind.FULFILL:
                    fulfilled = HtlcFulfilled(entry.htlc_id, entry.payment_hash, removal.payment_preimage)
                else:  # not removed, or a failure not yet irrevocable
                    in_flight = True
        for logged in HtlcOutcomeRepository(self.node.store).for_payment(payment_hash):
            if isinstance(logged.outcome, HtlcFulfilled):
                fulfilled = logged.outcome
            else:
                failed = logged.outcome
        return OfferedHtlcReport(in_flight, fulfilled, failed)

    @property
    def listeners(self) -> list[HtlcListener]:
        return list(self._listeners)

    async def _replay(self, managed: ManagedChannel, listener: HtlcListener) -> None:
        channel_id = managed.state.channel_id
        for htlc in pending_incoming_htlcs(managed.state):
            await listener.htlc_received(channel_id, htlc)
        ledger = managed.state.ledger
        if ledger is None:
            return
        for entry in ledger.htlcs:
            removal = entry.removal
            if entry.offered and removal is not None and removal.kind is RemovalKind.FULFILL:
                outcome = HtlcFulfilled(entry.htlc_id, entry.payment_hash, removal.payment_preimage)
                await listener.htlc_fulfilled(channel_id, outcome)

    def schedule_sign(self, managed: ManagedChannel) -> None:
        """One commitment_signed per channel per loop turn, covering every update made in that turn."""
        if managed.sign_scheduled:
            return
        managed.sign_scheduled = True
        asyncio.get_running_loop().call_soon(self._sign, managed)

    def _sign(self, managed: ManagedChannel) -> None:
        managed.sign_scheduled = False
        state = managed.state
        if state.ledger is None or not state.is_live or state.phase not in (Phase.NORMAL, Phase.SHUTDOWN):
            return
        managed.handle(SignCommitment())
        self.after_event(managed)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every channel's queued effects have run (tests and shutdown)."""
        for managed in list(self._channels):
            await managed.idle()


async def _durable(managed: ManagedChannel) -> None:
    barrier = managed.barrier
    if barrier is None:
        return
    try:
        await asyncio.shield(barrier)
    except Exception as exc:
        raise ChannelUnavailableError(f"channel state could not be stored: {exc}") from exc


def _raise_command_error(actions: Sequence[object]) -> None:
    for action in actions:
        if isinstance(action, Error):
            raise ChannelCommandError(action.reason)


def _spendable(managed: ManagedChannel) -> tuple[int, int]:
    """An estimate of what one more HTLC may carry each way (the channel has the final word)."""
    state = managed.state
    if state.local is None or state.remote is None or state.ledger is None:
        return 0, 0
    # The channel's running totals of our newest commitment: no scan of the HTLCs in flight.
    current = view_totals(state, state.ledger, View.LOCAL, managed.channel.config.fee_spike_multiplier)
    ours = current.local_msat - state.remote.channel_reserve_sat * 1000
    theirs = current.remote_msat - state.local.channel_reserve_sat * 1000
    feerate = state.ledger.feerate_per_kw
    anchors = state.channel_type.commitment_format.has_anchors
    weight = (_ANCHOR_BASE_WEIGHT if anchors else _BASE_WEIGHT) + _HTLC_WEIGHT * (current.htlc_count + 1)
    # The opener pays the fee, with room for it to double (BOLT 2's fee spike buffer), and the anchors.
    fee_msat = feerate * weight * _FEE_SPIKE_MULTIPLIER + (_ANCHORS_MSAT if anchors else 0)
    if state.is_opener:
        ours -= fee_msat
    else:
        theirs -= fee_msat
    return max(0, ours), max(0, theirs)


def channel_service_of(node: Node) -> ChannelService | None:
    """The node's two-way channel service, if one was added (what other services and the RPC build on)."""
    return next((s for s in node.services if isinstance(s, ChannelService)), None)
