"""The payee's transitions: pure functions `(context, state, event) -> (state, actions)`.

Which of them runs in which phase is the table in `transitions.py`. The payee is the side that must
check everything: it signs the refund that lets the payer's money go back, and it accepts updates
that are its only claim to be paid.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ampere.bitcoin.errors import DeserializationError
from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.tx import SEQUENCE_LOCKTIME_ONLY, OutPoint, Transaction
from ampere.channel.micropayment.errors import (
    ChainEventError,
    CommandRejectedError,
    ErrorCode,
    MicropaymentError,
    OpeningRejectedError,
    PeerErrorReceived,
    Response,
    UnexpectedMessageError,
    UpdateRejectedError,
)
from ampere.channel.micropayment.events import (
    Action,
    BlockConnected,
    BlockDisconnected,
    Broadcast,
    ChannelClosed,
    ChannelOpened,
    FundingConfirmed,
    FundingSpent,
    PaymentAccepted,
    PeerConnected,
    Resumed,
    Send,
    Settle,
    TxKind,
    Watch,
)
from ampere.channel.micropayment.messages import (
    Accept,
    Ack,
    ErrorMessage,
    FundingCreated,
    Propose,
    RefundSigned,
    Sync,
    Update,
)
from ampere.channel.micropayment.state import BestUpdate, PayeeConfig, PayeePhase, PayeeState
from ampere.channel.micropayment.transactions import (
    LOCKTIME_THRESHOLD,
    ChannelTerms,
    is_standard_payout_script,
    sign_funding_spend,
    verify_funding_spend,
)

__all__ = ["PayeeContext", "PayeeStep"]

PayeeStep = tuple[PayeeState, tuple[Action, ...]]
_P = PayeePhase


@dataclass(frozen=True, slots=True)
class PayeeContext:
    """The payee's funding key and policy; neither is part of the serialized state."""

    key: PrivateKey
    config: PayeeConfig


def _terms(state: PayeeState) -> ChannelTerms:
    if state.terms is None:
        raise MicropaymentError("the channel has no agreed terms yet")
    return state.terms


def _outpoint(state: PayeeState) -> OutPoint:
    if state.funding_outpoint is None:
        raise MicropaymentError("the channel has no funding outpoint yet")
    return state.funding_outpoint


def _refund(state: PayeeState) -> Transaction:
    if state.refund_tx is None:
        raise MicropaymentError("the channel has no refund yet")
    return state.refund_tx


def _accept(state: PayeeState) -> Accept:
    terms = _terms(state)
    return Accept(
        state.channel_id,
        state.funding_pubkey,
        terms.announced_dust_limit_sat,
        terms.safety_margin,
        terms.payout_script,
    )


def _refund_signed(context: PayeeContext, state: PayeeState) -> RefundSigned:
    return RefundSigned(state.channel_id, sign_funding_spend(_terms(state), _refund(state), context.key))


def _sync(state: PayeeState) -> Sync:
    return Sync(state.channel_id, state.best.sequence, state.best.paid_msat, state.best.signature)


def _watch(state: PayeeState) -> Watch:
    outpoint = _outpoint(state)
    return Watch(outpoint.txid, outpoint, _terms(state).funding_script_pubkey)


def settlement_tx(context: PayeeContext, state: PayeeState) -> Transaction:
    """The best update with both signatures."""
    terms = _terms(state)
    best = state.best
    tx = terms.update_tx(_outpoint(state), terms.outputs_for(best.paid_msat))
    return terms.with_signatures(tx, best.signature, sign_funding_spend(terms, tx, context.key))


# --- opening -------------------------------------------------------------------------------------


def _proposal_problems(config: PayeeConfig, tip: int, proposal: Propose) -> list[str]:
    problems = []
    if proposal.chain_hash != config.chain_hash:
        problems.append("the proposal is for another chain")
    if not config.min_capacity_sat <= proposal.capacity_sat <= config.max_capacity_sat:
        problems.append(
            f"capacity {proposal.capacity_sat} sat is outside "
            f"[{config.min_capacity_sat}, {config.max_capacity_sat}] sat"
        )
    if not config.min_feerate_per_kw <= proposal.feerate_per_kw <= config.max_feerate_per_kw:
        problems.append(
            f"feerate {proposal.feerate_per_kw} sat/kw is outside "
            f"[{config.min_feerate_per_kw}, {config.max_feerate_per_kw}]"
        )
    delta = proposal.refund_height - tip
    shortest = max(config.min_refund_delta, config.safety_margin + config.minimum_depth + 1)
    if proposal.refund_height >= LOCKTIME_THRESHOLD or not shortest <= delta <= config.max_refund_delta:
        problems.append(
            f"refund height {proposal.refund_height} is {delta} blocks ahead of the tip {tip}; "
            f"accepted: {shortest} to {config.max_refund_delta}"
        )
    if not is_standard_payout_script(proposal.refund_script):
        problems.append("the refund script is not a standard output script")
    return problems


def propose(context: PayeeContext, state: PayeeState, message: Propose) -> PayeeStep:
    config = context.config
    problems = _proposal_problems(config, state.tip_height, message)
    terms = ChannelTerms(
        state.channel_id,
        message.chain_hash,
        message.capacity_sat,
        message.refund_height,
        message.feerate_per_kw,
        message.payer_funding_pubkey,
        state.funding_pubkey,
        message.refund_script,
        config.payout_script,
        config.dust_limit_sat,
        config.safety_margin,
    )
    if not problems:
        problem = terms.viability_problem()
        problems += [] if problem is None else [problem]
    if problems:
        raise OpeningRejectedError("proposal refused: " + "; ".join(problems))
    new = replace(
        state,
        phase=_P.AWAITING_FUNDING,
        proposal=message,
        terms=terms,
        minimum_depth=config.minimum_depth,
    )
    return new, (Send(_accept(new)),)


def repeated_propose(context: PayeeContext, state: PayeeState, message: Propose) -> PayeeStep:
    if message != state.proposal:
        raise UnexpectedMessageError("micro_propose differs from the accepted one")
    return state, (Send(_accept(state)),)


def _refund_problems(terms: ChannelTerms, funding: OutPoint, refund: Transaction) -> list[str]:
    """Everything that makes a refund safe to sign: it may only take the money back to the payer, and
    only once the tip reaches `refund_height`."""
    problems = []
    if refund.version != 2:
        problems.append(f"version {refund.version} (expected 2)")
    if len(refund.inputs) != 1:
        problems.append(f"{len(refund.inputs)} inputs (expected 1)")
    else:
        txin = refund.inputs[0]
        if txin.prevout != funding:
            problems.append(f"it spends {txin.prevout}, not the announced funding output {funding}")
        if txin.sequence != SEQUENCE_LOCKTIME_ONLY:
            problems.append(f"nSequence {txin.sequence:#x} (expected 0xfffffffe, so that nLockTime counts)")
        if txin.script_sig or txin.witness:
            problems.append("its input is not blank")
    if refund.locktime != terms.refund_height:
        problems.append(f"nLockTime {refund.locktime} (expected refund height {terms.refund_height})")
    if len(refund.outputs) != 1 or refund.outputs[0].script_pubkey != terms.refund_script:
        problems.append("it must have exactly one output, to the payer's refund script")
    elif not terms.dust_limit_sat <= refund.outputs[0].value <= terms.capacity_sat:
        problems.append(f"it refunds {refund.outputs[0].value} sat of a {terms.capacity_sat} sat channel")
    return problems


def funding_created(context: PayeeContext, state: PayeeState, message: FundingCreated) -> PayeeStep:
    terms = _terms(state)
    funding = OutPoint(message.funding_txid, message.funding_vout)
    try:
        refund = Transaction.parse(message.refund_tx)
    except DeserializationError as exc:
        raise OpeningRejectedError(f"the refund does not parse: {exc}", code=ErrorCode.BAD_REFUND) from exc
    problems = _refund_problems(terms, funding, refund)
    if problems:
        raise OpeningRejectedError("refund refused: " + "; ".join(problems), code=ErrorCode.BAD_REFUND)
    new = replace(state, phase=_P.AWAITING_CONFIRMATION, funding_outpoint=funding, refund_tx=refund)
    return new, (_watch(new), Send(_refund_signed(context, new)))


def repeated_funding_created(context: PayeeContext, state: PayeeState, message: FundingCreated) -> PayeeStep:
    same = (
        OutPoint(message.funding_txid, message.funding_vout) == state.funding_outpoint
        and message.refund_tx == _refund(state).serialize()
    )
    if not same:
        raise UnexpectedMessageError("micro_funding differs from the refund already signed")
    return state, (Send(_refund_signed(context, state)),)


# --- payments --------------------------------------------------------------------------------------


def _reject(message: Update, code: ErrorCode, text: str) -> UpdateRejectedError:
    return UpdateRejectedError(
        f"update {message.sequence} refused: {text}", code=code, sequence=message.sequence
    )


def _check_update(state: PayeeState, message: Update) -> None:
    terms = _terms(state)
    best = state.best
    if state.tip_height >= terms.settle_height:
        raise _reject(message, ErrorCode.CLOSING, f"the channel settles from height {terms.settle_height}")
    if message.sequence != best.sequence + 1:
        raise _reject(message, ErrorCode.BAD_SEQUENCE, f"expected sequence {best.sequence + 1}")
    if message.paid_msat <= best.paid_msat:
        raise _reject(
            message,
            ErrorCode.LOWER_AMOUNT,
            f"paid {message.paid_msat} msat does not increase on {best.paid_msat} msat",
        )
    growth = message.paid_msat - best.paid_msat
    if message.amount_msat != growth:
        raise _reject(
            message,
            ErrorCode.AMOUNT_MISMATCH,
            f"promised {message.amount_msat} msat but the total grows by {growth} msat",
        )
    if message.paid_msat > terms.max_paid_msat:
        raise _reject(
            message,
            ErrorCode.OVER_CAPACITY,
            f"paid {message.paid_msat} msat is over the {terms.max_paid_msat} msat the channel can pay "
            f"(capacity {terms.capacity_sat} sat less the {terms.update_fee_sat} sat fee)",
        )
    for name, value in (("payee", message.payee_sat), ("change", message.change_sat)):
        if 0 < value < terms.dust_limit_sat:
            raise _reject(
                message,
                ErrorCode.DUST_OUTPUT,
                f"the {name} output of {value} sat is below dust {terms.dust_limit_sat}",
            )
    expected = terms.outputs_for(message.paid_msat)
    if (message.payee_sat, message.change_sat) != (expected.payee_sat, expected.change_sat):
        raise _reject(
            message,
            ErrorCode.OUTPUT_MISMATCH,
            f"outputs {message.payee_sat}/{message.change_sat} sat, expected "
            f"{expected.payee_sat}/{expected.change_sat} sat (payee/change)",
        )
    tx = terms.update_tx(_outpoint(state), expected)
    if not verify_funding_spend(terms, tx, terms.payer_funding_pubkey, message.signature):
        raise _reject(message, ErrorCode.BAD_SIGNATURE, "the signature does not sign this update")


def update(context: PayeeContext, state: PayeeState, message: Update) -> PayeeStep:
    _check_update(state, message)
    best = BestUpdate(
        message.sequence, message.paid_msat, message.payee_sat, message.change_sat, message.signature
    )
    new = replace(state, best=best)
    # The ack waits for the persist of this state: the payer may forget an update once it is acked.
    return new, (
        Send(Ack(state.channel_id, message.sequence, message.paid_msat)),
        PaymentAccepted(state.channel_id, message.sequence, message.paid_msat),
    )


def update_not_open(context: PayeeContext, state: PayeeState, message: Update) -> PayeeStep:
    code = ErrorCode.CLOSING if state.phase is _P.SETTLING else ErrorCode.NOT_OPEN
    raise _reject(message, code, f"the channel is {state.phase.value.replace('_', ' ')}")


def error_received(context: PayeeContext, state: PayeeState, message: ErrorMessage) -> PayeeStep:
    response = Response.CLOSE if state.phase is _P.AWAITING_FUNDING else Response.IGNORE
    raise PeerErrorReceived(f"the payer reports: {message.data}", response=response)


# --- settlement and chain -------------------------------------------------------------------------------


def _settle_now(context: PayeeContext, state: PayeeState) -> PayeeStep:
    new = replace(state, phase=_P.SETTLING)
    return new, (Broadcast(settlement_tx(context, new), TxKind.SETTLEMENT),)


def settle(context: PayeeContext, state: PayeeState, command: Settle) -> PayeeStep:
    if state.phase is _P.SETTLING:
        return state, (Broadcast(settlement_tx(context, state), TxKind.SETTLEMENT),)
    if state.best.payee_sat == 0:
        raise CommandRejectedError(
            f"nothing to settle: {state.best.paid_msat} msat paid is below the dust limit "
            f"of {_terms(state).dust_limit_sat} sat"
        )
    return _settle_now(context, state)


def block_connected(context: PayeeContext, state: PayeeState, event: BlockConnected) -> PayeeStep:
    if event.height < 0:
        raise ChainEventError(f"block height {event.height} is negative")
    return _advance(context, replace(state, tip_height=max(state.tip_height, event.height)))


def _advance(context: PayeeContext, state: PayeeState) -> PayeeStep:
    """What the tip height alone decides: opening at minimum_depth, settling at the deadline."""
    actions: list[Action] = []
    if (
        state.phase is _P.AWAITING_CONFIRMATION
        and state.funding_height is not None
        and state.tip_height - state.funding_height + 1 >= state.minimum_depth
    ):
        state = replace(state, phase=_P.OPEN)
        actions += [Send(_sync(state)), ChannelOpened(state.channel_id)]
    if state.phase is _P.SETTLING:
        actions.append(Broadcast(settlement_tx(context, state), TxKind.SETTLEMENT))
    elif (
        # AWAITING_CONFIRMATION holds a paid update only when a reorg took the funding away after
        # payments: the deadline still holds, the settlement waits in the mempool behind the funding.
        state.phase in (_P.OPEN, _P.AWAITING_CONFIRMATION)
        and state.tip_height >= _terms(state).settle_height
        and state.best.payee_sat > 0
    ):
        state, settling = _settle_now(context, state)
        actions += settling
    return state, tuple(actions)


def block_disconnected(context: PayeeContext, state: PayeeState, event: BlockDisconnected) -> PayeeStep:
    """A reorg took the block at `event.height` away: what it confirmed is unconfirmed again.

    Our settlement confirmed there is settling again (and goes out again). After a refund the
    channel is back to its funding's depth: open if deep enough, and then the deadline settlement
    applies once more. An open channel whose funding left the chain waits for `minimum_depth` again,
    keeping its best update.
    """
    if event.height < 0:
        raise ChainEventError(f"block height {event.height} is negative")
    new = replace(state, tip_height=min(state.tip_height, event.height - 1))
    if new.closing_height is not None and new.closing_height >= event.height:
        settled = new.phase is _P.SETTLED and new.best.sequence > 0
        phase = _P.SETTLING if settled else _P.AWAITING_CONFIRMATION
        new = replace(new, phase=phase, closing_txid=None, closing_height=None)
    if new.funding_height is not None and new.funding_height >= event.height:
        new = replace(new, funding_height=None)
        if new.phase is _P.OPEN:
            new = replace(new, phase=_P.AWAITING_CONFIRMATION)
    if new.phase in (_P.AWAITING_CONFIRMATION, _P.SETTLING):
        return _advance(context, new)  # depth and deadline from what is still confirmed
    return new, ()


def funding_confirmed(context: PayeeContext, state: PayeeState, event: FundingConfirmed) -> PayeeStep:
    terms = _terms(state)
    outpoint = _outpoint(state)
    if event.tx.txid != outpoint.txid:
        raise ChainEventError("the confirmed transaction is not the announced funding")
    if event.height < 0:
        raise ChainEventError(f"block height {event.height} is negative")
    outputs = event.tx.outputs
    found = outputs[outpoint.vout] if outpoint.vout < len(outputs) else None
    if (
        found is None
        or found.script_pubkey != terms.funding_script_pubkey
        or found.value != terms.capacity_sat
    ):
        raise ChainEventError(
            f"the funding output {outpoint} does not pay {terms.capacity_sat} sat to the 2-of-2; "
            "the channel will never open",
            code=ErrorCode.BAD_FUNDING,
        )
    if state.funding_height is not None:
        return state, ()
    return _advance(
        context, replace(state, funding_height=event.height, tip_height=max(state.tip_height, event.height))
    )


def funding_spent(context: PayeeContext, state: PayeeState, event: FundingSpent) -> PayeeStep:
    terms = _terms(state)
    outpoint = _outpoint(state)
    if not any(txin.prevout == outpoint for txin in event.tx.inputs):
        raise ChainEventError("the transaction does not spend the funding output")
    if event.height < 0:
        raise ChainEventError(f"block height {event.height} is negative")
    refunded = event.tx.txid == _refund(state).txid
    phase = _P.REFUNDED if refunded else _P.SETTLED
    payee_sat = sum(out.value for out in event.tx.outputs if out.script_pubkey == terms.payout_script)
    new = replace(
        state,
        phase=phase,
        closing_txid=event.tx.txid,
        closing_height=event.height,
        tip_height=max(state.tip_height, event.height),
    )
    return new, (
        ChannelClosed(state.channel_id, phase.public.value, event.tx.txid, 0 if refunded else payee_sat),
    )


# --- reconnection and restart ----------------------------------------------------------------------------


def peer_connected(context: PayeeContext, state: PayeeState, event: PeerConnected) -> PayeeStep:
    if state.phase is _P.AWAITING_FUNDING:
        return state, (Send(_accept(state)),)
    if state.phase is _P.AWAITING_CONFIRMATION:
        return state, (Send(_refund_signed(context, state)),)
    if state.phase is _P.OPEN:
        return state, (Send(_sync(state)),)
    return state, ()


def resumed(context: PayeeContext, state: PayeeState, event: Resumed) -> PayeeStep:
    if state.phase in (_P.AWAITING_CONFIRMATION, _P.OPEN, _P.SETTLING):
        actions: list[Action] = [_watch(state)]
        if state.phase is _P.SETTLING:
            actions.append(Broadcast(settlement_tx(context, state), TxKind.SETTLEMENT))
        return state, tuple(actions)
    return state, ()
