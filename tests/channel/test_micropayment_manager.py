"""`MicropaymentManager`, the node's boundary, with channel states kept by `MicroChannelRepository`.

Two in-process "nodes", each a manager plus the small shell a node will be: persists go to a real
SQLite store before anything else runs, messages go to the other node as bytes, and a restart
rebuilds the manager from what the store holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.tx import Transaction
from ampere.channel.micropayment import (
    Broadcast,
    BuildFunding,
    CommandRejectedError,
    MalformedMessageError,
    MicropaymentManager,
    PayeeConfig,
    PaymentAccepted,
    Persist,
    Send,
    TxKind,
)
from ampere.channel.micropayment.manager import Forget, ManagerOutput, Refused, StoredChannel
from ampere.store import StaleRevisionError, Store, open_store
from ampere.store.micro import MicroChannelRepository

from .test_micropayment_support import CHAIN_HASH, CONFIG, FEERATE_PER_KW, REFUND_SCRIPT, TIP, fake_funding

CHANNEL_ID = bytes.fromhex("aa" * 32)
REFUND_AFTER = 100


class Keys:
    def __init__(self, base: int) -> None:
        self.base = base

    def funding_key(self, key_index: int) -> PrivateKey:
        return PrivateKey.from_int(self.base + key_index)


class Node:
    def __init__(self, name: str, store: Store, config: PayeeConfig = CONFIG) -> None:
        self.node_id = PrivateKey.from_int(0x1D + len(name) * 7 + ord(name[0])).public_key.data
        self.store = store
        self.repo = MicroChannelRepository(store)
        self.keys = Keys(0x10_000 * ord(name[0]))
        self.config = config
        self.manager = MicropaymentManager(self.keys, lambda peer: self.config, tip_height=TIP)
        self.outbox: list[tuple[bytes, bytes]] = []
        self.broadcasts: list[Broadcast] = []
        self.notices: list[object] = []

    def run(self, outputs: list[ManagerOutput]) -> None:
        for output in outputs:
            action = output.action
            if isinstance(action, Persist):
                stored = StoredChannel(output.channel_id, output.peer_id, action.revision, action.blob)
                self.repo.put(stored)  # durable before anything behind it runs
                self.run(self.manager.persisted(output.channel_id, action.revision))
            elif isinstance(action, Send):
                self.outbox.append((output.peer_id, action.data))
            elif isinstance(action, BuildFunding):
                self.run(self.manager.funding_built(output.channel_id, fake_funding(action)))
            elif isinstance(action, Broadcast):
                self.broadcasts.append(action)
            elif isinstance(action, Forget):
                self.repo.delete(action.channel_id)
                self.notices.append(action)
            else:
                self.notices.append(action)

    def restart(self) -> None:
        self.manager = MicropaymentManager(self.keys, lambda peer: self.config)
        self.outbox.clear()
        self.run(self.manager.restore(self.repo.load_all(), self.config))


def deliver(*nodes: Node) -> None:
    by_id = {node.node_id: node for node in nodes}
    while any(node.outbox for node in nodes):
        for node in nodes:
            pending, node.outbox = node.outbox, []
            for peer_id, data in pending:
                receiver = by_id[peer_id]
                receiver.run(receiver.manager.receive(node.node_id, data))


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    alice, bob = open_store(tmp_path / "alice.sqlite"), open_store(tmp_path / "bob.sqlite")
    yield alice, bob
    alice.close()
    bob.close()


def _open(alice: Node, bob: Node) -> Transaction:
    alice.run(
        alice.manager.open(
            bob.node_id, CHANNEL_ID, CHAIN_HASH, 200_000, REFUND_AFTER, REFUND_SCRIPT, FEERATE_PER_KW
        )
    )
    deliver(alice, bob)
    [funding] = [b.tx for b in alice.broadcasts if b.kind is TxKind.FUNDING]
    for node in (alice, bob):
        node.run(node.manager.block_connected(TIP + 1, [funding]))
    deliver(alice, bob)
    return funding


def test_open_pay_and_list(stores: tuple[Store, Store]) -> None:
    alice, bob = Node("alice", stores[0]), Node("bob", stores[1])
    _open(alice, bob)
    for amount in (1_000_000, 2_000_000, 3):
        alice.run(alice.manager.pay(CHANNEL_ID, amount))
        deliver(alice, bob)
    [payer_row] = [row.to_json() for row in alice.manager.list_channels()]
    [payee_row] = [row.to_json() for row in bob.manager.list_channels()]
    common = {
        "channel_id": CHANNEL_ID.hex(),
        "capacity_sat": 200_000,
        "paid_msat": 3_000_003,
        "state": "open",
        "refund_height": TIP + REFUND_AFTER,
    }
    assert payer_row == {**common, "peer_id": bob.node_id.hex(), "role": "payer"}
    assert payee_row == {**common, "peer_id": alice.node_id.hex(), "role": "payee"}
    acked = [n.paid_msat for n in alice.notices if isinstance(n, PaymentAccepted)]
    assert acked == [1_000_000, 3_000_000, 3_000_003]
    stored = alice.repo.get(CHANNEL_ID)
    assert stored is not None and stored.peer_id == bob.node_id


def test_both_nodes_restart_from_the_store_and_carry_on(stores: tuple[Store, Store]) -> None:
    alice, bob = Node("alice", stores[0]), Node("bob", stores[1])
    _open(alice, bob)
    alice.run(alice.manager.pay(CHANNEL_ID, 1_000_000))
    deliver(alice, bob)
    alice.restart()
    bob.restart()
    assert alice.manager.channel(CHANNEL_ID).sequence == bob.manager.channel(CHANNEL_ID).sequence == 1
    assert alice.manager.next_key_index == 1 and bob.manager.next_key_index == 1
    for node in (alice, bob):
        node.run(node.manager.block_connected(TIP + 2))
    bob.run(bob.manager.peer_connected(alice.node_id))
    alice.run(alice.manager.peer_connected(bob.node_id))
    deliver(alice, bob)
    alice.run(alice.manager.pay(CHANNEL_ID, 5))
    deliver(alice, bob)
    assert (bob.manager.channel(CHANNEL_ID).sequence, bob.manager.channel(CHANNEL_ID).paid_msat) == (
        2,
        1_000_005,
    )


def test_a_refused_proposal_is_forgotten_by_both(stores: tuple[Store, Store]) -> None:
    alice, bob = Node("alice", stores[0]), Node("bob", stores[1], replace(CONFIG, min_capacity_sat=500_000))
    alice.run(
        alice.manager.open(
            bob.node_id, CHANNEL_ID, CHAIN_HASH, 200_000, REFUND_AFTER, REFUND_SCRIPT, FEERATE_PER_KW
        )
    )
    deliver(alice, bob)
    for node in (alice, bob):
        assert Forget(CHANNEL_ID) in node.notices
        assert [n for n in node.notices if isinstance(n, Refused)]
        assert node.manager.list_channels() == []
        assert node.repo.load_all() == []


def test_messages_from_a_stranger_are_not_answered(stores: tuple[Store, Store]) -> None:
    alice, bob = Node("alice", stores[0]), Node("bob", stores[1])
    _open(alice, bob)
    alice.run(alice.manager.pay(CHANNEL_ID, 1_000))
    [(_, update)] = alice.outbox
    stranger = PrivateKey.from_int(99).public_key.data
    assert bob.manager.receive(stranger, update) == []
    with pytest.raises(MalformedMessageError):
        bob.manager.receive(alice.node_id, update[:-3])
    deliver(alice, bob)
    assert bob.manager.channel(CHANNEL_ID).paid_msat == 1_000


def test_refused_updates_are_answered_not_raised(stores: tuple[Store, Store]) -> None:
    alice, bob = Node("alice", stores[0]), Node("bob", stores[1])
    _open(alice, bob)
    alice.run(alice.manager.pay(CHANNEL_ID, 1_000))
    [(_, update)] = alice.outbox
    deliver(alice, bob)
    outputs = bob.manager.receive(alice.node_id, update)  # a replay: wrong sequence now
    assert [type(o.action) for o in outputs] == [Refused, Send]
    deliver(alice, bob)


def test_commands_on_unknown_channels_and_bad_opens_are_refused(stores: tuple[Store, Store]) -> None:
    alice = Node("alice", stores[0])
    with pytest.raises(CommandRejectedError, match="no micropayment channel"):
        alice.manager.pay(b"\x01" * 32, 1)
    with pytest.raises(CommandRejectedError, match="refund-after"):
        alice.manager.open(alice.node_id, CHANNEL_ID, CHAIN_HASH, 200_000, 0, REFUND_SCRIPT, 1000)
    with pytest.raises(CommandRejectedError, match="capacity"):
        alice.manager.open(alice.node_id, CHANNEL_ID, CHAIN_HASH, 0, 10, REFUND_SCRIPT, 1000)
    assert alice.manager.list_channels() == [] and alice.manager.next_key_index == 0


def test_repository_refuses_to_roll_a_channel_back(stores: tuple[Store, Store]) -> None:
    repo = MicroChannelRepository(stores[0])
    peer = PrivateKey.from_int(5).public_key.data
    repo.put(StoredChannel(CHANNEL_ID, peer, 3, b"{}"))
    with pytest.raises(StaleRevisionError):
        repo.put(StoredChannel(CHANNEL_ID, peer, 2, b"{}"))
    assert repo.get(CHANNEL_ID) == StoredChannel(CHANNEL_ID, peer, 3, b"{}")
    assert repo.delete(CHANNEL_ID) and repo.get(CHANNEL_ID) is None
    with pytest.raises(ValueError, match="peer_id"):
        repo.put(StoredChannel(CHANNEL_ID, b"\x02", 1, b"{}"))


def test_block_events_reach_every_channel(stores: tuple[Store, Store]) -> None:
    alice, bob = Node("alice", stores[0]), Node("bob", stores[1])
    funding = _open(alice, bob)
    alice.run(alice.manager.pay(CHANNEL_ID, 5_000_000))
    deliver(alice, bob)
    settle_height = TIP + REFUND_AFTER - CONFIG.safety_margin
    bob.run(bob.manager.block_connected(settle_height))
    [settlement] = [b.tx for b in bob.broadcasts if b.kind is TxKind.SETTLEMENT]
    assert settlement.inputs[0].prevout.txid == funding.txid
    for node in (alice, bob):
        node.run(node.manager.block_connected(settle_height + 1, [settlement]))
    assert [row.state for row in alice.manager.list_channels()] == ["settled"]
    assert [row.state for row in bob.manager.list_channels()] == ["settled"]
