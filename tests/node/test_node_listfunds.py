"""`listfunds` and coinbase maturity, in an in-process node on the embedded chain.

A coinbase output is listed from its block on (it is the wallet's), flagged `immature` until it has
100 confirmations; `withdraw` cannot spend it until the very block where the flag drops, and the
kernel-validated mempool accepts the spend from then on. The flag and the spending rule agree.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from ampere.api.node_methods import register_node_methods
from ampere.api.registry import MethodRegistry
from ampere.bitcoin.bip32 import ExtendedPrivateKey
from ampere.bitcoin.network import Network
from ampere.chain.embedded import EmbeddedChain, EmbeddedChainBackend
from ampere.node.config import NodeConfig
from ampere.node.datadir import DataDir
from ampere.node.keys import NodeKeys
from ampere.node.node import ChainConnection, Node
from ampere.store import open_store
from ampere.wallet.errors import InsufficientFundsError
from tests.chain.helpers import SINK_SCRIPT

from .helpers import async_test, fast_config

DESTINATION = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
SUBSIDY_SAT = 50 * 100_000_000


async def _no_close() -> None:
    return None


async def _start(root: Path, chain: EmbeddedChain) -> Node:
    datadir = DataDir(root / "node")
    datadir.root.mkdir(parents=True, exist_ok=True)
    keys = NodeKeys(ExtendedPrivateKey.from_seed(hashlib.sha256(b"listfunds").digest()), Network.REGTEST)
    config = NodeConfig(datadir=datadir, listen=("127.0.0.1", 0), poll_interval=0.05)
    connection = ChainConnection(EmbeddedChainBackend(chain), Network.REGTEST, close=_no_close)
    node = Node(config, keys, open_store(config.db_url), connection, 0, fast_config())
    await node.start()
    return node


async def _listfunds(node: Node) -> list[dict[str, Any]]:
    registry = MethodRegistry()
    register_node_methods(registry, node)
    method = registry.get("listfunds")
    assert method is not None
    result = await method.handler({})
    outputs: list[dict[str, Any]] = result["outputs"]
    return outputs


async def _mine_elsewhere(node: Node, chain: EmbeddedChain, count: int) -> None:
    chain.generate(count, SINK_SCRIPT)
    await node.follower.sync(mempool=True)
    assert node.follower.height == chain.tip_height()


@async_test
async def test_coinbase_is_listed_as_immature_until_it_can_be_spent(tmp_path: Path) -> None:
    chain = EmbeddedChain(tmp_path / "chain")
    node = await _start(tmp_path, chain)
    try:
        address = node.new_address()
        await node.generate(1, address)
        [coinbase] = await _listfunds(node)
        assert coinbase["address"] == address and coinbase["amount_sat"] == SUBSIDY_SAT
        assert coinbase["status"] == "confirmed" and coinbase["blockheight"] == 1
        assert coinbase["immature"] is True
        with pytest.raises(InsufficientFundsError):
            await node.withdraw(DESTINATION, 100_000)

        # 99 confirmations: still immature, still not spendable.
        await _mine_elsewhere(node, chain, 98)
        assert [o["immature"] for o in await _listfunds(node)] == [True]
        with pytest.raises(InsufficientFundsError):
            await node.withdraw(DESTINATION, 100_000)

        # 100 confirmations: spendable in the next block, so mature now; the chain agrees.
        await _mine_elsewhere(node, chain, 1)
        [mature] = await _listfunds(node)
        assert mature["immature"] is False and mature["txid"] == coinbase["txid"]
        sent = await node.withdraw(DESTINATION, 100_000)
        assert chain.mempool_tx(sent.tx.txid) is not None
        after = await _listfunds(node)
        assert [o["txid"] for o in after] == [sent.tx.txid_hex]  # the coinbase is spent; change is left
        [change] = after
        assert change["status"] == "unconfirmed" and change["immature"] is False
        assert change["amount_sat"] == SUBSIDY_SAT - 100_000 - sent.fee_sat
    finally:
        await node.close()
        chain.close()


@async_test
async def test_a_newer_coinbase_stays_immature_beside_a_mature_one(tmp_path: Path) -> None:
    chain = EmbeddedChain(tmp_path / "chain")
    node = await _start(tmp_path, chain)
    try:
        await node.generate(101)
        outputs = await _listfunds(node)
        assert len(outputs) == 101 and all(o["status"] == "confirmed" for o in outputs)
        mature = [o["blockheight"] for o in outputs if not o["immature"]]
        # A coinbase of height h may be spent in block h + 100 (consensus): at tip 101, heights 1 and 2.
        # bitcoind's wallet waits one block more; ours follows what the chain accepts, as withdraw does.
        assert mature == [1, 2]
        spendable = node.wallet.wallet.spendable_coins(node.follower.height)
        assert [coin.height for coin in spendable] == mature
    finally:
        await node.close()
        chain.close()
