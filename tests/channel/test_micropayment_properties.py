"""Properties: value is conserved by every update, and the payee's best state is the highest valid one."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.tx import OutPoint
from ampere.channel.micropayment import (
    ChannelTerms,
    CommandRejectedError,
    Pay,
    PayeeChannel,
    PayerChannel,
    Update,
    UpdateRejectedError,
    encode_micro,
)
from ampere.channel.micropayment.loopback import Loopback
from ampere.channel.micropayment.state import PayeeState, PayerState

from .test_micropayment_support import (
    CHAIN_HASH,
    CHANNEL_ID,
    CONFIG,
    PAYEE_KEY,
    PAYER_KEY,
    PAYOUT_SCRIPT,
    REFUND_SCRIPT,
    open_pair,
    signed_update,
)

FUNDING = OutPoint(b"\x42" * 32, 3)


@st.composite
def _terms(draw: st.DrawFn) -> ChannelTerms:
    terms = ChannelTerms(
        CHANNEL_ID,
        CHAIN_HASH,
        draw(st.integers(2_000, 50_000_000)),
        700_000,
        draw(st.integers(253, 20_000)),
        PAYER_KEY.public_key.data,
        PAYEE_KEY.public_key.data,
        REFUND_SCRIPT,
        draw(
            st.sampled_from([PAYOUT_SCRIPT, b"\x00\x20" + b"\x11" * 32, b"\xa9\x14" + b"\x22" * 20 + b"\x87"])
        ),
        draw(st.integers(0, 2_000)),
        6,
    )
    return terms


@given(_terms(), st.lists(st.integers(1, 10_000_000_000), max_size=40))
def test_every_update_conserves_value(terms: ChannelTerms, payments: list[int]) -> None:
    if terms.viability_problem() is not None:
        return
    paid = 0
    for amount in payments:
        if paid + amount > terms.max_paid_msat:
            continue  # the payer refuses it; the payee would too
        paid += amount
        outputs = terms.outputs_for(paid)
        tx = terms.update_tx(FUNDING, outputs)
        by_script: dict[bytes, int] = {out.script_pubkey: out.value for out in tx.outputs}
        payee_sat = by_script.get(terms.payout_script, 0)
        change_sat = by_script.get(terms.refund_script, 0)
        fee_sat = terms.capacity_sat - tx.total_output_value()
        assert payee_sat + change_sat + fee_sat == terms.capacity_sat
        # The payee gets floor(paid / 1000) or, below dust, nothing; the change is what is left after
        # the fixed fee or, below dust, nothing. Whatever is left out goes to the fee.
        owed_sat = paid // 1000
        change_due = terms.capacity_sat - owed_sat - terms.update_fee_sat
        assert payee_sat == (owed_sat if owed_sat >= terms.dust_limit_sat else 0)
        assert change_sat == (change_due if change_due >= terms.dust_limit_sat else 0)
        assert fee_sat == terms.update_fee_sat + (owed_sat - payee_sat) + (change_due - change_sat)
        assert all(out.value >= terms.dust_limit_sat for out in tx.outputs)
        assert tx.outputs, "a viable channel always has an output"


_OPEN = open_pair()
_OPEN_PAYER: PayerState = _OPEN.payer.machine.state
_OPEN_PAYEE: PayeeState = _OPEN.payee.machine.state
_FORGERIES = ["lower", "stale_sequence", "skip_sequence", "mismatch", "bad_signature", "dust", "over"]


def _fresh_pair() -> Loopback:
    return Loopback(PayerChannel(_OPEN_PAYER, PAYER_KEY), PayeeChannel(_OPEN_PAYEE, PAYEE_KEY, CONFIG))


def _forge(kind: str, payer: PayerState, best_sequence: int, best_paid: int, amount: int) -> Update:
    terms = payer.terms
    assert terms is not None
    next_sequence = best_sequence + 1
    honest = signed_update(payer, best_paid + amount, sequence=next_sequence, amount_msat=amount)
    if kind == "lower":
        lower = max(best_paid - amount, 0)
        return signed_update(payer, lower, sequence=next_sequence, amount_msat=amount)
    if kind == "stale_sequence":
        return replace(honest, sequence=best_sequence)
    if kind == "skip_sequence":
        return replace(honest, sequence=next_sequence + 1)
    if kind == "mismatch":
        return replace(honest, amount_msat=amount + 1)
    if kind == "bad_signature":
        return signed_update(
            payer, best_paid + amount, sequence=next_sequence, amount_msat=amount, key=PrivateKey.from_int(5)
        )
    if kind == "dust":
        return signed_update(
            payer, best_paid + amount, sequence=next_sequence, amount_msat=amount, change_sat=1
        )
    over = terms.max_paid_msat + 1
    return signed_update(payer, over, sequence=next_sequence, amount_msat=over - best_paid)


@given(
    st.lists(
        st.tuples(st.sampled_from(["pay", *_FORGERIES]), st.integers(1, 30_000_000)),
        min_size=1,
        max_size=25,
    )
)
def test_payee_best_is_always_the_highest_valid_update(steps: list[tuple[str, int]]) -> None:
    link = _fresh_pair()
    payee, payer = link.payee.machine, link.payer.machine
    terms = payee.terms
    assert terms is not None
    accepted: list[tuple[int, int]] = [(0, 0)]
    for kind, amount in steps:
        best = payee.state.best
        if kind == "pay":
            try:
                link.payer.handle(Pay(amount))
            except CommandRejectedError:
                assert best.paid_msat + amount > terms.max_paid_msat
            else:
                link.deliver()
                accepted.append((best.sequence + 1, best.paid_msat + amount))
        else:
            forged = _forge(kind, payer.state, best.sequence, best.paid_msat, amount)
            try:
                payee.receive(encode_micro(forged))
            except UpdateRejectedError:
                pass
            else:
                raise AssertionError(f"{kind} update accepted: {forged}")
        best = payee.state.best
        assert (best.sequence, best.paid_msat) == accepted[-1] == (payer.sequence, payer.acked_paid_msat)
        assert best.paid_msat == max(paid for _, paid in accepted)
    assert not link.payee.errors and not link.payer.errors
    if payee.state.best.payee_sat:
        settlement = payee.settlement_tx()
        fee = terms.capacity_sat - settlement.total_output_value()
        assert fee >= terms.update_fee_sat
        paid_to_payee = sum(o.value for o in settlement.outputs if o.script_pubkey == terms.payout_script)
        assert paid_to_payee == payee.paid_msat // 1000
