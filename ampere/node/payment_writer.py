"""Group commit for invoice and payment records: the writes asked for while one batch is being written
go together into the next transaction, on one writer thread.

A thousand concurrent payments then cost a handful of fsyncs instead of a thousand, and the event loop
never waits on the disk. If a batch fails, its writes are retried one by one so that one bad write
(a label taken meanwhile) fails only its own caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ampere.store import Store

__all__ = ["RecordWriter", "WriterClosedError"]

log = logging.getLogger(__name__)

Write = Callable[[], Any]


class WriterClosedError(RuntimeError):
    """The writer was closed; the write was not made."""


class RecordWriter:
    """`submit` from the event loop thread only; each write runs inside a store transaction."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: list[tuple[Write, asyncio.Future[Any]]] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="payment-store")
        self._flush_task: asyncio.Task[None] | None = None
        self._closed = False
        #: Store transactions committed (each retry of a failed batch counts).
        self.transactions = 0

    def submit(self, write: Write) -> asyncio.Future[Any]:
        """Queue `write`; the future has its result once the transaction holding it is durable."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._closed:
            future.set_exception(WriterClosedError("the payment record writer is closed"))
            return future
        self._pending.append((write, future))
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.create_task(self._flush(), name="payment-group-commit")
        return future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the rest of this loop turn submit too
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            writes = [write for write, _ in batch]
            try:
                outcomes = await loop.run_in_executor(self._executor, self._write, writes)
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(WriterClosedError(f"records not written: {exc!r}"))
                raise
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _write(self, writes: list[Write]) -> list[tuple[bool, Any]]:
        """Runs on the writer thread: one transaction for all, or one each if that fails."""
        try:
            with self._store.transaction():
                results = [write() for write in writes]
            self.transactions += 1
            return [(True, result) for result in results]
        except Exception as exc:
            if len(writes) == 1:
                return [(False, exc)]
        outcomes: list[tuple[bool, Any]] = []
        for write in writes:
            try:
                with self._store.transaction():
                    result = write()
                self.transactions += 1
                outcomes.append((True, result))
            except Exception as exc:
                outcomes.append((False, exc))
        return outcomes

    async def drain(self) -> None:
        while self._flush_task is not None and not self._flush_task.done():
            await asyncio.shield(self._flush_task)

    async def close(self) -> None:
        try:
            await self.drain()
        finally:
            self._closed = True
            self._executor.shutdown(wait=True)
