"""The RSMC scenario end to end: two `ampere node --developer` processes on one `ampere chain`, by RPC only.

Alice opens 2 BTC giving Bob 1 BTC, pays him 0.5 BTC with an invoice, then broadcasts her revoked first
commitment with `dev-cheat`. Bob's node publishes the justice transaction well within `to_self_delay`
and ends with the whole channel less the fees; Alice gets nothing from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ampere.bitcoin.address import script_pubkey_to_address
from ampere.bitcoin.network import Network
from tests.chain.helpers import SINK_SCRIPT
from tests.e2e.harness import (
    NodeProcess,
    chain_and_nodes,
    closed_row,
    mine_blocks,
    wait_for,
)

CAPACITY_SAT = 200_000_000  # 2 BTC
PUSH_MSAT = 100_000_000_000  # 1 BTC to Bob
PAYMENT_MSAT = 50_000_000_000  # 0.5 BTC
DEFAULT_DELAY = 144
# The commitment's fee and two claims (justice, to_remote) at the regtest fallback feerate, with room.
MAX_FEES_SAT = 20_000
SINK = script_pubkey_to_address(SINK_SCRIPT, Network.REGTEST)


@pytest.fixture
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    with chain_and_nodes(tmp_path_factory.mktemp("breach"), ("alice", "bob"), "--developer") as (alice, bob):
        yield alice, bob


def _state(node: NodeProcess, channel_id: str) -> str | None:
    found = [c for c in node.rpc("listchannels")["channels"] if c["channel_id"] == channel_id]
    return str(found[0]["state"]) if found else None


def _closed_outputs(node: NodeProcess, channel_id: str) -> list[dict[str, Any]]:
    row = closed_row(node, channel_id)
    return [] if row is None else list(row["outputs"])


def _confirmed(node: NodeProcess) -> dict[tuple[str, int], int]:
    return {
        (o["txid"], o["vout"]): o["amount_sat"]
        for o in node.rpc("listfunds")["outputs"]
        if o["status"] == "confirmed"
    }


def _justice_swept(bob: NodeProcess, channel_id: str) -> dict[str, Any] | None:
    entry = closed_row(bob, channel_id)
    if entry is None or entry["close_type"] != "breach":
        return None
    justice = [o for o in entry["outputs"] if o["path"] == "justice"]
    if not justice or any(o["status"] != "swept" for o in justice):
        return None
    return entry


def test_revoked_commitment_is_punished(nodes: tuple[NodeProcess, NodeProcess]) -> None:
    alice, bob = nodes
    bob_id = bob.getinfo()["id"]
    alice.rpc("generate", [101])
    alice.rpc("connect", [f"{bob_id}@{bob.getinfo()['listen'][0]}"])
    opened = alice.rpc("openchannel", {"node_id": bob_id, "amount": CAPACITY_SAT, "push_msat": PUSH_MSAT})
    channel_id = opened["channel_id"]
    wait_for(lambda: _state(bob, channel_id), what="bob sees the channel")
    mine_blocks(alice, 3, SINK, bob)
    wait_for(
        lambda: _state(alice, channel_id) == "normal" and _state(bob, channel_id) == "normal", what="normal"
    )

    invoice = bob.rpc("invoice", {"amount_msat": PAYMENT_MSAT, "label": "half a bitcoin"})
    paid = alice.rpc("pay", [invoice["bolt11"]])
    assert paid["status"] == "complete" and paid["amount_msat"] == PAYMENT_MSAT
    wait_for(
        lambda: all(
            not c["pending_htlcs"] and c["remote_balance_msat"] == PUSH_MSAT + PAYMENT_MSAT
            for c in alice.rpc("listchannels")["channels"]
        ),
        what="the payment settled",
    )
    assert not _confirmed(bob), "bob's wallet should hold nothing but what the channel gives him"
    alice_before = _confirmed(alice)

    cheat = alice.cli_json("dev-cheat", channel_id, "0")  # the CLI is one more RPC client
    cheat_txid = cheat["txid"]
    assert cheat["commitment_number"] == 0
    assert _state(alice, channel_id) == "force_closing"

    breach_height = mine_blocks(alice, 1, SINK, bob)
    wait_for(lambda: closed_row(bob, channel_id), what="bob to see the breach")
    entry = None
    for _ in range(10):  # one block at a time: the justice transaction confirms in one of the first few
        entry = _justice_swept(bob, channel_id)
        if entry is not None:
            break
        mine_blocks(alice, 1, SINK, bob)
    assert entry is not None, f"no justice swept within 10 blocks: {closed_row(bob, channel_id)}"
    assert entry["closing_txid"] == cheat_txid
    justice = [o for o in entry["outputs"] if o["path"] == "justice"]
    swept_by = {o["sweep_txid"] for o in justice}
    assert int(alice.getinfo()["blockheight"]) < breach_height + DEFAULT_DELAY, "justice came too late"

    # Bob: the whole 2 BTC less the commitment's fee and his claims' fees, all in his wallet.
    wait_for(lambda: all(o["status"] == "swept" for o in _closed_outputs(bob, channel_id)), what="swept")
    gained = wait_for(lambda: sum(_confirmed(bob).values()), what="bob's wallet")
    assert CAPACITY_SAT - MAX_FEES_SAT < gained < CAPACITY_SAT
    assert swept_by <= {txid for txid, _ in _confirmed(bob)}

    # Alice: nothing from the channel (her wallet holds only what it held before the cheat).
    mine_blocks(alice, 6, SINK, bob)
    after = _confirmed(alice)
    assert set(after) <= set(alice_before)
    assert not any(txid in {cheat_txid, *swept_by} for txid, _ in after)
    wait_for(lambda: _state(bob, channel_id) == "closed", what="bob's channel closed")
    assert _state(alice, channel_id) in ("force_closing", "closed")
    # Her listclosed shows her own revoked commitment, every output of it taken by Bob's justice.
    alice_entry = closed_row(alice, channel_id)
    assert alice_entry is not None and alice_entry["closing_txid"] == cheat_txid
    assert alice_entry["close_type"] == "local_force" and alice_entry["revoked"] is True
    taken = [o for o in alice_entry["outputs"] if o["path"] != "anchor"]
    assert taken and all(o["swept_by"] == "peer" and o["sweep_txid"] in swept_by for o in taken)
