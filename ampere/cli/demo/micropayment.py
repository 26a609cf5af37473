"""The micropayment channel narrated: a thousand payments off chain, two transactions on chain.

Two `MicropaymentManager`s, one per node, run the real sans-IO channel core; between them every
message travels as the bytes a peer would send. A small shell here does what the node does around
a manager: it persists before it lets anything that depends on the state leave (in memory: the
demo keeps no database), hands `BuildFunding` to the payer's wallet, sends broadcasts to the
embedded chain and feeds each node the blocks it sees. Which node sees which blocks is the story's
choice: a payee that vanishes simply stops being fed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.keys import PrivateKey, pubkey_from_secret
from ampere.bitcoin.network import Network
from ampere.bitcoin.tx import OutPoint, Transaction, TxOut
from ampere.chain.errors import RejectReason
from ampere.channel.micropayment import (
    Accept,
    Ack,
    Action,
    Broadcast,
    BuildFunding,
    ChannelClosed,
    ChannelState,
    ErrorCode,
    ErrorMessage,
    FundingCreated,
    ManagerOutput,
    MicropaymentManager,
    PayeeChannel,
    PayeeConfig,
    PayerChannel,
    PaymentAccepted,
    Persist,
    Propose,
    RefundSigned,
    Send,
    Sync,
    Update,
    decode_micro,
    encode_micro,
)
from ampere.channel.micropayment.manager import Forget, Refused
from ampere.channel.micropayment.transactions import sign_funding_spend
from ampere.cli.demo.channel_kit import KitError, Party
from ampere.cli.demo.context import DemoContext

CHAIN_HASH = Network.REGTEST.chain_hash
CAPACITY_SAT = 1_000_000
PAYMENTS = 1_000
SHOWN_PAYMENTS = 3
# About a day for the channel that settles; the payee's policy accepts refunds from 20 blocks ahead,
# which the short channel uses so that its refund becomes valid within the demo.
REFUND_AFTER = 144
SHORT_REFUND_AFTER = 20
SAFETY_MARGIN = 6
SHORT_CHANNEL_PAYMENTS = (10_000_000, 15_000_000, 20_000_000)


def payment_amounts(count: int) -> list[int]:
    """Uneven amounts in msat, from about 1 sat to 1,000 sat, with odd millisatoshis."""
    return [1_000 + (index * 7_919) % 1_000_000 + index % 7 for index in range(count)]


class PartyKeys:
    """Funding keys from a party's seed: the manager's key index k is the demo's channel index first + k."""

    def __init__(self, party: Party, first_index: int) -> None:
        self._party = party
        self._first_index = first_index

    def funding_key(self, key_index: int) -> PrivateKey:
        return PrivateKey(self._party.channel_secrets(self._first_index + key_index).funding)


@dataclass
class MicroNode:
    """One node's micropayment side: its manager and what the shell did with its outputs."""

    party: Party
    node_id: bytes
    keys: PartyKeys
    manager: MicropaymentManager
    seen_height: int
    outbox: list[bytes] = field(default_factory=list)
    broadcasts: list[Broadcast] = field(default_factory=list)
    notices: list[Action | Forget] = field(default_factory=list)
    refusals: list[Refused] = field(default_factory=list)
    durable_revisions: dict[bytes, int] = field(default_factory=dict)
    build_funding: Callable[[BuildFunding], Transaction] | None = None

    @property
    def name(self) -> str:
        return self.party.name

    def run(self, outputs: Iterable[ManagerOutput]) -> None:
        for output in outputs:
            action = output.action
            if isinstance(action, Persist):
                if action.revision <= self.durable_revisions.get(action.channel_id, 0):
                    raise KitError(f"{self.name}: persist revision {action.revision} does not move forward")
                # A node writes (and syncs) the blob here; only then is the rest released.
                self.durable_revisions[action.channel_id] = action.revision
                self.run(self.manager.persisted(output.channel_id, action.revision))
            elif isinstance(action, Send):
                self.outbox.append(action.data)
            elif isinstance(action, Broadcast):
                self.broadcasts.append(action)
            elif isinstance(action, BuildFunding) and self.build_funding is not None:
                self.run(self.manager.funding_built(output.channel_id, self.build_funding(action)))
            elif isinstance(action, Refused):
                self.refusals.append(action)
            else:
                self.notices.append(action)

    def payer_channel(self, channel_id: bytes) -> PayerChannel:
        channel = self.manager.channel(channel_id)
        if not isinstance(channel, PayerChannel):
            raise KitError(f"{self.name} is not the payer of {channel_id.hex()}")
        return channel

    def payee_channel(self, channel_id: bytes) -> PayeeChannel:
        channel = self.manager.channel(channel_id)
        if not isinstance(channel, PayeeChannel):
            raise KitError(f"{self.name} is not the payee of {channel_id.hex()}")
        return channel

    def take_broadcasts(self) -> list[Transaction]:
        """The distinct transactions asked for since the last call (a node re-broadcasts on every block)."""
        taken: dict[bytes, Transaction] = {}
        for broadcast in self.broadcasts:
            taken.setdefault(broadcast.tx.txid, broadcast.tx)
        self.broadcasts.clear()
        return list(taken.values())

    def closed(self) -> list[ChannelClosed]:
        return [notice for notice in self.notices if isinstance(notice, ChannelClosed)]


class MicroLink:
    """The connection between a payer's node and a payee's node; it can narrate what crosses it."""

    def __init__(self, ctx: DemoContext, payer: MicroNode, payee: MicroNode) -> None:
        self.ctx = ctx
        self.payer = payer
        self.payee = payee
        # For each transaction a node asked to broadcast: the message whose handling released it.
        self.released_by: dict[bytes, str] = {}

    def deliver(self, *, narrate: bool = True) -> int:
        delivered = 0
        while self.payer.outbox or self.payee.outbox:
            for sender, receiver in ((self.payer, self.payee), (self.payee, self.payer)):
                pending, sender.outbox = sender.outbox, []
                for data in pending:
                    message = decode_micro(data)
                    if narrate:
                        self.ctx.narrator.message(sender.name, receiver.name, *describe(message))
                    already = len(receiver.broadcasts)
                    receiver.run(receiver.manager.receive(sender.node_id, data))
                    for broadcast in receiver.broadcasts[already:]:
                        self.released_by.setdefault(broadcast.tx.txid, message.NAME)
                    delivered += 1
        return delivered

    def feed(self, node: MicroNode) -> None:
        """Every block `node` has not seen: the manager finds the channel's transactions in it."""
        chain = self.ctx.chain
        for height in range(node.seen_height + 1, chain.tip_height() + 1):
            block_hash = chain.block_hash(height)
            block = None if block_hash is None else chain.get_block(block_hash)
            if block is None:
                raise KitError(f"block {height} vanished while feeding {node.name}")
            node.run(node.manager.block_connected(height, block.transactions))
            node.seen_height = height

    def feed_both(self, *, narrate: bool = True) -> None:
        self.feed(self.payer)
        self.feed(self.payee)
        self.deliver(narrate=narrate)


def describe(message: object) -> tuple[str, str]:
    """The message's wire name and what matters in it."""
    if isinstance(message, Propose):
        return "micro_propose", (
            f"{message.capacity_sat:,} sat, refund at height {message.refund_height}, "
            f"{message.feerate_per_kw} sat/kw, Alice's funding key {message.payer_funding_pubkey.hex()[:16]}…"
        )
    if isinstance(message, Accept):
        return "micro_accept", (
            f"Bob's funding key {message.payee_funding_pubkey.hex()[:16]}…, dust limit "
            f"{message.dust_limit_sat} sat, safety margin {message.safety_margin} blocks"
        )
    if isinstance(message, FundingCreated):
        refund = Transaction.parse(message.refund_tx)
        return "micro_funding", (
            f"funding {OutPoint(message.funding_txid, message.funding_vout)} (outpoint only); "
            f"unsigned refund: {refund.outputs[0].value:,} sat back, nLockTime {refund.locktime}, "
            f"nSequence {refund.inputs[0].sequence:#x}"
        )
    if isinstance(message, RefundSigned):
        return "micro_refund_signed", f"Bob's signature of the refund {message.signature.hex()[:16]}…"
    if isinstance(message, Sync):
        return "micro_sync", f"Bob's best update: #{message.sequence}, {message.paid_msat:,} msat"
    if isinstance(message, Update):
        payee = f"{message.payee_sat:,} sat" if message.payee_sat else "left out (dust)"
        return "micro_update", (
            f"#{message.sequence}: +{message.amount_msat:,} msat, total {message.paid_msat:,} msat; "
            f"Bob's output {payee}, Alice's change {message.change_sat:,} sat; signed by Alice"
        )
    if isinstance(message, Ack):
        return "micro_ack", f"#{message.sequence} stored: {message.paid_msat:,} msat"
    if isinstance(message, ErrorMessage):
        return "micro_error", f"code {message.code} ({message.error_code.name.lower()}): {message.data}"
    return type(message).__name__, ""


def _node(ctx: DemoContext, party: Party, first_index: int) -> MicroNode:
    def payee_policy(peer_id: bytes) -> PayeeConfig:
        return PayeeConfig(
            CHAIN_HASH,
            party.wallet.new_script_pubkey(),
            safety_margin=SAFETY_MARGIN,
            minimum_depth=1,
            min_refund_delta=SHORT_REFUND_AFTER,
        )

    node_id = pubkey_from_secret(sha256(b"ampere demo: node key of " + party.name.encode()))
    keys = PartyKeys(party, first_index)
    manager = MicropaymentManager(keys, payee_policy, tip_height=ctx.tip)
    node = MicroNode(party, node_id, keys, manager, ctx.tip)

    def wallet_funding(request: BuildFunding) -> Transaction:
        party.sync(ctx.chain)
        output = TxOut(request.amount_sat, request.script_pubkey)
        return party.wallet.build_transaction([output], ctx.feerate_per_kw, ctx.tip)

    node.build_funding = wallet_funding
    return node


@dataclass(frozen=True, slots=True)
class MicroChannel:
    channel_id: bytes
    refund_height: int
    funding: Transaction
    funding_outpoint: OutPoint
    funding_height: int


def _open(
    ctx: DemoContext, link: MicroLink, label: bytes, refund_after: int, narrate: bool
) -> MicroChannel | None:
    n = ctx.narrator
    alice, bob = link.payer, link.payee
    channel_id = sha256(b"ampere demo: micropayment channel " + label)
    refund_script = alice.party.wallet.new_script_pubkey()
    alice.run(
        alice.manager.open(
            bob.node_id, channel_id, CHAIN_HASH, CAPACITY_SAT, refund_after, refund_script, ctx.feerate_per_kw
        )
    )
    link.deliver(narrate=narrate)
    payer = alice.payer_channel(channel_id)
    funding = payer.funding_tx
    outpoint = payer.funding_outpoint
    if funding is None or outpoint is None:
        raise KitError("the payer has no funding transaction after the opening exchange")
    refund_height = ctx.tip + refund_after
    n.check(
        "Alice's wallet signed the funding before Bob signed the refund, but her node released it only "
        "on his micro_refund_signed, once the signature was verified and stored",
        payer.state.refund_signature is not None
        and [tx.txid for tx in alice.take_broadcasts()] == [funding.txid]
        and link.released_by.get(funding.txid) == RefundSigned.NAME
        and ctx.chain.mempool_tx(funding.txid) is None,
    )
    if not ctx.submit(f"funding: Alice's wallet pays {CAPACITY_SAT:,} sat to the 2-of-2", funding):
        return None
    height = ctx.tip + 1
    n.check(f"the funding transaction is in block {height}", ctx.mined_in([funding]))
    link.feed_both(narrate=narrate)
    n.check(
        "both nodes see the channel open",
        payer.public_state is ChannelState.OPEN
        and bob.payee_channel(channel_id).public_state is ChannelState.OPEN,
    )
    return MicroChannel(channel_id, refund_height, funding, outpoint, height)


@dataclass
class MicroOutcome:
    """What the chapter leaves behind, for the tests to check against the chain."""

    link: MicroLink
    settled: MicroChannel | None = None
    settlement: Transaction | None = None
    refunded: MicroChannel | None = None
    refund: Transaction | None = None


def micropayment(ctx: DemoContext) -> None:
    """Alice pays Bob a thousand times; Bob settles with one transaction; a second channel is refunded."""
    play_micropayment(ctx)


def play_micropayment(ctx: DemoContext) -> MicroOutcome:
    n = ctx.narrator
    n.chapter("A micropayment channel: a thousand payments, two transactions on chain")
    first_index = ctx.channel_index()
    ctx.channel_index()  # the second channel's keys
    alice = _node(ctx, ctx.alice, first_index)
    bob = _node(ctx, ctx.bob, first_index)
    link = MicroLink(ctx, alice, bob)
    outcome = MicroOutcome(link)

    n.scene(f"Alice opens a {CAPACITY_SAT:,} sat micropayment channel to Bob")
    n.say("Alice's node proposes; her wallet builds and signs the funding, but she sends Bob only its")
    n.say("outpoint and the unsigned refund. Bob signs the refund before any money is committed.")
    channel = _open(ctx, link, b"settled", REFUND_AFTER, narrate=True)
    if channel is None:
        return outcome
    outcome.settled = channel
    refund = alice.payer_channel(channel.channel_id).signed_refund()
    n.detail(
        f"Alice holds the refund signed by both: nLockTime {refund.locktime}, "
        f"nSequence {refund.inputs[0].sequence:#x}, {refund.outputs[0].value:,} sat back to her"
    )
    _pay_a_thousand(ctx, link, channel)
    _bad_update(ctx, link, channel)

    n.scene("Alice tries to take everything back with her refund now")
    n.say("The refund returns the whole channel to Alice, but its nLockTime keeps it out of every block")
    n.say(f"until the tip reaches {channel.refund_height}; Bob settles {SAFETY_MARGIN} blocks before that.")
    ctx.submit(
        f"the refund with the tip at {ctx.tip} (nLockTime {refund.locktime})", refund, RejectReason.NON_FINAL
    )
    outcome.settlement = _settle(ctx, link, channel)
    _payee_vanishes(ctx, link, outcome)
    return outcome


def _pay_a_thousand(ctx: DemoContext, link: MicroLink, channel: MicroChannel) -> None:
    n = ctx.narrator
    alice, bob = link.payer, link.payee
    cid = channel.channel_id
    amounts = payment_amounts(PAYMENTS)
    n.scene(f"{PAYMENTS:,} payments, off chain")
    n.say("Each payment is an update: the funding spent to Bob (the total so far) and to Alice (the change),")
    n.say("signed by Alice only. Bob checks it, stores it and acknowledges; only his best one counts.")
    started = time.perf_counter()
    for index, amount in enumerate(amounts):
        alice.run(alice.manager.pay(cid, amount))
        link.deliver(narrate=index < SHOWN_PAYMENTS)
    elapsed = time.perf_counter() - started
    total = sum(amounts)
    payee = bob.payee_channel(cid)
    payer = alice.payer_channel(cid)
    accepted = [notice for notice in alice.notices if isinstance(notice, PaymentAccepted)]
    n.say(f"… {PAYMENTS - SHOWN_PAYMENTS:,} more updates like these ({elapsed:.1f} s).")
    n.check(
        f"{PAYMENTS:,} updates, every one acknowledged: Bob holds #{payee.sequence} for "
        f"{payee.paid_msat:,} msat (= the sum of the payments), Alice's acknowledged total is the same",
        payee.sequence == PAYMENTS
        and payee.paid_msat == total
        and payer.acked_paid_msat == total
        and len(accepted) == PAYMENTS
        and not bob.refusals,
    )


def _bad_update(ctx: DemoContext, link: MicroLink, channel: MicroChannel) -> None:
    n = ctx.narrator
    alice, bob = link.payer, link.payee
    cid = channel.channel_id
    payee = bob.payee_channel(cid)
    terms = payee.terms
    if terms is None:
        raise KitError("the payee has no terms for an open channel")
    best_sequence, best_paid = payee.sequence, payee.paid_msat
    n.scene("A bad update is refused, and the channel keeps working")
    lower = best_paid - 1_000
    outputs = terms.outputs_for(lower)
    key = alice.keys.funding_key(alice.payer_channel(cid).state.key_index)
    signature = sign_funding_spend(terms, terms.update_tx(channel.funding_outpoint, outputs), key)
    forged = Update(cid, best_sequence + 1, 1_000, lower, outputs.payee_sat, outputs.change_sat, signature)
    n.say(f"An update #{forged.sequence} arrives from Alice's node, properly signed by her funding key,")
    n.say(f"but its total is 1,000 msat lower than the {best_paid:,} msat Bob already holds.")
    data = encode_micro(forged)
    name, detail = describe(forged)
    n.message(alice.name, bob.name, name, detail)
    bob.run(bob.manager.receive(alice.node_id, data))
    link.deliver()
    refusal = bob.refusals[-1] if bob.refusals else None
    n.check(
        "Bob refuses it (lower_amount) and keeps his best update",
        refusal is not None
        and refusal.code == ErrorCode.LOWER_AMOUNT
        and (payee.sequence, payee.paid_msat) == (best_sequence, best_paid),
    )
    alice.run(alice.manager.pay(cid, 5_000))
    link.deliver()
    n.check(
        f"the next real payment is update #{best_sequence + 1}, accepted",
        (payee.sequence, payee.paid_msat) == (best_sequence + 1, best_paid + 5_000)
        and len(bob.refusals) == 1,
    )


def _channel_transactions(ctx: DemoContext, channel: MicroChannel) -> list[Transaction]:
    """Every confirmed transaction since the funding that is the funding or spends its output."""
    found = []
    for height in range(channel.funding_height, ctx.tip + 1):
        block_hash = ctx.chain.block_hash(height)
        block = None if block_hash is None else ctx.chain.get_block(block_hash)
        if block is None:
            raise KitError(f"block {height} vanished")
        for tx in block.transactions:
            spends = any(txin.prevout == channel.funding_outpoint for txin in tx.inputs)
            if tx.txid == channel.funding.txid or spends:
                found.append(tx)
    return found


def _settle(ctx: DemoContext, link: MicroLink, channel: MicroChannel) -> Transaction | None:
    n = ctx.narrator
    alice, bob = link.payer, link.payee
    cid = channel.channel_id
    payee = bob.payee_channel(cid)
    terms = payee.terms
    if terms is None:
        raise KitError("the payee has no terms for an open channel")
    paid = payee.paid_msat
    n.scene("Bob settles: his best update goes on chain")
    n.say(f"Bob adds his signature to Alice's on update #{payee.sequence}; the {payee.sequence - 1:,}")
    n.say("updates before it are simply forgotten: each paid less than this one.")
    bob.run(bob.manager.settle(cid))
    broadcasts = bob.take_broadcasts()
    if len(broadcasts) != 1:
        raise KitError(f"Bob's node asked for {len(broadcasts)} broadcasts to settle, not one")
    settlement = broadcasts[0]
    if not ctx.submit(f"Bob's settlement: update #{payee.sequence} with both signatures", settlement):
        return None
    n.check("the settlement is in block " + str(ctx.tip + 1), ctx.mined_in([settlement]))
    link.feed_both()
    n.check(
        "both nodes see the channel settled",
        alice.payer_channel(cid).public_state is ChannelState.SETTLED
        and payee.public_state is ChannelState.SETTLED
        and len(alice.closed()) == len(bob.closed()) == 1,
    )

    n.scene("What the chain saw")
    on_chain = _channel_transactions(ctx, channel)
    n.say(f"{len(on_chain)} transactions of this channel are on chain, for {payee.sequence:,} payments:")
    for tx in on_chain:
        n.detail(f"{'funding' if tx.txid == channel.funding.txid else 'settlement'}  {tx.txid_hex}")
    n.check(
        "exactly two: the funding and the settlement",
        [tx.txid for tx in on_chain] == [channel.funding.txid, settlement.txid],
    )
    bob_sat = sum(out.value for out in settlement.outputs if out.script_pubkey == terms.payout_script)
    alice_sat = sum(out.value for out in settlement.outputs if out.script_pubkey == terms.refund_script)
    fee = ctx.fee_of(settlement)
    n.say(f"{bob_sat:>11,} sat  Bob's wallet: {paid:,} msat paid, to the satoshi below")
    n.say(f"{alice_sat:>11,} sat  Alice's wallet: the change")
    n.say(f"{fee:>11,} sat  the fee, fixed when the channel opened")
    n.check(
        "the final outputs are what was paid: Bob floor(paid / 1000) sat, Alice the rest less the fee",
        bob_sat == paid // 1000
        and alice_sat == CAPACITY_SAT - paid // 1000 - terms.update_fee_sat
        and fee == terms.update_fee_sat
        and bob.party.wallet.owns(terms.payout_script)
        and alice.party.wallet.owns(terms.refund_script),
    )
    ctx.tally(channel.funding_outpoint, CAPACITY_SAT, [settlement])
    return settlement


def _payee_vanishes(ctx: DemoContext, link: MicroLink, outcome: MicroOutcome) -> None:
    n = ctx.narrator
    alice, bob = link.payer, link.payee
    n.scene("A second channel: Bob vanishes, and Alice's refund waits for its height")
    n.say(f"Alice opens another channel the same way, its refund only {SHORT_REFUND_AFTER} blocks ahead.")
    channel = _open(ctx, link, b"refunded", SHORT_REFUND_AFTER, narrate=False)
    if channel is None:
        return
    outcome.refunded = channel
    cid = channel.channel_id
    for amount in SHORT_CHANNEL_PAYMENTS:
        alice.run(alice.manager.pay(cid, amount))
        link.deliver(narrate=False)
    paid = sum(SHORT_CHANNEL_PAYMENTS)
    payee = bob.payee_channel(cid)
    payer = alice.payer_channel(cid)
    n.say(f"Its refund is valid from height {channel.refund_height}; Alice pays Bob {paid:,} msat.")
    n.check(f"Bob holds update #{len(SHORT_CHANNEL_PAYMENTS)} for {paid:,} msat", payee.paid_msat == paid)
    settle_height = channel.refund_height - SAFETY_MARGIN
    n.say(f"Then Bob's node goes silent: it should settle at height {settle_height}, and does not.")
    ctx.mine_to(channel.refund_height - 1, "Bob sees none of them")
    link.feed(alice)
    n.check("Alice's node waits: the refund could not go into the next block", not alice.take_broadcasts())
    refund = payer.signed_refund()
    ctx.submit(
        f"the refund one block early (tip {ctx.tip}, nLockTime {refund.locktime})",
        refund,
        RejectReason.NON_FINAL,
    )
    ctx.mine(1)
    link.feed(alice)
    n.check(
        f"with the tip at {ctx.tip} = nLockTime, Alice's node broadcasts the refund by itself",
        [tx.txid for tx in alice.take_broadcasts()] == [refund.txid],
    )
    if not ctx.submit(f"the refund with the tip at {ctx.tip}", refund, show_txid=False):
        return
    outcome.refund = refund
    n.check("the refund confirmed", ctx.mined_in([refund]))
    link.feed(alice)
    n.check("Alice's node sees the channel refunded", payer.public_state is ChannelState.REFUNDED)
    ctx.tally(channel.funding_outpoint, CAPACITY_SAT, [refund])
    n.say(f"{refund.outputs[0].value:,} sat are back in Alice's wallet; Bob, who never settled, has nothing.")

    n.say("Bob's node comes back and catches up with the blocks it missed.")
    link.feed(bob)
    late = bob.take_broadcasts()
    n.check("it learns that the channel was refunded", payee.public_state is ChannelState.REFUNDED)
    if late:
        ctx.submit("Bob's settlement, too late", late[0], RejectReason.MISSING_OR_SPENT_INPUTS)
