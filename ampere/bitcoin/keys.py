"""secp256k1 keys and ECDSA signatures (low-S, strict DER) on top of coincurve's libsecp256k1."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import coincurve
from coincurve.ecdsa import cdata_to_der, der_to_cdata, deserialize_compact, serialize_compact

from ampere.bitcoin.errors import InvalidKeyError
from ampere.bitcoin.hashes import hash160

CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_ORDER = CURVE_ORDER // 2


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A compressed secp256k1 point (33 bytes); validated on construction."""

    data: bytes

    def __post_init__(self) -> None:
        if len(self.data) != 33 or self.data[0] not in (2, 3):
            raise InvalidKeyError("public key must be 33 bytes, compressed")
        try:
            coincurve.PublicKey(self.data)
        except ValueError as exc:
            raise InvalidKeyError("public key is not on the curve") from exc

    @classmethod
    def from_hex(cls, text: str) -> PublicKey:
        return cls(bytes.fromhex(text))

    def hex(self) -> str:
        return self.data.hex()

    def __bytes__(self) -> bytes:
        return self.data

    def hash160(self) -> bytes:
        return hash160(self.data)

    def verify(self, signature_der: bytes, digest: bytes) -> bool:
        return verify_der(self.data, signature_der, digest)

    def xonly(self) -> bytes:
        return self.data[1:]


@dataclass(frozen=True, slots=True, repr=False)
class PrivateKey:
    """A secp256k1 secret scalar (32 bytes). Its repr never shows the secret."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) != 32:
            raise InvalidKeyError("private key must be 32 bytes")
        value = int.from_bytes(self.secret, "big")
        if not 0 < value < CURVE_ORDER:
            raise InvalidKeyError("private key out of range")

    def __repr__(self) -> str:
        return f"PrivateKey(pubkey={self.public_key.hex()})"

    @classmethod
    def generate(cls) -> PrivateKey:
        while True:
            candidate = secrets.token_bytes(32)
            if 0 < int.from_bytes(candidate, "big") < CURVE_ORDER:
                return cls(candidate)

    @classmethod
    def from_int(cls, value: int) -> PrivateKey:
        return cls(value.to_bytes(32, "big"))

    @property
    def public_key(self) -> PublicKey:
        return PublicKey(pubkey_from_secret(self.secret))

    def sign(self, digest: bytes) -> bytes:
        """DER signature over a 32-byte digest (RFC 6979 nonce, low S)."""
        return sign_der(self.secret, digest)

    def sign_compact(self, digest: bytes) -> bytes:
        return sign_compact(self.secret, digest)


def pubkey_from_secret(secret: bytes) -> bytes:
    try:
        return coincurve.PublicKey.from_secret(secret).format(compressed=True)
    except ValueError as exc:
        raise InvalidKeyError("invalid private key") from exc


def is_valid_pubkey(data: bytes) -> bool:
    if len(data) != 33 or data[0] not in (2, 3):
        return False
    try:
        coincurve.PublicKey(data)
    except ValueError:
        return False
    return True


def sign_der(secret: bytes, digest: bytes) -> bytes:
    if len(digest) != 32:
        raise ValueError("digest must be 32 bytes")
    return coincurve.PrivateKey(secret).sign(digest, hasher=None)


def sign_compact(secret: bytes, digest: bytes) -> bytes:
    """64-byte r||s signature, the form Lightning's wire messages carry."""
    return der_to_compact(sign_der(secret, digest))


def der_to_compact(signature_der: bytes) -> bytes:
    try:
        return bytes(serialize_compact(der_to_cdata(signature_der)))
    except (ValueError, TypeError) as exc:
        raise InvalidKeyError("malformed DER signature") from exc


def compact_to_der(signature: bytes) -> bytes:
    if len(signature) != 64:
        raise InvalidKeyError("compact signature must be 64 bytes")
    try:
        return bytes(cdata_to_der(deserialize_compact(signature)))
    except (ValueError, TypeError) as exc:
        raise InvalidKeyError("malformed compact signature") from exc


def is_low_s(signature_compact: bytes) -> bool:
    return int.from_bytes(signature_compact[32:], "big") <= _HALF_ORDER


def is_strict_der(signature: bytes) -> bool:
    """BIP66 strict DER, without a sighash byte."""
    size = len(signature)
    if size < 8 or size > 72 or signature[0] != 0x30 or signature[1] != size - 2:
        return False
    r_len = signature[3]
    if signature[2] != 0x02 or r_len == 0 or 5 + r_len >= size:
        return False
    s_len = signature[5 + r_len]
    if r_len + s_len + 6 != size or signature[4 + r_len] != 0x02 or s_len == 0:
        return False
    r = signature[4 : 4 + r_len]
    s = signature[6 + r_len :]
    for number in (r, s):
        if number[0] & 0x80:
            return False
        if len(number) > 1 and number[0] == 0 and not number[1] & 0x80:
            return False
    return True


def verify_der(pubkey: bytes, signature_der: bytes, digest: bytes) -> bool:
    """True only for a strict-DER, low-S signature by `pubkey` over `digest`."""
    if not is_strict_der(signature_der):
        return False
    try:
        return bool(coincurve.PublicKey(pubkey).verify(signature_der, digest, hasher=None))
    except (ValueError, TypeError):
        return False


def verify_compact(pubkey: bytes, signature: bytes, digest: bytes) -> bool:
    if len(signature) != 64 or not is_low_s(signature):
        return False
    try:
        return verify_der(pubkey, compact_to_der(signature), digest)
    except InvalidKeyError:
        return False


def sign_recoverable(secret: bytes, digest: bytes) -> bytes:
    """65-byte r||s||recovery_id signature over a 32-byte digest (RFC 6979 nonce, low S)."""
    if len(digest) != 32:
        raise InvalidKeyError("digest must be 32 bytes")
    try:
        return bytes(coincurve.PrivateKey(secret).sign_recoverable(digest, hasher=None))
    except ValueError as exc:
        raise InvalidKeyError("invalid private key") from exc


def recover_pubkey(signature: bytes, digest: bytes) -> bytes:
    """The compressed key that made the r||s||recovery_id `signature` over `digest`.

    High-S signatures are accepted and recovered as transmitted, as libsecp256k1 does.
    """
    if len(signature) != 65 or signature[64] > 3:
        raise InvalidKeyError("recoverable signature must be 64 bytes plus a recovery id 0..3")
    if len(digest) != 32:
        raise InvalidKeyError("digest must be 32 bytes")
    try:
        key = coincurve.PublicKey.from_signature_and_message(signature, digest, hasher=None)
    except (ValueError, TypeError) as exc:
        raise InvalidKeyError("signature is not recoverable") from exc
    return bytes(key.format(compressed=True))
