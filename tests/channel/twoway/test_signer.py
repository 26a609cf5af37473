"""`InMemorySigner`: deterministic keys from a root, and the LDK-style refusals."""

from __future__ import annotations

import hashlib

import pytest

from ampere.bitcoin.keys import pubkey_from_secret
from ampere.bitcoin.tx import OutPoint
from ampere.channel.signer import ChannelSigner, InMemorySigner, SignerEnforcementError, SignerState
from ampere.channel.transactions import (
    ChannelBasepoints,
    CommitmentFormat,
    CommitmentParams,
    build_commitment,
    derive_commitment_keys,
    verify_commitment_signature,
)
from ampere.crypto.keys import per_commitment_point
from ampere.crypto.shachain import ShachainStore

ROOT_A = hashlib.sha256(b"a").digest()
ROOT_B = hashlib.sha256(b"b").digest()


def test_keys_are_deterministic_and_distinct() -> None:
    a1, a2, b = InMemorySigner(ROOT_A), InMemorySigner(ROOT_A), InMemorySigner(ROOT_B)
    assert a1.basepoints == a2.basepoints
    assert a1.basepoints != b.basepoints
    points = a1.basepoints
    keys = [
        points.funding_pubkey,
        points.revocation_basepoint,
        points.payment_basepoint,
        points.delayed_payment_basepoint,
        points.htlc_basepoint,
    ]
    assert len(set(keys)) == 5
    assert a1.per_commitment_point(7) == a2.per_commitment_point(7)
    assert isinstance(a1, ChannelSigner)
    assert ROOT_A.hex() not in repr(a1)


def test_root_must_be_32_bytes() -> None:
    with pytest.raises(SignerEnforcementError):
        InMemorySigner(b"short")


def test_secret_released_only_for_superseded_commitments() -> None:
    signer = InMemorySigner(ROOT_A)
    with pytest.raises(SignerEnforcementError):
        signer.release_commitment_secret(0)
    signer.validate_holder_commitment(1)
    secret = signer.release_commitment_secret(0)
    assert per_commitment_point(secret) == signer.per_commitment_point(0)
    with pytest.raises(SignerEnforcementError):
        signer.release_commitment_secret(1)
    with pytest.raises(SignerEnforcementError):
        signer.validate_holder_commitment(3)  # skipping a commitment


def test_released_secrets_form_a_shachain() -> None:
    signer = InMemorySigner(ROOT_A)
    store = ShachainStore()
    for number in range(1, 40):
        signer.validate_holder_commitment(number)
        store.insert_commitment_secret(signer.release_commitment_secret(number - 1), number - 1)
    assert len(store) >= 1


def _counterparty_commitment(number: int, ours: ChannelBasepoints, theirs: ChannelBasepoints, point: bytes):  # type: ignore[no-untyped-def]
    params = CommitmentParams(
        funding_outpoint=OutPoint(bytes(32), 0),
        funding_amount_sat=100_000,
        to_self_delay=144,
        dust_limit_sat=546,
        owner_is_opener=False,
        obscuring_factor=42,
        commitment_format=CommitmentFormat.STATIC_REMOTEKEY,
    )
    keys = derive_commitment_keys(point, theirs, ours)
    return build_commitment(params, keys, number, 50_000_000, 50_000_000, (), 253)


def test_counterparty_signing_is_monotonic_and_waits_for_revocations() -> None:
    signer = InMemorySigner(ROOT_A)
    peer = InMemorySigner(ROOT_B)
    point = per_commitment_point(hashlib.sha256(b"point").digest())
    for number in (0, 1):
        commitment = _counterparty_commitment(number, signer.basepoints, peer.basepoints, point)
        sigs = signer.sign_counterparty_commitment(commitment, point)
        assert verify_commitment_signature(
            commitment, signer.basepoints.funding_pubkey, sigs.commitment_signature
        )
    with pytest.raises(SignerEnforcementError, match="not been revoked"):
        signer.sign_counterparty_commitment(
            _counterparty_commitment(2, signer.basepoints, peer.basepoints, point), point
        )
    signer.validate_counterparty_revocation(0)
    signer.sign_counterparty_commitment(
        _counterparty_commitment(2, signer.basepoints, peer.basepoints, point), point
    )
    with pytest.raises(SignerEnforcementError, match="already signed"):
        signer.sign_counterparty_commitment(
            _counterparty_commitment(1, signer.basepoints, peer.basepoints, point), point
        )
    with pytest.raises(SignerEnforcementError):
        signer.validate_counterparty_revocation(5)


def test_restore_only_ratchets_forward() -> None:
    signer = InMemorySigner(
        ROOT_A, SignerState(holder_commitment_number=5, counterparty_signed=4, counterparty_revoked=3)
    )
    signer.restore(SignerState())
    assert signer.state == SignerState(5, 4, 3)
    assert signer.release_commitment_secret(4)
    with pytest.raises(SignerEnforcementError):
        signer.release_commitment_secret(5)


def test_funding_pubkey_matches_a_secret() -> None:
    # The funding key must be a real key: sign with it and verify under the advertised pubkey.
    signer = InMemorySigner(ROOT_A)
    assert len(signer.basepoints.funding_pubkey) == 33
    assert signer.basepoints.funding_pubkey != pubkey_from_secret(ROOT_A)
