"""`ampere.channel.sweep`: one transaction per spending path, judged by the kernel's script check.

The scenario tests take some of these sweeps through the mempool; here every path of both
commitment formats is signed and checked by libbitcoinkernel's interpreter, including that the
input's nSequence/nLockTime are what the script's CSV/CLTV demand (one less and it fails), and
that the fee, fixed before signing, covers the signed transaction's real weight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.keys import pubkey_from_secret
from ampere.bitcoin.script import p2wpkh_script, p2wsh_script
from ampere.bitcoin.tx import OutPoint, Transaction, TxOut
from ampere.chain.kernel import verify_input
from ampere.channel.sweep import (
    SweepSpec,
    build_sweep_tx,
    htlc_revocation_spec,
    offered_htlc_preimage_spec,
    received_htlc_timeout_spec,
    sign_sweep,
    sweep_fee_sat,
    sweep_weight,
    to_local_delayed_spec,
    to_local_revocation_spec,
    to_remote_anchors_spec,
    to_remote_spec,
)
from ampere.channel.transactions import (
    CommitmentFormat,
    CommitmentTransaction,
    HtlcDirection,
    OutputKind,
    TransactionBuildError,
)
from ampere.channel.transactions.closing import dust_threshold_sat
from ampere.channel.transactions.signing import (
    htlc_revocation_witness,
    offered_htlc_preimage_witness,
    received_htlc_timeout_witness,
    to_local_delayed_witness,
    to_local_revocation_witness,
    to_remote_anchors_witness,
    to_remote_witness,
)
from ampere.cli.demo.channel_kit import Channel, ChannelConfig, Party, htlc_output, make_htlc, output_of
from ampere.crypto.keys import derive_privkey, derive_revocation_privkey

WitnessMaker = Callable[[bytes], tuple[bytes, ...]]
DELAY = 144
EXPIRY = 700
OFFERED_PREIMAGE = sha256(b"offered")
DESTINATION = p2wpkh_script(pubkey_from_secret(sha256(b"destination")))
FORMATS = [CommitmentFormat.STATIC_REMOTEKEY, CommitmentFormat.ANCHORS]


@cache
def _setup(fmt: CommitmentFormat) -> tuple[Channel, Party, Party, CommitmentTransaction]:
    """Alice's commitment with one HTLC each way; only scripts are checked, so no chain is needed."""
    alice = Party("Alice", sha256(b"sweep alice"))
    bob = Party("Bob", sha256(b"sweep bob"))
    channel = Channel(alice, bob, 0, ChannelConfig(1_000_000, fmt, DELAY, 2500))
    channel.funding_outpoint = OutPoint(sha256(b"funding"), 1)
    htlcs = [
        make_htlc(HtlcDirection.OFFERED, 0, 60_000_000, OFFERED_PREIMAGE, EXPIRY),
        make_htlc(HtlcDirection.RECEIVED, 0, 70_000_000, sha256(b"received"), EXPIRY + 6),
    ]
    state = channel.state(3, 600_000_000, 270_000_000, htlcs)
    return channel, alice, bob, channel.commitment(alice, state)


def _spent(commitment: CommitmentTransaction, spec: SweepSpec) -> TxOut:
    return commitment.tx.outputs[spec.outpoint.vout]


def _valid(commitment: CommitmentTransaction, spec: SweepSpec, tx: Transaction) -> bool:
    spent = _spent(commitment, spec)
    return verify_input(spent.script_pubkey, spent.value, tx.serialize(), [spent], 0)


def _paths(fmt: CommitmentFormat) -> list[tuple[str, SweepSpec, bytes, WitnessMaker]]:
    """(name, spec, private key, witness maker) for every path of Alice's commitment."""
    channel, alice, bob, commitment = _setup(fmt)
    anchors = fmt.has_anchors
    keys = commitment.keys
    a, b = channel.secrets(alice), channel.secrets(bob)
    point = a.shachain.point(commitment.commitment_number)
    delayed_key = derive_privkey(a.delayed_payment_basepoint, point)
    bob_htlc_key = derive_privkey(b.htlc_basepoint, point)
    revocation_key = derive_revocation_privkey(b.revocation_basepoint, a.shachain.secret(3))

    def at(kind: OutputKind) -> tuple[OutPoint, int, bytes]:
        out = output_of(commitment, kind)
        return OutPoint(commitment.txid, out.index), out.amount_sat, out.witness_script or b""

    offered = htlc_output(commitment, HtlcDirection.OFFERED, 0)
    received = htlc_output(commitment, HtlcDirection.RECEIVED, 0)
    offered_at = (OutPoint(commitment.txid, offered.index), offered.amount_sat, offered.witness_script or b"")
    received_at = (
        OutPoint(commitment.txid, received.index),
        received.amount_sat,
        received.witness_script or b"",
    )
    to_local = at(OutputKind.TO_LOCAL)
    to_remote = at(OutputKind.TO_REMOTE)
    paths: list[tuple[str, SweepSpec, bytes, WitnessMaker]] = [
        (
            "to_local delayed",
            to_local_delayed_spec(*to_local, DELAY),
            delayed_key,
            lambda sig: to_local_delayed_witness(sig, to_local[2]),
        ),
        (
            "to_local revocation",
            to_local_revocation_spec(*to_local),
            revocation_key,
            lambda sig: to_local_revocation_witness(sig, to_local[2]),
        ),
        (
            "offered HTLC, preimage",
            offered_htlc_preimage_spec(*offered_at, anchors=anchors),
            bob_htlc_key,
            lambda sig: offered_htlc_preimage_witness(sig, OFFERED_PREIMAGE, offered_at[2]),
        ),
        (
            "received HTLC, timeout",
            received_htlc_timeout_spec(*received_at, EXPIRY + 6, anchors=anchors),
            bob_htlc_key,
            lambda sig: received_htlc_timeout_witness(sig, received_at[2]),
        ),
        (
            "offered HTLC, revocation",
            htlc_revocation_spec(*offered_at, offered=True, anchors=anchors),
            revocation_key,
            lambda sig: htlc_revocation_witness(sig, keys.revocation_pubkey, offered_at[2]),
        ),
        (
            "received HTLC, revocation",
            htlc_revocation_spec(*received_at, offered=False, anchors=anchors),
            revocation_key,
            lambda sig: htlc_revocation_witness(sig, keys.revocation_pubkey, received_at[2]),
        ),
    ]
    if anchors:
        paths.append(
            (
                "to_remote (CSV 1)",
                to_remote_anchors_spec(*to_remote),
                b.payment_basepoint,
                lambda sig: to_remote_anchors_witness(sig, to_remote[2]),
            )
        )
    else:
        paths.append(
            (
                "to_remote (P2WPKH)",
                to_remote_spec(to_remote[0], to_remote[1], keys.remote_payment_pubkey),
                b.payment_basepoint,
                lambda sig: to_remote_witness(sig, keys.remote_payment_pubkey),
            )
        )
    return paths


def _signed(
    spec: SweepSpec, key: bytes, witness: WitnessMaker, feerate: int, tx: Transaction | None = None
) -> Transaction:
    tx = build_sweep_tx(spec, DESTINATION, feerate) if tx is None else tx
    return tx.with_witness(0, witness(sign_sweep(tx, spec, key)))


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.value)
def test_every_path_satisfies_its_script(fmt: CommitmentFormat) -> None:
    _, _, _, commitment = _setup(fmt)
    for name, spec, key, witness in _paths(fmt):
        tx = _signed(spec, key, witness, 2500)
        assert _valid(commitment, spec, tx), name
        assert tx.weight <= sweep_weight(spec, DESTINATION), name
        assert spec.amount_sat - tx.outputs[0].value == sweep_fee_sat(spec, DESTINATION, 2500), name


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.value)
def test_lock_fields_are_the_ones_the_scripts_demand(fmt: CommitmentFormat) -> None:
    """One block short on a CSV or CLTV path and the kernel refuses the script."""
    _, _, _, commitment = _setup(fmt)
    checked = 0
    for name, spec, key, witness in _paths(fmt):
        tx = build_sweep_tx(spec, DESTINATION, 2500)
        txin = tx.inputs[0]
        shortened = []
        if not spec.sequence & (1 << 31):  # a relative lock: the script's CSV demands this much
            shortened.append(replace(tx, inputs=(replace(txin, sequence=spec.sequence - 1),)))
        if spec.locktime:
            shortened.append(replace(tx, locktime=spec.locktime - 1))
        assert _valid(commitment, spec, _signed(spec, key, witness, 2500, tx)), name
        for short in shortened:
            assert not _valid(commitment, spec, _signed(spec, key, witness, 2500, short)), name
            checked += 1
    # The delayed to_local and the received HTLC's CLTV always; with anchors, the CSV 1 of to_remote
    # and of both HTLC claims too.
    assert checked == (5 if fmt.has_anchors else 2)


def test_sequence_and_locktime_per_path() -> None:
    outpoint = OutPoint(b"\x02" * 32, 0)
    script = b"\x51"
    assert to_local_delayed_spec(outpoint, 1000, script, 6).sequence == 6
    assert to_remote_anchors_spec(outpoint, 1000, script).sequence == 1
    assert offered_htlc_preimage_spec(outpoint, 1000, script, anchors=True).sequence == 1
    timeout = received_htlc_timeout_spec(outpoint, 1000, script, 812, anchors=False)
    # nLockTime only counts under a non-final nSequence; no relative lock without anchors.
    assert timeout.locktime == 812
    assert timeout.sequence != 0xFFFF_FFFF and timeout.sequence & (1 << 31)
    assert received_htlc_timeout_spec(outpoint, 1000, script, 812, anchors=True).sequence == 1
    for unlocked in (
        to_local_revocation_spec(outpoint, 1000, script),
        htlc_revocation_spec(outpoint, 1000, script, offered=True, anchors=True),
        offered_htlc_preimage_spec(outpoint, 1000, script, anchors=False),
    ):
        assert unlocked.sequence & (1 << 31)  # BIP68 disabled
        assert unlocked.sequence != 0xFFFF_FFFF  # still replaceable
        assert unlocked.locktime == 0


@pytest.mark.parametrize("delay", [0, 0x1_0000])
def test_out_of_range_delays_are_refused(delay: int) -> None:
    with pytest.raises(TransactionBuildError):
        to_local_delayed_spec(OutPoint(b"\x02" * 32, 0), 10_000, b"\x51", delay)


def test_a_sweep_that_would_leave_dust_is_refused() -> None:
    spec = to_local_revocation_spec(OutPoint(b"\x02" * 32, 0), 1000, b"\x51")
    fee = sweep_fee_sat(spec, DESTINATION, 2500)
    assert spec.amount_sat - fee < 294
    with pytest.raises(TransactionBuildError, match="dust"):
        build_sweep_tx(spec, DESTINATION, 2500)
    richer = to_local_revocation_spec(OutPoint(b"\x02" * 32, 0), fee + 294, b"\x51")
    assert build_sweep_tx(richer, DESTINATION, 2500).outputs[0].value == 294


@given(
    feerate=st.integers(min_value=253, max_value=100_000),
    path_index=st.integers(min_value=0, max_value=6),
    fmt=st.sampled_from(FORMATS),
    destination=st.sampled_from([DESTINATION, p2wsh_script(b"\x51"), b"\x00\x14" + b"\x07" * 20]),
)
def test_fee_covers_the_signed_weight_at_the_asked_rate(
    feerate: int, path_index: int, fmt: CommitmentFormat, destination: bytes
) -> None:
    name, spec, key, witness = _paths(fmt)[path_index]
    try:
        tx = build_sweep_tx(spec, destination, feerate)
    except TransactionBuildError:
        assert spec.amount_sat - sweep_fee_sat(spec, destination, feerate) < dust_threshold_sat(destination)
        return
    signed = _signed(spec, key, witness, feerate, tx)
    fee = spec.amount_sat - signed.outputs[0].value
    assert fee == feerate * sweep_weight(spec, destination) // 1000
    # The estimate never undershoots, so the real rate is at least the asked one (up to rounding).
    assert signed.weight <= sweep_weight(spec, destination), name
    assert fee * 1000 >= feerate * signed.weight - 1000
