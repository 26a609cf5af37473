"""BOLT 3 key derivation against Appendix E (including its intermediate values) and properties."""

from __future__ import annotations

import hashlib
from typing import Any

import coincurve
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.crypto.keys import (
    CURVE_ORDER,
    KeyDerivationError,
    derive_privkey,
    derive_pubkey,
    derive_revocation_privkey,
    derive_revocation_pubkey,
    per_commitment_point,
)
from tests.conftest import load_vectors

VECTORS = load_vectors("bolt03_keys.json")["key_derivation"]
CASES: list[dict[str, Any]] = VECTORS["cases"]


def _case(function: str) -> dict[str, Any]:
    matches = [case for case in CASES if case["function"] == function]
    assert len(matches) == 1
    return matches[0]


def _trace(case: dict[str, Any]) -> str:
    return "\n".join(case["trace"])


def _h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_all_cases_covered() -> None:
    assert sorted(case["function"] for case in CASES) == [
        "derive_privkey",
        "derive_pubkey",
        "derive_revocation_privkey",
        "derive_revocation_pubkey",
    ]


def test_common_inputs_are_consistent() -> None:
    common = VECTORS["common_inputs"]
    assert per_commitment_point(_h(common["per_commitment_secret"])).hex() == common["per_commitment_point"]
    assert per_commitment_point(_h(common["base_secret"])).hex() == common["base_point"]


def test_derive_pubkey() -> None:
    case = _case("derive_pubkey")
    basepoint = _h(case["inputs"]["base_point"])
    commitment_point = _h(case["inputs"]["per_commitment_point"])
    tweak = hashlib.sha256(commitment_point + basepoint).hexdigest()
    assert f"= 0x{tweak}" in _trace(case)
    assert derive_pubkey(basepoint, commitment_point).hex() == case["output"]


def test_derive_privkey() -> None:
    case = _case("derive_privkey")
    secret = _h(case["inputs"]["base_secret"])
    commitment_point = _h(case["inputs"]["per_commitment_point"])
    derived = derive_privkey(secret, commitment_point)
    assert derived.hex() == case["output"]
    # The private key must sign for the public key the other side derives.
    pubkey_case = _case("derive_pubkey")
    assert per_commitment_point(derived).hex() == pubkey_case["output"]


def test_derive_revocation_pubkey_with_intermediates() -> None:
    case = _case("derive_revocation_pubkey")
    basepoint = _h(case["inputs"]["base_point"])
    commitment_point = _h(case["inputs"]["per_commitment_point"])
    trace = _trace(case)
    basepoint_tweak = hashlib.sha256(basepoint + commitment_point).digest()
    commitment_tweak = hashlib.sha256(commitment_point + basepoint).digest()
    assert f"= 0x{basepoint_tweak.hex()}" in trace
    assert f"= 0x{commitment_tweak.hex()}" in trace
    left = coincurve.PublicKey(basepoint).multiply(basepoint_tweak).format()
    right = coincurve.PublicKey(commitment_point).multiply(commitment_tweak).format()
    assert f"x revocation_basepoint = 0x{left.hex()}" in trace
    assert f"x per_commitment_point = 0x{right.hex()}" in trace
    assert derive_revocation_pubkey(basepoint, commitment_point).hex() == case["output"]


def test_derive_revocation_privkey_with_intermediates() -> None:
    case = _case("derive_revocation_privkey")
    base_secret = _h(case["inputs"]["base_secret"])
    commitment_secret = _h(case["inputs"]["per_commitment_secret"])
    basepoint = _h(case["inputs"]["base_point"])
    commitment_point = _h(case["inputs"]["per_commitment_point"])
    trace = _trace(case)
    basepoint_tweak = int.from_bytes(hashlib.sha256(basepoint + commitment_point).digest(), "big")
    commitment_tweak = int.from_bytes(hashlib.sha256(commitment_point + basepoint).digest(), "big")
    left = int.from_bytes(base_secret, "big") * basepoint_tweak % CURVE_ORDER
    right = int.from_bytes(commitment_secret, "big") * commitment_tweak % CURVE_ORDER
    assert f"= 0x{left:064x}" in trace
    assert f"= 0x{right:064x}" in trace
    derived = derive_revocation_privkey(base_secret, commitment_secret)
    assert derived.hex() == case["output"]
    pubkey_case = _case("derive_revocation_pubkey")
    assert per_commitment_point(derived).hex() == pubkey_case["output"]


@pytest.mark.parametrize(
    "bad_point",
    [
        b"",
        bytes(33),
        b"\x04" + bytes(32),
        b"\x02" + b"\xff" * 32,  # x beyond the field size
        bytes.fromhex("02" + "00" * 31 + "07"),  # x with no point on the curve
        b"\x02" + bytes(range(32)) + b"\x00",
    ],
)
def test_bad_points_rejected(bad_point: bytes) -> None:
    good = per_commitment_point(b"\x01" * 32)
    with pytest.raises(KeyDerivationError):
        derive_pubkey(bad_point, good)
    with pytest.raises(KeyDerivationError):
        derive_pubkey(good, bad_point)
    with pytest.raises(KeyDerivationError):
        derive_privkey(b"\x01" * 32, bad_point)
    with pytest.raises(KeyDerivationError):
        derive_revocation_pubkey(bad_point, good)
    with pytest.raises(KeyDerivationError):
        derive_revocation_pubkey(good, bad_point)


@pytest.mark.parametrize(
    "bad_secret", [b"", bytes(31), bytes(32), CURVE_ORDER.to_bytes(32, "big"), b"\xff" * 32, bytes(33)]
)
def test_bad_secrets_rejected(bad_secret: bytes) -> None:
    good_point = per_commitment_point(b"\x01" * 32)
    with pytest.raises(KeyDerivationError):
        per_commitment_point(bad_secret)
    with pytest.raises(KeyDerivationError):
        derive_privkey(bad_secret, good_point)
    with pytest.raises(KeyDerivationError):
        derive_revocation_privkey(bad_secret, b"\x01" * 32)
    with pytest.raises(KeyDerivationError):
        derive_revocation_privkey(b"\x01" * 32, bad_secret)


_SECRETS = st.integers(min_value=1, max_value=CURVE_ORDER - 1).map(lambda value: value.to_bytes(32, "big"))


@given(_SECRETS, _SECRETS)
def test_privkey_matches_pubkey(base_secret: bytes, commitment_secret: bytes) -> None:
    basepoint = per_commitment_point(base_secret)
    commitment_point = per_commitment_point(commitment_secret)
    derived_secret = derive_privkey(base_secret, commitment_point)
    assert per_commitment_point(derived_secret) == derive_pubkey(basepoint, commitment_point)


@given(_SECRETS, _SECRETS)
def test_revocation_privkey_matches_pubkey(base_secret: bytes, commitment_secret: bytes) -> None:
    basepoint = per_commitment_point(base_secret)
    commitment_point = per_commitment_point(commitment_secret)
    derived_secret = derive_revocation_privkey(base_secret, commitment_secret)
    assert per_commitment_point(derived_secret) == derive_revocation_pubkey(basepoint, commitment_point)


@given(_SECRETS, _SECRETS, _SECRETS)
def test_different_commitments_give_different_keys(base: bytes, first: bytes, second: bytes) -> None:
    basepoint = per_commitment_point(base)
    first_point = per_commitment_point(first)
    second_point = per_commitment_point(second)
    if first_point != second_point:
        assert derive_pubkey(basepoint, first_point) != derive_pubkey(basepoint, second_point)
        assert derive_revocation_pubkey(basepoint, first_point) != derive_revocation_pubkey(
            basepoint, second_point
        )
