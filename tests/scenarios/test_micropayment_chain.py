"""The micropayment channel on the embedded chain: every transaction judged by libbitcoinkernel.

Both machines run in-process and talk through `Loopback`, which passes each message as bytes through
`encode_micro`/`decode_micro`. A small shell here does what the node will: the payer's "wallet" (a
faucet coin) builds the funding, broadcasts go to the embedded mempool, and every new block is fed
back as `FundingConfirmed` / `FundingSpent` / `BlockConnected`. Heights follow the contract:
"accepted at height H" means the tip is H and the transaction is valid in block H + 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.network import Network
from ampere.bitcoin.tx import Transaction, TxOut
from ampere.chain.embedded import EmbeddedChain
from ampere.chain.errors import BroadcastError, RejectReason
from ampere.channel.micropayment import (
    BlockConnected,
    BuildFunding,
    ChannelClosed,
    ChannelState,
    FundingConfirmed,
    FundingSpent,
    OpenChannel,
    Pay,
    PayeeChannel,
    PayeeConfig,
    PayerChannel,
    Settle,
    TxKind,
)
from ampere.channel.micropayment.loopback import Loopback, Side
from tests.chain.helpers import SINK_SCRIPT, fund_p2wpkh, p2wpkh_spk, spend_p2wpkh

from .onchain import confirm, mine_to, rejected, tally

CHAIN_HASH = Network.REGTEST.chain_hash
CAPACITY_SAT = 1_000_000
FEERATE_PER_KW = 1000
REFUND_AFTER = 40
SAFETY_MARGIN = 6
PAYER_KEY = PrivateKey.from_int(0xA11CE)
PAYEE_KEY = PrivateKey.from_int(0xB0B)
WALLET_KEY = PrivateKey.from_int(0xA11CE_0001)
REFUND_SCRIPT = p2wpkh_spk(PrivateKey.from_int(0xA11CE_0002))
PAYOUT_SCRIPT = p2wpkh_spk(PrivateKey.from_int(0xB0B_0002))
CHANNEL_ID = bytes.fromhex("6d" * 32)
CONFIG = PayeeConfig(
    CHAIN_HASH,
    PAYOUT_SCRIPT,
    safety_margin=SAFETY_MARGIN,
    minimum_depth=1,
    min_refund_delta=20,
)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[EmbeddedChain]:
    with EmbeddedChain(tmp_path / "chain") as opened:
        yield opened


class Shell:
    """What a node does around the two machines: the wallet, broadcasts and the block feed."""

    def __init__(self, chain: EmbeddedChain) -> None:
        self.chain = chain
        coin = fund_p2wpkh(chain, WALLET_KEY, CAPACITY_SAT + 10_000)

        def build_funding(request: BuildFunding) -> Transaction:
            output = TxOut(request.amount_sat, request.script_pubkey)
            return spend_p2wpkh([coin], [output], change_script=p2wpkh_spk(WALLET_KEY))

        tip = chain.tip_height()
        self.link = Loopback(
            PayerChannel.create(PAYER_KEY, 0, CHANNEL_ID, tip),
            PayeeChannel.create(PAYEE_KEY, 0, CONFIG, CHANNEL_ID, tip),
        )
        self.link.payer.funding_builder = build_funding
        self.seen = {id(self.link.payer): tip, id(self.link.payee): tip}
        self.refund_height = tip + REFUND_AFTER

    @property
    def payer(self) -> Side[PayerChannel]:
        return self.link.payer

    @property
    def payee(self) -> Side[PayeeChannel]:
        return self.link.payee

    def submit(self, side: Side[PayerChannel] | Side[PayeeChannel]) -> list[Transaction]:
        """Hand the side's new broadcasts to the mempool; returns those it took."""
        taken = []
        pending, side.broadcasts = side.broadcasts, []
        for broadcast in pending:
            try:
                self.chain.submit(broadcast.tx)
            except BroadcastError as exc:
                if exc.reason is not RejectReason.ALREADY_IN_CHAIN:
                    raise
            else:
                taken.append(broadcast.tx)
        return taken

    def feed(self, side: Side[PayerChannel] | Side[PayeeChannel]) -> None:
        """Every block the side has not seen: its transactions that concern the channel, then the tip."""
        machine = side.machine
        for height in range(self.seen[id(side)] + 1, self.chain.tip_height() + 1):
            block_hash = self.chain.block_hash(height)
            assert block_hash is not None
            block = self.chain.get_block(block_hash)
            assert block is not None
            for tx in block.transactions:
                outpoint = machine.funding_outpoint
                if outpoint is None:
                    continue
                if tx.txid == outpoint.txid:
                    side.handle(FundingConfirmed(tx, height))
                elif any(txin.prevout == outpoint for txin in tx.inputs):
                    side.handle(FundingSpent(tx, height))
            side.handle(BlockConnected(height))
            self.seen[id(side)] = height
        self.link.deliver()

    def feed_both(self) -> None:
        self.feed(self.payer)
        self.feed(self.payee)

    def open(self) -> Transaction:
        """Propose, accept, refund signed, funding broadcast and mined; both sides open."""
        self.payer.handle(
            OpenChannel(CHAIN_HASH, CAPACITY_SAT, self.refund_height, FEERATE_PER_KW, REFUND_SCRIPT)
        )
        self.link.deliver()
        assert self.payer.machine.state.refund_signature is not None
        [funding] = self.submit(self.payer)
        assert [b.kind for b in self.payer.broadcasts] == []
        confirm(self.chain, [funding])
        self.feed_both()
        assert self.payer.machine.public_state is ChannelState.OPEN
        assert self.payee.machine.public_state is ChannelState.OPEN
        return funding

    def pay(self, amounts: list[int]) -> int:
        for amount in amounts:
            self.payer.handle(Pay(amount))
            self.link.deliver()
        assert not self.payee.errors and not self.payer.errors
        return sum(amounts)


def _amounts(count: int) -> list[int]:
    """Deterministic, uneven payments: from 1 msat-odd amounts to a few thousand sat."""
    return [1_000 + (index * 7_919) % 1_000_000 + index % 7 for index in range(count)]


def _closed(side: Side[PayerChannel] | Side[PayeeChannel]) -> ChannelClosed:
    closed = [notice for notice in side.notices if isinstance(notice, ChannelClosed)]
    assert len(closed) == 1
    return closed[0]


def test_thousand_payments_then_settle_leaves_two_transactions(chain: EmbeddedChain) -> None:
    shell = Shell(chain)
    funding = shell.open()
    paid_msat = shell.pay(_amounts(1_000))
    payee = shell.payee.machine
    assert (payee.sequence, payee.paid_msat) == (1_000, paid_msat)
    assert shell.payer.machine.state.acked_paid_msat == paid_msat

    shell.payee.handle(Settle())
    [settlement] = shell.submit(shell.payee)
    confirm(chain, [settlement])
    shell.feed_both()

    # On chain: the funding and the settlement, nothing else of the channel.
    outpoint = funding.outpoint(shell.payer.machine.state.funding_vout)
    assert [txin.prevout for txin in settlement.inputs] == [outpoint]
    money = tally(chain, outpoint, [settlement])
    terms = payee.terms
    assert terms is not None
    payee_sat = paid_msat // 1000
    assert money.final_outputs == {
        settlement.outpoint(vout): out.value for vout, out in enumerate(settlement.outputs)
    }
    paid_to = {out.script_pubkey: out.value for out in settlement.outputs}
    assert paid_to == {
        PAYOUT_SCRIPT: payee_sat,
        REFUND_SCRIPT: CAPACITY_SAT - payee_sat - terms.update_fee_sat,
    }
    assert money.fees_sat == terms.update_fee_sat
    refund = shell.payer.machine.signed_refund()
    assert chain.get_transaction(refund.txid) is None
    assert shell.payer.machine.public_state is ChannelState.SETTLED
    assert payee.public_state is ChannelState.SETTLED
    assert _closed(shell.payer).payee_sat == payee_sat == _closed(shell.payee).payee_sat
    # The refund can never follow: its input is gone.
    mine_to(chain, shell.refund_height)
    rejected(chain, refund, RejectReason.MISSING_OR_SPENT_INPUTS, "missingorspent")


def test_refund_is_non_final_before_its_height_and_recovers_the_money(chain: EmbeddedChain) -> None:
    shell = Shell(chain)
    funding = shell.open()
    shell.pay(_amounts(5))
    payer = shell.payer.machine
    refund = payer.signed_refund()
    assert refund.locktime == shell.refund_height
    assert refund.inputs[0].sequence == 0xFFFF_FFFE

    # The payee disappears: nobody feeds it blocks any more, so it never settles.
    mine_to(chain, shell.refund_height - 1)
    shell.feed(shell.payer)
    assert shell.payer.broadcasts == []  # the payer knows the refund is not valid yet
    rejected(chain, refund, RejectReason.NON_FINAL, "non-final")

    mine_to(chain, shell.refund_height)
    shell.feed(shell.payer)  # the tip is refund_height: the payer refunds by itself
    assert [b.kind for b in shell.payer.broadcasts] == [TxKind.REFUND]
    [broadcast] = shell.submit(shell.payer)
    assert broadcast.txid == refund.txid
    assert chain.tx_status(refund.txid).in_mempool
    confirm(chain, [refund])
    shell.feed(shell.payer)
    assert payer.public_state is ChannelState.REFUNDED
    money = tally(chain, funding.outpoint(payer.state.funding_vout), [refund])
    assert list(money.final_outputs.values()) == [refund.outputs[0].value]
    assert refund.outputs[0].script_pubkey == REFUND_SCRIPT
    # The payee comes back and learns what happened.
    shell.feed(shell.payee)
    assert shell.payee.machine.public_state is ChannelState.REFUNDED


def test_payee_settles_by_itself_at_the_safety_margin(chain: EmbeddedChain) -> None:
    shell = Shell(chain)
    shell.open()
    paid_msat = shell.pay(_amounts(20))
    settle_height = shell.refund_height - SAFETY_MARGIN
    mine_to(chain, settle_height - 1)
    shell.feed(shell.payee)
    assert shell.payee.broadcasts == []
    mine_to(chain, settle_height)
    shell.feed(shell.payee)  # the payer is silent: it sees no block at all
    [settlement] = shell.submit(shell.payee)
    confirm(chain, [settlement])
    shell.feed_both()
    assert shell.payee.machine.public_state is ChannelState.SETTLED
    assert shell.payer.machine.public_state is ChannelState.SETTLED
    assert _closed(shell.payee).payee_sat == paid_msat // 1000


def test_restarting_both_sides_mid_stream_loses_nothing(chain: EmbeddedChain) -> None:
    shell = Shell(chain)
    shell.open()
    amounts = _amounts(300)
    shell.pay(amounts[:150])
    shell.link.restart_payer(PAYER_KEY)
    shell.link.restart_payee(PAYEE_KEY, CONFIG)
    assert shell.link.reconnect() >= 1  # the payee's micro_sync
    assert shell.payer.machine.sequence == 150
    shell.pay(amounts[150:])
    assert shell.payee.machine.sequence == 300
    shell.payee.handle(Settle())
    [settlement] = shell.submit(shell.payee)
    accepted_outputs = {out.script_pubkey: out.value for out in settlement.outputs}
    assert accepted_outputs[PAYOUT_SCRIPT] == sum(amounts) // 1000
    confirm(chain, [settlement])
    shell.feed_both()
    assert shell.payer.machine.public_state is ChannelState.SETTLED


def test_funding_waits_for_the_refund_signature(chain: EmbeddedChain) -> None:
    """Until the payee's refund signature is verified, the signed funding never leaves the payer."""
    shell = Shell(chain)
    shell.payer.handle(
        OpenChannel(CHAIN_HASH, CAPACITY_SAT, shell.refund_height, FEERATE_PER_KW, REFUND_SCRIPT)
    )
    shell.link.disconnect()  # the proposal is lost; nothing else happens
    assert shell.payer.broadcasts == []
    shell.link.reconnect()  # the payer proposes again; this time the exchange completes
    assert [b.kind for b in shell.payer.broadcasts] == [TxKind.FUNDING]
    [funding] = shell.submit(shell.payer)
    confirm(chain, [funding])
    chain.generate(1, SINK_SCRIPT)
    shell.feed_both()
    assert shell.payer.machine.public_state is ChannelState.OPEN
