"""The cheater's side: our own revoked commitment on chain (what `dev-cheat` broadcasts).

It is a local unilateral close of a revoked state: `listclosed` says `local_force` with `revoked`, lists
`to_local` and the HTLC outputs, and shows each taken by the peer's justice transaction. If the peer
never punishes, `to_local` comes back to us after `to_self_delay`.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.tx import Transaction, TxIn, TxOut
from ampere.chain.embedded import EmbeddedChain
from ampere.channel.twoway import ChannelType, FundingSpent
from ampere.channel.twoway.actions import ChannelClosed, CloseType
from ampere.onchain import ChannelResolver, InMemoryOnchainSigner, ResolverContext, SpendConfirmed
from ampere.onchain.classify import RevokedCommitment, RevokedLocalCommitment
from tests.chain.helpers import SINK_SCRIPT

from .harness import (
    DELAY,
    Chain,
    Shell,
    classify_for,
    confirmed_height,
    old_commitment,
    open_on_chain,
    revocation_log,
    value_at,
    wallet_script,
)

BTC = 100_000_000


@pytest.mark.parametrize("channel_type", list(ChannelType))
def test_our_revoked_commitment_is_a_revoked_local_close_taken_by_the_peer(
    chain: EmbeddedChain, channel_type: ChannelType
) -> None:
    pair = open_on_chain(chain, 2 * BTC, push_msat=1 * BTC * 1000, channel_type=channel_type)
    alice, bob = pair.alice, pair.bob
    pair.pay(bob, 300_000 * 1000)
    pair.pay(alice, 200_000 * 1000)
    pair.flush(fulfill=False)
    old = alice.persisted
    assert old is not None
    pair.flush()  # both HTLCs fulfilled: the state that carried them is revoked
    cheat = old_commitment(alice, old)
    chain.submit(cheat)
    chain.generate(1, SINK_SCRIPT)
    height = chain.tip_height()

    # Alice's channel calls it her own force close, not a breach of the peer.
    closed = [a for a in alice.handle(FundingSpent(cheat)) if isinstance(a, ChannelClosed)]
    assert closed and closed[0].close_type is CloseType.LOCAL_FORCE
    mine = classify_for(alice, cheat, revocation_log(alice))
    assert isinstance(mine, RevokedLocalCommitment) and len(mine.htlcs) == 2
    theirs = classify_for(bob, cheat, revocation_log(bob))
    assert isinstance(theirs, RevokedCommitment)
    alice_shell = Shell.start(chain, alice, alice.state, cheat, mine)
    bob_shell = Shell.start(chain, bob, bob.state, cheat, theirs)
    for shell in (alice_shell, bob_shell):
        shell.block(height)

    entry = alice_shell.resolver.listclosed_entry()
    assert entry["close_type"] == "local_force" and entry["revoked"] is True
    expected_paths = {"to_local", "htlc_timeout", "htlc_success"}
    if channel_type is ChannelType.ANCHORS:
        expected_paths.add("anchor")
    assert {o["path"] for o in entry["outputs"]} == expected_paths
    assert len(entry["outputs"]) == len(expected_paths)
    claimed_by_the_peer = [o for o in entry["outputs"] if o["path"] != "anchor"]
    assert all(o["status"] == "pending" and o["swept_by"] is None for o in claimed_by_the_peer)
    to_local = next(o for o in entry["outputs"] if o["path"] == "to_local")
    assert to_local["claimable_at_height"] == height + DELAY - 1
    # Nothing of Alice's goes out: no claim, and no CPFP of a revoked commitment through her anchor.
    assert not alice_shell.broadcasts and not alice_shell.bump_requests

    Chain(chain, alice_shell, bob_shell).mine(1)
    justice = next(tx for label, tx in bob_shell.broadcasts if label == "justice")
    assert confirmed_height(chain, justice.txid) == height + 1
    entry = alice_shell.resolver.listclosed_entry()
    taken = [o for o in entry["outputs"] if o["path"] != "anchor"]
    assert len(taken) == 3
    assert all(o["status"] == "swept" and o["swept_by"] == "peer" for o in taken)
    assert {o["sweep_txid"] for o in taken} == {justice.txid_hex}
    assert not alice_shell.resolver.resolved
    Chain(chain, alice_shell, bob_shell).mine(5)
    assert alice_shell.resolved and not alice_shell.broadcasts
    assert value_at(chain, wallet_script(alice.name)) == 0
    assert bob_shell.resolver.listclosed_entry()["revoked"] is True
    restored = ChannelResolver.from_bytes(alice_shell.resolver.to_bytes())
    assert restored.revoked_local


def test_our_unpunished_revoked_commitment_returns_to_local_after_the_delay(chain: EmbeddedChain) -> None:
    pair = open_on_chain(chain, 2 * BTC, push_msat=1 * BTC * 1000)
    alice = pair.alice
    first = alice.persisted
    assert first is not None
    pair.pay(alice, BTC // 2 * 1000)
    pair.flush()
    cheat = old_commitment(alice, first)
    chain.submit(cheat)
    chain.generate(1, SINK_SCRIPT)
    height = chain.tip_height()
    mine = classify_for(alice, cheat, revocation_log(alice))
    assert isinstance(mine, RevokedLocalCommitment) and mine.number == 0
    shell = Shell.start(chain, alice, alice.state, cheat, mine)
    shell.block(height)
    miner = Chain(chain, shell)
    miner.mine_to(height + DELAY - 2)
    assert not shell.broadcasts  # BIP68: not before to_self_delay
    miner.mine(1)
    claims = [tx for label, tx in shell.broadcasts if label.startswith("to_local")]
    assert len(claims) == 1 and not shell.rejected
    miner.mine(6)
    assert confirmed_height(chain, claims[0].txid) == height + DELAY
    assert shell.resolved
    to_local = next(o for o in shell.resolver.listclosed_entry()["outputs"] if o["path"] == "to_local")
    assert to_local["swept_by"] == "us"
    # Funds conserved: Alice's old 1 BTC balance, less the claim's fee, is back in her wallet.
    claimed = cheat.outputs[claims[0].inputs[0].prevout.vout].value
    assert [txin.prevout.txid for txin in claims[0].inputs] == [cheat.txid]
    assert BTC - 10_000 < claimed < BTC  # her balance of the first state, less the commitment fee
    gained = value_at(chain, wallet_script(alice.name))
    assert gained == claims[0].total_output_value() and 0 < claimed - gained < 2_000


def test_hostile_funding_spends_and_anchor_spends(chain: EmbeddedChain) -> None:
    """Transactions with the markers of one of our revoked numbers but arbitrary outputs: called ours
    only when an output pays one of our commitment's scripts, and then only those outputs are tracked.
    An anchor spent without a valid signature of its key is never counted as our spend."""
    pair = open_on_chain(chain, 2 * BTC, push_msat=1 * BTC * 1000, channel_type=ChannelType.ANCHORS)
    alice = pair.alice
    first = alice.persisted
    assert first is not None
    pair.pay(alice, BTC // 10 * 1000)
    pair.flush()
    real = old_commitment(alice, first)
    known = classify_for(alice, real, revocation_log(alice))
    assert isinstance(known, RevokedLocalCommitment)
    resolver, _ = ChannelResolver.create(alice.state, known, real, wallet_script("alice"), tip=200)
    ours = {real.outputs[o.outpoint.vout].script_pubkey for o in resolver.outputs}
    # Only our to_local and the peer's to_remote tell our commitment from the peer's (both have both
    # anchors); the peer's to_remote is the output the resolver does not track.
    telling = {
        real.outputs[o.outpoint.vout].script_pubkey for o in resolver.outputs if o.path.value == "to_local"
    }
    telling |= {
        out.script_pubkey for out in real.outputs if out.script_pubkey not in ours and out.value > 330
    }
    assert len(telling) == 2
    every_script = sorted({out.script_pubkey for out in real.outputs})
    [anchor] = [o for o in resolver.outputs if o.path.value == "anchor"]
    data = resolver.to_bytes()
    ctx = ResolverContext(InMemoryOnchainSigner(alice.root), 2500)

    @given(
        st.lists(
            st.tuples(
                st.integers(330, 10**8), st.one_of(st.sampled_from(every_script), st.binary(max_size=40))
            ),
            max_size=4,
        ),
        st.lists(st.binary(max_size=80), max_size=3),
    )
    def check(outputs: list[tuple[int, bytes]], witness: list[bytes]) -> None:
        tx = replace(real, outputs=tuple(TxOut(value, script) for value, script in outputs))
        found = classify_for(alice, tx, revocation_log(alice))
        if any(script in telling for _, script in outputs):
            assert isinstance(found, RevokedLocalCommitment) and found.number == 0
            made, _ = ChannelResolver.create(alice.state, found, tx, wallet_script("alice"), tip=200)
            assert {made.closing_tx.outputs[o.outpoint.vout].script_pubkey for o in made.outputs} <= ours
        else:
            assert not isinstance(found, RevokedLocalCommitment)
        hostile = Transaction(
            2, (TxIn(anchor.outpoint, b"", 16, tuple(witness)),), (TxOut(1, SINK_SCRIPT),), 0
        )
        restored = ChannelResolver.from_bytes(data)
        restored.handle(SpendConfirmed(hostile, 201), ctx)
        [spent] = [o for o in restored.outputs if o.outpoint == anchor.outpoint]
        assert spent.status.value == "swept" and not spent.by_us

    check()
