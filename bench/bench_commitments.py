"""Commitment transactions built and signed per second, with 0 and 20 HTLCs, in both formats.

Run: ``.venv/bin/python bench/bench_commitments.py [--seconds 1]``.
One iteration is what a node does for each new state of its peer's commitment: derive that
commitment's keys from the peer's per-commitment point (given, as it arrives over the wire),
build the transaction (outputs, BIP69 order, fee, trimming) and sign it with the funding key.
The "+ HTLC signatures" figure adds the HTLC transactions and one signature per HTLC, i.e. the
whole content of a `commitment_signed`. Single thread, pure Python plus libsecp256k1.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.keys import pubkey_from_secret
from ampere.bitcoin.tx import OutPoint
from ampere.channel.transactions import (
    ChannelBasepoints,
    CommitmentFormat,
    CommitmentParams,
    CommitmentTransaction,
    Htlc,
    HtlcDirection,
    build_commitment,
    commitment_obscuring_factor,
    derive_commitment_keys,
    htlc_transactions,
    sign_commitment,
    sign_remote_htlc,
)
from ampere.crypto.keys import derive_privkey
from ampere.crypto.shachain import PerCommitmentSecretGenerator

FUNDING_SAT = 10_000_000
FEERATE_PER_KW = 2500
HTLC_MSAT = 100_000_000  # far above the trimming threshold at this feerate
POINTS = 64  # distinct per-commitment points, cycled


def _secret(label: str) -> bytes:
    return sha256(b"bench " + label.encode())


def _basepoints(who: str) -> ChannelBasepoints:
    return ChannelBasepoints(
        *(
            pubkey_from_secret(_secret(f"{who} {name}"))
            for name in ("funding", "revocation", "payment", "delayed", "htlc")
        )
    )


class Setup:
    def __init__(self, fmt: CommitmentFormat, htlc_count: int) -> None:
        self.owner = _basepoints("owner")
        self.signer = _basepoints("signer")
        self.funding_secret = _secret("signer funding")
        self.htlc_basepoint_secret = _secret("signer htlc")
        self.params = CommitmentParams(
            funding_outpoint=OutPoint(sha256(b"funding"), 0),
            funding_amount_sat=FUNDING_SAT,
            to_self_delay=144,
            dust_limit_sat=546,
            owner_is_opener=True,
            obscuring_factor=commitment_obscuring_factor(
                self.owner.payment_basepoint, self.signer.payment_basepoint
            ),
            commitment_format=fmt,
        )
        generator = PerCommitmentSecretGenerator(_secret("owner shachain"))
        self.points = [generator.point(n) for n in range(POINTS)]
        self.htlcs = [
            Htlc(
                HtlcDirection.OFFERED if i % 2 else HtlcDirection.RECEIVED,
                i // 2,
                HTLC_MSAT,
                sha256(i.to_bytes(4, "big")),
                500_000 + i,
            )
            for i in range(htlc_count)
        ]
        in_htlcs = HTLC_MSAT * htlc_count
        self.to_local_msat = (FUNDING_SAT * 1000 - in_htlcs) * 6 // 10
        self.to_remote_msat = FUNDING_SAT * 1000 - in_htlcs - self.to_local_msat

    def build_and_sign(self, number: int) -> CommitmentTransaction:
        point = self.points[number % POINTS]
        keys = derive_commitment_keys(point, self.owner, self.signer)
        commitment = build_commitment(
            self.params, keys, number, self.to_local_msat, self.to_remote_msat, self.htlcs, FEERATE_PER_KW
        )
        sign_commitment(commitment, self.funding_secret)
        return commitment

    def with_htlc_signatures(self, number: int) -> None:
        commitment = self.build_and_sign(number)
        htlc_key = derive_privkey(self.htlc_basepoint_secret, self.points[number % POINTS])
        for htlc_tx in htlc_transactions(commitment):
            sign_remote_htlc(htlc_tx, htlc_key)


def rate(work: Callable[[int], object], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while True:
        work(count)
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=1.0, help="time per figure (default 1)")
    args = parser.parse_args()
    for fmt in (CommitmentFormat.STATIC_REMOTEKEY, CommitmentFormat.ANCHORS):
        for htlc_count in (0, 20):
            setup = Setup(fmt, htlc_count)
            assert len(setup.build_and_sign(0).htlc_outputs) == htlc_count  # none trimmed
            built = rate(setup.build_and_sign, args.seconds)
            print(f"{fmt.value:<16} {htlc_count:>2} HTLCs: {built:8,.0f} commitments built + signed /s")
            if htlc_count:
                full = rate(setup.with_htlc_signatures, args.seconds)
                print(
                    f"{fmt.value:<16} {htlc_count:>2} HTLCs: {full:8,.0f} commitments built + signed"
                    f" + {htlc_count} HTLC signatures /s ({full * htlc_count:,.0f} HTLC signatures/s)"
                )


if __name__ == "__main__":
    main()
