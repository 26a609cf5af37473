"""The seed's RSMC story played by the node's own code: Alice cheats, Bob's node punishes her.

张三 (Alice) and 李四 (Bob) open the 2 BTC channel of the two-way chapter (real BOLT 2 cores, every
message as wire bytes) and Alice pays Bob 0.5 BTC. Alice runs as `ampere node --developer` does: her
channel keeps each of her commitments fully signed, which is the only way to broadcast one after it is
revoked (her signer refuses). She broadcasts commitment #0, where she still had 1.5 BTC.

Bob's side is what `ampere node` runs when the funding output is spent: `ampere.onchain.classify`
recognises a revoked commitment of the peer from his revocation log, and a `ChannelResolver` (the
sans-IO BOLT 5 machine) builds, signs and fee-bumps the justice transaction and sweeps his own output,
block by block. A small shell carries its actions to the embedded chain and feeds it the blocks, as the
node's on-chain service does; every verdict is the kernel's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.chain.errors import RejectReason
from ampere.channel.twoway.actions import CommitmentRevoked, LocalCommitmentSigned
from ampere.cli.demo.channel_kit import KitError
from ampere.cli.demo.context import DemoContext
from ampere.cli.demo.twoway import (
    FUNDING_SAT,
    TwoWayLink,
    TwoWayNode,
    btc,
    make_node,
    open_channel,
    pay_half_a_bitcoin,
)
from ampere.onchain import (
    BlockConnected,
    BroadcastTx,
    ChannelResolver,
    InMemoryOnchainSigner,
    OutputPath,
    OutputStatus,
    Resolved,
    ResolverAction,
    ResolverContext,
    RevokedCommitment,
    RevokedLocalCommitment,
    SpendConfirmed,
    WatchOutpoint,
    build_claim_tx,
    classify,
    sign_claim_tx,
)

__all__ = ["PenaltyOutcome", "penalty", "play_penalty"]

@dataclass
class ResolverShell:
    """What the node's on-chain service does for one resolver, on the demo's chain."""

    ctx: DemoContext
    resolver: ChannelResolver
    signer: InMemoryOnchainSigner
    watched: set[OutPoint] = field(default_factory=set)
    broadcasts: list[Transaction] = field(default_factory=list)

    def perform(self, actions: list[ResolverAction]) -> None:
        for action in actions:
            if isinstance(action, WatchOutpoint):
                self.watched.add(action.outpoint)
            elif isinstance(action, BroadcastTx):
                self._broadcast(action)
            elif not isinstance(action, Resolved):
                raise KitError(f"a breach should not need {type(action).__name__}")

    def _broadcast(self, action: BroadcastTx) -> None:
        chain, txid = self.ctx.chain, action.tx.txid
        if chain.mempool_tx(txid) is not None or chain.tx_status(txid).block_height is not None:
            return  # sent before (a resolver repeats its claims until they confirm)
        self.broadcasts.append(action.tx)
        self.ctx.submit(f"Bob's node broadcasts: {action.label}", action.tx)

    def follow(self, height: int) -> None:
        """Feed the resolver the block at `height`: the spends it watches, then the block itself."""
        block_hash = self.ctx.chain.block_hash(height)
        block = None if block_hash is None else self.ctx.chain.get_block(block_hash)
        if block is None:
            raise KitError(f"block {height} vanished")
        context = ResolverContext(self.signer, self.ctx.feerate_per_kw)
        closing = self.resolver.closing_tx.txid
        for tx in block.transactions:
            watched = self.watched | {out.outpoint for out in self.resolver.outputs}
            if tx.txid == closing or any(txin.prevout in watched for txin in tx.inputs):
                self.perform(self.resolver.handle(SpendConfirmed(tx, height), context))
        self.perform(self.resolver.handle(BlockConnected(height), context))


@dataclass(frozen=True, slots=True)
class PenaltyOutcome:
    """What the chapter leaves behind, for the tests."""

    cheat: Transaction  # Alice's revoked commitment #0, as broadcast
    claims: tuple[Transaction, ...]  # what Bob's node broadcast
    resolver: ChannelResolver  # Bob's, at the end


def penalty(ctx: DemoContext) -> None:
    """Alice broadcasts her revoked commitment #0; Bob's node takes the whole channel."""
    play_penalty(ctx)


def play_penalty(ctx: DemoContext) -> PenaltyOutcome | None:
    n = ctx.narrator
    n.chapter(f"The penalty: {ctx.alice.name} broadcasts a revoked state, {ctx.bob.name}'s node takes it all")
    index = ctx.channel_index()
    alice = make_node(ctx, ctx.alice, index, keep_signed_commitments=True)
    bob = make_node(ctx, ctx.bob, index)
    link = TwoWayLink(ctx, alice, bob)
    n.say("As in the two-way chapter, but Alice's node runs in developer mode: it keeps each of her")
    n.say("commitments fully signed, so that she can broadcast one after revoking it.")
    if not open_channel(ctx, link):
        return None
    pay_half_a_bitcoin(ctx, link)
    cheat = _kept_commitment(alice, 0)
    alice_before, bob_before = ctx.alice.balance_sat(ctx.chain), ctx.bob.balance_sat(ctx.chain)

    n.scene("Alice broadcasts her revoked commitment #0")
    n.say("In commitment #0 Alice still has 1.5 BTC (her to_local, delayed), Bob 0.5 BTC (his to_remote).")
    n.say("She revoked it when the HTLC was added: Bob holds its per-commitment secret.")
    if not ctx.submit("Alice's revoked commitment #0", cheat):
        return None
    breach_height = ctx.tip + 1
    n.check(f"it is in block {breach_height}: the chain cannot know it was revoked", ctx.mined_in([cheat]))

    n.scene("Bob's node sees the funding output spent and classifies the spend")
    shell = _bob_resolver(ctx, bob, cheat)
    if shell is None:
        return None
    deadline = breach_height + ctx.to_self_delay - 1  # the last tip at which Alice still cannot sweep
    n.say(f"Alice's to_local waits {ctx.to_self_delay} blocks (to_self_delay); Bob needs no delay at all.")
    alice_sweep = _alice_cannot_sweep_yet(ctx, alice, cheat)
    shell.follow(breach_height)
    while not shell.resolver.resolved and ctx.tip < deadline + 12:
        ctx.mine(1)
        shell.follow(ctx.tip)
    justice = [out for out in shell.resolver.outputs if out.path is OutputPath.JUSTICE]
    taken = [out for out in justice if out.status is OutputStatus.SWEPT and out.by_us]
    heights = [out.spent_height for out in taken if out.spent_height is not None]
    n.check(
        f"the justice transaction took Alice's to_local in block {max(heights, default=0)}, "
        f"before her delay ended (block {deadline + 1})",
        bool(justice) and len(taken) == len(justice) and max(heights) <= deadline,
    )
    n.check("Bob's node considers the channel resolved (every output deep)", shell.resolver.resolved)
    ctx.mine_to(max(ctx.tip, deadline), "Alice's delay is over")
    ctx.submit(
        "Alice sweeps her to_local, now that it is due", alice_sweep, RejectReason.MISSING_OR_SPENT_INPUTS
    )

    n.scene("Where the 2 BTC went")
    ctx.tally(cheat.inputs[0].prevout, FUNDING_SAT, [cheat, *shell.broadcasts])
    bob_gained = ctx.bob.balance_sat(ctx.chain) - bob_before
    alice_gained = ctx.alice.balance_sat(ctx.chain) - alice_before
    lost = FUNDING_SAT - bob_gained
    n.check(
        f"Bob's wallet gained {btc(bob_gained * 1000)}: the whole channel less {lost:,} sat of fees "
        "and anchors",
        0 < lost < 20_000,
    )
    n.check(
        f"Alice's wallet gained {alice_gained} sat from the channel: she lost all of it", alice_gained == 0
    )
    return PenaltyOutcome(cheat, tuple(shell.broadcasts), shell.resolver)


def _kept_commitment(node: TwoWayNode, number: int) -> Transaction:
    for action in node.notices:
        if isinstance(action, LocalCommitmentSigned) and action.commitment_number == number:
            return action.transaction
    raise KitError(f"{node.name}'s developer-mode channel kept no commitment #{number}")


def _bob_resolver(ctx: DemoContext, bob: TwoWayNode, cheat: Transaction) -> ResolverShell | None:
    n = ctx.narrator
    log = {r.commitment_number: r for r in bob.notices if isinstance(r, CommitmentRevoked)}
    n.say(f"His revocation log holds {len(log)} record(s): what each revoked commitment of Alice's paid.")
    signer = InMemoryOnchainSigner(bob.signer_root)
    classification = classify(bob.state, cheat, signer.per_commitment_point, log.get)
    revoked = isinstance(classification, RevokedCommitment) and classification.number == 0
    n.check("classify: Alice's revoked commitment #0, and Bob holds its secret", revoked)
    if not revoked:
        return None
    destination = ctx.bob.wallet.new_script_pubkey()
    resolver, actions = ChannelResolver.create(bob.state, classification, cheat, destination, tip=ctx.tip)
    shell = ResolverShell(ctx, resolver, signer)
    shell.perform(actions)
    return shell


def _alice_cannot_sweep_yet(ctx: DemoContext, alice: TwoWayNode, cheat: Transaction) -> Transaction:
    """Alice's own node sees its revoked commitment; its to_local claim is only valid after the delay.
    Returns that claim, signed."""
    n = ctx.narrator
    signer = InMemoryOnchainSigner(alice.signer_root)
    classification = classify(alice.state, cheat, signer.per_commitment_point, lambda number: None)
    n.check(
        "Alice's node knows the commitment for one of her own revoked ones",
        isinstance(classification, RevokedLocalCommitment),
    )
    resolver, _ = ChannelResolver.create(
        alice.state, classification, cheat, ctx.alice.wallet.new_script_pubkey(), tip=ctx.tip
    )
    claims = [out.claim for out in resolver.outputs if out.path is OutputPath.TO_LOCAL and out.claim]
    if not claims:
        raise KitError("Alice's resolver has no to_local claim to try")
    early = sign_claim_tx(
        build_claim_tx(claims, ctx.alice.wallet.new_script_pubkey(), ctx.feerate_per_kw), claims, signer
    )
    ctx.submit("Alice sweeps her to_local at once", early, RejectReason.NON_BIP68_FINAL)
    return early
