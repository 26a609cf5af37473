"""The wallet fed synthetic blocks: coin tracking, reorg undo, selection and fee accounting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.bip32 import ExtendedPrivateKey
from ampere.bitcoin.keys import verify_der
from ampere.bitcoin.network import Network
from ampere.bitcoin.script import p2pkh_script_code, p2wsh_script
from ampere.bitcoin.sighash import bip143_sighash
from ampere.bitcoin.tx import NULL_OUTPOINT, OutPoint, Transaction, TxIn, TxOut
from ampere.chain.interface import BlockInfo
from ampere.wallet.coin_selection import (
    P2WPKH_DUST_LIMIT,
    Candidate,
    fee_for_weight,
    select_coins,
)
from ampere.wallet.errors import InsufficientFundsError
from ampere.wallet.wallet import Wallet

SEED = bytes(range(32))


def make_wallet() -> Wallet:
    return Wallet(ExtendedPrivateKey.from_seed(SEED), Network.REGTEST)


def block(height: int, *txs: Transaction) -> BlockInfo:
    return BlockInfo(height, height.to_bytes(32, "little"), (height - 1).to_bytes(32, "little"), 0, txs)


def pay(script_pubkey: bytes, value: int, salt: int = 0) -> Transaction:
    source = OutPoint(salt.to_bytes(32, "big"), 0)
    return Transaction(2, (TxIn(source),), (TxOut(value, script_pubkey),), 0)


def test_tracks_receipts_and_spends_and_undoes_a_block() -> None:
    wallet = make_wallet()
    spk = wallet.new_script_pubkey()
    funding = pay(spk, 50_000)
    wallet.apply_block(block(1, funding))
    assert wallet.balance(1) == (50_000, 0)

    spend = wallet.build_transaction([TxOut(20_000, p2wsh_script(b"x"))], 1000, tip_height=1)
    assert wallet.spendable_coins(1) == []  # reserved for the spend just built
    wallet.apply_block(block(2, spend))
    change = wallet.coins()
    assert len(change) == 1 and change[0].height == 2
    assert change[0].value == spend.outputs[1].value
    fee = funding.outputs[0].value - spend.total_output_value()
    assert fee > 0 and change[0].value + 20_000 + fee == 50_000

    wallet.undo_block(2)
    assert [coin.outpoint for coin in wallet.coins()] == [OutPoint(funding.txid, 0)]


def test_signatures_commit_to_the_spent_amounts() -> None:
    wallet = make_wallet()
    spk = wallet.new_script_pubkey()
    wallet.apply_block(block(1, pay(spk, 100_000, 1), pay(spk, 70_000, 2)))
    tx = wallet.build_transaction([TxOut(150_000, p2wsh_script(b"y"))], 253, tip_height=1)
    for index, txin in enumerate(tx.inputs):
        coin = wallet.coin(txin.prevout)
        assert coin is not None
        signature, pubkey = txin.witness
        digest = bip143_sighash(tx, index, p2pkh_script_code(pubkey), coin.value, signature[-1])
        assert verify_der(pubkey, signature[:-1], digest)
    actual_feerate = (170_000 - tx.total_output_value()) * 1000 // tx.weight
    assert actual_feerate >= 253


def test_immature_coinbase_is_not_spendable() -> None:
    wallet = make_wallet()
    spk = wallet.new_script_pubkey()
    coinbase = Transaction(2, (TxIn(NULL_OUTPOINT, b"\x01\x01"),), (TxOut(5_000_000_000, spk),), 0)
    wallet.apply_block(block(1, coinbase))
    assert wallet.spendable_coins(99) == []
    assert len(wallet.spendable_coins(100)) == 1


def test_insufficient_funds_is_a_typed_error() -> None:
    wallet = make_wallet()
    wallet.apply_block(block(1, pay(wallet.new_script_pubkey(), 10_000)))
    with pytest.raises(InsufficientFundsError):
        wallet.build_transaction([TxOut(10_000, p2wsh_script(b"z"))], 1000, tip_height=1)


def test_sweep_spends_everything() -> None:
    wallet = make_wallet()
    spk = wallet.new_script_pubkey()
    wallet.apply_block(block(1, pay(spk, 30_000, 1), pay(spk, 40_000, 2)))
    tx = wallet.build_sweep(p2wsh_script(b"all"), 1000, tip_height=1)
    assert len(tx.inputs) == 2 and len(tx.outputs) == 1
    assert 70_000 - tx.outputs[0].value >= fee_for_weight(tx.weight, 1000)


@given(
    st.lists(st.integers(1_000, 10_000_000), min_size=1, max_size=12),
    st.integers(1, 5_000_000),
    st.integers(253, 50_000),
)
def test_selection_conserves_value(values: list[int], target: int, feerate: int) -> None:
    candidates = [Candidate(OutPoint(i.to_bytes(32, "big"), 0), v) for i, v in enumerate(values)]
    try:
        selection = select_coins(candidates, target, 4 * 43, feerate)
    except InsufficientFundsError as exc:
        assert exc.available_sat < exc.needed_sat
        return
    assert selection.total_in == target + selection.fee + selection.change
    assert selection.change == 0 or selection.change >= P2WPKH_DUST_LIMIT
    assert selection.fee >= fee_for_weight(42 + 4 * 43 + 272 * len(selection.chosen), feerate) - 1
