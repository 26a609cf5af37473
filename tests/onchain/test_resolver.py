"""The resolver's persisted state and the classifier's edge cases."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.tx import OutPoint, Transaction, TxIn, TxOut
from ampere.chain.embedded import EmbeddedChain
from ampere.channel.twoway import ForceClose, deserialize_state
from ampere.channel.twoway.actions import CloseType
from ampere.onchain.classify import (
    LocalCommitment,
    MutualClose,
    RemoteCommitment,
    RemoteWhich,
    UnknownSpend,
    classify,
)
from ampere.onchain.errors import ClassificationError, OnchainError, ResolverDecodeError
from ampere.onchain.events import BlockConnected, PreimageFound, Resolved, SpendConfirmed
from ampere.onchain.keys import InMemoryOnchainSigner
from ampere.onchain.outputs import OutputPath, OutputStatus, TrackedOutput
from ampere.onchain.resolver import REBROADCAST_AFTER_BLOCKS, ChannelResolver, ResolverContext
from tests.chain.helpers import SINK_SCRIPT
from tests.channel.twoway.harness import state_bytes

from .harness import Chain, Shell, classify_for, old_commitment, open_on_chain, value_at, wallet_script


def _force_closed(chain: EmbeddedChain) -> tuple[Shell, Transaction]:
    pair = open_on_chain(chain, 1_000_000, push_msat=300_000_000)
    pair.pay(pair.alice, 80_000 * 1000, cltv_expiry=chain.tip_height() + 50)
    pair.pay(pair.bob, 90_000 * 1000, cltv_expiry=chain.tip_height() + 60)
    pair.flush(fulfill=False)
    pair.alice.handle(ForceClose())
    commitment = pair.alice.broadcasts[-1]
    chain.submit(commitment)
    chain.generate(1, SINK_SCRIPT)
    ours = classify_for(pair.alice, commitment, {})
    assert isinstance(ours, LocalCommitment)
    shell = Shell.start(chain, pair.alice, pair.alice.state, commitment, ours)
    shell.block(chain.tip_height())
    return shell, commitment


def test_state_round_trips_and_every_truncation_is_a_typed_error(chain: EmbeddedChain) -> None:
    shell, _ = _force_closed(chain)
    Chain(chain, shell).mine(3)
    assert shell.snapshots >= 4  # the shell restored the resolver from bytes after every event
    data = shell.resolver.to_bytes()
    restored = ChannelResolver.from_bytes(data)
    assert restored.listclosed_entry() == shell.resolver.listclosed_entry()
    for cut in range(0, len(data), 7):
        with pytest.raises(ResolverDecodeError):
            ChannelResolver.from_bytes(data[:cut])
    with pytest.raises(ResolverDecodeError):
        ChannelResolver.from_bytes(data + b"\x00")
    with pytest.raises(ResolverDecodeError):
        ChannelResolver.from_bytes(b"\x09" + data[1:])


@given(st.binary(max_size=300))
def test_garbage_never_decodes_into_something_else(data: bytes) -> None:
    try:
        resolver = ChannelResolver.from_bytes(data)
    except ResolverDecodeError:
        return
    assert resolver.to_bytes() == data


def test_listclosed_entry_follows_the_contract(chain: EmbeddedChain) -> None:
    shell, commitment = _force_closed(chain)
    entry = shell.resolver.listclosed_entry()
    assert set(entry) == {"channel_id", "close_type", "revoked", "closing_txid", "outputs"}
    assert entry["revoked"] is False
    assert entry["close_type"] == "local_force" and entry["closing_txid"] == commitment.txid_hex
    paths = sorted(o["path"] for o in entry["outputs"])
    assert paths == ["htlc_success", "htlc_timeout", "to_local"]
    for output in entry["outputs"]:
        assert set(output) == {
            "outpoint",
            "amount_sat",
            "path",
            "claimable_at_height",
            "status",
            "sweep_txid",
            "swept_by",
        }
        assert output["status"] in ("pending", "claimable", "swept")
        assert isinstance(output["amount_sat"], int)
        OutPoint.parse(output["outpoint"])
    # The HTLC-success waits for a preimage: pending, with no height it could promise.
    success = next(o for o in entry["outputs"] if o["path"] == "htlc_success")
    assert success["status"] == "pending" and success["sweep_txid"] is None


def test_classifier_edge_cases(chain: EmbeddedChain) -> None:
    pair = open_on_chain(chain, 1_000_000, push_msat=300_000_000)
    state = pair.alice.state
    signer = InMemoryOnchainSigner(pair.alice.root)
    funding = state.require_funding()
    unrelated = Transaction(2, (TxIn(OutPoint(bytes(32), 0), b"", 0),), (TxOut(1000, SINK_SCRIPT),), 0)
    with pytest.raises(ClassificationError):
        classify(state, unrelated, signer.per_commitment_point, {}.get)
    # No commitment markers: a cooperative close.
    mutual = Transaction(2, (TxIn(funding, b"", 0xFFFFFFFF),), (TxOut(990_000, SINK_SCRIPT),), 0)
    assert isinstance(classify(state, mutual, signer.per_commitment_point, {}.get), MutualClose)
    # Commitment markers for a number we never had: unknown, nothing to sign.
    ours = classify_for(pair.alice, old_commitment(pair.alice, state_bytes(pair.alice)), {})
    assert isinstance(ours, LocalCommitment)
    bumped = replace(ours.commitment.tx, locktime=ours.commitment.tx.locktime ^ 5)
    unknown = classify(state, bumped, signer.per_commitment_point, {}.get)
    assert isinstance(unknown, UnknownSpend) and unknown.number == 5
    with pytest.raises(OnchainError):
        ChannelResolver.create(state, unknown, bumped, wallet_script("alice"), tip=chain.tip_height())


def test_stale_state_still_recovers_our_balance(chain: EmbeddedChain) -> None:
    """Bob restored an old backup; Alice closes with her current commitment. Bob cannot rebuild
    it, but with static_remotekey his balance pays his payment basepoint: he takes it."""
    pair = open_on_chain(chain, 1_000_000, push_msat=300_000_000)
    stale = deserialize_state(state_bytes(pair.bob))
    for _ in range(3):
        pair.pay(pair.alice, 20_000 * 1000)
        pair.flush()
    pair.alice.handle(ForceClose())
    commitment = pair.alice.broadcasts[-1]
    chain.submit(commitment)
    chain.generate(1, SINK_SCRIPT)
    signer = InMemoryOnchainSigner(pair.bob.root)
    unknown = classify(stale, commitment, signer.per_commitment_point, {}.get)
    assert isinstance(unknown, UnknownSpend)
    shell = Shell.start(chain, pair.bob, stale, commitment, unknown)
    assert [o.path for o in shell.resolver.outputs] == [OutputPath.TO_REMOTE]
    shell.block(chain.tip_height())
    Chain(chain, shell).mine(6)
    assert shell.resolved and not shell.rejected
    assert value_at(chain, wallet_script(pair.bob.name)) > 360_000 - 2_000


def test_mutual_close_resolves_once_deep() -> None:
    funding = OutPoint(bytes(range(32)), 1)
    tx = Transaction(2, (TxIn(funding, b"", 0xFFFFFFFF),), (TxOut(990_000, SINK_SCRIPT),), 0)
    resolver = ChannelResolver(bytes(32), CloseType.MUTUAL, tx, wallet_script("x"), (), tip=199)
    ctx = ResolverContext(InMemoryOnchainSigner(bytes(range(1, 33))), 2500)
    assert resolver.handle(SpendConfirmed(tx, 200), ctx) == []
    assert resolver.handle(BlockConnected(204), ctx) == []
    assert resolver.handle(BlockConnected(205), ctx) == [Resolved(bytes(32))]
    assert resolver.listclosed_entry()["outputs"] == []


def test_hostile_spends_of_watched_outputs_never_break_the_resolver(chain: EmbeddedChain) -> None:
    """The peer controls the witnesses of its spends: whatever they hold, the resolver only
    reports a preimage that really hashes to the HTLC's payment hash."""
    shell, _ = _force_closed(chain)
    data = shell.resolver.to_bytes()
    htlcs = [o for o in shell.resolver.outputs if o.payment_hash]
    ctx = ResolverContext(shell.signer, 2500)
    height = shell.resolver.tip + 1

    @given(
        st.sampled_from(htlcs),
        st.lists(st.binary(max_size=40), max_size=5),
        st.lists(st.tuples(st.integers(0, 10**8), st.binary(max_size=40)), max_size=3),
    )
    def check(target: TrackedOutput, witness: list[bytes], outputs: list[tuple[int, bytes]]) -> None:
        resolver = ChannelResolver.from_bytes(data)
        spend = Transaction(
            2,
            (TxIn(target.outpoint, b"", 0, tuple(witness)),),
            tuple(TxOut(value, script) for value, script in outputs),
            0,
        )
        actions = resolver.handle(SpendConfirmed(spend, height), ctx)
        actions += resolver.handle(BlockConnected(height), ctx)
        for action in actions:
            if isinstance(action, PreimageFound):
                assert action.preimage in witness and sha256(action.preimage) == target.payment_hash
        spent = next(o for o in resolver.outputs if o.outpoint == target.outpoint)
        assert spent.status is OutputStatus.SWEPT and not spent.by_us
        assert ChannelResolver.from_bytes(resolver.to_bytes()).to_bytes() == resolver.to_bytes()

    check()


def test_a_dropped_claim_is_broadcast_again(chain: EmbeddedChain) -> None:
    pair = open_on_chain(chain, 1_000_000, push_msat=300_000_000)
    pair.alice.handle(ForceClose())
    commitment = pair.alice.broadcasts[-1]
    chain.submit(commitment)
    chain.generate(1, SINK_SCRIPT)
    theirs = classify_for(pair.bob, commitment, {})
    shell = Shell.start(chain, pair.bob, pair.bob.state, commitment, theirs)
    shell.block(chain.tip_height())
    label, claim = shell.broadcasts[-1]
    assert label.startswith("to_remote")
    assert chain.mempool.remove(claim.txid) == [claim.txid]  # lost, as by a restarted mempool
    miner = Chain(chain, shell)
    miner.mine(REBROADCAST_AFTER_BLOCKS - 1)
    assert len(shell.broadcasts) == 1
    miner.mine(1)
    assert shell.broadcasts[-1] == (label + " (again)", claim)
    miner.mine(1)
    assert chain.tx_status(claim.txid).block_height == chain.tip_height()


def test_peer_commitments_current_and_next_while_a_revocation_is_owed(chain: EmbeddedChain) -> None:
    """Bob signed Alice a new commitment and waits for her revocation: both her commitments are
    valid closes, the previous one ("current") and the new one ("next")."""
    pair = open_on_chain(chain, 1_000_000, push_msat=300_000_000)
    alice, bob = pair.alice, pair.bob
    previous = state_bytes(alice)
    pair.pay(bob, 50_000 * 1000, cltv_expiry=chain.tip_height() + 40)
    while bob.outbox:
        pair.deliver_one(bob)  # update_add_htlc, commitment_signed; Alice's answers stay unsent
    ledger = bob.state.ledger
    assert ledger is not None and ledger.awaiting_revocation
    newest = old_commitment(alice, state_bytes(alice))
    current = old_commitment(alice, previous)
    found_next = classify_for(bob, newest, {})
    found_current = classify_for(bob, current, {})
    assert isinstance(found_next, RemoteCommitment) and found_next.which is RemoteWhich.NEXT
    assert isinstance(found_current, RemoteCommitment) and found_current.which is RemoteWhich.CURRENT
    assert (found_current.number, found_next.number) == (0, 1)
    # The next one carries Bob's HTLC: he can take it back after its expiry.
    resolver, _ = ChannelResolver.create(
        bob.state, found_next, newest, wallet_script("bob"), tip=chain.tip_height()
    )
    assert sorted(o.path.value for o in resolver.outputs) == ["htlc_timeout", "to_remote"]
    resolver, _ = ChannelResolver.create(
        bob.state, found_current, current, wallet_script("bob"), tip=chain.tip_height()
    )
    assert [o.path.value for o in resolver.outputs] == ["to_remote"]
