"""BIP32 hierarchical deterministic keys: master keys from a seed, child derivation, paths, and the
xprv/xpub (mainnet) and tprv/tpub (testnet, signet, regtest) serializations.

Keys are values: deriving a child returns a new key. Serialization takes the network as an
argument because the key material itself is the same on every network.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import coincurve

from ampere.bitcoin.base58 import Base58Error, b58check_decode, b58check_encode
from ampere.bitcoin.errors import BitcoinError
from ampere.bitcoin.hashes import hash160
from ampere.bitcoin.network import Network

__all__ = [
    "CURVE_ORDER",
    "HARDENED",
    "Bip32Error",
    "ExtendedPrivateKey",
    "ExtendedPublicKey",
    "format_path",
    "parse_extended_key",
    "parse_path",
]

CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HARDENED = 0x80000000
_MAX_INDEX = 0xFFFFFFFF
_MAX_DEPTH = 255
_SERIALIZED_LEN = 78
_MASTER_HMAC_KEY = b"Bitcoin seed"
_NO_FINGERPRINT = b"\0\0\0\0"


class Bip32Error(BitcoinError):
    """A malformed extended key or path, or a derivation that yields an invalid key."""


def parse_path(path: str) -> tuple[int, ...]:
    """Parse "m/84'/1'/0'/0/5" into child numbers; ', h and H mark hardened steps.

    A leading "m" is optional, so relative paths ("0/5") parse the same way.
    """
    text = path.strip()
    parts = text.split("/") if text else []
    if parts and parts[0] in ("m", "M"):
        parts = parts[1:]
    indexes: list[int] = []
    for part in parts:
        hardened = part[-1:] in ("'", "h", "H")
        digits = part[:-1] if hardened else part
        # isdecimal() alone would admit non-ASCII digits and int() would then accept them.
        if not digits.isascii() or not digits.isdecimal():
            raise Bip32Error(f"invalid path component {part!r} in {path!r}")
        value = int(digits)
        if value >= HARDENED:
            raise Bip32Error(f"path component {part!r} is not below 2^31")
        indexes.append(value + HARDENED if hardened else value)
    return tuple(indexes)


def format_path(indexes: Iterable[int], *, marker: str = "'") -> str:
    """The inverse of `parse_path`, always absolute ("m/...")."""
    parts = ["m"]
    for index in indexes:
        _check_index(index)
        parts.append(f"{index - HARDENED}{marker}" if index >= HARDENED else str(index))
    return "/".join(parts)


def _check_index(index: int) -> None:
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= _MAX_INDEX:
        raise Bip32Error(f"child index {index!r} is not a 32-bit unsigned integer")


def _resolve_path(path: str | Sequence[int]) -> Sequence[int]:
    return parse_path(path) if isinstance(path, str) else path


def _hmac_sha512(key: bytes, data: bytes) -> tuple[bytes, bytes]:
    digest = hmac.new(key, data, hashlib.sha512).digest()
    return digest[:32], digest[32:]


def _public_from_secret(secret: bytes) -> bytes:
    return coincurve.PublicKey.from_valid_secret(secret).format(compressed=True)


def _check_public_key(public_key: bytes) -> None:
    if len(public_key) != 33 or public_key[0] not in (2, 3):
        raise Bip32Error("public key must be 33 bytes, compressed")
    try:
        coincurve.PublicKey(public_key)
    except ValueError as exc:
        raise Bip32Error("public key is not a point on secp256k1") from exc


def _check_common(chain_code: bytes, depth: int, parent_fingerprint: bytes, child_number: int) -> None:
    if len(chain_code) != 32:
        raise Bip32Error("chain code must be 32 bytes")
    if not 0 <= depth <= _MAX_DEPTH:
        raise Bip32Error(f"depth {depth} does not fit in one byte")
    if len(parent_fingerprint) != 4:
        raise Bip32Error("parent fingerprint must be 4 bytes")
    _check_index(child_number)
    # A master key has no parent: anything else at depth 0 is a corrupted or forged key.
    if depth == 0 and parent_fingerprint != _NO_FINGERPRINT:
        raise Bip32Error("zero depth with a non-zero parent fingerprint")
    if depth == 0 and child_number != 0:
        raise Bip32Error("zero depth with a non-zero child number")


def _serialize(
    version: bytes, depth: int, parent_fingerprint: bytes, child_number: int, chain_code: bytes, key: bytes
) -> str:
    payload = (
        version + bytes([depth]) + parent_fingerprint + child_number.to_bytes(4, "big") + chain_code + key
    )
    return b58check_encode(payload)


@dataclass(frozen=True, slots=True, repr=False)
class ExtendedPrivateKey:
    private_key: bytes
    chain_code: bytes
    depth: int = 0
    parent_fingerprint: bytes = _NO_FINGERPRINT
    child_number: int = 0

    def __post_init__(self) -> None:
        if len(self.private_key) != 32:
            raise Bip32Error("private key must be 32 bytes")
        if not 0 < int.from_bytes(self.private_key, "big") < CURVE_ORDER:
            raise Bip32Error("private key not in 1..n-1")
        _check_common(self.chain_code, self.depth, self.parent_fingerprint, self.child_number)

    def __repr__(self) -> str:
        # An extended private key unlocks a whole subtree of funds: keep it out of logs.
        return (
            f"ExtendedPrivateKey(fingerprint={self.fingerprint.hex()}, depth={self.depth}, "
            f"child_number={self.child_number})"
        )

    @classmethod
    def from_seed(cls, seed: bytes) -> ExtendedPrivateKey:
        """The master key of `seed` (BIP32 allows 16 to 64 bytes)."""
        if not 16 <= len(seed) <= 64:
            raise Bip32Error(f"seed of {len(seed)} bytes, BIP32 requires 16..64")
        left, right = _hmac_sha512(_MASTER_HMAC_KEY, seed)
        if not 0 < int.from_bytes(left, "big") < CURVE_ORDER:
            raise Bip32Error("seed produces an invalid master key")
        return cls(left, right)

    @classmethod
    def from_string(cls, text: str, network: Network | None = None) -> ExtendedPrivateKey:
        key = parse_extended_key(text, network)
        if not isinstance(key, ExtendedPrivateKey):
            raise Bip32Error("expected an extended private key, got a public one")
        return key

    @property
    def public_key(self) -> bytes:
        return _public_from_secret(self.private_key)

    @property
    def identifier(self) -> bytes:
        return hash160(self.public_key)

    @property
    def fingerprint(self) -> bytes:
        return self.identifier[:4]

    def neuter(self) -> ExtendedPublicKey:
        """The extended public key of the same node (BIP32 N())."""
        return ExtendedPublicKey(
            self.public_key, self.chain_code, self.depth, self.parent_fingerprint, self.child_number
        )

    def child(self, index: int) -> ExtendedPrivateKey:
        """CKDpriv. Indexes >= 2^31 are hardened."""
        _check_index(index)
        if self.depth == _MAX_DEPTH:
            raise Bip32Error("maximum depth of 255 reached")
        public_key = self.public_key
        if index >= HARDENED:
            data = b"\0" + self.private_key + index.to_bytes(4, "big")
        else:
            data = public_key + index.to_bytes(4, "big")
        left, right = _hmac_sha512(self.chain_code, data)
        tweak = int.from_bytes(left, "big")
        child_value = (tweak + int.from_bytes(self.private_key, "big")) % CURVE_ORDER
        # BIP32 says to skip to the next index here; the odds are below 2^-127, and silently
        # deriving a different index than asked would break path agreement with other wallets.
        if tweak >= CURVE_ORDER or child_value == 0:
            raise Bip32Error(f"child {index} is invalid; use the next index")
        return ExtendedPrivateKey(
            child_value.to_bytes(32, "big"),
            right,
            self.depth + 1,
            hash160(public_key)[:4],
            index,
        )

    def derive_path(self, path: str | Sequence[int]) -> ExtendedPrivateKey:
        key = self
        for index in _resolve_path(path):
            key = key.child(index)
        return key

    def to_string(self, network: Network = Network.MAINNET) -> str:
        """xprv... on mainnet, tprv... on the test networks."""
        return _serialize(
            network.xprv_version,
            self.depth,
            self.parent_fingerprint,
            self.child_number,
            self.chain_code,
            b"\0" + self.private_key,
        )


@dataclass(frozen=True, slots=True)
class ExtendedPublicKey:
    public_key: bytes
    chain_code: bytes
    depth: int = 0
    parent_fingerprint: bytes = _NO_FINGERPRINT
    child_number: int = 0

    def __post_init__(self) -> None:
        _check_public_key(self.public_key)
        _check_common(self.chain_code, self.depth, self.parent_fingerprint, self.child_number)

    @classmethod
    def from_string(cls, text: str, network: Network | None = None) -> ExtendedPublicKey:
        key = parse_extended_key(text, network)
        if not isinstance(key, ExtendedPublicKey):
            raise Bip32Error("expected an extended public key, got a private one")
        return key

    @property
    def identifier(self) -> bytes:
        return hash160(self.public_key)

    @property
    def fingerprint(self) -> bytes:
        return self.identifier[:4]

    def child(self, index: int) -> ExtendedPublicKey:
        """CKDpub; hardened indexes need the private key and are refused."""
        _check_index(index)
        if index >= HARDENED:
            raise Bip32Error("cannot derive a hardened child from a public key")
        if self.depth == _MAX_DEPTH:
            raise Bip32Error("maximum depth of 255 reached")
        left, right = _hmac_sha512(self.chain_code, self.public_key + index.to_bytes(4, "big"))
        if int.from_bytes(left, "big") >= CURVE_ORDER:
            raise Bip32Error(f"child {index} is invalid; use the next index")
        try:
            child_point = coincurve.PublicKey(self.public_key).add(left)
        except ValueError as exc:
            raise Bip32Error(f"child {index} is the point at infinity; use the next index") from exc
        return ExtendedPublicKey(
            child_point.format(compressed=True),
            right,
            self.depth + 1,
            self.fingerprint,
            index,
        )

    def derive_path(self, path: str | Sequence[int]) -> ExtendedPublicKey:
        key = self
        for index in _resolve_path(path):
            key = key.child(index)
        return key

    def to_string(self, network: Network = Network.MAINNET) -> str:
        """xpub... on mainnet, tpub... on the test networks."""
        return _serialize(
            network.xpub_version,
            self.depth,
            self.parent_fingerprint,
            self.child_number,
            self.chain_code,
            self.public_key,
        )


def _version_table(network: Network | None) -> dict[bytes, bool]:
    """Accepted version bytes mapped to whether they mean a private key."""
    networks = list(Network) if network is None else [network]
    table: dict[bytes, bool] = {}
    for candidate in networks:
        table[candidate.xprv_version] = True
        table[candidate.xpub_version] = False
    return table


def parse_extended_key(text: str, network: Network | None = None) -> ExtendedPrivateKey | ExtendedPublicKey:
    """Parse an xprv/xpub/tprv/tpub string, validating every field BIP32 constrains.

    With `network` given, only that network's version bytes are accepted; without it any
    supported network's are (testnet, signet and regtest share theirs, so that cannot tell
    them apart).
    """
    try:
        payload = b58check_decode(text)
    except Base58Error as exc:
        raise Bip32Error(f"invalid extended key encoding: {exc}") from exc
    if len(payload) != _SERIALIZED_LEN:
        raise Bip32Error(f"extended key payload of {len(payload)} bytes, must be 78")
    version = payload[:4]
    is_private = _version_table(network).get(version)
    if is_private is None:
        raise Bip32Error(f"unknown extended key version {version.hex()}")
    depth = payload[4]
    parent_fingerprint = payload[5:9]
    child_number = int.from_bytes(payload[9:13], "big")
    chain_code = payload[13:45]
    key_data = payload[45:]
    if is_private:
        if key_data[0] != 0:
            raise Bip32Error("private key data must start with 0x00")
        return ExtendedPrivateKey(key_data[1:], chain_code, depth, parent_fingerprint, child_number)
    return ExtendedPublicKey(key_data, chain_code, depth, parent_fingerprint, child_number)
