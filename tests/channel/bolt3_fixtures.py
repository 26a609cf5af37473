"""Shared helpers for the BOLT 3 tests: the Appendix C channel parameters as library objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.tx import OutPoint
from ampere.channel.transactions import (
    CommitmentFormat,
    CommitmentKeys,
    CommitmentParams,
    Htlc,
    HtlcDirection,
    commitment_obscuring_factor,
)
from tests.conftest import load_vectors

VECTORS: dict[str, Any] = load_vectors("bolt03_commitments.json")
STATIC = VECTORS["static_remotekey"]
ANCHORS = VECTORS["anchors"]
PARAMS = STATIC["parameters"]
INTERNAL = STATIC["internal"]


def secret(text: str) -> bytes:
    """A spec private key: 32 bytes followed by the compressed-key marker 01."""
    raw = bytes.fromhex(text)
    assert len(raw) == 33 and raw[-1] == 1
    return raw[:32]


LOCAL_FUNDING_PRIVKEY = secret(PARAMS["local_funding_privkey"])
REMOTE_FUNDING_PRIVKEY = secret(INTERNAL["remote_funding_privkey"])
# local_htlc_basepoint equals local_payment_basepoint in the vectors, so `local_privkey` (derived
# from the payment basepoint secret) is also the local HTLC key; likewise `remote_privkey`.
LOCAL_HTLC_PRIVKEY = secret(PARAMS["local_privkey"])
REMOTE_HTLC_PRIVKEY = secret(INTERNAL["remote_privkey"])

KEYS = CommitmentKeys(
    local_funding_pubkey=bytes.fromhex(PARAMS["local_funding_pubkey"]),
    remote_funding_pubkey=bytes.fromhex(PARAMS["remote_funding_pubkey"]),
    revocation_pubkey=bytes.fromhex(PARAMS["local_revocation_pubkey"]),
    local_delayed_pubkey=bytes.fromhex(PARAMS["local_delayedpubkey"]),
    local_htlc_pubkey=bytes.fromhex(PARAMS["local_htlcpubkey"]),
    remote_htlc_pubkey=bytes.fromhex(PARAMS["remote_htlcpubkey"]),
    # static_remotekey: remotepubkey is the remote payment basepoint itself.
    remote_payment_pubkey=bytes.fromhex(PARAMS["remote_payment_basepoint"]),
)

OBSCURING_FACTOR = commitment_obscuring_factor(
    bytes.fromhex(PARAMS["local_payment_basepoint"]), bytes.fromhex(PARAMS["remote_payment_basepoint"])
)
FUNDING_OUTPOINT = OutPoint.from_display(PARAMS["funding_tx_id"], PARAMS["funding_output_index"])
CAPACITY_SAT: int = PARAMS["funding_amount_satoshi"]

HTLCS: dict[int, Htlc] = {
    spec["id"]: Htlc(
        direction=HtlcDirection.RECEIVED if spec["direction"] == "remote->local" else HtlcDirection.OFFERED,
        htlc_id=spec["id"],
        amount_msat=spec["amount_msat"],
        payment_hash=sha256(bytes.fromhex(spec["payment_preimage"])),
        cltv_expiry=spec["expiry"],
    )
    for spec in PARAMS["htlcs"]
}
PREIMAGES: dict[int, bytes] = {
    spec["id"]: bytes.fromhex(spec["payment_preimage"]) for spec in PARAMS["htlcs"]
}


def params_for(fmt: CommitmentFormat, dust_limit_sat: int) -> CommitmentParams:
    return CommitmentParams(
        funding_outpoint=FUNDING_OUTPOINT,
        funding_amount_sat=CAPACITY_SAT,
        to_self_delay=PARAMS["local_delay"],
        dust_limit_sat=dust_limit_sat,
        owner_is_opener=True,
        obscuring_factor=OBSCURING_FACTOR,
        commitment_format=fmt,
    )


@dataclass(frozen=True)
class VectorCase:
    name: str
    fmt: CommitmentFormat
    to_local_msat: int
    to_remote_msat: int
    feerate_per_kw: int
    dust_limit_sat: int
    htlcs: tuple[Htlc, ...]
    raw: dict[str, Any]


def htlcs_for(name: str, to_local_msat: int, to_remote_msat: int) -> tuple[Htlc, ...]:
    """Which of the spec's HTLCs a case uses (Appendix C's preamble rule), checked by the
    builder's capacity check: balances plus HTLCs must equal the funding amount."""
    if to_local_msat + to_remote_msat == CAPACITY_SAT * 1000:
        return ()
    ids = (1, 5, 6) if "same amount and preimage" in name else (0, 1, 2, 3, 4)
    return tuple(HTLCS[i] for i in ids)


def static_cases() -> list[VectorCase]:
    return [
        VectorCase(
            name=case["name"],
            fmt=CommitmentFormat.STATIC_REMOTEKEY,
            to_local_msat=case["to_local_msat"],
            to_remote_msat=case["to_remote_msat"],
            feerate_per_kw=case["local_feerate_per_kw"],
            dust_limit_sat=PARAMS["local_dust_limit_satoshi"],
            htlcs=htlcs_for(case["name"], case["to_local_msat"], case["to_remote_msat"]),
            raw=case,
        )
        for case in STATIC["cases"]
    ]


def anchor_cases() -> list[VectorCase]:
    return [
        VectorCase(
            name=case["name"],
            fmt=CommitmentFormat.ANCHORS,
            to_local_msat=case["to_local_msat"],
            to_remote_msat=case["to_remote_msat"],
            feerate_per_kw=case["local_feerate_per_kw"],
            dust_limit_sat=case["local_dust_limit_satoshi"],
            htlcs=htlcs_for(case["name"], case["to_local_msat"], case["to_remote_msat"]),
            raw=case,
        )
        for case in ANCHORS["cases"]
    ]
