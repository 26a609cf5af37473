"""Two `ampere node` processes on one `ampere chain`: invoices and payments over one two-way channel.

A thousand payments each way, both directions at once, each side driven by one asyncio JSON-RPC client
(`AsyncRpc`, reused by `bench/bench_payments_tcp.py`); then every payment complete and every invoice
paid on the other side, balances mirrored and summing to the capacity, and after a mutual close the
outputs on chain equal the balances (the opener's less the closing fee). Errors through the RPC keep
their codes; the read-only token may list but not pay.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any

import pytest

from ampere.chain.http import HttpClient
from tests.e2e.harness import ChainProcess, NodeProcess, start_chain, start_node, stop_quietly, wait_for

CAPACITY_SAT = 1_000_000
PUSH_MSAT = 400_000_000
PAYMENTS_EACH_WAY = int(os.environ.get("AMPERE_E2E_PAYMENTS", "1000"))
IN_FLIGHT = 40  # concurrent pays per side, well under the channel's HTLC slots


class AsyncRpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.data = data


class AsyncRpc:
    """One asyncio JSON-RPC client of a node: concurrent calls share a pool of kept-alive connections."""

    def __init__(self, url: str, token: str, *, connections: int = 64) -> None:
        self._http, self._path = HttpClient.for_url(url, timeout=120.0)
        self._http.max_idle = connections
        self._headers = (("Authorization", f"Bearer {token}"), ("Content-Type", "application/json"))
        self._ids = count(1)

    @classmethod
    def of(cls, node: NodeProcess, token: str | None = None, *, connections: int = 64) -> AsyncRpc:
        return cls(node.url, node.admin_token if token is None else token, connections=connections)

    async def call(self, method: str, params: Any = None) -> Any:
        document = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or {}}
        response = await self._http.request("POST", self._path, json.dumps(document).encode(), self._headers)
        if response.status != 200:
            raise AsyncRpcError(-response.status, f"HTTP {response.status}")
        reply = json.loads(response.body)
        if "error" in reply:
            error = reply["error"]
            raise AsyncRpcError(error["code"], error["message"], error.get("data"))
        return reply["result"]

    async def close(self) -> None:
        await self._http.close()


@dataclass
class PaymentNetwork:
    chain: ChainProcess
    alice: NodeProcess
    bob: NodeProcess
    channel_id: str


def channel_of(node: NodeProcess, channel_id: str) -> dict[str, Any] | None:
    for channel in node.rpc("listchannels")["channels"]:
        if channel["channel_id"] == channel_id:
            return dict(channel)
    return None


def in_state(node: NodeProcess, channel_id: str, state: str) -> dict[str, Any] | None:
    channel = channel_of(node, channel_id)
    return channel if channel is not None and channel["state"] == state else None


def open_network(root: Any, chain: ChainProcess, started: list[NodeProcess]) -> PaymentNetwork:
    """Alice and Bob with one normal channel: CAPACITY_SAT, PUSH_MSAT of it on Bob's side."""
    for name in ("alice", "bob"):
        started.append(start_node(root / name, *chain.node_args()))
    alice, bob = started
    bob_id = bob.getinfo()["id"]
    alice.rpc("generate", [101])
    alice.rpc("connect", [f"{bob_id}@{bob.getinfo()['listen'][0]}"])
    wait_for(lambda: bob.getinfo()["num_peers"] == 1, what="bob sees alice")
    opened = alice.rpc("openchannel", {"node_id": bob_id, "amount": CAPACITY_SAT, "push_msat": PUSH_MSAT})
    channel_id = opened["channel_id"]
    wait_for(lambda: channel_of(bob, channel_id), what="bob sees the channel")
    alice.rpc("generate", [3])
    wait_for(lambda: in_state(alice, channel_id, "normal"), what="alice: normal")
    wait_for(lambda: in_state(bob, channel_id, "normal"), what="bob: normal")
    return PaymentNetwork(chain, alice, bob, channel_id)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaymentNetwork]:
    root = tmp_path_factory.mktemp("payments")
    chain = start_chain(root / "chain")
    started: list[NodeProcess] = []
    try:
        yield open_network(root, chain, started)
    finally:
        for node in started:
            stop_quietly(node)
        chain.stop()


def amounts(n: int, base: int) -> list[int]:
    """Whole satoshis, so that the closing outputs can be compared with the balances exactly."""
    return [base + 1000 * (i % 17) for i in range(n)]


async def pay_all(payer: AsyncRpc, payee: AsyncRpc, amounts_msat: Sequence[int], tag: str) -> list[Any]:
    invoices = await asyncio.gather(
        *(
            payee.call("invoice", {"amount_msat": a, "label": f"{tag}-{i}"})
            for i, a in enumerate(amounts_msat)
        )
    )
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def pay(invoice: dict[str, Any]) -> Any:
        async with slots:
            return await payer.call("pay", [invoice["bolt11"]])

    return list(await asyncio.gather(*(pay(invoice) for invoice in invoices)))


def test_invoice_through_the_cli(network: PaymentNetwork) -> None:
    made = network.bob.cli_json("invoice", "5000", "--label", "cli", "--description", "through the CLI")
    assert made["bolt11"].startswith("lnbcrt") and made["amount_msat"] == 5000
    assert len(made["payment_hash"]) == 64 and len(made["payment_secret"]) == 64
    paid = network.alice.cli_json("pay", made["bolt11"])
    assert paid["status"] == "complete" and paid["fee_msat"] == 0 and paid["amount_msat"] == 5000
    listed = {i["label"]: i for i in network.bob.rpc("listinvoices")["invoices"]}
    assert listed["cli"]["status"] == "paid" and listed["cli"]["paid_at"] is not None
    # Undo it so that the big test starts from the opening balances.
    back = network.alice.rpc("invoice", {"amount_msat": 5000, "label": "cli-back"})
    assert network.bob.rpc("pay", [back["bolt11"]])["status"] == "complete"


def test_errors_keep_their_codes(network: PaymentNetwork) -> None:
    alice, bob = network.alice, network.bob
    status, reply = alice.rpc_conn.call("pay", ["lnbcrt1notaninvoice"])
    assert status == 200 and reply["error"]["code"] == -32031
    made = bob.rpc("invoice", {"amount_msat": 1000, "label": "twice"})
    status, reply = bob.rpc_conn.call("invoice", {"amount_msat": 1000, "label": "twice"})
    assert reply["error"]["code"] == -32034
    status, reply = bob.rpc_conn.call("pay", [made["bolt11"]])  # our own
    assert reply["error"]["code"] == -32031
    readonly = alice.connection(alice.readonly_token)
    try:
        status, _ = readonly.call("pay", [made["bolt11"]])
        assert status == 403
        status, reply = readonly.call("listpayments")
        assert status == 200 and "payments" in reply["result"]
    finally:
        readonly.close()
    assert alice.rpc("pay", [made["bolt11"]])["status"] == "complete"
    status, reply = alice.rpc_conn.call("pay", [made["bolt11"]])
    assert reply["error"]["code"] == -32032
    back = alice.rpc("invoice", {"amount_msat": 1000, "label": "twice-back"})
    assert bob.rpc("pay", [back["bolt11"]])["status"] == "complete"


def test_thousand_payments_each_way_then_close(network: PaymentNetwork) -> None:
    alice, bob = network.alice, network.bob
    before = in_state(alice, network.channel_id, "normal")
    assert before is not None
    to_bob, to_alice = amounts(PAYMENTS_EACH_WAY, 10_000), amounts(PAYMENTS_EACH_WAY, 7_000)

    async def both_ways() -> tuple[list[Any], list[Any]]:
        alice_rpc, bob_rpc = AsyncRpc.of(alice), AsyncRpc.of(bob)
        try:
            forward, backward = await asyncio.gather(
                pay_all(alice_rpc, bob_rpc, to_bob, "to-bob"),
                pay_all(bob_rpc, alice_rpc, to_alice, "to-alice"),
            )
        finally:
            await alice_rpc.close()
            await bob_rpc.close()
        return forward, backward

    forward, backward = asyncio.run(both_ways())
    for results, sent in ((forward, to_bob), (backward, to_alice)):
        assert [r["status"] for r in results] == ["complete"] * len(sent)
        assert [r["amount_msat"] for r in results] == sent
        assert all(r["fee_msat"] == 0 and len(r["payment_preimage"]) == 64 for r in results)

    def listed(node: NodeProcess, kind: str, prefix: str) -> list[dict[str, Any]]:
        if kind == "invoices":
            return [i for i in node.rpc("listinvoices")["invoices"] if i["label"].startswith(prefix)]
        return node.rpc("listpayments")["payments"]

    paid_to_bob = listed(bob, "invoices", "to-bob-")
    paid_to_alice = listed(alice, "invoices", "to-alice-")
    assert len(paid_to_bob) == len(paid_to_alice) == PAYMENTS_EACH_WAY
    assert {i["status"] for i in paid_to_bob + paid_to_alice} == {"paid"}
    hashes_paid_by_alice = {
        p["payment_hash"] for p in listed(alice, "payments", "") if p["status"] == "complete"
    }
    assert {i["payment_hash"] for i in paid_to_bob} <= hashes_paid_by_alice

    delta = sum(to_bob) - sum(to_alice)
    on_alice = wait_for(lambda: _settled(alice, network.channel_id), what="alice: no HTLC pending")
    on_bob = wait_for(lambda: _settled(bob, network.channel_id), what="bob: no HTLC pending")
    assert on_alice["local_balance_msat"] == before["local_balance_msat"] - delta
    assert on_alice["local_balance_msat"] == on_bob["remote_balance_msat"]
    assert on_alice["remote_balance_msat"] == on_bob["local_balance_msat"]
    assert on_alice["local_balance_msat"] + on_alice["remote_balance_msat"] == CAPACITY_SAT * 1000

    closed = alice.rpc("closechannel", [network.channel_id])
    alice.rpc("generate", [1])
    wait_for(lambda: in_state(alice, network.channel_id, "closed"), what="alice: closed")
    wait_for(lambda: in_state(bob, network.channel_id, "closed"), what="bob: closed")

    def closing_output(node: NodeProcess) -> dict[str, Any] | None:
        for output in node.rpc("listfunds")["outputs"]:
            if output["txid"] == closed["closing_txid"] and output["status"] == "confirmed":
                return dict(output)
        return None

    to_alice_sat = wait_for(lambda: closing_output(alice), what="alice's closing output")["amount_sat"]
    to_bob_sat = wait_for(lambda: closing_output(bob), what="bob's closing output")["amount_sat"]
    assert to_bob_sat * 1000 == on_bob["local_balance_msat"]  # the opener pays the whole fee
    fee = CAPACITY_SAT - to_alice_sat - to_bob_sat
    assert 0 < fee < 5_000
    assert to_alice_sat * 1000 == on_alice["local_balance_msat"] - fee * 1000


def _settled(node: NodeProcess, channel_id: str) -> dict[str, Any] | None:
    channel = in_state(node, channel_id, "normal")
    return channel if channel is not None and not channel["pending_htlcs"] else None
