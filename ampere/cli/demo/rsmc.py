"""The revocable channel at the transaction level: force close, breach and penalty, anchors.

Each chapter opens its own channel between Alice and Bob, moves it through off-chain states whose
commitments both sign, and then takes it to the chain, where the kernel's verdicts (with bitcoind's
reject strings) are what the story shows.
"""

from __future__ import annotations

from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.chain.errors import RejectReason
from ampere.channel.transactions import (
    CommitmentFormat,
    CommitmentTransaction,
    HtlcDirection,
    OutputKind,
    finalize_commitment,
    sign_commitment,
)
from ampere.cli.demo.channel_kit import Channel, ChannelConfig, htlc_output, make_htlc
from ampere.cli.demo.context import DemoContext

CHANNEL_SAT = 1_000_000


def _sat(msat: int) -> str:
    return f"{msat // 1000:,} sat"


def _alice_view(kind: OutputKind) -> str:
    """Who may take each output of Alice's commitment."""
    return {
        OutputKind.TO_LOCAL: "to_local: Alice after the delay, or Bob at once with the revocation key",
        OutputKind.TO_REMOTE: "to_remote: Bob",
        OutputKind.LOCAL_ANCHOR: "anchor: Alice (fee bumping)",
        OutputKind.REMOTE_ANCHOR: "anchor: Bob (fee bumping)",
        OutputKind.OFFERED_HTLC: "offered by Alice: Bob with the preimage, Alice after expiry",
        OutputKind.RECEIVED_HTLC: "offered by Bob: Alice with the preimage, Bob after expiry",
    }[kind]


def _open_channel(ctx: DemoContext, fmt: CommitmentFormat) -> Channel | None:
    n = ctx.narrator
    channel = Channel(
        ctx.alice,
        ctx.bob,
        ctx.channel_index(),
        ChannelConfig(CHANNEL_SAT, fmt, ctx.to_self_delay, ctx.feerate_per_kw),
    )
    n.scene(f"Alice opens a {CHANNEL_SAT:,} sat channel with Bob ({fmt.value})")
    n.say("Each derives the channel's basepoints and a shachain seed from their own seed; they swap the")
    n.say("public basepoints. Alice's wallet pays the 2-of-2 of both funding keys.")
    funding = channel.funding_transaction(ctx.chain)
    n.detail(f"funding output {channel.funding_outpoint_checked}: P2WSH 2-of-2, {CHANNEL_SAT:,} sat")
    if not ctx.submit("funding transaction paying the 2-of-2", funding):
        return None
    n.check("the funding transaction is in block " + str(ctx.tip + 1), ctx.mined_in([funding]))
    return channel


def force_close(ctx: DemoContext) -> None:
    """Alice closes unilaterally: to_remote at once, to_local after the delay, both HTLC paths."""
    n = ctx.narrator
    delay = ctx.to_self_delay
    alice, bob = ctx.alice, ctx.bob
    n.chapter("A force close, output by output")
    channel = _open_channel(ctx, CommitmentFormat.STATIC_REMOTEKEY)
    if channel is None:
        return

    n.scene("Off-chain: two states, the first one revoked")
    state0 = channel.state(0, 800_000_000, 200_000_000)
    commitment_height = ctx.tip + 1  # Alice's commitment goes into the next block
    expiry = commitment_height + delay + 2
    preimage = sha256(b"demo: Bob's invoice paid by Alice's HTLC")
    offered = make_htlc(HtlcDirection.OFFERED, 0, 50_000_000, sha256(b"demo: Alice to Bob"), expiry)
    received = make_htlc(HtlcDirection.RECEIVED, 0, 40_000_000, preimage, expiry + 40)
    state1 = channel.state(1, 750_000_000, 160_000_000, [offered, received])
    n.say(f"state 0: Alice {_sat(state0.opener_msat)}, Bob {_sat(state0.accepter_msat)}")
    n.say(f"state 1: Alice offers Bob an HTLC of {_sat(offered.amount_msat)} expiring at block {expiry};")
    n.say(
        f"         Bob offers Alice {_sat(received.amount_msat)} against a hash whose preimage Alice knows."
    )
    n.say(f"         Alice {_sat(state1.opener_msat)}, Bob {_sat(state1.accepter_msat)}.")
    n.say("Each signs the other's commitment for state 1 (and checks the signature it gets), then both")
    n.say("reveal their per-commitment secrets of state 0: state 0 is revoked.")
    channel.signed_commitment(bob, state1)
    channel.revoke(alice, 0)
    channel.revoke(bob, 0)

    n.scene("Alice closes by force: her commitment #1 goes on chain")
    commitment = channel.commitment(alice, state1)
    commitment_tx = channel.signed_commitment(alice, state1)
    ctx.describe_commitment(commitment, _alice_view)
    if not ctx.submit("Alice's commitment, signed by Bob and by Alice", commitment_tx):
        return
    n.say("Bob's to_remote is a plain P2WPKH to his payment basepoint: he can take it at once.")
    bob_sweep = channel.sweep_to_remote(bob, commitment, bob.wallet.new_script_pubkey())
    ctx.submit("Bob sweeps to_remote", bob_sweep)
    n.check(f"both confirmed in block {commitment_height}", ctx.mined_in([commitment_tx, bob_sweep]))

    n.scene("Bob tries to take Alice's to_local without the revocation secret")
    n.say("State 1 was never revoked, so Bob cannot compute the revocation key; he signs with a key he has.")
    forged = channel.forged_penalty_to_local(bob, commitment, bob.wallet.new_script_pubkey())
    ctx.submit("Bob's to_local 'penalty' with a wrong signature", forged, RejectReason.SCRIPT_VERIFY_FAILED)

    n.scene("Alice claims Bob's HTLC with its preimage (HTLC-success)")
    success = channel.htlc_transaction(commitment, htlc_output(commitment, HtlcDirection.RECEIVED, 0))
    bob_htlc_signature = channel.peer_htlc_signature(alice, commitment, success)
    wrong = channel.finalize_htlc(
        alice, commitment, success, bob_htlc_signature, preimage=sha256(b"a guess"), check_preimage=False
    )
    ctx.submit("HTLC-success with a wrong preimage", wrong, RejectReason.SCRIPT_VERIFY_FAILED)
    n.say("The same transaction with the right preimage (the txid stays: witnesses are not part of it).")
    good = channel.finalize_htlc(alice, commitment, success, bob_htlc_signature, preimage=preimage)
    ctx.submit("HTLC-success with the preimage (Bob's and Alice's signatures)", good)
    n.detail(
        f"its output, {good.outputs[0].value:,} sat, is Alice's after {delay} more blocks (to_local script)"
    )
    n.check("HTLC-success confirmed", ctx.mined_in([good]))

    n.scene(f"Alice's to_local waits {delay} blocks (to_self_delay)")
    to_local_sweep = channel.sweep_to_local(alice, commitment, alice.wallet.new_script_pubkey())
    n.say(f"The sweep's input has nSequence = {delay}: BIP68 keeps it out of the next {delay - 1} blocks.")
    ctx.mine_to(commitment_height + delay - 2, f"the commitment has {delay - 1} confirmations")
    ctx.submit(f"to_local sweep at {delay - 1} confirmations", to_local_sweep, RejectReason.NON_BIP68_FINAL)
    ctx.mine(1, f"{delay} confirmations")
    ctx.submit(f"to_local sweep at {delay} confirmations", to_local_sweep, show_txid=False)
    n.check("to_local sweep confirmed", ctx.mined_in([to_local_sweep]))

    n.scene(f"Alice's own HTLC times out at block {expiry} (HTLC-timeout)")
    timeout = channel.htlc_transaction(commitment, htlc_output(commitment, HtlcDirection.OFFERED, 0))
    timeout_tx = channel.finalize_htlc(
        alice, commitment, timeout, channel.peer_htlc_signature(alice, commitment, timeout)
    )
    n.say(f"Bob pre-signed it with nLockTime = {timeout_tx.locktime}, the HTLC's cltv_expiry.")
    ctx.mine_to(expiry - 1)
    ctx.submit(f"HTLC-timeout with the tip at {ctx.tip}", timeout_tx, RejectReason.NON_FINAL)
    ctx.mine(1)
    ctx.submit(f"HTLC-timeout with the tip at {ctx.tip}", timeout_tx, show_txid=False)
    n.check("HTLC-timeout confirmed", ctx.mined_in([timeout_tx]))

    n.scene("Where the channel's money went")
    _who_got_what(ctx, [commitment_tx, bob_sweep, good, to_local_sweep, timeout_tx], channel, commitment)


def breach(ctx: DemoContext) -> None:
    """Alice broadcasts a revoked state; Bob takes her to_local with the revocation key."""
    n = ctx.narrator
    delay = ctx.to_self_delay
    alice, bob = ctx.alice, ctx.bob
    n.chapter("A breach, and its penalty")
    channel = _open_channel(ctx, CommitmentFormat.STATIC_REMOTEKEY)
    if channel is None:
        return

    n.scene("Off-chain: Alice pays Bob, and revokes the state that paid her more")
    state0 = channel.state(0, 700_000_000, 300_000_000)
    state1 = channel.state(1, 500_000_000, 500_000_000)
    n.say(f"state 0: Alice {_sat(state0.opener_msat)}, Bob {_sat(state0.accepter_msat)}")
    n.say(f"state 1: Alice {_sat(state1.opener_msat)}, Bob {_sat(state1.accepter_msat)}")
    secret = channel.revoke(alice, 0)
    channel.revoke(bob, 0)
    n.say("Alice reveals her per-commitment secret of state 0; Bob keeps it in his shachain store.")
    n.detail(f"secret #0: {secret.hex()[:16]}…")

    n.scene("Alice tries to forge a better state")
    current = channel.commitment(alice, state1)
    bob_signature = channel.peer_commitment_signature(alice, current)
    edited = channel.commitment(alice, channel.state(1, 600_000_000, 400_000_000))
    edited_tx = finalize_commitment(
        edited, sign_commitment(edited, channel.secrets(alice).funding), bob_signature
    )
    n.say("She edits state 1 to pay herself 100,000 sat more and reuses Bob's signature of the real one.")
    ctx.submit("edited commitment with Bob's old signature", edited_tx, RejectReason.SCRIPT_VERIFY_FAILED)

    n.scene("Alice broadcasts the revoked state 0")
    old = channel.commitment(alice, state0)
    old_tx = channel.signed_commitment(alice, state0)
    ctx.describe_commitment(old, _alice_view)
    n.say("Both signatures are genuine: the chain cannot know this state was revoked.")
    if not ctx.submit("revoked commitment #0", old_tx):
        return
    breach_height = ctx.tip + 1
    n.check(f"it is in block {breach_height}", ctx.mined_in([old_tx]))
    alice_sweep = channel.sweep_to_local(alice, old, alice.wallet.new_script_pubkey())
    ctx.submit("Alice sweeps her to_local", alice_sweep, RejectReason.NON_BIP68_FINAL)

    n.scene("Bob punishes: the revocation key, at once")
    number = channel.identify(old_tx)
    n.say(f"Bob reads the commitment number from nLockTime/nSequence: {number}.")
    revealed = None if number is None else channel.revealed_secret(bob, number)
    n.check("Bob holds Alice's secret for that commitment", revealed is not None)
    if revealed is None:
        return
    n.say("revocation privkey = his revocation basepoint secret and Alice's secret, mixed (BOLT 3).")
    penalty = channel.penalty_to_local(bob, old, revealed, bob.wallet.new_script_pubkey())
    ctx.submit("Bob's penalty: Alice's to_local with the revocation key", penalty)
    bob_sweep = channel.sweep_to_remote(bob, old, bob.wallet.new_script_pubkey())
    ctx.submit("Bob sweeps his own to_remote", bob_sweep)
    n.check("both confirmed", ctx.mined_in([penalty, bob_sweep]))
    ctx.mine_to(breach_height + delay - 1, "Alice's delay is over")
    ctx.submit(
        "Alice sweeps her to_local, now that it is due", alice_sweep, RejectReason.MISSING_OR_SPENT_INPUTS
    )

    n.scene("Where the channel's money went")
    _who_got_what(ctx, [old_tx, penalty, bob_sweep], channel, old)


def anchors(ctx: DemoContext) -> None:
    """An anchor channel: CSV 1 on to_remote and HTLCs, zero-fee HTLC transactions and a fee input."""
    n = ctx.narrator
    alice, bob = ctx.alice, ctx.bob
    n.chapter("Anchor outputs: CSV 1 and zero-fee HTLC transactions")
    channel = _open_channel(ctx, CommitmentFormat.ANCHORS)
    if channel is None:
        return

    n.scene("Off-chain: Bob offers Alice an HTLC")
    preimage = sha256(b"demo: anchors preimage")
    received = make_htlc(HtlcDirection.RECEIVED, 0, 60_000_000, preimage, ctx.tip + 100)
    state = channel.state(0, 700_000_000, 240_000_000, [received])
    balances = f"Alice {_sat(state.opener_msat)}, Bob {_sat(state.accepter_msat)}"
    n.say(f"{balances}, HTLC {_sat(received.amount_msat)}.")
    n.say("Bob signs Alice's HTLC-success with SIGHASH_SINGLE|ANYONECANPAY: it pays no fee, Alice adds one.")

    n.scene("Alice closes by force")
    commitment = channel.commitment(alice, state)
    commitment_tx = channel.signed_commitment(alice, state)
    ctx.describe_commitment(commitment, _alice_view)
    if not ctx.submit("Alice's anchor commitment", commitment_tx):
        return
    bob_sweep = channel.sweep_to_remote(bob, commitment, bob.wallet.new_script_pubkey())
    n.say("to_remote is `<key> OP_CHECKSIGVERIFY 1 OP_CHECKSEQUENCEVERIFY`: not while unconfirmed.")
    ctx.submit("Bob sweeps to_remote before the commitment confirms", bob_sweep, RejectReason.NON_BIP68_FINAL)
    n.check("the commitment confirmed", ctx.mined_in([commitment_tx]))
    ctx.submit("Bob sweeps to_remote one block later", bob_sweep, show_txid=False)

    n.scene("Alice's HTLC-success needs a fee input")
    success = channel.htlc_transaction(commitment, htlc_output(commitment, HtlcDirection.RECEIVED, 0))
    bob_htlc_signature = channel.peer_htlc_signature(alice, commitment, success)
    bare = channel.finalize_htlc(alice, commitment, success, bob_htlc_signature, preimage=preimage)
    ctx.submit("HTLC-success as pre-signed (no fee)", bare, RejectReason.INSUFFICIENT_FEE)
    coin = alice.fee_coin(ctx.chain, 10_000)
    n.say(f"Alice adds her wallet coin {coin.outpoint} ({coin.value:,} sat) and a change output;")
    n.say("Bob's signature still holds, Alice signs the grown transaction with SIGHASH_ALL.")
    funded = channel.finalize_htlc(
        alice,
        commitment,
        success,
        bob_htlc_signature,
        preimage=preimage,
        fee_coin=coin,
        change_script=alice.wallet.new_change_script(),
    )
    if ctx.submit("HTLC-success with Alice's fee input", funded):
        n.detail(f"fee paid: {ctx.fee_of(funded):,} sat")
    n.check("all confirmed", ctx.mined_in([bob_sweep, funded]))

    n.scene("Where the channel's money went")
    _who_got_what(
        ctx, [commitment_tx, bob_sweep, funded], channel, commitment, frozenset({funded.outpoint(1)})
    )


def _who_got_what(
    ctx: DemoContext,
    txs: list[Transaction],
    channel: Channel,
    commitment: CommitmentTransaction,
    fee_change: frozenset[OutPoint] = frozenset(),
) -> None:
    final = ctx.tally(channel.funding_outpoint_checked, CHANNEL_SAT, txs)
    on_commitment = {
        OutputKind.TO_LOCAL: "Alice's to_local, not swept yet",
        OutputKind.LOCAL_ANCHOR: "anchors, left for fee bumping (anyone's after 16 blocks)",
        OutputKind.REMOTE_ANCHOR: "anchors, left for fee bumping (anyone's after 16 blocks)",
    }
    owners: dict[str, int] = {}
    by_txid = {tx.txid: tx for tx in txs}
    for outpoint, value in final.items():
        script = by_txid[outpoint.txid].outputs[outpoint.vout].script_pubkey
        if outpoint in fee_change:
            owner = "back to Alice's wallet: the change of her fee input"
        elif ctx.alice.wallet.owns(script):
            owner = "Alice's wallet"
        elif ctx.bob.wallet.owns(script):
            owner = "Bob's wallet"
        elif outpoint.txid == commitment.txid:
            owner = on_commitment.get(commitment.outputs[outpoint.vout].kind, "left on the commitment")
        else:
            owner = f"Alice's, {ctx.to_self_delay} blocks after her HTLC transactions"
        owners[owner] = owners.get(owner, 0) + value
    for owner, value in owners.items():
        ctx.narrator.say(f"{value:>11,} sat  {owner}")
