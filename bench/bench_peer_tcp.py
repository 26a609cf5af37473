"""Peer-layer throughput over loopback TCP: two PeerManagers, one BOLT 8 connection, one direction.

Run: ``.venv/bin/python bench/bench_peer_tcp.py [--count 20000] [--sizes 64,1000,65533]``.
Each figure covers the whole path a channel message takes: encode, encrypt and frame, the
writer lock and ``drain``, the kernel's loopback, reading and decrypting, BOLT 1 dispatch and
the registered handler.  Both ends share one event loop (one core), as in a single node talking
to itself, so the figures are a lower bound for two processes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.network import Network
from ampere.node.peer_manager import PeerManager, PeerManagerConfig
from ampere.wire import Message, UnknownMessage

BENCH_TYPE = 32769
_CONFIG = PeerManagerConfig(ping_interval=None, report_private_remote_addr=True)


async def _pair() -> tuple[PeerManager, PeerManager]:
    sender = PeerManager(PrivateKey.generate(), Network.REGTEST, _CONFIG)
    receiver = PeerManager(PrivateKey.generate(), Network.REGTEST, _CONFIG)
    _host, port = await receiver.listen("127.0.0.1", 0)
    await sender.connect(receiver.node_id, "127.0.0.1", port)
    await receiver.wait_for(lambda: receiver.is_connected(sender.node_id), 10.0)
    return sender, receiver


async def bench_throughput(size: int, count: int) -> tuple[float, float]:
    """Messages per second and payload MB/s for ``count`` messages of ``size`` bytes (type included)."""
    sender, receiver = await _pair()
    received = 0
    done = asyncio.Event()

    async def handler(_peer: bytes, _message: Message | UnknownMessage) -> None:
        nonlocal received
        received += 1
        if received == count:
            done.set()

    receiver.register_handler(BENCH_TYPE, handler)
    message = UnknownMessage(BENCH_TYPE, bytes(size - 2))
    try:
        start = time.perf_counter()
        for _ in range(count):
            await sender.send(receiver.node_id, message)
        await asyncio.wait_for(done.wait(), 120.0)
        elapsed = time.perf_counter() - start
    finally:
        await sender.close()
        await receiver.close()
    rate = count / elapsed
    return rate, rate * size / 1e6


async def bench_concurrent(size: int, count: int, tasks: int) -> float:
    """Messages per second when ``tasks`` coroutines send at once through the writer lock."""
    sender, receiver = await _pair()
    received = 0
    done = asyncio.Event()
    total = count - count % tasks

    async def handler(_peer: bytes, _message: Message | UnknownMessage) -> None:
        nonlocal received
        received += 1
        if received == total:
            done.set()

    async def worker(n: int) -> None:
        for _ in range(n):
            await sender.send(receiver.node_id, message)

    receiver.register_handler(BENCH_TYPE, handler)
    message = UnknownMessage(BENCH_TYPE, bytes(size - 2))
    try:
        start = time.perf_counter()
        await asyncio.gather(*(worker(total // tasks) for _ in range(tasks)))
        await asyncio.wait_for(done.wait(), 120.0)
        elapsed = time.perf_counter() - start
    finally:
        await sender.close()
        await receiver.close()
    return total / elapsed


async def bench_ping(rounds: int) -> tuple[float, float]:
    """Median and 99th-percentile ping round trip, in microseconds."""
    sender, receiver = await _pair()
    try:
        samples = []
        for _ in range(rounds):
            rtt = await sender.ping(receiver.node_id, 0)
            assert rtt is not None
            samples.append(rtt * 1e6)
    finally:
        await sender.close()
        await receiver.close()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


async def _main(count: int, sizes: list[int]) -> None:
    for size in sizes:
        n = count if size <= 4096 else max(count // 20, 100)
        rate, mbps = await bench_throughput(size, n)
        print(f"loopback TCP, one connection, {size:>5}-byte messages: {rate:>9,.0f} msg/s  {mbps:8.1f} MB/s")
    rate = await bench_concurrent(1000, count, 16)
    print(f"loopback TCP, 16 concurrent senders, 1000-byte messages: {rate:>9,.0f} msg/s")
    median, p99 = await bench_ping(2000)
    print(f"ping round trip (same event loop): median {median:,.0f} us, p99 {p99:,.0f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=20000, help="messages per measurement")
    parser.add_argument("--sizes", default="64,1000,65535", help="message sizes in bytes, type included")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if any(not 2 <= s <= 65535 for s in sizes):
        parser.error("sizes must be between 2 and 65535")
    asyncio.run(_main(args.count, sizes))


if __name__ == "__main__":
    main()
