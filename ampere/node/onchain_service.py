"""On-chain resolution inside the node: one `ChannelResolver` per closed channel, driven by the chain.

The channel service owns it. When our commitment is about to be broadcast (`local_commitment_broadcast`,
from the channel's effects) or a block spends a channel's funding output (`funding_spent`, from the
channel chain watcher), the spend is classified with the channel's state, our signer and the revocation
log, and a resolver is created. Each block the watcher processed (`block_processed`) is fed to every
unresolved resolver: the spends of the closing transaction and of the outpoints it watches, then the
block itself; disconnected blocks are fed as `BlockDisconnected`.

Money safety: a resolver's record is stored (one write, see `onchain_record`) after each event that
changed it and before its actions run, so a crash at any point replays at worst a broadcast. Broadcasts
are repeated every block until they confirm (the closing transaction too); what the chain refuses is
logged and asked for again by the resolver.

Outcomes: a preimage the peer reveals on chain fulfils our offered HTLC towards the HTLC listeners (the
payment service completes the payment); a timeout we claimed fails it once `ANTI_REORG_DEPTH` deep;
`Resolved` feeds `OnchainResolved` to the channel (it becomes `closed`). Records stay for `listclosed`.

At start the records are loaded before the watcher replays the blocks missed while the node was down; after
the replay, pending broadcasts are redone, and a channel left `force_closing` with its funding output still
unspent (a crash before our commitment went out) broadcasts it again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.chain.errors import ChainError
from ampere.chain.interface import BlockInfo
from ampere.channel.twoway import ForceClose, HtlcFulfilled, OnchainResolved, Phase
from ampere.channel.twoway.actions import ChannelClosed, CloseType
from ampere.channel.twoway.common import Context, signed_local_commitment
from ampere.channel.twoway.state import RemovalKind
from ampere.errors import AmpereError
from ampere.node.channel_managed import ManagedChannel
from ampere.node.channel_open import ChannelCommandError
from ampere.node.errors import NotFoundError
from ampere.node.htlc_interface import HtlcListener, OfferedHtlcReport
from ampere.node.onchain_actions import ClaimBroadcaster
from ampere.node.onchain_listing import listclosed_entry, onchain_timeout, timed_out_htlcs
from ampere.node.onchain_record import OfferedHtlc, ResolutionRecord, ResolutionRepository
from ampere.onchain import (
    BlockConnected,
    BlockDisconnected,
    BroadcastTx,
    BumpCommitment,
    ChannelResolver,
    FundAndBroadcast,
    InMemoryOnchainSigner,
    PreimageFound,
    PreimageLearned,
    Resolved,
    ResolverAction,
    ResolverContext,
    ResolverEvent,
    SpendConfirmed,
    classify,
)
from ampere.store.repositories import PreimageRepository
from ampere.store.revocation_log import RevocationLogRepository

if TYPE_CHECKING:
    from ampere.node.channel_service import ChannelService

__all__ = ["ForceCloseResult", "OnchainResolutionService"]

log = logging.getLogger(__name__)

FORCE_CLOSE_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class ForceCloseResult:
    channel_id: bytes
    closing_txid: bytes


class OnchainResolutionService:
    def __init__(self, channels: ChannelService) -> None:
        self._channels = channels
        self._records: dict[bytes, ResolutionRecord] = {}
        self._written: dict[bytes, bytes] = {}
        self._signers: dict[int, InMemoryOnchainSigner] = {}
        self._spent: list[tuple[ManagedChannel, Transaction]] = []
        self._funded: dict[tuple[bytes, OutPoint], Transaction] = {}
        self._lock = asyncio.Lock()
        self._repo: ResolutionRepository | None = None
        self._broadcaster: ClaimBroadcaster | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------
    def load(self) -> None:
        """Read every record (before the watcher replays the blocks missed while down)."""
        node = self._channels.node
        self._repo = ResolutionRepository(node.store)
        self._broadcaster = ClaimBroadcaster(node)
        for record in self._repo.load_all():
            self._records[record.channel_id] = record
            self._written[record.channel_id] = record.to_bytes()
        log.info("%d closed channels on record", len(self._records))

    async def resume(self) -> None:
        """After the replay: redo pending broadcasts, finish what a crash interrupted."""
        async with self._lock:
            for record in list(self._records.values()):
                if record.resolver.resolved:
                    self._close_channel(record.channel_id)
                else:
                    await self._rebroadcast(record)
            for managed in self._channels.live_channels():
                if managed.state.phase is Phase.FORCE_CLOSING and managed.channel_id not in self._records:
                    await self._recover_force_close(managed)

    @property
    def broadcaster(self) -> ClaimBroadcaster:
        assert self._broadcaster is not None, "load() first"
        return self._broadcaster

    # --- queries -----------------------------------------------------------------------------------------
    def list_closed(self) -> list[dict[str, Any]]:
        records = sorted(
            self._records.values(), key=lambda r: (r.resolver.closing_height is None, r.channel_id)
        )
        return [listclosed_entry(record) for record in records]

    def resolver(self, channel_id: bytes) -> ChannelResolver | None:
        """The resolver of a closed channel (for tests and diagnostics: do not mutate)."""
        record = self._records.get(channel_id)
        return None if record is None else record.resolver

    # --- commands ----------------------------------------------------------------------------------------
    async def force_close(self, reference: str) -> ForceCloseResult:
        """Broadcast our newest commitment (the peer gets an `error`); returns once it went out."""
        managed = self._channels.find(reference)
        state = managed.state
        record = self._records.get(state.channel_id)
        if record is not None:
            return ForceCloseResult(state.channel_id, record.resolver.closing_tx.txid)
        if not managed.is_funded or state.phase in (Phase.CLOSED, Phase.ABORTED):
            raise ChannelCommandError(f"channel {reference} is {state.phase.value}: nothing to force close")
        if state.phase is Phase.CLOSING:
            raise ChannelCommandError("a mutual close of this channel is already broadcast")
        if state.phase is Phase.FORCE_CLOSING:
            raise ChannelCommandError("this channel is already force closing")
        actions = managed.handle(ForceClose("force close requested by the node operator"))
        self._channels.after_event(managed)
        closed = [a for a in actions if isinstance(a, ChannelClosed)]
        if not closed or closed[0].closing_txid is None:
            raise ChannelCommandError("our channel state is stale: we must wait for the peer's commitment")
        await asyncio.wait_for(managed.idle(), FORCE_CLOSE_TIMEOUT)
        if managed.halted is not None:
            raise ChannelCommandError(f"the commitment was not broadcast: {managed.halted}")
        return ForceCloseResult(state.channel_id, closed[0].closing_txid)

    # --- hooks from the channel service ------------------------------------------------------------------
    async def local_commitment_broadcast(self, managed: ManagedChannel, tx: Transaction) -> None:
        """Our commitment is about to be broadcast: resolve from now on (CPFP can start at once)."""
        async with self._lock:
            record = self._records.get(managed.channel_id)
            if record is not None and record.resolver.closing_tx.txid == tx.txid:
                return
            await self._create(managed, tx, self._channels.node.follower.height)

    def funding_spent(self, managed: ManagedChannel, tx: Transaction) -> None:
        """The block being processed spends the funding output; handled in `block_processed`."""
        self._spent.append((managed, tx))

    async def block_processed(self, block: BlockInfo) -> None:
        async with self._lock:
            spent, self._spent = self._spent, []
            for managed, tx in spent:
                record = self._records.get(managed.channel_id)
                if record is not None and record.resolver.closing_tx.txid == tx.txid:
                    continue
                if record is not None:
                    log.warning(
                        "channel %s: %s spent the funding output instead of %s",
                        managed.channel_id.hex(),
                        tx.txid_hex,
                        record.resolver.closing_tx.txid_hex,
                    )
                await self._create(managed, tx, block.height - 1)
            for record in list(self._records.values()):
                if not record.resolver.resolved and block.height > record.resolver.tip:
                    await self._feed_block(record, block)

    async def block_disconnected(self, height: int) -> None:
        async with self._lock:
            for record in list(self._records.values()):
                if not record.resolver.resolved and record.resolver.tip >= height:
                    await self._apply(record, BlockDisconnected(height))

    # --- creating resolvers ------------------------------------------------------------------------------
    def _signer(self, key_index: int) -> InMemoryOnchainSigner:
        signer = self._signers.get(key_index)
        if signer is None:
            root = self._channels.node.keys.channel_keys_root(key_index).private_key
            signer = self._signers[key_index] = InMemoryOnchainSigner(root)
        return signer

    async def _create(self, managed: ManagedChannel, tx: Transaction, tip: int) -> None:
        node = self._channels.node
        state = managed.state
        channel_id = state.channel_id
        signer = self._signer(managed.key_index)
        revocations = RevocationLogRepository(node.store)
        try:
            classification = classify(
                state, tx, signer.per_commitment_point, lambda n: revocations.get(channel_id, n)
            )
            resolver, actions = ChannelResolver.create(
                state, classification, tx, node.wallet.new_script_pubkey(), tip=tip
            )
        except AmpereError as exc:
            log.critical("channel %s: cannot resolve %s: %s", channel_id.hex(), tx.txid_hex, exc)
            return
        funding = state.require_funding()
        ledger = state.ledger
        offered = (
            ()
            if ledger is None
            else tuple(
                OfferedHtlc(entry.htlc_id, entry.payment_hash)
                for entry in ledger.htlcs
                if entry.offered and (entry.removal is None or entry.removal.kind is not RemovalKind.FULFILL)
            )
        )
        mutual: tuple[int, ...] = ()
        if resolver.close_type is CloseType.MUTUAL:
            wallet = node.wallet.wallet
            mutual = tuple(
                vout
                for vout, out in enumerate(tx.outputs)
                if out.script_pubkey == state.local_shutdown_script or wallet.owns(out.script_pubkey)
            )
        record = ResolutionRecord(
            channel_id, managed.key_index, managed.peer_id, funding, resolver, mutual, offered
        )
        self._records[channel_id] = record
        log.info("channel %s: resolving %s (%s)", channel_id.hex(), tx.txid_hex, resolver.close_type.value)
        self._persist(record)
        await self._carry_out(record, actions)
        known = PreimageRepository(node.store).for_channel(channel_id)
        for preimage in known.values():
            if preimage not in resolver.preimages.values():
                await self._apply(record, PreimageLearned(preimage))

    async def _recover_force_close(self, managed: ManagedChannel) -> None:
        """A channel failed before a crash: our commitment may never have reached the chain."""
        state = managed.state
        if state.data_loss or state.funding_outpoint is None:
            return
        try:
            unspent = await self._channels.node.chain.backend.get_txout(state.funding_outpoint)
        except ChainError as exc:
            log.warning("channel %s: cannot check its funding output: %s", managed.channel_id.hex(), exc)
            return
        if unspent is None:
            return  # spent: the chain watcher reports the spend
        channel = managed.channel
        tx = signed_local_commitment(state, Context(channel.signer, channel.config))
        await self._create(managed, tx, self._channels.node.follower.height)
        record = self._records.get(managed.channel_id)
        if record is not None:
            await self.broadcaster.broadcast(record.channel_id, tx, "local commitment (again)")

    # --- feeding events ----------------------------------------------------------------------------------
    def _context(self, record: ResolutionRecord) -> ResolverContext:
        return ResolverContext(self._signer(record.key_index), self._channels.watcher.feerate_per_kw)

    async def _feed_block(self, record: ResolutionRecord, block: BlockInfo) -> None:
        resolver = record.resolver
        known = PreimageRepository(self._channels.node.store).for_channel(record.channel_id)
        for payment_hash, preimage in known.items():
            if payment_hash not in resolver.preimages:
                await self._apply(record, PreimageLearned(preimage))
        for tx in block.transactions:
            watched = {out.outpoint for out in resolver.outputs}
            if tx.txid == resolver.closing_tx.txid or any(txin.prevout in watched for txin in tx.inputs):
                await self._apply(record, SpendConfirmed(tx, block.height))
        await self._apply(record, BlockConnected(block.height))
        if not resolver.resolved:
            await self._rebroadcast(record, skip_fresh=True)

    async def _apply(self, record: ResolutionRecord, event: ResolverEvent) -> None:
        actions = record.resolver.handle(event, self._context(record))
        self._persist(record)
        await self._carry_out(record, actions)

    def _persist(self, record: ResolutionRecord) -> None:
        data = record.to_bytes()
        if self._written.get(record.channel_id) == data:
            return
        assert self._repo is not None
        self._repo.put(record)
        self._written[record.channel_id] = data

    async def _carry_out(self, record: ResolutionRecord, actions: list[ResolverAction]) -> None:
        channel_id = record.channel_id
        for action in actions:
            if isinstance(action, BroadcastTx):
                await self.broadcaster.broadcast(channel_id, action.tx, action.label)
            elif isinstance(action, FundAndBroadcast):
                signer, feerate = self._signer(record.key_index), self._channels.watcher.feerate_per_kw
                funded = await self.broadcaster.fund_and_broadcast(channel_id, action, signer, feerate)
                if funded is not None:
                    self._funded[(channel_id, action.outpoint)] = funded
            elif isinstance(action, BumpCommitment):
                await self.broadcaster.bump_commitment(channel_id, action, self._signer(record.key_index))
            elif isinstance(action, PreimageFound):
                await self._preimage_found(record, action)
            elif isinstance(action, Resolved):
                log.info("channel %s: every output resolved", channel_id.hex())
                self._close_channel(channel_id)
        await self._report_timeouts(record)

    async def _rebroadcast(self, record: ResolutionRecord, *, skip_fresh: bool = False) -> None:
        """What is still unconfirmed goes out again (a mempool may have dropped it); `skip_fresh`: not
        the claims made at this very height."""
        resolver = record.resolver
        if resolver.closing_height is None:
            await self.broadcaster.broadcast(record.channel_id, resolver.closing_tx, "closing transaction")
            return
        for claim in resolver.claims:
            if claim.confirmed_height is not None or (skip_fresh and claim.broadcast_height >= resolver.tip):
                continue
            tx = self._funded.get((record.channel_id, claim.inputs[0])) if claim.needs_funding else claim.tx
            if tx is not None:
                await self.broadcaster.broadcast(record.channel_id, tx, claim.label)

    # --- outcomes ----------------------------------------------------------------------------------------
    async def _preimage_found(self, record: ResolutionRecord, found: PreimageFound) -> None:
        for htlc in record.offered:
            if htlc.payment_hash != found.payment_hash:
                continue
            outcome = HtlcFulfilled(htlc.htlc_id, htlc.payment_hash, found.preimage)
            log.info("channel %s: HTLC %d fulfilled on chain", record.channel_id.hex(), htlc.htlc_id)
            for listener in self._channels.listeners:
                try:
                    await listener.htlc_fulfilled(record.channel_id, outcome)
                except Exception:
                    log.exception("HTLC listener failed on an on-chain fulfilment")

    async def _report_timeouts(self, record: ResolutionRecord) -> None:
        failed = timed_out_htlcs(record)
        if not failed:
            return
        record.failures_reported.update(outcome.htlc_id for outcome in failed)
        self._persist(record)
        for outcome in failed:
            log.info("channel %s: HTLC %d timed out on chain", record.channel_id.hex(), outcome.htlc_id)
            for listener in self._channels.listeners:
                try:
                    await listener.htlc_failed(record.channel_id, outcome)
                except Exception:
                    log.exception("HTLC listener failed on an on-chain timeout")

    def offered_htlcs(self, payment_hash: bytes) -> OfferedHtlcReport:
        """Our offered HTLCs of `payment_hash` in closed channels: in flight until the chain gave the
        preimage or the timeout is reported."""
        in_flight, fulfilled, failed = False, None, None
        for record in self._records.values():
            for htlc in record.offered:
                if htlc.payment_hash != payment_hash:
                    continue
                preimage = record.resolver.preimages.get(payment_hash)
                if preimage is not None:
                    fulfilled = HtlcFulfilled(htlc.htlc_id, payment_hash, preimage)
                elif htlc.htlc_id in record.failures_reported:
                    failed = onchain_timeout(htlc.htlc_id, payment_hash)
                else:
                    in_flight = True
        return OfferedHtlcReport(in_flight, fulfilled, failed)

    async def replay_outcomes(self, listener: HtlcListener) -> None:
        """What the chain decided for our offered HTLCs, for a listener that started after the replay."""
        for record in list(self._records.values()):
            for htlc in record.offered:
                preimage = record.resolver.preimages.get(htlc.payment_hash)
                try:
                    if preimage is not None:
                        await listener.htlc_fulfilled(
                            record.channel_id, HtlcFulfilled(htlc.htlc_id, htlc.payment_hash, preimage)
                        )
                    elif htlc.htlc_id in record.failures_reported:
                        await listener.htlc_failed(
                            record.channel_id, onchain_timeout(htlc.htlc_id, htlc.payment_hash)
                        )
                except Exception:
                    log.exception("HTLC listener failed on a replayed on-chain outcome")

    def _close_channel(self, channel_id: bytes) -> None:
        try:
            managed = self._channels.find(channel_id.hex())
        except NotFoundError:
            return  # archived before this start
        if managed.state.phase in (Phase.FORCE_CLOSING, Phase.CLOSING):
            managed.handle(OnchainResolved())
            self._channels.after_event(managed)
