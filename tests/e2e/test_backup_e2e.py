"""Static channel backup end to end: two `ampere node` processes on one `ampere chain`.

Bob opens a static_remotekey and an anchors channel to Alice (pushing her part of each), payments go
both ways, Alice exports her backup. Then Alice's node is killed (-9) and her datadir deleted; a new
node restored from her printed seed (`--restore`) is given the backup. Bad backups are JSON-RPC errors
and the node keeps running; the real one makes Bob force close both channels on request, and once his
commitments confirm Alice sweeps her balance (the anchors one after its one-block CSV) into her wallet:
exactly her channel balance, less only the sweep's fee.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ampere.bitcoin.network import Network
from ampere.bitcoin.tx import OutPoint
from ampere.chain.bitcoind import BitcoindChain
from ampere.node.backup_codec import decode_backup
from ampere.node.keys import NodeKeys
from tests.e2e.harness import (
    ChainProcess,
    NodeProcess,
    channel_in_state,
    channel_row,
    launch_node,
    printed_mnemonic,
    start_chain,
    start_node,
    stop_quietly,
    wait_for,
    wait_ready,
)

CAPACITY_SAT = 600_000
PUSH_MSAT = 250_000_000
PAYMENTS = 3
SWEEP_FEE_BOUND_SAT = 1_000  # one input, one output: ~440 weight units at a regtest feerate


def _settled(node: NodeProcess, channel_id: str) -> dict[str, Any] | None:
    channel = channel_in_state(node, channel_id, "normal")
    return channel if channel is not None and not channel["pending_htlcs"] else None


def _spent_in_mempool(chain: ChainProcess, outpoints: set[OutPoint]) -> set[OutPoint]:
    """Which of `outpoints` a mempool transaction spends."""

    async def query() -> set[OutPoint]:
        client = BitcoindChain.with_cookie(chain.url, chain.cookie_file)
        try:
            transactions = await client.mempool_transactions()
        finally:
            await client.close()
        return {txin.prevout for tx in transactions for txin in tx.inputs} & outpoints

    return asyncio.run(query())


def _rpc_error(node: NodeProcess, method: str, params: Any) -> dict[str, Any]:
    status, reply = node.rpc_conn.call(method, params)
    assert status == 200 and "error" in reply, reply
    return dict(reply["error"])


def _pay(payer: NodeProcess, payee: NodeProcess, amount_msat: int, label: str) -> None:
    invoice = payee.rpc("invoice", {"amount_msat": amount_msat, "label": label})
    assert payer.rpc("pay", [invoice["bolt11"]])["status"] == "complete"


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ChainProcess]:
    process = start_chain(tmp_path / "chain")
    try:
        yield process
    finally:
        process.stop()


def test_restore_from_backup_after_losing_the_datadir(tmp_path: Path, chain: ChainProcess) -> None:
    started: list[NodeProcess] = []
    try:
        _scenario(tmp_path, chain, started)
    finally:
        for node in started:
            stop_quietly(node)


def _scenario(tmp_path: Path, chain: ChainProcess, started: list[NodeProcess]) -> None:
    alice_dir = tmp_path / "alice"
    alice = start_node(alice_dir, *chain.node_args())
    bob = start_node(tmp_path / "bob", *chain.node_args())
    started += [alice, bob]
    mnemonic = printed_mnemonic(alice)
    alice_id, bob_id = alice.getinfo()["id"], bob.getinfo()["id"]
    bob.rpc("generate", [101])
    # Alice dials Bob: his address is what her backup keeps to find him again.
    alice.rpc("connect", [f"{bob_id}@{bob.getinfo()['listen'][0]}"])
    wait_for(lambda: bob.getinfo()["num_peers"] == 1, what="bob sees alice")
    channel_ids = []
    for anchors in (False, True):
        opened = bob.rpc(
            "openchannel",
            {"node_id": alice_id, "amount": CAPACITY_SAT, "push_msat": PUSH_MSAT, "anchors": anchors},
        )
        channel_ids.append(opened["channel_id"])
    wait_for(lambda: all(channel_row(alice, c) for c in channel_ids), what="alice sees both channels")
    bob.rpc("generate", [3])
    for channel_id in channel_ids:
        wait_for(lambda c=channel_id: channel_in_state(alice, c, "normal"), what="alice: normal")
        wait_for(lambda c=channel_id: channel_in_state(bob, c, "normal"), what="bob: normal")
    for i in range(PAYMENTS):
        _pay(alice, bob, 11_000_000 + 1_000 * i, f"to-bob-{i}")
        _pay(bob, alice, 3_000_000 + 1_000 * i, f"to-alice-{i}")

    balances = {}
    for channel_id in channel_ids:
        ours = wait_for(lambda c=channel_id: _settled(alice, c), what="alice settled")
        theirs = wait_for(lambda c=channel_id: _settled(bob, c), what="bob settled")
        assert ours["local_balance_msat"] == theirs["remote_balance_msat"]
        balances[channel_id] = ours["local_balance_msat"]
    assert sum(balances.values()) == 2 * PUSH_MSAT - sum(
        11_000_000 + 1_000 * i for i in range(PAYMENTS)
    ) + sum(3_000_000 + 1_000 * i for i in range(PAYMENTS))

    # backup.scb is kept up to date by the node; exportbackup writes the same channels elsewhere.
    keys = NodeKeys.from_mnemonic(mnemonic, Network.REGTEST)
    scb = decode_backup((alice_dir / "backup.scb").read_bytes(), keys.backup_key)
    assert sorted(c.channel_id.hex() for c in scb.channels) == sorted(channel_ids)
    exported = tmp_path / "alice-export.scb"
    assert alice.cli_json("exportbackup", str(exported)) == {"file": str(exported), "channels": 2}
    assert decode_backup(exported.read_bytes(), keys.backup_key).channels == scb.channels
    assert _rpc_error(alice, "exportbackup", ["relative.scb"])["code"] == -32602

    # Disaster: the node dies and its datadir is gone.
    alice.kill9()
    shutil.rmtree(alice_dir)
    wait_for(lambda: bob.getinfo()["num_peers"] == 0, what="bob notices alice is gone")

    restored = launch_node(
        alice_dir, *chain.node_args(), "--restore", stdin_text=mnemonic + "\n", tag="restored"
    )
    started.append(restored)
    wait_ready(restored)
    assert restored.getinfo()["id"] == alice_id

    # Bad backups: typed JSON-RPC errors, the node keeps answering.
    garbage = tmp_path / "garbage.scb"
    garbage.write_bytes(b"this is not a backup")
    assert _rpc_error(restored, "restorebackup", [str(garbage)])["code"] == -32050
    damaged = tmp_path / "damaged.scb"
    data = bytearray(exported.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    error = _rpc_error(restored, "restorebackup", [str(damaged)])
    assert error["code"] == -32050 and error["data"] == {"reason": "format"}
    assert _rpc_error(restored, "restorebackup", [str(tmp_path / "missing.scb")])["code"] == -32051
    assert restored.rpc("listrestored") == {"channels": []}
    # Nothing reached Bob yet: the new node does not know him before the backup names him.
    assert all(channel_in_state(bob, c, "normal") for c in channel_ids)
    assert restored.getinfo()["id"] == alice_id

    funds_before = {(o["txid"], o["vout"]) for o in restored.rpc("listfunds")["outputs"]}
    result = restored.rpc("restorebackup", [str(exported)])
    assert result["channels"] == 2 and sorted(result["channel_ids"]) == sorted(channel_ids)
    listed = {c["channel_id"]: c for c in restored.rpc("listrestored")["channels"]}
    assert set(listed) == set(channel_ids)
    in_backup = decode_backup((alice_dir / "backup.scb").read_bytes(), keys.backup_key).channels
    assert sorted(c.channel_id.hex() for c in in_backup) == sorted(channel_ids)
    # Restoring twice adds nothing.
    assert restored.rpc("restorebackup", [str(exported)])["channels"] == 0

    # Bob is asked to force close both channels, and does.
    for channel_id in channel_ids:
        wait_for(lambda c=channel_id: channel_in_state(bob, c, "force_closing"), what="bob force closes")
    fundings = {c.funding_outpoint for c in scb.channels}
    wait_for(lambda: _spent_in_mempool(chain, fundings) == fundings, what="bob's commitments in the mempool")
    # The commitments confirm while Alice's node is down: at start it finds them and sweeps.
    restored.stop()
    bob.rpc("generate", [1])
    restored = start_node(alice_dir, *chain.node_args())
    started.append(restored)

    def all_in(states: set[str]) -> list[dict[str, Any]] | None:
        channels = restored.rpc("listrestored")["channels"]
        return channels if all(c["state"] in states for c in channels) else None

    wait_for(lambda: all_in({"sweeping", "closed"}), what="alice sweeps", timeout=60)
    restored.rpc("generate", [1])
    closed = wait_for(lambda: all_in({"closed"}), what="sweeps confirmed", timeout=60)

    outputs = restored.rpc("listfunds")["outputs"]
    new_outputs = [o for o in outputs if (o["txid"], o["vout"]) not in funds_before]
    for channel in closed:
        balance_sat = balances[channel["channel_id"]] // 1000
        # Bob funded: Alice's to_remote on his commitment is her balance, no commitment fee taken.
        assert channel["swept_sat"] == balance_sat
        swept = [o for o in new_outputs if o["txid"] == channel["sweep_txid"]]
        assert len(swept) == 1 and swept[0]["status"] == "confirmed"
        assert balance_sat - SWEEP_FEE_BOUND_SAT < swept[0]["amount_sat"] < balance_sat
    assert restored.getinfo()["num_channels"] == 0
    # Resolved restored channels leave the node's own backup; unresolved ones were in it until then.
    wait_for(
        lambda: decode_backup((alice_dir / "backup.scb").read_bytes(), keys.backup_key).channels == (),
        what="backup.scb without the closed channels",
    )
