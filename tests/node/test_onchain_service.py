"""On-chain resolution in two in-process nodes on one embedded chain, over real TCP and SQLite.

Force close through the command (`closechannel --force`), a unilateral close with HTLCs both ways and
the peer offline, a breach punished by a victim restarted in between, a reorganisation undoing a
claim, and an outgoing payment completed by the preimage the peer revealed on chain. Every broadcast
is judged by the kernel; money is followed from the funding output to the wallets.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.network import Network
from ampere.bitcoin.tx import OutPoint, Transaction, TxIn, TxOut
from ampere.chain.embedded import EmbeddedChain
from ampere.chain.errors import BroadcastError, RejectReason
from ampere.channel.twoway import ChannelConfig
from ampere.channel.twoway.actions import CloseType
from ampere.channel.twoway.common import Context, signed_local_commitment
from ampere.channel.twoway.state import Phase
from ampere.invoice import new_invoice
from ampere.node.htlc_interface import HtlcRefusedError
from ampere.node.onchain_record import OfferedHtlc, ResolutionRecord, ResolutionRecordError
from ampere.onchain import ChannelResolver, InMemoryOnchainSigner, OutputPath, OutputStatus, TrackedOutput
from ampere.onchain.claims import build_claim_tx, sign_claim_tx
from ampere.store.payments import PaymentStatus
from ampere.store.revocation_log import RevocationLogRepository
from tests.chain.helpers import SINK_SCRIPT

from .channel_helpers import Member, followed, mine, mine_to, offer, open_channel, preimage, wait_until
from .helpers import async_test

DELAY = 10
CONFIG = ChannelConfig(to_self_delay=DELAY)
CAPACITY_SAT = 1_000_000
PUSH_MSAT = 400_000_000
MAX_CLAIM_FEE_SAT = 2_000


@asynccontextmanager
async def pair(
    tmp_path: Path, *, alice_payments: bool = False
) -> AsyncIterator[tuple[EmbeddedChain, Member, Member]]:
    chain = EmbeddedChain(tmp_path / "chain")
    alice = Member("alice", tmp_path, chain, CONFIG, payments=alice_payments)
    bob = Member("bob", tmp_path, chain, CONFIG)
    try:
        await alice.start()
        await bob.start()
        yield chain, alice, bob
    finally:
        await alice.stop()
        await bob.stop()
        chain.close()


async def bob_returns_and_claims(chain: EmbeddedChain, alice: Member, bob: Member, channel_id: bytes) -> None:
    """Bob, offline while Alice force closed, starts again after his offered HTLC's expiry: the
    blocks he missed are replayed, he claims his balance and his HTLC back, and both resolve."""
    await bob.start()
    await followed(chain, bob)
    await wait_until(
        lambda: (
            bob.channels.onchain.resolver(channel_id) is not None
            and len([c for c in resolver_of(bob, channel_id).claims if c.confirmed_height is None]) == 2
        ),
        "bob's claims",
    )
    await mine(chain, 1, alice, bob)
    theirs = resolver_of(bob, channel_id)
    assert {o.path for o in theirs.outputs if o.by_us} == {OutputPath.TO_REMOTE, OutputPath.HTLC_TIMEOUT}
    await mine(chain, 6, alice, bob)
    await wait_until(
        lambda: resolver_of(alice, channel_id).resolved and resolver_of(bob, channel_id).resolved,
        "both resolvers to finish",
    )


def resolver_of(member: Member, channel_id: bytes) -> ChannelResolver:
    resolver = member.channels.onchain.resolver(channel_id)
    assert resolver is not None, f"{member.name} has no resolver for the channel"
    return resolver


def only(resolver: ChannelResolver, path: OutputPath) -> TrackedOutput:
    found = [out for out in resolver.outputs if out.path is path and out.parent is None]
    assert len(found) == 1, found
    return found[0]


def premature_claim(member: Member, resolver: ChannelResolver, out: TrackedOutput) -> Transaction:
    """The claim of `out` built and signed now, before the resolver would make it."""
    assert out.claim is not None
    root = member.keys.channel_keys_root(member.channel(resolver.channel_id).key_index).private_key
    signer = InMemoryOnchainSigner(root)
    unsigned = build_claim_tx([out.claim], resolver.destination, 1000)
    return sign_claim_tx(unsigned, [out.claim], signer, resolver.preimages)


def refused(chain: EmbeddedChain, tx: Transaction, reason: RejectReason) -> None:
    with pytest.raises(BroadcastError) as caught:
        chain.submit(tx)
    assert caught.value.reason is reason, caught.value


def swept_into_wallet(member: Member, resolver: ChannelResolver) -> int:
    """What our sweeps paid into the member's wallet; each of their outputs must be a wallet coin."""
    coins = member.wallet_coins()
    total = 0
    for txid in {out.sweep_txid for out in resolver.outputs if out.by_us and out.sweep_txid is not None}:
        found = member.chain.get_transaction(txid)
        assert found is not None and found[1] is not None, "a sweep is not confirmed"
        for vout, txout in enumerate(found[0].outputs):
            if txout.script_pubkey == resolver.destination:
                assert coins.get(OutPoint(txid, vout)) == txout.value, "a sweep is not in the wallet"
                total += txout.value
    return total


@async_test
async def test_force_close_command_sweeps_both_sides(tmp_path: Path) -> None:
    async with pair(tmp_path) as (chain, alice, bob):
        channel_id = await open_channel(alice, bob, CAPACITY_SAT, PUSH_MSAT)
        bob_before = bob.wallet_coins()
        assert not bob_before

        forced = await alice.channels.onchain.force_close(channel_id.hex())
        assert forced.channel_id == channel_id
        commitment = chain.mempool_tx(forced.closing_txid)
        assert commitment is not None, "our commitment is not in the mempool"
        assert alice.channel(channel_id).state.phase is Phase.FORCE_CLOSING
        # The peer was told with an error and stopped using the channel.
        await wait_until(
            lambda: bob.channel(channel_id).state.phase is Phase.FORCE_CLOSING, "bob to fail the channel"
        )
        height = await mine(chain, 1, alice, bob)
        assert chain.tx_status(commitment.txid).block_height == height

        ours, theirs = resolver_of(alice, channel_id), resolver_of(bob, channel_id)
        assert ours.close_type.value == "local_force" and theirs.close_type.value == "remote_force"
        to_local, to_remote = only(ours, OutputPath.TO_LOCAL), only(theirs, OutputPath.TO_REMOTE)
        assert to_local.claimable_at() == height + DELAY - 1
        # Bob's to_remote is claimed in the very next block.
        await mine(chain, 1, alice, bob)
        await wait_until(lambda: only(resolver_of(bob, channel_id), OutputPath.TO_REMOTE).by_us, "to_remote")

        # One block before the delay is over the chain refuses Alice's sweep (BIP68).
        await mine_to(chain, height + DELAY - 2, alice, bob)
        ours = resolver_of(alice, channel_id)
        assert only(ours, OutputPath.TO_LOCAL).status is OutputStatus.PENDING
        refused(chain, premature_claim(alice, ours, to_local), RejectReason.NON_BIP68_FINAL)
        entry = next(e for e in alice.channels.onchain.list_closed() if e["channel_id"] == channel_id.hex())
        assert entry["close_type"] == "local_force" and entry["state"] == "force_closing"
        [listed] = [o for o in entry["outputs"] if o["path"] == "to_local"]
        assert listed["claimable_at_height"] == height + DELAY - 1 and listed["status"] == "pending"

        # Alice is down when the delay runs out: at her restart the resolver comes back from the store
        # and the block she missed is replayed to it, so the sweep goes out right then.
        await alice.stop()
        await mine(chain, 1, bob)
        await alice.start()
        await followed(chain, alice)
        assert any(c.label.startswith("to_local") for c in resolver_of(alice, channel_id).claims)
        await mine(chain, 1, alice, bob)
        swept = only(resolver_of(alice, channel_id), OutputPath.TO_LOCAL)
        assert swept.status is OutputStatus.SWEPT and swept.by_us
        assert swept.spent_height == height + DELAY  # the first block where it was valid

        # Each side's balance ends in its wallet, less the fee of one small claim.
        local_sat = commitment.outputs[to_local.outpoint.vout].value
        remote_sat = commitment.outputs[to_remote.outpoint.vout].value
        assert remote_sat == PUSH_MSAT // 1000  # Bob's whole balance: the opener paid the commitment fee
        alice_swept = swept_into_wallet(alice, resolver_of(alice, channel_id))
        bob_swept = swept_into_wallet(bob, resolver_of(bob, channel_id))
        assert local_sat - MAX_CLAIM_FEE_SAT < alice_swept < local_sat
        assert remote_sat - MAX_CLAIM_FEE_SAT < bob_swept < remote_sat
        assert sum(bob.wallet_coins().values()) == bob_swept
        commitment_fee = CAPACITY_SAT - commitment.total_output_value()
        assert 0 < commitment_fee < 10_000

        # Six blocks deep, every output is resolved and both channels are closed.
        await mine(chain, 5, alice, bob)
        await wait_until(
            lambda: (
                alice.channel(channel_id).state.phase is Phase.CLOSED
                and bob.channel(channel_id).state.phase is Phase.CLOSED
            ),
            "both channels to be closed",
        )
        [entry] = alice.channels.onchain.list_closed()
        assert entry["state"] == "closed"
        assert all(o["status"] == "swept" for o in entry["outputs"] if o["path"] == "to_local")
        # A second force close of a closed channel answers with the same transaction.
        again = await alice.channels.onchain.force_close(channel_id.hex())
        assert again.closing_txid == commitment.txid


def delayed_outputs(resolver: ChannelResolver) -> list[TrackedOutput]:
    return [out for out in resolver.outputs if out.parent is not None]


@async_test
async def test_unilateral_close_with_htlcs_both_ways_and_the_peer_offline(tmp_path: Path) -> None:
    async with pair(tmp_path) as (chain, alice, bob):
        channel_id = await open_channel(alice, bob, CAPACITY_SAT, PUSH_MSAT)
        tip = chain.tip_height()
        times_out_at_alice, claimed_by_alice, times_out_at_bob = tip + 25, tip + 45, tip + 35
        await offer(alice, channel_id, 60_000_000, 1, times_out_at_alice)  # Bob never learns it
        await offer(bob, channel_id, 70_000_000, 2, claimed_by_alice)  # Alice learns it later
        await offer(bob, channel_id, 80_000_000, 3, times_out_at_bob)  # Alice never learns it
        await wait_until(
            lambda: len(alice.listener.received) == 2 and len(bob.listener.received) == 1,
            "every HTLC irrevocably committed",
        )
        await bob.stop()
        forced = await alice.channels.onchain.force_close(channel_id.hex())
        height = await mine(chain, 1, alice)
        commitment = chain.get_transaction(forced.closing_txid)
        assert commitment is not None and commitment[1] is not None
        commitment_tx = commitment[0]

        # Alice learns the preimage of Bob's second HTLC: the channel cannot settle it any more, the
        # chain can (HTLC-success in the next block).
        [(_, htlc_id)] = [k for k, h in alice.listener.received.items() if h.cltv_expiry == claimed_by_alice]
        with pytest.raises(HtlcRefusedError):
            await alice.channels.fulfill_htlc(channel_id, htlc_id, preimage(2))
        await mine(chain, 1, alice)
        assert any(c.label.startswith("htlc_success") for c in resolver_of(alice, channel_id).claims)

        # Alice's HTLC-timeout is refused by the chain until its cltv_expiry.
        await mine_to(chain, times_out_at_alice - 1, alice)
        timeout_out = next(
            o
            for o in resolver_of(alice, channel_id).outputs
            if o.path is OutputPath.HTLC_TIMEOUT and o.parent is None
        )
        assert timeout_out.stage is not None and timeout_out.cltv == times_out_at_alice
        key_index = alice.channel(channel_id).key_index
        signer = InMemoryOnchainSigner(alice.keys.channel_keys_root(key_index).private_key)
        refused(chain, timeout_out.stage.finalize(signer, None), RejectReason.NON_FINAL)

        # Every output of Alice's resolves in the first block where its claim is valid.
        def waiting(resolver: ChannelResolver) -> list[TrackedOutput]:
            """Outputs Alice can still claim (not the HTLC whose preimage she never learns)."""
            return [
                o
                for o in resolver.outputs
                if o.actionable
                and o.status is not OutputStatus.SWEPT
                and not (o.needs_preimage and o.payment_hash not in resolver.preimages)
            ]

        for _ in range(2 * (claimed_by_alice - chain.tip_height()) + 3 * DELAY):
            if not waiting(resolver_of(alice, channel_id)):
                break
            await mine(chain, 1, alice)
        ours = resolver_of(alice, channel_id)
        assert len(delayed_outputs(ours)) == 2 and all(o.csv == DELAY for o in delayed_outputs(ours))
        for out in ours.outputs:
            if out.path is OutputPath.HTLC_SUCCESS and out.parent is None and out.by_us:
                assert out.spent_height == height + 2  # the block after the preimage became known
            elif out.by_us:
                assert out.spent_height == (out.claimable_at() or 0) + 1, out
        assert not waiting(ours) and not ours.resolved
        # Only the HTLC whose preimage Alice never learnt is left, for Bob.
        [unclaimed] = [o for o in ours.outputs if o.status is not OutputStatus.SWEPT and o.actionable]
        assert unclaimed.path is OutputPath.HTLC_SUCCESS and unclaimed.parent is None

        # Bob comes back after his HTLC's expiry: the blocks he missed are replayed, he takes his
        # balance and his timed-out HTLC.
        assert chain.tip_height() > times_out_at_bob
        await bob_returns_and_claims(chain, alice, bob, channel_id)

        # Where the money went: Alice has to_local, her timed-out HTLC and the one she claimed; Bob
        # his balance and his timed-out HTLC; the rest went to fees.
        by_htlc = {o.outpoint.vout: o for o in ours.outputs if o.parent is None}
        value = {vout: commitment_tx.outputs[vout].value for vout in by_htlc}
        alice_due = sum(v for vout, v in value.items() if by_htlc[vout].path is not OutputPath.HTLC_SUCCESS)
        alice_due += 70_000
        bob_due = commitment_tx.total_output_value() - alice_due
        alice_swept = swept_into_wallet(alice, resolver_of(alice, channel_id))
        bob_swept = swept_into_wallet(bob, resolver_of(bob, channel_id))
        assert alice_due - 5 * MAX_CLAIM_FEE_SAT < alice_swept < alice_due
        assert bob_due - 2 * MAX_CLAIM_FEE_SAT < bob_swept < bob_due
        assert sum(bob.wallet_coins().values()) == bob_swept
        assert bob_due == PUSH_MSAT // 1000 - 70_000  # to_remote (less both his HTLCs) + the timed-out one
        # Alice's payment side hears of her timed-out HTLC once it is deep enough.
        assert [f.payment_hash for f in alice.listener.failed] == [hashlib.sha256(preimage(1)).digest()]


@async_test
async def test_breach_punished_after_a_restart_and_again_after_a_reorg(tmp_path: Path) -> None:
    async with pair(tmp_path) as (chain, alice, bob):
        channel_id = await open_channel(alice, bob, CAPACITY_SAT, PUSH_MSAT)
        # Alice keeps her first commitment, fully signed while it was current.
        managed = alice.channel(channel_id)
        cheat = signed_local_commitment(
            managed.state, Context(managed.channel.signer, managed.channel.config)
        )
        # Alice pays Bob 300 000 sat: her first commitment is revoked.
        bob.listener.preimages[hashlib.sha256(preimage(7)).digest()] = preimage(7)
        await offer(alice, channel_id, 300_000_000, 7, chain.tip_height() + 40)
        await wait_until(lambda: alice.listener.fulfilled, "the payment to be fulfilled")
        revocations = RevocationLogRepository(bob.running.store)
        await wait_until(lambda: revocations.get(channel_id, 0) is not None, "bob to log the revocation")
        await wait_until(lambda: not bob.channels.list_channels()[0].summary.pending_htlcs, "settlement")

        # Bob is down when Alice broadcasts her revoked commitment.
        await bob.stop()
        await alice.stop()
        chain.submit(cheat)
        breach_height = await mine(chain, 1)
        await mine(chain, 1)
        await bob.start()
        await followed(chain, bob)
        resolver = await wait_until(lambda: bob.channels.onchain.resolver(channel_id), "bob's resolver")
        assert resolver.close_type.value == "breach"
        justice = next(c for c in resolver.claims if c.justice)
        assert chain.mempool_tx(justice.tx.txid) is not None
        justice_height = await mine(chain, 1, bob)
        assert justice_height < breach_height + DELAY
        resolver = resolver_of(bob, channel_id)
        assert all(o.status is OutputStatus.SWEPT and o.by_us for o in resolver.outputs)
        assert {o.path for o in resolver.outputs} == {OutputPath.JUSTICE, OutputPath.TO_REMOTE}

        # The block with the justice transaction leaves the chain: it is broadcast again and confirms.
        chain.reorg(1, SINK_SCRIPT, 2)
        await followed(chain, bob)
        resolver = resolver_of(bob, channel_id)
        assert resolver.tip == justice_height + 1
        [again] = [o for o in resolver.outputs if o.path is OutputPath.JUSTICE]
        assert again.status is not OutputStatus.SWEPT
        pending = [c for c in resolver.claims if c.justice and c.confirmed_height is None]
        assert pending and all(chain.mempool_tx(c.tx.txid) is not None for c in pending)
        reconfirmed = await mine(chain, 1, bob)
        [again] = [o for o in resolver_of(bob, channel_id).outputs if o.path is OutputPath.JUSTICE]
        assert again.status is OutputStatus.SWEPT and again.spent_height == reconfirmed and again.by_us
        assert reconfirmed < breach_height + DELAY

        # Bob ends with the whole channel less the fees; Alice gets nothing from it.
        await mine(chain, 5, bob)
        await wait_until(lambda: resolver_of(bob, channel_id).resolved, "bob's resolver to finish")
        await wait_until(lambda: bob.channel(channel_id).state.phase is Phase.CLOSED, "the channel closed")
        gained = sum(bob.wallet_coins().values())
        assert gained == swept_into_wallet(bob, resolver_of(bob, channel_id))
        commitment_fee = CAPACITY_SAT - cheat.total_output_value()
        assert CAPACITY_SAT - commitment_fee - 2 * MAX_CLAIM_FEE_SAT < gained < CAPACITY_SAT - commitment_fee
        [entry] = bob.channels.onchain.list_closed()
        assert entry["close_type"] == "breach" and entry["state"] == "closed"
        assert {o["path"] for o in entry["outputs"]} == {"justice", "to_remote"}


@async_test
async def test_a_preimage_revealed_on_chain_completes_the_payment(tmp_path: Path) -> None:
    async with pair(tmp_path, alice_payments=True) as (chain, alice, bob):
        channel_id = await open_channel(alice, bob, CAPACITY_SAT, PUSH_MSAT)
        secret = preimage(9)
        payment_hash = hashlib.sha256(secret).digest()
        bolt11, _ = new_invoice(
            network=Network.REGTEST,
            amount_msat=50_000_000,
            payment_hash=payment_hash,
            payment_secret=hashlib.sha256(b"secret").digest(),
            private_key=bob.keys.node_key,
            timestamp=int(time.time()),
        )
        assert alice.payments is not None
        paying = asyncio.ensure_future(alice.payments.pay(bolt11))
        await wait_until(lambda: bob.listener.received, "bob to hold the HTLC")
        record = await paying
        assert record.status is PaymentStatus.PENDING
        [(_, htlc_id)] = bob.listener.received

        # Alice goes away; Bob settles the HTLC on chain with its preimage.
        await alice.stop()
        await bob.channels.fulfill_htlc(channel_id, htlc_id, secret)
        await bob.channels.onchain.force_close(channel_id.hex())
        await mine(chain, 1, bob)
        await mine(chain, 1, bob)
        resolver = resolver_of(bob, channel_id)
        [success] = [o for o in resolver.outputs if o.path is OutputPath.HTLC_SUCCESS and o.parent is None]
        assert success.by_us and success.status is OutputStatus.SWEPT
        await bob.stop()

        # Alice comes back with Bob gone: she reads the preimage from Bob's HTLC-success.
        await alice.start()
        await followed(chain, alice)
        assert alice.payments is not None
        payments = alice.payments
        await wait_until(
            lambda: (
                (found := payments.payment(payment_hash)) is not None
                and found.status is PaymentStatus.COMPLETE
            ),
            "the payment to complete",
        )
        done = payments.payment(payment_hash)
        assert done is not None and done.payment_preimage == secret
        theirs = resolver_of(alice, channel_id)
        [claimed] = [o for o in theirs.outputs if o.path is OutputPath.HTLC_TIMEOUT]
        assert not claimed.by_us and claimed.sweep_txid == success.sweep_txid


@async_test
async def test_a_mutual_close_is_listed_with_our_output(tmp_path: Path) -> None:
    async with pair(tmp_path) as (chain, alice, bob):
        channel_id = await open_channel(alice, bob, CAPACITY_SAT, PUSH_MSAT)
        closed = await alice.channels.close_channel(channel_id.hex())
        height = await mine(chain, 1, alice, bob)
        closing = chain.get_transaction(closed.closing_txid)
        assert closing is not None and closing[1] is not None
        for member, balance_sat in ((alice, CAPACITY_SAT - PUSH_MSAT // 1000), (bob, PUSH_MSAT // 1000)):
            [entry] = await wait_until(member.channels.onchain.list_closed, f"{member.name}'s listclosed")
            assert (
                entry["close_type"] == "mutual" and entry["closing_txid"] == closed.closing_txid[::-1].hex()
            )
            [output] = entry["outputs"]
            assert output["path"] == "to_local" and output["status"] == "swept"
            assert output["claimable_at_height"] == height
            assert balance_sat - 10_000 < output["amount_sat"] <= balance_sat
            txid_hex, vout = output["outpoint"].split(":")
            outpoint = OutPoint.from_display(txid_hex, int(vout))
            assert member.wallet_coins()[outpoint] == output["amount_sat"]
        await mine(chain, 5, alice, bob)
        await wait_until(
            lambda: alice.channels.onchain.list_closed()[0]["state"] == "closed", "the close to be final"
        )
        assert alice.channel(channel_id).state.phase is Phase.CLOSED


def test_resolution_records_round_trip_and_reject_garbage() -> None:
    record = ResolutionRecord(
        bytes(range(32)),
        7,
        b"\x02" + bytes(32),
        OutPoint(bytes(32), 1),
        ChannelResolver(
            bytes(range(32)),
            CloseType.MUTUAL,
            Transaction(
                version=2, inputs=(TxIn(OutPoint(bytes(32), 1)),), outputs=(TxOut(1000, b"\x00" * 22),)
            ),
            b"\x00" * 22,
            (),
            tip=100,
        ),
        mutual_vouts=(0,),
        offered=(OfferedHtlc(3, bytes(32)),),
        failures_reported={3},
    )
    data = record.to_bytes()
    again = ResolutionRecord.from_bytes(record.channel_id, data)
    assert again.to_bytes() == data and again.offered == record.offered and again.failures_reported == {3}
    with pytest.raises(ResolutionRecordError):
        ResolutionRecord.from_bytes(bytes(32), data)  # another channel's key

    @given(st.binary(max_size=300), st.integers(min_value=0, max_value=len(data)))
    def garbage(noise: bytes, cut: int) -> None:
        for candidate in (noise, data[:cut], data[:cut] + noise):
            if candidate == data:
                continue
            # Only the typed error may come out of undecodable bytes.
            with suppress(ResolutionRecordError):
                ResolutionRecord.from_bytes(record.channel_id, candidate)

    garbage()
