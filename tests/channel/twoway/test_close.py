"""Cooperative close (shutdown, closing_signed) and the chain's view of the funding output."""

from __future__ import annotations

import pytest

from ampere.bitcoin.keys import verify_der
from ampere.bitcoin.script import p2wpkh_script
from ampere.bitcoin.sighash import SigHash, bip143_sighash
from ampere.bitcoin.tx import Transaction
from ampere.channel.twoway import (
    ChannelClosed,
    ChannelType,
    CloseType,
    ErrorResponse,
    FundingSpent,
    OnchainResolved,
    Phase,
    ShutdownCommand,
)
from ampere.channel.twoway.ledger import View, snapshot
from ampere.channel.twoway.state import ChannelStatus
from tests.channel.twoway.harness import Pair, Peer, open_pair


def _verify_closing(tx: Transaction, pair: Pair) -> None:
    """Both signatures in the witness are valid under the two funding keys (checked with
    ampere.bitcoin directly, not with the channel code that made them)."""
    funding = pair.alice.state.funding_outpoint
    assert funding is not None and tx.inputs[0].prevout == funding
    empty, sig1, sig2, script = tx.inputs[0].witness
    assert empty == b""
    digest = bip143_sighash(tx, 0, script, pair.alice.state.funding_sat, SigHash.ALL)
    keys = sorted(
        p.state.local.basepoints.funding_pubkey  # type: ignore[union-attr]
        for p in (pair.alice, pair.bob)
    )
    for key, sig in zip(keys, (sig1, sig2), strict=True):
        assert sig[-1] == SigHash.ALL
        assert verify_der(key, sig[:-1], digest)


def _closing_tx(peer: Peer) -> Transaction:
    closed = [a for a in peer.others if isinstance(a, ChannelClosed)]
    assert closed and closed[-1].close_type is CloseType.MUTUAL
    tx = peer.broadcasts[-1]
    assert tx.txid == closed[-1].closing_txid
    return tx


@pytest.mark.parametrize("channel_type", list(ChannelType))
@pytest.mark.parametrize("initiator", ["alice", "bob"])
def test_cooperative_close_pays_the_balances_minus_the_fee(channel_type: ChannelType, initiator: str) -> None:
    pair = open_pair(channel_type, 1_000_000, 100_000_000)
    pair.pay(pair.alice, 123_456_789)
    pair.pay(pair.bob, 1_000_001)
    pair.flush()
    ledger = pair.alice.state.ledger
    assert ledger is not None
    alice_msat, bob_msat = ledger.local_balance_msat, ledger.remote_balance_msat
    starter = pair.alice if initiator == "alice" else pair.bob
    starter.handle(ShutdownCommand())
    pair.flush()
    for peer in (pair.alice, pair.bob):
        assert peer.state.phase is Phase.CLOSING
        assert peer.state.status is ChannelStatus.CLOSING
    tx_a, tx_b = _closing_tx(pair.alice), _closing_tx(pair.bob)
    assert tx_a.serialize() == tx_b.serialize()
    _verify_closing(tx_a, pair)
    negotiation = pair.alice.state.negotiation
    assert negotiation is not None and negotiation.our_fee_sat is not None
    fee = negotiation.our_fee_sat
    assert 0 < fee < 10_000
    values = {out.script_pubkey: out.value for out in tx_a.outputs}
    # The opener (Alice) pays the agreed fee; each output is the balance rounded down.
    assert values[pair.alice.state.local_shutdown_script] == alice_msat // 1000 - fee
    assert values[pair.bob.state.local_shutdown_script] == bob_msat // 1000
    assert tx_a.total_output_value() + fee + (alice_msat % 1000 + bob_msat % 1000) // 1000 == 1_000_000
    for peer in (pair.alice, pair.bob):
        peer.handle(FundingSpent(tx_a))
        assert peer.state.phase is Phase.CLOSED


def test_shutdown_waits_for_pending_htlcs() -> None:
    pair = open_pair(push_msat=100_000_000)
    pair.pay(pair.alice, 40_000_000)
    pair.pay(pair.bob, 30_000_000)
    pair.flush(fulfill=False)
    pair.alice.handle(ShutdownCommand())
    pair.flush(fulfill=False)
    # HTLCs are still pending: both shut down, no negotiation yet, no new HTLCs.
    for peer in (pair.alice, pair.bob):
        assert peer.state.phase is Phase.SHUTDOWN
    pair.fulfill_received()
    pair.flush()
    for peer in (pair.alice, pair.bob):
        assert peer.state.phase is Phase.CLOSING
    tx = _closing_tx(pair.alice)
    _verify_closing(tx, pair)
    fee = pair.alice.state.funding_sat - tx.total_output_value()  # balances are whole satoshis here
    values = sorted(out.value for out in tx.outputs)
    assert values == sorted([900_000 - 40_000 + 30_000 - fee, 100_000 + 40_000 - 30_000])


def test_no_new_htlcs_after_shutdown() -> None:
    from ampere.channel.twoway import AddHtlc

    pair = open_pair(push_msat=100_000_000)
    pair.pay(pair.alice, 40_000_000)
    pair.flush(fulfill=False)
    pair.bob.handle(ShutdownCommand())
    actions = pair.bob.handle(AddHtlc(1_000_000, bytes(32), 600, bytes(1366)))
    assert actions[-1].response is ErrorResponse.IGNORE  # type: ignore[union-attr]


def test_shutdown_script_forms() -> None:
    pair = open_pair()
    bad = pair.alice.handle(ShutdownCommand(b"\x76\xa9\x14" + bytes(20) + b"\x88\xac"))  # P2PKH
    assert bad[-1].response is ErrorResponse.IGNORE  # type: ignore[union-attr]
    taproot = b"\x51\x20" + bytes(32)
    pair.alice.handle(ShutdownCommand(taproot))
    pair.flush()
    assert pair.alice.state.phase is Phase.CLOSING
    assert any(out.script_pubkey == taproot for out in pair.alice.broadcasts[-1].outputs)


def test_remote_commitment_on_chain_is_classified() -> None:
    pair = open_pair(push_msat=100_000_000)
    pair.pay(pair.alice, 10_000_000)
    pair.flush()
    from ampere.channel.twoway import ForceClose

    pair.bob.handle(ForceClose())
    bob_commitment = pair.bob.broadcasts[-1]
    pair.alice.handle(FundingSpent(bob_commitment))
    closed = [a for a in pair.alice.others if isinstance(a, ChannelClosed)]
    assert closed[-1].close_type is CloseType.REMOTE_FORCE
    assert pair.alice.state.phase is Phase.FORCE_CLOSING
    pair.alice.handle(OnchainResolved())
    assert pair.alice.state.phase is Phase.CLOSED


def test_revoked_commitment_on_chain_is_a_breach() -> None:
    pair = open_pair(push_msat=100_000_000)
    from ampere.channel.transactions.signing import finalize_commitment
    from ampere.channel.twoway.common import Context, der, local_commitment

    # Bob's commitment #0, which he revokes once the payment goes through.
    bob = pair.bob
    ctx = Context(bob.channel.signer, bob.channel.config)
    ledger = bob.state.ledger
    assert ledger is not None
    old = local_commitment(bob.state, ledger, ctx)
    signed = finalize_commitment(
        old, bob.channel.signer.sign_holder_commitment(old), der(ledger.local_commit_signature, "sig")
    )
    pair.pay(pair.alice, 10_000_000)
    pair.flush()
    pair.alice.handle(FundingSpent(signed))
    closed = [a for a in pair.alice.others if isinstance(a, ChannelClosed)]
    assert closed[-1].close_type is CloseType.BREACH


def test_balances_before_close_match_the_snapshot() -> None:
    pair = open_pair(push_msat=100_000_000)
    ledger = pair.alice.state.ledger
    assert ledger is not None
    snap = snapshot(ledger, View.LOCAL)
    assert (snap.local_msat, snap.remote_msat) == (900_000_000, 100_000_000)
    assert p2wpkh_script(bytes([3]) + bytes(32))


def test_close_right_after_opening_survives_a_reconnection() -> None:
    pair = open_pair(push_msat=100_000_000)
    pair.alice.handle(ShutdownCommand())
    pair.deliver_one(pair.alice)  # shutdown
    pair.deliver_one(pair.bob)  # shutdown back; Alice proposes a fee
    pair.disconnect()
    pair.reconnect()
    # Nothing was ever signed after funding, so both retransmit channel_ready; negotiation restarts.
    pair.flush()
    for peer in (pair.alice, pair.bob):
        assert peer.state.phase is Phase.CLOSING, peer.errors
    _verify_closing(_closing_tx(pair.alice), pair)


def test_shutdown_before_channel_ready() -> None:
    from ampere.channel.twoway import FundingConfirmed, FundingTransactionBuilt, OpenChannelCommand
    from tests.channel.twoway.harness import FEERATE, SCID, make_peer

    pair = Pair(make_peer("alice"), make_peer("bob"))
    alice, bob = pair.alice, pair.bob
    alice.handle(OpenChannelCommand(bytes(range(32)), 1_000_000, 100_000_000, FEERATE))
    pair.deliver_one(alice)
    pair.deliver_one(bob)
    assert alice.funding_tx is not None
    alice.handle(FundingTransactionBuilt(alice.funding_tx, 1))
    pair.deliver_one(alice)
    pair.deliver_one(bob)
    assert alice.state.phase is Phase.WAIT_CHANNEL_READY
    # BOLT 2: a shutdown may come before channel_ready; channel_ready may still follow.
    alice.handle(FundingConfirmed(alice.funding_tx, 3, SCID))
    alice.handle(ShutdownCommand())
    pair.flush()
    for peer in (alice, bob):
        assert peer.state.phase is Phase.CLOSING, peer.errors
    bob.handle(FundingConfirmed(alice.funding_tx, 3, SCID))
    _verify_closing(_closing_tx(alice), pair)
