"""BOLT 8 transport throughput, in process: encrypt + decrypt of fixed-size messages.

Run: ``.venv/bin/python bench/bench_transport.py [--size 1000] [--seconds 2]``.
Figures are for one direction on one core, framing included (two AEAD
operations per message: the 18-byte length header and the body).  A loopback
TCP variant belongs with the peer layer.
"""

from __future__ import annotations

import argparse
import time

import coincurve

from ampere.crypto.noise import NoiseInitiator, NoiseResponder, NoiseTransport


def _session() -> tuple[NoiseTransport, NoiseTransport]:
    alice, bob = coincurve.PrivateKey(), coincurve.PrivateKey()
    initiator = NoiseInitiator(alice.secret, bob.public_key.format())
    responder = NoiseResponder(bob.secret)
    act_three, client = initiator.read_act_two(responder.read_act_one(initiator.act_one()))
    return client, responder.read_act_three(act_three)


def bench_handshakes(seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _session()
        count += 1
    return count / (time.perf_counter() - start)


def bench_messages(size: int, seconds: float) -> tuple[float, float]:
    sender, receiver = _session()
    payload = bytes(size)
    batch = 200
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(batch):
            frame = sender.encrypt_message(payload)
            receiver.decrypt_header(frame[:18])
            receiver.decrypt_body(frame[18:])
        count += batch
    elapsed = time.perf_counter() - start
    rate = count / elapsed
    return rate, rate * size / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=1000, help="plaintext message size in bytes")
    parser.add_argument("--seconds", type=float, default=2.0, help="time spent on each measurement")
    args = parser.parse_args()
    handshakes = bench_handshakes(args.seconds / 2)
    print(f"noise handshakes (both sides, in process): {handshakes:,.0f}/s")
    for size in sorted({args.size, 64, 65535}):
        rate, mbps = bench_messages(size, args.seconds)
        print(f"encrypt+decrypt {size:>5}-byte messages: {rate:>10,.0f} msg/s  {mbps:8.1f} MB/s")


if __name__ == "__main__":
    main()
