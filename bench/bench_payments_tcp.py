"""Payments per second between two `ampere node` processes on one `ampere chain`, one channel, over RPC.

Run: ``.venv/bin/python bench/bench_payments_tcp.py [--sequential 300] [--pipelined 2000] [--in-flight 100]``.
Each payment is the whole path: `pay` over JSON-RPC, invoice decoding, the pending record, the onion,
`update_add_htlc` and the commitment dance over BOLT 8, the payee's checks and durable "paid" record,
the fulfil and its dance, and the "complete" record. Invoices are issued beforehand (not timed).
One at a time gives the latency (p50/p99); pipelined keeps N payments in flight and gives throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.harness import NodeProcess, start_chain, stop_quietly
from tests.e2e.test_payments_e2e import AsyncRpc, open_network

AMOUNT_MSAT = 10_000
INVOICE_CONCURRENCY = 16


async def _invoices(payee: AsyncRpc, count: int, tag: str) -> list[str]:
    # A bounded number of requests at a time: the node serves a limited number of RPC connections
    # (see docs/rpc.md) and would answer the rest with 503.
    slots = asyncio.Semaphore(INVOICE_CONCURRENCY)

    async def make(i: int) -> str:
        async with slots:
            made = await payee.call("invoice", {"amount_msat": AMOUNT_MSAT, "label": f"{tag}-{i}"})
        return str(made["bolt11"])

    return list(await asyncio.gather(*(make(i) for i in range(count))))


async def _sequential(payer: AsyncRpc, invoices: list[str]) -> list[float]:
    latencies = []
    for bolt11 in invoices:
        start = time.perf_counter()
        result = await payer.call("pay", [bolt11])
        latencies.append(time.perf_counter() - start)
        if result["status"] != "complete":
            raise RuntimeError(f"payment not complete: {result}")
    return latencies


async def _pipelined(payer: AsyncRpc, invoices: list[str], in_flight: int) -> float:
    slots = asyncio.Semaphore(in_flight)

    async def pay(bolt11: str) -> None:
        async with slots:
            result = await payer.call("pay", [bolt11])
        if result["status"] != "complete":
            raise RuntimeError(f"payment not complete: {result}")

    start = time.perf_counter()
    await asyncio.gather(*(pay(b) for b in invoices))
    return time.perf_counter() - start


async def _run(alice: NodeProcess, bob: NodeProcess, sequential: int, pipelined: int, in_flight: int) -> None:
    payer, payee = AsyncRpc.of(alice, connections=in_flight + 4), AsyncRpc.of(bob)
    try:
        one_by_one = await _invoices(payee, sequential, "seq")
        latencies = sorted(await _sequential(payer, one_by_one))
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"one at a time  {sequential:6d} payments  p50 {p50 * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms")
        many = await _invoices(payee, pipelined, "pipe")
        elapsed = await _pipelined(payer, many, in_flight)
        rate = pipelined / elapsed
        print(f"pipelined      {pipelined:6d} payments  {in_flight} in flight  {rate:8.0f} payments/s")
    finally:
        await payer.close()
        await payee.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=300)
    parser.add_argument("--pipelined", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ampere-bench-pay-") as tmp:
        root = Path(tmp)
        chain = start_chain(root / "chain")
        started: list[NodeProcess] = []
        try:
            network = open_network(root, chain, started)
            asyncio.run(_run(network.alice, network.bob, args.sequential, args.pipelined, args.in_flight))
        finally:
            for node in started:
                stop_quietly(node)
            chain.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
