"""What the scenario tests ask of the chain: verdicts with their reasons, and where the money went."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.chain.embedded import EmbeddedChain
from ampere.chain.errors import BroadcastError, RejectReason
from ampere.cli.demo.channel_kit import SINK_SCRIPT


def rejected(chain: EmbeddedChain, tx: Transaction, reason: RejectReason, detail: str) -> BroadcastError:
    """Submit `tx`, expecting the chain to refuse it for `reason` with `detail` in bitcoind's string."""
    with pytest.raises(BroadcastError) as caught:
        chain.submit(tx)
    error = caught.value
    assert error.reason is reason, f"expected {reason}, got {error.reason}: {error.detail}"
    assert detail in error.detail
    assert chain.mempool_tx(tx.txid) is None
    return error


def accepted(chain: EmbeddedChain, tx: Transaction) -> None:
    assert chain.submit(tx) == tx.txid
    assert chain.tx_status(tx.txid).in_mempool


def mine_to(chain: EmbeddedChain, height: int) -> None:
    """Mine empty-of-interest blocks until the tip is `height` (which must not be behind)."""
    tip = chain.tip_height()
    assert height >= tip, f"the scenario planned height {height} but the tip is already {tip}"
    if height > tip:
        chain.generate(height - tip, SINK_SCRIPT)


def confirm(chain: EmbeddedChain, txs: Sequence[Transaction]) -> int:
    """Mine one block and check it took every one of `txs`; returns its height."""
    chain.generate(1, SINK_SCRIPT)
    height = chain.tip_height()
    for tx in txs:
        assert chain.tx_status(tx.txid).block_height == height
    return height


@dataclass(frozen=True, slots=True)
class Tally:
    fees_sat: int
    final_outputs: dict[OutPoint, int]
    external_inputs_sat: int

    @property
    def final_sat(self) -> int:
        return sum(self.final_outputs.values())


def tally(chain: EmbeddedChain, root: OutPoint, txs: Sequence[Transaction]) -> Tally:
    """Money flowing out of `root` through confirmed `txs`, every amount read back from the chain.

    Inputs spending neither `root` nor an output of `txs` are external (a wallet's fee input).
    Final outputs are those no transaction of `txs` spends; each must be confirmed and unspent.
    """
    ours = {tx.txid for tx in txs}
    spent = {txin.prevout for tx in txs for txin in tx.inputs}
    fees = external = 0
    final: dict[OutPoint, int] = {}
    for tx in txs:
        found = chain.get_transaction(tx.txid)
        assert found is not None and found[1] is not None, f"{tx.txid_hex} is not confirmed"
        value_in = 0
        for txin in tx.inputs:
            parent = chain.get_transaction(txin.prevout.txid)
            assert parent is not None
            value = parent[0].outputs[txin.prevout.vout].value
            value_in += value
            if txin.prevout != root and txin.prevout.txid not in ours:
                external += value
        fees += value_in - tx.total_output_value()
        for vout, txout in enumerate(tx.outputs):
            outpoint = OutPoint(tx.txid, vout)
            if outpoint not in spent:
                unspent = chain.get_txout(outpoint, include_mempool=False)
                assert unspent is not None and unspent.height is not None
                final[outpoint] = txout.value
    return Tally(fees, final, external)
