"""BIP84 key tree: m/84'/coin'/account' with a receive chain (0) and a change chain (1)."""

from __future__ import annotations

from dataclasses import dataclass

from ampere.bitcoin.address import script_pubkey_to_address
from ampere.bitcoin.bip32 import HARDENED, ExtendedPrivateKey
from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.network import Network
from ampere.bitcoin.script import p2wpkh_script

RECEIVE_CHAIN = 0
CHANGE_CHAIN = 1


@dataclass(frozen=True, slots=True)
class KeyPath:
    chain: int
    index: int


class Bip84Keychain:
    """Derives and remembers the wallet's P2WPKH scripts so incoming outputs can be recognised."""

    def __init__(self, master: ExtendedPrivateKey, network: Network, account: int = 0) -> None:
        self.network = network
        coin = network.bip44_coin_type
        self._account = master.derive_path([84 | HARDENED, coin | HARDENED, account | HARDENED])
        self._chains = {chain: self._account.child(chain) for chain in (RECEIVE_CHAIN, CHANGE_CHAIN)}
        self._paths_by_script: dict[bytes, KeyPath] = {}
        self._derived_count = {RECEIVE_CHAIN: 0, CHANGE_CHAIN: 0}

    def private_key(self, path: KeyPath) -> PrivateKey:
        return PrivateKey(self._chains[path.chain].child(path.index).private_key)

    def script_pubkey(self, path: KeyPath) -> bytes:
        self.ensure_derived(path.chain, path.index + 1)
        return p2wpkh_script(self._chains[path.chain].child(path.index).public_key)

    def address(self, path: KeyPath) -> str:
        return script_pubkey_to_address(self.script_pubkey(path), self.network)

    def ensure_derived(self, chain: int, count: int) -> None:
        """Derive scripts up to `count` on `chain` so that they are recognised when seen on chain."""
        for index in range(self._derived_count[chain], count):
            public_key = self._chains[chain].child(index).public_key
            self._paths_by_script[p2wpkh_script(public_key)] = KeyPath(chain, index)
        self._derived_count[chain] = max(self._derived_count[chain], count)

    def lookup(self, script_pubkey: bytes) -> KeyPath | None:
        return self._paths_by_script.get(script_pubkey)

    def derived_count(self, chain: int) -> int:
        return self._derived_count[chain]
