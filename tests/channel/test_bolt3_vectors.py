"""BOLT 3 Appendix B, C and F, byte for byte: funding output, every commitment transaction
rebuilt from its parameters and signed, and every HTLC transaction rebuilt and signed."""

from __future__ import annotations

from typing import Any

import pytest

from ampere.bitcoin.hashes import hash160
from ampere.bitcoin.keys import pubkey_from_secret, sign_der
from ampere.bitcoin.script import build_script, p2pkh_script, p2wpkh_script_from_hash
from ampere.bitcoin.sighash import SigHash, legacy_sighash
from ampere.bitcoin.tx import OutPoint, Transaction, TxIn, TxOut
from ampere.channel.transactions import (
    CommitmentFormat,
    CommitmentTransaction,
    HtlcDirection,
    HtlcTxKind,
    OutputKind,
    build_commitment,
    commitment_number_from_tx,
    finalize_commitment,
    finalize_htlc_tx,
    find_funding_output,
    funding_script_pubkey,
    htlc_transactions,
    sign_commitment,
    sign_local_htlc,
    sign_remote_htlc,
    verify_commitment_signature,
    verify_local_htlc_signature,
    verify_remote_htlc_signature,
)
from ampere.channel.transactions.scripts import funding_script
from tests.channel.bolt3_fixtures import (
    ANCHORS,
    KEYS,
    LOCAL_FUNDING_PRIVKEY,
    LOCAL_HTLC_PRIVKEY,
    OBSCURING_FACTOR,
    PARAMS,
    PREIMAGES,
    REMOTE_FUNDING_PRIVKEY,
    REMOTE_HTLC_PRIVKEY,
    STATIC,
    VECTORS,
    VectorCase,
    anchor_cases,
    params_for,
    secret,
    static_cases,
)

COMMITMENT_NUMBER: int = PARAMS["commitment_number"]


# --- Appendix B ----------------------------------------------------------------------------------


def test_funding_witness_script_and_output() -> None:
    funding = VECTORS["funding"]
    local = bytes.fromhex(funding["local_funding_pubkey"])
    remote = bytes.fromhex(funding["remote_funding_pubkey"])
    assert funding_script(local, remote).hex() == funding["funding_witness_script"]
    assert funding_script(remote, local).hex() == funding["funding_witness_script"]
    tx = Transaction.from_hex(funding["funding_tx"])
    assert tx.txid_hex == funding["funding_txid"]
    index = find_funding_output(tx, local, remote, funding["funding_satoshis"])
    assert index == funding["funding_output_index"]
    assert tx.outputs[index].script_pubkey == funding_script_pubkey(remote, local)


def test_funding_tx_rebuilt_from_scratch() -> None:
    """The whole Appendix B transaction: P2PKH coinbase input, funding output, P2WPKH change."""
    funding = VECTORS["funding"]
    key = secret(funding["block1_coinbase_privkey"])
    pubkey = pubkey_from_secret(key)
    coinbase = Transaction.from_hex(funding["block1_coinbase_tx"])
    assert coinbase.outputs[0].script_pubkey == p2pkh_script(hash160(pubkey))
    funding_out = TxOut(
        funding["funding_satoshis"],
        funding_script_pubkey(
            bytes.fromhex(funding["local_funding_pubkey"]), bytes.fromhex(funding["remote_funding_pubkey"])
        ),
    )
    change = TxOut(funding["change_satoshis"], p2wpkh_script_from_hash(hash160(pubkey)))
    outputs = tuple(sorted((funding_out, change), key=lambda o: (o.value, o.script_pubkey)))
    unsigned = Transaction(
        version=2, inputs=(TxIn(OutPoint(coinbase.txid, funding["input_index"])),), outputs=outputs
    )
    digest = legacy_sighash(unsigned, 0, coinbase.outputs[0].script_pubkey, SigHash.ALL)
    script_sig = build_script(sign_der(key, digest) + b"\x01", pubkey)
    signed = unsigned.with_script_sig(0, script_sig)
    assert signed.to_hex() == funding["funding_tx"]
    # The change pays the feerate on the funding tx's (witness-less) weight, rounded down.
    fee = funding["input_satoshis"] - funding["funding_satoshis"] - funding["change_satoshis"]
    assert fee == funding["feerate_per_kw"] * signed.weight // 1000


# --- Appendix C/F commitments ------------------------------------------------------------------


def test_obscuring_factor() -> None:
    expected = PARAMS["obscured_commitment_number_as_written"].split(" ^ ")[0]
    assert int(expected, 16) == OBSCURING_FACTOR


def build_case(case: VectorCase) -> CommitmentTransaction:
    return build_commitment(
        params_for(case.fmt, case.dust_limit_sat),
        KEYS,
        COMMITMENT_NUMBER,
        case.to_local_msat,
        case.to_remote_msat,
        case.htlcs,
        case.feerate_per_kw,
    )


ALL_CASES = static_cases() + anchor_cases()
CASE_IDS = [f"{case.fmt.value}: {case.name}" for case in ALL_CASES]


def local_commit_signature(case: VectorCase) -> str:
    raw = case.raw
    return str(
        raw["local_signature"]
        if case.fmt is CommitmentFormat.STATIC_REMOTEKEY
        else raw["derived_local_signature"]
    )


@pytest.mark.parametrize("case", ALL_CASES, ids=CASE_IDS)
def test_commitment_tx(case: VectorCase) -> None:
    commitment = build_case(case)
    remote_sig = sign_commitment(commitment, REMOTE_FUNDING_PRIVKEY)
    local_sig = sign_commitment(commitment, LOCAL_FUNDING_PRIVKEY)
    assert remote_sig.hex() == case.raw["remote_signature"]
    assert local_sig.hex() == local_commit_signature(case)
    assert verify_commitment_signature(commitment, KEYS.remote_funding_pubkey, remote_sig)
    assert verify_commitment_signature(commitment, KEYS.local_funding_pubkey, local_sig)
    assert not verify_commitment_signature(commitment, KEYS.local_funding_pubkey, remote_sig)
    signed = finalize_commitment(commitment, local_sig, remote_sig)
    assert signed.to_hex() == case.raw["output_commit_tx"]
    assert commitment_number_from_tx(signed, OBSCURING_FACTOR) == COMMITMENT_NUMBER
    assert len(commitment.htlc_outputs) == case.raw["num_htlcs"]
    if case.fmt is CommitmentFormat.ANCHORS:
        assert case.raw["use_test_htlcs"] == bool(case.htlcs)


@pytest.mark.parametrize("case", static_cases(), ids=[case.name for case in static_cases()])
def test_static_remotekey_fees_and_output_map(case: VectorCase) -> None:
    """The spec's '#' comment lines: base/actual fee and each output's amount and script."""
    commitment = build_case(case)
    # The last case prints no fee lines; its fee is still pinned by the exact tx hex elsewhere.
    if "base_fee_satoshi" in case.raw:
        assert commitment.base_fee_sat == case.raw["base_fee_satoshi"]
        assert commitment.fee_sat == case.raw["actual_fee_satoshi"]
    by_kind = {"to_local": OutputKind.TO_LOCAL, "to_remote": OutputKind.TO_REMOTE}
    for expected in case.raw["outputs"]:
        if expected["type"] in by_kind:
            output = commitment.output_of_kind(by_kind[expected["type"]])
        else:
            direction = (
                HtlcDirection.OFFERED if expected["type"] == "htlc_offered" else HtlcDirection.RECEIVED
            )
            output = commitment.output_for_htlc(direction, expected["htlc_id"])
        assert output is not None, expected
        assert output.amount_sat == expected["amount_satoshi"]
        assert commitment.tx.outputs[output.index].value == expected["amount_satoshi"]
        if "wscript" in expected:
            assert output.witness_script is not None
            assert output.witness_script.hex() == expected["wscript"]
        else:
            assert output.witness_script is None
            assert expected["p2wpkh_pubkey"] == KEYS.remote_payment_pubkey.hex()


def test_output_map_is_complete_and_indexed() -> None:
    for case in ALL_CASES:
        commitment = build_case(case)
        assert len(commitment.outputs) == len(commitment.tx.outputs)
        for index, output in enumerate(commitment.outputs):
            assert output.index == index
            assert commitment.tx.outputs[index] == TxOut(output.amount_sat, output.script_pubkey)
            assert (output.htlc is not None) == (
                output.kind in (OutputKind.OFFERED_HTLC, OutputKind.RECEIVED_HTLC)
            )
        kept = {output.htlc.key for output in commitment.htlc_outputs if output.htlc is not None}
        trimmed = {htlc.key for htlc in commitment.trimmed_htlcs}
        assert kept | trimmed == {htlc.key for htlc in case.htlcs}
        assert not kept & trimmed


def test_single_anchor_case_has_only_the_local_anchor() -> None:
    case = next(c for c in anchor_cases() if "single anchor" in c.name)
    commitment = build_case(case)
    kinds = [output.kind for output in commitment.outputs]
    assert sorted(kinds, key=lambda k: k.value) == [OutputKind.LOCAL_ANCHOR, OutputKind.TO_LOCAL]


# --- HTLC transactions ---------------------------------------------------------------------------


def _expected_htlc_txs(case: VectorCase) -> list[dict[str, Any]]:
    """Normalise Appendix C's and F's HTLC entries to the same fields."""
    result = []
    for entry in case.raw["htlc_txs"]:
        info = entry if case.fmt is CommitmentFormat.STATIC_REMOTEKEY else entry["derived"]
        result.append(
            {
                "commit_output_index": info["commit_output_index"],
                "type": info["type"],
                "htlc_id": info["htlc_id"],
                "remote": entry["remote_htlc_signature"],
                "local": info["local_htlc_signature"],
                "tx": entry["tx"],
            }
        )
    return result


@pytest.mark.parametrize("case", ALL_CASES, ids=CASE_IDS)
def test_htlc_txs(case: VectorCase) -> None:
    commitment = build_case(case)
    htlc_txs = htlc_transactions(commitment)
    expected = _expected_htlc_txs(case)
    assert len(htlc_txs) == len(expected) == case.raw["num_htlcs"]
    for htlc_tx, want in zip(htlc_txs, expected, strict=True):
        assert htlc_tx.commitment_output_index == want["commit_output_index"]
        assert htlc_tx.kind.value == want["type"]
        assert htlc_tx.htlc.htlc_id == want["htlc_id"]
        remote_sig = sign_remote_htlc(htlc_tx, REMOTE_HTLC_PRIVKEY)
        local_sig = sign_local_htlc(htlc_tx, LOCAL_HTLC_PRIVKEY)
        assert remote_sig.hex() == want["remote"]
        assert local_sig.hex() == want["local"]
        assert verify_remote_htlc_signature(htlc_tx, KEYS.remote_htlc_pubkey, remote_sig)
        assert verify_local_htlc_signature(htlc_tx, KEYS.local_htlc_pubkey, local_sig)
        assert not verify_remote_htlc_signature(htlc_tx, KEYS.remote_htlc_pubkey, local_sig)
        preimage = PREIMAGES[htlc_tx.htlc.htlc_id] if htlc_tx.kind is HtlcTxKind.SUCCESS else None
        signed = finalize_htlc_tx(htlc_tx, remote_sig, local_sig, preimage)
        assert signed.to_hex() == want["tx"]


def test_vector_counts() -> None:
    assert len(STATIC["cases"]) == 16
    assert sum(len(c["htlc_txs"]) for c in STATIC["cases"]) == 33
    assert len(ANCHORS["cases"]) == 9
    assert sum(len(c["htlc_txs"]) for c in ANCHORS["cases"]) == 15


def test_anchor_remote_htlc_signatures_use_single_anyonecanpay() -> None:
    for case in anchor_cases():
        for entry in case.raw["htlc_txs"]:
            assert entry["derived"]["remote_sighash_flag"] == SigHash.SINGLE_ANYONECANPAY
            witness = Transaction.from_hex(entry["tx"]).inputs[0].witness
            assert witness[1][-1] == SigHash.SINGLE_ANYONECANPAY
            assert witness[2][-1] == SigHash.ALL
