"""The micropayment service in two in-process nodes on the embedded chain, over real TCP.

A payer node whose peer layer is used to send hand-made, bad `micro_update`s to the payee node: each is
refused with a clear reason, the payee's state does not move, and the real payer's next payment goes
through. A payer against a peer that does not advertise bit 257 fails before anything is sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from ampere.bitcoin.bip32 import ExtendedPrivateKey
from ampere.bitcoin.network import Network
from ampere.chain.embedded import EmbeddedChain, EmbeddedChainBackend
from ampere.channel.micropayment.messages import Update, decode_micro, encode_micro
from ampere.node.config import NodeConfig
from ampere.node.datadir import DataDir
from ampere.node.keys import NodeKeys
from ampere.node.micro_service import MicroCommandError, MicroPeerError, MicroService
from ampere.node.node import ChainConnection, Node
from ampere.node.peer_protocol import DEFAULT_FEATURES
from ampere.store import open_store
from ampere.wire import Feature, Features, Message, UnknownMessage

from .helpers import async_test, fast_config

WAIT = 20.0


async def _no_close() -> None:
    return None


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def start_node(
    name: str, root: Path, chain: EmbeddedChain, *, micro: bool = True
) -> tuple[Node, MicroService]:
    datadir = DataDir(root / name)
    datadir.root.mkdir(parents=True, exist_ok=True)
    keys = NodeKeys(ExtendedPrivateKey.from_seed(hashlib.sha256(name.encode()).digest()), Network.REGTEST)
    config = NodeConfig(datadir=datadir, listen=("127.0.0.1", 0), poll_interval=0.05)
    connection = ChainConnection(EmbeddedChainBackend(chain), Network.REGTEST, close=_no_close)
    features = DEFAULT_FEATURES
    if not micro:
        features = Features(DEFAULT_FEATURES.bits & ~(1 << Feature.MICROPAYMENT_CHANNEL.optional_bit))
    node = Node(config, keys, open_store(config.db_url), connection, 0, fast_config(features=features))
    service = MicroService()
    node.add_service(service)
    await node.start()
    return node, service


def port_of(node: Node) -> int:
    return int(node.info().listen[0].rsplit(":", 1)[1])


async def mine(miner: Node, count: int, other: Node) -> None:
    await miner.generate(count)
    height = miner.follower.height
    await wait_until(lambda: other.follower.height >= height, "the other node to follow")


@async_test
async def test_bad_updates_are_refused_and_the_channel_keeps_working(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    chain = EmbeddedChain(tmp_path / "chain")
    payer, payer_service = await start_node("payer", tmp_path, chain)
    payee, payee_service = await start_node("payee", tmp_path, chain)
    try:
        await mine(payer, 101, payee)
        await payer.connect(f"{payee.node_id.hex()}@127.0.0.1:{port_of(payee)}")
        opened = await payer_service.open(payee.node_id, 50_000, 150)
        channel_id = opened.channel_id
        await mine(payer, 3, payee)
        await wait_until(lambda: payee_service.info(channel_id) is not None, "payee knows the channel")
        await wait_until(lambda: payee_service.info(channel_id).state == "open", "payee: open")  # type: ignore[union-attr]
        assert payee.info().num_channels == 1

        # Capture the real updates on their way out, to tamper with copies of them.
        sent: list[Update] = []
        real_send = payer.peers.send

        async def spy(node_id: bytes, message: Message | UnknownMessage) -> None:
            if isinstance(message, UnknownMessage):
                decoded = decode_micro(message)
                if isinstance(decoded, Update):
                    sent.append(decoded)
            await real_send(node_id, message)

        payer.peers.send = spy  # type: ignore[method-assign]
        for _ in range(3):
            await payer_service.pay(channel_id, 1_000_000)
        last = sent[-1]
        assert last.paid_msat == 3_000_000 and last.sequence == 3

        bad_updates = {
            "lower amount": dataclasses.replace(last, sequence=4, paid_msat=2_000_000, amount_msat=1),
            "wrong signature": dataclasses.replace(
                last,
                sequence=4,
                amount_msat=1_000_000,
                paid_msat=4_000_000,
                payee_sat=4_000,
                change_sat=last.change_sat - 1_000,
            ),
            "wrong sequence": dataclasses.replace(
                last, sequence=9, amount_msat=1_000_000, paid_msat=4_000_000
            ),
            "dust change output": dataclasses.replace(
                last, sequence=4, amount_msat=1_000_000, paid_msat=4_000_000, payee_sat=4_000, change_sat=100
            ),
            "over capacity": dataclasses.replace(
                last, sequence=4, amount_msat=60_000_000_000, paid_msat=60_003_000_000
            ),
        }
        caplog.set_level(logging.WARNING, logger="ampere.node.micro_service")
        for label, update in bad_updates.items():
            caplog.clear()
            data = encode_micro(update)
            await real_send(payee.node_id, UnknownMessage(int.from_bytes(data[:2], "big"), data[2:]))
            expected = {
                "lower amount": "does not increase",
                "wrong signature": "signature",
                "wrong sequence": "expected sequence 4",
                "dust change output": "below dust",
                "over capacity": "is over",
            }[label]
            await wait_until(
                lambda expected=expected: any(expected in r.getMessage() for r in caplog.records),  # type: ignore[misc]
                f"refusal of {label}",
            )
            info = payee_service.info(channel_id)
            assert info is not None and info.paid_msat == 3_000_000 and info.sequence == 3, label

        result = await payer_service.pay(channel_id, 500_000)
        assert (result.paid_msat, result.sequence) == (3_500_000, 4)
        await wait_until(
            lambda: payee_service.info(channel_id).paid_msat == 3_500_000,  # type: ignore[union-attr]
            "payee holds the new total",
        )
        with pytest.raises(MicroCommandError):
            await payer_service.pay(channel_id, 100_000_000_000)
    finally:
        await payer.close()
        await payee.close()
        chain.close()


@async_test
async def test_payer_fails_fast_against_a_peer_without_support(tmp_path: Path) -> None:
    chain = EmbeddedChain(tmp_path / "chain")
    payer, payer_service = await start_node("payer", tmp_path, chain)
    plain, _ = await start_node("plain", tmp_path, chain, micro=False)
    try:
        await payer.connect(f"{plain.node_id.hex()}@127.0.0.1:{port_of(plain)}")
        with pytest.raises(MicroPeerError, match="257"):
            await payer_service.open(plain.node_id, 50_000, 150)
        assert payer_service.list_channels() == []
    finally:
        await payer.close()
        await plain.close()
        chain.close()
