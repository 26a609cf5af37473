"""Micropayment channels between two `ampere node` processes on one `ampere chain`, through RPC and CLI.

Open, confirm, a thousand payments through one RPC client, settle: the chain holds exactly the funding
and the settlement, and the payee's output is floor(paid_msat / 1000). The refund is refused by the chain
before its locktime (with the chain's reason) and accepted after; restarts keep the paid amount.
"""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from tests.e2e.harness import ChainProcess, NodeProcess, start_chain, start_node, stop_quietly, wait_for

REFUND_AFTER = 150  # the payee's policy asks for at least 144 blocks


@dataclass
class Network:
    chain: ChainProcess
    payer: NodeProcess
    payee: NodeProcess
    payer_id: str
    payee_id: str


def chain_rpc(chain: ChainProcess, method: str, params: list[Any]) -> Any:
    host_port = chain.url.split("//", 1)[1].rstrip("/")
    host, _, port = host_port.rpartition(":")
    cookie = chain.cookie_file.read_text().strip()
    auth = base64.b64encode(cookie.encode()).decode()
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        body = json.dumps({"jsonrpc": "1.0", "id": 1, "method": method, "params": params})
        conn.request("POST", "/", body=body, headers={"Authorization": f"Basic {auth}"})
        reply = json.loads(conn.getresponse().read(), parse_float=Decimal)
    finally:
        conn.close()
    assert reply.get("error") is None, reply
    return reply["result"]


def _connect(a: NodeProcess, b: NodeProcess) -> None:
    b_id = b.getinfo()["id"]
    a.rpc("connect", [f"{b_id}@{b.getinfo()['listen'][0]}"])
    wait_for(lambda: b.getinfo()["num_peers"] >= 1, what="peer connected")


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    root = tmp_path_factory.mktemp("micro")
    chain = start_chain(root / "chain")
    started: list[NodeProcess] = []
    try:
        for name in ("payer", "payee"):
            started.append(start_node(root / name, *chain.node_args()))
        payer, payee = started
        payer.rpc("generate", [101])
        _connect(payer, payee)
        net = Network(chain, payer, payee, payer.getinfo()["id"], payee.getinfo()["id"])
        yield net
        started += [net.payer, net.payee]
    finally:
        for node in started:
            stop_quietly(node)
        chain.stop()


def _micro(node: NodeProcess, channel_id: str) -> dict[str, Any] | None:
    for channel in node.rpc("micro_list")["channels"]:
        if channel["channel_id"] == channel_id:
            return dict(channel)
    return None


def _in_state(node: NodeProcess, channel_id: str, state: str) -> dict[str, Any] | None:
    channel = _micro(node, channel_id)
    return channel if channel is not None and channel["state"] == state else None


def _open(net: Network, capacity_sat: int = 100_000) -> dict[str, Any]:
    opened = net.payer.rpc(
        "micro_open", {"node_id": net.payee_id, "amount": capacity_sat, "refund_after": REFUND_AFTER}
    )
    channel_id = opened["channel_id"]
    net.payer.rpc("generate", [3])
    wait_for(lambda: _in_state(net.payer, channel_id, "open"), what="payer: open")
    wait_for(lambda: _in_state(net.payee, channel_id, "open"), what="payee: open")
    return dict(opened)


def _spends(tx: dict[str, Any], txid: str) -> bool:
    return any(txin.get("txid") == txid for txin in tx["vin"])


def test_thousand_payments_then_settle(network: Network) -> None:
    payer, payee = network.payer, network.payee
    height = payer.getinfo()["blockheight"]
    opened = _open(network)
    channel_id = opened["channel_id"]
    assert opened["refund_height"] == height + REFUND_AFTER
    listed = _micro(payer, channel_id)
    assert listed == {
        "channel_id": channel_id,
        "peer_id": network.payee_id,
        "role": "payer",
        "capacity_sat": 100_000,
        "paid_msat": 0,
        "state": "open",
        "refund_height": opened["refund_height"],
    }
    on_payee = _micro(payee, channel_id)
    assert on_payee is not None and on_payee["role"] == "payee" and on_payee["peer_id"] == network.payer_id
    assert payer.getinfo()["num_channels"] >= 1

    rpc = payer.connection()
    paid = 0
    for n in range(1, 1001):
        reply = rpc.rpc("micro_pay", {"channel": channel_id, "amount_msat": 37_123})
        paid += 37_123
        assert reply == {"paid_msat": paid, "sequence": n}
    rpc.close()
    cli_reply = payer.cli_json("micro", "pay", channel_id, "1000")
    paid += 1000
    assert cli_reply == {"paid_msat": paid, "sequence": 1001}
    wait_for(lambda: (_micro(payee, channel_id) or {}).get("paid_msat") == paid, what="payee holds it all")

    settled = payee.rpc("micro_settle", [channel_id])
    payer.rpc("generate", [1])
    wait_for(lambda: _in_state(payee, channel_id, "settled"), what="payee: settled")
    wait_for(lambda: _in_state(payer, channel_id, "settled"), what="payer: settled")

    funding = chain_rpc(network.chain, "getrawtransaction", [opened["funding_txid"], True])
    settlement = chain_rpc(network.chain, "getrawtransaction", [settled["txid"], True])
    assert _spends(settlement, opened["funding_txid"])
    assert len(settlement["vin"]) == 1
    funding_value = sum(Decimal(str(out["value"])) for out in funding["vout"] if out["n"] == 0)
    assert funding_value > 0

    def payee_output() -> dict[str, Any] | None:
        for output in payee.rpc("listfunds")["outputs"]:
            if output["txid"] == settled["txid"] and output["status"] == "confirmed":
                return dict(output)
        return None

    assert wait_for(payee_output, what="payee's settlement output")["amount_sat"] == paid // 1000
    outputs_sat = sum(int(Decimal(str(out["value"])) * 100_000_000) for out in settlement["vout"])
    assert outputs_sat <= 100_000 and 100_000 - outputs_sat < 5_000  # the payer's change paid the fee


def test_refund_refused_before_locktime_then_accepted(network: Network) -> None:
    payer = network.payer
    opened = _open(network, 50_000)
    channel_id = opened["channel_id"]
    payer.rpc("micro_pay", [channel_id, 2_000_000])
    status, reply = payer.connection().call("micro_refund", [channel_id])
    assert status == 200 and "error" in reply, reply
    assert -32099 <= reply["error"]["code"] <= -32000
    assert reply["error"]["data"]["reason"] == "non-final"
    assert _in_state(payer, channel_id, "open")

    tip = payer.getinfo()["blockheight"]
    payer.rpc("generate", [opened["refund_height"] - tip])
    wait_for(lambda: payer.getinfo()["blockheight"] == opened["refund_height"], what="refund height")
    refund = payer.rpc("micro_refund", [channel_id])
    assert len(refund["txid"]) == 64
    payer.rpc("generate", [1])
    wait_for(lambda: _in_state(payer, channel_id, "refunded"), what="payer: refunded")


def test_payer_fails_fast_against_unknown_peer(network: Network) -> None:
    stranger = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    result = network.payer.cli("micro", "open", stranger, "100000", "--refund-after", "150", check=False)
    assert result.returncode != 0
    assert "not connected" in result.stderr


def test_bad_channel_argument_is_a_clear_error(network: Network) -> None:
    status, reply = network.payer.connection().call("micro_pay", ["zz", 1000])
    assert status == 200 and "error" in reply
    assert "channel" in reply["error"]["message"]


def _restart(net: Network, which: str, how: str) -> None:
    old = net.payer if which == "payer" else net.payee
    if how == "stop":
        assert old.stop() == 0
    else:
        old.kill9()
    new = start_node(old.datadir, *net.chain.node_args())
    setattr(net, which, new)
    # The payee listens on a new port after a restart: the payer dials it again.
    payee_listen = net.payee.getinfo()["listen"][0]
    net.payer.rpc("connect", [f"{net.payee_id}@{payee_listen}"])

    def both_connected() -> bool:
        return all(
            any(p["id"] == other and p["connected"] for p in node.rpc("listpeers")["peers"])
            for node, other in ((net.payer, net.payee_id), (net.payee, net.payer_id))
        )

    wait_for(both_connected, what="peers reconnected")


@pytest.mark.parametrize(
    ("which", "how"), [("payer", "stop"), ("payer", "kill"), ("payee", "stop"), ("payee", "kill")]
)
def test_restart_mid_stream_continues_from_the_same_state(network: Network, which: str, how: str) -> None:
    opened = _open(network, 20_000)
    channel_id = opened["channel_id"]
    for n in range(1, 21):
        assert network.payer.rpc("micro_pay", [channel_id, 10_000]) == {
            "paid_msat": n * 10_000,
            "sequence": n,
        }
    _restart(network, which, how)
    for node in (network.payer, network.payee):
        listed = wait_for(lambda node=node: _in_state(node, channel_id, "open"), what="open after restart")
        assert listed["paid_msat"] == 200_000
    reply = wait_for(
        lambda: _pay_once(network.payer, channel_id, 10_000), what="payment after restart", timeout=60
    )
    assert reply == {"paid_msat": 210_000, "sequence": 21}
    assert network.payer.getinfo()["num_channels"] >= 1


def _pay_once(node: NodeProcess, channel_id: str, amount_msat: int) -> dict[str, Any] | None:
    status, reply = node.connection().call("micro_pay", [channel_id, amount_msat])
    assert status == 200
    if "error" in reply:
        return None  # the channel may still be resending its last update to the peer
    return dict(reply["result"])


def test_payee_offline_payer_refunds(network: Network) -> None:
    payer = network.payer
    opened = _open(network, 30_000)
    channel_id = opened["channel_id"]
    payer.rpc("micro_pay", [channel_id, 5_000_000])
    assert network.payee.stop() == 0
    tip = payer.getinfo()["blockheight"]
    payer.rpc("generate", [opened["refund_height"] - tip])
    payer.rpc("generate", [1])
    wait_for(lambda: _in_state(payer, channel_id, "refunded"), what="payer: refunded")
    block = chain_rpc(network.chain, "getblock", [chain_rpc(network.chain, "getbestblockhash", []), 2])
    refunds = [tx for tx in block["tx"] if _spends(tx, opened["funding_txid"])]
    assert len(refunds) == 1

    def refund_output() -> dict[str, Any] | None:
        for output in payer.rpc("listfunds")["outputs"]:
            if output["txid"] == refunds[0]["txid"] and output["status"] == "confirmed":
                return dict(output)
        return None

    back = wait_for(refund_output, what="the refund in the payer's wallet")
    assert 30_000 - 2_000 < back["amount_sat"] < 30_000  # everything but the refund's fee
    network.payee = start_node(network.payee.datadir, *network.chain.node_args())
    payee_listen = network.payee.getinfo()["listen"][0]
    payer.rpc("connect", [f"{network.payee_id}@{payee_listen}"])
    wait_for(lambda: _in_state(network.payee, channel_id, "refunded"), what="payee: refunded", timeout=60)
