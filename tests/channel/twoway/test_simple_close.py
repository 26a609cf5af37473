"""option_simple_close: each side proposes (and pays for) its own closing transaction."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ampere.bitcoin.tx import Transaction
from ampere.channel.twoway import (
    ChannelClosed,
    CloseType,
    ErrorResponse,
    FundingSpent,
    Phase,
    ShutdownCommand,
)
from ampere.channel.twoway.messages import ClosingComplete, parse_message
from ampere.wire import decode_message
from ampere.wire.features import Feature
from tests.channel.twoway.harness import FEATURES, Pair, open_pair
from tests.channel.twoway.test_close import _verify_closing

SIMPLE = FEATURES.with_feature(Feature.SIMPLE_CLOSE)


def _mutual_closes(pair: Pair) -> dict[str, list[Transaction]]:
    return {
        peer.name: [tx for tx in peer.broadcasts if tx.inputs[0].prevout == peer.state.funding_outpoint]
        for peer in (pair.alice, pair.bob)
    }


@pytest.mark.parametrize("push_msat", [300_000_000, 0])
def test_both_sides_close_paying_their_own_fee(push_msat: int) -> None:
    pair = open_pair(push_msat=push_msat, features=SIMPLE)
    pair.alice.handle(ShutdownCommand())
    pair.flush()
    for peer in (pair.alice, pair.bob):
        assert peer.state.phase is Phase.CLOSING, peer.errors
        assert all(e.response is ErrorResponse.IGNORE for e in peer.errors)
        closed = [a for a in peer.others if isinstance(a, ChannelClosed)]
        assert closed and all(c.close_type is CloseType.MUTUAL for c in closed)
    closes = _mutual_closes(pair)
    # Each transaction is broadcast by both sides: the closer on closing_sig, the closee at once.
    assert {tx.txid for tx in closes["alice"]} == {tx.txid for tx in closes["bob"]}
    for tx in closes["alice"]:
        _verify_closing(tx, pair)
        assert tx.inputs[0].sequence == 0xFFFF_FFFD
    scripts = {pair.alice.state.local_shutdown_script: 700_000 if push_msat else 1_000_000,
               pair.bob.state.local_shutdown_script: 300_000 if push_msat else 0}  # fmt: skip
    for tx in closes["alice"]:
        paid = {out.script_pubkey: out.value for out in tx.outputs}
        fee = 1_000_000 - tx.total_output_value()
        assert 0 < fee < 5_000
        # Exactly one side paid the fee: the other output is its full balance.
        shortfalls = {script: scripts[script] - paid.get(script, 0) for script in scripts if scripts[script]}
        assert sorted(shortfalls.values())[-1] == fee and sum(shortfalls.values()) == fee
    pair.alice.handle(FundingSpent(closes["alice"][0]))
    assert pair.alice.state.phase is Phase.CLOSED
    if not push_msat:
        assert len(closes["alice"]) == 1  # Bob has nothing to pay a fee with


def test_closing_complete_for_another_script_is_refused() -> None:
    pair = open_pair(push_msat=300_000_000, features=SIMPLE)
    pair.alice.handle(ShutdownCommand())
    pair.deliver_one(pair.alice)  # shutdown
    pair.deliver_one(pair.bob)  # shutdown back, and Bob's closing_complete
    message = next(
        m
        for m in (parse_message(decode_message(d)) for d in pair.bob.outbox)
        if isinstance(m, ClosingComplete)
    )
    forged = replace(message, closee_scriptpubkey=b"\x00\x14" + bytes(20))
    actions = pair.alice.handle(forged)
    assert actions[-1].response is ErrorResponse.DISCONNECT  # type: ignore[union-attr]
    bad_sig = replace(message, closer_and_closee_outputs=message.closer_output_only)
    actions = pair.alice.handle(bad_sig)
    assert actions[-1].response is ErrorResponse.DISCONNECT  # type: ignore[union-attr]
    assert pair.alice.state.phase is Phase.NEGOTIATING


def test_simple_close_messages_without_the_feature_earn_a_warning() -> None:
    pair = open_pair(push_msat=300_000_000)
    channel_id = pair.alice.state.channel_id
    actions = pair.alice.handle(ClosingComplete(channel_id, b"", b"", 0, 0))
    assert actions[-1].response is ErrorResponse.WARN  # type: ignore[union-attr]


def test_op_return_shutdown_script_needs_simple_close() -> None:
    op_return = b"\x6a\x06" + b"closed"
    legacy = open_pair(push_msat=300_000_000)
    assert legacy.alice.handle(ShutdownCommand(op_return))[-1].response is ErrorResponse.IGNORE  # type: ignore[union-attr]
    pair = open_pair(push_msat=300_000_000, features=SIMPLE)
    pair.bob.handle(ShutdownCommand(op_return))
    pair.flush()
    assert pair.bob.state.phase is Phase.CLOSING
    burned = [
        tx for tx in _mutual_closes(pair)["bob"] if any(o.script_pubkey == op_return for o in tx.outputs)
    ]
    assert burned and all(o.value == 0 for tx in burned for o in tx.outputs if o.script_pubkey == op_return)


def test_negotiation_restarts_after_a_reconnection() -> None:
    pair = open_pair(push_msat=300_000_000, features=SIMPLE)
    pair.alice.handle(ShutdownCommand())
    pair.deliver_one(pair.alice)  # shutdown
    pair.deliver_one(pair.bob)  # shutdown back: both now propose; the proposals get lost
    pair.disconnect()
    assert pair.alice.state.phase is Phase.NEGOTIATING
    pair.reconnect()
    pair.flush()
    for peer in (pair.alice, pair.bob):
        assert peer.state.phase is Phase.CLOSING, peer.errors
    for tx in _mutual_closes(pair)["alice"]:
        _verify_closing(tx, pair)
