"""The embedded chain's own UTXO set and transaction index, built from the blocks the kernel connects.

libbitcoinkernel keeps a UTXO set but offers no lookups into it, so the chain keeps its own, in SQLite
(WAL) beside the kernel's databases: block hashes and times by height, unspent outputs, and where
each confirmed transaction sits (height, position), its bytes being read back from the kernel's block
files. Disconnecting a block restores the coins it spent from the kernel's undo data.

Writes accumulate in one SQLite transaction until `commit()`; the embedded chain commits after each
operation. If the process dies first, the index is behind the kernel and is caught up at the next
start (`EmbeddedChain` compares the two chains by hash and replays or rolls back).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from ampere.bitcoin.block import Block
from ampere.bitcoin.tx import OutPoint, TxOut
from ampere.chain.errors import ChainError
from ampere.chain.interface import UnspentOutput
from ampere.chain.kernel import SpentCoin
from ampere.chain.policy import is_unspendable

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    time INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS utxos (
    txid BLOB NOT NULL,
    vout INTEGER NOT NULL,
    value INTEGER NOT NULL,
    script BLOB NOT NULL,
    height INTEGER NOT NULL,
    coinbase INTEGER NOT NULL,
    PRIMARY KEY (txid, vout)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS utxos_by_script ON utxos (script);
CREATE TABLE IF NOT EXISTS txs (
    txid BLOB PRIMARY KEY,
    height INTEGER NOT NULL,
    position INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mempool (seq INTEGER PRIMARY KEY, raw BLOB NOT NULL);
"""

_UtxoRow = tuple[bytes, int, int, bytes, int, int]


class ChainIndexError(ChainError):
    """The index file is unusable or inconsistent with the blocks it is given."""


class ChainIndex:
    """UTXO set and transaction index of the active chain. Used from one thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # The owner serialises all calls but may make them from a worker thread other than the one
        # that opened the index (the `ampere chain` daemon does).
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
            self._db.commit()
        elif row[0] != SCHEMA_VERSION:
            raise ChainIndexError(f"index {path} has schema {row[0]}, expected {SCHEMA_VERSION}")
        # Heights, hashes and times of the whole chain stay in memory: regtest chains are short and
        # median-time-past lookups are frequent.
        self._hashes: list[bytes] = []
        self._times: list[int] = []
        self._heights: dict[bytes, int] = {}
        for height, block_hash, time in self._db.execute(
            "SELECT height, hash, time FROM blocks ORDER BY height"
        ):
            if height != len(self._hashes):
                raise ChainIndexError(f"index {path} has a gap in its blocks at height {len(self._hashes)}")
            self._append(block_hash, time)

    def _append(self, block_hash: bytes, time: int) -> None:
        self._heights[block_hash] = len(self._hashes)
        self._hashes.append(block_hash)
        self._times.append(time)

    # --- chain -----------------------------------------------------------------------------------------
    def tip_height(self) -> int:
        """-1 while not even the genesis block is indexed."""
        return len(self._hashes) - 1

    def tip_hash(self) -> bytes | None:
        return self._hashes[-1] if self._hashes else None

    def block_hash(self, height: int) -> bytes | None:
        return self._hashes[height] if 0 <= height < len(self._hashes) else None

    def block_height(self, block_hash: bytes) -> int | None:
        return self._heights.get(block_hash)

    def block_time(self, height: int) -> int:
        if not 0 <= height < len(self._times):
            raise ChainIndexError(f"no block at height {height}")
        return self._times[height]

    def median_time_past(self, height: int) -> int:
        """Median of the times of block `height` and the ten before it (BIP113)."""
        if not 0 <= height < len(self._times):
            raise ChainIndexError(f"no block at height {height}")
        window = sorted(self._times[max(0, height - 10) : height + 1])
        return window[len(window) // 2]

    # --- lookups ---------------------------------------------------------------------------------------
    def get_utxo(self, outpoint: OutPoint) -> UnspentOutput | None:
        row = self._db.execute(
            "SELECT value, script, height, coinbase FROM utxos WHERE txid = ? AND vout = ?",
            (outpoint.txid, outpoint.vout),
        ).fetchone()
        if row is None:
            return None
        return UnspentOutput(outpoint, TxOut(row[0], row[1]), row[2], bool(row[3]))

    def utxos_by_script(self, script_pubkey: bytes) -> list[UnspentOutput]:
        rows = self._db.execute(
            "SELECT txid, vout, value, height, coinbase FROM utxos WHERE script = ?"
            " ORDER BY height, txid, vout",
            (script_pubkey,),
        )
        return [
            UnspentOutput(OutPoint(txid, vout), TxOut(value, script_pubkey), height, bool(coinbase))
            for txid, vout, value, height, coinbase in rows
        ]

    def utxo_count(self) -> int:
        count: int = self._db.execute("SELECT COUNT(*) FROM utxos").fetchone()[0]
        return count

    def tx_location(self, txid: bytes) -> tuple[int, int] | None:
        """(height, position in block) of a confirmed transaction."""
        row = self._db.execute("SELECT height, position FROM txs WHERE txid = ?", (txid,)).fetchone()
        return None if row is None else (row[0], row[1])

    # --- updates ---------------------------------------------------------------------------------------
    def connect_block(self, block: Block, height: int) -> None:
        if height != len(self._hashes):
            raise ChainIndexError(f"cannot connect height {height} on an index at height {self.tip_height()}")
        if height > 0 and block.header.prev_hash != self._hashes[-1]:
            raise ChainIndexError(f"block {block.hash_hex} does not extend the indexed tip")
        block_hash = block.hash
        self._db.execute(
            "INSERT INTO blocks (height, hash, time) VALUES (?, ?, ?)",
            (height, block_hash, block.header.time),
        )
        # The genesis coinbase is not spendable and not in Bitcoin Core's UTXO set or tx index either.
        if height > 0:
            created: dict[tuple[bytes, int], _UtxoRow] = {}
            spent: list[tuple[bytes, int]] = []
            tx_rows = []
            for position, tx in enumerate(block.transactions):
                txid = tx.txid
                coinbase = position == 0
                if not coinbase:
                    for txin in tx.inputs:
                        key = (txin.prevout.txid, txin.prevout.vout)
                        if created.pop(key, None) is None:
                            spent.append(key)
                for vout, txout in enumerate(tx.outputs):
                    if not is_unspendable(txout.script_pubkey):
                        created[(txid, vout)] = (
                            txid,
                            vout,
                            txout.value,
                            txout.script_pubkey,
                            height,
                            coinbase,
                        )
                tx_rows.append((txid, height, position))
            self._db.executemany("DELETE FROM utxos WHERE txid = ? AND vout = ?", spent)
            self._db.executemany("INSERT INTO utxos VALUES (?, ?, ?, ?, ?, ?)", created.values())
            self._db.executemany("INSERT OR REPLACE INTO txs VALUES (?, ?, ?)", tx_rows)
        self._append(block_hash, block.header.time)

    def disconnect_block(self, block: Block, height: int, spent: Sequence[Sequence[SpentCoin]]) -> None:
        """Undo `connect_block`; `spent` is the kernel's undo data for the block."""
        if height != self.tip_height() or block.hash != self._hashes[-1]:
            raise ChainIndexError(f"block {block.hash_hex} at {height} is not the indexed tip")
        if height > 0:
            if len(spent) != len(block.transactions) - 1:
                raise ChainIndexError(f"undo data of block {block.hash_hex} does not match its transactions")
            created = {
                (tx.txid, vout)
                for tx in block.transactions
                for vout, txout in enumerate(tx.outputs)
                if not is_unspendable(txout.script_pubkey)
            }
            restored = []
            for tx, coins in zip(block.transactions[1:], spent, strict=True):
                for txin, coin in zip(tx.inputs, coins, strict=True):
                    key = (txin.prevout.txid, txin.prevout.vout)
                    if key not in created:
                        restored.append(
                            (
                                *key,
                                coin.output.value,
                                coin.output.script_pubkey,
                                coin.height,
                                int(coin.coinbase),
                            )
                        )
            self._db.executemany("DELETE FROM utxos WHERE txid = ? AND vout = ?", created)
            self._db.executemany("INSERT OR REPLACE INTO utxos VALUES (?, ?, ?, ?, ?, ?)", restored)
            self._db.executemany("DELETE FROM txs WHERE txid = ?", [(tx.txid,) for tx in block.transactions])
        self._db.execute("DELETE FROM blocks WHERE height = ?", (height,))
        self._heights.pop(self._hashes.pop(), None)
        self._times.pop()

    def reset(self) -> None:
        """Forget every block, to rebuild from the kernel's chain."""
        log.warning("rebuilding the chain index %s from the block files", self.path)
        self._db.execute("DELETE FROM blocks")
        self._db.execute("DELETE FROM utxos")
        self._db.execute("DELETE FROM txs")
        self._hashes.clear()
        self._times.clear()
        self._heights.clear()

    def commit(self) -> None:
        self._db.commit()

    # --- mempool persistence (written at a clean close, read back at the next start) ------------------
    def save_mempool(self, raw_transactions: Iterable[bytes]) -> None:
        self._db.execute("DELETE FROM mempool")
        self._db.executemany("INSERT INTO mempool (raw) VALUES (?)", ((raw,) for raw in raw_transactions))
        self._db.commit()

    def take_mempool(self) -> list[bytes]:
        rows = [row[0] for row in self._db.execute("SELECT raw FROM mempool ORDER BY seq")]
        self._db.execute("DELETE FROM mempool")
        self._db.commit()
        return rows

    def close(self) -> None:
        self._db.commit()
        self._db.close()
