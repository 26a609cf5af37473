"""Choosing mempool transactions for a block, by ancestor fee rate as Bitcoin Core's miner does.

A transaction is only worth as much as the package it drags in: itself plus its unconfirmed
ancestors not yet in the block. Packages are taken best fee rate first while they fit the block's
weight and sigop budgets; parents always precede their children.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from ampere.bitcoin.block import MAX_BLOCK_SIGOPS_COST, MAX_BLOCK_WEIGHT
from ampere.chain.mempool import Mempool, MempoolEntry

# Room Bitcoin Core keeps for the header and coinbase.
COINBASE_RESERVED_WEIGHT = 4_000
COINBASE_RESERVED_SIGOPS = 400


@dataclass(frozen=True, slots=True)
class BlockTemplate:
    entries: tuple[MempoolEntry, ...]
    fees: int
    weight: int
    sigops: int


def select_transactions(
    mempool: Mempool,
    max_weight: int = MAX_BLOCK_WEIGHT - COINBASE_RESERVED_WEIGHT,
    max_sigops: int = MAX_BLOCK_SIGOPS_COST - COINBASE_RESERVED_SIGOPS,
) -> BlockTemplate:
    entries = {entry.txid: entry for entry in mempool.entries()}
    ancestors = {txid: mempool.ancestors(txid) for txid in entries}
    selected: dict[bytes, MempoolEntry] = {}
    skipped: set[bytes] = set()
    weight = sigops = fees = 0

    def package(txid: bytes) -> list[bytes]:
        return [t for t in (*ancestors[txid], txid) if t not in selected]

    def score(members: list[bytes]) -> float:
        return sum(entries[t].fee for t in members) / sum(entries[t].vsize for t in members)

    heap = [(-score(package(txid)), entry.sequence, txid) for txid, entry in entries.items()]
    heapq.heapify(heap)
    while heap:
        neg_score, sequence, txid = heapq.heappop(heap)
        if txid in selected or txid in skipped:
            continue
        members = package(txid)
        current = score(members)
        if current < -neg_score - 1e-12:
            # Some ancestors went in since this score was computed; queue the package at its new worth.
            heapq.heappush(heap, (-current, sequence, txid))
            continue
        package_weight = sum(entries[t].weight for t in members)
        package_sigops = sum(entries[t].sigops for t in members)
        if weight + package_weight > max_weight or sigops + package_sigops > max_sigops:
            skipped.add(txid)
            continue
        for member in members:
            selected[member] = entries[member]
        weight += package_weight
        sigops += package_sigops
        fees += sum(entries[t].fee for t in members)
    # Fewer ancestors first is a topological order: a parent has fewer than any of its children.
    ordered = sorted(selected.values(), key=lambda e: (len(ancestors[e.txid]), e.sequence))
    return BlockTemplate(tuple(ordered), fees, weight, sigops)
