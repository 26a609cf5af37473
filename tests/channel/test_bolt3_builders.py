"""Builder edge cases: commitment number obscuring, fee rules, key derivation, input checking."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.tx import OutPoint, Transaction, TxIn, TxOut
from ampere.channel.transactions import (
    ChannelBasepoints,
    CommitmentFormat,
    FundingOutputNotFoundError,
    Htlc,
    HtlcDirection,
    TransactionBuildError,
    build_commitment,
    commitment_base_fee_sat,
    commitment_number_from_tx,
    derive_commitment_keys,
    find_funding_output,
    funding_script_pubkey,
    htlc_success_fee_sat,
    htlc_timeout_fee_sat,
)
from ampere.channel.transactions.commitment import (
    MAX_COMMITMENT_NUMBER,
    commitment_locktime_and_sequence,
    obscured_commitment_number,
)
from ampere.channel.transactions.htlc import build_htlc_timeout_tx
from ampere.channel.transactions.scripts import offered_htlc_script, to_local_script
from tests.channel.bolt3_fixtures import CAPACITY_SAT, INTERNAL, KEYS, OBSCURING_FACTOR, PARAMS, params_for

STATIC = CommitmentFormat.STATIC_REMOTEKEY


@given(st.integers(0, MAX_COMMITMENT_NUMBER), st.integers(0, MAX_COMMITMENT_NUMBER))
def test_commitment_number_round_trips_through_locktime_and_sequence(number: int, factor: int) -> None:
    locktime, sequence = commitment_locktime_and_sequence(obscured_commitment_number(number, factor))
    assert locktime >> 24 == 0x20 and sequence >> 24 == 0x80
    tx = Transaction(inputs=(TxIn(OutPoint(b"\x00" * 32, 0), b"", sequence),), locktime=locktime)
    assert commitment_number_from_tx(tx, factor) == number


def test_commitment_number_bounds() -> None:
    with pytest.raises(TransactionBuildError):
        obscured_commitment_number(MAX_COMMITMENT_NUMBER + 1, 0)
    with pytest.raises(TransactionBuildError):
        build_commitment(params_for(STATIC, 546), KEYS, 1 << 48, CAPACITY_SAT * 1000, 0, (), 253)


def test_spec_fee_example() -> None:
    """BOLT 3 "Fee Calculation" example: feerate 5000, dust 546, four HTLCs, two trimmed."""
    assert htlc_timeout_fee_sat(5000, STATIC) == 3315
    assert htlc_success_fee_sat(5000, STATIC) == 3515
    assert htlc_timeout_fee_sat(5000, CommitmentFormat.ANCHORS) == 0
    assert htlc_success_fee_sat(5000, CommitmentFormat.ANCHORS) == 0
    payment_hash = sha256(b"x")
    htlcs = [
        Htlc(HtlcDirection.OFFERED, 0, 5_000_000, payment_hash, 100),
        Htlc(HtlcDirection.OFFERED, 1, 1_000_000, payment_hash, 100),
        Htlc(HtlcDirection.RECEIVED, 0, 7_000_000, payment_hash, 100),
        Htlc(HtlcDirection.RECEIVED, 1, 800_000, payment_hash, 100),
    ]
    in_htlcs = sum(h.amount_msat for h in htlcs)
    commitment = build_commitment(
        params_for(STATIC, 546),
        KEYS,
        1,
        5_000_000_000,
        CAPACITY_SAT * 1000 - 5_000_000_000 - in_htlcs,
        htlcs,
        5000,
    )
    assert commitment_base_fee_sat(5000, 2, STATIC) == 5340
    assert commitment.base_fee_sat == 5340
    assert commitment.fee_sat == 7140
    assert {h.amount_msat for h in commitment.trimmed_htlcs} == {1_000_000, 800_000}


def test_commitment_input_checks() -> None:
    params = params_for(STATIC, 546)
    payment_hash = sha256(b"x")
    htlc = Htlc(HtlcDirection.OFFERED, 3, 1_000_000, payment_hash, 100)
    with pytest.raises(TransactionBuildError, match="capacity"):
        build_commitment(params, KEYS, 1, CAPACITY_SAT * 1000, 1, (), 253)
    with pytest.raises(TransactionBuildError, match="duplicate"):
        build_commitment(params, KEYS, 1, CAPACITY_SAT * 1000 - 2_000_000, 0, (htlc, htlc), 253)
    # Ids are per direction: an offered and a received HTLC may share one.
    mirrored = Htlc(HtlcDirection.RECEIVED, 3, 1_000_000, payment_hash, 100)
    build_commitment(params, KEYS, 1, CAPACITY_SAT * 1000 - 2_000_000, 0, (htlc, mirrored), 253)
    with pytest.raises(TransactionBuildError):
        build_commitment(params, KEYS, 1, -1, CAPACITY_SAT * 1000 + 1, (), 253)
    with pytest.raises(TransactionBuildError):
        build_commitment(params, KEYS, 1, CAPACITY_SAT * 1000, 0, (), 1 << 32)
    with pytest.raises(TransactionBuildError):
        Htlc(HtlcDirection.OFFERED, 0, 0, payment_hash, 100)
    with pytest.raises(TransactionBuildError):
        Htlc(HtlcDirection.OFFERED, 0, 1, b"short", 100)
    with pytest.raises(TransactionBuildError):
        params_for(STATIC, 0)


def test_script_input_checks() -> None:
    key = KEYS.revocation_pubkey
    with pytest.raises(TransactionBuildError):
        to_local_script(key[:32], 144, key)
    with pytest.raises(TransactionBuildError):
        to_local_script(key, 1 << 16, key)
    with pytest.raises(TransactionBuildError):
        offered_htlc_script(key, key, key, b"\x00" * 31, anchors=False)


def test_htlc_tx_that_cannot_pay_its_fee_is_refused() -> None:
    key = KEYS.revocation_pubkey
    with pytest.raises(TransactionBuildError, match="trimmed"):
        build_htlc_timeout_tx(OutPoint(b"\x00" * 32, 0), 663_000, 500, key, key, 144, 1000, STATIC)


def test_find_funding_output() -> None:
    spk = funding_script_pubkey(KEYS.local_funding_pubkey, KEYS.remote_funding_pubkey)
    other = TxOut(1_000, b"\x00\x14" + b"\x00" * 20)
    tx = Transaction(outputs=(other, TxOut(CAPACITY_SAT, spk)))
    assert find_funding_output(tx, KEYS.remote_funding_pubkey, KEYS.local_funding_pubkey) == 1
    with pytest.raises(FundingOutputNotFoundError):
        find_funding_output(tx, KEYS.local_funding_pubkey, KEYS.remote_funding_pubkey, CAPACITY_SAT + 1)
    twice = Transaction(outputs=(TxOut(CAPACITY_SAT, spk), TxOut(CAPACITY_SAT, spk)))
    with pytest.raises(FundingOutputNotFoundError):
        find_funding_output(twice, KEYS.local_funding_pubkey, KEYS.remote_funding_pubkey)


def test_derive_commitment_keys_reproduces_appendix_c() -> None:
    """The Appendix C keys from the basepoints in the spec's comment block. The local revocation
    and remote delayed basepoints play no part in the local commitment, so any point will do."""
    unused = bytes.fromhex(PARAMS["local_payment_basepoint"])
    local = ChannelBasepoints(
        funding_pubkey=bytes.fromhex(PARAMS["local_funding_pubkey"]),
        revocation_basepoint=unused,
        payment_basepoint=bytes.fromhex(PARAMS["local_payment_basepoint"]),
        delayed_payment_basepoint=bytes.fromhex(INTERNAL["local_delayed_payment_basepoint"]),
        htlc_basepoint=bytes.fromhex(PARAMS["local_htlc_basepoint"]),
    )
    remote = ChannelBasepoints(
        funding_pubkey=bytes.fromhex(PARAMS["remote_funding_pubkey"]),
        revocation_basepoint=bytes.fromhex(INTERNAL["remote_revocation_basepoint"]),
        payment_basepoint=bytes.fromhex(PARAMS["remote_payment_basepoint"]),
        delayed_payment_basepoint=unused,
        htlc_basepoint=bytes.fromhex(PARAMS["remote_htlc_basepoint"]),
    )
    keys = derive_commitment_keys(bytes.fromhex(INTERNAL["local_per_commitment_point"]), local, remote)
    assert keys == KEYS
    assert OBSCURING_FACTOR == 0x2BB038521914
