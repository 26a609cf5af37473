"""Unilateral closes on the real chain: the honest force close and the close with HTLCs both ways."""

from __future__ import annotations

import pytest

from ampere.bitcoin.tx import Transaction
from ampere.chain.embedded import EmbeddedChain
from ampere.chain.errors import RejectReason
from ampere.channel.twoway import ChannelType, ForceClose, FundingSpent
from ampere.channel.twoway.actions import ChannelClosed, CloseType
from ampere.onchain.claims import build_claim_tx, sign_claim_tx
from ampere.onchain.classify import LocalCommitment, RemoteCommitment
from ampere.onchain.events import PreimageLearned
from ampere.onchain.outputs import OutputPath, OutputStatus, TrackedOutput
from tests.chain.helpers import SINK_SCRIPT
from tests.scenarios.onchain import rejected, tally

from .harness import DELAY, FEERATE, Chain, Shell, classify_for, open_on_chain, value_at, wallet_script

FUNDING_SAT = 1_000_000


def _premature(shell: Shell, out: TrackedOutput) -> Transaction:
    """The claim the resolver will make, built and signed now (before it is due)."""
    assert out.claim is not None
    unsigned = build_claim_tx([out.claim], shell.resolver.destination, FEERATE)
    return sign_claim_tx(unsigned, [out.claim], shell.signer, shell.resolver.preimages)


def _only(shell: Shell, path: OutputPath) -> TrackedOutput:
    found = [out for out in shell.resolver.outputs if out.path is path and out.parent is None]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(
    "channel_type", [ChannelType.STATIC_REMOTEKEY, ChannelType.ANCHORS], ids=lambda t: t.value
)
def test_honest_force_close_returns_funds_after_the_delay(
    chain: EmbeddedChain, channel_type: ChannelType
) -> None:
    pair = open_on_chain(chain, FUNDING_SAT, push_msat=400_000_000, channel_type=channel_type)
    alice, bob = pair.alice, pair.bob
    actions = alice.handle(ForceClose())
    assert any(isinstance(a, ChannelClosed) and a.close_type is CloseType.LOCAL_FORCE for a in actions)
    commitment = alice.broadcasts[-1]
    chain.submit(commitment)
    chain.generate(1, SINK_SCRIPT)
    height = chain.tip_height()
    closed = [a for a in bob.handle(FundingSpent(commitment)) if isinstance(a, ChannelClosed)]
    assert closed[0].close_type is CloseType.REMOTE_FORCE

    ours = classify_for(alice, commitment, {})
    theirs = classify_for(bob, commitment, {})
    assert isinstance(ours, LocalCommitment) and isinstance(theirs, RemoteCommitment)
    alice_shell = Shell.start(chain, alice, alice.state, commitment, ours)
    bob_shell = Shell.start(chain, bob, bob.state, commitment, theirs)
    miner = Chain(chain, alice_shell, bob_shell)
    alice_shell.block(height)
    bob_shell.block(height)

    to_local = _only(alice_shell, OutputPath.TO_LOCAL)
    assert to_local.claimable_at() == height + DELAY - 1
    assert to_local.status is OutputStatus.PENDING
    to_remote = _only(bob_shell, OutputPath.TO_REMOTE)
    # Static to_remote is spendable at once, the anchors' CSV-1 one in the next block: either way
    # a claim is accepted with the commitment at the tip.
    assert to_remote.claimable_at() == height
    if channel_type is ChannelType.ANCHORS:
        assert any(out.path is OutputPath.ANCHOR for out in alice_shell.resolver.outputs)

    # One block before the delay is over the chain refuses Alice's sweep (BIP68).
    miner.mine_to(height + DELAY - 2)
    assert not any(label.startswith("to_local") for label, _ in alice_shell.broadcasts)
    rejected(chain, _premature(alice_shell, to_local), RejectReason.NON_BIP68_FINAL, "non-BIP68-final")
    miner.mine(1)
    assert any(label.startswith("to_local") for label, _ in alice_shell.broadcasts)
    miner.mine(1)
    assert not alice_shell.rejected and not bob_shell.rejected
    alice_sat = value_at(chain, wallet_script(alice.name))
    bob_sat = value_at(chain, wallet_script(bob.name))
    local_sat = commitment.outputs[to_local.outpoint.vout].value
    remote_sat = commitment.outputs[to_remote.outpoint.vout].value
    assert local_sat - 2_000 < alice_sat < local_sat
    assert remote_sat - 2_000 < bob_sat < remote_sat
    assert remote_sat == 400_000  # Bob's whole balance: the opener paid the commitment fee
    miner.mine(6)
    assert alice_shell.resolved and bob_shell.resolved
    entry = alice_shell.resolver.listclosed_entry()
    assert entry["close_type"] == "local_force"
    swept = [o for o in entry["outputs"] if o["path"] == "to_local"]
    assert swept[0]["status"] == "swept" and swept[0]["claimable_at_height"] == height + DELAY - 1


def test_unilateral_close_with_htlcs_both_ways(chain: EmbeddedChain) -> None:
    """Alice goes to chain with two HTLCs each way; each output ends in the right wallet at the
    right height, and every early spend is refused by the chain."""
    pair = open_on_chain(chain, FUNDING_SAT, push_msat=400_000_000)
    alice, bob = pair.alice, pair.bob
    height = chain.tip_height() + 1  # the commitment's block
    expiry_alice_times_out = height + 5
    expiry_bob_times_out = height + 8
    plan = [
        (alice, 50_000, height + 30),  # h1: Bob will claim it with the preimage
        (alice, 60_000, expiry_alice_times_out),  # h2: Bob never learns the preimage
        (bob, 70_000, height + 40),  # h3: Alice claims it with the preimage (HTLC-success)
        (bob, 80_000, expiry_bob_times_out),  # h4: Alice never learns it
    ]
    for payer, sat, expiry in plan:
        pair.pay(payer, sat * 1000, cltv_expiry=expiry)
        pair.flush(fulfill=False)
    preimages = list(pair.preimages.items())  # in payment order: h1..h4
    alice.handle(ForceClose())
    commitment = alice.broadcasts[-1]
    chain.submit(commitment)
    chain.generate(1, SINK_SCRIPT)
    assert chain.tip_height() == height
    bob.handle(FundingSpent(commitment))
    ours, theirs = classify_for(alice, commitment, {}), classify_for(bob, commitment, {})
    assert isinstance(ours, LocalCommitment) and isinstance(theirs, RemoteCommitment)
    alice_shell = Shell.start(chain, alice, alice.state, commitment, ours)
    bob_shell = Shell.start(chain, bob, bob.state, commitment, theirs)
    miner = Chain(chain, alice_shell, bob_shell)
    alice_shell.block(height)
    bob_shell.block(height)
    alice_shell.handle(PreimageLearned(preimages[2][1]))
    bob_shell.handle(PreimageLearned(preimages[0][1]))
    assert [label.split()[0] for label, _ in alice_shell.broadcasts] == ["htlc_success"]
    assert sorted(label.split()[0] for label, _ in bob_shell.broadcasts) == ["htlc_success", "to_remote"]
    miner.mine(1)
    # Alice read h1's preimage from Bob's claim: she can pay her upstream.
    assert [(p.payment_hash, p.preimage) for p in alice_shell.preimages] == [preimages[0]]

    def timeout_output(shell: Shell, expiry: int) -> TrackedOutput:
        return next(
            o for o in shell.resolver.outputs if o.path is OutputPath.HTLC_TIMEOUT and o.cltv == expiry
        )

    # HTLC-timeout and the peer's timeout claim are refused until their cltv_expiry.
    miner.mine_to(expiry_alice_times_out - 1)
    stage = timeout_output(alice_shell, expiry_alice_times_out).stage
    assert stage is not None
    rejected(chain, stage.finalize(alice_shell.signer, None), RejectReason.NON_FINAL, "non-final")
    miner.mine(1)
    assert any(label.startswith("htlc_timeout") for label, _ in alice_shell.broadcasts)
    miner.mine_to(expiry_bob_times_out - 1)
    early = _premature(bob_shell, timeout_output(bob_shell, expiry_bob_times_out))
    rejected(chain, early, RejectReason.NON_FINAL, "non-final")
    miner.mine(1)

    # The second stages' outputs wait out the delay like to_local.
    delayed = [o for o in alice_shell.resolver.outputs if o.parent is not None]
    assert len(delayed) == 2 and all(o.csv == DELAY for o in delayed)
    first_due = min(o.claimable_at() or 0 for o in delayed)
    miner.mine_to(first_due - 1)
    due = next(o for o in delayed if o.claimable_at() == first_due)
    rejected(chain, _premature(alice_shell, due), RejectReason.NON_BIP68_FINAL, "non-BIP68-final")
    last_due = max(o.claimable_at() or 0 for o in alice_shell.resolver.outputs)
    miner.mine_to(last_due + 6)
    assert alice_shell.resolved and bob_shell.resolved
    assert not alice_shell.rejected and not bob_shell.rejected

    # Every claim of ours confirmed in the first block where it was valid.
    for shell in (alice_shell, bob_shell):
        for out in shell.resolver.outputs:
            if out.by_us:
                assert out.spent_height == (out.claimable_at() or 0) + 1, out
    # Where the money went: each side's wallet, or fees; nothing left behind.
    ours_txs = [commitment] + [tx for shell in (alice_shell, bob_shell) for _, tx in shell.broadcasts]
    flow = tally(chain, alice.state.require_funding(), ours_txs)
    wallets = {wallet_script(alice.name): "alice", wallet_script(bob.name): "bob"}
    owners: dict[str, int] = {}
    by_txid = {tx.txid: tx for tx in ours_txs}
    for outpoint, value in flow.final_outputs.items():
        owner = wallets[by_txid[outpoint.txid].outputs[outpoint.vout].script_pubkey]
        owners[owner] = owners.get(owner, 0) + value
    assert flow.final_sat + flow.fees_sat == FUNDING_SAT
    # Alice: to_local, h2 (timed out) and h3 (claimed); Bob: to_remote, h1 (claimed) and h4.
    fees = 15_000
    alice_due = 600_000 - 50_000 - 60_000 + 60_000 + 70_000
    bob_due = 400_000 - 70_000 - 80_000 + 50_000 + 80_000
    assert alice_due - fees < owners["alice"] < alice_due
    assert bob_due - fees < owners["bob"] < bob_due
