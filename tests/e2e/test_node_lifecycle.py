"""`ampere node` as a process: first start, restart, lock, kill -9, seed restore, config file, shutdown."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
from pathlib import Path

from ampere.bitcoin.bip39 import is_valid_mnemonic
from ampere.bitcoin.network import Network
from ampere.node.keys import NodeKeys
from tests.e2e.harness import (
    AMPERE,
    launch_node,
    running_node,
    start_node,
    stop_quietly,
    wait_for,
    wait_ready,
)

KNOWN_MNEMONIC = " ".join(["abandon"] * 23 + ["art"])


def _mnemonic_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if len(line.split()) == 24 and is_valid_mnemonic(line)]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_shows_seed_once_and_keeps_secrets_private(tmp_path: Path) -> None:
    datadir = tmp_path / "node"
    node = start_node(datadir)
    try:
        seeds = _mnemonic_lines(node.stdout())
        assert len(seeds) == 1, node.stdout()
        mnemonic = seeds[0]
        for name in ("seed", "admin.token", "readonly.token", "rpc.json"):
            assert _mode(datadir / name) == 0o600, name
        assert (datadir / "seed").read_text().split() == mnemonic.split()
        admin, readonly = node.admin_token, node.readonly_token
        assert len(admin) >= 32 and len(readonly) >= 32 and admin != readonly
        assert len((datadir / "admin.token").read_text().splitlines()) == 1
        info_file = node.rpc_info
        assert info_file["url"].startswith("http://127.0.0.1:")
        assert info_file["socket"] == str(datadir / "rpc.sock")

        info = node.cli_json("getinfo")
        assert set(info) >= {"id", "network", "blockheight", "listen", "num_peers", "num_channels", "version"}
        assert info["id"] == NodeKeys.from_mnemonic(mnemonic, Network.REGTEST).node_id.hex()
        assert info["network"] == "regtest"
        assert info["num_peers"] == 0 and info["num_channels"] == 0
        assert info["listen"] and info["listen"][0].startswith("127.0.0.1:")
        assert not info["listen"][0].endswith(":0")
        log_text = (datadir / "ampere.log").read_text()
        assert "ready" in log_text
        for word_line in (mnemonic,):
            assert word_line not in log_text and word_line not in node.stderr()

        assert node.stop() == 0
        assert not (datadir / "rpc.json").exists()
        assert not (datadir / "rpc.sock").exists()

        again = start_node(datadir)
        try:
            assert _mnemonic_lines(again.stdout()) == []
            assert again.getinfo()["id"] == info["id"]
            assert again.admin_token == admin
        finally:
            assert again.terminate(signal.SIGINT) == 0
        assert mnemonic not in (datadir / "ampere.log").read_text()
    finally:
        stop_quietly(node)


def test_second_daemon_on_the_same_datadir_is_refused(tmp_path: Path) -> None:
    datadir = tmp_path / "node"
    with running_node(datadir) as node:
        url = node.url
        second = launch_node(datadir, tag="second")
        assert second.process.wait(timeout=60) != 0
        assert "in use" in second.stderr()
        # The first one is untouched, rpc.json included.
        assert node.url == url
        assert node.getinfo()["network"] == "regtest"


def test_kill9_then_restart_keeps_lock_wallet_and_addresses(tmp_path: Path) -> None:
    datadir = tmp_path / "node"
    node = start_node(datadir)
    try:
        address = node.rpc("newaddress")["address"]
        mined = node.cli_json("generate", "101", address)
        assert mined["blockheight"] == 101 and len(mined["blocks"]) == 101
        funds = node.rpc("listfunds")["outputs"]
        assert len(funds) == 101
        assert {output["address"] for output in funds} == {address}
        assert all(output["status"] == "confirmed" and output["amount_sat"] > 0 for output in funds)
        issued = {address} | {node.rpc("newaddress")["address"] for _ in range(3)}

        node.kill9()
        restarted = start_node(datadir)
        try:
            after = restarted.rpc("listfunds")["outputs"]
            key = lambda output: (output["txid"], output["vout"])  # noqa: E731
            assert sorted(after, key=key) == sorted(funds, key=key)
            assert restarted.getinfo()["blockheight"] == 101
            assert restarted.rpc("newaddress")["address"] not in issued
        finally:
            assert restarted.stop() == 0
    finally:
        stop_quietly(node)


def test_withdraw_to_an_address(tmp_path: Path) -> None:
    destination = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
    with running_node(tmp_path / "node") as node:
        node.rpc("generate", {"count": 101})
        before = sum(output["amount_sat"] for output in node.rpc("listfunds")["outputs"])
        sent = node.cli_json("withdraw", destination, "100000", "--feerate", "3")
        assert len(sent["txid"]) == 64 and sent["txid"] == sent["txid"].lower()
        assert 0 < sent["fee_sat"] < 10_000
        funds = node.rpc("listfunds")["outputs"]
        change = [output for output in funds if output["txid"] == sent["txid"]]
        assert len(change) == 1 and change[0]["status"] == "unconfirmed" and change[0]["blockheight"] is None
        assert sum(output["amount_sat"] for output in funds) == before - 100_000 - sent["fee_sat"]
        node.rpc("generate", [1, destination])
        funds = node.rpc("listfunds")["outputs"]
        change = [output for output in funds if output["txid"] == sent["txid"]]
        assert change[0]["status"] == "confirmed" and change[0]["blockheight"] == 102

        failed = node.cli("withdraw", destination, str(10**15), check=False)
        assert failed.returncode != 0 and "insufficient funds" in failed.stderr

        swept = node.rpc("withdraw", {"address": destination, "amount": "all"})
        assert swept["fee_sat"] > 0
        assert node.rpc("listfunds")["outputs"] == [] or all(
            output["txid"] != change[0]["txid"] for output in node.rpc("listfunds")["outputs"]
        )


def test_restore_from_mnemonic_on_stdin(tmp_path: Path) -> None:
    datadir = tmp_path / "node"
    node = launch_node(datadir, "--restore", stdin_text=KNOWN_MNEMONIC + "\n")
    try:
        wait_ready(node)
        expected = NodeKeys.from_mnemonic(KNOWN_MNEMONIC, Network.REGTEST).node_id.hex()
        assert node.getinfo()["id"] == expected
        assert _mnemonic_lines(node.stdout()) == []
        assert node.stop() == 0
    finally:
        stop_quietly(node)
    other = " ".join(["zoo"] * 23 + ["vote"])
    refused = launch_node(datadir, "--restore", stdin_text=other + "\n", tag="refused")
    assert refused.process.wait(timeout=60) != 0
    assert "different seed" in refused.stderr()


def test_config_file_and_command_line_precedence(tmp_path: Path) -> None:
    datadir = tmp_path / "node"
    datadir.mkdir()
    (datadir / "config.toml").write_text('network = "regtest"\nrpc-port = 0\nlisten = "127.0.0.1:0"\n')
    process = subprocess.Popen(
        [*AMPERE, "node", "--datadir", str(datadir), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: (datadir / "rpc.json").exists() or process.poll() is not None, what="rpc.json")
        assert process.poll() is None
        result = subprocess.run(
            [*AMPERE, "getinfo", "--datadir", str(datadir), "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert '"regtest"' in result.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    (datadir / "config.toml").write_text('network = "mainnet"\n')
    refused = subprocess.run(
        [*AMPERE, "node", "--datadir", str(datadir)], capture_output=True, text=True, timeout=60, check=False
    )
    assert refused.returncode != 0 and "regtest only" in refused.stderr
    (datadir / "config.toml").write_text("bogus-key = 1\n")
    refused = subprocess.run(
        [*AMPERE, "node", "--datadir", str(datadir)], capture_output=True, text=True, timeout=60, check=False
    )
    assert refused.returncode != 0 and "bogus-key" in refused.stderr


def test_cli_options_after_the_command_and_unix_socket(tmp_path: Path) -> None:
    # A deep directory: the socket's absolute path is longer than the 107 bytes a sockaddr holds.
    datadir = tmp_path / ("d" * 60) / ("e" * 60) / "node"
    with running_node(datadir) as node:
        assert len(os.fsencode(datadir / "rpc.sock")) > 107
        by_socket = subprocess.run(
            [*AMPERE, "getinfo", "--json", "--rpc", str(datadir / "rpc.sock"), "--datadir", str(datadir)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert '"id"' in by_socket.stdout
        table = node.cli("listpeers")
        assert "no peers" in table.stdout
        readonly = node.cli(
            "withdraw", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", "1000",
            "--token-file", str(datadir / "readonly.token"), check=False,
        )  # fmt: skip
        assert readonly.returncode != 0 and "admin token" in readonly.stderr
        missing = subprocess.run(
            [*AMPERE, "--datadir", str(tmp_path / "nowhere"), "getinfo"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert missing.returncode != 0 and missing.stderr
