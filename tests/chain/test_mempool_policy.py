"""Policy helpers on their own: dust, fee rates, money formatting, finality, BIP68, sigops, templates."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.script import (
    Op,
    build_script,
    multisig_2of2_script,
    op_return_script,
    p2pkh_script,
    p2sh_script,
    p2tr_script,
    p2wpkh_script,
    p2wsh_script,
)
from ampere.bitcoin.tx import SEQUENCE_FINAL, OutPoint, Transaction, TxIn, TxOut
from ampere.chain.policy import (
    SEQUENCE_DISABLE_FLAG,
    SEQUENCE_TYPE_FLAG,
    FeeRate,
    LockPoints,
    dust_threshold,
    format_money,
    is_final,
    is_standard_output,
    policy_vsize,
    sequence_locks,
    sequence_locks_met,
    sigop_cost,
)

KEY = PrivateKey.from_int(3).public_key
DUST_RELAY = FeeRate(3000)


@pytest.mark.parametrize(
    ("script", "threshold"),
    [
        (p2wpkh_script(KEY.data), 294),
        (p2wsh_script(b"\x51"), 330),
        (p2tr_script(KEY.xonly()), 330),
        (p2pkh_script(KEY.hash160()), 546),
        (p2sh_script(KEY.hash160()), 540),
        (op_return_script(b"hello"), 0),
    ],
)
def test_dust_thresholds_match_bitcoin_core(script: bytes, threshold: int) -> None:
    assert dust_threshold(TxOut(0, script), DUST_RELAY) == threshold


def test_fee_rate_rounds_up_and_formats_like_core() -> None:
    assert FeeRate(1000).fee(141) == 141
    assert FeeRate(1001).fee(1) == 2
    assert FeeRate(253 * 4).fee(0) == 0
    assert FeeRate(1).fee(1) == 1
    assert str(FeeRate(1000)) == "0.00001000 BTC/kvB"
    assert str(FeeRate(123_456_789)) == "1.23456789 BTC/kvB"


@given(st.integers(min_value=-(21 * 10**14), max_value=21 * 10**14))
def test_format_money_is_exact_with_at_least_two_decimals(sats: int) -> None:
    text = format_money(sats)
    assert Decimal(text) * 100_000_000 == sats
    assert len(text.split(".")[1]) >= 2


def test_format_money_examples() -> None:
    assert format_money(100_000_000) == "1.00"
    assert format_money(100_000) == "0.001"
    assert format_money(1) == "0.00000001"
    assert format_money(-150_000_000) == "-1.50"


def _tx(locktime: int, sequences: list[int], version: int = 2) -> Transaction:
    inputs = tuple(TxIn(OutPoint(bytes([i + 1]) * 32, 0), b"", seq) for i, seq in enumerate(sequences))
    return Transaction(version, inputs, (TxOut(1000, p2wpkh_script(KEY.data)),), locktime)


def test_finality_by_height_and_by_median_time() -> None:
    assert is_final(_tx(0, [0]), 1, 0)
    assert not is_final(_tx(100, [0]), 100, 0)
    assert is_final(_tx(100, [0]), 101, 0)
    assert is_final(_tx(100, [SEQUENCE_FINAL]), 1, 0)
    time_lock = 1_700_000_000
    assert not is_final(_tx(time_lock, [0]), 10**6, time_lock)
    assert is_final(_tx(time_lock, [0]), 1, time_lock + 1)


def test_sequence_locks_by_height_and_time() -> None:
    mtp = {h: 1_000_000 + 600 * h for h in range(200)}.__getitem__
    locks = sequence_locks(_tx(0, [10]), [100], mtp)
    assert locks == LockPoints(109, -1)
    assert not sequence_locks_met(locks, 109, 0) and sequence_locks_met(locks, 110, 0)
    timed = sequence_locks(_tx(0, [SEQUENCE_TYPE_FLAG | 3]), [100], mtp)
    assert timed == LockPoints(-1, mtp(99) + 3 * 512 - 1)
    assert sequence_locks(_tx(0, [SEQUENCE_DISABLE_FLAG | 10]), [100], mtp) == LockPoints(-1, -1)
    assert sequence_locks(_tx(0, [10], version=1), [100], mtp) == LockPoints(-1, -1)


def test_standard_output_types() -> None:
    for script in (
        p2wpkh_script(KEY.data),
        p2wsh_script(b"\x51"),
        p2tr_script(KEY.xonly()),
        p2pkh_script(KEY.hash160()),
        p2sh_script(KEY.hash160()),
        op_return_script(b"x" * 80),
        multisig_2of2_script(KEY.data, PrivateKey.from_int(4).public_key.data),
        build_script(Op.OP_1, b"\x4e\x73"),  # pay-to-anchor
    ):
        assert is_standard_output(script), script.hex()
    for script in (
        build_script(Op.OP_1),
        op_return_script(b"x" * 81),
        build_script(Op.OP_0, b"\x00" * 21),
        b"",
    ):
        assert not is_standard_output(script), script.hex()


def test_sigop_cost_of_witness_and_legacy_spends() -> None:
    spend = _tx(0, [0, 0])
    pubkeys = (KEY.data, PrivateKey.from_int(4).public_key.data)
    funding = multisig_2of2_script(*pubkeys)
    spend = spend.with_witness(1, [b"", b"sig", b"sig", funding])
    spent = [TxOut(1, p2wpkh_script(KEY.data)), TxOut(1, p2wsh_script(funding))]
    assert sigop_cost(spend, spent) == 1 + 2
    bare = Transaction(2, spend.inputs, (TxOut(1, build_script(Op.OP_CHECKSIG)),), 0)
    assert sigop_cost(bare, spent) == 4 + 1 + 2
    assert policy_vsize(400, 1) == 100
    assert policy_vsize(400, 30) == 150
