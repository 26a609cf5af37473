"""Crash safety: kill -9 one node at 20 random moments of a payment storm running both ways.

Alice and Bob (two `ampere node` processes on one `ampere chain`) pay each other continuously, many
payments in flight on each side, so that a kill lands in the middle of commitment dances: between an
`update_add_htlc` and its `commitment_signed`, between a `revoke_and_ack` and the next state, while a
payment record or an invoice is being written. Each round kills one node (which one, and after how many
completed payments, comes from a seeded schedule that a failure prints), starts it again from its
datadir and waits until the channel is `normal` on both sides with no HTLC left. Then:

- no payment is left `pending` on either side, and none is lost: every payment its payer lists as
  `complete` is `paid` on the payee's side, and every paid invoice was paid by a complete payment;
- the balances are mirrored and add up to the capacity (a direct payment pays no fee), and Alice's is
  exactly her opening balance less what she paid plus what she was paid, counting complete payments only.

`AMPERE_STORM_SEED` replays a schedule; `AMPERE_STORM_KILLS` changes the number of rounds.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ChainProcess, NodeProcess, start_chain, start_node, stop_quietly, wait_for
from tests.e2e.test_payments_e2e import CAPACITY_SAT, AsyncRpc, AsyncRpcError, open_network

SEED = int(os.environ.get("AMPERE_STORM_SEED", "20261206"))
KILLS = int(os.environ.get("AMPERE_STORM_KILLS", "20"))
IN_FLIGHT = 12  # concurrent payments per side
INVOICES_PER_ROUND = 60  # per side: more than a round can use before its kill
MOST_BEFORE_KILL = 30  # a round kills after 1..this many completed payments


@dataclass(frozen=True, slots=True)
class Kill:
    victim: str
    after_completed: int


def schedule(seed: int, kills: int) -> list[Kill]:
    rng = random.Random(seed)
    return [Kill(rng.choice(("alice", "bob")), rng.randint(1, MOST_BEFORE_KILL)) for _ in range(kills)]


@dataclass
class Storm:
    chain: ChainProcess
    nodes: dict[str, NodeProcess]
    listen: dict[str, str]
    channel_id: str
    alice_opening_msat: int
    rounds_done: int = 0
    log: list[str] = field(default_factory=list)


@pytest.fixture
def storm(tmp_path: Path) -> Iterator[Storm]:
    chain = start_chain(tmp_path / "chain")
    started: list[NodeProcess] = []
    world: Storm | None = None
    try:
        network = open_network(tmp_path, chain, started)
        nodes = {"alice": network.alice, "bob": network.bob}
        listen = {name: str(node.getinfo()["listen"][0]) for name, node in nodes.items()}
        opened = _settled(network.alice, network.channel_id)
        assert opened is not None
        world = Storm(chain, nodes, listen, network.channel_id, opened["local_balance_msat"])
        yield world
    finally:
        for node in [*started, *(world.nodes.values() if world else ())]:
            stop_quietly(node)
        chain.stop()


def _settled(node: NodeProcess, channel_id: str) -> dict[str, Any] | None:
    """The channel's row once it is normal with nothing pending."""
    for channel in node.rpc("listchannels")["channels"]:
        if (
            channel["channel_id"] == channel_id
            and channel["state"] == "normal"
            and not channel["pending_htlcs"]
        ):
            return dict(channel)
    return None


def _no_pending_payment(node: NodeProcess) -> bool:
    return all(p["status"] != "pending" for p in node.rpc("listpayments")["payments"])


def _both_connected(alice: NodeProcess, bob: NodeProcess) -> bool:
    bob_id, alice_id = bob.getinfo()["id"], alice.getinfo()["id"]
    on_alice = {p["id"] for p in alice.rpc("listpeers")["peers"] if p["connected"]}
    on_bob = {p["id"] for p in bob.rpc("listpeers")["peers"] if p["connected"]}
    return bob_id in on_alice and alice_id in on_bob


async def _issue(payee: AsyncRpc, tag: str, count: int, rng: random.Random) -> list[str]:
    slots = asyncio.Semaphore(16)

    async def one(i: int) -> str:
        async with slots:
            made = await payee.call(
                "invoice", {"amount_msat": rng.randint(1, 50) * 1000, "label": f"{tag}-{i}"}
            )
        return str(made["bolt11"])

    amounts_first = [one(i) for i in range(count)]
    return list(await asyncio.gather(*amounts_first))


async def _storm_round(world: Storm, kill: Kill, rng: random.Random) -> None:
    """Pay both ways until `kill.after_completed` payments completed, then kill -9 the victim."""
    alice, bob = world.nodes["alice"], world.nodes["bob"]
    clients = {
        "alice": AsyncRpc.of(alice, connections=IN_FLIGHT + 4),
        "bob": AsyncRpc.of(bob, connections=IN_FLIGHT + 4),
    }
    tag = f"r{world.rounds_done}"
    try:
        to_bob = await _issue(clients["bob"], f"{tag}-to-bob", INVOICES_PER_ROUND, rng)
        to_alice = await _issue(clients["alice"], f"{tag}-to-alice", INVOICES_PER_ROUND, rng)
        completed = 0
        enough = asyncio.Event()

        async def pay_from(payer: str, invoices: list[str]) -> None:
            nonlocal completed
            queue = list(invoices)
            slots = asyncio.Semaphore(IN_FLIGHT)

            async def pay(bolt11: str) -> None:
                nonlocal completed
                async with slots:
                    try:
                        result = await clients[payer].call("pay", [bolt11])
                    except AsyncRpcError:
                        return  # refused before an HTLC (no usable channel while the peer is away)
                    if result["status"] == "complete":
                        completed += 1
                        if completed >= kill.after_completed:
                            enough.set()

            await asyncio.gather(*(pay(b) for b in queue))

        payers = [
            asyncio.create_task(pay_from("alice", to_bob)),
            asyncio.create_task(pay_from("bob", to_alice)),
        ]
        waiter = asyncio.create_task(enough.wait())
        await asyncio.wait([waiter, *payers], return_when=asyncio.FIRST_COMPLETED)
        assert enough.is_set(), f"the storm ran out of invoices before {kill.after_completed} completed"
        world.nodes[kill.victim].kill9()
        for task in payers:
            task.cancel()
        await asyncio.gather(*payers, return_exceptions=True)
    finally:
        for client in clients.values():
            await client.close()


def _check_accounts(world: Storm) -> None:
    alice, bob = world.nodes["alice"], world.nodes["bob"]
    invoices = {
        name: {i["payment_hash"]: i for i in node.rpc("listinvoices")["invoices"]}
        for name, node in world.nodes.items()
    }
    payments = {
        name: {p["payment_hash"]: p for p in node.rpc("listpayments")["payments"]}
        for name, node in world.nodes.items()
    }
    net_alice_msat = 0
    for payer, payee, sign in (("alice", "bob", -1), ("bob", "alice", 1)):
        complete = {h: p for h, p in payments[payer].items() if p["status"] == "complete"}
        assert {p["status"] for p in payments[payer].values()} <= {"complete", "failed"}
        paid = {h for h, i in invoices[payee].items() if i["status"] == "paid"}
        assert set(complete) == paid, (
            f"{payer}→{payee}: complete but unpaid {sorted(set(complete) - paid)[:3]}, "
            f"paid but not complete {sorted(paid - set(complete))[:3]}"
        )
        for payment_hash, payment in complete.items():
            assert payment["amount_msat"] == invoices[payee][payment_hash]["amount_msat"]
            assert payment["fee_msat"] == 0
        net_alice_msat += sign * sum(p["amount_msat"] for p in complete.values())
    on_alice = _settled(alice, world.channel_id)
    on_bob = _settled(bob, world.channel_id)
    assert on_alice is not None and on_bob is not None
    for row in (on_alice, on_bob):
        assert row["local_balance_msat"] + row["remote_balance_msat"] == CAPACITY_SAT * 1000
    assert on_alice["local_balance_msat"] == on_bob["remote_balance_msat"]
    assert on_alice["local_balance_msat"] == world.alice_opening_msat + net_alice_msat
    world.log.append(
        f"round {world.rounds_done}: {len(payments['alice'])}+{len(payments['bob'])} payments, "
        f"alice {on_alice['local_balance_msat']} msat"
    )


def _restart(world: Storm, victim: str) -> None:
    node = world.nodes[victim]
    world.nodes[victim] = start_node(node.datadir, *world.chain.node_args(), "--listen", world.listen[victim])
    alice, bob = world.nodes["alice"], world.nodes["bob"]
    if victim == "bob":
        # Alice redials Bob by herself, but after a backoff that grows with each quick loss of him;
        # a user who restarted Bob would reconnect at once, and so does the test.
        alice.rpc("connect", [f"{bob.getinfo()['id']}@{world.listen['bob']}"])
    wait_for(lambda: _both_connected(alice, bob), timeout=90, interval=0.1, what="the peers to reconnect")
    for name in ("alice", "bob"):
        node = world.nodes[name]
        wait_for(
            lambda node=node: _settled(node, world.channel_id),
            timeout=90,
            interval=0.1,
            what=f"{name}: no HTLC left",
        )
        wait_for(
            lambda node=node: _no_pending_payment(node),
            timeout=90,
            interval=0.1,
            what=f"{name}: no payment pending",
        )


def test_kill9_at_random_moments_of_a_payment_storm(storm: Storm) -> None:
    kills = schedule(SEED, KILLS)
    rng = random.Random(SEED ^ 0x5EED)
    try:
        for kill in kills:
            asyncio.run(_storm_round(storm, kill, rng))
            _restart(storm, kill.victim)
            _check_accounts(storm)
            storm.rounds_done += 1
    except AssertionError as exc:
        plan = [(k.victim, k.after_completed) for k in kills]
        history = "\n".join(storm.log)
        raise AssertionError(
            f"AMPERE_STORM_SEED={SEED}, round {storm.rounds_done} of {plan}\n{history}\n{exc}"
        ) from exc
    assert storm.rounds_done == KILLS
