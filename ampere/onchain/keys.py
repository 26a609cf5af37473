"""The keys on-chain enforcement signs with, behind one small interface.

Every claim names a key by family and tweak instead of carrying a private key, so that the
resolver's persisted state holds no secret and the keys can live in the same place as the
channel signer's:

    REVOCATION  our revocation basepoint secret, tweaked by the peer's per-commitment *secret*
    DELAYED     our delayed-payment basepoint secret, tweaked by our per-commitment point
    HTLC        our HTLC basepoint secret, tweaked by the commitment owner's per-commitment point
    PAYMENT     our payment basepoint secret, untweaked (static_remotekey)
    FUNDING     our funding secret, untweaked (the anchor)
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol

from ampere.bitcoin.keys import pubkey_from_secret
from ampere.bitcoin.sighash import SigHash
from ampere.bitcoin.tx import Transaction
from ampere.channel.signer import InMemorySigner, derive_channel_secret
from ampere.channel.transactions.keys import ChannelBasepoints
from ampere.channel.transactions.signing import sign_input
from ampere.crypto.keys import derive_privkey, derive_revocation_privkey
from ampere.crypto.shachain import PerCommitmentSecretGenerator
from ampere.onchain.errors import OnchainError

__all__ = ["InMemoryOnchainSigner", "KeyFamily", "OnchainSigner"]


class KeyFamily(Enum):
    REVOCATION = 1
    DELAYED = 2
    HTLC = 3
    PAYMENT = 4
    FUNDING = 5

    @property
    def tweaked(self) -> bool:
        return self in (KeyFamily.REVOCATION, KeyFamily.DELAYED, KeyFamily.HTLC)


class OnchainSigner(Protocol):
    """Signs claim inputs for one channel."""

    @property
    def basepoints(self) -> ChannelBasepoints: ...

    def per_commitment_point(self, commitment_number: int) -> bytes:
        """The point of our own commitment `commitment_number`."""
        ...

    def public_key(self, family: KeyFamily, tweak: bytes) -> bytes: ...

    def sign(
        self,
        tx: Transaction,
        input_index: int,
        script_code: bytes,
        amount_sat: int,
        family: KeyFamily,
        tweak: bytes,
        sighash: SigHash = SigHash.ALL,
    ) -> bytes:
        """DER signature (no sighash byte) of one segwit v0 input."""
        ...


class InMemoryOnchainSigner:
    """An `OnchainSigner` over the same 32-byte channel root as `InMemorySigner` (same keys)."""

    __slots__ = ("_basepoints", "_secrets", "_shachain")

    def __init__(self, root: bytes) -> None:
        # The channel signer validates the root and fixes the derivation; reuse both.
        self._basepoints = InMemorySigner(root).basepoints
        self._secrets = {
            KeyFamily.REVOCATION: derive_channel_secret(root, b"revocation"),
            KeyFamily.DELAYED: derive_channel_secret(root, b"delayed_payment"),
            KeyFamily.HTLC: derive_channel_secret(root, b"htlc"),
            KeyFamily.PAYMENT: derive_channel_secret(root, b"payment"),
            KeyFamily.FUNDING: derive_channel_secret(root, b"funding"),
        }
        self._shachain = PerCommitmentSecretGenerator(derive_channel_secret(root, b"shachain"))

    def __repr__(self) -> str:
        return f"InMemoryOnchainSigner(funding_pubkey={self._basepoints.funding_pubkey.hex()})"

    @property
    def basepoints(self) -> ChannelBasepoints:
        return self._basepoints

    def per_commitment_point(self, commitment_number: int) -> bytes:
        return self._shachain.point(commitment_number)

    def _private_key(self, family: KeyFamily, tweak: bytes) -> bytes:
        base = self._secrets[family]
        if not family.tweaked:
            if tweak:
                raise OnchainError(f"the {family.name.lower()} key takes no tweak")
            return base
        if family is KeyFamily.REVOCATION:
            return derive_revocation_privkey(base, tweak)
        return derive_privkey(base, tweak)

    def public_key(self, family: KeyFamily, tweak: bytes) -> bytes:
        return pubkey_from_secret(self._private_key(family, tweak))

    def sign(
        self,
        tx: Transaction,
        input_index: int,
        script_code: bytes,
        amount_sat: int,
        family: KeyFamily,
        tweak: bytes,
        sighash: SigHash = SigHash.ALL,
    ) -> bytes:
        return sign_input(tx, input_index, script_code, amount_sat, self._private_key(family, tweak), sighash)
