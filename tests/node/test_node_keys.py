"""NodeKeys: every key at its documented path, channels apart from each other, no secret in a repr."""

from __future__ import annotations

import pytest

from ampere.bitcoin.bip32 import ExtendedPrivateKey
from ampere.bitcoin.bip39 import mnemonic_to_seed
from ampere.bitcoin.keys import pubkey_from_secret
from ampere.bitcoin.network import Network
from ampere.bitcoin.script import p2wpkh_script
from ampere.node.keys import NodeKeys
from ampere.wallet.wallet import Wallet

MNEMONIC = " ".join(["abandon"] * 23 + ["art"])


@pytest.fixture(scope="module")
def master() -> ExtendedPrivateKey:
    return ExtendedPrivateKey.from_seed(mnemonic_to_seed(MNEMONIC))


@pytest.mark.parametrize(("network", "coin"), [(Network.REGTEST, 1), (Network.MAINNET, 0)])
def test_documented_paths(master: ExtendedPrivateKey, network: Network, coin: int) -> None:
    keys = NodeKeys.from_mnemonic(MNEMONIC, network)
    node_secret = master.derive_path(f"m/1017'/{coin}'/6'/0/0").private_key
    assert keys.node_key.secret == node_secret
    assert keys.node_id == pubkey_from_secret(node_secret)
    root = master.derive_path(f"m/1017'/{coin}'/100'/7'")
    assert keys.channel_keys_root(7) == root
    secrets = keys.channel_keys(7)
    assert secrets.funding_secret == root.derive_path("m/0'").private_key
    assert secrets.per_commitment_seed == root.derive_path("m/5'").private_key
    assert keys.wallet_master == master


def test_wallet_account_is_bip84(master: ExtendedPrivateKey) -> None:
    wallet = Wallet(NodeKeys.from_mnemonic(MNEMONIC, Network.REGTEST).wallet_master, Network.REGTEST)
    first_receive = master.derive_path("m/84'/1'/0'/0/0")
    assert wallet.new_script_pubkey() == p2wpkh_script(first_receive.public_key)


def test_channels_and_families_are_distinct() -> None:
    keys = NodeKeys.from_mnemonic(MNEMONIC, Network.REGTEST)
    seen = {keys.node_key.secret, keys.backup_key}
    for index in range(3):
        secrets = keys.channel_keys(index)
        values = [
            secrets.funding_secret,
            secrets.revocation_basepoint_secret,
            secrets.payment_basepoint_secret,
            secrets.delayed_payment_basepoint_secret,
            secrets.htlc_basepoint_secret,
            secrets.per_commitment_seed,
        ]
        assert not seen & set(values)
        seen |= set(values)
        basepoints = secrets.basepoints()
        assert basepoints.funding_pubkey == pubkey_from_secret(secrets.funding_secret)
    assert len(seen) == 2 + 3 * 6
    assert NodeKeys.from_mnemonic(MNEMONIC, Network.REGTEST).node_id == keys.node_id
    with pytest.raises(ValueError):
        keys.channel_keys_root(2**31)


def test_repr_shows_no_secret() -> None:
    keys = NodeKeys.from_mnemonic(MNEMONIC, Network.REGTEST)
    secrets = keys.channel_keys(0)
    for text in (repr(keys), repr(secrets), str(keys)):
        assert keys.node_key.secret.hex() not in text
        assert secrets.funding_secret.hex() not in text
        assert "abandon" not in text
