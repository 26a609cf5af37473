"""Restarts keep everything: channels, payments, invoices, wallet coins and peers, after `ampere stop` and
after kill -9, whichever side of the channel goes down.

Alice has a channel with Bob and a second peer, Carol, without one (both reached through `connect`, so
persistent); payments went both ways; there are paid, unpaid and expired invoices, confirmed coins and an
unconfirmed change output. Each round ends one node, starts it again from its datadir and compares what
every node lists with what it listed before; then the channel carries one more payment each way and the
balances still add up to the capacity.

What may legitimately differ after a restart, and is therefore left out of the comparison:
- `getinfo.listen` of a node started again with `--listen 127.0.0.1:0`: the kernel picks a new port;
- the port in `listpeers.address` of an inbound peer: it is the dialer's ephemeral source port, new for
  every connection.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

from ampere.api.errors import ErrorCode
from tests.e2e.harness import NodeProcess, restart_node, start_chain, start_node, stop_quietly, wait_for
from tests.e2e.test_payments_e2e import CAPACITY_SAT, AsyncRpc, open_network, pay_all

EACH_WAY_MSAT = (11_000, 23_000, 5_000)


def _pay_both_ways(alice: NodeProcess, bob: NodeProcess) -> int:
    """Pay EACH_WAY_MSAT from Alice to Bob and back at once; Alice's net outflow."""

    async def both() -> tuple[list[Any], list[Any]]:
        alice_rpc, bob_rpc = AsyncRpc.of(alice), AsyncRpc.of(bob)
        try:
            return await asyncio.gather(
                pay_all(alice_rpc, bob_rpc, EACH_WAY_MSAT, "to-bob"),
                pay_all(bob_rpc, alice_rpc, [a + 1000 for a in EACH_WAY_MSAT], "to-alice"),
            )
        finally:
            await alice_rpc.close()
            await bob_rpc.close()

    forward, backward = asyncio.run(both())
    assert [p["status"] for p in forward + backward] == ["complete"] * (2 * len(EACH_WAY_MSAT))
    return sum(p["amount_msat"] for p in forward) - sum(p["amount_msat"] for p in backward)


def _pay_once(payer: NodeProcess, payee: NodeProcess, amount_msat: int, label: str) -> None:
    """One payment, retried while the payer has no usable channel yet (reestablishment after a
    restart); such a refusal records nothing, so it leaves no trace in `listpayments`."""
    bolt11 = payee.rpc("invoice", {"amount_msat": amount_msat, "label": label})["bolt11"]

    def paid() -> dict[str, Any] | None:
        status, reply = payer.rpc_conn.call("pay", [bolt11])
        assert status == 200, (status, reply)
        if "error" in reply:
            assert reply["error"]["code"] == ErrorCode.NO_ROUTE, reply["error"]
            return None
        result: dict[str, Any] = reply["result"]
        return result

    result = wait_for(paid, timeout=60, interval=0.2, what=f"{label}: the channel usable again")
    assert result["status"] == "complete" and result["amount_msat"] == amount_msat


def _invoice_status(node: NodeProcess, label: str) -> str | None:
    for invoice in node.rpc("listinvoices")["invoices"]:
        if invoice["label"] == label:
            return str(invoice["status"])
    return None


def _settled_channel(node: NodeProcess, channel_id: str) -> dict[str, Any] | None:
    for channel in node.rpc("listchannels")["channels"]:
        if channel["channel_id"] != channel_id or channel["pending_htlcs"]:
            continue
        return dict(channel) if channel["state"] == "normal" else None
    return None


def _check_balances(alice: NodeProcess, bob: NodeProcess, channel_id: str, alice_local_msat: int) -> None:
    on_alice = wait_for(lambda: _settled_channel(alice, channel_id), what="alice: nothing pending")
    on_bob = wait_for(lambda: _settled_channel(bob, channel_id), what="bob: nothing pending")
    for row in (on_alice, on_bob):
        assert row["local_balance_msat"] + row["remote_balance_msat"] == CAPACITY_SAT * 1000
    assert on_alice["local_balance_msat"] == on_bob["remote_balance_msat"] == alice_local_msat


def _peers_connected(node: NodeProcess, peer_ids: frozenset[str]) -> bool:
    connected = {peer["id"] for peer in node.rpc("listpeers")["peers"] if peer["connected"]}
    return connected == peer_ids


def _snapshot(node: NodeProcess, *, keeps_port: bool) -> dict[str, Any]:
    info = node.getinfo()
    if not keeps_port:
        del info["listen"]
    peers = []
    for peer in sorted(node.rpc("listpeers")["peers"], key=lambda p: p["id"]):
        if not peer["persistent"]:
            peer = {**peer, "address": peer["address"].rpartition(":")[0]}
        peers.append(peer)
    return {
        "getinfo": info,
        "listchannels": node.rpc("listchannels"),
        "listpayments": node.rpc("listpayments"),
        "listinvoices": node.rpc("listinvoices"),
        "listfunds": node.rpc("listfunds"),
        "listpeers": peers,
    }


def test_everything_survives_stop_and_kill9(tmp_path: Path) -> None:
    chain = start_chain(tmp_path / "chain")
    started: list[NodeProcess] = []
    nodes: dict[str, NodeProcess] = {}
    try:
        network = open_network(tmp_path, chain, started)
        channel_id = network.channel_id
        nodes["alice"], nodes["bob"] = network.alice, network.bob
        nodes["carol"] = carol = start_node(tmp_path / "carol", *chain.node_args())
        alice, bob = nodes["alice"], nodes["bob"]
        ids = {name: node.getinfo()["id"] for name, node in nodes.items()}
        alice.rpc("connect", [f"{ids['carol']}@{carol.getinfo()['listen'][0]}"])
        expected_peers = {
            "alice": frozenset({ids["bob"], ids["carol"]}),
            "bob": frozenset({ids["alice"]}),
            "carol": frozenset({ids["alice"]}),
        }
        for name, peer_ids in expected_peers.items():
            wait_for(functools.partial(_peers_connected, nodes[name], peer_ids), what=f"{name}'s peers")

        opened = _settled_channel(alice, channel_id)
        assert opened is not None
        alice_local = opened["local_balance_msat"] - _pay_both_ways(alice, bob)
        _check_balances(alice, bob, channel_id, alice_local)

        # Invoices that stay unpaid, one of them expired; coins, one of them an unconfirmed change.
        for name in ("alice", "bob"):
            nodes[name].rpc("invoice", {"amount_msat": 42_000, "label": f"{name}-unpaid"})
        alice.rpc("invoice", {"amount_msat": 1_000, "label": "alice-expired", "expiry": 1})
        wait_for(lambda: _invoice_status(alice, "alice-expired") == "expired", what="the invoice expiring")
        sent = alice.rpc("withdraw", {"address": carol.rpc("newaddress")["address"], "amount": 50_000})
        alice_funds = alice.rpc("listfunds")["outputs"]
        assert {o["status"] for o in alice_funds} == {"confirmed", "unconfirmed"}
        assert any(o["txid"] == sent["txid"] and o["status"] == "unconfirmed" for o in alice_funds)
        wait_for(
            lambda: any(o["txid"] == sent["txid"] for o in carol.rpc("listfunds")["outputs"]),
            what="carol sees the withdrawal in the mempool",
        )
        statuses = {i["status"] for i in alice.rpc("listinvoices")["invoices"]}
        assert statuses == {"paid", "unpaid", "expired"}
        assert len(alice.rpc("listpayments")["payments"]) == len(EACH_WAY_MSAT)

        for round_number, (name, how) in enumerate((("alice", "stop"), ("alice", "kill"), ("bob", "kill"))):
            # Bob comes back on his port, since Alice redials the address she knows; Alice gets a new one.
            same_port = name == "bob"
            keeps_port = {other: other != name or same_port for other in nodes}
            before = {other: _snapshot(node, keeps_port=keeps_port[other]) for other, node in nodes.items()}
            assert before["alice"]["getinfo"]["num_channels"] == before["bob"]["getinfo"]["num_channels"] == 1

            nodes[name] = restart_node(nodes[name], *chain.node_args(), how=how, same_port=same_port)
            alice, bob = nodes["alice"], nodes["bob"]
            for other, peer_ids in expected_peers.items():
                wait_for(
                    functools.partial(_peers_connected, nodes[other], peer_ids),
                    timeout=90,
                    what=f"round {round_number}: {other}'s peers back after {how} of {name}",
                )
            for other in ("alice", "bob"):
                settled = functools.partial(_settled_channel, nodes[other], channel_id)
                wait_for(settled, what=f"round {round_number}: {other}'s channel normal")
            after = {other: _snapshot(node, keeps_port=keeps_port[other]) for other, node in nodes.items()}
            for other in nodes:
                for listing, was in before[other].items():
                    assert after[other][listing] == was, (round_number, name, how, other, listing)

            _pay_once(alice, bob, 3_000 + round_number, f"after-{round_number}-to-bob")
            _pay_once(bob, alice, 2_000 + round_number, f"after-{round_number}-to-alice")
            alice_local -= 1_000
            _check_balances(alice, bob, channel_id, alice_local)
    finally:
        for node in [*started, *nodes.values()]:
            stop_quietly(node)
        chain.stop()
