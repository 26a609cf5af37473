"""Normal operation: adds, removals, fees, batching, and every way a peer can break the rules."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from ampere.channel.twoway import (
    AddHtlc,
    ChannelClosed,
    ChannelConfig,
    ChannelType,
    CloseType,
    ErrorResponse,
    FailHtlc,
    FailMalformedHtlc,
    FulfillHtlc,
    HtlcOffered,
    Phase,
    SendMessage,
    SignCommitment,
    UpdateFeeCommand,
)
from ampere.channel.twoway.ledger import View, snapshot
from ampere.channel.twoway.messages import (
    CommitmentSigned,
    ErrorMessage,
    RevokeAndAck,
    UpdateAddHtlc,
    UpdateFee,
)
from ampere.channel.twoway.state import ChannelStatus
from ampere.wire import decode_message
from tests.channel.twoway.harness import ONION, Pair, Peer, open_pair, payment_hash, preimage_for


def _sent(actions: list, kind: type) -> list:  # type: ignore[type-arg]
    return [a.message for a in actions if isinstance(a, SendMessage) and isinstance(a.message, kind)]


def _balances(peer: Peer) -> tuple[int, int]:
    ledger = peer.state.ledger
    assert ledger is not None
    return ledger.local_balance_msat, ledger.remote_balance_msat


def _assert_failed_channel(peer: Peer, fragment: str) -> None:
    assert peer.errors and peer.errors[-1].response is ErrorResponse.CLOSE, peer.errors
    assert fragment in peer.errors[-1].reason, peer.errors[-1].reason
    assert peer.state.status is ChannelStatus.FORCE_CLOSING
    # Our newest commitment, spending the funding output (the opener also broadcast the funding).
    assert peer.broadcasts[-1].inputs[0].prevout == peer.state.funding_outpoint
    assert any(isinstance(a, ChannelClosed) and a.close_type is CloseType.LOCAL_FORCE for a in peer.others)
    sent = [decode_message(data) for data in peer.outbox]
    assert any(m.name == "error" for m in sent)


@pytest.mark.parametrize("channel_type", list(ChannelType))
def test_payments_both_ways(channel_type: ChannelType) -> None:
    pair = open_pair(channel_type, 1_000_000, 300_000_000)
    pair.pay(pair.alice, 70_000_000)
    pair.flush()
    pair.pay(pair.bob, 20_000_000)
    pair.flush()
    assert _balances(pair.alice) == (650_000_000, 350_000_000)
    assert _balances(pair.bob) == (350_000_000, 650_000_000)
    assert [f.htlc_id for f in pair.alice.fulfilled] == [0]
    assert [f.htlc_id for f in pair.bob.fulfilled] == [0]
    pair.assert_agree()


def test_updates_batch_into_one_commitment() -> None:
    pair = open_pair(push_msat=300_000_000)
    for amount in (10_000_000, 20_000_000, 30_000_000):
        actions = pair.pay(pair.alice, amount, sign=False)
        assert any(isinstance(a, HtlcOffered) for a in actions)
    assert not _sent([SendMessage(decode_message_typed(d)) for d in pair.alice.outbox], CommitmentSigned)
    pair.alice.handle(SignCommitment())
    names = [decode_message(data).name for data in pair.alice.outbox]
    assert names == ["update_add_htlc"] * 3 + ["commitment_signed"]
    commit = decode_message(pair.alice.outbox[-1])
    # Three HTLC outputs on Bob's commitment, one signature each.
    assert len(commit.fields["htlc_signature"]) == 3  # type: ignore[arg-type]
    pair.flush()
    assert _balances(pair.bob) == (360_000_000, 640_000_000)
    pair.assert_agree()


def decode_message_typed(data: bytes):  # type: ignore[no-untyped-def]
    from ampere.channel.twoway.messages import parse_message

    return parse_message(decode_message(data))


def test_sign_without_changes_sends_nothing() -> None:
    pair = open_pair()
    actions = pair.alice.handle(SignCommitment())
    assert actions == []


def test_concurrent_updates_from_both_sides() -> None:
    pair = open_pair(push_msat=500_000_000)
    pair.pay(pair.alice, 11_000_000)
    pair.pay(pair.bob, 22_000_000)
    # Both commitment_signed cross on the wire.
    assert pair.alice.state.ledger and pair.alice.state.ledger.awaiting_revocation
    assert pair.bob.state.ledger and pair.bob.state.ledger.awaiting_revocation
    pair.flush()
    assert _balances(pair.alice) == (
        500_000_000 - 11_000_000 + 22_000_000,
        500_000_000 + 11_000_000 - 22_000_000,
    )
    pair.assert_agree()


def test_fail_and_fail_malformed_return_the_amount() -> None:
    pair = open_pair(push_msat=100_000_000)
    pair.pay(pair.alice, 5_000_000)
    pair.pay(pair.alice, 6_000_000)
    pair.flush(fulfill=False)
    received = pair.bob.received
    assert [h.htlc_id for h in received] == [0, 1]
    pair.bob.handle(FailHtlc(0, b"reason"))
    pair.bob.handle(FailMalformedHtlc(1, hashlib.sha256(ONION).digest(), 0x8000 | 0x4000 | 5))
    pair.bob.received.clear()
    pair.bob.handle(SignCommitment())
    pair.flush(fulfill=False)
    failed = {f.htlc_id: f for f in pair.alice.failed}
    assert failed[0].reason == b"reason"
    assert (
        failed[1].failure_code == 0x8000 | 0x4000 | 5
        and failed[1].sha256_of_onion == hashlib.sha256(ONION).digest()
    )
    assert _balances(pair.alice) == (900_000_000, 100_000_000)
    assert pair.alice.state.ledger is not None and not pair.alice.state.ledger.htlcs
    pair.assert_agree()


def test_removal_commands_are_checked() -> None:
    pair = open_pair(push_msat=100_000_000)
    pair.pay(pair.alice, 5_000_000, sign=False)
    pair.deliver_one(pair.alice)
    bob = pair.bob
    assert bob.handle(FulfillHtlc(0, preimage_for(0)))[-1].response is ErrorResponse.IGNORE  # type: ignore[union-attr]
    pair.alice.handle(SignCommitment())
    pair.flush(fulfill=False)
    assert bob.handle(FulfillHtlc(0, bytes(32)))[-1].response is ErrorResponse.IGNORE  # type: ignore[union-attr]
    assert bob.handle(FailMalformedHtlc(0, bytes(32), 5))[-1].response is ErrorResponse.IGNORE  # type: ignore[union-attr]
    assert bob.handle(FulfillHtlc(7, preimage_for(0)))[-1].response is ErrorResponse.IGNORE  # type: ignore[union-attr]
    bob.handle(FulfillHtlc(0, preimage_for(0)))
    assert bob.handle(FailHtlc(0, b""))[-1].response is ErrorResponse.IGNORE  # type: ignore[union-attr]


def test_update_fee() -> None:
    pair = open_pair(push_msat=100_000_000)
    pair.pay(pair.alice, 20_000_000)
    pair.pay(pair.bob, 3_000_000)
    pair.alice.handle(UpdateFeeCommand(3000))
    pair.alice.handle(SignCommitment())
    pair.flush()
    for peer in (pair.alice, pair.bob):
        ledger = peer.state.ledger
        assert ledger is not None and ledger.feerate_per_kw == 3000 and not ledger.fee_updates
    pair.assert_agree()
    # Only the opener pays the fee, so only it may change it.
    assert pair.bob.handle(UpdateFeeCommand(3000))[-1].response is ErrorResponse.IGNORE  # type: ignore[union-attr]
    actions = pair.alice.handle(UpdateFee(pair.bob.state.channel_id, 4000))
    assert actions[-1].response is ErrorResponse.CLOSE  # type: ignore[union-attr]


def test_update_fee_out_of_bounds_fails_the_channel() -> None:
    pair = open_pair(push_msat=100_000_000)
    pair.bob.handle(UpdateFee(pair.bob.state.channel_id, 100))
    _assert_failed_channel(pair.bob, "feerate")


# --- a misbehaving peer -----------------------------------------------------------------------------------


def _bob_gets(pair: Pair, message: object) -> None:
    pair.bob.handle(message)  # type: ignore[arg-type]


def _add(pair: Pair, **changes: object) -> UpdateAddHtlc:
    base = UpdateAddHtlc(pair.bob.state.channel_id, 0, 5_000_000, payment_hash(preimage_for(0)), 600, ONION)
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"amount_msat": 0}, "greater than 0"),
        ({"amount_msat": 999}, "htlc_minimum_msat"),
        ({"cltv_expiry": 500_000_000}, "500000000"),
        ({"id": 3}, "expected 0"),
        ({"amount_msat": 995_000_000}, "afford"),
    ],
)
def test_bad_update_add_htlc_fails_the_channel(changes: dict[str, object], fragment: str) -> None:
    pair = open_pair(push_msat=100_000_000, bob_config=ChannelConfig(htlc_minimum_msat=1000))
    _bob_gets(pair, _add(pair, **changes))
    _assert_failed_channel(pair.bob, fragment)


def test_htlc_over_max_accepted_fails_the_channel() -> None:
    pair = open_pair(push_msat=100_000_000, bob_config=ChannelConfig(max_accepted_htlcs=3))
    for htlc_id in range(3):
        _bob_gets(pair, _add(pair, id=htlc_id))
    assert pair.bob.state.status is ChannelStatus.NORMAL
    _bob_gets(pair, _add(pair, id=3))
    _assert_failed_channel(pair.bob, "max_accepted_htlcs")


def test_htlc_over_max_in_flight_fails_the_channel() -> None:
    pair = open_pair(
        push_msat=100_000_000, bob_config=ChannelConfig(max_htlc_value_in_flight_msat=12_000_000)
    )
    _bob_gets(pair, _add(pair, id=0, amount_msat=6_000_000))
    _bob_gets(pair, _add(pair, id=1, amount_msat=6_000_000))
    _bob_gets(pair, _add(pair, id=2, amount_msat=6_000_000))
    _assert_failed_channel(pair.bob, "in flight")


def test_outgoing_limits_refuse_the_command() -> None:
    pair = open_pair(
        push_msat=100_000_000, bob_config=ChannelConfig(max_accepted_htlcs=2, htlc_minimum_msat=1000)
    )
    alice = pair.alice
    ok = alice.handle(AddHtlc(5_000_000, bytes(32), 600, ONION))
    assert any(isinstance(a, HtlcOffered) for a in ok)
    alice.handle(AddHtlc(5_000_000, bytes(32), 600, ONION))
    for command in (
        AddHtlc(5_000_000, bytes(32), 600, ONION),  # over max_accepted_htlcs
    ):
        assert alice.handle(command)[-1].response is ErrorResponse.IGNORE  # type: ignore[union-attr]
    fresh = open_pair(push_msat=100_000_000, bob_config=ChannelConfig(htlc_minimum_msat=1000))
    for command in (
        AddHtlc(999, bytes(32), 600, ONION),  # below the peer's minimum
        AddHtlc(0, bytes(32), 600, ONION),
        AddHtlc(5_000, bytes(32), 500_000_000, ONION),
        AddHtlc(5_000, bytes(32), 600, ONION[:100]),
        AddHtlc(895_000_000, bytes(32), 600, ONION),  # eats into Alice's reserve and fee buffer
    ):
        assert fresh.alice.handle(command)[-1].response is ErrorResponse.IGNORE  # type: ignore[union-attr]
    # Bob holds 100_000 sat, 10_000 of it the reserve Alice asks him to keep.
    assert fresh.bob.handle(AddHtlc(90_000_001, bytes(32), 600, ONION))[-1].response is ErrorResponse.IGNORE  # type: ignore[union-attr]
    assert any(
        isinstance(a, HtlcOffered) for a in fresh.bob.handle(AddHtlc(89_000_000, bytes(32), 600, ONION))
    )


def test_dust_exposure_limit() -> None:
    pair = open_pair(push_msat=100_000_000, alice_config=ChannelConfig(max_dust_htlc_exposure_msat=2_500_000))
    for _ in range(2):
        assert any(isinstance(a, HtlcOffered) for a in pair.pay(pair.alice, 1_000_000, sign=False))
    assert pair.pay(pair.alice, 1_000_000, sign=False)[-1].response is ErrorResponse.IGNORE  # type: ignore[union-attr]
    # A non-dust HTLC is not limited by dust exposure.
    assert any(isinstance(a, HtlcOffered) for a in pair.pay(pair.alice, 50_000_000, sign=False))


def _dance_until_commitment(pair: Pair) -> CommitmentSigned:
    pair.pay(pair.alice, 7_000_000, sign=False)
    pair.pay(pair.alice, 8_000_000)
    pair.deliver_one(pair.alice)
    pair.deliver_one(pair.alice)
    message = decode_message_typed(pair.alice.outbox.pop(0))
    assert isinstance(message, CommitmentSigned)
    return message


def test_bad_commitment_signature_fails_the_channel() -> None:
    pair = open_pair(push_msat=100_000_000)
    commit = _dance_until_commitment(pair)
    bad = replace(commit, signature=commit.htlc_signature[0])  # a valid signature, of something else
    pair.bob.handle(bad)
    _assert_failed_channel(pair.bob, "invalid signature for commitment")
    assert not _sent([SendMessage(decode_message_typed(d)) for d in pair.bob.outbox], RevokeAndAck)


def test_bad_htlc_signature_fails_the_channel() -> None:
    pair = open_pair(push_msat=100_000_000)
    commit = _dance_until_commitment(pair)
    sigs = commit.htlc_signature
    pair.bob.handle(replace(commit, htlc_signature=(sigs[1], sigs[0])))
    _assert_failed_channel(pair.bob, "htlc_signature")


def test_missing_htlc_signature_fails_the_channel() -> None:
    pair = open_pair(push_msat=100_000_000)
    commit = _dance_until_commitment(pair)
    pair.bob.handle(replace(commit, htlc_signature=commit.htlc_signature[:1]))
    _assert_failed_channel(pair.bob, "HTLC signatures")


def test_high_s_signature_is_rejected() -> None:
    pair = open_pair(push_msat=100_000_000)
    commit = _dance_until_commitment(pair)
    order = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    r, s = commit.signature[:32], int.from_bytes(commit.signature[32:], "big")
    pair.bob.handle(replace(commit, signature=r + (order - s).to_bytes(32, "big")))
    _assert_failed_channel(pair.bob, "low-S")


def test_wrong_revocation_secret_fails_the_channel() -> None:
    pair = open_pair(push_msat=100_000_000)
    commit = _dance_until_commitment(pair)
    pair.bob.handle(commit)
    (revocation,) = [m for m in map(decode_message_typed, pair.bob.outbox) if isinstance(m, RevokeAndAck)]
    pair.bob.outbox.clear()
    forged = replace(revocation, per_commitment_secret=hashlib.sha256(b"not it").digest())
    pair.alice.handle(forged)
    _assert_failed_channel(pair.alice, "per_commitment_secret")


def test_unexpected_revoke_and_ack_fails_the_channel() -> None:
    pair = open_pair(push_msat=100_000_000)
    pair.alice.handle(
        RevokeAndAck(
            pair.alice.state.channel_id, bytes(31) + b"\x01", pair.bob.state.remote.first_per_commitment_point
        )
    )  # type: ignore[union-attr]
    _assert_failed_channel(pair.alice, "revoke_and_ack")


def test_failed_channel_broadcasts_a_valid_commitment() -> None:
    pair = open_pair(push_msat=100_000_000)
    pair.pay(pair.alice, 9_000_000)
    pair.flush(fulfill=False)
    pair.bob.handle(UpdateFee(pair.bob.state.channel_id, 1))
    (tx,) = pair.bob.broadcasts
    ledger = pair.bob.state.ledger
    assert ledger is not None
    # The broadcast commitment pays Bob's view of the balances and carries the pending HTLC.
    snap = snapshot(ledger, View.LOCAL)
    assert len(snap.htlcs) == 1
    assert len(tx.inputs[0].witness) == 4
    assert pair.bob.state.phase is Phase.FORCE_CLOSING
    assert any(decode_message(d).name == "error" for d in pair.bob.outbox)
    # And Alice, on receiving the error, goes on chain as well.
    pair.flush(fulfill=False)
    assert pair.alice.state.phase is Phase.FORCE_CLOSING
    assert len(pair.alice.broadcasts) == 2  # funding, then her commitment


def test_messages_after_closing_are_ignored() -> None:
    pair = open_pair(push_msat=100_000_000)
    pair.bob.handle(UpdateFee(pair.bob.state.channel_id, 1))
    before = pair.bob.state
    actions = pair.bob.handle(_add(pair))
    assert actions[-1].response is ErrorResponse.IGNORE  # type: ignore[union-attr]
    assert pair.bob.state == before
    assert not [m for m in map(decode_message_typed, pair.bob.outbox) if isinstance(m, ErrorMessage)][1:]


def test_offered_htlc_past_its_deadline_fails_the_channel() -> None:
    from ampere.channel.twoway import BlockConnected

    pair = open_pair(push_msat=100_000_000)
    pair.pay(pair.alice, 5_000_000, cltv_expiry=700)
    pair.flush(fulfill=False)
    assert pair.alice.handle(BlockConnected(701)) == []
    pair.alice.handle(BlockConnected(702))
    _assert_failed_channel(pair.alice, "timed out")


def test_fulfilled_htlc_near_its_expiry_fails_the_channel() -> None:
    from ampere.channel.twoway import BlockConnected

    pair = open_pair(push_msat=100_000_000)
    pair.pay(pair.alice, 5_000_000, cltv_expiry=700)
    pair.flush(fulfill=False)
    htlc = pair.bob.received.pop(0)
    pair.bob.handle(FulfillHtlc(htlc.htlc_id, pair.preimages[htlc.payment_hash]))
    # Alice never signs the removal; near the expiry Bob must go on chain to claim it.
    assert pair.bob.handle(BlockConnected(681)) == []
    pair.bob.handle(BlockConnected(682))
    _assert_failed_channel(pair.bob, "fulfilled HTLC")


def test_without_auto_sign_every_commitment_is_explicit() -> None:
    config = ChannelConfig(auto_sign=False)
    pair = open_pair(push_msat=100_000_000, alice_config=config, bob_config=config)
    pair.pay(pair.alice, 5_000_000)
    pair.deliver_one(pair.alice)
    pair.deliver_one(pair.alice)  # commitment_signed: Bob revokes but does not sign back
    names = [decode_message(d).name for d in pair.bob.outbox]
    assert names == ["revoke_and_ack"]
    pair.deliver_one(pair.bob)
    pair.bob.handle(SignCommitment())
    pair.flush()
    pair.assert_agree()
    assert pair.alice.fulfilled


def test_warning_and_disconnect_responses() -> None:
    from ampere.channel.twoway.messages import ClosingComplete, WarningMessage

    pair = open_pair(push_msat=100_000_000)
    channel_id = pair.bob.state.channel_id
    actions = pair.bob.handle(ClosingComplete(channel_id, b"", b"", 0, 0))
    assert actions[-1].response is ErrorResponse.WARN  # type: ignore[union-attr]
    assert decode_message(pair.bob.outbox[-1]).name == "warning"
    assert pair.bob.state.phase is Phase.NORMAL
    actions = pair.bob.handle(WarningMessage(channel_id, b"careful"))
    assert actions[-1].response is ErrorResponse.IGNORE  # type: ignore[union-attr]
    assert "careful" in actions[-1].reason  # type: ignore[union-attr]
    other_channel = replace(_add(pair), channel_id=bytes(32))
    assert pair.bob.handle(other_channel)[-1].response is ErrorResponse.IGNORE  # type: ignore[union-attr]
    assert pair.bob.state.phase is Phase.NORMAL
