"""One running two-way channel: the sans-IO `Channel`, its peer, and the ordered queue of its effects.

`handle(event)` runs the state machine synchronously (so commands get their answer at once) and queues
the actions it returns. Each `PersistState` goes straight to the group committer; every later action of
the channel waits for the newest write queued before it. One task per channel performs the effects in
order, so a channel's messages leave in the order the state machine produced them, and only once the
state that commits us to them is durable. A write that fails halts the channel: nothing more leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ampere.bitcoin.tx import Transaction
from ampere.channel.twoway import (
    Action,
    Channel,
    ChannelState,
    ChannelStatus,
    Event,
    PersistState,
    Phase,
)
from ampere.channel.twoway.actions import CommitmentRevoked, HtlcFailed, HtlcFulfilled
from ampere.channel.twoway.state import PRE_FUNDING_PHASES
from ampere.node.channel_persist import GroupCommitter
from ampere.wire import Message, UnknownMessage

__all__ = ["EffectHandler", "ManagedChannel"]

log = logging.getLogger(__name__)

_ZERO_ID = bytes(32)


class EffectHandler(Protocol):
    async def perform(self, channel: ManagedChannel, action: Action) -> None: ...


@dataclass(frozen=True, slots=True)
class _Internal:
    """Work of the node's own (archiving, answering a caller) to run in the channel's order."""

    run: Callable[[], Awaitable[None]]


class ManagedChannel:
    """A channel as the node runs it; registered in `node.channels` (see `RegisteredChannel`)."""

    def __init__(
        self,
        channel: Channel,
        peer_id: bytes,
        key_index: int,
        committer: GroupCommitter,
        effects: EffectHandler,
        *,
        stored: bool = False,
    ) -> None:
        self.channel = channel
        self._peer_id = peer_id
        self.key_index = key_index
        self._committer = committer
        self._effects = effects
        self._stored = stored
        self._barrier: asyncio.Future[None] | None = None
        self._queue: asyncio.Queue[tuple[asyncio.Future[None] | None, Action | _Internal]] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None
        self.halted: str | None = None
        self.sign_scheduled = False
        # Chain bookkeeping: where the funding transaction confirmed.
        self.funding_height: int | None = None
        self.funding_tx_index: int | None = None
        self.funding_transaction: Transaction | None = None
        self.archived = False

    # --- RegisteredChannel ----------------------------------------------------------------------------
    @property
    def channel_id(self) -> bytes:
        state = self.channel.state
        return state.channel_id if state.channel_id != _ZERO_ID else state.temporary_channel_id

    @property
    def peer_id(self) -> bytes:
        return self._peer_id

    @property
    def is_active(self) -> bool:
        return self.channel.state.status is not ChannelStatus.CLOSED

    @property
    def state(self) -> ChannelState:
        return self.channel.state

    @property
    def is_funded(self) -> bool:
        return (
            self.channel.state.phase not in PRE_FUNDING_PHASES and self.channel.state.channel_id != _ZERO_ID
        )

    @property
    def stored(self) -> bool:
        """Whether any state of this channel was ever handed to the store."""
        return self._stored

    # --- driving ---------------------------------------------------------------------------------------
    def handle(self, event: Event) -> list[Action]:
        if self.halted is not None:
            return []
        return self._enqueue(self.channel.handle(event))

    def receive(self, message: Message | UnknownMessage) -> list[Action]:
        if self.halted is not None:
            return []
        return self._enqueue(self.channel.receive(message))

    def after_durable(self, effect: Callable[[], Awaitable[None]]) -> None:
        """Run `effect` in this channel's order, once every state queued so far is durable."""
        self._put(_Internal(effect))

    @property
    def barrier(self) -> asyncio.Future[None] | None:
        """Completes when the newest state queued so far is durable."""
        return self._barrier

    def _enqueue(self, actions: list[Action]) -> list[Action]:
        # Each PersistState goes to the store with what belongs in its transaction: the revocation
        # records and the outcomes of our offered HTLCs that follow it. Actions run after it is durable.
        persist: PersistState | None = None
        records: list[CommitmentRevoked] = []
        outcomes: list[HtlcFulfilled | HtlcFailed] = []
        queued: list[Action] = []
        for action in actions:
            if isinstance(action, PersistState):
                self._submit(persist, records, outcomes, queued)
                persist, records, outcomes, queued = action, [], [], []
            elif isinstance(action, CommitmentRevoked):
                records.append(action)
            else:
                if isinstance(action, HtlcFulfilled | HtlcFailed):
                    outcomes.append(action)
                queued.append(action)
        self._submit(persist, records, outcomes, queued)
        return actions

    def _submit(
        self,
        persist: PersistState | None,
        records: list[CommitmentRevoked],
        outcomes: list[HtlcFulfilled | HtlcFailed],
        queued: list[Action],
    ) -> None:
        if persist is not None and self._storable(persist):
            self._stored = True
            self._barrier = self._committer.submit(
                persist.state.channel_id, persist, tuple(records), tuple(outcomes)
            )
        for action in queued:
            self._put(action)

    def _storable(self, persist: PersistState) -> bool:
        state = persist.state
        # A channel still negotiating is forgotten at a restart anyway (nothing of it is on chain), and has
        # no channel id to be stored under yet.
        if state.phase in PRE_FUNDING_PHASES or state.channel_id == _ZERO_ID:
            return False
        return not (state.phase is Phase.ABORTED and not self._stored)

    def _put(self, item: Action | _Internal) -> None:
        self._queue.put_nowait((self._barrier, item))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name=f"channel-{self.channel_id.hex()[:16]}")

    async def _run(self) -> None:
        while not self._queue.empty():
            barrier, item = self._queue.get_nowait()
            if self.halted is not None:
                continue
            if barrier is not None:
                try:
                    await barrier
                except Exception as exc:
                    self.halt(f"state could not be stored: {exc}")
                    continue
            try:
                if isinstance(item, _Internal):
                    await item.run()
                else:
                    await self._effects.perform(self, item)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("channel %s: effect %s failed", self.channel_id.hex(), type(item).__name__)

    def halt(self, reason: str) -> None:
        if self.halted is None:
            log.critical("channel %s halted: %s", self.channel_id.hex(), reason)
            self.halted = reason

    async def idle(self) -> None:
        """Wait until every queued effect has run."""
        while self._runner is not None and not self._runner.done():
            await asyncio.shield(self._runner)

    async def stop(self) -> None:
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
