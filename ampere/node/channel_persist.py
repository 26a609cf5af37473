"""Group commit of channel states: every state asked for in one event-loop turn goes into ONE transaction.

A channel hands its `PersistState` (and the `CommitmentRevoked` records and offered-HTLC outcomes that
belong with it, see `ampere.store.htlc_outcomes`) to
`GroupCommitter.submit` and gets a future that completes once the write is durable; the channel's
messages wait on that future. Submissions made while the loop runs other callbacks of the same turn,
or while a previous batch is being written, are gathered and written together by one writer thread,
so 200 concurrent payments cost a handful of fsyncs, not 200.

Within a batch only the newest state of each channel is written (revisions only move forward, so the
newest subsumes the older ones); the futures of the superseded states complete with it. If a batch
fails, each channel is retried alone, so that one channel's bad write (a stale revision, an archived
channel) never fails the others.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ampere.channel.twoway.actions import CommitmentRevoked, HtlcFailed, HtlcFulfilled, PersistState
from ampere.store import Store
from ampere.store.htlc_outcomes import HtlcOutcomeRepository
from ampere.store.repositories import ChannelStateRepository
from ampere.store.revocation_log import RevocationLogRepository

__all__ = ["GroupCommitter"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pending:
    persist: PersistState
    records: list[CommitmentRevoked] = field(default_factory=list)
    outcomes: list[HtlcFulfilled | HtlcFailed] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class GroupCommitter:
    """One writer thread; `submit` from the event loop thread only."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._states = ChannelStateRepository(store)
        self._revocations = RevocationLogRepository(store)
        self._outcomes = HtlcOutcomeRepository(store)
        self._pending: dict[bytes, _Pending] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="channel-store")
        self._flush_task: asyncio.Task[None] | None = None
        self._closed = False
        #: Store transactions committed (a batch that had to be split counts each part).
        self.transactions = 0
        #: Channel states written (after coalescing).
        self.states_written = 0

    def submit(
        self,
        channel_id: bytes,
        persist: PersistState,
        records: tuple[CommitmentRevoked, ...] = (),
        outcomes: tuple[HtlcFulfilled | HtlcFailed, ...] = (),
    ) -> asyncio.Future[None]:
        """Queue `persist` for `channel_id`; the future completes when it (or a newer state) is durable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if self._closed:
            future.set_exception(RuntimeError("the channel store writer is closed"))
            return future
        pending = self._pending.get(channel_id)
        if pending is None:
            pending = self._pending[channel_id] = _Pending(persist)
        elif persist.revision > pending.persist.revision:
            pending.persist = persist
        pending.records.extend(records)
        pending.outcomes.extend(outcomes)
        pending.waiters.append(future)
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.create_task(self._flush(), name="channel-group-commit")
        return future

    async def _flush(self) -> None:
        # Let every callback already scheduled in this turn submit too.
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, {}
            try:
                failures = await loop.run_in_executor(self._executor, self._write, batch)
            except BaseException as exc:  # cancelled at shutdown: nothing written is acknowledged
                for pending in batch.values():
                    _fail(pending, RuntimeError(f"channel state not written: {exc!r}"))
                raise
            for channel_id, pending in batch.items():
                error = failures.get(channel_id)
                if error is None:
                    for waiter in pending.waiters:
                        if not waiter.done():
                            waiter.set_result(None)
                else:
                    log.error(
                        "channel %s: state %d not stored: %s",
                        channel_id.hex(),
                        pending.persist.revision,
                        error,
                    )
                    _fail(pending, error)

    def _write(self, batch: dict[bytes, _Pending]) -> dict[bytes, Exception]:
        """Runs in the writer thread: one transaction for the whole batch, or one per channel."""
        blobs = {channel_id: pending.persist.data for channel_id, pending in batch.items()}
        try:
            with self._store.transaction():
                for channel_id, pending in batch.items():
                    self._put(channel_id, pending, blobs[channel_id])
            self.transactions += 1
            self.states_written += len(batch)
            return {}
        except Exception as exc:
            if len(batch) == 1:
                return {next(iter(batch)): exc}
        failures: dict[bytes, Exception] = {}
        for channel_id, pending in batch.items():
            try:
                with self._store.transaction():
                    self._put(channel_id, pending, blobs[channel_id])
                self.transactions += 1
                self.states_written += 1
            except Exception as exc:
                failures[channel_id] = exc
        return failures

    def _put(self, channel_id: bytes, pending: _Pending, blob: bytes) -> None:
        self._states.put_state(channel_id, pending.persist.revision, blob)
        for record in pending.records:
            self._revocations.append(record)
        for outcome in pending.outcomes:
            self._outcomes.record(channel_id, outcome)

    async def drain(self) -> None:
        """Wait until everything submitted so far is written."""
        while self._flush_task is not None and not self._flush_task.done():
            await asyncio.shield(self._flush_task)

    async def close(self) -> None:
        try:
            await self.drain()
        finally:
            self._closed = True
            self._executor.shutdown(wait=True)


def _fail(pending: _Pending, error: Exception) -> None:
    for waiter in pending.waiters:
        if not waiter.done():
            waiter.set_exception(error)
