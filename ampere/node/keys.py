"""Every key the node uses, derived from its one BIP39 seed.

Paths (all from the BIP32 master of the 64-byte BIP39 seed; `coin` is the BIP44 coin type, 0 on
mainnet and 1 elsewhere):

- node identity key: m/1017'/coin'/6'/0/0 (LND's key-family scheme: purpose 1017, family 6);
- static channel backup encryption key: m/1017'/coin'/7'/0/0 (family 7, as LND);
- on-chain wallet: the master itself is handed to `Wallet`, whose BIP84 account is m/84'/coin'/0';
- channel number `index`: root m/1017'/coin'/100'/index', and under it, hardened, the funding key
  (0'), the revocation (1'), payment (2'), delayed payment (3') and HTLC (4') basepoint secrets, and
  the per-commitment seed (5', the private key bytes feed BOLT 3's shachain).

Hardened steps everywhere: a leaked child key together with a public parent must not expose siblings.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ampere.bitcoin.bip32 import HARDENED, ExtendedPrivateKey
from ampere.bitcoin.bip39 import mnemonic_to_seed
from ampere.bitcoin.keys import PrivateKey, pubkey_from_secret
from ampere.bitcoin.network import Network
from ampere.channel.transactions.keys import ChannelBasepoints

__all__ = [
    "BACKUP_KEY_FAMILY",
    "CHANNEL_KEY_FAMILY",
    "LIGHTNING_PURPOSE",
    "NODE_KEY_FAMILY",
    "ChannelKeySecrets",
    "NodeKeys",
]

LIGHTNING_PURPOSE = 1017
NODE_KEY_FAMILY = 6
BACKUP_KEY_FAMILY = 7
CHANNEL_KEY_FAMILY = 100
MICRO_KEY_FAMILY = 200  # micropayment channels: one funding key per channel

_FUNDING, _REVOCATION, _PAYMENT, _DELAYED, _HTLC, _PER_COMMITMENT_SEED = range(6)


@dataclass(frozen=True, slots=True, repr=False)
class ChannelKeySecrets:
    """The long-lived secrets of one channel; the channel layer turns them into open_channel fields."""

    index: int
    funding_secret: bytes
    revocation_basepoint_secret: bytes
    payment_basepoint_secret: bytes
    delayed_payment_basepoint_secret: bytes
    htlc_basepoint_secret: bytes
    per_commitment_seed: bytes

    def __repr__(self) -> str:
        return f"ChannelKeySecrets(index={self.index})"

    def basepoints(self) -> ChannelBasepoints:
        return ChannelBasepoints(
            funding_pubkey=pubkey_from_secret(self.funding_secret),
            revocation_basepoint=pubkey_from_secret(self.revocation_basepoint_secret),
            payment_basepoint=pubkey_from_secret(self.payment_basepoint_secret),
            delayed_payment_basepoint=pubkey_from_secret(self.delayed_payment_basepoint_secret),
            htlc_basepoint=pubkey_from_secret(self.htlc_basepoint_secret),
        )


class NodeKeys:
    """The node's key tree. Holds secrets: never log it (its repr shows only the node id)."""

    def __init__(self, master: ExtendedPrivateKey, network: Network) -> None:
        self.network = network
        self._master = master
        coin = network.bip44_coin_type
        self._lightning = master.derive_path([LIGHTNING_PURPOSE | HARDENED, coin | HARDENED])
        self.node_key = PrivateKey(self._family_key(NODE_KEY_FAMILY))
        # Derived once: the id is asked for on every payment and message.
        self._node_id = self.node_key.public_key.data
        self._backup_secret = self._family_key(BACKUP_KEY_FAMILY)

    @classmethod
    def from_mnemonic(cls, mnemonic: str, network: Network, passphrase: str = "") -> NodeKeys:
        return cls(ExtendedPrivateKey.from_seed(mnemonic_to_seed(mnemonic, passphrase)), network)

    def __repr__(self) -> str:
        return f"NodeKeys(node_id={self.node_id.hex()}, network={self.network.value})"

    def _family_key(self, family: int) -> bytes:
        return self._lightning.derive_path([family | HARDENED, 0, 0]).private_key

    @property
    def node_id(self) -> bytes:
        """The node's public key (33 bytes), its identity on the network."""
        return self._node_id

    @property
    def wallet_master(self) -> ExtendedPrivateKey:
        """The BIP32 master `Wallet` takes; it derives its BIP84 account m/84'/coin'/0' itself."""
        return self._master

    @property
    def backup_key(self) -> bytes:
        """A 32-byte symmetric key for encrypting static channel backups (hashed, never used raw)."""
        return hashlib.sha256(b"ampere scb key" + self._backup_secret).digest()

    def channel_keys_root(self, index: int) -> ExtendedPrivateKey:
        """m/1017'/coin'/100'/index': the root of channel number `index`'s keys."""
        if not 0 <= index < HARDENED:
            raise ValueError(f"channel key index {index} out of range")
        return self._lightning.derive_path([CHANNEL_KEY_FAMILY | HARDENED, index | HARDENED])

    def micro_funding_key(self, index: int) -> PrivateKey:
        """m/1017'/coin'/200'/index': the funding key of micropayment channel number `index`."""
        if not 0 <= index < HARDENED:
            raise ValueError(f"micropayment key index {index} out of range")
        return PrivateKey(
            self._lightning.derive_path([MICRO_KEY_FAMILY | HARDENED, index | HARDENED]).private_key
        )

    def channel_keys(self, index: int) -> ChannelKeySecrets:
        root = self.channel_keys_root(index)

        def secret(child: int) -> bytes:
            return root.child(child | HARDENED).private_key

        return ChannelKeySecrets(
            index=index,
            funding_secret=secret(_FUNDING),
            revocation_basepoint_secret=secret(_REVOCATION),
            payment_basepoint_secret=secret(_PAYMENT),
            delayed_payment_basepoint_secret=secret(_DELAYED),
            htlc_basepoint_secret=secret(_HTLC),
            per_commitment_seed=secret(_PER_COMMITMENT_SEED),
        )
