"""Two `ampere node` processes on one `ampere chain`: peers over real TCP, and coins between their wallets.

This is also the transport issue's acceptance: the nodes connect, exchange `init` and pings, and
`listpeers` on each side shows the other with the negotiated features.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ampere.wire.features import Feature, Features
from tests.e2e.harness import ChainProcess, NodeProcess, start_chain, start_node, stop_quietly, wait_for


@dataclass
class Network:
    chain: ChainProcess
    alice: NodeProcess
    bob: NodeProcess


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    root = tmp_path_factory.mktemp("two")
    chain = start_chain(root / "chain")
    started: list[NodeProcess] = []
    try:
        for name in ("alice", "bob"):
            started.append(start_node(root / name, *chain.node_args()))
        net = Network(chain, *started)
        yield net
        started += [net.alice, net.bob]  # tests may have replaced a process
    finally:
        for node in started:
            stop_quietly(node)
        chain.stop()


def _peer(node: NodeProcess, node_id: str) -> dict[str, Any] | None:
    for peer in node.rpc("listpeers")["peers"]:
        if peer["id"] == node_id:
            return dict(peer)
    return None


def _connected(node: NodeProcess, node_id: str) -> dict[str, Any] | None:
    peer = _peer(node, node_id)
    return peer if peer is not None and peer["connected"] else None


def test_nodes_connect_and_list_each_other(network: Network) -> None:
    alice, bob = network.alice, network.bob
    alice_id, bob_id = alice.getinfo()["id"], bob.getinfo()["id"]
    target = f"{bob_id}@{bob.getinfo()['listen'][0]}"
    connected = alice.cli_json("connect", target)
    assert connected["id"] == bob_id and connected["connected"] is True

    on_alice = wait_for(lambda: _connected(alice, bob_id), what="alice sees bob")
    on_bob = wait_for(lambda: _connected(bob, alice_id), what="bob sees alice")
    for peer in (on_alice, on_bob):
        features = Features.from_bytes(bytes.fromhex(peer["features"]))
        assert features.has(Feature.STATIC_REMOTEKEY)
        assert "static_remotekey" in " ".join(peer["negotiated_features"]).lower()
    assert on_alice["address"] == target.split("@")[1]
    assert alice.getinfo()["num_peers"] == 1
    assert bob.getinfo()["num_peers"] == 1

    pong = alice.cli_json("ping", bob_id, "--len", "64")
    assert pong["totlen"] == 64 and pong["round_trip_us"] > 0
    assert bob.rpc("ping", [alice_id])["round_trip_us"] > 0

    table = bob.cli("listpeers").stdout
    assert alice_id in table


def test_persistent_peer_is_redialed_after_restart(network: Network) -> None:
    chain, alice, bob = network.chain, network.alice, network.bob
    bob_id = bob.getinfo()["id"]
    if _connected(alice, bob_id) is None:
        alice.rpc("connect", [f"{bob_id}@{bob.getinfo()['listen'][0]}"])
    alice.kill9()
    restarted = start_node(alice.datadir, *chain.node_args())
    try:
        peer = wait_for(lambda: _connected(restarted, bob_id), timeout=60, what="alice redials bob")
        assert peer["persistent"] is True
        restarted.rpc("disconnect", [bob_id])
        assert _peer(restarted, bob_id) is None
        alice_id = restarted.getinfo()["id"]
        wait_for(lambda: _connected(bob, alice_id) is None, what="bob sees alice go")
    finally:
        assert restarted.stop() == 0
    again = start_node(alice.datadir, *chain.node_args())
    try:
        assert again.getinfo()["num_peers"] == 0
        assert _peer(again, bob_id) is None
    finally:
        stop_quietly(again)
    network.alice = start_node(alice.datadir, *chain.node_args())


def test_coins_move_between_the_wallets(network: Network) -> None:
    alice, bob = network.alice, network.bob
    alice.rpc("generate", [101])
    bob_address = bob.rpc("newaddress")["address"]
    sent = alice.rpc("withdraw", {"address": bob_address, "amount": 250_000, "feerate": 2})

    def bob_sees(status: str) -> dict[str, Any] | None:
        for output in bob.rpc("listfunds")["outputs"]:
            if output["txid"] == sent["txid"] and output["status"] == status:
                return dict(output)
        return None

    unconfirmed = wait_for(lambda: bob_sees("unconfirmed"), what="bob sees the payment in the mempool")
    assert unconfirmed["amount_sat"] == 250_000 and unconfirmed["address"] == bob_address
    height = alice.rpc("generate", [1])["blockheight"]
    confirmed = wait_for(lambda: bob_sees("confirmed"), what="bob sees the payment confirmed")
    assert confirmed["blockheight"] == height
    wait_for(lambda: bob.getinfo()["blockheight"] == height, what="bob follows the chain")
