"""The payer's transitions: pure functions `(context, state, event) -> (state, actions)`.

Which of them runs in which phase, and which phases each may lead to, is the table in `transitions.py`.
A handler raises a `MicropaymentError` to refuse an input; the state it was given stays current.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.tx import MAX_MONEY, Transaction
from ampere.channel.micropayment.errors import (
    ChainEventError,
    CommandRejectedError,
    ErrorCode,
    MicropaymentError,
    OpeningRejectedError,
    PeerErrorReceived,
    Response,
    UnexpectedMessageError,
)
from ampere.channel.micropayment.events import (
    Action,
    BlockConnected,
    BlockDisconnected,
    Broadcast,
    BuildFunding,
    ChannelClosed,
    ChannelOpened,
    FundingBuilt,
    FundingConfirmed,
    FundingSpent,
    OpenChannel,
    Pay,
    PaymentAccepted,
    PaymentRejected,
    PeerConnected,
    Refund,
    Resumed,
    Send,
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
from ampere.channel.micropayment.state import PayerPhase, PayerState
from ampere.channel.micropayment.transactions import (
    LOCKTIME_THRESHOLD,
    ChannelTerms,
    is_standard_payout_script,
    sign_funding_spend,
    verify_funding_spend,
)

__all__ = ["PayerContext", "PayerStep"]

MIN_FEERATE_PER_KW = 253  # BOLT 3's floor, just above the 1 sat/vB minimum relay fee
PayerStep = tuple[PayerState, tuple[Action, ...]]
_P = PayerPhase


@dataclass(frozen=True, slots=True)
class PayerContext:
    """What the payer's transitions need besides the state: its funding key, never serialized."""

    key: PrivateKey


def _terms(state: PayerState) -> ChannelTerms:
    if state.terms is None:  # the table only routes here in phases that have terms
        raise MicropaymentError("the channel has no agreed terms yet")
    return state.terms


def _funding_tx(state: PayerState) -> Transaction:
    if state.funding_tx is None:
        raise MicropaymentError("the channel has no funding transaction yet")
    return state.funding_tx


def signed_refund(context: PayerContext, state: PayerState) -> Transaction:
    """The refund with both signatures: valid on chain once the tip reaches `refund_height`."""
    terms = _terms(state)
    funding = _funding_tx(state)
    if state.refund_signature is None:
        raise MicropaymentError("the payee has not signed the refund")
    refund = terms.refund_tx(funding.outpoint(state.funding_vout))
    return terms.with_signatures(
        refund, sign_funding_spend(terms, refund, context.key), state.refund_signature
    )


def _funding_created(state: PayerState) -> FundingCreated:
    terms = _terms(state)
    funding = _funding_tx(state)
    refund = terms.refund_tx(funding.outpoint(state.funding_vout))
    return FundingCreated(state.channel_id, funding.txid, state.funding_vout, refund.serialize())


def _watch(state: PayerState) -> Watch:
    funding = _funding_tx(state)
    return Watch(funding.txid, funding.outpoint(state.funding_vout), _terms(state).funding_script_pubkey)


def _signed_update(context: PayerContext, state: PayerState, sequence: int, amount_msat: int) -> Update:
    terms = _terms(state)
    outputs = terms.outputs_for(state.paid_msat)
    tx = terms.update_tx(_funding_tx(state).outpoint(state.funding_vout), outputs)
    return Update(
        state.channel_id,
        sequence,
        amount_msat,
        state.paid_msat,
        outputs.payee_sat,
        outputs.change_sat,
        sign_funding_spend(terms, tx, context.key),
    )


# --- opening -------------------------------------------------------------------------------------


def open_channel(context: PayerContext, state: PayerState, event: OpenChannel) -> PayerStep:
    problems = []
    if len(event.chain_hash) != 32:
        problems.append("chain_hash is 32 bytes")
    if not 0 < event.capacity_sat <= MAX_MONEY:
        problems.append(f"capacity {event.capacity_sat} sat is out of range")
    if not state.tip_height < event.refund_height < LOCKTIME_THRESHOLD:
        problems.append(f"refund height {event.refund_height} must be above the tip {state.tip_height}")
    if not MIN_FEERATE_PER_KW <= event.feerate_per_kw < 2**32:
        problems.append(f"feerate {event.feerate_per_kw} sat/kw is below {MIN_FEERATE_PER_KW} or too large")
    if not is_standard_payout_script(event.refund_script):
        problems.append("the refund script is not a standard output script")
    if problems:
        raise CommandRejectedError("cannot open: " + "; ".join(problems))
    proposal = Propose(
        state.channel_id,
        event.chain_hash,
        event.capacity_sat,
        event.refund_height,
        event.feerate_per_kw,
        state.funding_pubkey,
        event.refund_script,
    )
    new = replace(state, phase=_P.PROPOSED, proposal=proposal)
    return new, (Send(proposal),)


def accept(context: PayerContext, state: PayerState, message: Accept) -> PayerStep:
    proposal = state.proposal
    if proposal is None:
        raise MicropaymentError("no proposal to accept")
    if not is_standard_payout_script(message.payout_script):
        raise OpeningRejectedError("the payee's payout script is not a standard output script")
    terms = ChannelTerms(
        state.channel_id,
        proposal.chain_hash,
        proposal.capacity_sat,
        proposal.refund_height,
        proposal.feerate_per_kw,
        state.funding_pubkey,
        message.payee_funding_pubkey,
        proposal.refund_script,
        message.payout_script,
        message.dust_limit_sat,
        message.safety_margin,
    )
    problem = terms.viability_problem()
    if problem is None and terms.settle_height <= state.tip_height:
        problem = f"a safety margin of {message.safety_margin} blocks leaves no time to pay"
    if problem is not None:
        raise OpeningRejectedError(f"the payee's terms do not work: {problem}")
    new = replace(state, phase=_P.AWAITING_FUNDING_TX, terms=terms)
    return new, (BuildFunding(state.channel_id, terms.funding_script_pubkey, terms.capacity_sat),)


def funding_built(context: PayerContext, state: PayerState, event: FundingBuilt) -> PayerStep:
    terms = _terms(state)
    tx = event.tx
    paying = [
        vout
        for vout, txout in enumerate(tx.outputs)
        if txout.script_pubkey == terms.funding_script_pubkey and txout.value == terms.capacity_sat
    ]
    if len(paying) != 1:
        raise CommandRejectedError(
            f"the funding transaction must pay {terms.capacity_sat} sat to the 2-of-2 exactly once"
        )
    if paying[0] > 0xFFFF:
        raise CommandRejectedError("the funding output index does not fit micro_funding")
    # A legacy input would let anyone change the txid the payee signs the refund against.
    if not tx.inputs or not all(txin.witness for txin in tx.inputs):
        raise CommandRejectedError("the funding transaction must be signed and spend only segwit inputs")
    new = replace(state, phase=_P.AWAITING_REFUND_SIGNATURE, funding_tx=tx, funding_vout=paying[0])
    return new, (Send(_funding_created(new)),)


def refund_signed(context: PayerContext, state: PayerState, message: RefundSigned) -> PayerStep:
    terms = _terms(state)
    refund = terms.refund_tx(_funding_tx(state).outpoint(state.funding_vout))
    if not verify_funding_spend(terms, refund, terms.payee_funding_pubkey, message.signature):
        raise OpeningRejectedError("the payee's refund signature is invalid", code=ErrorCode.BAD_REFUND)
    new = replace(state, phase=_P.FUNDING_BROADCAST, refund_signature=message.signature)
    # Persisted before these leave the machine: the funding goes out only once the refund is stored.
    return new, (_watch(new), Broadcast(_funding_tx(new), TxKind.FUNDING))


def duplicate_refund_signed(context: PayerContext, state: PayerState, message: RefundSigned) -> PayerStep:
    return state, ()


def duplicate_accept(context: PayerContext, state: PayerState, message: Accept) -> PayerStep:
    terms = _terms(state)
    if (
        message.payee_funding_pubkey != terms.payee_funding_pubkey
        or message.payout_script != terms.payout_script
    ):
        raise UnexpectedMessageError("micro_accept differs from the one already accepted")
    return state, ()


# --- open channel -----------------------------------------------------------------------------------


def sync(context: PayerContext, state: PayerState, message: Sync) -> PayerStep:
    """The payee's best update: the channel opens (the first time) and both sides line up."""
    terms = _terms(state)
    outpoint = _funding_tx(state).outpoint(state.funding_vout)
    if message.sequence == 0:
        if message.paid_msat != 0:
            raise UnexpectedMessageError(
                "micro_sync claims a payment at sequence 0", code=ErrorCode.OUT_OF_SYNC
            )
    elif message.paid_msat > terms.max_paid_msat or not verify_funding_spend(
        terms,
        terms.update_tx(outpoint, terms.outputs_for(message.paid_msat)),
        state.funding_pubkey,
        message.signature,
    ):
        raise UnexpectedMessageError(
            f"micro_sync claims {message.paid_msat} msat without our signature of it",
            code=ErrorCode.OUT_OF_SYNC,
        )
    actions: list[Action] = []
    if state.phase is _P.FUNDING_BROADCAST:
        actions.append(ChannelOpened(state.channel_id))
    new = replace(
        state,
        phase=_P.OPEN,
        acked_sequence=message.sequence,
        acked_paid_msat=message.paid_msat,
        max_signed_msat=max(state.max_signed_msat, message.paid_msat),
    )
    if message.paid_msat >= state.paid_msat:
        # Equal: in step. Higher: our state is older than what we signed (a restored backup); the
        # signature proves we signed it, so adopting it only catches up with the truth.
        new = replace(new, sequence=message.sequence, paid_msat=message.paid_msat)
        if message.paid_msat > state.acked_paid_msat:
            actions.append(PaymentAccepted(state.channel_id, message.sequence, message.paid_msat))
        return new, tuple(actions)
    # The payee missed updates: one update carries all of them (the transaction depends on the total only).
    new = replace(new, sequence=message.sequence + 1, paid_msat=state.paid_msat)
    amount = state.paid_msat - message.paid_msat
    actions.append(Send(_signed_update(context, new, message.sequence + 1, amount)))
    return new, tuple(actions)


def ignore_sync(context: PayerContext, state: PayerState, message: Sync) -> PayerStep:
    return state, ()


def pay(context: PayerContext, state: PayerState, command: Pay) -> PayerStep:
    terms = _terms(state)
    if command.amount_msat <= 0:
        raise CommandRejectedError(f"amount {command.amount_msat} msat must be positive")
    paid = state.paid_msat + command.amount_msat
    if paid > terms.max_paid_msat:
        raise CommandRejectedError(
            f"over capacity: {paid} msat would exceed the {terms.max_paid_msat} msat the channel can pay"
        )
    if state.tip_height >= terms.settle_height:
        raise CommandRejectedError(
            f"the payee settles from height {terms.settle_height} (tip {state.tip_height}); no more payments"
        )
    new = replace(
        state, sequence=state.sequence + 1, paid_msat=paid, max_signed_msat=max(state.max_signed_msat, paid)
    )
    # Persisted before the update leaves: a crash can then only make the payer pay again what it signed.
    return new, (Send(_signed_update(context, new, new.sequence, command.amount_msat)),)


def ack(context: PayerContext, state: PayerState, message: Ack) -> PayerStep:
    if message.sequence <= state.acked_sequence:
        return state, ()  # a repeat, or overtaken by a micro_sync
    if message.sequence > state.sequence or not state.acked_paid_msat < message.paid_msat <= state.paid_msat:
        raise UnexpectedMessageError(
            f"micro_ack of sequence {message.sequence} ({message.paid_msat} msat) matches no update sent",
            response=Response.IGNORE,
        )
    new = replace(state, acked_sequence=message.sequence, acked_paid_msat=message.paid_msat)
    return new, (PaymentAccepted(state.channel_id, message.sequence, message.paid_msat),)


def update_refused(context: PayerContext, state: PayerState, message: ErrorMessage) -> PayerStep:
    """Back to the last acknowledged update, so the next payment follows what the payee holds.

    Messages arrive in order, so when the payee refuses update s every ack before it has been seen:
    the first refusal is always acked + 1. Anything else is a refusal of a pipelined update that
    followed it (the payee refuses those for their sequence), already covered by the rollback.
    """
    if message.sequence != state.acked_sequence + 1 or message.sequence > state.sequence:
        return state, ()
    new = replace(state, sequence=state.acked_sequence, paid_msat=state.acked_paid_msat)
    rejected = PaymentRejected(
        state.channel_id, message.sequence, message.code, message.data, state.acked_paid_msat
    )
    return new, (rejected,)


def opening_refused(context: PayerContext, state: PayerState, message: ErrorMessage) -> PayerStep:
    raise PeerErrorReceived(f"the payee refused the channel: {message.data}", response=Response.CLOSE)


def error_noted(context: PayerContext, state: PayerState, message: ErrorMessage) -> PayerStep:
    raise PeerErrorReceived(f"the payee reports: {message.data}")


# --- chain ------------------------------------------------------------------------------------------


def _refund_now(context: PayerContext, state: PayerState) -> PayerStep:
    new = replace(state, phase=_P.REFUNDING)
    return new, (Broadcast(signed_refund(context, new), TxKind.REFUND),)


def block_connected(context: PayerContext, state: PayerState, event: BlockConnected) -> PayerStep:
    if event.height < 0:
        raise ChainEventError(f"block height {event.height} is negative")
    new = replace(state, tip_height=max(state.tip_height, event.height))
    if new.phase not in (_P.FUNDING_BROADCAST, _P.OPEN, _P.REFUNDING):
        return new, ()
    # An unconfirmed funding (never mined, or taken out by a reorg) goes out again, ahead of the refund.
    funding: tuple[Action, ...] = ()
    if new.funding_height is None:
        funding = (Broadcast(_funding_tx(new), TxKind.FUNDING),)
    # "Accepted at height H": with the tip at refund_height the refund is valid in the next block.
    if new.phase is _P.REFUNDING or new.tip_height >= _terms(new).refund_height:
        new, refunding = _refund_now(context, new)
        return new, funding + refunding
    return new, funding


def block_disconnected(context: PayerContext, state: PayerState, event: BlockDisconnected) -> PayerStep:
    """A reorg took the block at `event.height` away: what it confirmed is unconfirmed again.

    A settlement or refund confirmed there no longer closes the channel: the refund goes back to
    REFUNDING and out again; after a settlement the channel is as before it (the payee rebroadcasts
    it). A funding confirmed there is sent again, and an open channel waits for the payee's
    `micro_sync`, which comes once the funding is deep enough again. Payments are kept as they were.
    """
    if event.height < 0:
        raise ChainEventError(f"block height {event.height} is negative")
    new = replace(state, tip_height=min(state.tip_height, event.height - 1))
    actions: list[Action] = []
    if new.closing_height is not None and new.closing_height >= event.height:
        if new.phase is _P.REFUNDED:
            new = replace(new, phase=_P.REFUNDING)
            actions.append(Broadcast(signed_refund(context, new), TxKind.REFUND))
        else:
            new = replace(new, phase=_P.OPEN)
        new = replace(new, closing_txid=None, closing_height=None)
    if new.funding_height is not None and new.funding_height >= event.height:
        new = replace(new, funding_height=None)
        if new.phase is _P.OPEN:
            new = replace(new, phase=_P.FUNDING_BROADCAST)
        actions.insert(0, Broadcast(_funding_tx(new), TxKind.FUNDING))
    return new, tuple(actions)


def refund(context: PayerContext, state: PayerState, command: Refund) -> PayerStep:
    terms = _terms(state)
    if state.tip_height < terms.refund_height:
        raise CommandRejectedError(
            f"the refund is locked until the tip reaches {terms.refund_height} (now {state.tip_height})"
        )
    return _refund_now(context, state)


def funding_confirmed(context: PayerContext, state: PayerState, event: FundingConfirmed) -> PayerStep:
    if event.tx.txid != _funding_tx(state).txid:
        raise ChainEventError("the confirmed transaction is not the channel's funding")
    if event.height < 0:
        raise ChainEventError(f"block height {event.height} is negative")
    return replace(state, funding_height=event.height, tip_height=max(state.tip_height, event.height)), ()


def funding_spent(context: PayerContext, state: PayerState, event: FundingSpent) -> PayerStep:
    terms = _terms(state)
    outpoint = _funding_tx(state).outpoint(state.funding_vout)
    if not any(txin.prevout == outpoint for txin in event.tx.inputs):
        raise ChainEventError("the transaction does not spend the funding output")
    if event.height < 0:
        raise ChainEventError(f"block height {event.height} is negative")
    refunded = event.tx.txid == terms.refund_tx(outpoint).txid
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


# --- reconnection and restart -------------------------------------------------------------------------


def peer_connected(context: PayerContext, state: PayerState, event: PeerConnected) -> PayerStep:
    if state.phase is _P.PROPOSED and state.proposal is not None:
        return state, (Send(state.proposal),)
    if state.phase is _P.AWAITING_REFUND_SIGNATURE:
        return state, (Send(_funding_created(state)),)
    return state, ()  # once funded the payee speaks first, with micro_sync


def resumed(context: PayerContext, state: PayerState, event: Resumed) -> PayerStep:
    """After a restart: ask again for what an unfinished step needed, and watch the chain again."""
    if state.phase is _P.AWAITING_FUNDING_TX:
        terms = _terms(state)
        return state, (BuildFunding(state.channel_id, terms.funding_script_pubkey, terms.capacity_sat),)
    if state.phase in (_P.FUNDING_BROADCAST, _P.OPEN, _P.REFUNDING):
        actions: list[Action] = [_watch(state)]
        if state.funding_height is None:
            actions.append(Broadcast(_funding_tx(state), TxKind.FUNDING))
        if state.phase is _P.REFUNDING:
            actions.append(Broadcast(signed_refund(context, state), TxKind.REFUND))
        return state, tuple(actions)
    return state, ()
