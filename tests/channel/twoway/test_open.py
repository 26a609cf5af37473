"""Channel establishment v1: the happy paths and every BOLT 2 parameter failure."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from ampere.bitcoin.tx import Transaction, TxOut
from ampere.channel.twoway import (
    ChannelConfig,
    ChannelReady,
    ChannelType,
    ErrorResponse,
    FundingConfirmed,
    FundingTransactionBuilt,
    OpenChannelCommand,
    OpenFailed,
    Phase,
    SendMessage,
    WatchFunding,
)
from ampere.channel.twoway.messages import (
    AcceptChannel,
    ErrorMessage,
    FundingCreated,
    FundingSigned,
    OpenChannel,
)
from ampere.channel.twoway.open import derive_channel_id
from ampere.channel.twoway.state import ChannelStatus
from ampere.wire import Features
from ampere.wire.features import Feature
from tests.channel.twoway.harness import FEERATE, SCID, Pair, Peer, make_peer, open_pair

TEMP_ID = hashlib.sha256(b"temp").digest()


def _sent(actions: list, kind: type) -> list:  # type: ignore[type-arg]
    return [a.message for a in actions if isinstance(a, SendMessage) and isinstance(a.message, kind)]


def _open_message(
    funding_sat: int = 1_000_000, push_msat: int = 0, channel_type: ChannelType = ChannelType.STATIC_REMOTEKEY
) -> OpenChannel:
    alice = make_peer("alice")
    actions = alice.handle(OpenChannelCommand(TEMP_ID, funding_sat, push_msat, FEERATE, channel_type))
    (message,) = _sent(actions, OpenChannel)
    assert isinstance(message, OpenChannel)
    return message


def _expect_open_failure(bob: Peer, actions: list, fragment: str) -> None:  # type: ignore[type-arg]
    errors = [a for a in bob.errors if a.response is ErrorResponse.CLOSE]
    assert errors and fragment in errors[-1].reason, bob.errors
    (error,) = _sent(actions, ErrorMessage)
    assert error.channel_id == TEMP_ID  # BOLT 1: the temporary id before funding
    assert bob.state.phase is Phase.ABORTED
    assert bob.state.status is ChannelStatus.CLOSED
    assert any(isinstance(a, OpenFailed) for a in actions)
    assert not bob.broadcasts


@pytest.mark.parametrize("channel_type", list(ChannelType))
@pytest.mark.parametrize("push_msat", [0, 123_456_789])
def test_open_both_channel_types(channel_type: ChannelType, push_msat: int) -> None:
    pair = open_pair(channel_type, 2_000_000, push_msat)
    for peer in (pair.alice, pair.bob):
        state = peer.state
        assert state.channel_type is channel_type
        assert state.status is ChannelStatus.NORMAL
        assert any(isinstance(a, ChannelReady) for a in peer.others)
        assert any(isinstance(a, WatchFunding) for a in peer.others)
    ledger_a, ledger_b = pair.alice.state.ledger, pair.bob.state.ledger
    assert ledger_a is not None and ledger_b is not None
    assert ledger_a.local_balance_msat == 2_000_000_000 - push_msat
    assert ledger_b.local_balance_msat == push_msat
    assert pair.alice.state.channel_id == pair.bob.state.channel_id
    pair.assert_agree()


def test_large_channel_with_push_like_the_seed() -> None:
    pair = open_pair(ChannelType.ANCHORS, 200_000_000, 100_000_000_000)
    assert pair.bob.state.ledger is not None
    assert pair.bob.state.ledger.local_balance_msat == 100_000_000_000
    pair.pay(pair.alice, 50_000_000_000)
    pair.flush()
    assert pair.bob.state.ledger is not None
    assert pair.bob.state.ledger.local_balance_msat == 150_000_000_000
    pair.assert_agree()


def test_channel_ready_waits_for_minimum_depth() -> None:
    pair = Pair(make_peer("alice"), make_peer("bob"))
    alice, bob = pair.alice, pair.bob
    alice.handle(OpenChannelCommand(TEMP_ID, 1_000_000, 0, FEERATE))
    pair.deliver_one(alice)
    pair.deliver_one(bob)
    assert alice.funding_tx is not None
    alice.handle(FundingTransactionBuilt(alice.funding_tx, 1))
    pair.deliver_one(alice)
    pair.deliver_one(bob)
    for peer in (alice, bob):
        peer.handle(FundingConfirmed(alice.funding_tx, 2, SCID))
    assert not alice.outbox and not bob.outbox
    assert alice.state.status is ChannelStatus.OPENING
    alice.handle(FundingConfirmed(alice.funding_tx, 3, SCID))
    pair.deliver_one(alice)  # Alice's channel_ready reaches Bob, who is not deep enough yet
    assert bob.state.phase is Phase.WAIT_CHANNEL_READY and alice.state.phase is Phase.WAIT_CHANNEL_READY
    bob.handle(FundingConfirmed(alice.funding_tx, 3, SCID))
    assert bob.state.phase is Phase.NORMAL
    pair.deliver_one(bob)
    assert alice.state.phase is Phase.NORMAL
    assert alice.state.short_channel_id == SCID


def test_channel_id_is_txid_xor_output_index() -> None:
    txid = bytes(range(32))
    assert derive_channel_id(txid, 0) == txid
    assert derive_channel_id(txid, 0x0102)[-2:] == bytes([30 ^ 1, 31 ^ 2])
    assert derive_channel_id(txid, 0x0102)[:30] == txid[:30]


# --- open_channel: every failure BOLT 2 prescribes --------------------------------------------------


OPEN_FAILURES = [
    ("unknown chain", {"chain_hash": bytes(32)}, "unknown chain"),
    ("push over funding", {"push_msat": 1_000_000_001}, "push_msat"),
    ("to_self_delay too large", {"to_self_delay": 2017}, "to_self_delay"),
    ("max_accepted_htlcs over 483", {"max_accepted_htlcs": 484}, "483"),
    ("feerate too low", {"feerate_per_kw": 252}, "feerate"),
    ("feerate too high against estimate", {"feerate_per_kw": FEERATE * 11}, "feerate"),
    ("dust over reserve", {"dust_limit_satoshis": 10_001, "channel_reserve_satoshis": 10_000}, "dust_limit"),
    ("dust below 354", {"dust_limit_satoshis": 353}, "354"),
    ("dust too large", {"dust_limit_satoshis": 10_001, "channel_reserve_satoshis": 20_000}, "too large"),
    ("no channel_type", {"channel_type": None}, "channel_type"),
    ("unknown channel_type", {"channel_type": bytes([0x40, 0x10, 0x00, 0x00, 0x00, 0x00])}, "not suitable"),
    ("scid_alias variant", {"channel_type": Features.from_bit_numbers([12, 46]).to_bytes()}, "not suitable"),
    (
        "funder cannot pay the fee",
        {"funding_satoshis": 15_000, "feerate_per_kw": 24_000, "channel_reserve_satoshis": 1_000},
        "fee",
    ),
    (
        "both outputs at or below reserve",
        {"funding_satoshis": 15_000, "feerate_per_kw": 20_000, "channel_reserve_satoshis": 3_000},
        "reserve",
    ),
    ("funding too small", {"funding_satoshis": 5_000}, "too small"),
    ("reserve too large", {"channel_reserve_satoshis": 500_000}, "too large"),
    ("htlc_minimum too large", {"htlc_minimum_msat": 10**9}, "htlc_minimum_msat"),
]


@pytest.mark.parametrize(("name", "changes", "fragment"), OPEN_FAILURES, ids=[f[0] for f in OPEN_FAILURES])
def test_open_channel_failures(name: str, changes: dict[str, object], fragment: str) -> None:
    message = replace(_open_message(), **changes)  # type: ignore[arg-type]
    bob = make_peer("bob")
    actions = bob.handle(message)
    _expect_open_failure(bob, actions, fragment)


def test_large_channel_needs_support() -> None:
    message = _open_message(funding_sat=1 << 24)
    bob = make_peer("bob", ChannelConfig(support_large_channel=False))
    _expect_open_failure(bob, bob.handle(message), "large")
    alice = make_peer("alice", ChannelConfig(support_large_channel=False))
    assert alice.handle(OpenChannelCommand(TEMP_ID, 1 << 24, 0, FEERATE))[-1].response is ErrorResponse.IGNORE  # type: ignore[union-attr]
    assert alice.state.phase is Phase.INIT


def test_anchors_need_negotiation() -> None:
    message = _open_message(channel_type=ChannelType.ANCHORS)
    bob = make_peer("bob", ChannelConfig(support_anchors=False))
    _expect_open_failure(bob, bob.handle(message), "anchors")


def test_invalid_basepoint_fails_decoding() -> None:
    message = _open_message()
    data = bytearray(SendMessage(message).to_bytes())
    start = data.index(message.htlc_basepoint)
    data[start] = 0x05  # not a compressed point prefix
    bob = make_peer("bob")
    with pytest.raises(Exception, match="point"):
        bob.receive(bytes(data))
    assert bob.state.phase is Phase.INIT


# --- accept_channel ---------------------------------------------------------------------------------


def _accept_message() -> tuple[Peer, AcceptChannel]:
    alice, bob = make_peer("alice"), make_peer("bob")
    pair = Pair(alice, bob)
    alice.handle(OpenChannelCommand(TEMP_ID, 1_000_000, 0, FEERATE))
    (accept,) = _sent(pair.deliver_one(alice), AcceptChannel)
    bob.outbox.clear()
    return alice, accept


ACCEPT_FAILURES = [
    ("channel_type mismatch", {"channel_type": ChannelType.ANCHORS.to_bytes()}, "does not match"),
    ("no channel_type", {"channel_type": None}, "channel_type"),
    ("minimum_depth too large", {"minimum_depth": 1000}, "minimum_depth"),
    ("reserve below our dust", {"channel_reserve_satoshis": 500, "dust_limit_satoshis": 400}, "dust_limit"),
    ("dust above our reserve", {"dust_limit_satoshis": 10_001, "channel_reserve_satoshis": 20_000}, "dust"),
    ("to_self_delay too large", {"to_self_delay": 5000}, "to_self_delay"),
    ("max_accepted_htlcs over 483", {"max_accepted_htlcs": 1000}, "483"),
    ("dust below 354", {"dust_limit_satoshis": 300}, "354"),
]


@pytest.mark.parametrize(
    ("name", "changes", "fragment"), ACCEPT_FAILURES, ids=[f[0] for f in ACCEPT_FAILURES]
)
def test_accept_channel_failures(name: str, changes: dict[str, object], fragment: str) -> None:
    alice, accept = _accept_message()
    actions = alice.handle(replace(accept, **changes))  # type: ignore[arg-type]
    _expect_open_failure(alice, actions, fragment)


# --- funding ---------------------------------------------------------------------------------------


def _to_funding_created() -> tuple[Pair, FundingCreated]:
    pair = Pair(make_peer("alice"), make_peer("bob"))
    alice, bob = pair.alice, pair.bob
    alice.handle(OpenChannelCommand(TEMP_ID, 1_000_000, 0, FEERATE))
    pair.deliver_one(alice)
    pair.deliver_one(bob)
    assert alice.funding_tx is not None
    (created,) = _sent(alice.handle(FundingTransactionBuilt(alice.funding_tx, 1)), FundingCreated)
    alice.outbox.clear()
    return pair, created


def test_wallet_funding_with_wrong_output_is_refused() -> None:
    pair = Pair(make_peer("alice"), make_peer("bob"))
    alice = pair.alice
    alice.handle(OpenChannelCommand(TEMP_ID, 1_000_000, 0, FEERATE))
    pair.deliver_one(alice)
    pair.deliver_one(pair.bob)
    assert alice.funding_tx is not None
    wrong = Transaction(
        2,
        alice.funding_tx.inputs,
        (alice.funding_tx.outputs[0], TxOut(999_999, alice.funding_tx.outputs[1].script_pubkey)),
    )
    actions = alice.handle(FundingTransactionBuilt(wrong, 1))
    assert actions[-1].response is ErrorResponse.IGNORE  # type: ignore[union-attr]
    assert alice.state.phase is Phase.WAIT_FUNDING_TX


def test_bad_funding_created_signature_fails_the_open() -> None:
    pair, created = _to_funding_created()
    bad = replace(created, signature=created.signature[:32] + bytes(31) + b"\x01")
    bob = pair.bob
    actions = bob.handle(bad)
    _expect_open_failure(bob, actions, "signature")


def test_bad_funding_signed_signature_never_broadcasts() -> None:
    pair, created = _to_funding_created()
    alice, bob = pair.alice, pair.bob
    (signed,) = _sent(bob.handle(created), FundingSigned)
    actions = alice.handle(replace(signed, signature=bytes(63) + b"\x01"))
    assert alice.state.phase is Phase.ABORTED
    assert not alice.broadcasts
    assert _sent(actions, ErrorMessage)


def test_funding_transaction_with_wrong_output_fails_the_channel() -> None:
    pair, created = _to_funding_created()
    alice, bob = pair.alice, pair.bob
    bob.handle(created)
    pair.deliver_one(bob)
    assert alice.funding_tx is not None
    tx = alice.funding_tx
    wrong = Transaction(
        2, tx.inputs, (tx.outputs[0], TxOut(tx.outputs[1].value - 1, tx.outputs[1].script_pubkey))
    )
    # The accepter learns the funding transaction from the chain, under the announced txid.
    object.__setattr__(wrong, "_cache", {})
    actions = bob.handle(FundingConfirmed(wrong, 3, SCID))
    assert bob.errors[-1].response is ErrorResponse.CLOSE
    assert _sent(actions, ErrorMessage)
    # It never opened: nothing to broadcast (a commitment could not spend the wrong output).
    assert bob.state.status is ChannelStatus.CLOSED and not bob.broadcasts


def test_disconnect_before_funding_forgets_the_channel() -> None:
    pair, _ = _to_funding_created()
    pair.disconnect()
    for peer in (pair.alice, pair.bob):
        assert peer.state.phase is Phase.ABORTED
        assert any(isinstance(a, OpenFailed) for a in peer.others)


def test_features_without_anchors_refuse_anchor_open() -> None:
    alice = make_peer("alice")
    alice.channel._state = replace(
        alice.state, remote_features=Features.of(optional=[Feature.STATIC_REMOTEKEY]).to_bytes()
    )
    actions = alice.handle(OpenChannelCommand(TEMP_ID, 1_000_000, 0, FEERATE, ChannelType.ANCHORS))
    assert actions[-1].response is ErrorResponse.IGNORE  # type: ignore[union-attr]


def test_fundee_forgets_a_channel_whose_funding_never_confirms() -> None:
    from ampere.channel.twoway import BlockConnected

    pair, created = _to_funding_created()
    bob = Peer("bob", pair.bob.root, pair.bob.channel)
    bob.channel.config = ChannelConfig(funding_timeout_blocks=3)
    bob.handle(created)
    for height in range(2):
        bob.handle(BlockConnected(100 + height))
        assert bob.state.phase is Phase.WAIT_CHANNEL_READY
    bob.handle(BlockConnected(102))
    assert bob.state.phase is Phase.ABORTED
    assert any(isinstance(a, OpenFailed) for a in bob.others)
