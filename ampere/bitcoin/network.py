"""The Bitcoin networks Ampere can run on and the constants that tell them apart.

Testnet, signet and regtest share their Base58 prefixes and BIP32 version bytes, and testnet
and signet even share the bech32 HRP, so an address or extended key alone does not always
name its network; the genesis block hash (BOLT's `chain_hash`) always does.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ampere.bitcoin.errors import BitcoinError

__all__ = ["Network", "NetworkParams", "UnknownNetworkError"]


class UnknownNetworkError(BitcoinError):
    """A network name or chain hash that matches none of the supported networks."""


@dataclass(frozen=True, slots=True)
class NetworkParams:
    label: str
    hrp: str
    p2pkh_prefix: int
    p2sh_prefix: int
    wif_prefix: int
    xprv_version: bytes
    xpub_version: bytes
    # Internal byte order, i.e. as serialized in block headers and as BOLT `chain_hash`;
    # block explorers show it reversed.
    genesis_hash: bytes
    bip44_coin_type: int


def _genesis(display_hex: str) -> bytes:
    return bytes.fromhex(display_hex)[::-1]


_TEST_XPRV = bytes.fromhex("04358394")
_TEST_XPUB = bytes.fromhex("043587cf")

_PARAMS: dict[str, NetworkParams] = {
    "mainnet": NetworkParams(
        label="mainnet",
        hrp="bc",
        p2pkh_prefix=0x00,
        p2sh_prefix=0x05,
        wif_prefix=0x80,
        xprv_version=bytes.fromhex("0488ade4"),
        xpub_version=bytes.fromhex("0488b21e"),
        genesis_hash=_genesis("000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"),
        bip44_coin_type=0,
    ),
    "testnet": NetworkParams(
        label="testnet",
        hrp="tb",
        p2pkh_prefix=0x6F,
        p2sh_prefix=0xC4,
        wif_prefix=0xEF,
        xprv_version=_TEST_XPRV,
        xpub_version=_TEST_XPUB,
        genesis_hash=_genesis("000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943"),
        bip44_coin_type=1,
    ),
    "signet": NetworkParams(
        label="signet",
        hrp="tb",
        p2pkh_prefix=0x6F,
        p2sh_prefix=0xC4,
        wif_prefix=0xEF,
        xprv_version=_TEST_XPRV,
        xpub_version=_TEST_XPUB,
        genesis_hash=_genesis("00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6"),
        bip44_coin_type=1,
    ),
    "regtest": NetworkParams(
        label="regtest",
        hrp="bcrt",
        p2pkh_prefix=0x6F,
        p2sh_prefix=0xC4,
        wif_prefix=0xEF,
        xprv_version=_TEST_XPRV,
        xpub_version=_TEST_XPUB,
        genesis_hash=_genesis("0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"),
        bip44_coin_type=1,
    ),
}

# Spellings used by bitcoind (`-chain=main`/`test`) and other tools for the same networks.
_ALIASES = {
    "mainnet": "mainnet",
    "main": "mainnet",
    "bitcoin": "mainnet",
    "testnet": "testnet",
    "testnet3": "testnet",
    "test": "testnet",
    "signet": "signet",
    "regtest": "regtest",
}


class Network(Enum):
    """A Bitcoin network. `Network("regtest")` and `Network.from_name("main")` both work."""

    MAINNET = "mainnet"
    TESTNET = "testnet"
    SIGNET = "signet"
    REGTEST = "regtest"

    @property
    def params(self) -> NetworkParams:
        return _PARAMS[self.value]

    @property
    def label(self) -> str:
        return self.params.label

    @property
    def hrp(self) -> str:
        return self.params.hrp

    @property
    def p2pkh_prefix(self) -> int:
        return self.params.p2pkh_prefix

    @property
    def p2sh_prefix(self) -> int:
        return self.params.p2sh_prefix

    @property
    def wif_prefix(self) -> int:
        return self.params.wif_prefix

    @property
    def xprv_version(self) -> bytes:
        return self.params.xprv_version

    @property
    def xpub_version(self) -> bytes:
        return self.params.xpub_version

    @property
    def genesis_hash(self) -> bytes:
        return self.params.genesis_hash

    @property
    def chain_hash(self) -> bytes:
        """BOLT's `chain_hash`: the genesis block hash in internal byte order."""
        return self.params.genesis_hash

    @property
    def bip44_coin_type(self) -> int:
        return self.params.bip44_coin_type

    @property
    def is_mainnet(self) -> bool:
        return self is Network.MAINNET

    @classmethod
    def from_name(cls, name: str) -> Network:
        canonical = _ALIASES.get(name.strip().lower())
        if canonical is None:
            raise UnknownNetworkError(f"unknown network name {name!r}")
        return cls(canonical)

    @classmethod
    def from_chain_hash(cls, chain_hash: bytes) -> Network:
        for network in cls:
            if network.genesis_hash == chain_hash:
                return network
        raise UnknownNetworkError(f"unknown chain hash {chain_hash.hex()}")
