"""Two `ampere node` processes on one `ampere chain`: an honest `closechannel --force` end to end.

Alice forces the close through the CLI; Bob is told with an error and takes his balance at once; Alice's
`to_local` shows in `listclosed` with the height at which it can be claimed, is swept right then (the
peer's `to_self_delay`, 144 blocks by default), and both channels end `closed`.
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
    channel_row,
    closed_row,
    mine_blocks,
    wait_for,
)

CAPACITY_SAT, PUSH_MSAT = 500_000, 200_000_000
DEFAULT_DELAY = 144
MAX_CLAIM_FEE_SAT = 2_000
# Blocks go to a script neither wallet owns, so each wallet holds only what the test expects.
SINK = script_pubkey_to_address(SINK_SCRIPT, Network.REGTEST)


@pytest.fixture
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    with chain_and_nodes(tmp_path_factory.mktemp("force"), ("alice", "bob")) as (alice, bob):
        yield alice, bob


def _state(node: NodeProcess, channel_id: str) -> str | None:
    channel = channel_row(node, channel_id)
    return None if channel is None else str(channel["state"])


def _output(node: NodeProcess, channel_id: str, path: str) -> dict[str, Any] | None:
    entry = closed_row(node, channel_id)
    if entry is None:
        return None
    found = [o for o in entry["outputs"] if o["path"] == path]
    assert len(found) <= 1, found
    return found[0] if found else None


def _funds_from(node: NodeProcess, txid: str) -> int:
    return sum(
        o["amount_sat"]
        for o in node.rpc("listfunds")["outputs"]
        if o["txid"] == txid and o["status"] == "confirmed"
    )


def test_honest_force_close_returns_both_balances(nodes: tuple[NodeProcess, NodeProcess]) -> None:
    alice, bob = nodes
    bob_id = bob.getinfo()["id"]
    alice.rpc("generate", [101])
    alice.rpc("connect", [f"{bob_id}@{bob.getinfo()['listen'][0]}"])
    opened = alice.rpc("openchannel", {"node_id": bob_id, "amount": CAPACITY_SAT, "push_msat": PUSH_MSAT})
    channel_id = opened["channel_id"]
    wait_for(lambda: channel_row(bob, channel_id), what="bob sees the channel")
    mine_blocks(alice, 3, SINK, bob)
    wait_for(
        lambda: _state(alice, channel_id) == "normal" and _state(bob, channel_id) == "normal", what="normal"
    )
    assert alice.rpc("listclosed") == {"channels": []}

    forced = alice.cli_json("closechannel", channel_id, "--force")
    assert forced["channel_id"] == channel_id and forced["type"] == "unilateral"
    closing_txid = forced["closing_txid"]
    assert _state(alice, channel_id) == "force_closing"
    wait_for(lambda: _state(bob, channel_id) == "force_closing", what="bob to hear the error")

    height = mine_blocks(alice, 1, SINK, bob)
    to_local = wait_for(lambda: _output(alice, channel_id, "to_local"), what="alice's to_local")
    entry = closed_row(alice, channel_id)
    assert entry is not None
    assert entry["close_type"] == "local_force" and entry["closing_txid"] == closing_txid
    assert to_local["claimable_at_height"] == height + DEFAULT_DELAY - 1
    assert to_local["status"] == "pending" and to_local["sweep_txid"] is None

    # Bob's balance is his at once: claimed in the next block, into his wallet.
    mine_blocks(alice, 1, SINK, bob)
    to_remote = wait_for(
        lambda: (o := _output(bob, channel_id, "to_remote")) is not None and o["status"] == "swept" and o,
        what="bob's to_remote swept",
    )
    assert to_remote["amount_sat"] == PUSH_MSAT // 1000
    bob_got = wait_for(lambda: _funds_from(bob, to_remote["sweep_txid"]), what="bob's sweep in his wallet")
    assert PUSH_MSAT // 1000 - MAX_CLAIM_FEE_SAT < bob_got < PUSH_MSAT // 1000

    # Alice's to_local waits for the delay, then is swept in the first block where it is valid.
    claimable_at = to_local["claimable_at_height"]
    mine_blocks(alice, claimable_at - 1 - int(alice.getinfo()["blockheight"]), SINK, bob)
    assert _output(alice, channel_id, "to_local")["status"] == "pending"  # type: ignore[index]
    mine_blocks(alice, 1, SINK, bob)
    mine_blocks(alice, 1, SINK, bob)
    swept = wait_for(
        lambda: (o := _output(alice, channel_id, "to_local")) is not None and o["status"] == "swept" and o,
        what="alice's to_local swept",
    )
    alice_got = wait_for(lambda: _funds_from(alice, swept["sweep_txid"]), what="alice's sweep in her wallet")
    assert to_local["amount_sat"] - MAX_CLAIM_FEE_SAT < alice_got < to_local["amount_sat"]
    commitment_fee = CAPACITY_SAT - to_local["amount_sat"] - to_remote["amount_sat"]
    assert 0 < commitment_fee < 10_000

    # Six blocks deep both sides call the channel closed.
    mine_blocks(alice, 5, SINK, bob)
    for node in (alice, bob):
        wait_for(lambda node=node: _state(node, channel_id) == "closed", what="listchannels: closed")  # type: ignore[misc]
        wait_for(
            lambda node=node: closed_row(node, channel_id)["state"] == "closed",  # type: ignore[misc,index]
            what="listclosed: closed",
        )
