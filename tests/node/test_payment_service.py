"""`PaymentService` decisions, with two services joined by an in-memory channel and a readable test onion
(see `test_payment_service_doubles`); real SQLite underneath, so durability is checked by reopening.

Invoice -> pay -> complete/paid on both sides; every refusal `pay` owes the caller; the failures a payee
sends back, decoded at the payer; 200 concurrent payments both ways with funds conserved; a restart in
the middle of a payment; and the money-safety order (invoice durably paid before the preimage leaves).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.network import Network
from ampere.channel.twoway.actions import HtlcFailed, HtlcFulfilled
from ampere.invoice import new_invoice
from ampere.node.payment_errors import (
    AlreadyPaidError,
    DuplicateLabelError,
    InvalidInvoiceError,
    InvoiceExpiredError,
    NoRouteError,
    PaymentError,
    PaymentInProgressError,
    SelfPaymentError,
)
from ampere.node.payments import NEVER_OFFERED_REASON, PaymentService
from ampere.store.htlc_outcomes import HtlcOutcomeRepository
from ampere.store.payments import (
    InvoiceRepository,
    InvoiceStatus,
    PaymentRecord,
    PaymentRepository,
    PaymentStatus,
)

from .helpers import async_test
from .test_payment_service_doubles import LoopbackChannel, LoopbackEnd, PlainOnion, stand_in_node

ALICE_MSAT, BOB_MSAT = 500_000_000, 200_000_000


class Clock:
    def __init__(self, now: float = 1_700_000_000) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Party:
    node: Any
    end: LoopbackEnd
    clock: Clock
    service: PaymentService

    async def restart(self, onion: Any = None, pay_timeout: float = 30.0) -> None:
        await self.service.stop()
        self.end.side.listeners.clear()
        self.service = PaymentService(
            onion or PlainOnion(), self.end, clock=self.clock, pay_timeout=pay_timeout
        )
        await self.service.start(self.node)


@contextlib.asynccontextmanager
async def two_parties(
    tmp_path: Path, pay_timeout: float = 30.0
) -> AsyncIterator[tuple[Party, Party, LoopbackChannel]]:
    alice_node, bob_node = stand_in_node("alice", tmp_path), stand_in_node("bob", tmp_path)
    channel = LoopbackChannel(alice_node.node_id, bob_node.node_id, ALICE_MSAT, BOB_MSAT)
    parties = []
    for node in (alice_node, bob_node):
        clock = Clock()
        end = channel.end(node.node_id)
        service = PaymentService(PlainOnion(), end, clock=clock, pay_timeout=pay_timeout)
        await service.start(node)
        parties.append(Party(node, end, clock, service))
    alice, bob = parties
    try:
        yield alice, bob, channel
    finally:
        await channel.settle()
        for party in parties:
            await party.service.stop()
            party.node.store.close()


async def settle(channel: LoopbackChannel, *parties: Party) -> None:
    """Run every delivery and every handler until nothing is left in flight."""
    while channel.tasks or any(p.service._tasks for p in parties):
        await channel.settle()
        for party in parties:
            await party.service.drain()


def forged_invoice(party: Party, **overrides: Any) -> str:
    """An invoice signed with `party`'s key, with fields a test chooses."""
    fields: dict[str, Any] = {
        "network": Network.REGTEST,
        "amount_msat": 1_000,
        "payment_hash": secrets.token_bytes(32),
        "payment_secret": secrets.token_bytes(32),
        "private_key": party.node.keys.node_key,
        "timestamp": int(party.clock.now),
    }
    fields.update(overrides)
    text, _ = new_invoice(**fields)
    return text


@async_test
async def test_invoice_pay_complete_on_both_sides(tmp_path: Path) -> None:
    async with two_parties(tmp_path) as (alice, bob, channel):
        invoice = await bob.service.create_invoice(123_456, label="coffee", description="one espresso")
        # Durable before it was returned, preimage included.
        stored = InvoiceRepository(bob.node.store).get(invoice.payment_hash)
        assert stored == invoice and stored.payment_preimage is not None
        assert hashlib.sha256(invoice.payment_preimage).digest() == invoice.payment_hash
        assert invoice.expires_at == invoice.created_at + 3600

        paid = await alice.service.pay(invoice.bolt11)
        assert paid.status is PaymentStatus.COMPLETE
        assert paid.payment_preimage == invoice.payment_preimage
        assert paid.amount_msat == 123_456 and paid.fee_msat == 0
        await settle(channel, alice, bob)

        [view] = bob.service.list_invoices()
        assert view.status is InvoiceStatus.PAID and view.record.label == "coffee"
        assert view.record.paid_at == int(bob.clock.now) and view.record.received_msat == 123_456
        assert [p.status for p in alice.service.list_payments()] == [PaymentStatus.COMPLETE]
        assert alice.end.side.balance_msat == ALICE_MSAT - 123_456
        assert bob.end.side.balance_msat == BOB_MSAT + 123_456
        assert channel.conserved()

        # Both outcomes survive a restart.
        await alice.restart()
        await bob.restart()
        assert alice.service.payment(invoice.payment_hash) == paid
        assert PaymentRepository(alice.node.store).get(invoice.payment_hash) == paid
        [again] = bob.service.list_invoices()
        assert again.status is InvoiceStatus.PAID


@async_test
async def test_invoice_labels_and_expiry(tmp_path: Path) -> None:
    async with two_parties(tmp_path) as (_alice, bob, _channel):
        first = await bob.service.create_invoice(1_000, label="rent")
        with pytest.raises(DuplicateLabelError):
            await bob.service.create_invoice(2_000, label="rent")
        generated = [await bob.service.create_invoice(1_000) for _ in range(3)]
        labels = {record.label for record in [first, *generated]}
        assert len(labels) == 4
        short = await bob.service.create_invoice(1_000, expiry=60, description="")
        with pytest.raises(PaymentError):
            await bob.service.create_invoice(0)
        statuses = {v.record.label: v.status for v in bob.service.list_invoices()}
        assert set(statuses.values()) == {InvoiceStatus.UNPAID}
        bob.clock.now += 61
        statuses = {v.record.label: v.status for v in bob.service.list_invoices()}
        assert statuses[short.label] is InvoiceStatus.EXPIRED
        assert statuses["rent"] is InvoiceStatus.UNPAID
        # Labels stay unique across a restart.
        await bob.restart()
        with pytest.raises(DuplicateLabelError):
            await bob.service.create_invoice(2_000, label="rent")


@async_test
async def test_pay_refusals(tmp_path: Path) -> None:
    async with two_parties(tmp_path) as (alice, bob, channel):
        with pytest.raises(InvalidInvoiceError):
            await alice.service.pay("lnbcrt1garbage")
        with pytest.raises(InvalidInvoiceError, match="testnet"):
            await alice.service.pay(forged_invoice(bob, network=Network.TESTNET))
        with pytest.raises(InvalidInvoiceError, match="amount"):
            await alice.service.pay(forged_invoice(bob, amount_msat=None))
        with pytest.raises(InvoiceExpiredError):
            await alice.service.pay(forged_invoice(bob, timestamp=int(alice.clock.now) - 3601))
        own = await alice.service.create_invoice(1_000)
        with pytest.raises(SelfPaymentError):
            await alice.service.pay(own.bolt11)
        with pytest.raises(NoRouteError):
            await alice.service.pay(forged_invoice(bob, amount_msat=ALICE_MSAT + 1))
        stranger = stand_in_node("carol", tmp_path)
        try:
            carol = Party(stranger, channel.end(stranger.node_id), Clock(), alice.service)
            with pytest.raises(NoRouteError):
                await alice.service.pay(forged_invoice(carol))
        finally:
            stranger.store.close()
        channel.online = False
        with pytest.raises(NoRouteError):
            await alice.service.pay(forged_invoice(bob))
        channel.online = True
        # Nothing above was recorded or moved any money.
        assert alice.service.list_payments() == []
        assert channel.in_flight_msat() == 0 and alice.end.side.balance_msat == ALICE_MSAT

        # A refusal by the channel after the record was made fails the payment; it can be retried.
        invoice = await bob.service.create_invoice(5_000)
        alice.end.refuse = "over max_htlc_value_in_flight_msat"
        with pytest.raises(NoRouteError, match="max_htlc_value_in_flight"):
            await alice.service.pay(invoice.bolt11)
        failed = alice.service.payment(invoice.payment_hash)
        assert failed is not None and failed.status is PaymentStatus.FAILED
        alice.end.refuse = None
        done = await alice.service.pay(invoice.bolt11)
        assert done.status is PaymentStatus.COMPLETE
        with pytest.raises(AlreadyPaidError):
            await alice.service.pay(invoice.bolt11)
        await settle(channel, alice, bob)
        assert channel.conserved()


@given(text=st.text(max_size=300) | st.from_regex(r"lnbcrt[0-9a-z]{0,200}", fullmatch=True))
def test_pay_fuzzed_text_is_a_typed_error(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    @async_test
    async def run() -> None:
        async with two_parties(tmp_path_factory.mktemp("fuzz")) as (alice, _bob, channel):
            with pytest.raises(PaymentError):
                await alice.service.pay(text)
            assert alice.service.list_payments() == [] and channel.in_flight_msat() == 0

    run()


@async_test
async def test_payee_failures_are_decoded_at_the_payer(tmp_path: Path) -> None:
    async with two_parties(tmp_path) as (alice, bob, channel):
        invoice = await bob.service.create_invoice(10_000)

        async def pay_and_settle(text: str) -> Any:
            record = await alice.service.pay(text)
            await settle(channel, alice, bob)
            return record

        wrong_secret = forged_invoice(bob, amount_msat=10_000, payment_hash=invoice.payment_hash)
        too_little = forged_invoice(
            bob, amount_msat=9_999, payment_hash=invoice.payment_hash, payment_secret=invoice.payment_secret
        )
        unknown_hash = forged_invoice(bob, amount_msat=10_000)
        for text in (wrong_secret, too_little, unknown_hash):
            failed = await pay_and_settle(text)
            assert failed.status is PaymentStatus.FAILED
            assert (
                failed.failure == "payee failed it with code 0x400f"
            )  # incorrect_or_unknown_payment_details
            assert failed.payment_preimage is None
        # Expired at the payee while the payer's clock still says fine.
        short = await bob.service.create_invoice(10_000, expiry=10)
        bob.clock.now += 11
        failed = await pay_and_settle(short.bolt11)
        assert failed.failure == "payee failed it with code 0x400f"
        # An onion the payee cannot read comes back as update_fail_malformed_htlc.
        await alice.restart(onion=GarbledOnion())
        third = await bob.service.create_invoice(10_000)
        failed = await pay_and_settle(third.bolt11)
        assert failed.status is PaymentStatus.FAILED and "could not read the onion" in (failed.failure or "")

        assert {v.status for v in bob.service.list_invoices()} == {
            InvoiceStatus.UNPAID,
            InvoiceStatus.EXPIRED,
        }
        assert alice.end.side.balance_msat == ALICE_MSAT and channel.conserved()
        # The failed invoice can still be paid once the payer sends what the payee asked for.
        await alice.restart()
        done = await alice.service.pay(invoice.bolt11)
        assert done.status is PaymentStatus.COMPLETE
        await settle(channel, alice, bob)
        assert bob.service.invoice(invoice.payment_hash).status is InvoiceStatus.PAID  # type: ignore[union-attr]


class GarbledOnion(PlainOnion):
    def build_final_hop(self, **kwargs: Any) -> Any:
        built = super().build_final_hop(**kwargs)
        return type(built)(b"\xff" + built.packet[1:], built.shared_secrets)


@async_test
async def test_concurrent_payments_both_ways_conserve_funds(tmp_path: Path) -> None:
    async with two_parties(tmp_path) as (alice, bob, channel):
        to_bob = [await bob.service.create_invoice(1_000 + i) for i in range(120)]
        to_alice = [await alice.service.create_invoice(2_000 + i) for i in range(80)]
        writes_before = alice.service.writer.transactions
        results = await asyncio.gather(
            *(alice.service.pay(inv.bolt11) for inv in to_bob),
            *(bob.service.pay(inv.bolt11) for inv in to_alice),
        )
        assert all(r.status is PaymentStatus.COMPLETE for r in results)
        await settle(channel, alice, bob)
        sent_to_bob = sum(inv.amount_msat or 0 for inv in to_bob)
        sent_to_alice = sum(inv.amount_msat or 0 for inv in to_alice)
        assert alice.end.side.balance_msat == ALICE_MSAT - sent_to_bob + sent_to_alice
        assert bob.end.side.balance_msat == BOB_MSAT + sent_to_bob - sent_to_alice
        assert channel.conserved() and channel.in_flight_msat() == 0
        assert all(v.status is InvoiceStatus.PAID for v in bob.service.list_invoices())
        assert all(v.status is InvoiceStatus.PAID for v in alice.service.list_invoices())
        assert len(alice.service.list_payments()) == 120 and len(bob.service.list_payments()) == 80
        # Group commit: 120 pending records and 120 completions took far fewer transactions.
        assert alice.service.writer.transactions - writes_before < 120


@async_test
async def test_restart_in_the_middle_of_a_payment(tmp_path: Path) -> None:
    async with two_parties(tmp_path, pay_timeout=0.05) as (alice, bob, channel):
        invoice = await bob.service.create_invoice(50_000)
        channel.held = []
        pending = await alice.service.pay(invoice.bolt11)  # the payee does not answer in time
        assert pending.status is PaymentStatus.PENDING and channel.in_flight_msat() == 50_000
        await alice.restart()
        assert alice.service.payment(invoice.payment_hash) == pending
        with pytest.raises(PaymentInProgressError):
            await alice.service.pay(invoice.bolt11)
        # The payee hears the HTLC twice (a replay after its own restart): it settles once.
        [(receiver, held)] = channel.held
        channel.held.append((receiver, held))
        channel.release()
        await settle(channel, alice, bob)
        done = alice.service.payment(invoice.payment_hash)
        assert done is not None and done.status is PaymentStatus.COMPLETE
        assert done.payment_preimage == invoice.payment_preimage
        assert bob.end.side.balance_msat == BOB_MSAT + 50_000 and channel.conserved()
        # An outcome heard again after the restart changes nothing.
        await alice.service.htlc_fulfilled(
            channel.channel_id, HtlcFulfilled(0, invoice.payment_hash, invoice.payment_preimage)
        )
        await settle(channel, alice, bob)
        assert alice.service.payment(invoice.payment_hash) == done


@async_test
async def test_invoice_is_durably_paid_before_the_preimage_leaves(tmp_path: Path) -> None:
    async with two_parties(tmp_path) as (alice, bob, channel):
        seen: list[InvoiceStatus] = []
        fulfill = bob.end.fulfill_htlc

        async def checking_fulfill(channel_id: bytes, htlc_id: int, preimage: bytes) -> None:
            record = InvoiceRepository(bob.node.store).get(hashlib.sha256(preimage).digest())
            assert record is not None
            seen.append(record.status)
            await fulfill(channel_id, htlc_id, preimage)

        bob.end.fulfill_htlc = checking_fulfill  # type: ignore[method-assign]
        invoices = [await bob.service.create_invoice(7_000) for _ in range(20)]
        await asyncio.gather(*(alice.service.pay(inv.bolt11) for inv in invoices))
        await settle(channel, alice, bob)
        assert seen == [InvoiceStatus.PAID] * 20


def _stored_pending(party: Party, payment_hash: bytes, amount_msat: int = 9_000) -> None:
    """A pending record as `pay` leaves it when the node dies before the channel took the HTLC."""
    record = PaymentRecord(payment_hash, amount_msat, created_at=int(party.clock.now))
    PaymentRepository(party.node.store).add(record)


@async_test
async def test_restart_fails_a_payment_whose_htlc_was_never_offered(tmp_path: Path) -> None:
    async with two_parties(tmp_path) as (alice, _bob, channel):
        payment_hash = secrets.token_bytes(32)
        _stored_pending(alice, payment_hash)
        await alice.restart()
        failed = alice.service.payment(payment_hash)
        assert failed is not None and failed.status is PaymentStatus.FAILED
        assert failed.failure == NEVER_OFFERED_REASON
        assert channel.conserved() and alice.end.side.balance_msat == ALICE_MSAT


@async_test
async def test_restart_settles_pending_payments_from_the_outcome_log(tmp_path: Path) -> None:
    async with two_parties(tmp_path) as (alice, bob, channel):
        paid = await bob.service.create_invoice(12_000)
        refused_hash = secrets.token_bytes(32)
        for payment_hash in (paid.payment_hash, refused_hash):
            _stored_pending(alice, payment_hash)
        fulfilled = HtlcFulfilled(4, paid.payment_hash, paid.payment_preimage)
        failed = HtlcFailed(5, refused_hash, b"\x00" * 64)
        alice.end.logged = {paid.payment_hash: fulfilled, refused_hash: failed}
        log = HtlcOutcomeRepository(alice.node.store)
        log.record(channel.channel_id, fulfilled)
        log.record(channel.channel_id, failed)
        old_preimage = b"old".ljust(32, b"\x00")
        stale = HtlcFulfilled(1, hashlib.sha256(old_preimage).digest(), old_preimage)
        log.record(channel.channel_id, stale)  # an outcome of no pending payment: forgotten too
        await alice.restart()
        await settle(channel, alice, bob)
        done = alice.service.payment(paid.payment_hash)
        assert done is not None and done.status is PaymentStatus.COMPLETE
        assert done.payment_preimage == paid.payment_preimage
        refused = alice.service.payment(refused_hash)
        assert refused is not None and refused.status is PaymentStatus.FAILED
        assert refused.failure is not None and "restart" in refused.failure
        assert log.payment_hashes() == []
        # Durable: a second restart finds the same final records.
        await alice.restart()
        assert alice.service.payment(paid.payment_hash) == done
        assert alice.service.payment(refused_hash) == refused
