"""Shared setup of the micropayment tests (no tests here): keys, policy, and channels made to order.

No chain: the funding transaction is a stand-in with one (fake) segwit input, which the machines
accept because they never see its inputs' coins; the chain scenarios use real ones.
"""

from __future__ import annotations

from dataclasses import replace

from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.network import Network
from ampere.bitcoin.script import p2wpkh_script
from ampere.bitcoin.tx import OutPoint, Transaction, TxIn, TxOut
from ampere.channel.micropayment import (
    BlockConnected,
    BuildFunding,
    FundingConfirmed,
    OpenChannel,
    Pay,
    PayeeChannel,
    PayeeConfig,
    PayerChannel,
    Update,
)
from ampere.channel.micropayment.loopback import Loopback
from ampere.channel.micropayment.state import PayeeState, PayerState
from ampere.channel.micropayment.transactions import sign_funding_spend

CHAIN_HASH = Network.REGTEST.chain_hash
PAYER_KEY = PrivateKey.from_int(0x1111)
PAYEE_KEY = PrivateKey.from_int(0x2222)
REFUND_SCRIPT = p2wpkh_script(PrivateKey.from_int(0x3333).public_key.data)
PAYOUT_SCRIPT = p2wpkh_script(PrivateKey.from_int(0x4444).public_key.data)
CHANNEL_ID = bytes.fromhex("c4" * 32)
TIP = 500
REFUND_AFTER = 100
REFUND_HEIGHT = TIP + REFUND_AFTER
CAPACITY_SAT = 100_000
FEERATE_PER_KW = 1000
SAFETY_MARGIN = 6
CONFIG = PayeeConfig(
    CHAIN_HASH, PAYOUT_SCRIPT, safety_margin=SAFETY_MARGIN, minimum_depth=1, min_refund_delta=20
)


def fake_funding(request: BuildFunding) -> Transaction:
    """A signed-looking funding transaction: one segwit input, the funding output and some change."""
    return Transaction(
        2,
        (TxIn(OutPoint(b"\x07" * 32, 1), b"", 0xFFFF_FFFD, (b"\x30" * 71, b"\x02" * 33)),),
        (TxOut(5_000, REFUND_SCRIPT), TxOut(request.amount_sat, request.script_pubkey)),
        0,
    )


def open_proposal(capacity_sat: int = CAPACITY_SAT, refund_height: int = REFUND_HEIGHT) -> OpenChannel:
    return OpenChannel(CHAIN_HASH, capacity_sat, refund_height, FEERATE_PER_KW, REFUND_SCRIPT)


def new_pair(config: PayeeConfig = CONFIG) -> Loopback:
    link = Loopback(
        PayerChannel.create(PAYER_KEY, 7, CHANNEL_ID, TIP),
        PayeeChannel.create(PAYEE_KEY, 9, config, CHANNEL_ID, TIP),
    )
    link.payer.funding_builder = fake_funding
    return link


def open_pair(capacity_sat: int = CAPACITY_SAT, config: PayeeConfig = CONFIG) -> Loopback:
    """Both sides open: proposal, acceptance, refund signed, funding confirmed at TIP + 1."""
    link = new_pair(config)
    link.payer.handle(open_proposal(capacity_sat))
    link.deliver()
    funding = link.payer.machine.funding_tx
    assert funding is not None
    for side in (link.payer, link.payee):
        side.handle(FundingConfirmed(funding, TIP + 1))
    link.payer.handle(BlockConnected(TIP + 1))
    link.payee.handle(BlockConnected(TIP + 1))
    link.deliver()
    assert link.payer.machine.phase.value == "open" and link.payee.machine.phase.value == "open"
    return link


def pay_all(link: Loopback, amounts: list[int]) -> None:
    for amount in amounts:
        link.payer.handle(Pay(amount))
        link.deliver()


def signed_update(
    payer: PayerState,
    paid_msat: int,
    *,
    sequence: int,
    amount_msat: int,
    payee_sat: int | None = None,
    change_sat: int | None = None,
    key: PrivateKey = PAYER_KEY,
) -> Update:
    """An update as a payer (honest or not) could send: the outputs default to the canonical ones and
    the signature is over the transaction those outputs describe."""
    terms = payer.terms
    outpoint = payer.funding_outpoint
    assert terms is not None and outpoint is not None
    canonical = terms.outputs_for(paid_msat)
    outputs = replace(
        canonical,
        payee_sat=canonical.payee_sat if payee_sat is None else payee_sat,
        change_sat=canonical.change_sat if change_sat is None else change_sat,
    )
    tx = terms.update_tx(outpoint, outputs)
    return Update(
        payer.channel_id,
        sequence,
        amount_msat,
        paid_msat,
        outputs.payee_sat,
        outputs.change_sat,
        sign_funding_spend(terms, tx, key),
    )


def payee_snapshot(link: Loopback) -> PayeeState:
    return link.payee.machine.state
