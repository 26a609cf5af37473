"""Invoices and payments over the node's two-way channels: the `PaymentService`.

Issuing: an invoice's preimage and payment secret come from `secrets`, and its record (with the
preimage) is durable before the invoice is handed out. Paying: direct payments only for now, to a peer
we have a normal channel with; the payment is recorded as pending before its HTLC is offered, the HTLC
carries a one-hop BOLT 4 onion, and `pay` waits for the outcome. Receiving: every incoming HTLC is judged
as a final hop against our invoices; the invoice is durably marked paid before the fulfil reveals the
preimage.

Records live in memory (looked up by hash) and are written through a group-committing writer, so many
concurrent payments share fsyncs. HTLC events are handled in tasks of their own, never inside the
channel's effect loop, and every handler is idempotent: the channel service delivers again after a
restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ampere.channel.twoway.actions import HtlcFailed, HtlcFulfilled, HtlcReceived
from ampere.errors import AmpereError
from ampere.invoice import DEFAULT_EXPIRY, DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA, InvoiceError, decode_invoice
from ampere.invoice import new_invoice as encode_new_invoice
from ampere.node.htlc_interface import ChannelOperations, ChannelUnavailableError, HtlcRefusedError
from ampere.node.node import Node
from ampere.node.payment_errors import (
    AlreadyPaidError,
    DuplicateLabelError,
    InvalidInvoiceError,
    InvoiceExpiredError,
    NoRouteError,
    PaymentError,
    PaymentInProgressError,
    PaymentsUnavailableError,
    SelfPaymentError,
)
from ampere.node.payment_onion_port import ExpectedInvoice, FailMalformed, FailWithReason, OnionPort
from ampere.node.payment_writer import RecordWriter
from ampere.store.errors import InvalidTransitionError
from ampere.store.htlc_outcomes import HtlcOutcomeRepository
from ampere.store.payments import (
    InvoiceRecord,
    InvoiceRepository,
    InvoiceStatus,
    PaymentRecord,
    PaymentRepository,
    PaymentStatus,
)

__all__ = ["InvoiceView", "PaymentService", "payment_service_of"]

log = logging.getLogger(__name__)

#: Blocks added to the invoice's min_final_cltv_expiry_delta, so that a block found while the HTLC
#: travels does not make the payee refuse it.
CLTV_MARGIN = 3
PAY_TIMEOUT = 60.0
NEVER_OFFERED_REASON = "the node stopped before the payment's HTLC was offered to the peer"
MAX_LABEL_LENGTH = 256
MAX_EXPIRY = (1 << 32) - 1


@dataclass(frozen=True, slots=True)
class InvoiceView:
    """An invoice as listed: its stored record, and its status at the time of asking."""

    record: InvoiceRecord
    status: InvoiceStatus


class PaymentService:
    """A `NodeService` and the channel service's `HtlcListener`. Add it after the channel service."""

    def __init__(
        self,
        onion: OnionPort,
        channels: ChannelOperations | None = None,
        *,
        clock: Callable[[], float] = time.time,
        pay_timeout: float = PAY_TIMEOUT,
    ) -> None:
        self._onion = onion
        self._channels = channels
        self._clock = clock
        self._pay_timeout = pay_timeout
        self._node: Node | None = None
        self._writer: RecordWriter | None = None
        self._invoices: dict[bytes, InvoiceRecord] = {}
        self._labels: dict[str, bytes] = {}
        self._payments: dict[bytes, PaymentRecord] = {}
        self._shared_secrets: dict[bytes, tuple[bytes, ...]] = {}
        self._waiters: dict[bytes, asyncio.Future[PaymentRecord]] = {}
        self._marking_paid: dict[bytes, asyncio.Future[InvoiceRecord]] = {}
        self._incoming: set[tuple[bytes, int]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # Onions of arriving HTLCs to peel ahead, and whether a task is peeling them.
        self._to_peel: deque[tuple[bytes, bytes]] = deque()
        self._peeling = False

    # --- lifecycle -----------------------------------------------------------------------------------
    async def start(self, node: Node) -> None:
        if self._channels is None:
            from ampere.node.channel_service import channel_service_of

            self._channels = channel_service_of(node)
        if self._channels is None:
            raise PaymentsUnavailableError("payments need the two-way channel service")
        self._node = node
        self._writer = RecordWriter(node.store)
        for invoice in InvoiceRepository(node.store).list_all():
            self._invoices[invoice.payment_hash] = invoice
            self._labels[invoice.label] = invoice.payment_hash
        for payment in PaymentRepository(node.store).list_all():
            self._payments[payment.payment_hash] = payment
        pending = sum(1 for p in self._payments.values() if p.status is PaymentStatus.PENDING)
        log.info(
            "payment service started: %d invoices, %d payments (%d pending)",
            len(self._invoices),
            len(self._payments),
            pending,
        )
        self._channels.add_htlc_listener(self)
        await self._reconcile()

    async def _reconcile(self) -> None:
        """After a restart, settle each pending payment from what the channels know of its HTLC.

        The node may have stopped after recording a payment as pending and before its HTLC was durably
        offered (then the peer never saw it and it failed), or after the HTLC's outcome was stored with
        the channel and before the payment's own record was (the outcome log has it then). Outcomes of
        payments already final are left over from such a crash, or repeats: forget them.
        """
        outcomes = HtlcOutcomeRepository(self.node.store)
        stale = [
            payment_hash
            for payment_hash in outcomes.payment_hashes()
            if self._payments.get(payment_hash) is None
            or self._payments[payment_hash].status is not PaymentStatus.PENDING
        ]
        if stale:
            await self.writer.submit(lambda: [outcomes.forget(payment_hash) for payment_hash in stale])
        for record in list(self._payments.values()):
            if record.status is not PaymentStatus.PENDING:
                continue
            report = self.channels.offered_htlcs(record.payment_hash)
            try:
                if report.fulfilled is not None:
                    await self._finish_complete(record.payment_hash, report.fulfilled.payment_preimage)
                elif report.in_flight:
                    continue  # the channel (or the chain) will tell
                elif report.failed is not None:
                    await self._finish_failed(record.payment_hash, self._failure_text(report.failed))
                else:
                    log.info("payment %s: its HTLC was never offered; failed", record.payment_hash.hex())
                    await self._finish_failed(record.payment_hash, NEVER_OFFERED_REASON)
            except InvalidTransitionError as exc:  # completed meanwhile by a replayed outcome
                log.info("payment %s: %s", record.payment_hash.hex(), exc)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.cancel()
        if self._writer is not None:
            await self._writer.close()
        self._node = None

    @property
    def node(self) -> Node:
        if self._node is None:
            raise PaymentsUnavailableError("the payment service is not running")
        return self._node

    @property
    def channels(self) -> ChannelOperations:
        if self._channels is None or self._node is None:
            raise PaymentsUnavailableError("the payment service is not running")
        return self._channels

    @property
    def writer(self) -> RecordWriter:
        if self._writer is None:
            raise PaymentsUnavailableError("the payment service is not running")
        return self._writer

    def _now(self) -> int:
        return int(self._clock())

    # --- invoices ------------------------------------------------------------------------------------
    async def create_invoice(
        self,
        amount_msat: int,
        *,
        label: str | None = None,
        description: str = "",
        expiry: int = DEFAULT_EXPIRY,
    ) -> InvoiceRecord:
        """Issue a BOLT 11 invoice; returns once its record (and preimage) is durable."""
        node = self.node
        if amount_msat <= 0:
            raise PaymentError("amount_msat must be positive")
        if not 0 < expiry <= MAX_EXPIRY:
            raise PaymentError(f"expiry must be 1..{MAX_EXPIRY} seconds")
        preimage = secrets.token_bytes(32)
        payment_secret = secrets.token_bytes(32)
        payment_hash = hashlib.sha256(preimage).digest()
        if label is None:
            label = f"invoice-{payment_hash.hex()}"
        if not label or len(label) > MAX_LABEL_LENGTH:
            raise PaymentError(f"a label is 1..{MAX_LABEL_LENGTH} characters")
        if label in self._labels:
            raise DuplicateLabelError(f"an invoice labelled {label!r} exists")
        now = self._now()
        try:
            bolt11, invoice = encode_new_invoice(
                network=node.network,
                amount_msat=amount_msat,
                payment_hash=payment_hash,
                payment_secret=payment_secret,
                private_key=node.keys.node_key,
                timestamp=now,
                description=description,
                expiry=expiry,
                min_final_cltv_expiry_delta=DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA,
            )
        except InvoiceError as exc:
            raise PaymentError(f"cannot issue the invoice: {exc}") from exc
        record = InvoiceRecord(
            payment_hash=payment_hash,
            label=label,
            bolt11=bolt11,
            payment_secret=payment_secret,
            payment_preimage=preimage,
            amount_msat=amount_msat,
            description=description,
            created_at=now,
            expires_at=invoice.expires_at,
        )
        self._labels[label] = payment_hash  # reserved now, so a concurrent call cannot take it
        repo = InvoiceRepository(node.store)
        try:
            await self.writer.submit(lambda: repo.add(record))
        except BaseException:
            del self._labels[label]
            raise
        self._invoices[payment_hash] = record
        return record

    def list_invoices(self) -> list[InvoiceView]:
        now = self._now()
        records = sorted(self._invoices.values(), key=lambda r: (r.created_at, r.payment_hash))
        return [InvoiceView(record, _invoice_status(record, now)) for record in records]

    def invoice(self, payment_hash: bytes) -> InvoiceView | None:
        record = self._invoices.get(payment_hash)
        return None if record is None else InvoiceView(record, _invoice_status(record, self._now()))

    # --- paying --------------------------------------------------------------------------------------
    def list_payments(self) -> list[PaymentRecord]:
        return sorted(self._payments.values(), key=lambda r: (r.created_at, r.payment_hash))

    def payment(self, payment_hash: bytes) -> PaymentRecord | None:
        return self._payments.get(payment_hash)

    async def pay(self, bolt11: str) -> PaymentRecord:
        """Pay a BOLT 11 invoice over a direct channel and wait for the outcome (at most `pay_timeout`,
        after which the record is returned still pending)."""
        node, channels = self.node, self.channels
        try:
            invoice = decode_invoice(bolt11, network=node.network)
        except InvoiceError as exc:
            raise InvalidInvoiceError(f"invalid invoice: {exc}") from exc
        if invoice.amount_msat is None:
            raise InvalidInvoiceError("invoices without an amount are not supported yet")
        if invoice.payment_secret is None:
            raise InvalidInvoiceError("the invoice has no payment secret")
        if invoice.payee == node.node_id:
            raise SelfPaymentError("the invoice is ours; a node cannot pay itself")
        now = self._now()
        if invoice.is_expired(now):
            raise InvoiceExpiredError(f"the invoice expired at {invoice.expires_at}")
        payment_hash, amount = invoice.payment_hash, invoice.amount_msat
        previous = self._payments.get(payment_hash)
        if previous is not None and previous.status is PaymentStatus.COMPLETE:
            raise AlreadyPaidError(f"payment {payment_hash.hex()} is already complete")
        if previous is not None and previous.status is PaymentStatus.PENDING:
            raise PaymentInProgressError(f"payment {payment_hash.hex()} is pending")
        candidates = [c for c in channels.usable_channels(invoice.payee) if c.spendable_msat >= amount]
        if not candidates:
            raise NoRouteError(
                f"no route to {invoice.payee.hex()}: no channel with the peer can send {amount} msat now"
            )
        channel = max(candidates, key=lambda c: c.spendable_msat)
        pending = PaymentRecord(
            payment_hash=payment_hash,
            amount_msat=amount,
            created_at=now,
            bolt11=bolt11,
            destination=invoice.payee,
        )
        # In memory first: a second `pay` of the same invoice in this loop turn sees it pending.
        self._payments[payment_hash] = pending
        try:
            await self._store_pending(pending, previous)
        except BaseException:
            if previous is None:
                del self._payments[payment_hash]
            else:
                self._payments[payment_hash] = previous
            raise
        # From here on the payment is durably pending: only an outcome changes it.
        waiter = self._waiters.get(payment_hash)
        if waiter is None or waiter.done():
            waiter = self._waiters[payment_hash] = asyncio.get_running_loop().create_future()
        try:
            session_key = secrets.token_bytes(32)
            cltv_expiry = node.follower.height + invoice.min_final_cltv_expiry_delta + CLTV_MARGIN
            onion = self._onion.build_final_hop(
                session_key=session_key,
                payee=invoice.payee,
                amount_msat=amount,
                total_msat=amount,
                cltv_expiry=cltv_expiry,
                payment_secret=invoice.payment_secret,
                payment_hash=payment_hash,
            )
            self._shared_secrets[payment_hash] = onion.shared_secrets
            try:
                await channels.add_htlc(channel.channel_id, amount, payment_hash, cltv_expiry, onion.packet)
            except (ChannelUnavailableError, HtlcRefusedError) as exc:
                await self._finish_failed(payment_hash, f"the channel refused the HTLC: {exc}")
                raise NoRouteError(f"cannot send over channel {channel.channel_id.hex()}: {exc}") from exc
            try:
                return await asyncio.wait_for(asyncio.shield(waiter), self._pay_timeout)
            except TimeoutError:
                return self._payments[payment_hash]
        finally:
            if self._waiters.get(payment_hash) is waiter:
                del self._waiters[payment_hash]

    async def _store_pending(self, pending: PaymentRecord, previous: PaymentRecord | None) -> None:
        repo = PaymentRepository(self.node.store)
        if previous is None:
            await self.writer.submit(lambda: repo.add(pending))
        else:  # a failed payment tried again
            await self.writer.submit(lambda: repo.update(pending))

    async def _finish_complete(self, payment_hash: bytes, preimage: bytes) -> None:
        now = self._now()
        await self._finish(
            payment_hash,
            lambda repo: repo.mark_complete(payment_hash, preimage=preimage, fee_msat=0, completed_at=now),
        )

    async def _finish_failed(self, payment_hash: bytes, reason: str) -> None:
        now = self._now()
        await self._finish(
            payment_hash, lambda repo: repo.mark_failed(payment_hash, reason=reason, failed_at=now)
        )

    async def _finish(self, payment_hash: bytes, mark: Callable[[PaymentRepository], PaymentRecord]) -> None:
        """Make the payment final; its outcome log entries go in the same transaction (htlc_outcomes)."""
        store = self.node.store

        def write() -> PaymentRecord:
            final = mark(PaymentRepository(store))
            HtlcOutcomeRepository(store).forget(payment_hash)
            return final

        self._settled(await self.writer.submit(write))

    def _settled(self, record: PaymentRecord) -> None:
        self._payments[record.payment_hash] = record
        self._shared_secrets.pop(record.payment_hash, None)
        waiter = self._waiters.get(record.payment_hash)
        if waiter is not None and not waiter.done():
            waiter.set_result(record)

    # --- HtlcListener ----------------------------------------------------------------------------------
    def htlc_arriving(self, channel_id: bytes, htlc_id: int, payment_hash: bytes, onion: bytes) -> None:
        if payment_hash not in self._invoices or self._node is None:
            return  # not one of our invoices: nothing worth preparing (the check peels, to fail it)
        self._to_peel.append((onion, payment_hash))
        if not self._peeling:
            self._peeling = True
            self._spawn(self._peel_ahead(), self._peeled_all)

    async def _peel_ahead(self) -> None:
        """One onion per loop turn, while the channels wait on the store and the peer: their own
        callbacks run in between, so the commitment dance is never held up by this."""
        node_key = self.node.keys.node_key
        while self._to_peel:
            onion, payment_hash = self._to_peel.popleft()
            self._onion.peel_ahead(onion, node_key, payment_hash)
            await asyncio.sleep(0)
        self._peeling = False  # no await since the queue was seen empty: nothing can be left behind

    def _peeled_all(self) -> None:
        self._peeling = False  # also when cancelled or failed

    async def htlc_received(self, channel_id: bytes, htlc: HtlcReceived) -> None:
        key = (channel_id, htlc.htlc_id)
        if key in self._incoming:
            return  # already being settled (a replay racing the live delivery)
        self._incoming.add(key)
        self._spawn(self._settle_incoming(channel_id, htlc), lambda: self._incoming.discard(key))

    async def htlc_fulfilled(self, channel_id: bytes, outcome: HtlcFulfilled) -> None:
        record = self._payments.get(outcome.payment_hash)
        if record is None or record.status is PaymentStatus.COMPLETE:
            return  # not one of our payments (a forward, later), or heard before
        if hashlib.sha256(outcome.payment_preimage).digest() != outcome.payment_hash:
            log.error(
                "channel %s: preimage for %s does not match", channel_id.hex(), outcome.payment_hash.hex()
            )
            return
        self._spawn(self._finish_complete(outcome.payment_hash, outcome.payment_preimage))

    async def htlc_failed(self, channel_id: bytes, outcome: HtlcFailed) -> None:
        record = self._payments.get(outcome.payment_hash)
        if record is None or record.status is not PaymentStatus.PENDING:
            return
        self._spawn(self._finish_failed(outcome.payment_hash, self._failure_text(outcome)))

    def _failure_text(self, outcome: HtlcFailed) -> str:
        if outcome.local_reason:
            return outcome.local_reason
        if outcome.failure_code:
            return f"the payee could not read the onion (failure code {outcome.failure_code:#06x})"
        shared = self._shared_secrets.get(outcome.payment_hash)
        if shared is None:
            return "failed (the reason cannot be decrypted after a restart)"
        try:
            return self._onion.describe_failure(shared, outcome.reason)
        except AmpereError as exc:  # a garbled reason from the peer must not lose the outcome
            log.warning("undecodable failure for %s: %s", outcome.payment_hash.hex(), exc)
            return f"failed with an unreadable reason: {exc}"

    async def _settle_incoming(self, channel_id: bytes, htlc: HtlcReceived) -> None:
        node, channels = self.node, self.channels
        record = self._invoices.get(htlc.payment_hash)
        expected = None
        if record is not None and not htlc.dust_exposure_exceeded:
            expected = ExpectedInvoice(
                payment_hash=record.payment_hash,
                payment_secret=record.payment_secret,
                amount_msat=record.amount_msat,
                min_final_cltv_expiry_delta=DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA,
                # A paid invoice is settled again after a restart whatever the time.
                expires_at=MAX_EXPIRY if record.status is InvoiceStatus.PAID else record.expires_at,
            )
        verdict = self._onion.check_final_htlc(
            onion=htlc.onion_routing_packet,
            node_key=node.keys.node_key,
            payment_hash=htlc.payment_hash,
            htlc_amount_msat=htlc.amount_msat,
            htlc_cltv_expiry=htlc.cltv_expiry,
            current_height=node.follower.height,
            now=self._now(),
            expected=expected,
        )
        try:
            if isinstance(verdict, FailWithReason):
                log.info(
                    "failing HTLC %d on %s: code %#06x", htlc.htlc_id, channel_id.hex(), verdict.failure_code
                )
                await channels.fail_htlc(channel_id, htlc.htlc_id, verdict.reason)
            elif isinstance(verdict, FailMalformed):
                log.info("HTLC %d on %s has a malformed onion", htlc.htlc_id, channel_id.hex())
                await channels.fail_malformed_htlc(
                    channel_id, htlc.htlc_id, verdict.sha256_of_onion, verdict.failure_code
                )
            else:
                assert record is not None  # a fulfil needs an expected invoice
                paid = await self._mark_paid(record, htlc.amount_msat)
                await channels.fulfill_htlc(channel_id, htlc.htlc_id, paid.payment_preimage)
        except (ChannelUnavailableError, HtlcRefusedError) as exc:
            # Settled already (a replay), or the channel went away: it redelivers what is still open.
            log.info("HTLC %d on %s not settled now: %s", htlc.htlc_id, channel_id.hex(), exc)

    async def _mark_paid(self, record: InvoiceRecord, amount_msat: int) -> InvoiceRecord:
        """Durably paid before the preimage is revealed; concurrent HTLCs of one invoice share the write."""
        current = self._invoices[record.payment_hash]
        if current.status is InvoiceStatus.PAID:
            return current
        marking = self._marking_paid.get(record.payment_hash)
        if marking is not None:
            return await asyncio.shield(marking)
        repo = InvoiceRepository(self.node.store)
        now = self._now()
        future = self.writer.submit(
            lambda: repo.mark_paid(record.payment_hash, paid_at=now, received_msat=amount_msat)
        )
        self._marking_paid[record.payment_hash] = future
        try:
            paid: InvoiceRecord = await asyncio.shield(future)
        finally:
            del self._marking_paid[record.payment_hash]
        self._invoices[record.payment_hash] = paid
        log.info("invoice %r paid with %d msat", paid.label, amount_msat)
        return paid

    def _spawn(self, coro: Coroutine[Any, Any, None], done: Callable[[], None] | None = None) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def finished(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            if done is not None:
                done()
            if not task.cancelled() and task.exception() is not None:
                log.error("payment task failed", exc_info=task.exception())

        task.add_done_callback(finished)

    async def drain(self) -> None:
        """Wait until every HTLC event heard so far is handled (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _invoice_status(record: InvoiceRecord, now: int) -> InvoiceStatus:
    if record.status is InvoiceStatus.UNPAID and now >= record.expires_at:
        return InvoiceStatus.EXPIRED
    return record.status


def payment_service_of(node: Node) -> PaymentService | None:
    return next((s for s in node.services if isinstance(s, PaymentService)), None)
