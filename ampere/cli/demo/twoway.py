"""The two-way channel narrated: 张三 (Alice) and 李四 (Bob) fund 1 BTC each, Alice pays Bob 0.5 BTC.

Two `Channel`s of the real BOLT 2 core, one per node, exchange every message as wire bytes; the
demo decodes each one again to show it. A small shell carries out the actions as a node does:
it keeps each persisted state before anything behind it leaves (in memory here), asks the
opener's wallet for the funding transaction, sends broadcasts to the embedded chain and reports
the funding's depth. What the demo checks it reads from the wire and the chain, not only from
the channel's own state: the revealed secrets are matched against the points announced earlier.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.keys import pubkey_from_secret
from ampere.bitcoin.network import Network
from ampere.bitcoin.tx import Transaction, TxOut
from ampere.channel.signer import InMemorySigner, SignerEnforcementError
from ampere.channel.transactions import OutputKind, find_funding_output
from ampere.channel.twoway import (
    Action,
    AddHtlc,
    Broadcast,
    Channel,
    ChannelConfig,
    ChannelState,
    ChannelSummary,
    ChannelType,
    Error,
    Event,
    FulfillHtlc,
    FundingConfirmed,
    FundingTransactionBuilt,
    HtlcFulfilled,
    HtlcReceived,
    OpenChannelCommand,
    PersistState,
    Phase,
    RequestFundingTransaction,
    SendMessage,
    SignCommitment,
    parse_message,
    summarize,
)
from ampere.channel.twoway.common import Context, local_commitment, signed_local_commitment
from ampere.channel.twoway.messages import (
    AcceptChannel,
    ChannelMessage,
    ChannelReady,
    CommitmentSigned,
    FundingCreated,
    FundingSigned,
    OpenChannel,
    RevokeAndAck,
    UpdateAddHtlc,
    UpdateFulfillHtlc,
)
from ampere.cli.demo.channel_kit import KitError, Party
from ampere.cli.demo.context import DemoContext
from ampere.crypto.shachain import ShachainStore
from ampere.wire import Features, decode_message
from ampere.wire.features import Feature

CHAIN_HASH = Network.REGTEST.chain_hash
FUNDING_SAT = 200_000_000
PUSH_MSAT = 100_000_000_000  # "1 BTC each": Alice funds 2 BTC and gives Bob half of it at the opening
PAYMENT_MSAT = 50_000_000_000
MINIMUM_DEPTH = 3
# No routing yet: a direct payment still carries an onion of the fixed BOLT 4 size.
PLACEHOLDER_ONION = bytes(1366)
FEATURES = Features.of(
    optional=[
        Feature.DATA_LOSS_PROTECT,
        Feature.STATIC_REMOTEKEY,
        Feature.LARGE_CHANNEL,
        Feature.ANCHORS,
        Feature.SHUTDOWN_ANYSEGWIT,
        Feature.CHANNEL_TYPE,
    ]
)


def btc(msat: int) -> str:
    """An amount in BTC with integer arithmetic only: "0.5 BTC", "1.5 BTC", "0.00012345 BTC"."""
    sat = msat // 1000
    whole, fraction = divmod(sat, 100_000_000)
    digits = f"{fraction:08d}".rstrip("0") or "0"
    return f"{whole}.{digits} BTC"


@dataclass
class TwoWayNode:
    """One node's side of the channel and what its shell did with the actions."""

    party: Party
    channel: Channel
    signer_root: bytes  # the channel's key root: its on-chain signer derives the same keys
    outbox: list[bytes] = field(default_factory=list)
    broadcasts: list[Transaction] = field(default_factory=list)
    received: list[HtlcReceived] = field(default_factory=list)
    fulfilled: list[HtlcFulfilled] = field(default_factory=list)
    errors: list[Error] = field(default_factory=list)
    notices: list[Action] = field(default_factory=list)
    funding_request: RequestFundingTransaction | None = None
    durable_revision: int = 0
    # The newest durable state for each of our commitment numbers: the demo looks back at old ones.
    by_commitment: dict[int, ChannelState] = field(default_factory=dict)
    revocations_sent: int = 0

    @property
    def name(self) -> str:
        return self.party.name

    @property
    def state(self) -> ChannelState:
        return self.channel.state

    def handle(self, event: Event) -> None:
        self.run(self.channel.handle(event))

    def run(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, PersistState):
                if action.revision <= self.durable_revision:
                    raise KitError(f"{self.name}: state revision {action.revision} does not move forward")
                # A node writes the state here; nothing after it takes effect before that.
                self.durable_revision = action.revision
                if action.state.ledger is not None:
                    self.by_commitment[action.state.ledger.local_commitment_number] = action.state
            elif isinstance(action, SendMessage):
                self.outbox.append(action.to_bytes())
            elif isinstance(action, Broadcast):
                self.broadcasts.append(action.transaction)
            elif isinstance(action, RequestFundingTransaction):
                self.funding_request = action
            elif isinstance(action, HtlcReceived):
                self.received.append(action)
            elif isinstance(action, HtlcFulfilled):
                self.fulfilled.append(action)
            elif isinstance(action, Error):
                self.errors.append(action)
            else:
                self.notices.append(action)

    def summary(self) -> ChannelSummary:
        return summarize(self.state)

    def context(self) -> Context:
        return Context(self.channel.signer, self.channel.config, self.channel.feerate_estimate_per_kw)


class TwoWayLink:
    """Carries the bytes between the two nodes, narrating each message, and keeps what the wire
    revealed: every per-commitment point announced and every secret revealed, by sender and number."""

    def __init__(self, ctx: DemoContext, alice: TwoWayNode, bob: TwoWayNode) -> None:
        self.ctx = ctx
        self.alice = alice
        self.bob = bob
        self.points: dict[tuple[str, int], bytes] = {}
        self.secrets: dict[tuple[str, int], bytes] = {}
        self.delivered: list[str] = []

    def other(self, node: TwoWayNode) -> TwoWayNode:
        return self.bob if node is self.alice else self.alice

    def deliver(self) -> None:
        """Everything queued, each sender's messages in order, until both are quiet."""
        while self.alice.outbox or self.bob.outbox:
            for sender in (self.alice, self.bob):
                pending, sender.outbox = sender.outbox, []
                for data in pending:
                    self._deliver_one(sender, data)

    def _deliver_one(self, sender: TwoWayNode, data: bytes) -> None:
        receiver = self.other(sender)
        wire = decode_message(data)
        message = parse_message(wire)
        receiver.run(receiver.channel.receive(wire))
        self.delivered.append(type(message).__name__)
        name, detail = self._describe(sender, receiver, message)
        self.ctx.narrator.message(sender.name, receiver.name, name, detail)

    def _describe(self, sender: TwoWayNode, receiver: TwoWayNode, message: ChannelMessage) -> tuple[str, str]:
        """What the message says; called once the receiver has taken it, so its state is the new one."""
        if isinstance(message, OpenChannel):
            self.points[(sender.name, 0)] = message.first_per_commitment_point
            return "open_channel", (
                f"{message.funding_satoshis:,} sat, push {message.push_msat:,} msat, "
                f"to_self_delay {message.to_self_delay}, feerate {message.feerate_per_kw} sat/kw, "
                f"point #0 {_short(message.first_per_commitment_point)}"
            )
        if isinstance(message, AcceptChannel):
            self.points[(sender.name, 0)] = message.first_per_commitment_point
            return "accept_channel", (
                f"minimum_depth {message.minimum_depth}, to_self_delay {message.to_self_delay}, "
                f"reserve {message.channel_reserve_satoshis:,} sat, "
                f"point #0 {_short(message.first_per_commitment_point)}"
            )
        if isinstance(message, FundingCreated):
            return "funding_created", (
                f"funding {message.funding_txid[::-1].hex()[:16]}…:{message.funding_output_index}; "
                f"signs {receiver.name}'s commitment #0"
            )
        if isinstance(message, FundingSigned):
            return "funding_signed", f"signs {receiver.name}'s commitment #0: the funding may go out now"
        if isinstance(message, ChannelReady):
            self.points[(sender.name, 1)] = message.second_per_commitment_point
            return "channel_ready", f"point #1 {_short(message.second_per_commitment_point)}"
        if isinstance(message, UpdateAddHtlc):
            return "update_add_htlc", (
                f"id {message.id}, {btc(message.amount_msat)}, payment_hash "
                f"{_short(message.payment_hash)}, cltv_expiry {message.cltv_expiry}"
            )
        if isinstance(message, UpdateFulfillHtlc):
            preimage = _short(message.payment_preimage)
            return "update_fulfill_htlc", f"id {message.id}, payment_preimage {preimage}"
        if isinstance(message, CommitmentSigned):
            ledger = receiver.state.require_ledger()
            count = len(message.htlc_signature)
            return "commitment_signed", (
                f"signs {receiver.name}'s commitment #{ledger.local_commitment_number} "
                f"({count} HTLC signature{'' if count == 1 else 's'})"
            )
        if isinstance(message, RevokeAndAck):
            number = sender.revocations_sent
            sender.revocations_sent += 1
            self.secrets[(sender.name, number)] = message.per_commitment_secret
            self.points[(sender.name, number + 2)] = message.next_per_commitment_point
            return "revoke_and_ack", (
                f"revokes {sender.name}'s commitment #{number}: "
                f"secret {_short(message.per_commitment_secret)}, "
                f"next point #{number + 2} {_short(message.next_per_commitment_point)}"
            )
        return type(message).__name__, ""


def _short(data: bytes) -> str:
    return data.hex()[:16] + "…"


def make_node(
    ctx: DemoContext, party: Party, index: int, *, keep_signed_commitments: bool = False
) -> TwoWayNode:
    """`party`'s side of a new channel; `keep_signed_commitments` is `ampere node --developer`."""
    # One signer root per channel, from the party's seed, as a node derives it from its BIP39 seed.
    root = sha256(b"two-way channel signer" + party.channel_secrets(index).funding)
    config = ChannelConfig(
        to_self_delay=ctx.to_self_delay,
        minimum_depth=MINIMUM_DEPTH,
        keep_signed_commitments=keep_signed_commitments,
    )
    channel = Channel.new(
        InMemorySigner(root),
        chain_hash=CHAIN_HASH,
        local_features=FEATURES,
        remote_features=FEATURES,
        shutdown_script=party.wallet.new_script_pubkey(),
        config=config,
        feerate_estimate_per_kw=ctx.feerate_per_kw,
    )
    return TwoWayNode(party, channel, root)


@dataclass(frozen=True, slots=True)
class TwoWayOutcome:
    """What the chapter leaves behind, for the tests: both nodes, the wire's record, the balances."""

    link: TwoWayLink
    before: tuple[ChannelSummary, ChannelSummary]  # Alice's, Bob's
    after: tuple[ChannelSummary, ChannelSummary]


def two_way(ctx: DemoContext) -> None:
    """张三 (Alice) and 李四 (Bob) fund 1 BTC each; Alice pays Bob 0.5 BTC; old commitments revoked."""
    play_two_way(ctx)


def play_two_way(ctx: DemoContext) -> TwoWayOutcome | None:
    n = ctx.narrator
    n.chapter(f"A two-way channel: {ctx.alice.name} pays {ctx.bob.name} 0.5 BTC")
    index = ctx.channel_index()
    alice, bob = make_node(ctx, ctx.alice, index), make_node(ctx, ctx.bob, index)
    link = TwoWayLink(ctx, alice, bob)
    if not open_channel(ctx, link):
        return None
    _show_balances(ctx, link, "before the payment")
    before = (alice.summary(), bob.summary())
    pay_half_a_bitcoin(ctx, link)
    n.scene("Balances and commitment numbers after the payment")
    _show_balances(ctx, link, "after the payment")
    after = (alice.summary(), bob.summary())
    n.check(
        f"Alice {btc(before[0].local_balance_msat)} → {btc(after[0].local_balance_msat)}, "
        f"Bob {btc(before[1].local_balance_msat)} → {btc(after[1].local_balance_msat)}: "
        f"{btc(PAYMENT_MSAT)} moved, nothing created or lost",
        after[0].local_balance_msat == before[0].local_balance_msat - PAYMENT_MSAT
        and after[1].local_balance_msat == before[1].local_balance_msat + PAYMENT_MSAT,
    )
    _revoked(ctx, link)
    _current_commitments_are_valid(ctx, link)
    return TwoWayOutcome(link, before, after)


def open_channel(ctx: DemoContext, link: TwoWayLink) -> bool:
    """Alice opens the 2 BTC channel pushing 1 BTC to Bob; funded, mined and normal on both sides."""
    n = ctx.narrator
    alice, bob = link.alice, link.bob
    n.scene(f"{alice.name} and {bob.name} open a 2 BTC channel, 1 BTC each")
    n.say("Alice's wallet funds all 2 BTC and her open_channel pushes 1 BTC to Bob (push_msat), so each")
    n.say("starts with 1 BTC. Over 2^24 sat, the channel needs option_support_large_channel (bits 18/19).")
    alice_features, bob_features = alice.state.features
    n.check(
        "both nodes advertise large_channel",
        alice_features.has(Feature.LARGE_CHANNEL) and bob_features.has(Feature.LARGE_CHANNEL),
    )
    temporary_id = sha256(b"ampere demo: two-way temporary channel id")
    alice.handle(
        OpenChannelCommand(temporary_id, FUNDING_SAT, PUSH_MSAT, ctx.feerate_per_kw, ChannelType.ANCHORS)
    )
    link.deliver()
    request = alice.funding_request
    if request is None:
        raise KitError("Alice's channel did not ask for the funding transaction")
    alice.party.sync(ctx.chain)
    funding = alice.party.wallet.build_transaction(
        [TxOut(request.amount_sat, request.script_pubkey)], ctx.feerate_per_kw, ctx.tip
    )
    local, remote = alice.state.require_params()
    vout = find_funding_output(
        funding, local.basepoints.funding_pubkey, remote.basepoints.funding_pubkey, request.amount_sat
    )
    n.say(f"Alice's wallet builds and signs the funding transaction; its output {vout} pays the 2-of-2.")
    alice.handle(FundingTransactionBuilt(funding, vout))
    link.deliver()
    n.check(
        "Alice's node releases the funding only now that she holds Bob's signature of her commitment #0",
        alice.broadcasts == [funding],
    )
    if not ctx.submit(f"funding: {btc(FUNDING_SAT * 1000)} to the 2-of-2", funding):
        return False
    first = ctx.tip + 1
    n.check(f"the funding transaction is in block {first}", ctx.mined_in([funding]))
    scid = _short_channel_id(ctx, first, funding)
    ctx.mine(MINIMUM_DEPTH - 1, f"minimum_depth {MINIMUM_DEPTH}")
    depth = ctx.tip - first + 1
    for node in (alice, bob):
        node.handle(FundingConfirmed(funding, depth, scid))
    link.deliver()
    n.check(
        f"both channels are normal (short_channel_id {first}x{(scid >> 16) & 0xFFFFFF}x{vout})",
        alice.state.phase is Phase.NORMAL and bob.state.phase is Phase.NORMAL,
    )
    return alice.state.phase is Phase.NORMAL


def _short_channel_id(ctx: DemoContext, height: int, tx: Transaction) -> int:
    block_hash = ctx.chain.block_hash(height)
    block = None if block_hash is None else ctx.chain.get_block(block_hash)
    if block is None:
        raise KitError(f"block {height} vanished")
    position = [candidate.txid for candidate in block.transactions].index(tx.txid)
    vout = next(i for i, out in enumerate(tx.outputs) if out.value == FUNDING_SAT)
    return (height << 40) | (position << 16) | vout


def _show_balances(ctx: DemoContext, link: TwoWayLink, when: str) -> None:
    n = ctx.narrator
    n.say(f"Balances {when} (before the commitment fee and anchors, which the opener pays):")
    for node in (link.alice, link.bob):
        summary = node.summary()
        ledger = node.state.require_ledger()
        pending = sum(htlc.amount_msat for htlc in summary.pending_htlcs)
        n.say(
            f"  {node.name}: own {btc(summary.local_balance_msat)}, peer {btc(summary.remote_balance_msat)}"
            + (f", HTLCs {btc(pending)}" if pending else "")
            + f"; commitments: own #{ledger.local_commitment_number}, "
            f"{link.other(node).name}'s #{ledger.remote_commitment_number}"
        )
        n.check(
            f"{node.name}'s view adds up: own + peer + HTLCs = {btc(FUNDING_SAT * 1000)}",
            summary.local_balance_msat + summary.remote_balance_msat + pending == FUNDING_SAT * 1000,
        )
    a, b = link.alice.summary(), link.bob.summary()
    n.check(
        "both sides agree on both balances",
        (a.local_balance_msat, a.remote_balance_msat) == (b.remote_balance_msat, b.local_balance_msat),
    )


def pay_half_a_bitcoin(ctx: DemoContext, link: TwoWayLink) -> None:
    """Alice pays Bob 0.5 BTC with an HTLC: two rounds of the commitment dance."""
    n = ctx.narrator
    alice, bob = link.alice, link.bob
    preimage = sha256(b"ampere demo: the preimage of Bob's invoice for 0.5 BTC")
    payment_hash = sha256(preimage)
    cltv_expiry = ctx.tip + 40

    n.scene(f"Alice offers Bob an HTLC of {btc(PAYMENT_MSAT)}")
    n.say("Bob's invoice gave Alice the payment hash; only Bob knows its preimage.")
    n.say("First round: Alice adds the HTLC and signs Bob's next commitment; Bob revokes his old one and")
    n.say("signs Alice's next; Alice revokes hers. Each side stores its new state before it answers.")
    n.detail("its onion is an all-zero placeholder of the BOLT 4 size: the channel core only carries it")
    alice.handle(AddHtlc(PAYMENT_MSAT, payment_hash, cltv_expiry, PLACEHOLDER_ONION))
    alice.handle(SignCommitment())
    link.deliver()
    offered = bob.received[0] if bob.received else None
    n.check(
        f"the HTLC is irrevocably committed on both sides: Bob may now claim {btc(PAYMENT_MSAT)}",
        offered is not None and offered.amount_msat == PAYMENT_MSAT and offered.payment_hash == payment_hash,
    )
    if offered is None:
        return

    n.scene("Bob reveals the preimage: the HTLC is fulfilled")
    n.say("Second round: Bob removes the HTLC with its preimage and signs Alice's next commitment, with the")
    n.say("0.5 BTC now his; Alice revokes, signs Bob's next; Bob revokes.")
    bob.handle(FulfillHtlc(offered.htlc_id, preimage))
    bob.handle(SignCommitment())
    link.deliver()
    fulfilled = alice.fulfilled[0] if alice.fulfilled else None
    n.check(
        "Alice holds the preimage, her proof of payment: sha256(preimage) = payment_hash",
        fulfilled is not None and sha256(fulfilled.payment_preimage) == payment_hash,
    )
    n.check(
        "no error on either side, no HTLC left",
        not alice.errors
        and not bob.errors
        and not alice.summary().pending_htlcs
        and not bob.summary().pending_htlcs,
    )


def _revoked(ctx: DemoContext, link: TwoWayLink) -> None:
    n = ctx.narrator
    alice, bob = link.alice, link.bob
    n.scene("The old commitments are revoked")
    n.say("A revoke_and_ack reveals the secret behind the per-commitment point of the commitment it")
    n.say("revokes. The point was announced before (open/accept, channel_ready, an earlier revoke_and_ack):")
    for node in (alice, bob):
        peer = link.other(node)
        store = ShachainStore.from_bytes(peer.state.require_ledger().remote_secrets)
        current = node.state.require_ledger().local_commitment_number
        for number in range(current):
            secret = link.secrets.get((node.name, number))
            point = link.points.get((node.name, number))
            holds = (
                secret is not None
                and point is not None
                and pubkey_from_secret(secret) == point
                and store.secret_for_commitment(number) == secret
            )
            n.check(
                f"{node.name}'s commitment #{number} is revoked: secret × G = the point announced for it, "
                f"and {peer.name} keeps the secret",
                holds,
            )
    old_number = alice.state.require_ledger().local_commitment_number - 1
    old_state = alice.by_commitment.get(old_number)
    if old_state is None:
        raise KitError(f"Alice's state at commitment #{old_number} was never persisted")
    old = local_commitment(old_state, old_state.require_ledger(), alice.context())
    try:
        alice.channel.signer.sign_holder_commitment(old)
    except SignerEnforcementError as refusal:
        n.check(f"Alice's signer will not sign her revoked commitment #{old_number}: {refusal}", True)
    else:
        n.check(f"Alice's signer will not sign her revoked commitment #{old_number}", False)
    n.say("Were a revoked commitment broadcast anyway, the revealed secret lets the other side take all of")
    n.say("it at once with the revocation key: the 'penalty' chapter plays that on chain.")


def _current_commitments_are_valid(ctx: DemoContext, link: TwoWayLink) -> None:
    n = ctx.narrator
    n.scene("Either side could close now: each holds a valid commitment")
    names = {
        OutputKind.TO_LOCAL: "to_local: the owner after the delay, the peer at once with a revocation key",
        OutputKind.TO_REMOTE: "to_remote: the peer, after 1 block",
        OutputKind.LOCAL_ANCHOR: "anchor: the owner (fee bumping)",
        OutputKind.REMOTE_ANCHOR: "anchor: the peer (fee bumping)",
        OutputKind.OFFERED_HTLC: "HTLC offered by the owner",
        OutputKind.RECEIVED_HTLC: "HTLC offered by the peer",
    }
    for node in (link.alice, link.bob):
        ledger = node.state.require_ledger()
        number = ledger.local_commitment_number
        n.say(f"{node.name}'s commitment #{number}, signed by {link.other(node).name} and by {node.name}:")
        ctx.describe_commitment(local_commitment(node.state, ledger, node.context()), names.__getitem__)
        tx = signed_local_commitment(node.state, node.context())
        ctx.test_accept(f"{node.name}'s commitment #{number} (testmempoolaccept, not broadcast)", tx)
    n.say("The channel stays open; nothing of the payment touched the chain.")
