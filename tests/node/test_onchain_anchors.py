"""An anchor channel closed unilaterally with HTLCs pending both ways, in two in-process nodes on one
embedded chain (real TCP, SQLite, kernel-validated blocks).

Alice's commitment went out at a feerate below today's estimate and miners ignore it: her node pays for
it by CPFP through her anchor with a wallet coin. Her zero-fee HTLC-timeout and HTLC-success transactions
(SIGHASH_SINGLE|ANYONECANPAY from Bob) are grown with wallet coins too, and their outputs swept after
`to_self_delay`. Bob, offline throughout, comes back and takes his balance and his timed-out HTLC. Every
output ends in the right wallet; the wallets pay the fees of what they funded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ampere.bitcoin.tx import Transaction
from ampere.chain.embedded import EmbeddedChain
from ampere.channel.twoway import ChannelType
from ampere.node.htlc_interface import HtlcRefusedError
from ampere.onchain import ChannelResolver, OutputPath, OutputStatus, TrackedOutput

from .channel_helpers import Member, followed, mine, offer, preimage, wait_until
from .helpers import async_test
from .test_onchain_justice_fees import mine_without_mempool
from .test_onchain_service import CAPACITY_SAT, DELAY, PUSH_MSAT, bob_returns_and_claims, pair, resolver_of

FEE_RISE = 5  # the fee estimate is multiplied by this once the commitment is signed
MAX_FEE_SAT = 10_000  # what each of Alice's claims or funded transactions may pay, at most


async def open_anchor_channel(alice: Member, bob: Member) -> bytes:
    alice_node, bob_node = alice.running, bob.running
    await alice_node.generate(101)
    await followed(alice.chain, bob)
    await alice_node.connect(f"{bob_node.node_id.hex()}@127.0.0.1:{bob.port}")
    opened = await alice.channels.open_channel(bob_node.node_id, CAPACITY_SAT, PUSH_MSAT, anchors=True)
    await wait_until(lambda: bob.channels.list_channels(), "bob to see the channel")
    await mine(alice.chain, 3, alice, bob)
    await wait_until(
        lambda: alice.channels.usable_channels() and bob.channels.usable_channels(), "a usable channel"
    )
    assert alice.channel(opened.channel_id).state.channel_type is ChannelType.ANCHORS
    return opened.channel_id


def wallet_total(member: Member) -> int:
    return sum(member.wallet_coins().values())


def waiting(resolver: ChannelResolver) -> list[TrackedOutput]:
    """Outputs still to claim (not the HTLC whose preimage Alice never learns)."""
    return [
        o
        for o in resolver.outputs
        if o.actionable
        and o.status is not OutputStatus.SWEPT
        and not (o.needs_preimage and o.payment_hash not in resolver.preimages)
    ]


def spends(chain: EmbeddedChain, tx: Transaction) -> int:
    """The value of `tx`'s inputs, read from the chain."""
    total = 0
    for txin in tx.inputs:
        found = chain.get_transaction(txin.prevout.txid)
        assert found is not None
        total += found[0].outputs[txin.prevout.vout].value
    return total


@async_test
async def test_anchor_unilateral_close_with_htlcs_cpfp_and_wallet_funded_second_stages(
    tmp_path: Path,
) -> None:
    async with pair(tmp_path) as (chain, alice, bob):
        channel_id = await open_anchor_channel(alice, bob)
        tip = chain.tip_height()
        times_out_at_alice, claimed_by_alice, times_out_at_bob = tip + 25, tip + 45, tip + 35
        await offer(alice, channel_id, 60_000_000, 1, times_out_at_alice)  # Bob never learns it
        await offer(bob, channel_id, 70_000_000, 2, claimed_by_alice)  # Alice learns it after the close
        await offer(bob, channel_id, 80_000_000, 3, times_out_at_bob)  # Alice never learns it
        await wait_until(
            lambda: len(alice.listener.received) == 2 and len(bob.listener.received) == 1,
            "every HTLC irrevocably committed",
        )
        await bob.stop()
        alice_coins = alice.wallet_coins()
        alice_before = sum(alice_coins.values())
        # Fees rise after the last commitment was signed (Bob is gone: no update_fee can follow).
        chain.set_fee_estimate(chain.estimate_feerate_sat_per_kvb() * FEE_RISE)
        mine_without_mempool(chain)
        await followed(chain, alice)
        forced = await alice.channels.onchain.force_close(channel_id.hex())
        commitment = chain.mempool_tx(forced.closing_txid)
        assert commitment is not None
        commitment_fee = CAPACITY_SAT - commitment.total_output_value()

        # Miners leave the commitment out: at the next block Alice's node pays for it through her anchor.
        mine_without_mempool(chain)
        await followed(chain, alice)
        resolver = resolver_of(alice, channel_id)
        [anchor] = [o for o in resolver.outputs if o.path is OutputPath.ANCHOR]
        children = [
            tx
            for txid in chain.mempool_txids()
            if (tx := chain.mempool_tx(txid)) is not None
            and any(txin.prevout == anchor.outpoint for txin in tx.inputs)
        ]
        assert len(children) == 1, "no CPFP child spends Alice's anchor"
        [child] = children
        assert len(child.inputs) == 2 and child.inputs[1].prevout in alice_coins, "no wallet coin pays"
        child_fee = spends(chain, child) - child.total_output_value()
        package_weight = commitment.weight + child.weight
        feerate_now = alice.channels.watcher.feerate_per_kw
        assert (commitment_fee + child_fee) * 1000 >= feerate_now * package_weight
        height = await mine(chain, 1, alice)
        assert chain.tx_status(commitment.txid).block_height == height
        assert chain.tx_status(child.txid).block_height == height

        # Alice learns the preimage of Bob's first HTLC: the chain settles it with a funded HTLC-success.
        [(_, htlc_id)] = [k for k, h in alice.listener.received.items() if h.cltv_expiry == claimed_by_alice]
        with pytest.raises(HtlcRefusedError):
            await alice.channels.fulfill_htlc(channel_id, htlc_id, preimage(2))
        for _ in range(2 * (claimed_by_alice - chain.tip_height()) + 3 * DELAY):
            if not waiting(resolver_of(alice, channel_id)):
                break
            await mine(chain, 1, alice)
        ours = resolver_of(alice, channel_id)
        assert not waiting(ours) and not alice.channels.onchain.broadcaster.rejections
        second_stages = [
            o
            for o in ours.outputs
            if o.parent is None and o.stage is not None and o.status is OutputStatus.SWEPT
        ]
        assert {o.path for o in second_stages} == {OutputPath.HTLC_TIMEOUT, OutputPath.HTLC_SUCCESS}
        for out in second_stages:
            assert out.by_us and out.sweep_txid is not None
            found = chain.get_transaction(out.sweep_txid)
            assert found is not None
            htlc_tx = found[0]
            # The zero-fee HTLC transaction grew a wallet input (and change back to the wallet).
            assert len(htlc_tx.inputs) == 2 and htlc_tx.inputs[0].prevout == out.outpoint
            fee = spends(chain, htlc_tx) - htlc_tx.total_output_value()
            assert 0 < fee < MAX_FEE_SAT
        if_timeout = next(o for o in second_stages if o.path is OutputPath.HTLC_TIMEOUT)
        assert if_timeout.spent_height == times_out_at_alice + 1
        delayed = [o for o in ours.outputs if o.parent is not None]
        assert len(delayed) == 2 and all(o.status is OutputStatus.SWEPT and o.by_us for o in delayed)

        # Bob comes back after his HTLC's expiry and takes his balance and his timed-out HTLC.
        assert chain.tip_height() > times_out_at_bob
        await bob_returns_and_claims(chain, alice, bob, channel_id)

        # Where the money went. Alice: to_local, her timed-out HTLC and the one she claimed, less the
        # fees of her sweeps, of the CPFP child and of her funded HTLC transactions (all paid by her wallet
        # or her outputs). Bob: his balance and his timed-out HTLC, less his claims' fees.
        by_vout = {o.outpoint.vout: o for o in ours.outputs if o.parent is None}
        value = {vout: commitment.outputs[vout].value for vout in by_vout}
        to_local = next(v for vout, v in value.items() if by_vout[vout].path is OutputPath.TO_LOCAL)
        alice_due = to_local + 60_000 + 70_000
        alice_gain = wallet_total(alice) - alice_before
        assert alice_due - 6 * MAX_FEE_SAT < alice_gain < alice_due
        bob_due = PUSH_MSAT // 1000 - 70_000  # his to_remote (less both his HTLCs) + his timed-out one
        bob_gain = wallet_total(bob)
        assert bob_due - 2 * MAX_FEE_SAT < bob_gain < bob_due
        # Nothing is lost but fees: every satoshi of the commitment and of the wallet coins Alice spent
        # is in a wallet or went to a miner.
        spent_by_alice = [
            found[0]
            for txid in {o.sweep_txid for o in ours.outputs if o.by_us and o.sweep_txid is not None}
            | {child.txid}
            if (found := chain.get_transaction(txid)) is not None
        ]
        fees_alice = sum(spends(chain, tx) - tx.total_output_value() for tx in spent_by_alice)
        assert alice_gain == alice_due + anchor.amount_sat - fees_alice
        # Alice's anchor went into the CPFP child; Bob's is left for anyone after 16 blocks.
        entry = next(e for e in alice.channels.onchain.list_closed() if e["channel_id"] == channel_id.hex())
        assert entry["state"] == "closed"
        [listed_anchor] = [o for o in entry["outputs"] if o["path"] == "anchor"]
        assert listed_anchor["sweep_txid"] == child.txid_hex and listed_anchor["swept_by"] == "us"
        # Alice's payment side hears of her timed-out HTLC once it is deep enough.
        assert [f.payment_hash for f in alice.listener.failed] == [hashlib.sha256(preimage(1)).digest()]
