"""The revocable channel's seed scenarios on the embedded chain, transaction by transaction.

Two parties with keys derived as a real channel derives them (basepoints and shachain seeds, keys
per commitment point) fund a 2-of-2 and close it by force; every transaction is judged by
libbitcoinkernel through the embedded mempool, and every rejection is checked for bitcoind's
reason. Heights follow the project's contract: "accepted at height H" means the tip is H and the
transaction is valid in block H + 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.script import p2wsh_script
from ampere.bitcoin.tx import Transaction
from ampere.chain.embedded import EmbeddedChain
from ampere.chain.errors import RejectReason
from ampere.channel.transactions import (
    ANCHOR_OUTPUT_SAT,
    CommitmentFormat,
    HtlcDirection,
    HtlcTxKind,
    OutputKind,
    finalize_commitment,
    sign_commitment,
)
from ampere.channel.transactions.scripts import funding_script
from ampere.cli.demo.channel_kit import (
    SINK_SCRIPT,
    Channel,
    ChannelConfig,
    Party,
    htlc_output,
    make_htlc,
    mine_to_wallets,
    output_of,
)
from ampere.crypto.keys import per_commitment_point

from .onchain import accepted, confirm, mine_to, rejected, tally

DELAY = 6
FEERATE_PER_KW = 1000
FUNDING_SAT = 1_000_000
FORMATS = [CommitmentFormat.STATIC_REMOTEKEY, CommitmentFormat.ANCHORS]
PREIMAGE = sha256(b"Bob's invoice to Alice")
WRONG_PREIMAGE = sha256(b"not the preimage")
SCRIPT_FAILED = "mandatory-script-verify-flag-failed"


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[EmbeddedChain]:
    with EmbeddedChain(tmp_path / "chain") as opened:
        yield opened


def _parties(chain: EmbeddedChain) -> tuple[Party, Party]:
    alice = Party("Alice", sha256(b"alice seed"))
    bob = Party("Bob", sha256(b"bob seed"))
    mine_to_wallets(chain, [alice, bob])
    return alice, bob


def _open(chain: EmbeddedChain, alice: Party, bob: Party, fmt: CommitmentFormat) -> Channel:
    """Alice funds the 2-of-2: accepted, then mined."""
    channel = Channel(alice, bob, 0, ChannelConfig(FUNDING_SAT, fmt, DELAY, FEERATE_PER_KW))
    funding = channel.funding_transaction(chain)
    accepted(chain, funding)
    confirm(chain, [funding])
    assert channel.funding_outpoint is not None
    utxo = chain.get_txout(channel.funding_outpoint, include_mempool=False)
    assert utxo is not None
    assert utxo.output.value == FUNDING_SAT
    # The output pays the 2-of-2 of exactly the two parties' funding keys.
    expected = funding_script(
        channel.basepoints(alice).funding_pubkey, channel.basepoints(bob).funding_pubkey
    )
    assert utxo.output.script_pubkey == p2wsh_script(expected)
    return channel


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.value)
def test_force_close_delays_htlcs_and_wrong_witnesses(chain: EmbeddedChain, fmt: CommitmentFormat) -> None:
    alice, bob = _parties(chain)
    channel = _open(chain, alice, bob, fmt)
    anchors = fmt.has_anchors

    # State 0: Alice 800k, Bob 200k. State 1 adds one HTLC each way: Alice offers 50k to Bob
    # (expiring at `expiry`), Bob offers 40k to Alice, who knows its preimage.
    state0 = channel.state(0, 800_000_000, 200_000_000)
    tip = chain.tip_height()
    commitment_height = tip + 1
    expiry = commitment_height + DELAY + 2
    offered = make_htlc(HtlcDirection.OFFERED, 0, 50_000_000, sha256(b"Alice pays Bob"), expiry)
    received = make_htlc(HtlcDirection.RECEIVED, 0, 40_000_000, PREIMAGE, expiry + 50)
    state1 = channel.state(1, 750_000_000, 160_000_000, [offered, received])
    channel.revoke(alice, state0.number)
    channel.revoke(bob, state0.number)

    commitment = channel.commitment(alice, state1)
    commitment_tx = channel.signed_commitment(alice, state1)
    assert commitment_tx.txid == commitment.txid
    accepted(chain, commitment_tx)

    to_remote = output_of(commitment, OutputKind.TO_REMOTE)
    assert to_remote.amount_sat == state1.accepter_msat // 1000  # Bob, not the opener, pays no fee
    bob_sweep = channel.sweep_to_remote(bob, commitment, bob.wallet.new_script_pubkey())
    success_htlc = channel.htlc_transaction(commitment, htlc_output(commitment, HtlcDirection.RECEIVED, 0))
    assert success_htlc.kind is HtlcTxKind.SUCCESS
    success_sig = channel.peer_htlc_signature(alice, commitment, success_htlc)
    change = alice.wallet.new_change_script()

    def success_tx(preimage: bytes, *, check: bool = True) -> Transaction:
        fee_coin = channel.opener.fee_coin(chain, 10_000) if anchors else None
        return channel.finalize_htlc(
            alice,
            commitment,
            success_htlc,
            success_sig,
            preimage=preimage,
            fee_coin=fee_coin,
            change_script=change if anchors else None,
            check_preimage=check,
        )

    if anchors:
        # CSV 1 on to_remote and on the HTLC outputs: nothing but the anchors can be spent
        # while the commitment is unconfirmed.
        rejected(chain, bob_sweep, RejectReason.NON_BIP68_FINAL, "non-BIP68-final")
        early = success_tx(PREIMAGE)
        rejected(chain, early, RejectReason.NON_BIP68_FINAL, "non-BIP68-final")
    else:
        accepted(chain, bob_sweep)  # a P2WPKH to_remote: spendable straight from the mempool
    confirm(chain, [commitment_tx] if anchors else [commitment_tx, bob_sweep])
    assert chain.tip_height() == commitment_height
    if anchors:
        accepted(chain, bob_sweep)

    # Bob tries the revocation path of Alice's current to_local without its secret: the kernel
    # refuses the signature.
    forged = channel.forged_penalty_to_local(bob, commitment, bob.wallet.new_script_pubkey())
    rejected(chain, forged, RejectReason.SCRIPT_VERIFY_FAILED, SCRIPT_FAILED)

    # HTLC-success: a wrong preimage fails the script, the right one is accepted.
    wrong = success_tx(WRONG_PREIMAGE, check=False)
    rejected(chain, wrong, RejectReason.SCRIPT_VERIFY_FAILED, SCRIPT_FAILED)
    if anchors:
        # As pre-signed, the anchors' HTLC transaction pays no fee and cannot relay on its own.
        bare = channel.finalize_htlc(alice, commitment, success_htlc, success_sig, preimage=PREIMAGE)
        assert bare.outputs[0].value == success_htlc.input_amount_sat
        rejected(chain, bare, RejectReason.INSUFFICIENT_FEE, "min relay fee not met")
    good = success_tx(PREIMAGE)
    assert len(good.inputs) == (2 if anchors else 1)
    accepted(chain, good)
    confirm(chain, [good, bob_sweep] if anchors else [good])

    # to_local: refused with DELAY - 1 confirmations, accepted with DELAY.
    to_local_sweep = channel.sweep_to_local(alice, commitment, alice.wallet.new_script_pubkey())
    assert to_local_sweep.inputs[0].sequence == DELAY
    mine_to(chain, commitment_height + DELAY - 2)
    rejected(chain, to_local_sweep, RejectReason.NON_BIP68_FINAL, "non-BIP68-final")
    chain.generate(1, SINK_SCRIPT)
    assert chain.tip_height() - commitment_height + 1 == DELAY
    accepted(chain, to_local_sweep)

    # HTLC-timeout: nLockTime = cltv_expiry, refused at expiry - 1, accepted at expiry.
    timeout_htlc = channel.htlc_transaction(commitment, htlc_output(commitment, HtlcDirection.OFFERED, 0))
    assert timeout_htlc.kind is HtlcTxKind.TIMEOUT
    assert timeout_htlc.tx.locktime == expiry
    timeout_sig = channel.peer_htlc_signature(alice, commitment, timeout_htlc)
    confirm(chain, [to_local_sweep])

    def timeout_tx() -> Transaction:
        fee_coin = channel.opener.fee_coin(chain, 10_000) if anchors else None
        return channel.finalize_htlc(
            alice,
            commitment,
            timeout_htlc,
            timeout_sig,
            fee_coin=fee_coin,
            change_script=alice.wallet.new_change_script() if anchors else None,
        )

    mine_to(chain, expiry - 1)
    too_early = timeout_tx()
    rejected(chain, too_early, RejectReason.NON_FINAL, "non-final")
    chain.generate(1, SINK_SCRIPT)
    assert chain.tip_height() == expiry
    on_time = timeout_tx()
    accepted(chain, on_time)
    confirm(chain, [on_time])
    assert not chain.mempool_txids()

    # Every satoshi of the funding output is in a final output or paid as a fee; with anchors
    # Alice's wallet also put in the HTLC transactions' fee inputs, which come back as change.
    spent_txs = [commitment_tx, bob_sweep, good, to_local_sweep, on_time]
    result = tally(chain, channel.funding_outpoint_checked, spent_txs)
    assert result.final_sat + result.fees_sat == FUNDING_SAT + result.external_inputs_sat
    assert (result.external_inputs_sat > 0) is anchors
    anchor_outputs = [v for v in result.final_outputs.values() if v == ANCHOR_OUTPUT_SAT]
    assert len(anchor_outputs) == (2 if anchors else 0)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.value)
def test_breach_is_punished_with_the_revealed_secret(chain: EmbeddedChain, fmt: CommitmentFormat) -> None:
    alice, bob = _parties(chain)
    channel = _open(chain, alice, bob, fmt)

    state0 = channel.state(0, 700_000_000, 300_000_000)
    state1 = channel.state(1, 500_000_000, 500_000_000)  # Alice paid Bob 200k
    revealed = channel.revoke(alice, 0)
    channel.revoke(bob, 0)
    assert channel.revealed_secret(bob, 0) == revealed
    assert channel.revealed_secret(bob, 1) is None  # the current state stays unpunishable

    # Alice first edits her current commitment in her favour and reuses Bob's signature of the
    # real one: a wrong signature on the funding 2-of-2.
    current = channel.commitment(alice, state1)
    bob_signature = channel.peer_commitment_signature(alice, current)
    edited = channel.commitment(alice, channel.state(1, 600_000_000, 400_000_000))
    edited_tx = finalize_commitment(
        edited, sign_commitment(edited, channel.secrets(alice).funding), bob_signature
    )
    rejected(chain, edited_tx, RejectReason.SCRIPT_VERIFY_FAILED, SCRIPT_FAILED)

    # Then she broadcasts the revoked state 0, validly signed by both: the chain cannot tell.
    old = channel.commitment(alice, state0)
    old_tx = channel.signed_commitment(alice, state0)
    accepted(chain, old_tx)
    breach_height = confirm(chain, [old_tx])

    # Her own to_local is locked for DELAY blocks ...
    alice_sweep = channel.sweep_to_local(alice, old, alice.wallet.new_script_pubkey())
    rejected(chain, alice_sweep, RejectReason.NON_BIP68_FINAL, "non-BIP68-final")

    # ... while Bob recognises the commitment number, finds the secret Alice gave up, and takes
    # her to_local at once with the revocation key.
    number = channel.identify(old_tx)
    assert number == 0
    secret = channel.revealed_secret(bob, number)
    assert secret is not None
    assert per_commitment_point(secret) == channel.secrets(alice).shachain.point(0)
    penalty = channel.penalty_to_local(bob, old, secret, bob.wallet.new_script_pubkey())
    accepted(chain, penalty)
    bob_sweep = channel.sweep_to_remote(bob, old, bob.wallet.new_script_pubkey())
    accepted(chain, bob_sweep)
    confirm(chain, [penalty, bob_sweep])

    # When her delay is over there is nothing left to take.
    mine_to(chain, breach_height + DELAY - 1)
    rejected(chain, alice_sweep, RejectReason.MISSING_OR_SPENT_INPUTS, "bad-txns-inputs-missingorspent")

    result = tally(chain, channel.funding_outpoint_checked, [old_tx, penalty, bob_sweep])
    assert result.external_inputs_sat == 0
    assert result.final_sat + result.fees_sat == FUNDING_SAT
    for outpoint, value in result.final_outputs.items():
        found = chain.get_transaction(outpoint.txid)
        assert found is not None
        script = found[0].outputs[outpoint.vout].script_pubkey
        # Everything but the anchors went to Bob's wallet.
        assert bob.wallet.owns(script) or value == ANCHOR_OUTPUT_SAT
    bob_total = sum(v for v in result.final_outputs.values() if v != ANCHOR_OUTPUT_SAT)
    assert bob_total > state0.accepter_msat // 1000
