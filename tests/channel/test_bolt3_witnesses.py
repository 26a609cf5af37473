"""Every spending path of every BOLT 3 output, checked by libbitcoinkernel's script interpreter.

The vectors pin the commitment and HTLC transactions; nothing in the spec pins the sweep
witnesses, so these tests build real spends of the Appendix C/F outputs, sign them with the
spec's keys and let Bitcoin Core's consensus code judge them (CSV and CLTV included).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import pbk
import pytest
from pbk.script import PrecomputedTransactionData

from ampere.bitcoin.keys import pubkey_from_secret
from ampere.bitcoin.script import p2pkh_script_code, p2wpkh_script, p2wsh_script
from ampere.bitcoin.tx import OutPoint, Transaction, TxIn, TxOut
from ampere.channel.transactions import (
    CommitmentTransaction,
    HtlcDirection,
    HtlcTxKind,
    OutputKind,
    build_commitment,
    finalize_commitment,
    finalize_htlc_tx,
    htlc_transactions,
    sign_commitment,
    sign_local_htlc,
    sign_remote_htlc,
    weights,
)
from ampere.channel.transactions.commitment import CommitmentOutput
from ampere.channel.transactions.errors import SignatureError
from ampere.channel.transactions.htlc import HtlcTransaction
from ampere.channel.transactions.signing import (
    anchor_sweep_witness,
    anchor_witness,
    htlc_revocation_witness,
    htlc_tx_witness,
    offered_htlc_preimage_witness,
    received_htlc_timeout_witness,
    sign_input,
    to_local_delayed_witness,
    to_local_revocation_witness,
    to_remote_anchors_witness,
    to_remote_witness,
)
from ampere.crypto.keys import derive_revocation_privkey
from tests.channel.bolt3_fixtures import (
    INTERNAL,
    KEYS,
    LOCAL_FUNDING_PRIVKEY,
    LOCAL_HTLC_PRIVKEY,
    PARAMS,
    PREIMAGES,
    REMOTE_FUNDING_PRIVKEY,
    REMOTE_HTLC_PRIVKEY,
    VectorCase,
    anchor_cases,
    params_for,
    secret,
    static_cases,
)

DELAY: int = PARAMS["local_delay"]
LOCAL_DELAYED_PRIVKEY = secret(INTERNAL["local_delayed_privkey"])
REMOTE_PAYMENT_PRIVKEY = secret(INTERNAL["remote_payment_basepoint_secret"])
REVOCATION_PRIVKEY = derive_revocation_privkey(
    secret(INTERNAL["remote_revocation_basepoint_secret"]), secret(INTERNAL["x_local_per_commitment_secret"])
)
SWEEP_TO = p2wpkh_script(pubkey_from_secret(LOCAL_FUNDING_PRIVKEY))


def test_spec_private_keys_match_the_commitment_keys() -> None:
    assert pubkey_from_secret(LOCAL_DELAYED_PRIVKEY) == KEYS.local_delayed_pubkey
    assert pubkey_from_secret(REMOTE_PAYMENT_PRIVKEY) == KEYS.remote_payment_pubkey
    assert pubkey_from_secret(REVOCATION_PRIVKEY) == KEYS.revocation_pubkey
    assert pubkey_from_secret(LOCAL_HTLC_PRIVKEY) == KEYS.local_htlc_pubkey
    assert pubkey_from_secret(REMOTE_HTLC_PRIVKEY) == KEYS.remote_htlc_pubkey


def consensus_valid(tx: Transaction, index: int, spent: Sequence[TxOut]) -> bool:
    kernel_tx = pbk.Transaction(tx.serialize())
    outputs = [pbk.TransactionOutput(pbk.ScriptPubkey(out.script_pubkey), out.value) for out in spent]
    precomputed = PrecomputedTransactionData(kernel_tx, outputs)
    script = pbk.ScriptPubkey(spent[index].script_pubkey)
    return bool(
        script.verify(spent[index].value, kernel_tx, precomputed, index, pbk.ScriptVerificationFlags.ALL)
    )


def case_named(cases: list[VectorCase], fragment: str) -> VectorCase:
    return next(case for case in cases if fragment in case.name)


STATIC_CASE = case_named(static_cases(), "all five HTLCs untrimmed")
ANCHOR_CASE = case_named(anchor_cases(), "seven outputs untrimmed")
BOTH = [STATIC_CASE, ANCHOR_CASE]
BOTH_IDS = ["static_remotekey", "anchors"]


def build(case: VectorCase) -> CommitmentTransaction:
    return build_commitment(
        params_for(case.fmt, case.dust_limit_sat),
        KEYS,
        42,
        case.to_local_msat,
        case.to_remote_msat,
        case.htlcs,
        case.feerate_per_kw,
    )


def spend(outpoint: OutPoint, amount_sat: int, *, sequence: int, locktime: int = 0) -> Transaction:
    return Transaction(
        version=2,
        inputs=(TxIn(outpoint, b"", sequence),),
        outputs=(TxOut(amount_sat - 500, SWEEP_TO),),
        locktime=locktime,
    )


def output(commitment: CommitmentTransaction, kind: OutputKind) -> CommitmentOutput:
    found = commitment.output_of_kind(kind)
    assert found is not None
    return found


def witness_script(out: CommitmentOutput) -> bytes:
    assert out.witness_script is not None
    return out.witness_script


def sweep_valid(
    prev_tx: Transaction,
    out_index: int,
    script: bytes,
    privkey: bytes,
    make_witness: Callable[[bytes], tuple[bytes, ...]],
    *,
    sequence: int,
    locktime: int = 0,
) -> bool:
    prev = prev_tx.outputs[out_index]
    tx = spend(OutPoint(prev_tx.txid, out_index), prev.value, sequence=sequence, locktime=locktime)
    signature = sign_input(tx, 0, script, prev.value, privkey)
    tx = tx.with_witness(0, make_witness(signature))
    return consensus_valid(tx, 0, [prev])


# --- the funding output and the HTLC transactions -------------------------------------------------------


@pytest.mark.parametrize("case", BOTH, ids=BOTH_IDS)
def test_commitment_spends_the_funding_output(case: VectorCase) -> None:
    commitment = build(case)
    signed = finalize_commitment(
        commitment,
        sign_commitment(commitment, LOCAL_FUNDING_PRIVKEY),
        sign_commitment(commitment, REMOTE_FUNDING_PRIVKEY),
    )
    funding_out = TxOut(commitment.params.funding_amount_sat, p2wsh_script(commitment.funding_witness_script))
    assert consensus_valid(signed, 0, [funding_out])
    swapped = finalize_commitment(
        commitment,
        sign_commitment(commitment, REMOTE_FUNDING_PRIVKEY),
        sign_commitment(commitment, LOCAL_FUNDING_PRIVKEY),
    )
    assert not consensus_valid(swapped, 0, [funding_out])


def signed_htlc_tx(htlc_tx: HtlcTransaction) -> Transaction:
    preimage = PREIMAGES[htlc_tx.htlc.htlc_id] if htlc_tx.kind is HtlcTxKind.SUCCESS else None
    return finalize_htlc_tx(
        htlc_tx,
        sign_remote_htlc(htlc_tx, REMOTE_HTLC_PRIVKEY),
        sign_local_htlc(htlc_tx, LOCAL_HTLC_PRIVKEY),
        preimage,
    )


@pytest.mark.parametrize("case", BOTH, ids=BOTH_IDS)
def test_htlc_transactions_spend_their_outputs(case: VectorCase) -> None:
    commitment = build(case)
    for htlc_tx in htlc_transactions(commitment):
        prev = commitment.tx.outputs[htlc_tx.commitment_output_index]
        assert consensus_valid(signed_htlc_tx(htlc_tx), 0, [prev])


def test_htlc_tx_witness_checks_the_preimage() -> None:
    commitment = build(STATIC_CASE)
    success = next(h for h in htlc_transactions(commitment) if h.kind is HtlcTxKind.SUCCESS)
    timeout = next(h for h in htlc_transactions(commitment) if h.kind is HtlcTxKind.TIMEOUT)
    sig = sign_local_htlc(success, LOCAL_HTLC_PRIVKEY)
    with pytest.raises(SignatureError):
        htlc_tx_witness(success, sig, sig, None)
    with pytest.raises(SignatureError):
        htlc_tx_witness(success, sig, sig, b"\x07" * 32)
    with pytest.raises(SignatureError):
        htlc_tx_witness(timeout, sig, sig, PREIMAGES[timeout.htlc.htlc_id])


def test_anchor_htlc_tx_accepts_added_fee_inputs() -> None:
    """SIGHASH_SINGLE|ANYONECANPAY: the peer's signature survives added inputs and outputs."""
    commitment = build(ANCHOR_CASE)
    htlc_tx = htlc_transactions(commitment)[0]
    remote_sig = sign_remote_htlc(htlc_tx, REMOTE_HTLC_PRIVKEY)
    fee_prev = TxOut(50_000, p2wpkh_script(pubkey_from_secret(LOCAL_FUNDING_PRIVKEY)))
    fee_outpoint = OutPoint(b"\x11" * 32, 3)
    bigger = replace(
        htlc_tx.tx,
        inputs=(*htlc_tx.tx.inputs, TxIn(fee_outpoint, b"", 0xFFFF_FFFD)),
        outputs=(*htlc_tx.tx.outputs, TxOut(40_000, SWEEP_TO)),
    )
    grown = replace(htlc_tx, tx=bigger)
    local_sig = sign_local_htlc(grown, LOCAL_HTLC_PRIVKEY)
    preimage = PREIMAGES[htlc_tx.htlc.htlc_id] if htlc_tx.kind is HtlcTxKind.SUCCESS else None
    signed = bigger.with_witness(0, htlc_tx_witness(grown, remote_sig, local_sig, preimage))
    prev = commitment.tx.outputs[htlc_tx.commitment_output_index]
    assert consensus_valid(signed, 0, [prev, fee_prev])
    # The local signature is SIGHASH_ALL: re-using the one made for the bare transaction fails.
    stale_local = sign_local_htlc(htlc_tx, LOCAL_HTLC_PRIVKEY)
    stale = bigger.with_witness(0, htlc_tx_witness(grown, remote_sig, stale_local, preimage))
    assert not consensus_valid(stale, 0, [prev, fee_prev])


# --- to_local, to_remote, anchors ------------------------------------------------------------------------


@pytest.mark.parametrize("case", BOTH, ids=BOTH_IDS)
def test_to_local_paths(case: VectorCase) -> None:
    commitment = build(case)
    out = output(commitment, OutputKind.TO_LOCAL)
    script = witness_script(out)

    def delayed(sig: bytes) -> tuple[bytes, ...]:
        return to_local_delayed_witness(sig, script)

    def revoked(sig: bytes) -> tuple[bytes, ...]:
        return to_local_revocation_witness(sig, script)

    assert sweep_valid(commitment.tx, out.index, script, LOCAL_DELAYED_PRIVKEY, delayed, sequence=DELAY)
    assert not sweep_valid(
        commitment.tx, out.index, script, LOCAL_DELAYED_PRIVKEY, delayed, sequence=DELAY - 1
    )
    assert sweep_valid(commitment.tx, out.index, script, REVOCATION_PRIVKEY, revoked, sequence=0xFFFF_FFFF)
    assert not sweep_valid(commitment.tx, out.index, script, LOCAL_DELAYED_PRIVKEY, revoked, sequence=DELAY)


def test_to_remote_p2wpkh() -> None:
    commitment = build(STATIC_CASE)
    out = output(commitment, OutputKind.TO_REMOTE)
    assert out.witness_script is None
    code = p2pkh_script_code(KEYS.remote_payment_pubkey)

    def witness(sig: bytes) -> tuple[bytes, ...]:
        return to_remote_witness(sig, KEYS.remote_payment_pubkey)

    assert sweep_valid(commitment.tx, out.index, code, REMOTE_PAYMENT_PRIVKEY, witness, sequence=0xFFFF_FFFF)


def test_to_remote_anchors_needs_one_confirmation() -> None:
    commitment = build(ANCHOR_CASE)
    out = output(commitment, OutputKind.TO_REMOTE)
    script = witness_script(out)

    def witness(sig: bytes) -> tuple[bytes, ...]:
        return to_remote_anchors_witness(sig, script)

    assert sweep_valid(commitment.tx, out.index, script, REMOTE_PAYMENT_PRIVKEY, witness, sequence=1)
    assert not sweep_valid(commitment.tx, out.index, script, REMOTE_PAYMENT_PRIVKEY, witness, sequence=0)


@pytest.mark.parametrize(
    ("kind", "privkey"),
    [(OutputKind.LOCAL_ANCHOR, LOCAL_FUNDING_PRIVKEY), (OutputKind.REMOTE_ANCHOR, REMOTE_FUNDING_PRIVKEY)],
)
def test_anchor_paths(kind: OutputKind, privkey: bytes) -> None:
    commitment = build(ANCHOR_CASE)
    out = output(commitment, kind)
    script = witness_script(out)

    def owner(sig: bytes) -> tuple[bytes, ...]:
        return anchor_witness(sig, script)

    def anyone(_sig: bytes) -> tuple[bytes, ...]:
        return anchor_sweep_witness(script)

    assert sweep_valid(commitment.tx, out.index, script, privkey, owner, sequence=0xFFFF_FFFF)
    other = REMOTE_FUNDING_PRIVKEY if privkey == LOCAL_FUNDING_PRIVKEY else LOCAL_FUNDING_PRIVKEY
    assert not sweep_valid(commitment.tx, out.index, script, other, owner, sequence=0xFFFF_FFFF)
    # The anchor is worth 330 sat; spend() takes 500 of fee, so give the sweep a zero-fee output.
    prev = commitment.tx.outputs[out.index]
    for sequence, valid in ((16, True), (15, False)):
        tx = Transaction(
            version=2,
            inputs=(TxIn(OutPoint(commitment.txid, out.index), b"", sequence),),
            outputs=(TxOut(prev.value, SWEEP_TO),),
        )
        assert consensus_valid(tx.with_witness(0, anyone(b"")), 0, [prev]) is valid


# --- HTLC outputs on the commitment ----------------------------------------------------------------------


@pytest.mark.parametrize("case", BOTH, ids=BOTH_IDS)
def test_htlc_output_paths(case: VectorCase) -> None:
    commitment = build(case)
    csv = 1 if case.fmt.has_anchors else 0
    for out in commitment.htlc_outputs:
        assert out.htlc is not None
        script = witness_script(out)

        def revoked(sig: bytes, script: bytes = script) -> tuple[bytes, ...]:
            return htlc_revocation_witness(sig, KEYS.revocation_pubkey, script)

        assert sweep_valid(
            commitment.tx, out.index, script, REVOCATION_PRIVKEY, revoked, sequence=0xFFFF_FFFF
        )
        if out.htlc.direction is HtlcDirection.OFFERED:
            preimage = PREIMAGES[out.htlc.htlc_id]

            def claim(sig: bytes, script: bytes = script, preimage: bytes = preimage) -> tuple[bytes, ...]:
                return offered_htlc_preimage_witness(sig, preimage, script)

            assert sweep_valid(commitment.tx, out.index, script, REMOTE_HTLC_PRIVKEY, claim, sequence=csv)
            if case.fmt.has_anchors:
                assert not sweep_valid(
                    commitment.tx, out.index, script, REMOTE_HTLC_PRIVKEY, claim, sequence=0
                )

            def bad_claim(sig: bytes, script: bytes = script) -> tuple[bytes, ...]:
                return offered_htlc_preimage_witness(sig, b"\x42" * 32, script)

            assert not sweep_valid(
                commitment.tx, out.index, script, REMOTE_HTLC_PRIVKEY, bad_claim, sequence=csv
            )
        else:
            expiry = out.htlc.cltv_expiry

            def timeout(sig: bytes, script: bytes = script) -> tuple[bytes, ...]:
                return received_htlc_timeout_witness(sig, script)

            assert sweep_valid(
                commitment.tx, out.index, script, REMOTE_HTLC_PRIVKEY, timeout, sequence=csv, locktime=expiry
            )
            assert not sweep_valid(
                commitment.tx,
                out.index,
                script,
                REMOTE_HTLC_PRIVKEY,
                timeout,
                sequence=csv,
                locktime=expiry - 1,
            )


@pytest.mark.parametrize("case", BOTH, ids=BOTH_IDS)
def test_htlc_tx_output_paths(case: VectorCase) -> None:
    commitment = build(case)
    for htlc_tx in htlc_transactions(commitment):
        signed = signed_htlc_tx(htlc_tx)
        script = htlc_tx.output_witness_script

        def delayed(sig: bytes, script: bytes = script) -> tuple[bytes, ...]:
            return to_local_delayed_witness(sig, script)

        def revoked(sig: bytes, script: bytes = script) -> tuple[bytes, ...]:
            return to_local_revocation_witness(sig, script)

        assert sweep_valid(signed, 0, script, LOCAL_DELAYED_PRIVKEY, delayed, sequence=DELAY)
        assert not sweep_valid(signed, 0, script, LOCAL_DELAYED_PRIVKEY, delayed, sequence=DELAY - 1)
        assert sweep_valid(signed, 0, script, REVOCATION_PRIVKEY, revoked, sequence=0)


# --- witness weights ---------------------------------------------------------------------------------------


def _weight(witness: Sequence[bytes]) -> int:
    return (
        len(Transaction(inputs=(TxIn(OutPoint(b"\x00" * 32, 0), witness=tuple(witness)),)).serialize())
        - len(Transaction(inputs=(TxIn(OutPoint(b"\x00" * 32, 0)),)).serialize())
        - 2
    )  # marker and flag


def test_weight_constants_match_spec_appendix_a() -> None:
    assert weights.COMMITMENT_INPUT_WITNESS_WEIGHT == 222
    assert weights.htlc_timeout_tx_witness_weight(False) == 285
    assert weights.htlc_timeout_tx_witness_weight(True) == 288
    assert weights.htlc_success_tx_witness_weight(False) == 324
    assert weights.htlc_success_tx_witness_weight(True) == 327


def test_weight_constants_bound_real_witnesses() -> None:
    """A maximal signature in real witnesses weighs exactly the constant (or less, for a
    smaller delay or expiry than the worst case)."""
    from ampere.channel.transactions.scripts import (
        anchor_script,
        offered_htlc_script,
        received_htlc_script,
        to_local_script,
        to_remote_anchors_script,
    )

    sig = b"\x30" + b"\x00" * 71  # 72 bytes; the builders append the sighash byte
    key = KEYS.revocation_pubkey
    worst_to_local = to_local_script(key, 0xFFFF, key)
    assert len(worst_to_local) == weights.TO_LOCAL_SCRIPT_MAX_SIZE
    assert _weight(to_local_delayed_witness(sig, worst_to_local)) == weights.TO_LOCAL_DELAYED_WITNESS_WEIGHT
    assert (
        _weight(to_local_revocation_witness(sig, worst_to_local))
        == weights.TO_LOCAL_REVOCATION_WITNESS_WEIGHT
    )
    assert _weight(to_remote_witness(sig, key)) == weights.TO_REMOTE_P2WPKH_WITNESS_WEIGHT
    remote_script = to_remote_anchors_script(key)
    assert _weight(to_remote_anchors_witness(sig, remote_script)) == weights.TO_REMOTE_ANCHORS_WITNESS_WEIGHT
    anchor = anchor_script(key)
    assert _weight(anchor_witness(sig, anchor)) == weights.ANCHOR_WITNESS_WEIGHT
    assert _weight(anchor_sweep_witness(anchor)) == weights.ANCHOR_SWEEP_WITNESS_WEIGHT
    for anchors in (False, True):
        offered = offered_htlc_script(key, key, key, b"\x01" * 32, anchors=anchors)
        received = received_htlc_script(key, key, key, b"\x01" * 32, 0x7FFF_FFFF, anchors=anchors)
        assert _weight(offered_htlc_preimage_witness(sig, b"\x02" * 32, offered)) == (
            weights.offered_htlc_preimage_witness_weight(anchors)
        )
        assert _weight(received_htlc_timeout_witness(sig, received)) == (
            weights.received_htlc_timeout_witness_weight(anchors)
        )
        assert _weight(htlc_revocation_witness(sig, key, offered)) == (
            weights.offered_htlc_revocation_witness_weight(anchors)
        )
        assert _weight(htlc_revocation_witness(sig, key, received)) == (
            weights.received_htlc_revocation_witness_weight(anchors)
        )
    assert weights.input_weight(0) == 164
