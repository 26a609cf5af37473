"""Mutual closing transactions (legacy closing_signed and option_simple_close) and dust thresholds."""

from __future__ import annotations

import pbk
import pytest
from pbk.script import PrecomputedTransactionData

from ampere.bitcoin.keys import pubkey_from_secret
from ampere.bitcoin.script import (
    op_return_script,
    p2pkh_script,
    p2sh_script,
    p2tr_script,
    p2wpkh_script,
    p2wsh_script,
)
from ampere.bitcoin.tx import SEQUENCE_FINAL, Transaction
from ampere.channel.transactions import (
    ClosingTransaction,
    ClosingVariant,
    FundingOutput,
    TransactionBuildError,
    build_legacy_closing_tx,
    build_simple_closing_tx,
    commitment_number_from_tx,
    dust_threshold_sat,
    finalize_closing,
    sign_closing,
    verify_closing_signature,
)
from tests.channel.bolt3_fixtures import (
    CAPACITY_SAT,
    FUNDING_OUTPOINT,
    KEYS,
    LOCAL_FUNDING_PRIVKEY,
    OBSCURING_FACTOR,
    REMOTE_FUNDING_PRIVKEY,
)

FUNDING = FundingOutput(FUNDING_OUTPOINT, CAPACITY_SAT, KEYS.local_funding_pubkey, KEYS.remote_funding_pubkey)
LOCAL_SCRIPT = p2wpkh_script(pubkey_from_secret(b"\x01" * 32))
REMOTE_SCRIPT = p2wsh_script(b"\x51")


def consensus_valid(tx: Transaction) -> bool:
    kernel_tx = pbk.Transaction(tx.serialize())
    spent = pbk.TransactionOutput(pbk.ScriptPubkey(FUNDING.script_pubkey), FUNDING.amount_sat)
    precomputed = PrecomputedTransactionData(kernel_tx, [spent])
    script = pbk.ScriptPubkey(FUNDING.script_pubkey)
    return bool(script.verify(FUNDING.amount_sat, kernel_tx, precomputed, 0, pbk.ScriptVerificationFlags.ALL))


def signed(closing: ClosingTransaction) -> Transaction:
    local_sig = sign_closing(closing, LOCAL_FUNDING_PRIVKEY)
    remote_sig = sign_closing(closing, REMOTE_FUNDING_PRIVKEY)
    assert verify_closing_signature(closing, KEYS.local_funding_pubkey, local_sig)
    assert verify_closing_signature(closing, KEYS.remote_funding_pubkey, remote_sig)
    assert not verify_closing_signature(closing, KEYS.local_funding_pubkey, remote_sig)
    return finalize_closing(closing, local_sig, remote_sig)


def test_legacy_closing_opener_pays_and_outputs_are_bip69() -> None:
    closing = build_legacy_closing_tx(
        FUNDING,
        LOCAL_SCRIPT,
        REMOTE_SCRIPT,
        7_000_000_999,
        2_999_999_001,
        1_000,
        local_is_opener=True,
        dust_limit_sat=546,
    )
    tx = closing.tx
    assert tx.version == 2 and tx.locktime == 0
    assert tx.inputs[0].sequence == SEQUENCE_FINAL
    assert tx.inputs[0].prevout == FUNDING_OUTPOINT
    assert [o.value for o in tx.outputs] == [2_999_999, 6_999_000]  # rounded down, opener pays
    assert closing.remote_output_index == 0 and closing.local_output_index == 1
    assert tx.outputs[0].script_pubkey == REMOTE_SCRIPT
    final = signed(closing)
    assert consensus_valid(final)
    assert commitment_number_from_tx(final, OBSCURING_FACTOR) is None


def test_legacy_closing_remote_opener_dust_and_omission() -> None:
    closing = build_legacy_closing_tx(
        FUNDING,
        LOCAL_SCRIPT,
        REMOTE_SCRIPT,
        545_999,
        CAPACITY_SAT * 1000 - 545_999,
        2_000,
        local_is_opener=False,
        dust_limit_sat=546,
    )
    assert closing.local_output_index is None
    assert [o.value for o in closing.tx.outputs] == [CAPACITY_SAT - 546 - 2_000]
    omitted = build_legacy_closing_tx(
        FUNDING,
        LOCAL_SCRIPT,
        REMOTE_SCRIPT,
        5_000_000_000,
        5_000_000_000,
        2_000,
        local_is_opener=True,
        dust_limit_sat=546,
        omit_local_output=True,
    )
    assert omitted.local_output_index is None and omitted.remote_output_index == 0
    assert consensus_valid(signed(omitted))


def test_legacy_closing_errors() -> None:
    with pytest.raises(TransactionBuildError):
        build_legacy_closing_tx(
            FUNDING, LOCAL_SCRIPT, REMOTE_SCRIPT, 999_999, 0, 1_000, local_is_opener=True, dust_limit_sat=546
        )
    with pytest.raises(TransactionBuildError):  # nothing left above dust
        build_legacy_closing_tx(
            FUNDING,
            LOCAL_SCRIPT,
            REMOTE_SCRIPT,
            600_000,
            500_000,
            100,
            local_is_opener=True,
            dust_limit_sat=546,
        )
    with pytest.raises(TransactionBuildError):
        build_legacy_closing_tx(
            FUNDING,
            LOCAL_SCRIPT,
            REMOTE_SCRIPT,
            CAPACITY_SAT * 1000,
            1,
            0,
            local_is_opener=True,
            dust_limit_sat=546,
        )


@pytest.mark.parametrize("local_is_closer", [True, False])
def test_simple_closing_closer_pays(local_is_closer: bool) -> None:
    closing = build_simple_closing_tx(
        FUNDING,
        LOCAL_SCRIPT,
        REMOTE_SCRIPT,
        6_000_000_000,
        4_000_000_000,
        1_500,
        840_000,
        local_is_closer=local_is_closer,
        variant=ClosingVariant.CLOSER_AND_CLOSEE_OUTPUTS,
    )
    tx = closing.tx
    assert tx.locktime == 840_000 and tx.inputs[0].sequence == 0xFFFF_FFFD
    assert closing.local_output_index is not None and closing.remote_output_index is not None
    local_value = tx.outputs[closing.local_output_index].value
    remote_value = tx.outputs[closing.remote_output_index].value
    if local_is_closer:
        assert (local_value, remote_value) == (6_000_000 - 1_500, 4_000_000)
    else:
        assert (local_value, remote_value) == (6_000_000, 4_000_000 - 1_500)
    assert [o.value for o in tx.outputs] == sorted(o.value for o in tx.outputs)
    assert consensus_valid(signed(closing))


def test_simple_closing_variants_and_op_return() -> None:
    def build(variant: ClosingVariant, local_script: bytes = LOCAL_SCRIPT) -> ClosingTransaction:
        return build_simple_closing_tx(
            FUNDING,
            local_script,
            REMOTE_SCRIPT,
            100_000,
            CAPACITY_SAT * 1000 - 100_000,
            50,
            0,
            local_is_closer=True,
            variant=variant,
        )

    closer_only = build(ClosingVariant.CLOSER_OUTPUT_ONLY)
    assert closer_only.remote_output_index is None
    assert [o.value for o in closer_only.tx.outputs] == [50]
    closee_only = build(ClosingVariant.CLOSEE_OUTPUT_ONLY)
    assert closee_only.local_output_index is None
    assert [o.value for o in closee_only.tx.outputs] == [CAPACITY_SAT - 100]
    burn = op_return_script(b"bye")
    with_op_return = build(ClosingVariant.CLOSER_AND_CLOSEE_OUTPUTS, burn)
    assert with_op_return.local_output_index == 0
    assert with_op_return.tx.outputs[0].value == 0
    assert with_op_return.tx.outputs[0].script_pubkey == burn
    assert consensus_valid(signed(with_op_return))
    with pytest.raises(TransactionBuildError):
        build_simple_closing_tx(
            FUNDING,
            LOCAL_SCRIPT,
            REMOTE_SCRIPT,
            49_999,
            0,
            50,
            0,
            local_is_closer=True,
            variant=ClosingVariant.CLOSEE_OUTPUT_ONLY,
        )


def test_dust_thresholds_match_the_spec_table() -> None:
    assert dust_threshold_sat(p2pkh_script(b"\x00" * 20)) == 546
    assert dust_threshold_sat(p2sh_script(b"\x00" * 20)) == 540
    assert dust_threshold_sat(p2wpkh_script(KEYS.local_funding_pubkey)) == 294
    assert dust_threshold_sat(p2wsh_script(b"\x51")) == 330
    assert dust_threshold_sat(bytes.fromhex("51024e73")) == 240  # pay-to-anchor
    assert dust_threshold_sat(bytes([0x52, 40]) + b"\x00" * 40) == 354  # unknown segwit, largest
    assert dust_threshold_sat(p2tr_script(b"\x01" * 32)) == 330
    assert dust_threshold_sat(op_return_script(b"")) == 0
