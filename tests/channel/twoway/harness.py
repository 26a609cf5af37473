"""Two channels (Alice and Bob) wired in-process; every message goes through wire bytes.

Each `Peer` plays the shell: it carries out actions in order, checks the persist-before-send
contract on every action list, round-trips every persisted state through its bytes, and keeps
the last durable bytes so a test can "crash" it and restore from them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ampere.bitcoin.network import Network
from ampere.bitcoin.script import p2wpkh_script
from ampere.bitcoin.tx import OutPoint, Transaction, TxIn, TxOut
from ampere.channel.signer import InMemorySigner
from ampere.channel.twoway import (
    Action,
    AddHtlc,
    Broadcast,
    Channel,
    ChannelConfig,
    ChannelState,
    ChannelType,
    Disconnected,
    Error,
    Event,
    FulfillHtlc,
    FundingConfirmed,
    FundingTransactionBuilt,
    HtlcFailed,
    HtlcFulfilled,
    HtlcReceived,
    OpenChannelCommand,
    PersistState,
    Reconnected,
    RequestFundingTransaction,
    SendMessage,
    SignCommitment,
    deserialize_state,
    pending_incoming_htlcs,
    serialize_state,
)
from ampere.channel.twoway.ledger import View, build_view_commitment, snapshot
from ampere.channel.twoway.state import Phase
from ampere.wire import Features, decode_message
from ampere.wire.features import Feature

CHAIN_HASH = Network.REGTEST.chain_hash
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
ONION = bytes(1366)
FEERATE = 2500
SCID = (500 << 40) | (1 << 16)


def preimage_for(n: int) -> bytes:
    return hashlib.sha256(b"preimage" + n.to_bytes(8, "big")).digest()


def payment_hash(preimage: bytes) -> bytes:
    return hashlib.sha256(preimage).digest()


def check_actions(before: ChannelState, after: ChannelState, actions: list[Action]) -> None:
    """The persist-before-send contract, on one action list."""
    persists = [i for i, action in enumerate(actions) if isinstance(action, PersistState)]
    if after != before:
        assert persists == [0], f"state changed without a leading PersistState: {actions}"
        persist = actions[0]
        assert isinstance(persist, PersistState)
        assert persist.state == after and persist.revision == after.revision
        assert after.revision == before.revision + 1
    else:
        assert not persists, "PersistState without a state change"


def check_conservation(state: ChannelState) -> None:
    """local + remote + pending HTLCs == capacity, in every commitment view, never negative."""
    ledger = state.ledger
    if ledger is None:
        return
    capacity = state.funding_sat * 1000
    for view in View:
        snap = snapshot(ledger, view)
        assert snap.local_msat >= 0 and snap.remote_msat >= 0, (view, snap)
        assert snap.local_msat + snap.remote_msat + snap.htlc_total_msat == capacity, view
    # Settled balances still count every HTLC of the table at its offerer.
    assert ledger.local_balance_msat + ledger.remote_balance_msat == capacity


@dataclass
class Peer:
    name: str
    root: bytes
    channel: Channel
    persisted: bytes | None = None
    history: list[bytes] = field(default_factory=list)
    last_sent: int = 0
    last_persisted: bool = False
    outbox: list[bytes] = field(default_factory=list)
    broadcasts: list[Transaction] = field(default_factory=list)
    received: list[HtlcReceived] = field(default_factory=list)
    fulfilled: list[HtlcFulfilled] = field(default_factory=list)
    failed: list[HtlcFailed] = field(default_factory=list)
    errors: list[Error] = field(default_factory=list)
    others: list[Action] = field(default_factory=list)
    funding_tx: Transaction | None = None

    @property
    def state(self) -> ChannelState:
        return self.channel.state

    def handle(self, event: Event) -> list[Action]:
        before = self.channel.state
        actions = self.channel.handle(event)
        return self._carry_out(before, actions)

    def receive(self, data: bytes) -> list[Action]:
        before = self.channel.state
        actions = self.channel.receive(decode_message(data))
        return self._carry_out(before, actions)

    def _carry_out(self, before: ChannelState, actions: list[Action]) -> list[Action]:
        check_actions(before, self.channel.state, actions)
        check_conservation(self.channel.state)
        self.last_sent = sum(1 for action in actions if isinstance(action, SendMessage))
        self.last_persisted = any(isinstance(action, PersistState) for action in actions)
        for action in actions:
            if isinstance(action, PersistState):
                data = action.data
                assert deserialize_state(data) == action.state, "persisted state does not round-trip"
                self.persisted = data
                self.history.append(data)
            elif isinstance(action, SendMessage):
                self.outbox.append(action.to_bytes())
            elif isinstance(action, Broadcast):
                self.broadcasts.append(action.transaction)
            elif isinstance(action, HtlcReceived):
                self.received.append(action)
            elif isinstance(action, HtlcFulfilled):
                self.fulfilled.append(action)
            elif isinstance(action, HtlcFailed):
                self.failed.append(action)
            elif isinstance(action, Error):
                self.errors.append(action)
            elif isinstance(action, RequestFundingTransaction):
                self.funding_tx = funding_transaction(action.script_pubkey, action.amount_sat)
            else:
                self.others.append(action)
        return actions

    def crash_and_restore(self, *, before_last_persist: bool = False, data: bytes | None = None) -> None:
        """Lose everything not persisted: the channel comes back from the last durable bytes.

        `before_last_persist`: the crash hit while the newest state was being written, so it
        never became durable and the messages that waited for it were never sent. `data`:
        restore from these bytes instead (an old backup)."""
        assert self.persisted is not None
        if before_last_persist:
            assert self.last_persisted and len(self.history) >= 2
            assert len(self.outbox) >= self.last_sent, "those messages already left"
            del self.outbox[len(self.outbox) - self.last_sent :]
            self.history.pop()
            self.persisted = self.history[-1]
        if data is not None:
            self.persisted = data
        signer = InMemorySigner(self.root)
        config, estimate = self.channel.config, self.channel.feerate_estimate_per_kw
        self.channel = Channel.restore(self.persisted, signer, config, estimate)
        # The node's bookkeeping: what it still has to settle comes from the channel itself.
        self.received = list(pending_incoming_htlcs(self.channel.state))


def funding_transaction(script_pubkey: bytes, amount_sat: int) -> Transaction:
    """A stand-in for the wallet: one segwit input (its witness only has to be present)."""
    source = OutPoint(hashlib.sha256(script_pubkey).digest(), 0)
    change = TxOut(50_000, p2wpkh_script(bytes([2]) + bytes(32)))
    return Transaction(
        version=2,
        inputs=(TxIn(source, b"", 0xFFFFFFFD, (b"\x01" * 71, bytes([2]) + bytes(32))),),
        outputs=(change, TxOut(amount_sat, script_pubkey)),
    )


def make_peer(
    name: str,
    config: ChannelConfig | None = None,
    shutdown_script: bytes | None = None,
    features: Features = FEATURES,
) -> Peer:
    root = hashlib.sha256(name.encode()).digest()
    script = shutdown_script or p2wpkh_script(bytes([3]) + hashlib.sha256(b"wallet" + name.encode()).digest())
    channel = Channel.new(
        InMemorySigner(root),
        chain_hash=CHAIN_HASH,
        local_features=features,
        remote_features=features,
        shutdown_script=script,
        config=config,
        feerate_estimate_per_kw=FEERATE,
    )
    return Peer(name, root, channel)


@dataclass
class Pair:
    alice: Peer
    bob: Peer
    payments: int = 0
    preimages: dict[bytes, bytes] = field(default_factory=dict)

    def other(self, peer: Peer) -> Peer:
        return self.bob if peer is self.alice else self.alice

    def deliver_one(self, sender: Peer) -> list[Action]:
        data = sender.outbox.pop(0)
        return self.other(sender).receive(data)

    def flush(self, *, fulfill: bool = True, limit: int = 100_000) -> None:
        """Deliver everything in both directions until quiet; payees fulfil what they receive."""
        for _ in range(limit):
            if fulfill:
                self.fulfill_received()
            if self.alice.outbox:
                self.deliver_one(self.alice)
            elif self.bob.outbox:
                self.deliver_one(self.bob)
            else:
                if fulfill and (self._pending_fulfills(self.alice) or self._pending_fulfills(self.bob)):
                    continue
                return
        raise AssertionError("message exchange did not settle")

    def _pending_fulfills(self, peer: Peer) -> bool:
        return bool(peer.received)

    def fulfill_received(self) -> None:
        for peer in (self.alice, self.bob):
            while peer.received:
                htlc = peer.received.pop(0)
                peer.handle(FulfillHtlc(htlc.htlc_id, self.preimages[htlc.payment_hash]))
                peer.handle(SignCommitment())

    def pay(
        self, payer: Peer, amount_msat: int, *, sign: bool = True, cltv_expiry: int = 600
    ) -> list[Action]:
        preimage = preimage_for(self.payments)
        self.payments += 1
        self.preimages[payment_hash(preimage)] = preimage
        actions = payer.handle(AddHtlc(amount_msat, payment_hash(preimage), cltv_expiry, ONION))
        if sign:
            payer.handle(SignCommitment())
        return actions

    def disconnect(self) -> None:
        for peer in (self.alice, self.bob):
            peer.outbox.clear()
            peer.handle(Disconnected())

    def reconnect(self) -> None:
        for peer in (self.alice, self.bob):
            peer.handle(Reconnected())

    def assert_agree(self) -> None:
        """Quiescent: both sides hold the same two commitments, byte for byte."""
        a, b = self.alice.state, self.bob.state
        la, lb = a.ledger, b.ledger
        assert la is not None and lb is not None
        assert la.local_commitment_number == lb.remote_commitment_number
        assert la.remote_commitment_number == lb.local_commitment_number
        for ours, theirs, owner in ((a, b, self.alice), (b, a, self.bob)):
            ol, tl = ours.ledger, theirs.ledger
            assert ol is not None and tl is not None
            mine = snapshot(ol, View.LOCAL)
            seen = snapshot(tl, View.REMOTE)
            assert (mine.local_msat, mine.remote_msat) == (seen.remote_msat, seen.local_msat)
            assert {(e.offered, e.htlc_id) for e in mine.htlcs} == {
                (not e.offered, e.htlc_id) for e in seen.htlcs
            }
            point = owner.channel.signer.per_commitment_point(ol.local_commitment_number)
            assert point == tl.remote_point
            local_tx = build_view_commitment(ours, mine, ol.local_commitment_number, point)
            remote_tx = build_view_commitment(theirs, seen, tl.remote_commitment_number, tl.remote_point)
            assert local_tx.tx.serialize() == remote_tx.tx.serialize()


def open_pair(
    channel_type: ChannelType = ChannelType.STATIC_REMOTEKEY,
    funding_sat: int = 1_000_000,
    push_msat: int = 0,
    *,
    alice_config: ChannelConfig | None = None,
    bob_config: ChannelConfig | None = None,
    feerate: int = FEERATE,
    features: Features = FEATURES,
) -> Pair:
    pair = Pair(
        make_peer("alice", alice_config, features=features), make_peer("bob", bob_config, features=features)
    )
    alice, bob = pair.alice, pair.bob
    alice.handle(
        OpenChannelCommand(hashlib.sha256(b"temp").digest(), funding_sat, push_msat, feerate, channel_type)
    )
    pair.deliver_one(alice)  # open_channel
    pair.deliver_one(bob)  # accept_channel
    assert alice.funding_tx is not None
    alice.handle(FundingTransactionBuilt(alice.funding_tx, 1))
    pair.deliver_one(alice)  # funding_created
    pair.deliver_one(bob)  # funding_signed
    assert alice.broadcasts == [alice.funding_tx]
    for peer in (alice, bob):
        peer.handle(FundingConfirmed(alice.funding_tx, 3, SCID))
    pair.flush()
    assert alice.state.phase is Phase.NORMAL and bob.state.phase is Phase.NORMAL
    return pair


def state_bytes(peer: Peer) -> bytes:
    return serialize_state(peer.state)
