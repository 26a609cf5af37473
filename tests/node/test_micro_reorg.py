"""Micropayment channels in two in-process nodes through reorgs of the embedded chain, over real TCP.

The funding's block leaves the chain: both sides go back to `opening` with their payments kept, the
payer sends the funding again (here it is gone from the mempool, as a node that never saw it would
be), and the channel opens again at the new depth. Then the settlement's block leaves the chain: the
payee is settling again, sends it again, and it confirms. Payments are conserved throughout.
"""

from __future__ import annotations

from pathlib import Path

from ampere.chain.embedded import EmbeddedChain
from ampere.node.micro_service import MicroService
from ampere.node.node import Node
from tests.chain.helpers import SINK_SCRIPT

from .helpers import async_test
from .test_micro_service import mine, port_of, start_node, wait_until

CAPACITY_SAT = 50_000


def _state(service: MicroService, channel_id: bytes) -> str | None:
    info = service.info(channel_id)
    return None if info is None else info.state


def _paid(service: MicroService, channel_id: bytes) -> int:
    info = service.info(channel_id)
    assert info is not None
    return info.paid_msat


async def _follow(chain: EmbeddedChain, *nodes: Node) -> None:
    tip = chain.tip_height()
    for node in nodes:
        await wait_until(lambda node=node: node.follower.height >= tip, "the nodes to follow")  # type: ignore[misc]


@async_test
async def test_funding_and_settlement_reorged_out_and_back(tmp_path: Path) -> None:
    chain = EmbeddedChain(tmp_path / "chain")
    payer, payer_service = await start_node("payer", tmp_path, chain)
    payee, payee_service = await start_node("payee", tmp_path, chain)
    try:
        await mine(payer, 101, payee)
        await payer.connect(f"{payee.node_id.hex()}@127.0.0.1:{port_of(payee)}")
        opened = await payer_service.open(payee.node_id, CAPACITY_SAT, 150)
        channel_id, funding_txid = opened.channel_id, opened.funding_txid
        await mine(payer, 3, payee)  # the payee's minimum_depth
        for service in (payer_service, payee_service):
            await wait_until(lambda s=service: _state(s, channel_id) == "open", "open")  # type: ignore[misc]
        await payer_service.pay(channel_id, 2_000_000)
        await payer_service.pay(channel_id, 1_500_000)
        await wait_until(lambda: _paid(payee_service, channel_id) == 3_500_000, "the payee holds 3500 sat")

        # The funding's block and the two above it are replaced by four empty blocks.
        funding_height = chain.tip_height() - 2
        assert chain.tx_status(funding_txid).block_height == funding_height
        chain.reorg(3, SINK_SCRIPT, 4)
        assert chain.mempool.remove(funding_txid) == [funding_txid]
        await _follow(chain, payer, payee)
        for service in (payer_service, payee_service):
            await wait_until(lambda s=service: _state(s, channel_id) == "opening", "opening again")  # type: ignore[misc]
            assert _paid(service, channel_id) == 3_500_000
        await wait_until(lambda: chain.mempool_tx(funding_txid) is not None, "the funding sent again")
        assert chain.tx_status(funding_txid).block_height is None

        # It confirms again, one block higher: open once it is three deep, and payments go on.
        await mine(payer, 2, payee)
        assert _state(payee_service, channel_id) == "opening"  # two deep of three
        await mine(payer, 1, payee)
        for service in (payer_service, payee_service):
            await wait_until(lambda s=service: _state(s, channel_id) == "open", "open again")  # type: ignore[misc]
        assert chain.tx_status(funding_txid).block_height == chain.tip_height() - 2
        result = await payer_service.pay(channel_id, 500_000)
        assert (result.paid_msat, result.sequence) == (4_000_000, 3)
        await wait_until(lambda: _paid(payee_service, channel_id) == 4_000_000, "the payee holds 4000 sat")

        # The settlement confirms, then its block leaves the chain and the mempool.
        settlement_txid = await payee_service.settle(channel_id)
        await mine(payer, 1, payee)
        for service in (payer_service, payee_service):
            await wait_until(lambda s=service: _state(s, channel_id) == "settled", "settled")  # type: ignore[misc]
        chain.reorg(1, SINK_SCRIPT, 2)
        assert chain.mempool.remove(settlement_txid) == [settlement_txid]
        await _follow(chain, payer, payee)
        for service in (payer_service, payee_service):
            await wait_until(lambda s=service: _state(s, channel_id) == "open", "not settled any more")  # type: ignore[misc]
        await wait_until(lambda: chain.mempool_tx(settlement_txid) is not None, "the settlement sent again")

        await mine(payer, 1, payee)
        for service in (payer_service, payee_service):
            await wait_until(lambda s=service: _state(s, channel_id) == "settled", "settled again")  # type: ignore[misc]
            assert _paid(service, channel_id) == 4_000_000
        found = chain.get_transaction(settlement_txid)
        assert found is not None
        settlement = found[0]
        funding = chain.get_transaction(funding_txid)
        assert (
            funding is not None
            and funding[0].outputs[settlement.inputs[0].prevout.vout].value == CAPACITY_SAT
        )
        # Conservation: the payee gets floor(paid / 1000) sat; the rest is the payer's change and the fee.
        payee_outputs = [
            out.value for out in settlement.outputs if payee.wallet.wallet.owns(out.script_pubkey)
        ]
        assert payee_outputs == [4_000]
        assert sum(out.value for out in settlement.outputs) < CAPACITY_SAT
        await wait_until(
            lambda: any(f.outpoint.txid == settlement_txid and f.blockheight for f in payee.list_funds()),
            "the payee's wallet holds the settlement output",
        )
    finally:
        await payer.close()
        await payee.close()
        chain.close()


@async_test
async def test_a_reorg_while_the_payee_is_down_is_noticed_at_start(tmp_path: Path) -> None:
    chain = EmbeddedChain(tmp_path / "chain")
    payer, payer_service = await start_node("payer", tmp_path, chain)
    payee, payee_service = await start_node("payee", tmp_path, chain)
    try:
        await mine(payer, 101, payee)
        await payer.connect(f"{payee.node_id.hex()}@127.0.0.1:{port_of(payee)}")
        opened = await payer_service.open(payee.node_id, CAPACITY_SAT, 150)
        channel_id, funding_txid = opened.channel_id, opened.funding_txid
        await mine(payer, 3, payee)
        await wait_until(lambda: _state(payer_service, channel_id) == "open", "open")
        await payer_service.pay(channel_id, 2_500_000)
        await wait_until(lambda: _paid(payee_service, channel_id) == 2_500_000, "the payee holds 2500 sat")

        await payee.close()
        chain.reorg(3, SINK_SCRIPT, 4)  # the funding's block goes; the funding waits in the mempool
        payee, payee_service = await start_node("payee", tmp_path, chain)
        assert _state(payee_service, channel_id) == "opening"  # decided during start, before any block
        assert _paid(payee_service, channel_id) == 2_500_000

        await payer.connect(f"{payee.node_id.hex()}@127.0.0.1:{port_of(payee)}")
        await mine(payer, 3, payee)
        assert chain.tx_status(funding_txid).block_height == chain.tip_height() - 2
        for service in (payer_service, payee_service):
            await wait_until(lambda s=service: _state(s, channel_id) == "open", "open again")  # type: ignore[misc]
        result = await payer_service.pay(channel_id, 500_000)
        assert (result.paid_msat, result.sequence) == (3_000_000, 2)
        await wait_until(lambda: _paid(payee_service, channel_id) == 3_000_000, "the payee holds 3000 sat")
    finally:
        await payer.close()
        await payee.close()
        chain.close()
