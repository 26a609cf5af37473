"""Normal operation (BOLT 2): HTLC adds and removals, update_fee, commitment_signed and
revoke_and_ack — the transitions of the NORMAL and SHUTDOWN phases, as a table.

Both sides may update at once; every update is tracked through its five stages by `Marks`
(see `state`), and any number of updates batch into one commitment_signed.
"""

from __future__ import annotations

from dataclasses import replace

from ampere.bitcoin.hashes import sha256
from ampere.channel.twoway.actions import (
    Action,
    CommitmentRevoked,
    HtlcFailed,
    HtlcFulfilled,
    HtlcOffered,
    HtlcReceived,
    RevokedHtlc,
    SendMessage,
)
from ampere.channel.twoway.common import (
    Context,
    Handler,
    Transition,
    kept_local_commitment,
    local_commitment,
    sign_remote_commitment,
    verify_local_commitment,
)
from ampere.channel.twoway.errors import ChannelError, CommandError, ErrorResponse
from ampere.channel.twoway.events import (
    AddHtlc,
    BlockConnected,
    FailHtlc,
    FailMalformedHtlc,
    FulfillHtlc,
    SignCommitment,
    UpdateFeeCommand,
)
from ampere.channel.twoway.fast_replace import fast_replace
from ampere.channel.twoway.ledger import (
    View,
    fee_update,
    has_changes_for_remote,
    irrevocable,
    mark_local_signed,
    prune,
    snapshot,
)
from ampere.channel.twoway.limits import (
    BADONION,
    check_incoming_add,
    check_incoming_fee,
    check_outgoing_add,
    check_outgoing_fee,
    incoming_dust_exposure_exceeded,
)
from ampere.channel.twoway.messages import (
    CommitmentSigned,
    RevokeAndAck,
    UpdateAddHtlc,
    UpdateFailHtlc,
    UpdateFailMalformedHtlc,
    UpdateFee,
    UpdateFulfillHtlc,
)
from ampere.channel.twoway.state import (
    ChannelState,
    HtlcEntry,
    Ledger,
    Phase,
    Removal,
    RemovalKind,
)
from ampere.channel.twoway.totals import derive_totals
from ampere.crypto.keys import KeyDerivationError, per_commitment_point
from ampere.crypto.shachain import ShachainError, ShachainStore

__all__ = ["TRANSITIONS", "auto_sign", "sign_commitment"]


def _require_live(state: ChannelState) -> None:
    if not state.is_live:
        raise CommandError("the peer is not connected")


# --- adding HTLCs -----------------------------------------------------------------------------------


def add_command(state: ChannelState, cmd: AddHtlc, ctx: Context) -> Transition:
    _require_live(state)
    before = state.require_ledger()
    marks, ledger = before.next_marks()
    entry = HtlcEntry(
        offered=True,
        htlc_id=ledger.next_local_htlc_id,
        amount_msat=cmd.amount_msat,
        payment_hash=cmd.payment_hash,
        cltv_expiry=cmd.cltv_expiry,
        onion=cmd.onion_routing_packet,
        add=marks,
    )
    ledger = fast_replace(ledger, htlcs=(*ledger.htlcs, entry), next_local_htlc_id=entry.htlc_id + 1)
    ledger = derive_totals(before, ledger, None, entry)
    check_outgoing_add(state, ledger, entry, ctx.config)
    message = UpdateAddHtlc(
        state.channel_id, entry.htlc_id, entry.amount_msat, entry.payment_hash, entry.cltv_expiry, entry.onion
    )
    return Transition(
        fast_replace(state, ledger=ledger),
        (SendMessage(message), HtlcOffered(entry.htlc_id, entry.payment_hash, entry.amount_msat)),
    )


def add_received(state: ChannelState, msg: UpdateAddHtlc, ctx: Context) -> Transition:
    before = state.require_ledger()
    if msg.id != before.next_remote_htlc_id:
        raise ChannelError(f"update_add_htlc id {msg.id}, expected {before.next_remote_htlc_id}")
    marks, ledger = before.next_marks()
    entry = HtlcEntry(
        offered=False,
        htlc_id=msg.id,
        amount_msat=msg.amount_msat,
        payment_hash=msg.payment_hash,
        cltv_expiry=msg.cltv_expiry,
        onion=msg.onion_routing_packet,
        add=marks,
    )
    ledger = fast_replace(ledger, htlcs=(*ledger.htlcs, entry), next_remote_htlc_id=msg.id + 1)
    ledger = derive_totals(before, ledger, None, entry)
    check_incoming_add(state, ledger, entry, ctx.config)
    return Transition(fast_replace(state, ledger=ledger))


def add_after_shutdown(state: ChannelState, msg: UpdateAddHtlc, ctx: Context) -> Transition:
    raise ChannelError("update_add_htlc after shutdown")


# --- removing HTLCs ---------------------------------------------------------------------------------


def _removable(state: ChannelState, htlc_id: int) -> tuple[Ledger, HtlcEntry]:
    """A received HTLC we may remove: irrevocably committed and not already being removed."""
    ledger = state.require_ledger()
    entry = ledger.find(False, htlc_id)
    if entry is None:
        raise CommandError(f"no incoming HTLC {htlc_id}")
    if entry.removal is not None:
        raise CommandError(f"incoming HTLC {htlc_id} is already being removed")
    if not irrevocable(entry.add, ledger):
        raise CommandError(f"incoming HTLC {htlc_id} is not irrevocably committed yet")
    return ledger, entry


def _remove(state: ChannelState, ledger: Ledger, entry: HtlcEntry, removal: Removal) -> ChannelState:
    # A removed HTLC's onion is never read again (an incoming one has been decided; an outgoing one's
    # went with the acknowledged add): 1,366 bytes less in every state persisted until it is settled.
    removed = fast_replace(entry, removal=removal, onion=b"")
    return fast_replace(state, ledger=derive_totals(ledger, ledger.replace_htlc(removed), entry, removed))


def fulfill_command(state: ChannelState, cmd: FulfillHtlc, ctx: Context) -> Transition:
    ledger, entry = _removable(state, cmd.htlc_id)
    if len(cmd.payment_preimage) != 32 or sha256(cmd.payment_preimage) != entry.payment_hash:
        raise CommandError(f"preimage does not match the payment_hash of HTLC {cmd.htlc_id}")
    marks, ledger = ledger.next_marks()
    state = _remove(
        state, ledger, entry, Removal(RemovalKind.FULFILL, marks, payment_preimage=cmd.payment_preimage)
    )
    return Transition(
        state, (SendMessage(UpdateFulfillHtlc(state.channel_id, cmd.htlc_id, cmd.payment_preimage)),)
    )


def fail_command(state: ChannelState, cmd: FailHtlc, ctx: Context) -> Transition:
    ledger, entry = _removable(state, cmd.htlc_id)
    marks, ledger = ledger.next_marks()
    state = _remove(state, ledger, entry, Removal(RemovalKind.FAIL, marks, reason=cmd.reason))
    return Transition(state, (SendMessage(UpdateFailHtlc(state.channel_id, cmd.htlc_id, cmd.reason)),))


def fail_malformed_command(state: ChannelState, cmd: FailMalformedHtlc, ctx: Context) -> Transition:
    if not cmd.failure_code & BADONION or len(cmd.sha256_of_onion) != 32:
        raise CommandError("update_fail_malformed_htlc needs the BADONION bit and a 32-byte hash")
    ledger, entry = _removable(state, cmd.htlc_id)
    marks, ledger = ledger.next_marks()
    removal = Removal(
        RemovalKind.FAIL_MALFORMED, marks, sha256_of_onion=cmd.sha256_of_onion, failure_code=cmd.failure_code
    )
    state = _remove(state, ledger, entry, removal)
    message = UpdateFailMalformedHtlc(state.channel_id, cmd.htlc_id, cmd.sha256_of_onion, cmd.failure_code)
    return Transition(state, (SendMessage(message),))


def _removed_by_peer(state: ChannelState, htlc_id: int, what: str) -> tuple[Ledger, HtlcEntry]:
    ledger = state.require_ledger()
    entry = ledger.find(True, htlc_id)
    if entry is None or not irrevocable(entry.add, ledger):
        raise ChannelError(f"{what} for HTLC {htlc_id}, which is not in our current commitment")
    if entry.removal is not None:
        raise ChannelError(f"{what} for HTLC {htlc_id}, which is already being removed")
    return ledger, entry


def fulfill_received(state: ChannelState, msg: UpdateFulfillHtlc, ctx: Context) -> Transition:
    ledger, entry = _removed_by_peer(state, msg.id, "update_fulfill_htlc")
    if sha256(msg.payment_preimage) != entry.payment_hash:
        raise ChannelError(f"update_fulfill_htlc preimage does not hash to HTLC {msg.id}'s payment_hash")
    marks, ledger = ledger.next_marks()
    state = _remove(
        state, ledger, entry, Removal(RemovalKind.FULFILL, marks, payment_preimage=msg.payment_preimage)
    )
    # The preimage is ours the moment we see it: report it at once so upstream can be paid.
    return Transition(state, (HtlcFulfilled(entry.htlc_id, entry.payment_hash, msg.payment_preimage),))


def fail_received(state: ChannelState, msg: UpdateFailHtlc, ctx: Context) -> Transition:
    ledger, entry = _removed_by_peer(state, msg.id, "update_fail_htlc")
    marks, ledger = ledger.next_marks()
    return Transition(_remove(state, ledger, entry, Removal(RemovalKind.FAIL, marks, reason=msg.reason)))


def fail_malformed_received(state: ChannelState, msg: UpdateFailMalformedHtlc, ctx: Context) -> Transition:
    ledger, entry = _removed_by_peer(state, msg.id, "update_fail_malformed_htlc")
    if not msg.failure_code & BADONION:
        raise ChannelError("update_fail_malformed_htlc failure_code lacks the BADONION bit")
    marks, ledger = ledger.next_marks()
    removal = Removal(
        RemovalKind.FAIL_MALFORMED, marks, sha256_of_onion=msg.sha256_of_onion, failure_code=msg.failure_code
    )
    return Transition(_remove(state, ledger, entry, removal))


# --- fees ---------------------------------------------------------------------------------------------


def fee_command(state: ChannelState, cmd: UpdateFeeCommand, ctx: Context) -> Transition:
    _require_live(state)
    ledger = fee_update(state.require_ledger(), cmd.feerate_per_kw, True)
    check_outgoing_fee(state, ledger, cmd.feerate_per_kw, ctx.config)
    return Transition(
        replace(state, ledger=ledger), (SendMessage(UpdateFee(state.channel_id, cmd.feerate_per_kw)),)
    )


def fee_received(state: ChannelState, msg: UpdateFee, ctx: Context) -> Transition:
    ledger = fee_update(state.require_ledger(), msg.feerate_per_kw, False)
    check_incoming_fee(state, ledger, msg.feerate_per_kw, ctx.config, ctx.feerate_estimate_per_kw)
    return Transition(replace(state, ledger=ledger))


# --- the commitment dance ---------------------------------------------------------------------------------


def sign_commitment(state: ChannelState, ctx: Context) -> Transition:
    """Send commitment_signed if there is anything to sign and we may (BOLT 2: never an empty
    one; one unrevoked commitment at a time, since the next point comes with revoke_and_ack)."""
    ledger = state.require_ledger()
    if (
        not state.is_live
        or ledger.awaiting_revocation
        or ledger.remote_next_point is None
        or not has_changes_for_remote(ledger)
    ):
        return Transition(state)
    ledger, message = sign_remote_commitment(state, ledger, ctx)
    return Transition(replace(state, ledger=ledger), (SendMessage(message),))


def auto_sign(result: Transition, ctx: Context) -> Transition:
    if not ctx.config.auto_sign:
        return result
    signed = sign_commitment(result.state, ctx)
    return Transition(signed.state, result.actions + signed.actions)


def sign_command(state: ChannelState, cmd: SignCommitment, ctx: Context) -> Transition:
    return sign_commitment(state, ctx)


def _irrevocable_events(
    state: ChannelState, before: Ledger, after: Ledger, ctx: Context
) -> tuple[Action, ...]:
    """What became irrevocably committed between two ledgers (compute before pruning)."""
    events: list[Action] = []
    for entry in after.htlcs:
        old = before.find(entry.offered, entry.htlc_id)
        if (
            not entry.offered
            and irrevocable(entry.add, after)
            and (old is None or not irrevocable(old.add, before))
        ):
            exceeded = incoming_dust_exposure_exceeded(state, after, entry, ctx.config)
            events.append(
                HtlcReceived(
                    entry.htlc_id,
                    entry.amount_msat,
                    entry.payment_hash,
                    entry.cltv_expiry,
                    entry.onion,
                    exceeded,
                )
            )
        removal = entry.removal
        if (
            entry.offered
            and removal is not None
            and removal.kind is not RemovalKind.FULFILL
            and irrevocable(removal.marks, after)
            and (old is None or old.removal is None or not irrevocable(old.removal.marks, before))
        ):
            events.append(
                HtlcFailed(
                    entry.htlc_id,
                    entry.payment_hash,
                    removal.reason,
                    removal.failure_code,
                    removal.sha256_of_onion,
                )
            )
    return tuple(events)


def commitment_signed_received(state: ChannelState, msg: CommitmentSigned, ctx: Context) -> Transition:
    ledger = state.require_ledger()
    number = ledger.local_commitment_number + 1
    commitment = local_commitment(state, ledger, ctx, View.LOCAL_NEXT)
    verify_local_commitment(state, commitment, msg.signature, msg.htlc_signature)
    ctx.signer.validate_holder_commitment(number)
    revocation = RevokeAndAck(
        state.channel_id,
        ctx.signer.release_commitment_secret(number - 1),
        ctx.signer.per_commitment_point(number + 1),
    )
    updated = replace(
        mark_local_signed(ledger, number),
        local_commitment_number=number,
        local_commit_signature=msg.signature,
        local_htlc_signatures=msg.htlc_signature,
        last_sent_revoke_and_ack=revocation,
        revoke_sent_after_commit=True,
    )
    events = _irrevocable_events(state, ledger, updated, ctx)
    state = replace(state, ledger=prune(updated))
    kept = kept_local_commitment(state, ctx)
    return auto_sign(Transition(state, (*kept, SendMessage(revocation), *events)), ctx)


def remote_commitment_record(state: ChannelState, ledger: Ledger, number: int) -> CommitmentRevoked:
    """The content of the peer's commitment `number` (its newest or an older one), read from the
    marks: an update is in it when that commitment or an earlier one first included it."""

    def within(remote: int | None) -> bool:
        return remote is not None and remote <= number

    local, remote = ledger.local_balance_msat, ledger.remote_balance_msat
    htlcs: list[RevokedHtlc] = []
    for entry in ledger.htlcs:
        if not within(entry.add.remote):
            continue
        removal = entry.removal
        if removal is not None and within(removal.marks.remote):
            if removal.kind is RemovalKind.FULFILL:
                moved = entry.amount_msat if entry.offered else -entry.amount_msat
                local, remote = local - moved, remote + moved
            continue
        if entry.offered:
            local -= entry.amount_msat
        else:
            remote -= entry.amount_msat
        htlcs.append(
            RevokedHtlc(
                entry.offered, entry.htlc_id, entry.amount_msat, entry.payment_hash, entry.cltv_expiry
            )
        )
    feerate = ledger.feerate_per_kw
    for update in ledger.fee_updates:
        if within(update.marks.remote):
            feerate = update.feerate_per_kw
    return CommitmentRevoked(state.channel_id, number, local, remote, feerate, tuple(htlcs))


def revoke_and_ack_received(state: ChannelState, msg: RevokeAndAck, ctx: Context) -> Transition:
    ledger = state.require_ledger()
    if not ledger.awaiting_revocation or ledger.remote_prev_point is None:
        raise ChannelError("revoke_and_ack without a commitment_signed to acknowledge")
    revoked = ledger.remote_commitment_number - 1
    try:
        point = per_commitment_point(msg.per_commitment_secret)
    except KeyDerivationError as exc:
        raise ChannelError("per_commitment_secret is not a valid secret key") from exc
    if point != ledger.remote_prev_point:
        raise ChannelError(f"per_commitment_secret does not generate the point of commitment {revoked}")
    store = ShachainStore.from_bytes(ledger.remote_secrets)
    try:
        store.insert_commitment_secret(msg.per_commitment_secret, revoked)
    except ShachainError as exc:
        raise ChannelError(f"per_commitment_secret was not generated by the shachain: {exc}") from exc
    ctx.signer.validate_counterparty_revocation(revoked)
    updated = replace(
        ledger,
        awaiting_revocation=False,
        remote_prev_point=None,
        remote_next_point=msg.next_per_commitment_point,
        remote_secrets=store.to_bytes(),
    )
    events = _irrevocable_events(state, ledger, updated, ctx)
    record = remote_commitment_record(state, ledger, revoked)
    state = replace(state, ledger=prune(updated))
    return auto_sign(Transition(state, (record, *events)), ctx)


# --- chain ----------------------------------------------------------------------------------------------


def htlc_deadlines(state: ChannelState, event: BlockConnected, ctx: Context) -> Transition:
    """BOLT 2 "cltv_expiry_delta Selection": fail the channel when an HTLC we offered is past
    its expiry plus a grace period, or one we fulfilled is too close to its expiry, while it is
    still in either current commitment."""
    ledger = state.require_ledger()
    config = ctx.config
    for view in (View.LOCAL, View.REMOTE):
        for entry in snapshot(ledger, view).htlcs:
            if entry.offered and event.height >= entry.cltv_expiry + config.offered_htlc_grace_blocks:
                raise ChannelError(f"offered HTLC {entry.htlc_id} timed out at height {event.height}")
            fulfilled = entry.removal is not None and entry.removal.kind is RemovalKind.FULFILL
            if (
                not entry.offered
                and fulfilled
                and event.height >= entry.cltv_expiry - config.fulfilled_htlc_deadline_blocks
            ):
                raise ChannelError(f"fulfilled HTLC {entry.htlc_id} is still uncommitted near its expiry")
    return Transition(state)


def _unexpected_removal_ack(state: ChannelState, msg: object, ctx: Context) -> Transition:
    raise ChannelError(
        f"{type(msg).__name__} is not allowed while negotiating the close", ErrorResponse.CLOSE
    )


TRANSITIONS: dict[tuple[Phase, type], Handler] = {
    (Phase.NORMAL, AddHtlc): add_command,
    (Phase.NORMAL, UpdateAddHtlc): add_received,
    (Phase.SHUTDOWN, UpdateAddHtlc): add_after_shutdown,
}
for _phase in (Phase.NORMAL, Phase.SHUTDOWN):
    TRANSITIONS.update(
        {
            (_phase, FulfillHtlc): fulfill_command,
            (_phase, FailHtlc): fail_command,
            (_phase, FailMalformedHtlc): fail_malformed_command,
            (_phase, UpdateFulfillHtlc): fulfill_received,
            (_phase, UpdateFailHtlc): fail_received,
            (_phase, UpdateFailMalformedHtlc): fail_malformed_received,
            (_phase, UpdateFeeCommand): fee_command,
            (_phase, UpdateFee): fee_received,
            (_phase, SignCommitment): sign_command,
            (_phase, CommitmentSigned): commitment_signed_received,
            (_phase, RevokeAndAck): revoke_and_ack_received,
            (_phase, BlockConnected): htlc_deadlines,
        }
    )
for _message in (
    UpdateAddHtlc,
    UpdateFulfillHtlc,
    UpdateFailHtlc,
    UpdateFailMalformedHtlc,
    UpdateFee,
    CommitmentSigned,
):
    TRANSITIONS[(Phase.NEGOTIATING, _message)] = _unexpected_removal_ack
