"""`PaymentService` in two in-process nodes on one embedded chain, over real TCP, SQLite and onions.

Invoice -> pay -> complete at the payer and paid at the payee, with the channel balances moving by the
amount; the failures a payee sends back (wrong secret, too little, unknown hash, expired) decoded at the
payer from the real onion failure; 200 concurrent payments both ways with funds conserved; and both
nodes stopped with payments in flight, whose outcomes arrive after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ampere.bitcoin.bip32 import ExtendedPrivateKey
from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.network import Network
from ampere.chain.embedded import EmbeddedChain, EmbeddedChainBackend
from ampere.invoice import new_invoice
from ampere.node.channel_service import ChannelService
from ampere.node.config import NodeConfig
from ampere.node.datadir import DataDir
from ampere.node.keys import NodeKeys
from ampere.node.node import ChainConnection, Node
from ampere.node.payment_onion_port import HtlcVerdict
from ampere.node.payment_onion_sphinx import SphinxOnion
from ampere.node.payments import PaymentService
from ampere.store import open_store
from ampere.store.payments import InvoiceStatus, PaymentStatus

from .helpers import async_test, fast_config

WAIT = 30.0
CAPACITY_SAT, PUSH_MSAT = 1_000_000, 300_000_000


async def _no_close() -> None:
    return None


class CountingOnion(SphinxOnion):
    """The real onions, counting how many incoming ones were peeled ahead and how many checks peeled."""

    def __init__(self) -> None:
        super().__init__()
        self.peeled_ahead = 0
        self.checked = 0

    def peel_ahead(self, onion: bytes, node_key: PrivateKey, payment_hash: bytes) -> None:
        self.peeled_ahead += 1
        super().peel_ahead(onion, node_key, payment_hash)

    def check_final_htlc(self, **kwargs: Any) -> HtlcVerdict:
        self.checked += 1
        return super().check_final_htlc(**kwargs)


class Member:
    """A node with the channel and payment services, restartable from its datadir."""

    def __init__(self, name: str, root: Path, chain: EmbeddedChain, clock: Clock) -> None:
        self.datadir = DataDir(root / name)
        self.datadir.root.mkdir(parents=True, exist_ok=True)
        seed = hashlib.sha256(name.encode()).digest()
        self.keys = NodeKeys(ExtendedPrivateKey.from_seed(seed), Network.REGTEST)
        self.chain = chain
        self.clock = clock
        self.node: Node | None = None
        self.channels = ChannelService()
        self.payments = PaymentService(SphinxOnion())

    async def start(self, pay_timeout: float = WAIT) -> Node:
        config = NodeConfig(datadir=self.datadir, listen=("127.0.0.1", 0), poll_interval=0.05)
        connection = ChainConnection(EmbeddedChainBackend(self.chain), Network.REGTEST, close=_no_close)
        node = Node(config, self.keys, open_store(config.db_url), connection, 0, fast_config())
        self.channels = ChannelService()
        self.onion = CountingOnion()
        self.payments = PaymentService(self.onion, clock=self.clock, pay_timeout=pay_timeout)
        node.add_service(self.channels)
        node.add_service(self.payments)
        await node.start()
        self.node = node
        return node

    async def stop(self) -> None:
        if self.node is not None:
            await self.node.close()
            self.node = None

    @property
    def running(self) -> Node:
        assert self.node is not None
        return self.node

    @property
    def port(self) -> int:
        return int(self.running.info().listen[0].rsplit(":", 1)[1])

    def balance(self) -> tuple[int, int, int]:
        """(local, remote, pending) msat of the one channel, checked against the capacity."""
        [listing] = self.channels.list_channels()
        summary = listing.summary
        pending = sum(h.amount_msat for h in summary.pending_htlcs)
        assert (
            summary.local_balance_msat + summary.remote_balance_msat + pending == summary.capacity_sat * 1000
        )
        return summary.local_balance_msat, summary.remote_balance_msat, pending


async def wait_until(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Clock:
    """Wall time, moved forward by a test to expire an invoice at one node only."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@contextlib.asynccontextmanager
async def channel_between(tmp_path: Path) -> AsyncIterator[tuple[Member, Member]]:
    """Alice and Bob with one normal channel, PUSH_MSAT of it on Bob's side."""
    chain = EmbeddedChain(tmp_path / "chain")
    alice = Member("alice", tmp_path, chain, Clock())
    bob = Member("bob", tmp_path, chain, Clock())
    try:
        await alice.start()
        await bob.start()
        await mine(alice, 101, bob)
        await alice.running.connect(f"{bob.running.node_id.hex()}@127.0.0.1:{bob.port}")
        await alice.channels.open_channel(bob.running.node_id, CAPACITY_SAT, push_msat=PUSH_MSAT)
        await wait_until(lambda: bob.channels.list_channels(), "bob to see the channel")
        await mine(alice, 3, bob)
        await wait_until(
            lambda: alice.channels.usable_channels() and bob.channels.usable_channels(), "a usable channel"
        )
        yield alice, bob
    finally:
        await alice.stop()
        await bob.stop()
        chain.close()


async def mine(miner: Member, count: int, *others: Member) -> None:
    await miner.running.generate(count)
    height = miner.running.follower.height
    for other in others:
        node = other.running
        await wait_until(lambda node=node: node.follower.height >= height, "the others to follow")  # type: ignore[misc]


async def settled(*members: Member) -> None:
    await wait_until(lambda: all(m.balance()[2] == 0 for m in members), "no HTLC pending")


@async_test
async def test_pay_an_invoice_and_the_failures_a_payee_returns(tmp_path: Path) -> None:
    async with channel_between(tmp_path) as (alice, bob):
        invoice = await bob.payments.create_invoice(250_000, label="tea", description="green")
        paid = await alice.payments.pay(invoice.bolt11)
        assert paid.status is PaymentStatus.COMPLETE and paid.payment_preimage == invoice.payment_preimage
        await settled(alice, bob)
        assert alice.balance()[:2] == (CAPACITY_SAT * 1000 - PUSH_MSAT - 250_000, PUSH_MSAT + 250_000)
        view = bob.payments.invoice(invoice.payment_hash)
        assert view is not None and view.status is InvoiceStatus.PAID
        assert view.record.received_msat == 250_000

        target = await bob.payments.create_invoice(40_000)

        def forged(**fields: Any) -> str:
            base: dict[str, Any] = {
                "network": Network.REGTEST,
                "amount_msat": 40_000,
                "payment_hash": target.payment_hash,
                "payment_secret": target.payment_secret,
                "private_key": bob.keys.node_key,
                "timestamp": int(alice.clock()),
            }
            base.update(fields)
            return new_invoice(**base)[0]

        cases = {
            "wrong secret": forged(payment_secret=secrets.token_bytes(32)),
            "too little": forged(amount_msat=39_999),
            "unknown hash": forged(payment_hash=secrets.token_bytes(32)),
        }
        for case, text in cases.items():
            failed = await alice.payments.pay(text)
            assert failed.status is PaymentStatus.FAILED, case
            assert "incorrect_or_unknown_payment_details" in (failed.failure or ""), (case, failed.failure)
        short = await bob.payments.create_invoice(40_000, expiry=5)
        bob.clock.offset = 6
        failed = await alice.payments.pay(short.bolt11)
        assert "incorrect_or_unknown_payment_details" in (failed.failure or "")
        await settled(alice, bob)
        # Nothing moved for the failures; the real invoice still pays.
        assert alice.balance()[1] == PUSH_MSAT + 250_000
        assert (await alice.payments.pay(target.bolt11)).status is PaymentStatus.COMPLETE


@async_test
async def test_concurrent_payments_both_ways(tmp_path: Path) -> None:
    async with channel_between(tmp_path) as (alice, bob):
        to_bob = [await bob.payments.create_invoice(100_000 + i) for i in range(120)]
        to_alice = [await alice.payments.create_invoice(50_000 + i) for i in range(80)]
        results = await asyncio.gather(
            *(alice.payments.pay(i.bolt11) for i in to_bob), *(bob.payments.pay(i.bolt11) for i in to_alice)
        )
        assert [r.status for r in results] == [PaymentStatus.COMPLETE] * 200
        await settled(alice, bob)
        moved = sum(i.amount_msat or 0 for i in to_bob) - sum(i.amount_msat or 0 for i in to_alice)
        local, remote, _ = alice.balance()
        assert local == CAPACITY_SAT * 1000 - PUSH_MSAT - moved and remote == PUSH_MSAT + moved
        assert bob.balance()[:2] == (remote, local)
        assert {v.status for v in bob.payments.list_invoices()} == {InvoiceStatus.PAID}
        assert {v.status for v in alice.payments.list_invoices()} == {InvoiceStatus.PAID}
        # Every incoming onion was offered for peeling as its update_add_htlc arrived; none is left unused.
        assert (bob.onion.peeled_ahead, bob.onion.checked) == (120, 120)
        assert (alice.onion.peeled_ahead, alice.onion.checked) == (80, 80)
        assert bob.onion.kept == alice.onion.kept == 0


@async_test
async def test_outcomes_arrive_after_both_nodes_restart(tmp_path: Path) -> None:
    async with channel_between(tmp_path) as (alice, bob):
        invoices = [await bob.payments.create_invoice(30_000 + i) for i in range(20)]
        await alice.stop()
        await alice.start(pay_timeout=0)
        await wait_until(lambda: alice.channels.usable_channels(), "the channel back")
        pending = await asyncio.gather(*(alice.payments.pay(i.bolt11) for i in invoices))
        assert {p.status for p in pending} <= {PaymentStatus.PENDING, PaymentStatus.COMPLETE}
        await alice.stop()  # with HTLCs somewhere between offered and settled
        await bob.stop()
        await bob.start()
        await alice.start()
        await alice.running.connect(f"{bob.running.node_id.hex()}@127.0.0.1:{bob.port}")
        await wait_until(
            lambda: all(
                (p := alice.payments.payment(i.payment_hash)) is not None
                and p.status is PaymentStatus.COMPLETE
                for i in invoices
            ),
            "every payment complete after the restarts",
        )
        await settled(alice, bob)
        assert all(bob.payments.invoice(i.payment_hash).status is InvoiceStatus.PAID for i in invoices)  # type: ignore[union-attr]
        moved = sum(i.amount_msat or 0 for i in invoices)
        assert alice.balance()[1] == PUSH_MSAT + moved
