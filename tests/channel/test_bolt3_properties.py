"""Property tests of the commitment builder: exact money accounting, output order, and the two
peers' views of one channel state agreeing with each other."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import assume, given, reject
from hypothesis import strategies as st

from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.tx import OutPoint
from ampere.channel.transactions import (
    ANCHOR_OUTPUT_SAT,
    ChannelBasepoints,
    CommitmentFormat,
    CommitmentParams,
    CommitmentTransaction,
    Htlc,
    HtlcDirection,
    OutputKind,
    TransactionBuildError,
    build_commitment,
    commitment_obscuring_factor,
    derive_commitment_keys,
    htlc_transactions,
    sign_commitment,
    sign_remote_htlc,
    verify_commitment_signature,
    verify_remote_htlc_signature,
)
from ampere.crypto.keys import derive_privkey, per_commitment_point

FUNDING_OUTPOINT = OutPoint(sha256(b"funding"), 1)
PAYMENT_HASHES = [sha256(bytes([i])) for i in range(3)]  # few, so identical HTLC outputs happen

formats = st.sampled_from(list(CommitmentFormat))


@dataclass(frozen=True)
class State:
    capacity_sat: int
    opener_msat: int  # balance of the opener, excluding HTLCs
    other_msat: int
    offered_by_opener: tuple[Htlc, ...]  # directions as seen by the opener
    feerate_per_kw: int


@st.composite
def htlc_lists(draw: st.DrawFn, direction: HtlcDirection, max_msat: int) -> tuple[Htlc, ...]:
    count = draw(st.integers(0, 8))
    htlcs = []
    for htlc_id in range(count):
        amount = draw(
            st.one_of(
                st.integers(1, 3_000_000),  # often near the dust/fee boundary
                st.sampled_from([546_000, 1_000_000, 5_000_000, 5_000_999]),
                st.integers(1, max(1, max_msat)),
            )
        )
        htlcs.append(
            Htlc(
                direction=direction,
                htlc_id=htlc_id,
                amount_msat=amount,
                payment_hash=draw(st.sampled_from(PAYMENT_HASHES)),
                cltv_expiry=draw(st.integers(500_000, 500_004)),
            )
        )
    return tuple(htlcs)


@st.composite
def states(draw: st.DrawFn) -> State:
    capacity = draw(st.integers(20_000, 50_000_000))
    offered = draw(htlc_lists(HtlcDirection.OFFERED, capacity * 100))
    received = draw(htlc_lists(HtlcDirection.RECEIVED, capacity * 100))
    htlcs = offered + received
    total_htlc = sum(h.amount_msat for h in htlcs)
    assume(total_htlc <= capacity * 1000)
    rest = capacity * 1000 - total_htlc
    opener = draw(st.integers(0, rest))
    feerate = draw(st.one_of(st.integers(0, 10_000), st.integers(0, 5_000_000)))
    return State(capacity, opener, rest - opener, htlcs, feerate)


def params(capacity: int, fmt: CommitmentFormat, *, opener: bool, dust: int) -> CommitmentParams:
    return CommitmentParams(
        funding_outpoint=FUNDING_OUTPOINT,
        funding_amount_sat=capacity,
        to_self_delay=144,
        dust_limit_sat=dust,
        owner_is_opener=opener,
        obscuring_factor=0x2BB038521914,
        commitment_format=fmt,
    )


# --- two parties with real keys --------------------------------------------------------------------------


@dataclass(frozen=True)
class Party:
    name: str
    funding_secret: bytes
    revocation_secret: bytes
    payment_secret: bytes
    delayed_secret: bytes
    htlc_secret: bytes
    seed: bytes

    @property
    def basepoints(self) -> ChannelBasepoints:
        return ChannelBasepoints(
            funding_pubkey=per_commitment_point(self.funding_secret),
            revocation_basepoint=per_commitment_point(self.revocation_secret),
            payment_basepoint=per_commitment_point(self.payment_secret),
            delayed_payment_basepoint=per_commitment_point(self.delayed_secret),
            htlc_basepoint=per_commitment_point(self.htlc_secret),
        )

    def point(self, commitment_number: int) -> bytes:
        # Any secret per commitment will do here; shachain's derivation has its own tests.
        return per_commitment_point(sha256(self.seed + commitment_number.to_bytes(6, "big")))


def _party(name: str) -> Party:
    def secret(label: str) -> bytes:
        return sha256(f"{name}/{label}".encode())

    return Party(
        name,
        secret("funding"),
        secret("revocation"),
        secret("payment"),
        secret("delayed"),
        secret("htlc"),
        secret("seed"),
    )


ALICE, BOB = _party("alice"), _party("bob")  # Alice opens the channel


def commitment_of(
    owner: Party,
    other: Party,
    state: State,
    fmt: CommitmentFormat,
    dust: int,
    number: int,
) -> CommitmentTransaction:
    """`owner`'s commitment as anyone who knows the public state computes it."""
    owner_is_opener = owner is ALICE
    htlcs = (
        state.offered_by_opener if owner_is_opener else tuple(h.mirrored() for h in state.offered_by_opener)
    )
    to_local, to_remote = (
        (state.opener_msat, state.other_msat) if owner_is_opener else (state.other_msat, state.opener_msat)
    )
    factor = commitment_obscuring_factor(ALICE.basepoints.payment_basepoint, BOB.basepoints.payment_basepoint)
    keys = derive_commitment_keys(owner.point(number), owner.basepoints, other.basepoints)
    channel = CommitmentParams(
        funding_outpoint=FUNDING_OUTPOINT,
        funding_amount_sat=state.capacity_sat,
        to_self_delay=144 if owner is ALICE else 720,
        dust_limit_sat=dust,
        owner_is_opener=owner_is_opener,
        obscuring_factor=factor,
        commitment_format=fmt,
    )
    return build_commitment(channel, keys, number, to_local, to_remote, htlcs, state.feerate_per_kw)


# --- independent model of the spec's rules -------------------------------------------------------------


def model_trimmed(htlc: Htlc, feerate: int, dust: int, fmt: CommitmentFormat) -> bool:
    if fmt is CommitmentFormat.ANCHORS:
        fee = 0
    elif htlc.direction is HtlcDirection.OFFERED:
        fee = feerate * 663 // 1000
    else:
        fee = feerate * 703 // 1000
    return htlc.amount_msat // 1000 - fee < dust


def try_build(state: State, fmt: CommitmentFormat, opener: bool, dust: int) -> CommitmentTransaction | None:
    to_local, to_remote = (
        (state.opener_msat, state.other_msat) if opener else (state.other_msat, state.opener_msat)
    )
    htlcs = state.offered_by_opener if opener else tuple(h.mirrored() for h in state.offered_by_opener)
    try:
        return build_commitment(
            params(state.capacity_sat, fmt, opener=opener, dust=dust),
            _DUMMY_KEYS,
            7,
            to_local,
            to_remote,
            htlcs,
            state.feerate_per_kw,
        )
    except TransactionBuildError:
        return None


_DUMMY_KEYS = derive_commitment_keys(ALICE.point(7), ALICE.basepoints, BOB.basepoints)


@given(states(), formats, st.booleans(), st.integers(1, 5_000))
def test_conservation_and_trimming(state: State, fmt: CommitmentFormat, opener: bool, dust: int) -> None:
    commitment = try_build(state, fmt, opener, dust)
    htlcs = state.offered_by_opener if opener else tuple(h.mirrored() for h in state.offered_by_opener)
    kept = [h for h in htlcs if not model_trimmed(h, state.feerate_per_kw, dust, fmt)]
    trimmed = [h for h in htlcs if model_trimmed(h, state.feerate_per_kw, dust, fmt)]
    weight = (1124 if fmt is CommitmentFormat.ANCHORS else 724) + 172 * len(kept)
    base_fee = state.feerate_per_kw * weight // 1000
    charge_msat = (base_fee + (2 * ANCHOR_OUTPUT_SAT if fmt is CommitmentFormat.ANCHORS else 0)) * 1000
    opener_left = max(0, state.opener_msat - charge_msat)
    charge_paid_msat = state.opener_msat - opener_left
    local_msat, remote_msat = (opener_left, state.other_msat) if opener else (state.other_msat, opener_left)
    has_local = local_msat // 1000 >= dust
    has_remote = remote_msat // 1000 >= dust
    anchors = 0
    if fmt is CommitmentFormat.ANCHORS:
        anchors = int(has_local or bool(kept)) + int(has_remote or bool(kept))
    predicted_outputs = (
        sum(h.amount_msat // 1000 for h in kept)
        + (local_msat // 1000 if has_local else 0)
        + (remote_msat // 1000 if has_remote else 0)
        + anchors * ANCHOR_OUTPUT_SAT
    )
    if predicted_outputs > state.capacity_sat:
        # Only when the opener cannot even pay for the anchors; the builder refuses.
        assert commitment is None
        assert fmt is CommitmentFormat.ANCHORS
        return
    assert commitment is not None
    tx = commitment.tx
    assert commitment.base_fee_sat == base_fee
    assert tx.total_output_value() == predicted_outputs
    # Every msat of the channel is in an output or accounted for as fee, exactly:
    fee_msat = (
        charge_paid_msat
        - anchors * ANCHOR_OUTPUT_SAT * 1000
        + sum(h.amount_msat for h in trimmed)
        + sum(h.amount_msat % 1000 for h in kept)
        + (local_msat % 1000 if has_local else local_msat)
        + (remote_msat % 1000 if has_remote else remote_msat)
    )
    assert tx.total_output_value() * 1000 + fee_msat == state.capacity_sat * 1000
    assert commitment.fee_sat * 1000 == fee_msat
    assert commitment.fee_sat >= 0
    assert {h.key for h in commitment.trimmed_htlcs} == {h.key for h in trimmed}
    assert {o.htlc.key for o in commitment.htlc_outputs if o.htlc} == {h.key for h in kept}
    for output in commitment.outputs:
        if output.kind in (OutputKind.LOCAL_ANCHOR, OutputKind.REMOTE_ANCHOR):
            assert output.amount_sat == ANCHOR_OUTPUT_SAT
        else:
            assert output.amount_sat >= dust
    # The reason for trimming: every HTLC transaction's own output clears the dust limit.
    for htlc_tx in htlc_transactions(commitment):
        assert htlc_tx.tx.outputs[0].value >= dust


@given(states(), formats, st.booleans(), st.integers(1, 2_000))
def test_outputs_follow_bip69_then_cltv(state: State, fmt: CommitmentFormat, opener: bool, dust: int) -> None:
    commitment = try_build(state, fmt, opener, dust)
    assume(commitment is not None)
    assert commitment is not None
    outs = commitment.outputs
    for before, after in itertools.pairwise(outs):
        assert (before.amount_sat, before.script_pubkey) <= (after.amount_sat, after.script_pubkey)
        if (before.amount_sat, before.script_pubkey) == (after.amount_sat, after.script_pubkey):
            assert before.htlc is not None and after.htlc is not None
            assert before.htlc.cltv_expiry <= after.htlc.cltv_expiry


def test_identical_offered_htlcs_are_ordered_by_cltv() -> None:
    """Two offered HTLCs with the same amount and hash share one script; cltv breaks the tie
    whatever order they are given in."""
    payment_hash = PAYMENT_HASHES[0]
    a = Htlc(HtlcDirection.OFFERED, 0, 5_000_000, payment_hash, 600)
    b = Htlc(HtlcDirection.OFFERED, 1, 5_000_999, payment_hash, 599)
    for htlcs in ((a, b), (b, a)):
        commitment = build_commitment(
            params(1_000_000, CommitmentFormat.STATIC_REMOTEKEY, opener=True, dust=546),
            _DUMMY_KEYS,
            1,
            989_999_001,
            0,
            htlcs,
            253,
        )
        ordered = [o.htlc.cltv_expiry for o in commitment.htlc_outputs if o.htlc]
        assert ordered == [599, 600]
        first, second = commitment.htlc_outputs
        assert commitment.tx.outputs[first.index] == commitment.tx.outputs[second.index]


@given(states(), formats, st.integers(354, 3_000), st.integers(0, 1_000))
def test_two_views_mirror(state: State, fmt: CommitmentFormat, dust: int, number: int) -> None:
    """Alice's and Bob's commitments for one state: each peer can build the other's from public
    data, its signatures verify there, and the amounts mirror each other."""
    try:
        alice_local = commitment_of(ALICE, BOB, state, fmt, dust, number)
        bob_local = commitment_of(BOB, ALICE, state, fmt, dust, number)
    except TransactionBuildError:
        # The opener cannot pay for the anchors: a state BOLT 2's reserve rules never reach.
        reject()
    # Bob signs Alice's commitment (and its HTLC transactions) with keys derived for her point.
    bob_sig = sign_commitment(alice_local, BOB.funding_secret)
    assert verify_commitment_signature(alice_local, BOB.basepoints.funding_pubkey, bob_sig)
    bob_htlc_key = derive_privkey(BOB.htlc_secret, ALICE.point(number))
    for htlc_tx in htlc_transactions(alice_local):
        signature = sign_remote_htlc(htlc_tx, bob_htlc_key)
        assert verify_remote_htlc_signature(htlc_tx, alice_local.keys.remote_htlc_pubkey, signature)
    alice_sig = sign_commitment(bob_local, ALICE.funding_secret)
    assert verify_commitment_signature(bob_local, ALICE.basepoints.funding_pubkey, alice_sig)
    # Same funding input and locktime/sequence (the obscured number is shared), different txids.
    assert alice_local.tx.inputs[0].prevout == bob_local.tx.inputs[0].prevout
    assert alice_local.tx.locktime == bob_local.tx.locktime
    assert alice_local.tx.inputs[0].sequence == bob_local.tx.inputs[0].sequence
    # HTLCs: whatever is kept in both views appears once in each, mirrored, for the same amount.
    alice_htlcs = {o.htlc.key: o.amount_sat for o in alice_local.htlc_outputs if o.htlc}
    bob_htlcs = {o.htlc.mirrored().key: o.amount_sat for o in bob_local.htlc_outputs if o.htlc}
    for key in alice_htlcs.keys() & bob_htlcs.keys():
        assert alice_htlcs[key] == bob_htlcs[key]
    if fmt is CommitmentFormat.ANCHORS or state.feerate_per_kw == 0:
        # No second-stage fee, so trimming depends on the amount only and the views coincide.
        assert alice_htlcs == bob_htlcs
        assert alice_local.fee_sat == bob_local.fee_sat
        assert sorted(o.amount_sat for o in alice_local.outputs) == sorted(
            o.amount_sat for o in bob_local.outputs
        )
        for mine, theirs in (
            (OutputKind.TO_LOCAL, OutputKind.TO_REMOTE),
            (OutputKind.TO_REMOTE, OutputKind.TO_LOCAL),
        ):
            a, b = alice_local.output_of_kind(mine), bob_local.output_of_kind(theirs)
            assert (a is None) == (b is None)
            if a is not None and b is not None:
                assert a.amount_sat == b.amount_sat
        # Alice's own anchor is the "remote" anchor of Bob's commitment, and the other way round.
        for mine, theirs in (
            (OutputKind.LOCAL_ANCHOR, OutputKind.REMOTE_ANCHOR),
            (OutputKind.REMOTE_ANCHOR, OutputKind.LOCAL_ANCHOR),
        ):
            a, b = alice_local.output_of_kind(mine), bob_local.output_of_kind(theirs)
            assert (a is None) == (b is None)
            if a is not None and b is not None:
                assert a.script_pubkey == b.script_pubkey


@pytest.mark.parametrize("fmt", list(CommitmentFormat))
def test_anchor_scripts_swap_between_views(fmt: CommitmentFormat) -> None:
    state = State(1_000_000, 600_000_000, 400_000_000, (), 2_500)
    alice = commitment_of(ALICE, BOB, state, fmt, 546, 3)
    bob = commitment_of(BOB, ALICE, state, fmt, 546, 3)
    if fmt is CommitmentFormat.ANCHORS:
        a_local, b_remote = (
            alice.output_of_kind(OutputKind.LOCAL_ANCHOR),
            bob.output_of_kind(OutputKind.REMOTE_ANCHOR),
        )
        assert a_local is not None and b_remote is not None
        assert a_local.script_pubkey == b_remote.script_pubkey
    else:
        assert alice.output_of_kind(OutputKind.LOCAL_ANCHOR) is None
    # to_remote pays the peer's static payment basepoint in both formats.
    alice_remote = alice.output_of_kind(OutputKind.TO_REMOTE)
    assert alice_remote is not None
    assert alice.keys.remote_payment_pubkey == BOB.basepoints.payment_basepoint
