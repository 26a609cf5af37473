"""BOLT 3 key derivation: per-commitment points and the keys tweaked by them.

Every commitment transaction uses fresh keys so that a revoked commitment can be punished
without revealing anything about the others. BOLT 3 ("Key Derivation") builds them from a
long-lived basepoint and the commitment's per_commitment_point:

    pubkey           = basepoint + SHA256(per_commitment_point || basepoint) * G
    privkey          = basepoint_secret + SHA256(per_commitment_point || basepoint)
    revocationpubkey = revocation_basepoint * SHA256(revocation_basepoint || per_commitment_point)
                       + per_commitment_point * SHA256(per_commitment_point || revocation_basepoint)
    revocationprivkey likewise, with both secrets.

The revocation key mixes both parties' points so that neither can compute its secret alone:
only once the per_commitment_secret has been revealed can the counterparty sign with it.

Public keys are 33-byte compressed points and secrets 32-byte big-endian scalars, as bytes.
"""

from __future__ import annotations

import hashlib

import coincurve

from ampere.errors import AmpereError

# Order of the secp256k1 group; scalars are reduced modulo this.
CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

__all__ = [
    "CURVE_ORDER",
    "KeyDerivationError",
    "derive_privkey",
    "derive_pubkey",
    "derive_revocation_privkey",
    "derive_revocation_pubkey",
    "per_commitment_point",
]


class KeyDerivationError(AmpereError):
    """A key or secret is malformed, or a derivation landed on an invalid scalar or point."""


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _check_secret(secret: bytes, what: str) -> int:
    if not isinstance(secret, bytes) or len(secret) != 32:
        raise KeyDerivationError(f"{what} must be 32 bytes")
    value = int.from_bytes(secret, "big")
    if not 0 < value < CURVE_ORDER:
        raise KeyDerivationError(f"{what} is not a valid secp256k1 scalar")
    return value


def _parse_point(point: bytes, what: str) -> coincurve.PublicKey:
    # Only the compressed form appears on the Lightning wire; accepting 65-byte points here
    # would let a caller hash a different encoding than its peer does and silently diverge.
    if not isinstance(point, bytes) or len(point) != 33 or point[0] not in (2, 3):
        raise KeyDerivationError(f"{what} must be a 33-byte compressed public key")
    try:
        return coincurve.PublicKey(point)
    except ValueError as exc:
        raise KeyDerivationError(f"{what} is not a point on secp256k1") from exc


def _tweak_scalar(digest: bytes) -> int:
    value = int.from_bytes(digest, "big")
    # A SHA256 output at or above the group order happens with probability ~2^-128; the
    # spec leaves it undefined, so refuse rather than silently reduce to a different key.
    if value >= CURVE_ORDER:
        raise KeyDerivationError("derivation tweak is not below the curve order")
    return value


def _scalar_to_bytes(value: int) -> bytes:
    if value == 0:
        raise KeyDerivationError("derived secret is zero")
    return value.to_bytes(32, "big")


def per_commitment_point(secret: bytes) -> bytes:
    """The public point (33 bytes, compressed) of a 32-byte per-commitment secret."""
    _check_secret(secret, "per_commitment_secret")
    return coincurve.PublicKey.from_valid_secret(secret).format(compressed=True)


def derive_pubkey(basepoint: bytes, per_commitment_point: bytes) -> bytes:
    """basepoint + SHA256(per_commitment_point || basepoint)·G (localpubkey, htlcpubkey, ...)."""
    base = _parse_point(basepoint, "basepoint")
    _parse_point(per_commitment_point, "per_commitment_point")
    tweak = _tweak_scalar(_sha256(per_commitment_point + basepoint))
    try:
        derived = base.add(tweak.to_bytes(32, "big"))
    except ValueError as exc:
        raise KeyDerivationError("derived public key is the point at infinity") from exc
    return derived.format(compressed=True)


def derive_privkey(basepoint_secret: bytes, per_commitment_point: bytes) -> bytes:
    """basepoint_secret + SHA256(per_commitment_point || basepoint) mod n."""
    base_value = _check_secret(basepoint_secret, "basepoint_secret")
    _parse_point(per_commitment_point, "per_commitment_point")
    basepoint = coincurve.PublicKey.from_valid_secret(basepoint_secret).format(compressed=True)
    tweak = _tweak_scalar(_sha256(per_commitment_point + basepoint))
    return _scalar_to_bytes((base_value + tweak) % CURVE_ORDER)


def _revocation_tweaks(revocation_basepoint: bytes, per_commitment_point: bytes) -> tuple[int, int]:
    # Hashing in both orders binds each half to the other party's point, which is what stops
    # either side from choosing its point to cancel the other's contribution.
    basepoint_tweak = _tweak_scalar(_sha256(revocation_basepoint + per_commitment_point))
    commitment_tweak = _tweak_scalar(_sha256(per_commitment_point + revocation_basepoint))
    return basepoint_tweak, commitment_tweak


def derive_revocation_pubkey(revocation_basepoint: bytes, per_commitment_point: bytes) -> bytes:
    """revocation_basepoint·h1 + per_commitment_point·h2, the key of the revocation path."""
    base = _parse_point(revocation_basepoint, "revocation_basepoint")
    commitment = _parse_point(per_commitment_point, "per_commitment_point")
    basepoint_tweak, commitment_tweak = _revocation_tweaks(revocation_basepoint, per_commitment_point)
    try:
        left = base.multiply(basepoint_tweak.to_bytes(32, "big"))
        right = commitment.multiply(commitment_tweak.to_bytes(32, "big"))
        combined = coincurve.PublicKey.combine_keys([left, right])
    except ValueError as exc:
        raise KeyDerivationError("revocation public key derivation failed") from exc
    return combined.format(compressed=True)


def derive_revocation_privkey(revocation_basepoint_secret: bytes, per_commitment_secret: bytes) -> bytes:
    """The secret of `derive_revocation_pubkey`, once the per-commitment secret is known."""
    base_value = _check_secret(revocation_basepoint_secret, "revocation_basepoint_secret")
    commitment_value = _check_secret(per_commitment_secret, "per_commitment_secret")
    revocation_basepoint = coincurve.PublicKey.from_valid_secret(revocation_basepoint_secret).format(
        compressed=True
    )
    commitment_point = coincurve.PublicKey.from_valid_secret(per_commitment_secret).format(compressed=True)
    basepoint_tweak, commitment_tweak = _revocation_tweaks(revocation_basepoint, commitment_point)
    value = (base_value * basepoint_tweak + commitment_value * commitment_tweak) % CURVE_ORDER
    return _scalar_to_bytes(value)
