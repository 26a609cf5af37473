"""Breach: the peer broadcasts a revoked commitment and the resolver punishes it on the real chain."""

from __future__ import annotations

from ampere.bitcoin.tx import OutPoint
from ampere.chain.embedded import EmbeddedChain
from ampere.channel.transactions.commitment import OutputKind
from ampere.channel.twoway import (
    FulfillHtlc,
    FundingSpent,
    SignCommitment,
    UpdateFeeCommand,
    deserialize_state,
)
from ampere.channel.twoway.actions import ChannelClosed, CloseType
from ampere.channel.twoway.ledger import View, build_view_commitment, snapshot
from ampere.onchain.classify import RevokedCommitment
from ampere.onchain.keys import InMemoryOnchainSigner
from ampere.onchain.outputs import OutputPath, OutputStatus
from ampere.onchain.sweeps import local_outputs
from tests.chain.helpers import SINK_SCRIPT
from tests.channel.twoway.harness import Pair

from .harness import (
    DELAY,
    FEERATE,
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


def test_rsmc_breach_is_punished_within_the_delay(chain: EmbeddedChain) -> None:
    # Alice and Bob hold 1 BTC each in a 2 BTC channel; Alice pays Bob 0.5 BTC.
    pair = open_on_chain(chain, 2 * BTC, push_msat=1 * BTC * 1000)
    alice, bob = pair.alice, pair.bob
    first = alice.persisted
    assert first is not None
    pair.pay(alice, BTC // 2 * 1000)
    pair.flush()
    ledger = bob.state.ledger
    assert ledger is not None and ledger.local_balance_msat == 3 * BTC // 2 * 1000
    log = revocation_log(bob)
    assert 0 in log and log[0].local_msat == 1 * BTC * 1000 and log[0].htlcs == ()

    # Alice broadcasts her revoked first commitment; it is mined.
    cheat = old_commitment(alice, first)
    chain.submit(cheat)
    chain.generate(1, SINK_SCRIPT)
    breach_height = chain.tip_height()

    # Bob's channel calls it a breach; the classifier finds the revoked number and its secret.
    closed = [a for a in bob.handle(FundingSpent(cheat)) if isinstance(a, ChannelClosed)]
    assert closed and closed[0].close_type is CloseType.BREACH
    classification = classify_for(bob, cheat, log)
    assert isinstance(classification, RevokedCommitment)
    assert classification.number == 0 and classification.commitment is not None
    assert classification.commitment.txid == cheat.txid  # the log rebuilt the exact transaction

    shell = Shell.start(chain, bob, bob.state, cheat, classification)
    shell.block(breach_height)
    assert not shell.rejected
    labels = [label for label, _ in shell.broadcasts]
    assert "justice" in labels and any(label.startswith("to_remote") for label in labels)
    Chain(chain, shell).mine(1)
    justice = next(tx for label, tx in shell.broadcasts if label == "justice")
    justice_height = confirmed_height(chain, justice.txid)
    assert justice_height is not None and justice_height < breach_height + DELAY

    # Bob ends with about 2 BTC: his 1.5 BTC to_remote and Alice's 0.5 BTC to_local, less fees.
    bob_total = value_at(chain, wallet_script(bob.name))
    commitment_fee = 2 * BTC - cheat.total_output_value()
    assert 2 * BTC - commitment_fee - 5_000 <= bob_total < 2 * BTC - commitment_fee
    entry = shell.resolver.listclosed_entry()
    assert entry["close_type"] == "breach"
    assert {o["path"] for o in entry["outputs"]} == {"justice", "to_remote"}
    assert all(o["status"] == "swept" for o in entry["outputs"])

    # Funds conserved: every satoshi of the commitment is in Bob's wallet or paid as fee.
    sweeps = [tx for _, tx in shell.broadcasts]
    fees = sum(
        sum(cheat.outputs[i.prevout.vout].value for i in tx.inputs) - tx.total_output_value() for tx in sweeps
    )
    assert bob_total + fees == cheat.total_output_value()

    Chain(chain, shell).mine(5)
    assert shell.resolved
    assert all(o.status is OutputStatus.SWEPT and o.by_us for o in shell.resolver.outputs)
    assert shell.resolver.outputs[0].path in (OutputPath.JUSTICE, OutputPath.TO_REMOTE)


def _busy_alice_states(pair: Pair) -> dict[int, bytes]:
    """100 updates with HTLCs pending both ways; Alice's last persisted state per commitment number."""
    alice, bob = pair.alice, pair.bob
    for update in range(100):
        payer = alice if update % 2 == 0 else bob
        pair.pay(payer, (20_000 + 37 * update) * 1000, cltv_expiry=700 + update)
        pair.flush(fulfill=False)
        if update in (40, 70):
            # Fee changes in flight too: the revoked states differ in feerate as well.
            alice.handle(UpdateFeeCommand(FEERATE + 10 * update))
            alice.handle(SignCommitment())
            pair.flush(fulfill=False)
        if update % 3 == 2:
            # Settle the oldest pending HTLC each way; the others stay in flight.
            for peer in (alice, bob):
                if peer.received:
                    htlc = peer.received.pop(0)
                    peer.handle(FulfillHtlc(htlc.htlc_id, pair.preimages[htlc.payment_hash]))
                    peer.handle(SignCommitment())
            pair.flush(fulfill=False)
    by_number: dict[int, bytes] = {}
    for data in alice.history:
        ledger = deserialize_state(data).ledger
        if ledger is not None:
            by_number[ledger.local_commitment_number] = data
    return by_number


def test_every_sampled_revoked_state_is_punished_with_its_htlcs(chain: EmbeddedChain) -> None:
    pair = open_on_chain(chain, 2 * BTC, push_msat=1 * BTC * 1000)
    alice, bob = pair.alice, pair.bob
    states = _busy_alice_states(pair)
    ledger = alice.state.ledger
    assert ledger is not None
    current = ledger.local_commitment_number
    pending = {(e.offered, e.htlc_id) for e in ledger.htlcs}
    assert any(o for o, _ in pending) and any(not o for o, _ in pending), "HTLCs pending both ways"
    log = revocation_log(bob)
    assert sorted(log) == list(range(current)), "one record per revoked commitment"
    revoked = sorted(n for n in states if n < current)
    step = max(1, (len(revoked) - 1) // 21)
    samples = sorted({*revoked[::step], revoked[0], revoked[-1]})
    assert len(samples) >= 20 and samples[0] == 0 and samples[-1] == current - 1
    funding = alice.state.require_funding()
    htlc_outputs_punished = 0
    for number in samples:
        cheat = old_commitment(alice, states[number])
        classification = classify_for(bob, cheat, log)
        assert isinstance(classification, RevokedCommitment) and classification.number == number
        commitment = classification.commitment
        assert commitment is not None and commitment.txid == cheat.txid
        chain.submit(cheat)
        chain.generate(1, SINK_SCRIPT)
        shell = Shell.start(chain, bob, bob.state, cheat, classification)
        shell.block(chain.tip_height())
        assert not shell.rejected, shell.rejected
        justice = [tx for label, tx in shell.broadcasts if label == "justice"]
        assert len(justice) == 1
        Chain(chain, shell).mine(1)
        assert confirmed_height(chain, justice[0].txid) == chain.tip_height()
        # Every output but Bob's own balance (and the anchors) is taken with the revocation key.
        expected = {
            i
            for i, output in enumerate(commitment.outputs)
            if output.kind not in (OutputKind.TO_REMOTE, OutputKind.LOCAL_ANCHOR, OutputKind.REMOTE_ANCHOR)
        }
        assert {txin.prevout.vout for txin in justice[0].inputs} == expected
        assert all(txin.prevout.txid == cheat.txid for txin in justice[0].inputs)
        htlcs = sum(1 for o in commitment.outputs if o.htlc is not None)
        htlc_outputs_punished += htlcs
        claimed = sum(cheat.outputs[i].value for i in expected)
        fee = claimed - justice[0].total_output_value()
        assert 0 < fee < claimed // 100
        # Undo the breach so the next sample can be broadcast from the same funding output.
        chain.reorg(2, SINK_SCRIPT)
        chain.mempool.remove(cheat.txid)
        assert chain.get_txout(funding) is not None
    assert htlc_outputs_punished >= 100
    assert len({log[n].feerate_per_kw for n in samples}) == 3


def test_revoked_second_stage_output_is_taken_and_its_preimage_learnt(chain: EmbeddedChain) -> None:
    """Alice broadcasts a revoked commitment together with her pre-signed HTLC-success: Bob takes
    the HTLC-success output with the revocation key and learns the preimage from its witness."""
    pair = open_on_chain(chain, 2 * BTC, push_msat=1 * BTC * 1000)
    alice, bob = pair.alice, pair.bob
    pair.pay(bob, 700_000 * 1000)
    pair.flush(fulfill=False)
    old = alice.persisted
    assert old is not None
    pair.flush()  # Alice fulfils: the state with the HTLC in flight is revoked
    old_state = deserialize_state(old)
    old_ledger = old_state.ledger
    assert old_ledger is not None and len(old_ledger.htlcs) == 1
    number = old_ledger.local_commitment_number
    payment_hash, preimage = next(iter(pair.preimages.items()))

    cheat = old_commitment(alice, old)
    alice_keys = InMemoryOnchainSigner(alice.root)
    point = alice_keys.per_commitment_point(number)
    rebuilt = build_view_commitment(old_state, snapshot(old_ledger, View.LOCAL), number, point)
    assert rebuilt.txid == cheat.txid
    stage = next(o.stage for o in local_outputs(old_state, rebuilt, point) if o.stage is not None)
    assert stage.payment_hash == payment_hash
    success = stage.finalize(alice_keys, preimage)
    chain.submit(cheat)
    chain.submit(success)
    chain.generate(1, SINK_SCRIPT)
    height = chain.tip_height()

    classification = classify_for(bob, cheat, revocation_log(bob))
    assert isinstance(classification, RevokedCommitment) and classification.number == number
    shell = Shell.start(chain, bob, bob.state, cheat, classification)
    shell.block(height)
    assert [(p.payment_hash, p.preimage) for p in shell.preimages] == [(payment_hash, preimage)]
    justice = next(tx for label, tx in shell.broadcasts if label == "justice")
    assert OutPoint(success.txid, 0) in {txin.prevout for txin in justice.inputs}
    Chain(chain, shell).mine(1)
    assert not shell.rejected
    assert chain.tx_status(justice.txid).block_height == height + 1
    # Alice keeps nothing: the whole channel is Bob's but for the fees.
    bob_total = value_at(chain, wallet_script(bob.name))
    assert 2 * BTC - 20_000 < bob_total < 2 * BTC


def test_breach_without_a_log_record_still_takes_to_local(chain: EmbeddedChain) -> None:
    """A revoked number missing from the log (a node restored without it): the secret alone
    still gives the to_local script, so that output is punished; HTLC outputs cannot be."""
    pair = open_on_chain(chain, 2 * BTC, push_msat=1 * BTC * 1000)
    first = pair.alice.persisted
    assert first is not None
    pair.pay(pair.alice, BTC // 2 * 1000)
    pair.flush()
    cheat = old_commitment(pair.alice, first)
    chain.submit(cheat)
    chain.generate(1, SINK_SCRIPT)
    classification = classify_for(pair.bob, cheat, {})
    assert isinstance(classification, RevokedCommitment) and classification.commitment is None
    shell = Shell.start(chain, pair.bob, pair.bob.state, cheat, classification)
    assert sorted(o.path.value for o in shell.resolver.outputs) == ["justice", "to_remote"]
    shell.block(chain.tip_height())
    Chain(chain, shell).mine(1)
    assert not shell.rejected
    assert value_at(chain, wallet_script(pair.bob.name)) > 2 * BTC - 10_000
