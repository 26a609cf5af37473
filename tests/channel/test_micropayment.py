"""The payer and payee machines, unit by unit, with no I/O: opening, payments, refusals, closing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from ampere.bitcoin.tx import SEQUENCE_FINAL, OutPoint, Transaction, TxIn, TxOut
from ampere.channel.micropayment import (
    Ack,
    Action,
    BlockConnected,
    Broadcast,
    BuildFunding,
    ChainEventError,
    ChannelClosed,
    ChannelOpened,
    ChannelState,
    CommandRejectedError,
    ErrorCode,
    ErrorMessage,
    FundingBuilt,
    FundingConfirmed,
    FundingCreated,
    FundingSpent,
    OpeningRejectedError,
    Pay,
    PayeeChannel,
    PayeePhase,
    PayerChannel,
    PayerPhase,
    PaymentAccepted,
    PaymentRejected,
    PeerErrorReceived,
    Persist,
    PersistCompleted,
    Propose,
    Refund,
    RefundSigned,
    Response,
    Send,
    Settle,
    TxKind,
    UnexpectedMessageError,
    Update,
    UpdateRejectedError,
    Watch,
    decode_micro,
    encode_micro,
)
from ampere.channel.micropayment.loopback import Loopback
from ampere.channel.micropayment.transactions import sign_funding_spend

from .test_micropayment_support import (
    CAPACITY_SAT,
    CHAIN_HASH,
    CHANNEL_ID,
    CONFIG,
    PAYEE_KEY,
    PAYER_KEY,
    PAYOUT_SCRIPT,
    REFUND_HEIGHT,
    REFUND_SCRIPT,
    SAFETY_MARGIN,
    TIP,
    fake_funding,
    new_pair,
    open_pair,
    open_proposal,
    pay_all,
    signed_update,
)

# --- opening -------------------------------------------------------------------------------------


def _phase(channel: PayerChannel | PayeeChannel) -> str:
    """The phase's name, read through a call so that mypy does not carry one check over to the next."""
    return str(channel.phase.value)


def _send(actions: Sequence[Action], name: str) -> Send:
    """The only message among `actions`, which must be `name`."""
    sends = [action for action in actions if isinstance(action, Send)]
    assert [send.message.NAME for send in sends] == [name]
    return sends[0]


def test_opening_follows_the_order_of_operations() -> None:
    payer = PayerChannel.create(PAYER_KEY, 0, CHANNEL_ID, TIP)
    payee = PayeeChannel.create(PAYEE_KEY, 0, CONFIG, CHANNEL_ID, TIP)

    def run(machine: PayerChannel | PayeeChannel, actions: Sequence[Action]) -> list[Action]:
        """Check each batch is a lone Persist, confirm it, and return what it released."""
        assert len(actions) == 1 and isinstance(actions[0], Persist)
        return machine.handle(PersistCompleted(actions[0].revision))

    propose = _send(run(payer, payer.handle(open_proposal())), "micro_propose")
    accept = _send(run(payee, payee.receive(propose.data)), "micro_accept")
    [build] = run(payer, payer.receive(accept.data))
    assert isinstance(build, BuildFunding) and build.amount_sat == CAPACITY_SAT
    funding = fake_funding(build)
    created = _send(run(payer, payer.handle(FundingBuilt(funding))), "micro_funding")
    message = created.message
    assert isinstance(message, FundingCreated)
    # Only the outpoint goes out: with the signed funding the payee could lock the money up.
    assert message.funding_txid == funding.txid and funding.serialize() not in created.data
    assert _phase(payer) == "awaiting_refund_signature"

    signed = run(payee, payee.receive(created.data))
    assert [type(a) for a in signed] == [Watch, Send]
    refund_signed = _send(signed, "micro_refund_signed")
    # The broadcast comes only after the refund signature is stored.
    stored = payer.receive(refund_signed.data)
    assert len(stored) == 1 and isinstance(stored[0], Persist)
    released = payer.handle(PersistCompleted(stored[0].revision))
    assert [type(a) for a in released] == [Watch, Broadcast]
    assert isinstance(released[1], Broadcast) and released[1].kind is TxKind.FUNDING
    assert released[1].tx == funding
    refund = payer.signed_refund()
    assert refund.locktime == REFUND_HEIGHT and refund.inputs[0].sequence == 0xFFFF_FFFE
    assert refund.inputs[0].prevout == OutPoint(funding.txid, 1)
    assert [out.script_pubkey for out in refund.outputs] == [REFUND_SCRIPT]
    assert payer.public_state is ChannelState.OPENING and payee.public_state is ChannelState.OPENING


def test_payee_opens_at_minimum_depth_and_tells_the_payer() -> None:
    config = replace(CONFIG, minimum_depth=3)
    link = new_pair(config)
    link.payer.handle(open_proposal())
    link.deliver()
    funding = link.payer.machine.funding_tx
    assert funding is not None
    link.payee.handle(FundingConfirmed(funding, TIP + 1))
    link.payee.handle(BlockConnected(TIP + 2))
    assert _phase(link.payee.machine) == "awaiting_confirmation"
    link.payee.handle(BlockConnected(TIP + 3))
    assert _phase(link.payee.machine) == "open"
    link.deliver()  # micro_sync opens the payer
    assert _phase(link.payer.machine) == "open"
    assert any(isinstance(n, ChannelOpened) for n in link.payer.notices)
    assert any(isinstance(n, ChannelOpened) for n in link.payee.notices)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"chain_hash": b"\x01" * 32}, "another chain"),
        ({"capacity_sat": 5_000}, "capacity 5000 sat is outside"),
        ({"refund_height": TIP + 10}, "10 blocks ahead"),
        ({"feerate_per_kw": 100}, "feerate 100 sat/kw"),
        ({"refund_script": b"\x6a\x01\x00"}, "not a standard output script"),
    ],
)
def test_payee_refuses_bad_proposals(change: dict[str, Any], reason: str) -> None:
    payee = PayeeChannel.create(PAYEE_KEY, 0, CONFIG, CHANNEL_ID, TIP)
    good = Propose(
        CHANNEL_ID,
        CHAIN_HASH,
        CAPACITY_SAT,
        REFUND_HEIGHT,
        1000,
        PAYER_KEY.public_key.data,
        REFUND_SCRIPT,
    )
    with pytest.raises(OpeningRejectedError, match=reason) as caught:
        payee.receive(encode_micro(replace(good, **change)))
    assert caught.value.response is Response.CLOSE
    assert caught.value.reply is not None and caught.value.reply.code == ErrorCode.PROPOSAL_REJECTED
    assert payee.phase is PayeePhase.NEW and payee.revision == 0


def test_a_refused_proposal_ends_the_negotiation_on_both_sides() -> None:
    link = new_pair()
    link.payer.handle(open_proposal(capacity_sat=1_000))
    link.deliver()
    [payee_error] = link.payee.errors
    assert isinstance(payee_error, OpeningRejectedError)
    [payer_error] = link.payer.errors
    assert isinstance(payer_error, PeerErrorReceived) and payer_error.response is Response.CLOSE
    assert "capacity 1000 sat" in payer_error.message
    assert link.payer.machine.can_forget and link.payee.machine.can_forget


def _refund_variants(funding: OutPoint, good: Transaction) -> list[tuple[str, Transaction | bytes]]:
    txin = good.inputs[0]
    return [
        ("nLockTime", replace(good, locktime=REFUND_HEIGHT - 1)),
        ("nLockTime", replace(good, locktime=0)),
        ("nSequence", replace(good, inputs=(replace(txin, sequence=SEQUENCE_FINAL),))),
        (
            "not the announced funding output",
            replace(good, inputs=(replace(txin, prevout=OutPoint(b"\x09" * 32, 0)),)),
        ),
        ("exactly one output", replace(good, outputs=(TxOut(good.outputs[0].value, PAYOUT_SCRIPT),))),
        ("exactly one output", replace(good, outputs=(*good.outputs, TxOut(1_000, PAYOUT_SCRIPT)))),
        ("refunds", replace(good, outputs=(TxOut(CAPACITY_SAT + 1, REFUND_SCRIPT),))),
        ("2 inputs", replace(good, inputs=(txin, TxIn(OutPoint(b"\x08" * 32, 0))))),
        ("does not parse", b"\x02\x00\x00"),
    ]


def _until_refund_signature(link: Loopback) -> FundingCreated:
    """Run the opening by hand up to the payer's micro_funding, which is returned undelivered."""
    link.payer.handle(open_proposal())
    link.payee.receive(link.payer.outbox.pop())
    link.payer.receive(link.payee.outbox.pop())
    [data] = link.payer.outbox
    message = decode_micro(data)
    assert isinstance(message, FundingCreated)
    return message


def test_payee_signs_only_a_refund_that_is_safe() -> None:
    link = new_pair()
    good = _until_refund_signature(link)
    payee = link.payee.machine
    before = payee.state
    funding = OutPoint(good.funding_txid, good.funding_vout)
    for reason, refund in _refund_variants(funding, Transaction.parse(good.refund_tx)):
        raw = refund if isinstance(refund, bytes) else refund.serialize()
        with pytest.raises(OpeningRejectedError, match=reason) as caught:
            payee.handle(replace(good, refund_tx=raw))
        assert caught.value.code is ErrorCode.BAD_REFUND
        assert payee.state == before
    payee.handle(good)
    assert payee.phase is PayeePhase.AWAITING_CONFIRMATION


def test_payer_never_broadcasts_with_a_bad_refund_signature() -> None:
    link = new_pair()
    good = _until_refund_signature(link)
    payer = link.payer.machine
    terms = payer.terms
    assert terms is not None
    refund = Transaction.parse(good.refund_tx)
    before = payer.state
    forged = [
        bytes(64),
        sign_funding_spend(terms, refund, PAYER_KEY),  # the payer's own key, not the payee's
        sign_funding_spend(terms, replace(refund, locktime=0), PAYEE_KEY),  # the payee's, another tx
    ]
    for signature in forged:
        with pytest.raises(OpeningRejectedError, match="refund signature is invalid") as caught:
            payer.handle(RefundSigned(CHANNEL_ID, signature))
        assert caught.value.reply is not None
        assert payer.state == before
    assert link.payer.broadcasts == []
    link.payer.outbox.clear()
    link.payee.receive(encode_micro(good))
    link.deliver()
    assert [b.kind for b in link.payer.broadcasts] == [TxKind.FUNDING]


def test_payer_checks_the_funding_the_wallet_built() -> None:
    link = new_pair()
    link.payer.funding_builder = None
    link.payer.handle(open_proposal())
    link.deliver()
    [request] = [n for n in link.payer.notices if isinstance(n, BuildFunding)]
    good = fake_funding(request)
    payer = link.payer.machine
    legacy_input = replace(good, inputs=(replace(good.inputs[0], witness=()),))
    short = replace(good, outputs=(TxOut(request.amount_sat - 1, request.script_pubkey),))
    twice = replace(good, outputs=(*good.outputs, good.outputs[1]))
    for tx, reason in ((legacy_input, "segwit"), (short, "exactly once"), (twice, "exactly once")):
        with pytest.raises(CommandRejectedError, match=reason):
            payer.handle(FundingBuilt(tx))
    assert _phase(payer) == "awaiting_funding_tx"
    link.payer.handle(FundingBuilt(good))
    assert _phase(payer) == "awaiting_refund_signature"


# --- payments ------------------------------------------------------------------------------------


def test_payments_are_acked_and_the_payee_keeps_the_best() -> None:
    link = open_pair()
    pay_all(link, [1_500_000, 1, 2_000_999, 7])
    payee, payer = link.payee.machine, link.payer.machine
    assert (payee.sequence, payee.paid_msat) == (4, 3_501_007)
    assert (payer.sequence, payer.acked_paid_msat) == (4, 3_501_007)
    best, terms = payee.state.best, payee.terms
    assert terms is not None
    assert (best.payee_sat, best.change_sat) == (3_501, CAPACITY_SAT - 3_501 - terms.update_fee_sat)
    accepted = [n for n in link.payer.notices if isinstance(n, PaymentAccepted)]
    assert [n.paid_msat for n in accepted] == [1_500_000, 1_500_001, 3_501_000, 3_501_007]


def test_each_update_is_persisted_before_it_is_sent_and_acked() -> None:
    link = open_pair()
    payer, payee = link.payer.machine, link.payee.machine
    first = payer.handle(Pay(1_000_000))
    second = payer.handle(Pay(2_000_000))
    assert [type(a) for a in first + second] == [Persist, Persist]
    assert payer.awaiting_persist
    assert isinstance(second[0], Persist)
    released = payer.handle(PersistCompleted(second[0].revision))
    updates = [a.message for a in released if isinstance(a, Send) and isinstance(a.message, Update)]
    assert [(u.sequence, u.paid_msat) for u in updates] == [(1, 1_000_000), (2, 3_000_000)]
    persisted = payee.receive(encode_micro(updates[0]))
    assert len(persisted) == 1 and isinstance(persisted[0], Persist)  # no ack before it is durable
    acks = payee.handle(PersistCompleted(persisted[0].revision))
    assert [type(a) for a in acks] == [Send, PaymentAccepted]
    assert isinstance(acks[0], Send) and isinstance(acks[0].message, Ack)


def _refused(link: Loopback, update: Update, code: ErrorCode, text: str) -> None:
    payee = link.payee.machine
    before = payee.state
    with pytest.raises(UpdateRejectedError, match=text) as caught:
        payee.receive(encode_micro(update))
    error = caught.value
    assert error.code is code and error.response is Response.WARN and error.sequence == update.sequence
    assert error.reply == ErrorMessage(CHANNEL_ID, code, update.sequence, error.message)
    assert payee.state == before and not payee.awaiting_persist


def test_bad_updates_are_refused_and_the_channel_keeps_working() -> None:
    link = open_pair()
    pay_all(link, [5_000_000])
    payer = link.payer.machine.state
    terms = payer.terms
    assert terms is not None
    dust = terms.dust_limit_sat
    _refused(
        link,
        signed_update(payer, 4_000_000, sequence=2, amount_msat=1),
        ErrorCode.LOWER_AMOUNT,
        "does not increase",
    )
    _refused(
        link,
        signed_update(payer, 5_000_000, sequence=2, amount_msat=0),
        ErrorCode.LOWER_AMOUNT,
        "does not increase",
    )
    _refused(
        link,
        signed_update(payer, 6_000_000, sequence=2, amount_msat=1_000_000, key=PAYEE_KEY),
        ErrorCode.BAD_SIGNATURE,
        "signature does not sign",
    )
    good = signed_update(payer, 6_000_000, sequence=2, amount_msat=1_000_000)
    _refused(link, replace(good, signature=bytes(64)), ErrorCode.BAD_SIGNATURE, "signature")
    _refused(link, replace(good, sequence=3), ErrorCode.BAD_SEQUENCE, "expected sequence 2")
    _refused(link, replace(good, sequence=1), ErrorCode.BAD_SEQUENCE, "expected sequence 2")
    _refused(link, replace(good, amount_msat=999_999), ErrorCode.AMOUNT_MISMATCH, "promised 999999 msat")
    over = terms.max_paid_msat + 1
    _refused(
        link,
        signed_update(payer, over, sequence=2, amount_msat=over - 5_000_000),
        ErrorCode.OVER_CAPACITY,
        "over the",
    )
    _refused(
        link,
        signed_update(payer, 6_000_000, sequence=2, amount_msat=1_000_000, change_sat=dust - 1),
        ErrorCode.DUST_OUTPUT,
        "change output of",
    )
    _refused(
        link,
        signed_update(payer, 6_000_000, sequence=2, amount_msat=1_000_000, payee_sat=6_001),
        ErrorCode.OUTPUT_MISMATCH,
        "expected 6000/",
    )
    # The channel still works, from the same best state: the honest update is the one crafted above.
    link.payer.handle(Pay(1_000_000))
    assert link.payer.outbox == [encode_micro(good)]
    link.deliver()
    assert (link.payee.machine.sequence, link.payee.machine.paid_msat) == (2, 6_000_000)
    assert link.payer.machine.acked_paid_msat == 6_000_000


def test_a_dust_payee_output_is_refused_and_omitted_while_small() -> None:
    link = open_pair()
    payer = link.payer.machine.state
    terms = payer.terms
    assert terms is not None
    small = (terms.dust_limit_sat - 1) * 1000
    dusty = signed_update(payer, small, sequence=1, amount_msat=small, payee_sat=terms.dust_limit_sat - 1)
    _refused(link, dusty, ErrorCode.DUST_OUTPUT, "payee output of")
    pay_all(link, [small])  # honest: the output is left out
    best = link.payee.machine.state.best
    assert (best.sequence, best.payee_sat) == (1, 0)
    with pytest.raises(CommandRejectedError, match="nothing to settle"):
        link.payee.handle(Settle())
    # Even at the deadline the payee leaves such a state alone; the payer will take the refund.
    link.payee.handle(BlockConnected(REFUND_HEIGHT - SAFETY_MARGIN))
    assert link.payee.broadcasts == [] and link.payee.machine.phase is PayeePhase.OPEN


def test_payer_commands_are_checked() -> None:
    link = new_pair()
    with pytest.raises(CommandRejectedError, match="cannot pay while the channel is new"):
        link.payer.handle(Pay(1))
    link = open_pair()
    terms = link.payer.machine.terms
    assert terms is not None
    for amount, reason in (
        (0, "must be positive"),
        (-5, "must be positive"),
        (terms.max_paid_msat + 1, "over capacity"),
    ):
        with pytest.raises(CommandRejectedError, match=reason):
            link.payer.handle(Pay(amount))
    pay_all(link, [terms.max_paid_msat])  # everything the channel holds is payable
    assert link.payee.machine.paid_msat == terms.max_paid_msat
    assert link.payee.machine.state.best.change_sat == 0  # all of it went to the payee
    with pytest.raises(CommandRejectedError, match="over capacity"):
        link.payer.handle(Pay(1))
    with pytest.raises(CommandRejectedError, match="refund is locked until the tip reaches 600"):
        link.payer.handle(Refund())


def test_payments_stop_at_the_settlement_deadline_and_the_payer_rolls_back() -> None:
    link = open_pair()
    pay_all(link, [2_000_000])
    deadline = REFUND_HEIGHT - SAFETY_MARGIN
    # The payer, behind on blocks, pays while the payee has already reached the deadline.
    link.payee.machine.handle(BlockConnected(deadline))  # the settlement waits for its persist
    link.payer.handle(Pay(1_000_000))
    link.deliver()
    [error] = link.payee.errors
    assert isinstance(error, UpdateRejectedError) and error.code is ErrorCode.CLOSING
    [rejected] = [n for n in link.payer.notices if isinstance(n, PaymentRejected)]
    assert rejected.sequence == 2 and rejected.code == ErrorCode.CLOSING
    payer = link.payer.machine
    assert (payer.sequence, payer.paid_msat, payer.state.max_signed_msat) == (1, 2_000_000, 3_000_000)
    link.payer.handle(BlockConnected(deadline))
    with pytest.raises(CommandRejectedError, match="settles from height"):
        link.payer.handle(Pay(1))


def test_stale_acks_and_errors_change_nothing() -> None:
    link = open_pair()
    pay_all(link, [1_000_000, 1_000_000])
    payer = link.payer.machine
    before = payer.state
    assert payer.handle(Ack(CHANNEL_ID, 1, 1_000_000)) == []
    assert payer.handle(ErrorMessage(CHANNEL_ID, ErrorCode.BAD_SIGNATURE, 1, "old news")) == []
    with pytest.raises(UnexpectedMessageError) as caught:
        payer.handle(Ack(CHANNEL_ID, 3, 3_000_000))
    assert caught.value.response is Response.IGNORE and caught.value.reply is None
    assert payer.state == before


# --- reconnection and restart ----------------------------------------------------------------------


def test_updates_lost_in_a_disconnection_are_caught_up_in_one() -> None:
    link = open_pair()
    pay_all(link, [1_000_000])
    link.connected = False
    for amount in (2_000_000, 3_000_000, 4_000_000):
        link.payer.handle(Pay(amount))
    link.deliver()  # lost
    assert link.payee.machine.sequence == 1
    link.reconnect()
    payee, payer = link.payee.machine, link.payer.machine
    assert (payee.sequence, payee.paid_msat) == (2, 10_000_000)
    assert (payer.sequence, payer.acked_paid_msat) == (2, 10_000_000)
    pay_all(link, [5])
    assert (payee.sequence, payee.paid_msat) == (3, 10_000_005)


def test_a_lost_ack_is_recovered_from_the_sync() -> None:
    link = open_pair()
    link.payer.handle(Pay(1_000_000))
    link.payee.receive(link.payer.outbox.pop())
    link.payee.outbox.clear()  # the ack is lost
    assert link.payer.machine.acked_paid_msat == 0
    link.reconnect()
    assert link.payer.machine.acked_paid_msat == 1_000_000
    assert link.payee.machine.sequence == 1


def test_a_payer_restored_from_an_old_backup_adopts_what_it_signed() -> None:
    link = open_pair()
    pay_all(link, [1_000_000])
    old_backup = link.payer.stored, link.payer.stored_revision
    pay_all(link, [2_000_000, 3_000_000])
    link.payer.stored, link.payer.stored_revision = old_backup
    link.restart_payer(PAYER_KEY)
    assert link.payer.machine.paid_msat == 1_000_000
    link.reconnect()
    assert (link.payer.machine.sequence, link.payer.machine.paid_msat) == (3, 6_000_000)
    pay_all(link, [1])
    assert link.payee.machine.paid_msat == 6_000_001


def test_a_sync_without_the_payers_signature_is_refused() -> None:
    link = open_pair()
    pay_all(link, [1_000_000])
    payer = link.payer.machine
    before = payer.state
    from ampere.channel.micropayment import Sync

    with pytest.raises(UnexpectedMessageError, match="without our signature") as caught:
        payer.handle(Sync(CHANNEL_ID, 2, 50_000_000, bytes(64)))
    assert caught.value.code is ErrorCode.OUT_OF_SYNC
    with pytest.raises(UnexpectedMessageError, match="at sequence 0"):
        payer.handle(Sync(CHANNEL_ID, 0, 5, bytes(64)))
    assert payer.state == before


def test_restart_continues_from_the_same_sequence() -> None:
    link = open_pair()
    pay_all(link, [1_000_000] * 5)
    link.restart_payer(PAYER_KEY)
    link.restart_payee(PAYEE_KEY, CONFIG)
    assert link.payer.machine.sequence == link.payee.machine.sequence == 5
    assert any(isinstance(w, Watch) for w in link.payee.watches)
    link.reconnect()
    pay_all(link, [1_000_000])
    assert link.payee.machine.sequence == 6 and link.payer.machine.acked_paid_msat == 6_000_000


def test_opening_messages_are_resent_after_a_reconnection() -> None:
    link = new_pair()
    link.payer.handle(open_proposal())
    link.payee.receive(link.payer.outbox.pop())
    link.payee.outbox.clear()  # micro_accept lost
    link.reconnect()  # the payee sends its accept again, the payer its proposal (answered again)
    assert link.payer.machine.phase is PayerPhase.FUNDING_BROADCAST
    assert [b.kind for b in link.payer.broadcasts] == [TxKind.FUNDING]


# --- chain ---------------------------------------------------------------------------------------


def test_payer_refunds_by_itself_at_the_refund_height() -> None:
    link = open_pair()
    pay_all(link, [1_000_000])
    link.payer.broadcasts.clear()  # the funding's
    link.payer.handle(BlockConnected(REFUND_HEIGHT - 1))
    assert link.payer.broadcasts == []
    link.payer.handle(BlockConnected(REFUND_HEIGHT))
    [broadcast] = link.payer.broadcasts
    assert broadcast.kind is TxKind.REFUND and broadcast.tx == link.payer.machine.signed_refund()
    assert link.payer.machine.phase is PayerPhase.REFUNDING
    link.payer.handle(BlockConnected(REFUND_HEIGHT + 1))  # still unconfirmed: sent again
    assert len(link.payer.broadcasts) == 2
    for side in (link.payer, link.payee):
        side.handle(FundingSpent(broadcast.tx, REFUND_HEIGHT + 2))
    assert link.payer.machine.public_state is ChannelState.REFUNDED
    assert link.payee.machine.public_state is ChannelState.REFUNDED
    closed = [n for n in link.payee.notices if isinstance(n, ChannelClosed)]
    assert closed == [ChannelClosed(CHANNEL_ID, "refunded", broadcast.tx.txid, 0)]


def test_settlement_carries_both_signatures_and_closes_both_sides() -> None:
    link = open_pair()
    pay_all(link, [12_345_678])
    link.payee.handle(Settle())
    [broadcast] = link.payee.broadcasts
    settlement = broadcast.tx
    assert broadcast.kind is TxKind.SETTLEMENT and len(settlement.inputs[0].witness) == 4
    assert {o.script_pubkey: o.value for o in settlement.outputs}[PAYOUT_SCRIPT] == 12_345
    with pytest.raises(UpdateRejectedError, match="settling") as caught:
        link.payee.handle(
            signed_update(link.payer.machine.state, 13_000_000, sequence=2, amount_msat=654_322)
        )
    assert caught.value.code is ErrorCode.CLOSING
    for side in (link.payer, link.payee):
        side.handle(FundingSpent(settlement, REFUND_HEIGHT - 3))
    assert link.payer.machine.public_state is ChannelState.SETTLED
    assert [n.payee_sat for n in link.payer.notices if isinstance(n, ChannelClosed)] == [12_345]


def test_chain_events_that_do_not_fit_are_refused() -> None:
    link = open_pair()
    unrelated = Transaction(2, (TxIn(OutPoint(b"\x05" * 32, 0)),), (TxOut(1, REFUND_SCRIPT),), 0)
    for side in (link.payer, link.payee):
        before = side.machine.state
        with pytest.raises(ChainEventError, match="does not spend the funding output"):
            side.handle(FundingSpent(unrelated, TIP + 5))
        with pytest.raises(ChainEventError):
            side.handle(FundingConfirmed(unrelated, TIP + 5))
        with pytest.raises(ChainEventError, match="negative"):
            side.handle(BlockConnected(-1))
        assert side.machine.state == before


def test_payee_never_opens_on_a_funding_output_that_does_not_match() -> None:
    link = new_pair()
    good = _until_refund_signature(link)
    terms = link.payee.machine.terms
    funding = link.payer.machine.funding_tx
    assert terms is not None and funding is not None
    # A payer announcing a transaction that pays the 2-of-2 one satoshi short.
    cheap = replace(
        funding, outputs=(funding.outputs[0], replace(funding.outputs[1], value=CAPACITY_SAT - 1))
    )
    outpoint = OutPoint(cheap.txid, 1)
    link.payee.handle(replace(good, funding_txid=cheap.txid, refund_tx=terms.refund_tx(outpoint).serialize()))
    before = link.payee.machine.state
    with pytest.raises(ChainEventError, match="does not pay 100000 sat to the 2-of-2") as caught:
        link.payee.handle(FundingConfirmed(cheap, TIP + 1))
    assert caught.value.code is ErrorCode.BAD_FUNDING
    link.payee.handle(BlockConnected(TIP + 5))
    assert link.payee.machine.phase is PayeePhase.AWAITING_CONFIRMATION
    assert link.payee.machine.state == replace(before, tip_height=TIP + 5, revision=before.revision + 1)


def test_a_refusal_in_a_pipeline_rolls_back_once() -> None:
    link = open_pair()
    for amount in (1_000_000, 2_000_000, 3_000_000):
        link.payer.handle(Pay(amount))
    first, *rest = link.payer.outbox
    link.payer.outbox.clear()
    tampered = decode_micro(first)
    assert isinstance(tampered, Update)
    for data in (encode_micro(replace(tampered, signature=bytes(64))), *rest):
        link.payee.receive(data)
    assert [e.code for e in link.payee.errors] == [ErrorCode.BAD_SIGNATURE] + [ErrorCode.BAD_SEQUENCE] * 2
    errors = list(link.payee.outbox)
    link.payee.outbox.clear()
    link.payer.receive(errors[0])  # the refusal of update 1: back to nothing paid
    assert (link.payer.machine.sequence, link.payer.machine.paid_msat) == (0, 0)
    link.payer.handle(Pay(500_000))
    link.payer.handle(Pay(700_000))
    for data in errors[1:]:  # the refusals of the old updates 2 and 3 arrive late: no effect
        link.payer.receive(data)
    assert (link.payer.machine.sequence, link.payer.machine.paid_msat) == (2, 1_200_000)
    link.deliver()
    assert (link.payee.machine.sequence, link.payee.machine.paid_msat) == (2, 1_200_000)
    assert link.payer.machine.acked_paid_msat == 1_200_000
    [rejected] = [n for n in link.payer.notices if isinstance(n, PaymentRejected)]
    assert (rejected.sequence, rejected.paid_msat) == (1, 0)
    assert link.payer.machine.state.max_signed_msat == 6_000_000  # what a dishonest payee could keep
