"""Developer mode: the core hands out each commitment of ours fully signed when it accepts it.

The transactions are checked by libbitcoinkernel's script interpreter against the funding output,
not by the channel code that signed them.
"""

from __future__ import annotations

import pytest

from ampere.bitcoin.tx import Transaction, TxOut
from ampere.channel.transactions.commitment import commitment_number_from_tx
from ampere.channel.twoway import Broadcast, ChannelConfig, ChannelType, ForceClose, SendMessage
from ampere.channel.twoway.actions import LocalCommitmentSigned
from ampere.channel.twoway.ledger import obscuring_factor
from ampere.channel.twoway.messages import RevokeAndAck
from tests.channel.test_bolt3_witnesses import consensus_valid
from tests.channel.twoway.harness import Pair, Peer, open_pair

DEVELOPER = ChannelConfig(keep_signed_commitments=True)


def _kept(peer: Peer) -> list[LocalCommitmentSigned]:
    return [action for action in peer.others if isinstance(action, LocalCommitmentSigned)]


def _funding_output(pair: Pair) -> TxOut:
    funding_tx = pair.alice.funding_tx
    outpoint = pair.alice.state.funding_outpoint
    assert funding_tx is not None and outpoint is not None
    return funding_tx.outputs[outpoint.vout]


def _check_spends_funding(pair: Pair, peer: Peer, tx: Transaction, number: int) -> None:
    state = peer.state
    assert len(tx.inputs) == 1 and tx.inputs[0].prevout == state.funding_outpoint
    assert consensus_valid(tx, 0, [_funding_output(pair)]), f"commitment {number} does not verify"
    assert commitment_number_from_tx(tx, obscuring_factor(state)) == number
    # Nothing is created: the outputs and the fee are the funding output's value.
    assert 0 < tx.total_output_value() < state.funding_sat


@pytest.mark.parametrize("channel_type", [ChannelType.STATIC_REMOTEKEY, ChannelType.ANCHORS])
def test_every_accepted_commitment_is_kept_fully_signed(channel_type: ChannelType) -> None:
    pair = open_pair(channel_type, 2_000_000, 500_000_000, alice_config=DEVELOPER, bob_config=DEVELOPER)
    for amount in (10_000_000, 20_000_000, 30_000_000):
        pair.pay(pair.alice, amount)
        pair.flush()
    pair.pay(pair.bob, 5_000_000)
    pair.flush()
    for peer in (pair.alice, pair.bob):
        kept = _kept(peer)
        ledger = peer.state.ledger
        assert ledger is not None and ledger.local_commitment_number > 3
        assert [k.commitment_number for k in kept] == list(range(ledger.local_commitment_number + 1))
        assert all(k.channel_id == peer.state.channel_id for k in kept)
        assert len({k.transaction.txid for k in kept}) == len(kept)
        for k in kept:
            _check_spends_funding(pair, peer, k.transaction, k.commitment_number)
        # The newest one is exactly what a force close broadcasts.
        broadcasts = [a for a in peer.handle(ForceClose()) if isinstance(a, Broadcast)]
        assert [b.transaction.serialize() for b in broadcasts] == [kept[-1].transaction.serialize()]


def test_the_first_commitment_pays_the_opening_balances() -> None:
    pair = open_pair(ChannelType.STATIC_REMOTEKEY, 2_000_000, 1_000_000_000, alice_config=DEVELOPER)
    (first,) = _kept(pair.alice)
    assert first.commitment_number == 0 and not _kept(pair.bob)
    values = sorted(out.value for out in first.transaction.outputs)
    fee = 2_000_000 - sum(values)
    # Alice (the opener) pays the fee out of her 1 BTC; Bob's pushed million sats are whole.
    assert values == sorted([1_000_000, 1_000_000 - fee]) and 0 < fee < 10_000


def test_kept_before_the_revocation_leaves() -> None:
    pair = open_pair(ChannelType.STATIC_REMOTEKEY, 1_000_000, 0, bob_config=DEVELOPER)
    pair.pay(pair.alice, 50_000_000)
    assert len(pair.alice.outbox) == 2
    pair.deliver_one(pair.alice)  # update_add_htlc
    actions = pair.deliver_one(pair.alice)  # commitment_signed
    kinds = [
        type(a.message).__name__ if isinstance(a, SendMessage) else type(a).__name__
        for a in actions
        if isinstance(a, SendMessage | LocalCommitmentSigned)
    ]
    assert kinds[:2] == ["LocalCommitmentSigned", RevokeAndAck.__name__]
    assert _kept(pair.bob)[-1].commitment_number == 1


def test_off_by_default() -> None:
    pair = open_pair(ChannelType.STATIC_REMOTEKEY, 1_000_000, 0)
    pair.pay(pair.alice, 50_000_000)
    pair.flush()
    assert not _kept(pair.alice) and not _kept(pair.bob)
