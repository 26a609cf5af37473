"""Two `ampere node` processes on one `ampere chain`: two-way channels through the CLI and the RPC.

Open (with a push, with anchors, and a 2 BTC large channel), confirm, see mirrored balances on both
sides, close cooperatively and find each balance, less the closing fee, in the wallets on chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.harness import (
    ChainProcess,
    NodeProcess,
    channel_in_state,
    channel_row,
    start_chain,
    start_node,
    stop_quietly,
    wait_for,
)


@dataclass
class Network:
    chain: ChainProcess
    alice: NodeProcess
    bob: NodeProcess
    alice_id: str
    bob_id: str


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    root = tmp_path_factory.mktemp("channels")
    chain = start_chain(root / "chain")
    started: list[NodeProcess] = []
    try:
        for name in ("alice", "bob"):
            started.append(start_node(root / name, *chain.node_args()))
        alice, bob = started
        alice_id, bob_id = alice.getinfo()["id"], bob.getinfo()["id"]
        alice.rpc("generate", [101])
        alice.rpc("connect", [f"{bob_id}@{bob.getinfo()['listen'][0]}"])
        wait_for(lambda: bob.getinfo()["num_peers"] == 1, what="bob sees alice")
        yield Network(chain, alice, bob, alice_id, bob_id)
    finally:
        for node in started:
            stop_quietly(node)
        chain.stop()


def _conserved(channel: dict[str, Any]) -> None:
    pending = sum(htlc["amount_msat"] for htlc in channel["pending_htlcs"])
    total = channel["local_balance_msat"] + channel["remote_balance_msat"] + pending
    assert total == channel["capacity_sat"] * 1000


def _open_and_confirm(net: Network, *args: str) -> tuple[dict[str, Any], dict[str, Any]]:
    opened = net.alice.cli_json("openchannel", net.bob_id, *args)
    channel_id = opened["channel_id"]
    assert len(channel_id) == 64 and len(opened["funding_txid"]) == 64
    wait_for(lambda: channel_row(net.bob, channel_id), what="bob sees the channel")
    assert channel_in_state(net.alice, channel_id, "opening")
    net.alice.rpc("generate", [3])
    on_alice = wait_for(lambda: channel_in_state(net.alice, channel_id, "normal"), what="alice: normal")
    on_bob = wait_for(lambda: channel_in_state(net.bob, channel_id, "normal"), what="bob: normal")
    for channel in (on_alice, on_bob):
        _conserved(channel)
        assert channel["short_channel_id"] is not None
        assert channel["funding_outpoint"].startswith(opened["funding_txid"])
    assert on_alice["peer_id"] == net.bob_id and on_bob["peer_id"] == net.alice_id
    assert on_alice["local_balance_msat"] == on_bob["remote_balance_msat"]
    assert on_alice["remote_balance_msat"] == on_bob["local_balance_msat"]
    assert on_alice["short_channel_id"] == on_bob["short_channel_id"]
    return on_alice, on_bob


def test_open_with_push_then_close(network: Network) -> None:
    alice, bob = network.alice, network.bob
    on_alice, on_bob = _open_and_confirm(network, "300000", "--push-msat", "50000000")
    assert on_alice["capacity_sat"] == 300_000 and on_alice["channel_type"] == "static_remotekey"
    assert on_alice["local_balance_msat"] == 250_000_000 and on_bob["local_balance_msat"] == 50_000_000
    channel_id = on_alice["channel_id"]

    closed = alice.cli_json("closechannel", on_alice["short_channel_id"])
    assert closed["channel_id"] == channel_id and closed["type"] == "mutual"
    assert wait_for(lambda: channel_row(alice, channel_id)["state"] in ("closing", "closed"))  # type: ignore[index]
    alice.rpc("generate", [1])
    wait_for(lambda: channel_in_state(alice, channel_id, "closed"), what="alice: closed")
    wait_for(lambda: channel_in_state(bob, channel_id, "closed"), what="bob: closed")

    def closing_output(node: NodeProcess) -> dict[str, Any] | None:
        for output in node.rpc("listfunds")["outputs"]:
            if output["txid"] == closed["closing_txid"] and output["status"] == "confirmed":
                return dict(output)
        return None

    to_bob = wait_for(lambda: closing_output(bob), what="bob's closing output")
    to_alice = wait_for(lambda: closing_output(alice), what="alice's closing output")
    assert to_bob["amount_sat"] == 50_000  # the opener pays the whole fee
    fee = 300_000 - to_alice["amount_sat"] - to_bob["amount_sat"]
    assert 0 < fee < 5_000
    assert to_alice["amount_sat"] == 250_000 - fee


def test_anchor_channel_opens(network: Network) -> None:
    on_alice, _ = _open_and_confirm(network, "200000", "--anchors")
    assert on_alice["channel_type"] == "anchors"
    assert on_alice["local_balance_msat"] == 200_000_000


def test_large_channel_one_btc_each(network: Network) -> None:
    opened = network.alice.rpc(
        "openchannel", {"node_id": network.bob_id, "amount": 200_000_000, "push_msat": 100_000_000_000}
    )
    network.alice.rpc("generate", [3])
    channel_id = opened["channel_id"]
    on_alice = wait_for(lambda: channel_in_state(network.alice, channel_id, "normal"), what="alice: normal")
    on_bob = wait_for(lambda: channel_in_state(network.bob, channel_id, "normal"), what="bob: normal")
    assert on_alice["local_balance_msat"] == on_bob["local_balance_msat"] == 100_000_000_000
    _conserved(on_alice)


def test_open_to_unknown_peer_is_a_clear_error(network: Network) -> None:
    stranger = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"  # the generator point
    result = network.alice.cli("openchannel", stranger, "100000", check=False)
    assert result.returncode != 0
    assert "not connected" in result.stderr
