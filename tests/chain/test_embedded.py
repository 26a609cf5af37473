"""The embedded chain against the real kernel: mining, spending, verdicts, restarts, crashes, reorgs."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ampere.bitcoin.address import address_to_script_pubkey, script_pubkey_to_address
from ampere.bitcoin.block import (
    COINBASE_MATURITY,
    Block,
    assemble_block,
    block_subsidy,
    find_witness_commitment,
    grind,
    witness_commitment,
)
from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.network import Network
from ampere.bitcoin.script import push_int
from ampere.bitcoin.tx import COIN, OutPoint, TxOut
from ampere.chain.embedded import EmbeddedChain, EmbeddedChainBackend
from ampere.chain.errors import BlockRejectedError, BroadcastError, ChainError, RejectReason
from ampere.chain.interface import Broadcaster, ChainBackend, ChainSource, FeeEstimator
from ampere.chain.kernel import DIRTY_MARKER, VerdictStatus, verify_input

from .helpers import SINK_SCRIPT, Coin, fund_p2wpkh, mine_coins, p2wpkh_spk, spend_p2wpkh

ALICE = PrivateKey.from_int(0xA11CE)
BOB = PrivateKey.from_int(0xB0B)
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[EmbeddedChain]:
    with EmbeddedChain(tmp_path / "chain") as opened:
        yield opened


def test_new_chain_starts_at_regtest_genesis(chain: EmbeddedChain) -> None:
    assert chain.tip_height() == 0
    assert chain.tip_hash()[::-1].hex() == "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    genesis = chain.get_block(chain.tip_hash())
    assert genesis is not None
    assert genesis.computed_merkle_root() == genesis.header.merkle_root
    # Bitcoin Core keeps the genesis coinbase out of the UTXO set and the transaction index.
    coinbase = genesis.transactions[0]
    assert chain.get_txout(OutPoint(coinbase.txid, 0)) is None
    assert chain.get_transaction(coinbase.txid) is None


def test_mine_to_address_and_spend_matured_coinbase(chain: EmbeddedChain) -> None:
    address = script_pubkey_to_address(p2wpkh_spk(ALICE), Network.REGTEST)
    assert address.startswith("bcrt1q")
    [block_hash] = chain.generate(1, address_to_script_pubkey(address, Network.REGTEST))
    block = chain.get_block(block_hash)
    assert block is not None
    coin = Coin(OutPoint(block.transactions[0].txid, 0), block.transactions[0].outputs[0].value, ALICE)
    assert coin.value == 50 * COIN
    coinbase_height = chain.tip_height()
    chain.generate(COINBASE_MATURITY - 2, SINK_SCRIPT)
    tx = spend_p2wpkh([coin], [TxOut(10 * COIN, p2wpkh_spk(BOB))], change_script=p2wpkh_spk(ALICE))
    with pytest.raises(BroadcastError) as refused:
        chain.submit(tx)
    assert refused.value.reason is RejectReason.PREMATURE_COINBASE_SPEND

    chain.generate(1, SINK_SCRIPT)
    assert chain.tip_height() == coinbase_height + COINBASE_MATURITY - 1
    assert chain.submit(tx) == tx.txid
    assert chain.get_txout(coin.outpoint) is None  # spent in the mempool
    assert chain.get_txout(coin.outpoint, include_mempool=False) is not None
    unconfirmed = chain.get_txout(tx.outpoint(0))
    assert unconfirmed is not None and unconfirmed.height is None

    [block_hash] = chain.generate(1, SINK_SCRIPT)
    assert chain.mempool_txids() == []
    found = chain.get_transaction(tx.txid)
    assert found == (tx, block_hash)
    paid = chain.get_txout(tx.outpoint(0))
    assert paid is not None and paid.height == chain.tip_height() and paid.output.value == 10 * COIN
    assert chain.get_txout(coin.outpoint, include_mempool=False) is None
    status = chain.tx_status(tx.txid)
    assert status.block_height == chain.tip_height() and not status.in_mempool
    # The miner collected the fee on top of the subsidy.
    block = chain.get_block(block_hash)
    assert block is not None
    fee = coin.value - tx.total_output_value()
    assert block.transactions[0].outputs[0].value == block_subsidy(chain.tip_height()) + fee


def test_generated_blocks_carry_bip34_height_and_witness_commitment(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 100_000)
    tx = spend_p2wpkh([coin], [TxOut(90_000, p2wpkh_spk(BOB))])
    chain.submit(tx)
    [block_hash] = chain.generate(1, p2wpkh_spk(BOB))
    block = chain.get_block(block_hash)
    assert block is not None
    height = chain.tip_height()
    coinbase = block.transactions[0]
    assert coinbase.inputs[0].script_sig.startswith(push_int(height))
    assert find_witness_commitment(coinbase) == witness_commitment(block.computed_witness_root())
    assert block.computed_merkle_root() == block.header.merkle_root
    assert block.header.time > chain.median_time_past(height - 1)
    assert block.header.check_pow()
    assert [t.txid for t in block.transactions[1:]] == [tx.txid]
    assert chain.block_height(block_hash) == height and chain.block_hash(height) == block_hash


def test_kernel_refuses_a_full_subsidy_coinbase_after_the_halving(chain: EmbeddedChain) -> None:
    chain.generate(149, SINK_SCRIPT)
    tip_hash = chain.tip_hash()
    time = chain.median_time_past() + 1
    greedy = assemble_block(tip_hash, 150, time, SINK_SCRIPT, [], 0, coinbase_value=50 * COIN)
    verdict = chain.submit_block(greedy)
    assert verdict.status is VerdictStatus.INVALID
    assert verdict.result == "consensus"
    assert verdict.reason == "bad-cb-amount"
    assert "coinbase pays too much" in verdict.detail
    assert chain.tip_height() == 149 and chain.tip_hash() == tip_hash

    honest = assemble_block(tip_hash, 150, time, SINK_SCRIPT, [], 0)
    assert honest.transactions[0].outputs[0].value == 25 * COIN
    assert chain.submit_block(honest).status is VerdictStatus.CONNECTED
    assert chain.tip_height() == 150
    assert chain.submit_block(honest).status is VerdictStatus.DUPLICATE


def test_kernel_reports_a_mutated_block(chain: EmbeddedChain) -> None:
    block = assemble_block(chain.tip_hash(), 1, chain.median_time_past() + 1, SINK_SCRIPT, [], 0)
    broken = Block(grind(replace(block.header, merkle_root=b"\x01" * 32)), block.transactions)
    verdict = chain.submit_block(broken)
    assert not verdict.valid
    assert verdict.result == "mutated" and verdict.reason == "bad-txnmrklroot"
    assert chain.tip_height() == 0


def test_mined_block_refused_by_kernel_drops_the_offending_transaction(chain: EmbeddedChain) -> None:
    """Fault injection: a mempool that skips script checks lets a bad signature in; the kernel still
    refuses the block, and generate drops the transaction so the next block goes through."""
    coin = fund_p2wpkh(chain, ALICE, 100_000)
    good = spend_p2wpkh([coin], [TxOut(90_000, p2wpkh_spk(BOB))])
    other = spend_p2wpkh([coin], [TxOut(90_001, p2wpkh_spk(BOB))])
    forged = good.with_witness(0, other.inputs[0].witness)
    chain.mempool._verify = lambda raw, spent, flags: []
    chain.submit(forged)
    tip = chain.tip_hash()
    with pytest.raises(BlockRejectedError) as refused:
        chain.generate(1, SINK_SCRIPT)
    assert "script-verify-flag-failed" in refused.value.detail
    assert chain.tip_hash() == tip
    assert chain.mempool_txids() == []
    assert len(chain.generate(1, SINK_SCRIPT)) == 1


def test_child_pays_for_parent_and_blocks_keep_dependency_order(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 1_000_000)
    parent = spend_p2wpkh([coin], [TxOut(999_800, p2wpkh_spk(ALICE))], feerate_sat_per_vb=1)
    parent_fee = coin.value - parent.total_output_value()
    assert parent_fee < 2 * parent.vsize
    chain.submit(parent)
    child_coin = Coin(parent.outpoint(0), 999_800, ALICE)
    child = spend_p2wpkh([child_coin], [TxOut(950_000, p2wpkh_spk(BOB))])
    chain.submit(child)
    assert chain.mempool.parents(child.txid) == {parent.txid}
    [block_hash] = chain.generate(1, SINK_SCRIPT)
    block = chain.get_block(block_hash)
    assert block is not None
    assert [tx.txid for tx in block.transactions[1:]] == [parent.txid, child.txid]


def test_restart_keeps_tip_utxos_tx_index_and_mempool(tmp_path: Path) -> None:
    datadir = tmp_path / "chain"
    with EmbeddedChain(datadir) as chain:
        coin = fund_p2wpkh(chain, ALICE, 500_000)
        confirmed = spend_p2wpkh([coin], [TxOut(400_000, p2wpkh_spk(BOB))], change_script=p2wpkh_spk(ALICE))
        chain.submit(confirmed)
        chain.generate(1, SINK_SCRIPT)
        pending = spend_p2wpkh([Coin(confirmed.outpoint(0), 400_000, BOB)], [TxOut(300_000, SINK_SCRIPT)])
        chain.submit(pending)
        tip = (chain.tip_height(), chain.tip_hash())
        utxo = chain.get_txout(confirmed.outpoint(1), include_mempool=False)
        located = chain.get_transaction(confirmed.txid)
    assert not (datadir / DIRTY_MARKER).exists()

    with EmbeddedChain(datadir) as chain:
        assert not chain.reindexed
        assert (chain.tip_height(), chain.tip_hash()) == tip
        assert chain.get_txout(confirmed.outpoint(1), include_mempool=False) == utxo
        assert chain.get_transaction(confirmed.txid) == located
        assert chain.mempool_txids() == [pending.txid]
        assert chain.get_txout(confirmed.outpoint(0)) is None  # spent by the restored mempool
        chain.generate(1, SINK_SCRIPT)
        assert chain.tx_status(pending.txid).block_height == tip[0] + 1


def test_a_second_opener_is_refused(chain: EmbeddedChain) -> None:
    with pytest.raises(ChainError, match="in use"):
        EmbeddedChain(chain.datadir)


_CRASH_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ampere.chain.embedded import EmbeddedChain
    from tests.chain.helpers import SINK_SCRIPT, fund_p2wpkh
    from ampere.bitcoin.keys import PrivateKey

    datadir = Path(sys.argv[1])
    with EmbeddedChain(datadir) as chain:
        chain.generate(30, SINK_SCRIPT)
    chain = EmbeddedChain(datadir)
    coin = fund_p2wpkh(chain, PrivateKey.from_int(7), 123_456)  # mines 111 blocks
    chain.generate(5, SINK_SCRIPT)
    print(chain.tip_height(), chain.tip_hash().hex(), coin.outpoint.txid.hex(), flush=True)
    time.sleep(60)
    """
)


def test_kill_9_after_mining_recovers_by_reindex(tmp_path: Path) -> None:
    datadir = tmp_path / "chain"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASH_SCRIPT, str(datadir)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    height_text, tip_hex, funding_txid_hex = line.split()
    assert (datadir / DIRTY_MARKER).exists()

    with EmbeddedChain(datadir) as chain:
        assert chain.reindexed
        assert chain.tip_height() == int(height_text)
        assert chain.tip_hash() == bytes.fromhex(tip_hex)
        funding = OutPoint(bytes.fromhex(funding_txid_hex), 0)
        coin = chain.get_txout(funding)
        assert coin is not None and coin.output.value == 123_456
        assert chain.get_transaction(funding.txid) is not None
        chain.generate(1, SINK_SCRIPT)
    with EmbeddedChain(datadir) as chain:
        assert not chain.reindexed
        assert chain.tip_height() == int(height_text) + 1


def test_reorg_returns_transactions_to_the_mempool(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 200_000)
    tx = spend_p2wpkh([coin], [TxOut(150_000, p2wpkh_spk(BOB))])
    chain.submit(tx)
    [mined] = chain.generate(1, SINK_SCRIPT)
    height = chain.tip_height()
    assert chain.get_transaction(tx.txid) == (tx, mined)

    new_hashes = chain.reorg(1, SINK_SCRIPT)
    assert len(new_hashes) == 2 and chain.tip_height() == height + 1
    assert chain.block_height(mined) is None  # stale, but still readable
    assert chain.get_block(mined) is not None
    assert chain.get_transaction(tx.txid) == (tx, None)
    assert chain.mempool_txids() == [tx.txid]
    assert chain.get_txout(tx.outpoint(0), include_mempool=False) is None
    assert chain.get_txout(coin.outpoint, include_mempool=False) is not None

    [remined] = chain.generate(1, SINK_SCRIPT)
    assert chain.get_transaction(tx.txid) == (tx, remined)


def test_reorg_drops_transactions_the_new_chain_makes_invalid(chain: EmbeddedChain) -> None:
    [coin] = mine_coins(chain, ALICE)
    spend = spend_p2wpkh([coin], [TxOut(coin.value - 10_000, p2wpkh_spk(BOB))])
    chain.submit(spend)
    # Every block above genesis is replaced, the one whose coinbase the spend uses included.
    chain.reorg(chain.tip_height(), SINK_SCRIPT)
    assert spend.txid not in chain.mempool_txids()
    assert chain.get_txout(coin.outpoint) is None


def test_index_survives_catch_up_after_reorg_and_restart(tmp_path: Path) -> None:
    datadir = tmp_path / "chain"
    with EmbeddedChain(datadir) as chain:
        coin = fund_p2wpkh(chain, ALICE, 300_000)
        chain.reorg(2, SINK_SCRIPT)
        tip = chain.tip_hash()
        assert chain.get_txout(coin.outpoint) is not None  # funding went back to the mempool
    with EmbeddedChain(datadir) as chain:
        assert chain.tip_hash() == tip
        assert coin.outpoint.txid in chain.mempool_txids()


def test_index_rolls_back_a_branch_the_kernel_left_and_rebuilds_when_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    datadir = tmp_path / "chain"
    with EmbeddedChain(datadir) as chain:
        coin = fund_p2wpkh(chain, ALICE, 300_000)
        spend = spend_p2wpkh([coin], [TxOut(290_000, p2wpkh_spk(BOB))])
        chain.submit(spend)
        chain.generate(3, SINK_SCRIPT)
    old_index = (datadir / "index.sqlite").read_bytes()
    with EmbeddedChain(datadir) as chain:
        chain.reorg(3, SINK_SCRIPT)
        chain.mempool.clear()
        tip = chain.tip_hash()
        expected = chain.get_txout(coin.outpoint, include_mempool=False)
        assert expected is not None
    # The index from before the reorg: it must roll back three blocks with the kernel's undo data.
    (datadir / "index.sqlite").write_bytes(old_index)
    with caplog.at_level(logging.INFO, logger="ampere.chain"), EmbeddedChain(datadir) as chain:
        assert "replaying blocks" in caplog.text and "cannot roll" not in caplog.text
        assert chain.tip_hash() == tip
        assert chain.get_txout(coin.outpoint, include_mempool=False) == expected
        assert chain.get_transaction(spend.txid) is None
        assert chain.get_txout(spend.outpoint(0), include_mempool=False) is None
    # No index at all: rebuilt from the kernel's blocks.
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
        (datadir / name).unlink(missing_ok=True)
    with EmbeddedChain(datadir) as chain:
        assert chain.tip_hash() == tip
        assert chain.get_txout(coin.outpoint, include_mempool=False) == expected
        assert chain.get_transaction(coin.outpoint.txid) is not None


def test_verify_input_runs_the_kernel_script_check() -> None:
    coin = Coin(OutPoint(b"\x11" * 32, 0), 100_000, ALICE)
    tx = spend_p2wpkh([coin], [TxOut(90_000, p2wpkh_spk(BOB))])
    raw = tx.serialize()
    assert verify_input(coin.script_pubkey, coin.value, raw, [coin.txout], 0)
    more = TxOut(coin.value + 1, coin.script_pubkey)
    assert not verify_input(coin.script_pubkey, more.value, raw, [more], 0)
    assert not verify_input(p2wpkh_spk(BOB), coin.value, raw, [TxOut(coin.value, p2wpkh_spk(BOB))], 0)


def test_async_backend_implements_chain_backend(chain: EmbeddedChain) -> None:
    backend: ChainBackend = EmbeddedChainBackend(chain)  # mypy checks the structure
    assert all(isinstance(backend, proto) for proto in (ChainSource, Broadcaster, FeeEstimator))

    async def scenario() -> None:
        coin = fund_p2wpkh(chain, ALICE, 50_000)
        tx = spend_p2wpkh([coin], [TxOut(40_000, p2wpkh_spk(BOB))])
        await backend.test_accept(tx)
        assert await backend.mempool_transactions() == ()
        assert await backend.broadcast(tx) == tx.txid
        assert await backend.mempool_transactions() == (tx,)
        height = await backend.tip_height()
        info = await backend.block_at(height)
        assert info.height == height and info.block_hash == await backend.block_hash(height)
        assert (await backend.block_by_hash(info.block_hash)).transactions == info.transactions
        assert await backend.feerate_per_kw(6) == 500
        assert await backend.get_txout(tx.outpoint(0)) is not None
        with pytest.raises(ChainError):
            await backend.block_hash(height + 1)

    asyncio.run(scenario())


def test_block_refused_for_its_header_keeps_the_mempool(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 100_000)
    tx = spend_p2wpkh([coin], [TxOut(90_000, p2wpkh_spk(BOB))])
    chain.submit(tx)
    chain.set_mock_time(chain.median_time_past() + 3 * 3600)  # beyond the kernel's two hours
    with pytest.raises(BlockRejectedError, match="time-too-new"):
        chain.generate(1, SINK_SCRIPT)
    assert chain.mempool_txids() == [tx.txid]
    chain.set_mock_time(None)
    chain.generate(1, SINK_SCRIPT)
    assert chain.tx_status(tx.txid).block_height == chain.tip_height()
