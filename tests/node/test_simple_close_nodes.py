"""`option_simple_close` (BOLT 2 `closing_complete`/`closing_sig`) between two in-process Ampere nodes on
one embedded chain, over real TCP and SQLite.

The node does not advertise feature 60/61 by default yet (see docs/channel.md, "Left to do"): here both
nodes are configured to, so their channels close the simple way. Each side proposes its own closing
transaction and pays its fee; both get signed and broadcast, the chain keeps one. Whichever confirms,
its outputs are the balances with only the closer's reduced by the fee, both wallets receive them, and
both channels end closed. A side with nothing to close with proposes nothing.
"""

from __future__ import annotations

from pathlib import Path

from ampere.bitcoin.tx import Transaction
from ampere.chain.embedded import EmbeddedChain
from ampere.channel.twoway.state import Phase
from ampere.node.peer_protocol import DEFAULT_FEATURES
from ampere.wire.features import Feature

from .channel_helpers import Member, SentMessages, mine, open_channel, unstarted_pair, wait_until
from .helpers import async_test

SIMPLE_CLOSE_FEATURES = DEFAULT_FEATURES.with_feature(Feature.SIMPLE_CLOSE, required=False)
CLOSING_MESSAGES = frozenset({"shutdown", "closing_signed", "closing_complete", "closing_sig"})


def closing_messages(member: Member) -> SentMessages:
    """The closing messages a member's node sends, by name, in order."""
    return SentMessages(member, CLOSING_MESSAGES)


def balances_sat(member: Member, channel_id: bytes) -> tuple[int, int]:
    """(ours, theirs) in whole satoshis, as the closing outputs carry them."""
    summary = next(c.summary for c in member.channels.list_channels() if c.summary.channel_id == channel_id)
    assert not summary.pending_htlcs
    return summary.local_balance_msat // 1000, summary.remote_balance_msat // 1000


def funding_spends(chain: EmbeddedChain, member: Member, channel_id: bytes) -> list[Transaction]:
    outpoint = member.channel(channel_id).state.funding_outpoint
    found = []
    for txid in chain.mempool_txids():
        tx = chain.mempool_tx(txid)
        if tx is not None and any(txin.prevout == outpoint for txin in tx.inputs):
            found.append(tx)
    return found


async def both_closed(chain: EmbeddedChain, alice: Member, bob: Member, channel_id: bytes) -> None:
    await mine(chain, 1, alice, bob)
    await wait_until(
        lambda: all(m.channel(channel_id).state.phase is Phase.CLOSED for m in (alice, bob)),
        "both channels closed",
    )


def received(member: Member, tx: Transaction) -> list[int]:
    """What `member`'s wallet holds of `tx`'s outputs (confirmed)."""
    return sorted(amount for outpoint, amount in member.wallet_coins().items() if outpoint.txid == tx.txid)


@async_test
async def test_both_propose_and_the_confirmed_close_pays_each_balance_less_the_closers_fee(
    tmp_path: Path,
) -> None:
    async with unstarted_pair(tmp_path, SIMPLE_CLOSE_FEATURES) as (chain, alice, bob):
        sent_by_alice, sent_by_bob = closing_messages(alice), closing_messages(bob)
        await alice.start()
        await bob.start()
        capacity = 300_000
        channel_id = await open_channel(alice, bob, capacity, 50_000_000)
        alice_sat, bob_sat = balances_sat(alice, channel_id)
        assert (alice_sat, bob_sat) == (250_000, 50_000) and balances_sat(bob, channel_id) == (
            bob_sat,
            alice_sat,
        )
        feerate = alice.channels.watcher.feerate_per_kw

        closed = await alice.channels.close_channel(channel_id.hex())
        await wait_until(
            lambda: funding_spends(chain, alice, channel_id), "a closing transaction in the mempool"
        )
        await wait_until(
            lambda: all("closing_sig" in m.sent_names for m in (sent_by_alice, sent_by_bob)),
            "each side to sign the other's proposal",
        )
        [tx] = funding_spends(chain, alice, channel_id)  # the two proposals conflict: the chain keeps one
        # Each side's last broadcast is its own proposal, signed by the peer; `closechannel` answered with
        # the first one Alice broadcast, which need not be the one the chain kept.
        proposals = {m.channel(channel_id).state.closing_tx.txid for m in (alice, bob)}  # type: ignore[union-attr]
        assert len(proposals) == 2 and tx.txid in proposals and closed.closing_txid in proposals
        outputs = sorted(out.value for out in tx.outputs)
        fee = capacity - sum(outputs)
        # The closer pays the fee at the estimate, from its own output; the closee's is its balance.
        assert abs(fee - feerate * tx.weight // 1000) <= 2
        assert outputs in (sorted([alice_sat - fee, bob_sat]), sorted([alice_sat, bob_sat - fee]))
        for messages in (sent_by_alice, sent_by_bob):
            names = messages.sent_names
            assert names.count("closing_complete") == 1 and names.count("closing_sig") == 1
            assert "closing_signed" not in names

        await both_closed(chain, alice, bob, channel_id)
        alice_gets, bob_gets = received(alice, tx), received(bob, tx)
        assert len(alice_gets) == len(bob_gets) == 1
        assert sorted(alice_gets + bob_gets) == outputs
        assert alice_gets[0] in (alice_sat, alice_sat - fee) and bob_gets[0] in (bob_sat, bob_sat - fee)
        assert alice_gets[0] + bob_gets[0] + fee == capacity


@async_test
async def test_a_side_with_nothing_proposes_nothing_and_gets_no_output(tmp_path: Path) -> None:
    async with unstarted_pair(tmp_path, SIMPLE_CLOSE_FEATURES) as (chain, alice, bob):
        sent_by_alice, sent_by_bob = closing_messages(alice), closing_messages(bob)
        await alice.start()
        await bob.start()
        capacity = 200_000
        channel_id = await open_channel(alice, bob, capacity, 0)
        assert balances_sat(alice, channel_id) == (capacity, 0)

        closed = await bob.channels.close_channel(channel_id.hex())  # the side without funds asks
        await wait_until(
            lambda: funding_spends(chain, alice, channel_id), "a closing transaction in the mempool"
        )
        [tx] = funding_spends(chain, alice, channel_id)
        assert closed.closing_txid == tx.txid
        [output] = tx.outputs  # the closer's output only: Bob has none
        fee = capacity - output.value
        assert 0 < fee < 1_000
        await alice.channels.drain()
        await bob.channels.drain()
        assert sent_by_alice.sent_names == ["shutdown", "closing_complete"]
        assert sent_by_bob.sent_names == ["shutdown", "closing_sig"]

        await both_closed(chain, alice, bob, channel_id)
        assert received(alice, tx) == [capacity - fee] and received(bob, tx) == []
