"""BOLT 4 route blinding: build a blinded path, and unblind our hop of one.

The recipient picks a path key ``e_0`` and, for each hop ``i`` with node id ``N_i``:
``ss_i = SHA256(e_i·N_i)``, the blinded node id ``B_i = HMAC256("blinded_node_id", ss_i)·N_i``, the
encrypted recipient data ``ChaCha20-Poly1305(rho(ss_i), nonce 0, tlvs)`` and the next path key
``E_(i+1) = SHA256(E_i || ss_i)·E_i``. The hop reverses this with its node secret. The TLV content
of the encrypted data is the caller's concern (``ampere.wire``); this module only handles bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import coincurve
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ampere.crypto.sphinx import CURVE_ORDER, SphinxError, blinding_factor, derive_key, ecdh, hmac_sha256

_NONCE = bytes(12)


class BlindingError(SphinxError):
    """A blinded path could not be built, or our hop of one could not be unblinded."""


@dataclass(frozen=True)
class BlindedHop:
    blinded_node_id: bytes
    encrypted_data: bytes


@dataclass(frozen=True)
class BlindedPath:
    first_node_id: bytes
    first_path_key: bytes
    hops: tuple[BlindedHop, ...]


@dataclass(frozen=True)
class UnblindedHop:
    """Our view of our hop: the key that signs/peels for the blinded id, the clear TLVs, and the
    path key to hand the next hop (before any ``next_path_key_override`` in the TLVs)."""

    blinded_privkey: bytes
    decrypted_data: bytes
    next_path_key: bytes
    shared_secret: bytes


def _blinding_tweak(shared_secret: bytes) -> bytes:
    return hmac_sha256(b"blinded_node_id", shared_secret)


def _next_path_key(path_key: bytes, shared_secret: bytes) -> bytes:
    factor = blinding_factor(path_key, shared_secret)
    return coincurve.PublicKey(path_key).multiply(factor).format()


def blinded_node_id(node_id: bytes, shared_secret: bytes) -> bytes:
    try:
        return coincurve.PublicKey(node_id).multiply(_blinding_tweak(shared_secret)).format()
    except ValueError as exc:
        raise BlindingError(f"invalid node id {node_id.hex()}") from exc


def encrypt_recipient_data(shared_secret: bytes, tlvs: bytes) -> bytes:
    return ChaCha20Poly1305(derive_key(b"rho", shared_secret)).encrypt(_NONCE, tlvs, None)


def decrypt_recipient_data(shared_secret: bytes, encrypted: bytes) -> bytes:
    try:
        return ChaCha20Poly1305(derive_key(b"rho", shared_secret)).decrypt(_NONCE, encrypted, None)
    except InvalidTag as exc:
        raise BlindingError("encrypted recipient data does not authenticate") from exc


def create_blinded_path(session_key: bytes, node_ids: Sequence[bytes], tlvs: Sequence[bytes]) -> BlindedPath:
    """Blind ``node_ids`` (the introduction node first) with the path secret ``session_key``;
    ``tlvs[i]`` is the encoded ``encrypted_data_tlv`` stream for hop ``i``."""
    if not node_ids or len(node_ids) != len(tlvs):
        raise BlindingError("a blinded path needs one TLV stream per hop, and at least one hop")
    try:
        path_key = coincurve.PublicKey.from_secret(session_key).format()
    except ValueError as exc:
        raise BlindingError("invalid path secret") from exc
    first_path_key = path_key
    scalar = int.from_bytes(session_key, "big")
    hops: list[BlindedHop] = []
    for node_id, data in zip(node_ids, tlvs, strict=True):
        try:
            shared_secret = ecdh(scalar.to_bytes(32, "big"), node_id)
        except ValueError as exc:
            raise BlindingError(f"invalid node id {node_id.hex()}") from exc
        hops.append(
            BlindedHop(blinded_node_id(node_id, shared_secret), encrypt_recipient_data(shared_secret, data))
        )
        factor = blinding_factor(path_key, shared_secret)
        scalar = scalar * int.from_bytes(factor, "big") % CURVE_ORDER
        path_key = coincurve.PublicKey.from_secret(scalar.to_bytes(32, "big")).format()
    return BlindedPath(first_node_id=node_ids[0], first_path_key=first_path_key, hops=tuple(hops))


def blinded_privkey(node_secret: bytes, path_key: bytes) -> tuple[bytes, bytes]:
    """(our private key for the blinded node id, the shared secret) for ``path_key``."""
    try:
        shared_secret = ecdh(node_secret, path_key)
    except ValueError as exc:
        raise BlindingError("path key is not a valid point") from exc
    tweak = int.from_bytes(_blinding_tweak(shared_secret), "big")
    key = int.from_bytes(node_secret, "big") * tweak % CURVE_ORDER
    if key == 0:
        raise BlindingError("blinded private key is zero")
    return key.to_bytes(32, "big"), shared_secret


def unblind_hop(node_secret: bytes, path_key: bytes, encrypted_data: bytes) -> UnblindedHop:
    """Decrypt our ``encrypted_recipient_data`` and compute the next path key."""
    privkey, shared_secret = blinded_privkey(node_secret, path_key)
    decrypted = decrypt_recipient_data(shared_secret, encrypted_data)
    return UnblindedHop(
        blinded_privkey=privkey,
        decrypted_data=decrypted,
        next_path_key=_next_path_key(path_key, shared_secret),
        shared_secret=shared_secret,
    )
