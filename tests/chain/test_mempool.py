"""The embedded mempool: every rejection reason with bitcoind's strings, RBF, CPFP, lock times."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ampere.bitcoin.block import COINBASE_MATURITY, assemble_block
from ampere.bitcoin.keys import CURVE_ORDER, PrivateKey
from ampere.bitcoin.script import (
    Op,
    build_script,
    p2pkh_script,
    p2tr_script,
    p2wsh_script,
)
from ampere.bitcoin.signing import p2wsh_signature
from ampere.bitcoin.tx import SEQUENCE_LOCKTIME_ONLY, OutPoint, Transaction, TxIn, TxOut
from ampere.chain.embedded import EmbeddedChain
from ampere.chain.errors import BroadcastError, RejectReason
from ampere.chain.policy import SEQUENCE_TYPE_FLAG

from .helpers import SINK_SCRIPT, Coin, fund_p2wpkh, fund_script, mine_coins, p2wpkh_spk, spend_p2wpkh

ALICE = PrivateKey.from_int(0xA11CE)
BOB = PrivateKey.from_int(0xB0B)
P2WPKH_DUST = 294


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[EmbeddedChain]:
    with EmbeddedChain(tmp_path / "chain") as opened:
        yield opened


def refused(chain: EmbeddedChain, tx: Transaction) -> BroadcastError:
    """Both test_accept and submit refuse `tx` with the same error; returns it."""
    with pytest.raises(BroadcastError) as by_test:
        chain.test_accept(tx)
    with pytest.raises(BroadcastError) as by_submit:
        chain.submit(tx)
    assert by_test.value.reason is by_submit.value.reason
    assert by_test.value.detail == by_submit.value.detail
    return by_submit.value


def accepted(chain: EmbeddedChain, tx: Transaction) -> None:
    chain.test_accept(tx)
    assert chain.submit(tx) == tx.txid
    assert tx.txid in chain.mempool_txids()


def to_bob(
    coin: Coin,
    amount: int | None = None,
    *,
    fee: int = 1_000,
    locktime: int = 0,
    sequence: int = SEQUENCE_LOCKTIME_ONLY,
    version: int = 2,
) -> Transaction:
    """All of `coin` to Bob but `fee` (or exactly `amount`)."""
    value = coin.value - fee if amount is None else amount
    return spend_p2wpkh(
        [coin], [TxOut(value, p2wpkh_spk(BOB))], locktime=locktime, sequence=sequence, version=version
    )


def high_s(signature: bytes) -> bytes:
    """The same ECDSA signature with S replaced by n - S (still valid, no longer low-S)."""
    der, sighash = signature[:-1], signature[-1:]
    r_len = der[3]
    r = der[4 : 4 + r_len]
    s = CURVE_ORDER - int.from_bytes(der[6 + r_len :], "big")
    s_bytes = s.to_bytes((s.bit_length() + 8) // 8, "big")
    body = b"\x02" + bytes([len(r)]) + r + b"\x02" + bytes([len(s_bytes)]) + s_bytes
    return b"\x30" + bytes([len(body)]) + body + sighash


# --- lock times ---------------------------------------------------------------------------------------


def test_height_locktime_is_non_final_until_the_tip_reaches_it(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 100_000)
    tip = chain.tip_height()
    tx = to_bob(coin, locktime=tip + 1, sequence=SEQUENCE_LOCKTIME_ONLY)
    error = refused(chain, tx)
    assert error.reason is RejectReason.NON_FINAL and error.detail == "non-final"
    chain.generate(1, SINK_SCRIPT)
    accepted(chain, tx)
    # A final sequence disables nLockTime altogether.
    other = fund_p2wpkh(chain, ALICE, 100_000)
    accepted(chain, to_bob(other, locktime=chain.tip_height() + 50, sequence=0xFFFF_FFFF))


def test_time_locktime_counts_median_time_past_not_block_time(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 100_000)
    locktime = chain.median_time_past()
    tx = to_bob(coin, locktime=locktime, sequence=SEQUENCE_LOCKTIME_ONLY)
    chain.set_mock_time(locktime + 600)
    steps = 0
    while True:
        try:
            chain.test_accept(tx)
            break
        except BroadcastError as error:
            assert error.reason is RejectReason.NON_FINAL
        chain.generate(1, SINK_SCRIPT)
        steps += 1
    # Final exactly when the median, not the newest block's time, passes the lock time.
    assert chain.median_time_past() > locktime >= chain.median_time_past(chain.tip_height() - 1)
    assert chain.block_time(chain.tip_height() - steps + 1) > locktime
    assert steps > 1
    accepted(chain, tx)


def test_bip68_height_lock_refused_one_block_early(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 100_000)
    confirmed_at = chain.tip_height()
    tx = to_bob(coin, sequence=5)
    chain.generate(3, SINK_SCRIPT)
    error = refused(chain, tx)
    assert error.reason is RejectReason.NON_BIP68_FINAL and error.detail == "non-BIP68-final"
    chain.generate(1, SINK_SCRIPT)
    assert chain.tip_height() == confirmed_at + 4
    accepted(chain, tx)


def test_bip68_does_not_apply_to_version_1_or_disabled_sequences(chain: EmbeddedChain) -> None:
    first = fund_p2wpkh(chain, ALICE, 100_000)
    second = fund_p2wpkh(chain, ALICE, 100_000)
    accepted(chain, to_bob(first, sequence=100, version=1))
    accepted(chain, to_bob(second, sequence=(1 << 31) | 100))


def test_bip68_time_lock_uses_median_time_past_of_the_coins_block(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 100_000)
    coin_time = chain.median_time_past(chain.tip_height() - 1)
    tx = to_bob(coin, sequence=SEQUENCE_TYPE_FLAG | 2)  # 2 x 512 seconds
    chain.set_mock_time(coin_time + 1100)
    while True:
        try:
            chain.test_accept(tx)
            break
        except BroadcastError as error:
            assert error.reason is RejectReason.NON_BIP68_FINAL
        chain.generate(1, SINK_SCRIPT)
    assert chain.median_time_past() >= coin_time + 1024 > chain.median_time_past(chain.tip_height() - 1)
    accepted(chain, tx)


def test_csv_script_and_bip68_together(chain: EmbeddedChain) -> None:
    pubkey = ALICE.public_key.data
    script = build_script(5, Op.OP_CHECKSEQUENCEVERIFY, Op.OP_DROP, pubkey, Op.OP_CHECKSIG)
    outpoint = fund_script(chain, p2wsh_script(script), 100_000)
    confirmed_at = chain.tip_height()

    def spend(sequence: int) -> Transaction:
        tx = Transaction(2, (TxIn(outpoint, b"", sequence),), (TxOut(99_000, p2wpkh_spk(BOB)),), 0)
        return tx.with_witness(0, [p2wsh_signature(tx, 0, ALICE, script, 100_000), script])

    chain.generate(3, SINK_SCRIPT)
    error = refused(chain, spend(5))
    assert error.reason is RejectReason.NON_BIP68_FINAL
    # nSequence 3 satisfies BIP68 by now but not the script's CSV 5.
    error = refused(chain, spend(3))
    assert error.reason is RejectReason.SCRIPT_VERIFY_FAILED
    assert error.detail == "mandatory-script-verify-flag-failed (Locktime requirement not satisfied)"
    chain.generate(1, SINK_SCRIPT)
    assert chain.tip_height() == confirmed_at + 4
    accepted(chain, spend(5))


# --- scripts and signatures ---------------------------------------------------------------------------


def test_wrong_signature_fails_the_kernel_script_check(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 100_000)
    good = to_bob(coin)
    by_bob = spend_p2wpkh([Coin(coin.outpoint, coin.value, BOB)], list(good.outputs))
    forged = good.with_witness(0, [by_bob.inputs[0].witness[0], ALICE.public_key.data])
    error = refused(chain, forged)
    assert error.reason is RejectReason.SCRIPT_VERIFY_FAILED
    assert error.detail == (
        "mandatory-script-verify-flag-failed "
        "(Script evaluated without error but finished with a false/empty top stack element)"
    )
    wrong_key = good.with_witness(0, by_bob.inputs[0].witness)
    error = refused(chain, wrong_key)
    assert error.detail == "mandatory-script-verify-flag-failed (Script failed an OP_EQUALVERIFY operation)"
    wrong_amount = spend_p2wpkh([Coin(coin.outpoint, coin.value + 1, ALICE)], list(good.outputs))
    assert refused(chain, wrong_amount).reason is RejectReason.SCRIPT_VERIFY_FAILED
    accepted(chain, good)


def test_high_s_signature_is_refused_as_policy(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 100_000)
    good = to_bob(coin)
    signature, pubkey = good.inputs[0].witness
    malleated = good.with_witness(0, [high_s(signature), pubkey])
    assert malleated.txid == good.txid and malleated.wtxid != good.wtxid
    error = refused(chain, malleated)
    assert error.reason is RejectReason.SCRIPT_VERIFY_FAILED
    assert error.detail == (
        "non-mandatory-script-verify-flag (Non-canonical signature: S value is unnecessarily high)"
    )
    accepted(chain, good)
    error = refused(chain, malleated)
    assert error.reason is RejectReason.ALREADY_IN_MEMPOOL
    assert error.detail == "txn-same-nonwitness-data-in-mempool"


# --- inputs -------------------------------------------------------------------------------------------


def test_premature_coinbase_spend(chain: EmbeddedChain) -> None:
    [coin] = mine_coins(chain, ALICE, mature=False)
    chain.generate(COINBASE_MATURITY - 2, SINK_SCRIPT)
    tx = to_bob(coin)
    error = refused(chain, tx)
    assert error.reason is RejectReason.PREMATURE_COINBASE_SPEND
    assert error.detail == "bad-txns-premature-spend-of-coinbase, tried to spend coinbase at depth 99"
    chain.generate(1, SINK_SCRIPT)
    accepted(chain, tx)


def test_missing_and_spent_inputs(chain: EmbeddedChain) -> None:
    ghost = Coin(OutPoint(b"\x42" * 32, 0), 100_000, ALICE)
    error = refused(chain, to_bob(ghost))
    assert error.reason is RejectReason.MISSING_OR_SPENT_INPUTS
    assert error.detail == "bad-txns-inputs-missingorspent"
    coin = fund_p2wpkh(chain, ALICE, 100_000)
    accepted(chain, to_bob(coin))
    chain.generate(1, SINK_SCRIPT)
    again = to_bob(coin, amount=90_000)
    assert refused(chain, again).reason is RejectReason.MISSING_OR_SPENT_INPUTS


def test_already_in_chain(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 100_000)
    tx = to_bob(coin)
    accepted(chain, tx)
    chain.generate(1, SINK_SCRIPT)
    error = refused(chain, tx)
    assert error.reason is RejectReason.ALREADY_IN_CHAIN
    assert error.detail == "Transaction outputs already in utxo set"


def test_already_in_mempool(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 100_000)
    tx = to_bob(coin)
    accepted(chain, tx)
    with pytest.raises(BroadcastError) as error:
        chain.test_accept(tx)
    assert error.value.reason is RejectReason.ALREADY_IN_MEMPOOL
    assert error.value.detail == "txn-already-in-mempool"
    assert chain.submit(tx) == tx.txid  # resubmitting is not an error, as with bitcoind


def test_outputs_exceeding_inputs(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 100_000)
    error = refused(chain, to_bob(coin, amount=100_001))
    assert error.reason is RejectReason.OUTPUTS_EXCEED_INPUTS
    assert error.detail == "bad-txns-in-belowout, value in (0.001) < value out (0.00100001)"


# --- fees and standardness ----------------------------------------------------------------------------


def _with_fee(coin: Coin, fee_for: Callable[[int], int]) -> Transaction:
    vsize = to_bob(coin).vsize
    while True:
        tx = to_bob(coin, amount=coin.value - fee_for(vsize))
        if tx.vsize == vsize:
            return tx
        vsize = tx.vsize


def test_min_relay_fee(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 100_000)
    cheap = _with_fee(coin, lambda vsize: vsize - 1)
    error = refused(chain, cheap)
    assert error.reason is RejectReason.INSUFFICIENT_FEE
    assert error.detail == f"min relay fee not met, {cheap.vsize - 1} < {cheap.vsize}"
    accepted(chain, _with_fee(coin, lambda vsize: vsize))


def test_dust_limits_per_output_type(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 100_000)
    scripts_and_limits = [
        (p2wpkh_spk(BOB), P2WPKH_DUST),
        (p2wsh_script(b"\x51"), 330),
        (p2tr_script(BOB.public_key.xonly()), 330),
        (p2pkh_script(BOB.public_key.hash160()), 546),
    ]
    for index, (script, limit) in enumerate(scripts_and_limits):
        outputs = [TxOut(value, spk) for spk, value in scripts_and_limits]
        outputs[index] = TxOut(limit - 1, script)
        error = refused(chain, spend_p2wpkh([coin], outputs, change_script=p2wpkh_spk(ALICE)))
        assert error.reason is RejectReason.DUST and error.detail == "dust"
    outputs = [TxOut(value, spk) for spk, value in scripts_and_limits]
    accepted(chain, spend_p2wpkh([coin], outputs, change_script=p2wpkh_spk(ALICE)))


def test_nonstandard_transactions(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 10_000_000)
    bare_true = spend_p2wpkh([coin], [TxOut(50_000, build_script(Op.OP_1))])
    error = refused(chain, bare_true)
    assert error.reason is RejectReason.NONSTANDARD and error.detail == "scriptpubkey"
    error = refused(chain, to_bob(coin, version=3))
    assert error.reason is RejectReason.NONSTANDARD and error.detail == "version"
    # Over the 400,000 weight units of a standard transaction.
    outputs = [TxOut(1_000, p2wsh_script(i.to_bytes(4, "little"))) for i in range(2_330)]
    error = refused(chain, spend_p2wpkh([coin], outputs, change_script=p2wpkh_spk(ALICE)))
    assert error.reason is RejectReason.NONSTANDARD and error.detail == "tx-size"


# --- replacement and packages ------------------------------------------------------------------------


def test_double_spend_needs_a_replacement_paying_more(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 100_000)
    first = to_bob(coin, fee=1_000)
    accepted(chain, first)

    same_fee = spend_p2wpkh([coin], [TxOut(99_000, p2wpkh_spk(ALICE))])
    error = refused(chain, same_fee)
    assert error.reason is RejectReason.INSUFFICIENT_FEE
    prefix = f"insufficient fee, rejecting replacement {same_fee.txid_hex}; new feerate"
    assert error.detail.startswith(prefix)
    assert "<= old feerate" in error.detail

    slightly_more = to_bob(coin, fee=1_050)
    error = refused(chain, slightly_more)
    assert error.reason is RejectReason.INSUFFICIENT_FEE
    assert "not enough additional fees to relay; 0.0000005 < " in error.detail

    replacement = to_bob(coin, fee=1_000 + slightly_more.vsize)
    chain.test_accept(replacement)
    assert chain.mempool_txids() == [first.txid]  # test_accept changed nothing
    accepted(chain, replacement)
    assert first.txid not in chain.mempool_txids()
    assert chain.get_txout(first.outpoint(0)) is None


def test_replacement_must_outpay_the_descendants_it_evicts(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 100_000)
    parent = spend_p2wpkh([coin], [TxOut(99_000, p2wpkh_spk(ALICE))])
    accepted(chain, parent)
    child = spend_p2wpkh([Coin(parent.outpoint(0), 99_000, ALICE)], [TxOut(94_000, p2wpkh_spk(BOB))])
    accepted(chain, child)
    replacement = to_bob(coin, fee=3_000)
    error = refused(chain, replacement)
    assert error.reason is RejectReason.INSUFFICIENT_FEE
    assert error.detail.endswith("less fees than conflicting txs; 0.00003 < 0.00006")
    better = to_bob(coin, fee=6_000 + 200)
    accepted(chain, better)
    assert chain.mempool_txids() == [better.txid]


def test_replacement_may_not_spend_what_it_replaces(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 100_000)
    original = spend_p2wpkh([coin], [TxOut(99_000, p2wpkh_spk(ALICE))])
    accepted(chain, original)
    change = Coin(original.outpoint(0), 99_000, ALICE)
    sneaky = spend_p2wpkh([coin, change], [TxOut(150_000, p2wpkh_spk(BOB))])
    error = refused(chain, sneaky)
    assert error.reason is RejectReason.CONFLICT
    assert error.detail.startswith("bad-txns-spends-conflicting-tx")


def test_chain_of_unconfirmed_transactions_is_limited_to_25(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 1_000_000)
    for _ in range(25):
        tx = spend_p2wpkh([coin], [TxOut(coin.value - 500, p2wpkh_spk(ALICE))])
        accepted(chain, tx)
        coin = Coin(tx.outpoint(0), coin.value - 500, ALICE)
    error = refused(chain, spend_p2wpkh([coin], [TxOut(coin.value - 500, p2wpkh_spk(ALICE))]))
    assert error.reason is RejectReason.NONSTANDARD
    assert error.detail == "too-long-mempool-chain, too many unconfirmed ancestors [limit: 25]"
    [block_hash] = chain.generate(1, SINK_SCRIPT)
    block = chain.get_block(block_hash)
    assert block is not None and len(block.transactions) == 26
    assert chain.mempool_txids() == []


def test_a_block_evicts_conflicting_mempool_transactions(chain: EmbeddedChain) -> None:
    coin = fund_p2wpkh(chain, ALICE, 100_000)
    in_mempool = to_bob(coin)
    accepted(chain, in_mempool)
    child = spend_p2wpkh([Coin(in_mempool.outpoint(0), 99_000, BOB)], [TxOut(98_000, p2wpkh_spk(ALICE))])
    accepted(chain, child)
    mined_elsewhere = to_bob(coin, amount=98_500)
    tip = chain.tip_height()
    block = assemble_block(
        chain.tip_hash(), tip + 1, chain.median_time_past() + 1, SINK_SCRIPT, [mined_elsewhere], 1_500
    )
    assert chain.submit_block(block).valid
    assert chain.mempool_txids() == []
    assert chain.tx_status(mined_elsewhere.txid).block_height == tip + 1
