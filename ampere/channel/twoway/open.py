"""Channel establishment v1 (BOLT 2): open_channel, accept_channel, funding_created,
funding_signed, channel_ready — the transitions of the opening phases, as a table.

The core never touches the wallet: the opener asks for a funding transaction with
`RequestFundingTransaction` and gets it back as `FundingTransactionBuilt`; it is broadcast only
after funding_signed has been checked (and the state persisted).
"""

from __future__ import annotations

from dataclasses import replace

from ampere.bitcoin.tx import OutPoint
from ampere.channel.transactions.funding import funding_script_pubkey
from ampere.channel.transactions.keys import ChannelBasepoints
from ampere.channel.twoway.actions import (
    Broadcast,
    Error,
    OpenFailed,
    RequestFundingTransaction,
    SendMessage,
    WatchFunding,
)
from ampere.channel.twoway.actions import (
    ChannelReady as ChannelReadyAction,
)
from ampere.channel.twoway.common import (
    Context,
    Handler,
    Transition,
    compact,
    kept_local_commitment,
    local_commitment,
    verify_local_commitment,
)
from ampere.channel.twoway.config import LARGE_CHANNEL_SAT, ChannelConfig
from ampere.channel.twoway.errors import ChannelError, CommandError, ErrorResponse
from ampere.channel.twoway.events import (
    BlockConnected,
    FundingConfirmed,
    FundingTransactionBuilt,
    OpenChannelCommand,
)
from ampere.channel.twoway.ledger import View, build_view_commitment, snapshot
from ampere.channel.twoway.limits import (
    OfferedParams,
    check_feerate,
    check_funding_amount,
    check_initial_commitment,
    check_offered_params,
)
from ampere.channel.twoway.messages import (
    AcceptChannel,
    ChannelReady,
    ErrorMessage,
    FundingCreated,
    FundingSigned,
    OpenChannel,
)
from ampere.channel.twoway.state import ChannelState, ChannelType, Ledger, Phase, SideParams
from ampere.crypto.shachain import ShachainStore
from ampere.wire.features import Feature

__all__ = ["TRANSITIONS", "derive_channel_id"]

ANNOUNCE_CHANNEL = 0x01


def derive_channel_id(funding_txid: bytes, output_index: int) -> bytes:
    """BOLT 2: funding_txid XOR the output index, big-endian, over the last two bytes."""
    if not 0 <= output_index <= 0xFFFF:
        raise ChannelError("funding_output_index must fit in 16 bits")
    tail = int.from_bytes(funding_txid[30:], "big") ^ output_index
    return funding_txid[:30] + tail.to_bytes(2, "big")


def _basepoints(message: OpenChannel | AcceptChannel) -> ChannelBasepoints:
    return ChannelBasepoints(
        funding_pubkey=message.funding_pubkey,
        revocation_basepoint=message.revocation_basepoint,
        payment_basepoint=message.payment_basepoint,
        delayed_payment_basepoint=message.delayed_payment_basepoint,
        htlc_basepoint=message.htlc_basepoint,
    )


def _their_params(message: OpenChannel | AcceptChannel) -> SideParams:
    """The peer's side of the channel, as its open_channel or accept_channel declares it."""
    return SideParams(
        dust_limit_sat=message.dust_limit_satoshis,
        max_htlc_value_in_flight_msat=message.max_htlc_value_in_flight_msat,
        channel_reserve_sat=message.channel_reserve_satoshis,
        htlc_minimum_msat=message.htlc_minimum_msat,
        to_self_delay=message.to_self_delay,
        max_accepted_htlcs=message.max_accepted_htlcs,
        basepoints=_basepoints(message),
        first_per_commitment_point=message.first_per_commitment_point,
        upfront_shutdown_script=message.upfront_shutdown_script or b"",
    )


def _our_params(ctx: Context, funding_sat: int, reserve_sat: int) -> SideParams:
    config = ctx.config
    return SideParams(
        dust_limit_sat=config.dust_limit_sat,
        max_htlc_value_in_flight_msat=config.in_flight_for(funding_sat),
        channel_reserve_sat=reserve_sat,
        htlc_minimum_msat=config.htlc_minimum_msat,
        to_self_delay=config.to_self_delay,
        max_accepted_htlcs=config.max_accepted_htlcs,
        basepoints=ctx.signer.basepoints,
        first_per_commitment_point=ctx.signer.per_commitment_point(0),
        # We commit to no upfront script (we do not advertise option_upfront_shutdown_script).
        upfront_shutdown_script=b"",
    )


def _channel_type(state: ChannelState, raw: bytes | None, config: ChannelConfig) -> ChannelType:
    if raw is None:
        raise ChannelError("the message does not include a channel_type")
    channel_type = ChannelType.from_bytes(raw)
    if channel_type is None:
        raise ChannelError(f"channel_type {raw.hex()} is not suitable")
    if channel_type is ChannelType.ANCHORS and not (
        config.support_anchors and state.both_support(Feature.ANCHORS)
    ):
        raise ChannelError("channel_type option_anchors was not negotiated")
    return channel_type


def _initial_ledger(state: ChannelState, remote_first_point: bytes) -> Ledger:
    opener_msat = state.funding_sat * 1000 - state.push_msat
    local, remote = (opener_msat, state.push_msat) if state.is_opener else (state.push_msat, opener_msat)
    return Ledger(
        local_commitment_number=0,
        remote_commitment_number=0,
        awaiting_revocation=False,
        local_balance_msat=local,
        remote_balance_msat=remote,
        feerate_per_kw=state.initial_feerate_per_kw,
        htlcs=(),
        fee_updates=(),
        next_local_htlc_id=0,
        next_remote_htlc_id=0,
        next_seq=0,
        remote_prev_point=None,
        remote_point=remote_first_point,
        remote_next_point=None,
        remote_secrets=ShachainStore().to_bytes(),
        local_commit_signature=b"",
        local_htlc_signatures=(),
    )


def _sign_remote_initial(state: ChannelState, ledger: Ledger, ctx: Context) -> bytes:
    commitment = build_view_commitment(state, snapshot(ledger, View.REMOTE), 0, ledger.remote_point)
    return compact(
        ctx.signer.sign_counterparty_commitment(commitment, ledger.remote_point).commitment_signature
    )


def _check_local_initial(state: ChannelState, ledger: Ledger, signature: bytes, ctx: Context) -> None:
    verify_local_commitment(state, local_commitment(state, ledger, ctx), signature, ())
    ctx.signer.validate_holder_commitment(0)


def _funding_script(state: ChannelState) -> bytes:
    local, remote = state.require_params()
    return funding_script_pubkey(local.basepoints.funding_pubkey, remote.basepoints.funding_pubkey)


# --- opener ---------------------------------------------------------------------------------------


def open_command(state: ChannelState, cmd: OpenChannelCommand, ctx: Context) -> Transition:
    config = ctx.config
    if len(cmd.temporary_channel_id) != 32:
        raise CommandError("temporary_channel_id must be 32 bytes")
    if cmd.funding_sat >= LARGE_CHANNEL_SAT and not (
        config.support_large_channel and state.both_support(Feature.LARGE_CHANNEL)
    ):
        raise CommandError("channels of 2^24 sat or more need option_support_large_channel on both sides")
    if cmd.channel_type is ChannelType.ANCHORS and not (
        config.support_anchors and state.both_support(Feature.ANCHORS)
    ):
        raise CommandError("option_anchors is not supported by both sides")
    reserve = max(config.reserve_for(cmd.funding_sat), config.dust_limit_sat)
    try:
        check_funding_amount(cmd.funding_sat, state, config)
        check_initial_commitment(
            cmd.funding_sat,
            cmd.push_msat,
            cmd.feerate_per_kw,
            cmd.channel_type.commitment_format.has_anchors,
            0,
        )
    except ChannelError as exc:
        raise CommandError(exc.reason) from exc
    if check_feerate(cmd.feerate_per_kw, config, None) is not None:
        raise CommandError(f"feerate {cmd.feerate_per_kw} is outside our bounds")
    local = _our_params(ctx, cmd.funding_sat, reserve)
    basepoints = local.basepoints
    message = OpenChannel(
        chain_hash=state.chain_hash,
        temporary_channel_id=cmd.temporary_channel_id,
        funding_satoshis=cmd.funding_sat,
        push_msat=cmd.push_msat,
        dust_limit_satoshis=local.dust_limit_sat,
        max_htlc_value_in_flight_msat=local.max_htlc_value_in_flight_msat,
        channel_reserve_satoshis=local.channel_reserve_sat,
        htlc_minimum_msat=local.htlc_minimum_msat,
        feerate_per_kw=cmd.feerate_per_kw,
        to_self_delay=local.to_self_delay,
        max_accepted_htlcs=local.max_accepted_htlcs,
        funding_pubkey=basepoints.funding_pubkey,
        revocation_basepoint=basepoints.revocation_basepoint,
        payment_basepoint=basepoints.payment_basepoint,
        delayed_payment_basepoint=basepoints.delayed_payment_basepoint,
        htlc_basepoint=basepoints.htlc_basepoint,
        first_per_commitment_point=local.first_per_commitment_point,
        channel_flags=ANNOUNCE_CHANNEL if cmd.announce else 0,
        upfront_shutdown_script=local.upfront_shutdown_script,
        channel_type=cmd.channel_type.to_bytes(),
    )
    state = replace(
        state,
        phase=Phase.WAIT_ACCEPT,
        is_opener=True,
        temporary_channel_id=cmd.temporary_channel_id,
        channel_id=cmd.temporary_channel_id,
        channel_type=cmd.channel_type,
        announce=cmd.announce,
        funding_sat=cmd.funding_sat,
        push_msat=cmd.push_msat,
        initial_feerate_per_kw=cmd.feerate_per_kw,
        local=local,
    )
    return Transition(state, (SendMessage(message),))


def accept_received(state: ChannelState, msg: AcceptChannel, ctx: Context) -> Transition:
    config = ctx.config
    local = state.local
    if local is None:
        raise ChannelError("accept_channel without open_channel")
    if _channel_type(state, msg.channel_type, config) is not state.channel_type:
        raise ChannelError("channel_type does not match the channel_type of open_channel")
    if msg.minimum_depth > config.max_minimum_depth:
        raise ChannelError(f"minimum_depth {msg.minimum_depth} is unreasonably large")
    if msg.channel_reserve_satoshis < local.dust_limit_sat:
        raise ChannelError("channel_reserve_satoshis is less than dust_limit_satoshis within open_channel")
    if local.channel_reserve_sat < msg.dust_limit_satoshis:
        raise ChannelError("channel_reserve_satoshis from open_channel is less than dust_limit_satoshis")
    check_offered_params(
        OfferedParams(
            state.funding_sat,
            msg.dust_limit_satoshis,
            msg.max_htlc_value_in_flight_msat,
            msg.channel_reserve_satoshis,
            msg.htlc_minimum_msat,
            msg.to_self_delay,
            msg.max_accepted_htlcs,
        ),
        config,
    )
    check_initial_commitment(
        state.funding_sat,
        state.push_msat,
        state.initial_feerate_per_kw,
        state.commitment_format.has_anchors,
        msg.channel_reserve_satoshis,
    )
    remote = _their_params(msg)
    state = replace(state, phase=Phase.WAIT_FUNDING_TX, remote=remote, minimum_depth=msg.minimum_depth)
    return Transition(state, (RequestFundingTransaction(_funding_script(state), state.funding_sat),))


def funding_built(state: ChannelState, event: FundingTransactionBuilt, ctx: Context) -> Transition:
    _, remote = state.require_params()
    tx, index = event.transaction, event.output_index
    if not 0 <= index < min(len(tx.outputs), 0x10000):
        raise CommandError("funding output index is out of range")
    output = tx.outputs[index]
    if output.script_pubkey != _funding_script(state) or output.value != state.funding_sat:
        raise CommandError("the funding transaction does not pay funding_satoshis to the funding script")
    if not all(txin.witness for txin in tx.inputs):
        # Only segwit inputs make the txid final before broadcast (BOLT 2 "SHOULD").
        raise CommandError("the funding transaction must be signed and spend only segwit inputs")
    state = replace(
        state,
        funding_outpoint=OutPoint(tx.txid, index),
        funding_tx=tx,
        channel_id=derive_channel_id(tx.txid, index),
    )
    ledger = _initial_ledger(state, remote.first_per_commitment_point)
    message = FundingCreated(
        temporary_channel_id=state.temporary_channel_id,
        funding_txid=tx.txid,
        funding_output_index=index,
        signature=_sign_remote_initial(state, ledger, ctx),
    )
    state = replace(state, phase=Phase.WAIT_FUNDING_SIGNED, ledger=ledger)
    return Transition(state, (SendMessage(message),))


def funding_signed_received(state: ChannelState, msg: FundingSigned, ctx: Context) -> Transition:
    ledger = state.require_ledger()
    funding_tx = state.funding_tx
    if funding_tx is None:
        raise ChannelError("no funding transaction to broadcast")
    _check_local_initial(state, ledger, msg.signature, ctx)
    state = replace(
        state, phase=Phase.WAIT_CHANNEL_READY, ledger=replace(ledger, local_commit_signature=msg.signature)
    )
    return Transition(
        state,
        (
            *kept_local_commitment(state, ctx),
            Broadcast(funding_tx, "funding"),
            WatchFunding(state.require_funding(), _funding_script(state), state.minimum_depth),
        ),
    )


# --- accepter -------------------------------------------------------------------------------------


def open_received(state: ChannelState, msg: OpenChannel, ctx: Context) -> Transition:
    try:
        return _accept(state, msg, ctx)
    except ChannelError as exc:
        # We have no channel id yet: the error goes out under the proposed temporary one.
        exc.channel_id = msg.temporary_channel_id
        raise


def _accept(state: ChannelState, msg: OpenChannel, ctx: Context) -> Transition:
    config = ctx.config
    if msg.chain_hash != state.chain_hash:
        raise ChannelError("open_channel is for an unknown chain")
    channel_type = _channel_type(state, msg.channel_type, config)
    check_funding_amount(msg.funding_satoshis, state, config)
    if msg.push_msat > msg.funding_satoshis * 1000:
        raise ChannelError("push_msat is greater than funding_satoshis * 1000")
    problem = check_feerate(msg.feerate_per_kw, config, ctx.feerate_estimate_per_kw)
    if problem is not None:
        raise ChannelError(problem)
    check_offered_params(
        OfferedParams(
            msg.funding_satoshis,
            msg.dust_limit_satoshis,
            msg.max_htlc_value_in_flight_msat,
            msg.channel_reserve_satoshis,
            msg.htlc_minimum_msat,
            msg.to_self_delay,
            msg.max_accepted_htlcs,
        ),
        config,
    )
    if config.dust_limit_sat > msg.channel_reserve_satoshis:
        raise ChannelError("channel_reserve_satoshis is below our dust limit")
    check_initial_commitment(
        msg.funding_satoshis,
        msg.push_msat,
        msg.feerate_per_kw,
        channel_type.commitment_format.has_anchors,
        msg.channel_reserve_satoshis,
    )
    reserve = max(config.reserve_for(msg.funding_satoshis), config.dust_limit_sat, msg.dust_limit_satoshis)
    local = _our_params(ctx, msg.funding_satoshis, reserve)
    remote = _their_params(msg)
    basepoints = local.basepoints
    reply = AcceptChannel(
        temporary_channel_id=msg.temporary_channel_id,
        dust_limit_satoshis=local.dust_limit_sat,
        max_htlc_value_in_flight_msat=local.max_htlc_value_in_flight_msat,
        channel_reserve_satoshis=local.channel_reserve_sat,
        htlc_minimum_msat=local.htlc_minimum_msat,
        minimum_depth=config.minimum_depth,
        to_self_delay=local.to_self_delay,
        max_accepted_htlcs=local.max_accepted_htlcs,
        funding_pubkey=basepoints.funding_pubkey,
        revocation_basepoint=basepoints.revocation_basepoint,
        payment_basepoint=basepoints.payment_basepoint,
        delayed_payment_basepoint=basepoints.delayed_payment_basepoint,
        htlc_basepoint=basepoints.htlc_basepoint,
        first_per_commitment_point=local.first_per_commitment_point,
        upfront_shutdown_script=local.upfront_shutdown_script,
        channel_type=channel_type.to_bytes(),
    )
    state = replace(
        state,
        phase=Phase.WAIT_FUNDING_CREATED,
        is_opener=False,
        temporary_channel_id=msg.temporary_channel_id,
        channel_id=msg.temporary_channel_id,
        channel_type=channel_type,
        announce=bool(msg.channel_flags & ANNOUNCE_CHANNEL),
        funding_sat=msg.funding_satoshis,
        push_msat=msg.push_msat,
        initial_feerate_per_kw=msg.feerate_per_kw,
        local=local,
        remote=remote,
        minimum_depth=config.minimum_depth,
    )
    return Transition(state, (SendMessage(reply),))


def funding_created_received(state: ChannelState, msg: FundingCreated, ctx: Context) -> Transition:
    _, remote = state.require_params()
    state = replace(
        state,
        funding_outpoint=OutPoint(msg.funding_txid, msg.funding_output_index),
        channel_id=derive_channel_id(msg.funding_txid, msg.funding_output_index),
    )
    ledger = _initial_ledger(state, remote.first_per_commitment_point)
    _check_local_initial(state, ledger, msg.signature, ctx)
    reply = FundingSigned(state.channel_id, _sign_remote_initial(state, ledger, ctx))
    state = replace(
        state, phase=Phase.WAIT_CHANNEL_READY, ledger=replace(ledger, local_commit_signature=msg.signature)
    )
    return Transition(
        state,
        (
            *kept_local_commitment(state, ctx),
            SendMessage(reply),
            WatchFunding(state.require_funding(), _funding_script(state), state.minimum_depth),
        ),
    )


# --- both: waiting for depth and channel_ready --------------------------------------------------------


def _maybe_normal(state: ChannelState) -> Transition:
    if state.channel_ready_sent and state.channel_ready_received:
        state = replace(state, phase=Phase.NORMAL)
        return Transition(state, (ChannelReadyAction(state.channel_id, state.short_channel_id),))
    return Transition(state)


def funding_confirmed(state: ChannelState, event: FundingConfirmed, ctx: Context) -> Transition:
    outpoint = state.require_funding()
    tx = event.transaction
    if (
        tx.txid != outpoint.txid
        or outpoint.vout >= len(tx.outputs)
        or tx.outputs[outpoint.vout].script_pubkey != _funding_script(state)
        or tx.outputs[outpoint.vout].value != state.funding_sat
    ):
        # The channel never opened: no output pays what our commitments spend, so there is nothing
        # to put on chain (a commitment would be invalid); fail it with `error` and forget it.
        reason = "the funding transaction does not pay funding_satoshis to the funding output"
        failed = replace(state, phase=Phase.ABORTED, failure=reason)
        error = ErrorMessage(state.wire_channel_id, reason.encode())
        return Transition(
            failed,
            (
                SendMessage(error),
                OpenFailed(state.temporary_channel_id, reason),
                Error(ErrorResponse.CLOSE, reason),
            ),
        )
    state = replace(state, funding_depth=event.depth, short_channel_id=event.short_channel_id)
    if state.channel_ready_sent or event.depth < max(state.minimum_depth, 1):
        return Transition(state)
    ready = ChannelReady(state.channel_id, ctx.signer.per_commitment_point(1))
    result = _maybe_normal(replace(state, channel_ready_sent=True))
    return Transition(result.state, (SendMessage(ready), *result.actions))


def depth_update(state: ChannelState, event: FundingConfirmed, ctx: Context) -> Transition:
    if state.short_channel_id == event.short_channel_id and state.funding_depth >= event.depth:
        return Transition(state)
    return Transition(replace(state, funding_depth=event.depth, short_channel_id=event.short_channel_id))


def channel_ready_received(state: ChannelState, msg: ChannelReady, ctx: Context) -> Transition:
    ledger = state.require_ledger()
    if state.channel_ready_received:
        return Transition(state)
    ledger = replace(ledger, remote_next_point=msg.second_per_commitment_point)
    return _maybe_normal(replace(state, ledger=ledger, channel_ready_received=True))


def later_channel_ready(state: ChannelState, msg: ChannelReady, ctx: Context) -> Transition:
    """After normal operation began: BOLT 2 "MUST ignore any redundant channel_ready". A first
    one can still arrive if a shutdown overtook it; its point is then still needed."""
    if state.channel_ready_received:
        return Transition(state)
    ledger = replace(state.require_ledger(), remote_next_point=msg.second_per_commitment_point)
    return Transition(replace(state, ledger=ledger, channel_ready_received=True))


def funding_timeout(state: ChannelState, event: BlockConnected, ctx: Context) -> Transition:
    """A fundee forgets a channel whose funding never confirmed (BOLT 2, 2016 blocks)."""
    if state.is_opener or state.funding_depth > 0:
        return Transition(state)
    waited = state.blocks_waiting + 1
    if waited < ctx.config.funding_timeout_blocks:
        return Transition(replace(state, blocks_waiting=waited))
    reason = "funding transaction did not confirm in time"
    return Transition(
        replace(state, phase=Phase.ABORTED, failure=reason),
        (OpenFailed(state.temporary_channel_id, reason),),
    )


TRANSITIONS: dict[tuple[Phase, type], Handler] = {
    (Phase.INIT, OpenChannelCommand): open_command,
    (Phase.INIT, OpenChannel): open_received,
    (Phase.WAIT_ACCEPT, AcceptChannel): accept_received,
    (Phase.WAIT_FUNDING_TX, FundingTransactionBuilt): funding_built,
    (Phase.WAIT_FUNDING_CREATED, FundingCreated): funding_created_received,
    (Phase.WAIT_FUNDING_SIGNED, FundingSigned): funding_signed_received,
    (Phase.WAIT_CHANNEL_READY, FundingConfirmed): funding_confirmed,
    (Phase.WAIT_CHANNEL_READY, ChannelReady): channel_ready_received,
    (Phase.WAIT_CHANNEL_READY, BlockConnected): funding_timeout,
    (Phase.NORMAL, ChannelReady): later_channel_ready,
    (Phase.SHUTDOWN, ChannelReady): later_channel_ready,
    (Phase.NEGOTIATING, ChannelReady): later_channel_ready,
    (Phase.CLOSING, ChannelReady): later_channel_ready,
    (Phase.NORMAL, FundingConfirmed): depth_update,
    (Phase.SHUTDOWN, FundingConfirmed): depth_update,
    (Phase.NEGOTIATING, FundingConfirmed): depth_update,
}
