"""Carrying out a channel's actions once the state before them is durable (see `ManagedChannel`).

Messages go to the peer, transactions to the chain, HTLC outcomes to the payment listeners; the
funding transaction is built from wallet coins (reserved, so a concurrent withdraw cannot spend them).
Callers waiting for an open or a close are answered here, when the transaction they wait for is out.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, TypeVar

from ampere.bitcoin.tx import OutPoint, TxOut
from ampere.chain.errors import BroadcastError, ChainError
from ampere.channel.twoway import (
    Action,
    Broadcast,
    ChannelClosed,
    ChannelReady,
    CloseType,
    Error,
    ForceClose,
    FundingTransactionBuilt,
    HtlcFailed,
    HtlcFulfilled,
    HtlcReceived,
    OpenFailed,
    RequestFundingTransaction,
    SendMessage,
    WatchFunding,
)
from ampere.channel.twoway.actions import LocalCommitmentSigned
from ampere.channel.twoway.errors import ErrorResponse
from ampere.errors import AmpereError
from ampere.node.channel_managed import ManagedChannel
from ampere.node.channel_open import ChannelCommandError, CloseResult, OpenChannelError, OpenResult
from ampere.node.dev_commitments import KeptCommitmentRepository
from ampere.node.peer_protocol import PeerError

if TYPE_CHECKING:
    from ampere.node.channel_service import ChannelService

__all__ = ["ChannelEffects"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class ChannelEffects:
    def __init__(self, service: ChannelService) -> None:
        self._service = service
        self._open_waiters: dict[ManagedChannel, asyncio.Future[OpenResult]] = {}
        self._close_waiters: dict[ManagedChannel, asyncio.Future[CloseResult]] = {}
        self._funding_inputs: dict[ManagedChannel, list[OutPoint]] = {}

    # --- waiters ----------------------------------------------------------------------------------------
    def open_waiter(self, managed: ManagedChannel) -> asyncio.Future[OpenResult]:
        future: asyncio.Future[OpenResult] = asyncio.get_running_loop().create_future()
        self._open_waiters[managed] = future
        return future

    def close_waiter(self, managed: ManagedChannel) -> asyncio.Future[CloseResult]:
        future: asyncio.Future[CloseResult] = asyncio.get_running_loop().create_future()
        self._close_waiters[managed] = future
        return future

    def drop_waiters(self, managed: ManagedChannel) -> None:
        self._open_waiters.pop(managed, None)
        self._close_waiters.pop(managed, None)

    @staticmethod
    def _answer(waiters: dict[ManagedChannel, asyncio.Future[T]], managed: ManagedChannel, value: T) -> None:
        future = waiters.pop(managed, None)
        if future is not None and not future.done():
            future.set_result(value)

    @staticmethod
    def _refuse(
        waiters: dict[ManagedChannel, asyncio.Future[T]], managed: ManagedChannel, error: Exception
    ) -> None:
        future = waiters.pop(managed, None)
        if future is not None and not future.done():
            future.set_exception(error)

    # --- EffectHandler ----------------------------------------------------------------------------------
    async def perform(self, managed: ManagedChannel, action: Action) -> None:
        node = self._service.node
        if isinstance(action, SendMessage):
            try:
                await node.peers.send(managed.peer_id, action.wire)
            except PeerError as exc:
                # Reestablishment retransmits what the peer missed.
                log.info("channel %s: %s not sent: %s", managed.channel_id.hex(), action.wire.name, exc)
        elif isinstance(action, Broadcast):
            await self._broadcast(managed, action)
        elif isinstance(action, RequestFundingTransaction):
            self._build_funding(managed, action)
        elif isinstance(action, WatchFunding):
            log.info(
                "channel %s: watching funding %s (depth %d)",
                managed.channel_id.hex(),
                action.outpoint,
                action.minimum_depth,
            )
            await self._service.watcher.locate_funding(managed)
        elif isinstance(action, ChannelReady):
            log.info("channel %s is ready", action.channel_id.hex())
        elif isinstance(action, HtlcReceived | HtlcFulfilled | HtlcFailed):
            await self._notify(managed, action)
        elif isinstance(action, ChannelClosed):
            log.info(
                "channel %s closed (%s) by %s",
                action.channel_id.hex(),
                action.close_type.value,
                None if action.closing_txid is None else action.closing_txid[::-1].hex(),
            )
            if action.close_type is not CloseType.MUTUAL:
                self._refuse(
                    self._close_waiters,
                    managed,
                    ChannelCommandError(
                        f"the channel was closed by a {action.close_type.value} close instead"
                    ),
                )
        elif isinstance(action, OpenFailed):
            self._release_funding(managed)
            self._refuse(self._open_waiters, managed, OpenChannelError(action.reason))
            log.info("channel open with %s failed: %s", managed.peer_id.hex(), action.reason)
        elif isinstance(action, Error):
            await self._error(managed, action)
        elif isinstance(action, LocalCommitmentSigned):
            # Developer mode: stored before the channel's next effect (our revoke_and_ack) runs.
            KeptCommitmentRepository(node.store).put(action)

    async def _broadcast(self, managed: ManagedChannel, action: Broadcast) -> None:
        node = self._service.node
        tx = action.transaction
        if action.label == "local commitment":
            # Stored as a closed channel to resolve before the commitment can reach the chain.
            await self._service.onchain.local_commitment_broadcast(managed, tx)
        try:
            await node.chain.backend.broadcast(tx)
            log.info("channel %s: broadcast %s %s", managed.channel_id.hex(), action.label, tx.txid_hex)
        except (BroadcastError, ChainError) as exc:
            # Often the peer's copy got there first; the chain watcher tells what really confirms.
            log.warning(
                "channel %s: broadcast of %s %s: %s", managed.channel_id.hex(), action.label, tx.txid_hex, exc
            )
        if action.label == "funding":
            self._funding_inputs.pop(managed, None)
            await node.wallet.transaction_seen(tx)
            self._answer(self._open_waiters, managed, OpenResult(managed.state.channel_id, tx.txid))
        elif action.label == "mutual close":
            self._answer(self._close_waiters, managed, CloseResult(managed.state.channel_id, tx.txid))

    def _build_funding(self, managed: ManagedChannel, action: RequestFundingTransaction) -> None:
        node = self._service.node
        feerate = self._service.watcher.feerate_per_kw
        try:
            tx = node.wallet.wallet.build_transaction(
                [TxOut(action.amount_sat, action.script_pubkey)], feerate, node.follower.height
            )
        except AmpereError as exc:
            log.warning("channel %s: cannot fund: %s", managed.channel_id.hex(), exc)
            self._refuse(self._open_waiters, managed, exc)
            managed.handle(ForceClose(f"funding failed: {exc}"))
            self._service.after_event(managed)
            return
        self._funding_inputs[managed] = [txin.prevout for txin in tx.inputs]
        index = next(i for i, out in enumerate(tx.outputs) if out.script_pubkey == action.script_pubkey)
        managed.handle(FundingTransactionBuilt(tx, index))
        self._service.after_event(managed)

    def _release_funding(self, managed: ManagedChannel) -> None:
        inputs = self._funding_inputs.pop(managed, None)
        if inputs:
            self._service.node.wallet.wallet.release(inputs)

    async def _notify(
        self, managed: ManagedChannel, action: HtlcReceived | HtlcFulfilled | HtlcFailed
    ) -> None:
        channel_id = managed.state.channel_id
        for listener in self._service.listeners:
            try:
                if isinstance(action, HtlcReceived):
                    await listener.htlc_received(channel_id, action)
                elif isinstance(action, HtlcFulfilled):
                    await listener.htlc_fulfilled(channel_id, action)
                else:
                    await listener.htlc_failed(channel_id, action)
            except Exception:
                log.exception("HTLC listener failed on %s", type(action).__name__)

    async def _error(self, managed: ManagedChannel, action: Error) -> None:
        channel = managed.channel_id.hex()
        if managed in self._open_waiters and not managed.is_funded:
            self._release_funding(managed)
            self._refuse(self._open_waiters, managed, OpenChannelError(action.reason))
        if action.response is ErrorResponse.CLOSE:
            log.error("channel %s failed: %s", channel, action.reason)
            self._refuse(self._close_waiters, managed, ChannelCommandError(action.reason))
        elif action.response is ErrorResponse.DISCONNECT:
            log.warning("channel %s: %s; disconnecting the peer", channel, action.reason)
            await self._service.node.peers.disconnect(managed.peer_id, action.reason)
        elif action.response is ErrorResponse.WARN:
            log.warning("channel %s: %s", channel, action.reason)
        else:
            log.info("channel %s: %s", channel, action.reason)
