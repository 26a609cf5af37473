"""The one chain interface the rest of the node uses, whatever backend sits behind it.

Backends: `ampere.chain.embedded.EmbeddedChain` (regtest, in-process, validated by libbitcoinkernel)
and `ampere.chain.bitcoind.BitcoindChain` (bitcoind's JSON-RPC, which `ampere chain` also serves).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ampere.bitcoin.tx import OutPoint, Transaction, TxOut


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """A block as the node sees it. Hashes are in internal byte order."""

    height: int
    block_hash: bytes
    prev_hash: bytes
    time: int
    transactions: tuple[Transaction, ...]

    @property
    def hash_hex(self) -> str:
        return self.block_hash[::-1].hex()


@dataclass(frozen=True, slots=True)
class TxStatus:
    """Where a transaction stands: in a block (`block_height`), in the mempool, or unknown (None)."""

    txid: bytes
    block_height: int | None
    in_mempool: bool


@dataclass(frozen=True, slots=True)
class UnspentOutput:
    outpoint: OutPoint
    output: TxOut
    height: int | None  # None while unconfirmed
    coinbase: bool


@runtime_checkable
class ChainSource(Protocol):
    """Read access to the best chain; every method is a coroutine so that RPC backends fit."""

    async def tip_height(self) -> int: ...

    async def block_hash(self, height: int) -> bytes: ...

    async def block_at(self, height: int) -> BlockInfo: ...

    async def block_by_hash(self, block_hash: bytes) -> BlockInfo: ...

    async def get_txout(self, outpoint: OutPoint, include_mempool: bool = True) -> UnspentOutput | None: ...

    async def mempool_transactions(self) -> tuple[Transaction, ...]: ...


@runtime_checkable
class Broadcaster(Protocol):
    async def broadcast(self, tx: Transaction) -> bytes:
        """Submit `tx`; returns its txid or raises BroadcastError with a typed reason."""
        ...

    async def test_accept(self, tx: Transaction) -> None:
        """Raise BroadcastError if `tx` would not be accepted now; change nothing."""
        ...


@runtime_checkable
class FeeEstimator(Protocol):
    async def feerate_per_kw(self, target_blocks: int) -> int:
        """Fee rate in satoshis per 1000 weight units, never below the 253 sat/kw floor."""
        ...


class ChainBackend(ChainSource, Broadcaster, FeeEstimator, Protocol):
    """Everything a node needs from its chain."""


FEERATE_FLOOR_PER_KW = 253


def btc_per_kvb_to_sat_per_kw(btc_per_kvb_sat: int) -> int:
    """Convert a fee rate in satoshis per 1000 vbytes to satoshis per 1000 weight, floored at 253."""
    return max(FEERATE_FLOOR_PER_KW, btc_per_kvb_sat // 4)
