"""Transactions, scripts and keys: round trips, sizes and malformed input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.errors import DeserializationError, InvalidKeyError, ScriptError
from ampere.bitcoin.keys import (
    CURVE_ORDER,
    PrivateKey,
    compact_to_der,
    der_to_compact,
    is_low_s,
    verify_compact,
    verify_der,
)
from ampere.bitcoin.script import (
    Op,
    build_script,
    decode_script_num,
    encode_script_num,
    multisig_2of2_script,
    parse_script,
    push_data,
    witness_program,
)
from ampere.bitcoin.serialize import ByteReader, compact_size
from ampere.bitcoin.tx import OutPoint, Transaction, TxIn, TxOut

outpoints = st.builds(OutPoint, st.binary(min_size=32, max_size=32), st.integers(0, 0xFFFF_FFFF))
witnesses = st.lists(st.binary(max_size=80), max_size=4).map(tuple)
inputs = st.builds(TxIn, outpoints, st.binary(max_size=60), st.integers(0, 0xFFFF_FFFF), witnesses)
outputs = st.builds(TxOut, st.integers(0, 21_000_000 * 100_000_000), st.binary(max_size=60))
transactions = st.builds(
    Transaction,
    st.integers(-(2**31), 2**31 - 1),
    st.lists(inputs, min_size=1, max_size=4).map(tuple),
    st.lists(outputs, max_size=4).map(tuple),
    st.integers(0, 0xFFFF_FFFF),
)


@given(transactions)
def test_transaction_round_trip(tx: Transaction) -> None:
    assert Transaction.parse(tx.serialize()) == tx
    stripped = Transaction.parse(tx.serialize(include_witness=False))
    assert stripped.txid == tx.txid
    assert tx.weight == 3 * len(tx.serialize(False)) + len(tx.serialize())
    assert tx.vsize * 4 >= tx.weight > (tx.vsize - 1) * 4


@given(st.binary(max_size=300))
def test_parse_garbage_raises_only_deserialization_error(data: bytes) -> None:
    with contextlib.suppress(DeserializationError):
        Transaction.parse(data)


@given(transactions, st.data())
def test_truncated_transactions_are_rejected(tx: Transaction, data: st.DataObject) -> None:
    raw = tx.serialize()
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(DeserializationError):
        Transaction.parse(raw[:cut])


def test_transaction_hex_errors_are_typed() -> None:
    with pytest.raises(DeserializationError):
        Transaction.from_hex("zz")
    with pytest.raises(DeserializationError):
        Transaction.from_hex("0200000000")


def test_replace_does_not_reuse_a_stale_serialization() -> None:
    tx = Transaction(2, (TxIn(OutPoint(b"\x01" * 32, 0)),), (TxOut(1000, b"\x51"),), 0)
    first = tx.txid
    changed = tx.with_script_sig(0, b"\x51")
    assert changed.txid != first
    assert tx.txid == first


@given(st.integers(0, 2**64 - 1))
def test_compact_size_round_trip(value: int) -> None:
    assert ByteReader(compact_size(value)).compact_size() == value


def test_compact_size_rejects_non_canonical() -> None:
    with pytest.raises(DeserializationError):
        ByteReader(b"\xfd\x10\x00").compact_size()


@given(st.integers(-(2**39), 2**39))
def test_script_num_round_trip(value: int) -> None:
    assert decode_script_num(encode_script_num(value), max_size=6) == value


def test_script_num_examples() -> None:
    assert encode_script_num(0) == b""
    assert encode_script_num(-1) == b"\x81"
    assert encode_script_num(128) == b"\x80\x00"
    assert encode_script_num(-128) == b"\x80\x80"
    assert encode_script_num(144) == b"\x90\x00"
    with pytest.raises(ScriptError):
        decode_script_num(b"\x01\x00")


@given(st.binary(max_size=600))
def test_push_data_parses_back(data: bytes) -> None:
    ops = parse_script(push_data(data))
    assert len(ops) == 1
    if ops[0].data is not None:
        assert ops[0].data == data


def test_build_script_uses_minimal_pushes() -> None:
    assert build_script(0, 1, 16, 17, -1) == bytes([0x00, 0x51, 0x60, 0x01, 0x11, 0x4F])
    assert build_script(Op.OP_CHECKSIG) == b"\xac"
    assert build_script(b"\x05") == b"\x55"


@given(st.binary(max_size=200))
def test_parse_script_raises_only_script_error(data: bytes) -> None:
    with contextlib.suppress(ScriptError):
        parse_script(data)


def test_multisig_sorts_keys_and_witness_program() -> None:
    a = PrivateKey.from_int(1).public_key.data
    b = PrivateKey.from_int(2).public_key.data
    assert multisig_2of2_script(a, b) == multisig_2of2_script(b, a)
    assert witness_program(build_script(0, b"\x11" * 32)) == (0, b"\x11" * 32)
    assert witness_program(build_script(1, b"\x11" * 32)) == (1, b"\x11" * 32)
    assert witness_program(b"\x6a\x00") is None


@given(st.integers(1, CURVE_ORDER - 1), st.binary(min_size=32, max_size=32))
def test_signatures_are_low_s_and_verify(secret: int, digest: bytes) -> None:
    key = PrivateKey.from_int(secret)
    signature = key.sign(digest)
    compact = der_to_compact(signature)
    assert is_low_s(compact)
    assert compact_to_der(compact) == signature
    assert verify_der(key.public_key.data, signature, digest)
    assert verify_compact(key.public_key.data, compact, digest)
    other = bytes([digest[0] ^ 1]) + digest[1:]
    assert not verify_der(key.public_key.data, signature, other)
    high_s = compact[:32] + (CURVE_ORDER - int.from_bytes(compact[32:], "big")).to_bytes(32, "big")
    assert not verify_compact(key.public_key.data, high_s, digest)


def test_invalid_keys_are_refused() -> None:
    with pytest.raises(InvalidKeyError):
        PrivateKey(b"\x00" * 32)
    with pytest.raises(InvalidKeyError):
        PrivateKey(CURVE_ORDER.to_bytes(32, "big"))
    with pytest.raises(InvalidKeyError):
        PrivateKey.from_int(5).public_key.__class__(b"\x02" + b"\xff" * 32)
    assert "secret" not in repr(PrivateKey.from_int(7))
