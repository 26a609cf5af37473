"""A payment whose HTLC is timed out on chain fails with a reason that says so (not an empty or
undecryptable one), in two in-process nodes on one embedded chain."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

from ampere.bitcoin.network import Network
from ampere.channel.twoway import HtlcReceived
from ampere.invoice import new_invoice
from ampere.onchain import OutputPath, OutputStatus
from ampere.store.payments import PaymentRecord, PaymentStatus

from .channel_helpers import Member, mine, open_channel, preimage, wait_until
from .helpers import async_test
from .test_onchain_service import CAPACITY_SAT, PUSH_MSAT, pair, resolver_of


async def held_payment(alice: Member, bob: Member, n: int, amount_msat: int) -> tuple[bytes, HtlcReceived]:
    """Alice pays Bob `amount_msat`; Bob holds the HTLC (never settles it). The payment's hash and the
    HTLC as Bob received it."""
    payment_hash = hashlib.sha256(preimage(n)).digest()
    bolt11, _ = new_invoice(
        network=Network.REGTEST,
        amount_msat=amount_msat,
        payment_hash=payment_hash,
        payment_secret=hashlib.sha256(b"secret %d" % n).digest(),
        private_key=bob.keys.node_key,
        timestamp=int(time.time()),
    )
    payments = alice.payments
    assert payments is not None
    paying = asyncio.ensure_future(payments.pay(bolt11))
    await wait_until(lambda: bob.listener.received, "bob to hold the HTLC")
    assert (await paying).status is PaymentStatus.PENDING
    [held] = bob.listener.received.values()
    return payment_hash, held


async def failed_payment(alice: Member, payment_hash: bytes) -> PaymentRecord:
    payments = alice.payments
    assert payments is not None
    failed: PaymentRecord = await wait_until(
        lambda: (
            (found := payments.payment(payment_hash)) is not None
            and found.status is PaymentStatus.FAILED
            and found
        ),
        "the payment to fail",
    )
    assert failed.failure is not None and "timed out on chain" in failed.failure, failed.failure
    assert failed.payment_preimage is None
    return failed


@async_test
async def test_a_payment_timed_out_on_chain_fails_with_a_clear_reason(tmp_path: Path) -> None:
    async with pair(tmp_path, alice_payments=True) as (chain, alice, bob):
        channel_id = await open_channel(alice, bob, CAPACITY_SAT, PUSH_MSAT)
        payment_hash, held = await held_payment(alice, bob, 11, 50_000_000)

        # Bob never settles and goes away; Alice takes the HTLC back on chain after its expiry.
        await bob.stop()
        await alice.channels.onchain.force_close(channel_id.hex())
        await mine(chain, 1, alice)
        while chain.tip_height() <= held.cltv_expiry + 6:
            await mine(chain, 1, alice)
        [timeout] = [
            o
            for o in resolver_of(alice, channel_id).outputs
            if o.path is OutputPath.HTLC_TIMEOUT and o.parent is None
        ]
        assert timeout.status is OutputStatus.SWEPT and timeout.by_us
        await failed_payment(alice, payment_hash)


@async_test
async def test_a_dust_htlc_of_a_force_closed_channel_fails_once_deep(tmp_path: Path) -> None:
    async with pair(tmp_path, alice_payments=True) as (chain, alice, bob):
        channel_id = await open_channel(alice, bob, CAPACITY_SAT, PUSH_MSAT)
        # 500 sat: below the dust limit, so the commitment has no output for it.
        payment_hash, _ = await held_payment(alice, bob, 12, 500_000)

        await bob.stop()
        await alice.channels.onchain.force_close(channel_id.hex())
        await mine(chain, 1, alice)
        resolver = resolver_of(alice, channel_id)
        assert resolver.closing_height is not None
        assert all(o.payment_hash != payment_hash for o in resolver.outputs)
        await mine(chain, 4, alice)
        assert alice.payments is not None
        found = alice.payments.payment(payment_hash)
        assert found is not None and found.status is PaymentStatus.PENDING  # 5 deep: a reorg could undo it
        await mine(chain, 1, alice)
        await failed_payment(alice, payment_hash)
