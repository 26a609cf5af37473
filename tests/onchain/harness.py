"""Two in-process twoway channels funded on the real embedded chain, and a shell for resolvers.

`open_on_chain` opens an Alice–Bob channel through every BOLT 2 message (tests/channel/twoway's
harness) with a real funding transaction, mined. `Shell` plays the node for one resolver: it
carries out its actions against the chain (every broadcast judged by the kernel), feeds it the
spends of what it watches block by block, and round-trips its state through bytes after every
event (a restart at every step).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.script import p2wpkh_script
from ampere.bitcoin.signing import sign_p2wpkh_input
from ampere.bitcoin.tx import OutPoint, Transaction, TxOut
from ampere.chain.embedded import EmbeddedChain
from ampere.chain.errors import BroadcastError, RejectReason
from ampere.channel.signer import InMemorySigner
from ampere.channel.twoway import (
    ChannelConfig,
    ChannelType,
    FundingConfirmed,
    FundingTransactionBuilt,
    OpenChannelCommand,
    deserialize_state,
)
from ampere.channel.twoway.actions import CommitmentRevoked
from ampere.channel.twoway.common import Context, signed_local_commitment
from ampere.channel.twoway.state import ChannelState, Phase
from ampere.onchain.classify import Classification, RevokedCommitment, classify
from ampere.onchain.events import (
    BlockConnected,
    BlockDisconnected,
    BroadcastTx,
    BumpCommitment,
    FundAndBroadcast,
    PreimageFound,
    Resolved,
    ResolverAction,
    ResolverEvent,
    SpendConfirmed,
    WatchOutpoint,
)
from ampere.onchain.fees import anchor_cpfp_tx, fund_second_stage, sign_anchor_input
from ampere.onchain.keys import InMemoryOnchainSigner
from ampere.onchain.resolver import ChannelResolver, ResolverContext
from tests.chain.helpers import SINK_SCRIPT, Coin, fund_p2wpkh, spend_p2wpkh
from tests.channel.twoway.harness import Pair, Peer, make_peer

DELAY = 12
FEERATE = 2500
SCID = (500 << 40) | (1 << 16)
FUNDING_FEE_SAT = 5_000
_IGNORED = (RejectReason.ALREADY_IN_MEMPOOL, RejectReason.ALREADY_IN_CHAIN)


def wallet_script(name: str) -> bytes:
    """A P2WPKH of the party's wallet: where its resolver sends what it claims."""
    secret = 1 + int.from_bytes(hashlib.sha256(b"wallet " + name.encode()).digest()[:16], "big")
    return p2wpkh_script(PrivateKey.from_int(secret).public_key.data)


def open_on_chain(
    chain: EmbeddedChain,
    funding_sat: int,
    push_msat: int,
    channel_type: ChannelType = ChannelType.STATIC_REMOTEKEY,
    delay: int = DELAY,
) -> Pair:
    """Alice opens `funding_sat` to Bob with `push_msat`; the funding is mined and 3 deep."""
    config = ChannelConfig(to_self_delay=delay, minimum_depth=3)
    pair = Pair(make_peer("alice", config), make_peer("bob", config))
    alice, bob = pair.alice, pair.bob
    alice.handle(
        OpenChannelCommand(hashlib.sha256(b"temp").digest(), funding_sat, push_msat, FEERATE, channel_type)
    )
    pair.deliver_one(alice)  # open_channel
    pair.deliver_one(bob)  # accept_channel
    assert alice.funding_tx is not None  # the harness's stand-in carries the funding script
    script = alice.funding_tx.outputs[1].script_pubkey
    key = PrivateKey.from_int(0xA11CE)
    coin = fund_p2wpkh(chain, key, funding_sat + FUNDING_FEE_SAT)
    funding = spend_p2wpkh([coin], [TxOut(funding_sat, script)], fee=FUNDING_FEE_SAT)
    alice.funding_tx = funding
    alice.handle(FundingTransactionBuilt(funding, 0))
    pair.deliver_one(alice)  # funding_created
    pair.deliver_one(bob)  # funding_signed
    assert alice.broadcasts == [funding]
    chain.submit(funding)
    chain.generate(3, SINK_SCRIPT)
    for peer in (alice, bob):
        peer.handle(FundingConfirmed(funding, 3, SCID))
    pair.flush()
    assert alice.state.phase is Phase.NORMAL and bob.state.phase is Phase.NORMAL
    return pair


def revocation_log(peer: Peer) -> dict[int, CommitmentRevoked]:
    """The records the peer's channel emitted, by commitment number (what the node stores)."""
    return {
        action.commitment_number: action for action in peer.others if isinstance(action, CommitmentRevoked)
    }


def old_commitment(peer: Peer, state_bytes: bytes) -> Transaction:
    """The peer's own commitment of an old persisted state, fully signed: what a cheater (or
    `dev-cheat`) broadcasts. A fresh signer has no memory of the revocation."""
    state = deserialize_state(state_bytes)
    return signed_local_commitment(state, Context(InMemorySigner(peer.root), ChannelConfig()))


def classify_for(peer: Peer, tx: Transaction, log: dict[int, CommitmentRevoked]) -> Classification:
    signer = InMemoryOnchainSigner(peer.root)
    return classify(peer.state, tx, signer.per_commitment_point, log.get)


@dataclass
class Shell:
    """The node's part for one resolver, on the embedded chain."""

    chain: EmbeddedChain
    resolver: ChannelResolver
    signer: InMemoryOnchainSigner
    feerate: int = FEERATE
    watched: set[OutPoint] = field(default_factory=set)
    broadcasts: list[tuple[str, Transaction]] = field(default_factory=list)
    rejected: list[tuple[str, BroadcastError]] = field(default_factory=list)
    fund_requests: list[FundAndBroadcast] = field(default_factory=list)
    preimages: list[PreimageFound] = field(default_factory=list)
    fee_coins: list[Coin] = field(default_factory=list)
    bump_requests: list[BumpCommitment] = field(default_factory=list)
    resolved: bool = False
    snapshots: int = 0

    @classmethod
    def start(
        cls,
        chain: EmbeddedChain,
        peer: Peer,
        state: ChannelState,
        tx: Transaction,
        classification: Classification,
    ) -> Shell:
        resolver, actions = ChannelResolver.create(
            state, classification, tx, wallet_script(peer.name), tip=chain.tip_height()
        )
        shell = cls(chain, resolver, InMemoryOnchainSigner(peer.root))
        shell._carry_out(actions)
        return shell

    def handle(self, event: ResolverEvent) -> list[ResolverAction]:
        actions = self.resolver.handle(event, ResolverContext(self.signer, self.feerate))
        self._round_trip()
        self._carry_out(actions)
        return actions

    def _round_trip(self) -> None:
        data = self.resolver.to_bytes()
        restored = ChannelResolver.from_bytes(data)
        assert restored.to_bytes() == data, "resolver state does not round-trip"
        self.resolver = restored
        self.snapshots += 1

    def _carry_out(self, actions: list[ResolverAction]) -> None:
        for action in actions:
            if isinstance(action, BroadcastTx):
                self.broadcasts.append((action.label, action.tx))
                try:
                    self.chain.submit(action.tx)
                except BroadcastError as error:
                    if error.reason not in _IGNORED:
                        self.rejected.append((action.label, error))
            elif isinstance(action, BumpCommitment):
                self.bump_requests.append(action)
                if self.fee_coins:
                    self._cpfp(action, self.fee_coins.pop(0))
            elif isinstance(action, WatchOutpoint):
                self.watched.add(action.outpoint)
            elif isinstance(action, FundAndBroadcast):
                self.fund_requests.append(action)
                if self.fee_coins:
                    self._fund(action, self.fee_coins.pop(0))
            elif isinstance(action, PreimageFound):
                self.preimages.append(action)
            elif isinstance(action, Resolved):
                self.resolved = True

    def _fund(self, request: FundAndBroadcast, coin: Coin) -> None:
        """The node's wallet pays for a zero-fee HTLC transaction (anchor channels)."""
        change = self.resolver.destination
        tx = fund_second_stage(request.stage, request.preimage, coin, change, self.feerate, self.signer)
        tx = sign_p2wpkh_input(tx, 1, coin.key, coin.value)
        self._carry_out([BroadcastTx(tx, request.label)])

    def _cpfp(self, request: BumpCommitment, coin: Coin) -> None:
        """The node's wallet pays for the commitment through our anchor."""
        child = anchor_cpfp_tx(
            request.anchor.outpoint,
            coin,
            self.resolver.destination,
            request.commitment_weight,
            request.commitment_fee_sat,
            request.feerate_per_kw,
        )
        child = sign_p2wpkh_input(
            sign_anchor_input(child, request.anchor, self.signer), 1, coin.key, coin.value
        )
        self._carry_out([BroadcastTx(child, "anchor CPFP")])

    def block(self, height: int) -> None:
        """Feed the block at `height`: the spends it confirms, then the block itself."""
        block_hash = self.chain.block_hash(height)
        assert block_hash is not None
        block = self.chain.get_block(block_hash)
        assert block is not None
        closing = self.resolver.closing_tx.txid
        for tx in block.transactions:
            if tx.txid == closing or any(txin.prevout in self.watched for txin in tx.inputs):
                self.handle(SpendConfirmed(tx, height))
        self.handle(BlockConnected(height))

    def disconnect(self, height: int) -> None:
        self.handle(BlockDisconnected(height))


class Chain:
    """Mines and feeds every shell each new block."""

    def __init__(self, chain: EmbeddedChain, *shells: Shell) -> None:
        self.chain = chain
        self.shells = list(shells)

    def mine(self, count: int = 1) -> int:
        for _ in range(count):
            self.chain.generate(1, SINK_SCRIPT)
            height = self.chain.tip_height()
            for shell in self.shells:
                shell.block(height)
        return self.chain.tip_height()

    def mine_to(self, height: int) -> None:
        assert height >= self.chain.tip_height()
        self.mine(height - self.chain.tip_height())


def confirmed_height(chain: EmbeddedChain, txid: bytes) -> int | None:
    return chain.tx_status(txid).block_height


def value_at(chain: EmbeddedChain, script: bytes) -> int:
    """Confirmed, unspent value paid to `script`."""
    return sum(utxo.output.value for utxo in chain.utxos_for_script(script) if utxo.height is not None)


def punish(chain: EmbeddedChain, pair: Pair, alice_state: bytes) -> tuple[Shell, Transaction, int]:
    """Alice broadcasts her commitment of the old persisted `alice_state` (revoked), it is mined, and
    Bob's resolver starts on it with his revocation log and handles that block. Returns his shell, the
    cheat and its height."""
    cheat = old_commitment(pair.alice, alice_state)
    chain.submit(cheat)
    chain.generate(1, SINK_SCRIPT)
    height = chain.tip_height()
    classification = classify_for(pair.bob, cheat, revocation_log(pair.bob))
    assert isinstance(classification, RevokedCommitment)
    shell = Shell.start(chain, pair.bob, pair.bob.state, cheat, classification)
    shell.block(height)
    return shell, cheat, height
