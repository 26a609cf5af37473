"""The demo's channel chapters (micropayment, two-way, penalty), played in-process on a real embedded chain.

Each test plays one chapter as `ampere demo` does and then checks what it left behind against the
chain and the channel cores: the verdicts the context recorded, the transactions actually confirmed,
the balances of both sides, and the revealed secrets against the owners' signers.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from ampere.bitcoin.keys import pubkey_from_secret
from ampere.bitcoin.tx import Transaction
from ampere.chain.embedded import EmbeddedChain
from ampere.channel.micropayment import ChannelState, ErrorCode
from ampere.channel.twoway import Phase
from ampere.channel.twoway.common import signed_local_commitment
from ampere.cli.demo.channel_kit import mine_to_wallets
from ampere.cli.demo.chapters import CHAPTERS
from ampere.cli.demo.context import DemoContext
from ampere.cli.demo.micropayment import (
    CAPACITY_SAT,
    PAYMENTS,
    SHORT_CHANNEL_PAYMENTS,
    payment_amounts,
    play_micropayment,
)
from ampere.cli.demo.narrator import Narrator
from ampere.cli.demo.penalty import play_penalty
from ampere.cli.demo.runner import FEERATE_PER_KW
from ampere.cli.demo.twoway import FUNDING_SAT, PAYMENT_MSAT, PUSH_MSAT, btc, play_two_way

BTC_MSAT = 100_000_000_000


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[DemoContext]:
    console = Console(file=io.StringIO(), width=200, highlight=False, soft_wrap=True)
    with EmbeddedChain(tmp_path / "chain") as chain:
        context = DemoContext.create(chain, Narrator(console), 6, FEERATE_PER_KW)
        mine_to_wallets(chain, [context.alice, context.bob])
        yield context


def _output(ctx: DemoContext) -> str:
    file = ctx.narrator.console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def _confirmed_height(ctx: DemoContext, tx: Transaction) -> int:
    height = ctx.chain.tx_status(tx.txid).block_height
    assert height is not None, f"{tx.txid_hex} is not confirmed"
    return height


def _block_transactions(ctx: DemoContext, height: int) -> list[Transaction]:
    block_hash = ctx.chain.block_hash(height)
    assert block_hash is not None
    block = ctx.chain.get_block(block_hash)
    assert block is not None
    return list(block.transactions)


def _touching(ctx: DemoContext, funding: Transaction, vout: int) -> list[Transaction]:
    """Every confirmed transaction that is `funding` or spends its channel output."""
    outpoint = funding.outpoint(vout)
    found = []
    for height in range(_confirmed_height(ctx, funding), ctx.tip + 1):
        block_hash = ctx.chain.block_hash(height)
        assert block_hash is not None
        block = ctx.chain.get_block(block_hash)
        assert block is not None
        found += [
            tx
            for tx in block.transactions
            if tx.txid == funding.txid or any(txin.prevout == outpoint for txin in tx.inputs)
        ]
    return found


def test_micropayment_chapter_pays_a_thousand_times_with_two_transactions(ctx: DemoContext) -> None:
    outcome = play_micropayment(ctx)
    assert ctx.narrator.surprises == []
    link = outcome.link
    settled, settlement = outcome.settled, outcome.settlement
    assert settled is not None and settlement is not None

    # The payee holds every payment, the bad update changed nothing, and the one after it counted.
    paid_msat = sum(payment_amounts(PAYMENTS)) + 5_000
    payee = link.payee.payee_channel(settled.channel_id)
    assert (payee.sequence, payee.paid_msat) == (PAYMENTS + 1, paid_msat)
    assert [refusal.code for refusal in link.payee.refusals] == [ErrorCode.LOWER_AMOUNT]
    assert link.payer.refusals == []

    # On chain: the funding and the settlement, nothing else; the outputs are what was paid.
    vout = settled.funding_outpoint.vout
    on_chain = [tx.txid for tx in _touching(ctx, settled.funding, vout)]
    assert on_chain == [settled.funding.txid, settlement.txid]
    terms = payee.terms
    assert terms is not None
    paid_to = {out.script_pubkey: out.value for out in settlement.outputs}
    assert paid_to == {
        terms.payout_script: paid_msat // 1000,
        terms.refund_script: CAPACITY_SAT - paid_msat // 1000 - terms.update_fee_sat,
    }
    assert ctx.bob.wallet.owns(terms.payout_script) and ctx.alice.wallet.owns(terms.refund_script)
    assert ctx.fee_of(settlement) + sum(paid_to.values()) == CAPACITY_SAT
    assert link.payer.payer_channel(settled.channel_id).public_state is ChannelState.SETTLED

    # The second channel: refused one block early, accepted at its height, confirmed in the next block.
    refunded, refund = outcome.refunded, outcome.refund
    assert refunded is not None and refund is not None
    assert refund.locktime == refunded.refund_height
    assert _confirmed_height(ctx, refund) == refunded.refund_height + 1
    assert [txin.prevout for txin in refund.inputs] == [refunded.funding_outpoint]
    assert refund.outputs[0].value + ctx.fee_of(refund) == CAPACITY_SAT
    assert link.payee.payee_channel(refunded.channel_id).paid_msat == sum(SHORT_CHANNEL_PAYMENTS)
    assert link.payee.payee_channel(refunded.channel_id).public_state is ChannelState.REFUNDED

    verdicts = ctx.narrator.verdicts
    refusals = [(what, reason) for what, accepted, reason in verdicts if not accepted]
    assert [reason for _, reason in refusals if reason.startswith("non-final")] == ["non-final"] * 2
    assert any("one block early" in what for what, _ in refusals)
    assert any(reason.startswith("bad-txns-inputs-missingorspent") for _, reason in refusals)
    assert sum(1 for _, accepted, _ in verdicts if accepted) == 4  # two fundings, settlement, refund

    out = _output(ctx)
    assert "micro_refund_signed" in out and "micro_error  code 2 (lower_amount)" in out
    assert f"{PAYMENTS - 3:,} more updates" in out
    assert "✘ rejected  the refund one block early" in out and ": non-final" in out


def test_two_way_chapter_moves_half_a_bitcoin_and_revokes_the_old_commitments(ctx: DemoContext) -> None:
    outcome = play_two_way(ctx)
    assert outcome is not None
    assert ctx.narrator.surprises == []
    alice, bob = outcome.link.alice, outcome.link.bob

    # "1 BTC each", then Alice pays Bob 0.5 BTC: 0.5 / 1.5, both views, conserved.
    (alice_before, bob_before), (alice_after, bob_after) = outcome.before, outcome.after
    assert alice_before.local_balance_msat == bob_before.local_balance_msat == PUSH_MSAT == BTC_MSAT
    assert alice_after.local_balance_msat == BTC_MSAT - PAYMENT_MSAT == BTC_MSAT // 2
    assert bob_after.local_balance_msat == BTC_MSAT + PAYMENT_MSAT
    for summary in (alice_before, bob_before, alice_after, bob_after):
        assert summary.local_balance_msat + summary.remote_balance_msat == FUNDING_SAT * 1000
        assert summary.pending_htlcs == ()
    assert alice_after.remote_balance_msat == bob_after.local_balance_msat

    # The BOLT 2 exchange, as it crossed the wire.
    assert outcome.link.delivered == [
        "OpenChannel",
        "AcceptChannel",
        "FundingCreated",
        "FundingSigned",
        "ChannelReady",
        "ChannelReady",
        "UpdateAddHtlc",
        "CommitmentSigned",
        "RevokeAndAck",
        "CommitmentSigned",
        "RevokeAndAck",
        "UpdateFulfillHtlc",
        "CommitmentSigned",
        "RevokeAndAck",
        "CommitmentSigned",
        "RevokeAndAck",
    ]

    # Commitment #2 on both sides; #0 and #1 revoked with secrets that match the owners' own points.
    for node in (alice, bob):
        ledger = node.state.require_ledger()
        assert node.state.phase is Phase.NORMAL
        assert (ledger.local_commitment_number, ledger.remote_commitment_number) == (2, 2)
        assert not ledger.awaiting_revocation
        for number in (0, 1):
            secret = outcome.link.secrets[(node.name, number)]
            assert pubkey_from_secret(secret) == node.channel.signer.per_commitment_point(number)
        assert (node.name, 2) not in outcome.link.secrets

    # The funding is confirmed and unspent; each current commitment is valid against the chain.
    funding = alice.state.funding_outpoint
    assert funding is not None
    coin = ctx.chain.get_txout(funding, include_mempool=False)
    assert coin is not None and coin.output.value == FUNDING_SAT and coin.height is not None
    for node in (alice, bob):
        ctx.chain.test_accept(signed_local_commitment(node.state, node.context()))
    assert [accepted for _, accepted, _ in ctx.narrator.verdicts] == [True, True, True]
    assert ctx.chain.mempool_txids() == []  # tested, never broadcast

    out = _output(ctx)
    assert "张三 (Alice) → 李四 (Bob)  update_add_htlc" in out
    assert "李四 (Bob) → 张三 (Alice)  revoke_and_ack  revokes 李四 (Bob)'s commitment #0" in out
    assert "张三 (Alice): own 0.5 BTC, peer 1.5 BTC" in out and "李四 (Bob): own 1.5 BTC, peer 0.5 BTC" in out
    assert "will not sign her revoked commitment #1" in out


def test_penalty_chapter_gives_bob_the_whole_channel(ctx: DemoContext) -> None:
    alice_before, bob_before = ctx.alice.balance_sat(ctx.chain), ctx.bob.balance_sat(ctx.chain)
    outcome = play_penalty(ctx)
    assert outcome is not None
    out = _output(ctx)
    assert "NOT AS EXPECTED" not in out and "DOES NOT HOLD" not in out, out
    cheat = outcome.cheat
    # The cheat is Alice's commitment #0 (BOLT 3's obscured number is 0 for the first commitment) ...
    [funding_input] = cheat.inputs
    breach_height = _confirmed_height(ctx, cheat)
    # ... and everything that spends it on chain is Bob's node's, paying Bob's wallet only.
    spends = [
        tx
        for height in range(breach_height, ctx.tip + 1)
        for tx in _block_transactions(ctx, height)
        if any(txin.prevout.txid == cheat.txid for txin in tx.inputs)
    ]
    assert spends and {tx.txid for tx in spends} == {tx.txid for tx in outcome.claims}
    justice_heights = [_confirmed_height(ctx, tx) for tx in spends]
    assert max(justice_heights) < breach_height + ctx.to_self_delay  # before Alice could sweep
    spent = {txin.prevout for tx in spends for txin in tx.inputs}
    unclaimed = [cheat.outpoint(v) for v in range(len(cheat.outputs)) if cheat.outpoint(v) not in spent]
    assert all(cheat.outputs[o.vout].value == 330 for o in unclaimed)  # only the anchors are left
    for tx in spends:
        assert all(ctx.bob.wallet.owns(out.script_pubkey) for out in tx.outputs)
        assert not any(ctx.alice.wallet.owns(out.script_pubkey) for out in tx.outputs)
    bob_gained = ctx.bob.balance_sat(ctx.chain) - bob_before
    assert FUNDING_SAT - 20_000 < bob_gained < FUNDING_SAT
    # Alice's wallet: only the funding's change left it; nothing came back from the channel.
    funding_tx = ctx.chain.get_transaction(funding_input.prevout.txid)
    assert funding_tx is not None
    assert ctx.alice.balance_sat(ctx.chain) - alice_before == -FUNDING_SAT - ctx.fee_of(funding_tx[0])
    assert outcome.resolver.resolved


def test_btc_amounts_are_printed_without_floats() -> None:
    assert btc(50_000_000_000) == "0.5 BTC"
    assert btc(150_000_000_000) == "1.5 BTC"
    assert btc(200_000_000_000) == "2.0 BTC"
    assert btc(12_345_678) == "0.00012345 BTC"  # msat below a satoshi are not shown


def test_channel_chapters_come_first_in_order() -> None:
    assert [chapter.name for chapter in CHAPTERS] == [
        "micropayment",
        "two-way",
        "penalty",
        "force-close",
        "breach",
        "anchors",
    ]


def test_the_channel_chapters_are_selectable_from_the_command_line() -> None:
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "ampere.cli.main", "demo", "--only", "two-way", "--only", "micropayment"],
        cwd=root,
        env=dict(os.environ, PYTHONIOENCODING="utf-8"),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.index("A two-way channel") < out.index("A micropayment channel")  # in the order asked
    assert "A force close" not in out and "NOT AS EXPECTED" not in out
    assert "All 10 verdicts as expected" in out
