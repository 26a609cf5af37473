"""Embedded regtest chain throughput: blocks mined and connected, mempool acceptance, full blocks.

Run: ``.venv/bin/python bench/bench_blocks.py [--blocks 500] [--txs 1000]``.
Every block goes through libbitcoinkernel and the SQLite index; every transaction through the full
mempool policy and the kernel's script verifier. Single thread, temporary datadir.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.script import p2wpkh_script
from ampere.bitcoin.signing import sign_p2wpkh_input
from ampere.bitcoin.tx import SEQUENCE_LOCKTIME_ONLY, OutPoint, Transaction, TxIn, TxOut
from ampere.chain.embedded import EmbeddedChain

KEY = PrivateKey.from_int(0xBE7C)
SPK = p2wpkh_script(KEY.public_key.data)
OUTPUT_VALUE = 100_000
FEE = 500


def _spend(outpoint: OutPoint, value: int, outputs: list[TxOut]) -> Transaction:
    tx = Transaction(2, (TxIn(outpoint, b"", SEQUENCE_LOCKTIME_ONLY),), tuple(outputs), 0)
    return sign_p2wpkh_input(tx, 0, KEY, value)


def run(datadir: Path, blocks: int, txs: int) -> None:
    with EmbeddedChain(datadir) as chain:
        start = time.perf_counter()
        hashes = chain.generate(blocks, SPK)
        elapsed = time.perf_counter() - start
        print(f"mined + connected {blocks} empty blocks: {blocks / elapsed:,.0f} blocks/s ({elapsed:.2f} s)")

        first = chain.get_block(hashes[0])
        assert first is not None
        coinbase = first.transactions[0]
        fan_out = _spend(
            OutPoint(coinbase.txid, 0),
            coinbase.outputs[0].value,
            [TxOut(OUTPUT_VALUE, SPK) for _ in range(txs)],
        )
        chain.submit(fan_out)
        chain.generate(1, SPK)
        spends = [
            _spend(fan_out.outpoint(i), OUTPUT_VALUE, [TxOut(OUTPUT_VALUE - FEE, SPK)]) for i in range(txs)
        ]

        start = time.perf_counter()
        for tx in spends:
            chain.test_accept(tx)
        elapsed = time.perf_counter() - start
        print(f"test_accept of 1-in-1-out P2WPKH spends: {txs / elapsed:,.0f} tx/s")

        start = time.perf_counter()
        for tx in spends:
            chain.submit(tx)
        elapsed = time.perf_counter() - start
        print(f"mempool acceptance of 1-in-1-out P2WPKH spends: {txs / elapsed:,.0f} tx/s ({elapsed:.2f} s)")

        start = time.perf_counter()
        chain.generate(1, SPK)
        elapsed = time.perf_counter() - start
        print(f"mining + connecting one block of {txs} transactions: {elapsed * 1000:,.0f} ms")
        assert not chain.mempool_txids()
        tip = chain.tip_height()

    start = time.perf_counter()
    with EmbeddedChain(datadir) as chain:
        assert chain.tip_height() == tip
        elapsed = time.perf_counter() - start
    print(f"clean reopen at height {tip}: {elapsed * 1000:,.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=500)
    parser.add_argument("--txs", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ampere-bench-") as tmp:
        run(Path(tmp) / "chain", args.blocks, args.txs)


if __name__ == "__main__":
    main()
