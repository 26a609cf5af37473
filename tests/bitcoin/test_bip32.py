"""BIP32 extended keys against the spec's test vectors, plus derivation properties."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.address import script_pubkey_to_address, witness_script_pubkey
from ampere.bitcoin.base58 import b58check_decode, b58check_encode
from ampere.bitcoin.bip32 import (
    HARDENED,
    Bip32Error,
    ExtendedPrivateKey,
    ExtendedPublicKey,
    format_path,
    parse_extended_key,
    parse_path,
)
from ampere.bitcoin.bip39 import mnemonic_to_seed
from ampere.bitcoin.hashes import hash160
from ampere.bitcoin.network import Network

# Test vectors 1-4 and the invalid keys of test vector 5, copied from bip-0032.mediawiki
# ("Test Vectors" section) in github.com/bitcoin/bips. Paths use ' for the spec's subscript H.
BIP32_VECTORS: list[tuple[str, list[tuple[str, str, str]]]] = [
    # Test vector 1
    (
        "000102030405060708090a0b0c0d0e0f",
        [
            (
                "m",
                "xpub661MyMwAqRbcFtXgS5sYJABqqG9YLmC4Q1Rdap9gSE8NqtwybGhePY2gZ29ESFjqJoCu1Rupje8YtGqsefD265TMg7usUDFdp6W1EGMcet8",
                "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi",
            ),
            (
                "m/0'",
                "xpub68Gmy5EdvgibQVfPdqkBBCHxA5htiqg55crXYuXoQRKfDBFA1WEjWgP6LHhwBZeNK1VTsfTFUHCdrfp1bgwQ9xv5ski8PX9rL2dZXvgGDnw",
                "xprv9uHRZZhk6KAJC1avXpDAp4MDc3sQKNxDiPvvkX8Br5ngLNv1TxvUxt4cV1rGL5hj6KCesnDYUhd7oWgT11eZG7XnxHrnYeSvkzY7d2bhkJ7",
            ),
            (
                "m/0'/1",
                "xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWbWMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ",
                "xprv9wTYmMFdV23N2TdNG573QoEsfRrWKQgWeibmLntzniatZvR9BmLnvSxqu53Kw1UmYPxLgboyZQaXwTCg8MSY3H2EU4pWcQDnRnrVA1xe8fs",
            ),
            (
                "m/0'/1/2'",
                "xpub6D4BDPcP2GT577Vvch3R8wDkScZWzQzMMUm3PWbmWvVJrZwQY4VUNgqFJPMM3No2dFDFGTsxxpG5uJh7n7epu4trkrX7x7DogT5Uv6fcLW5",
                "xprv9z4pot5VBttmtdRTWfWQmoH1taj2axGVzFqSb8C9xaxKymcFzXBDptWmT7FwuEzG3ryjH4ktypQSAewRiNMjANTtpgP4mLTj34bhnZX7UiM",
            ),
            (
                "m/0'/1/2'/2",
                "xpub6FHa3pjLCk84BayeJxFW2SP4XRrFd1JYnxeLeU8EqN3vDfZmbqBqaGJAyiLjTAwm6ZLRQUMv1ZACTj37sR62cfN7fe5JnJ7dh8zL4fiyLHV",
                "xprvA2JDeKCSNNZky6uBCviVfJSKyQ1mDYahRjijr5idH2WwLsEd4Hsb2Tyh8RfQMuPh7f7RtyzTtdrbdqqsunu5Mm3wDvUAKRHSC34sJ7in334",
            ),
            (
                "m/0'/1/2'/2/1000000000",
                "xpub6H1LXWLaKsWFhvm6RVpEL9P4KfRZSW7abD2ttkWP3SSQvnyA8FSVqNTEcYFgJS2UaFcxupHiYkro49S8yGasTvXEYBVPamhGW6cFJodrTHy",
                "xprvA41z7zogVVwxVSgdKUHDy1SKmdb533PjDz7J6N6mV6uS3ze1ai8FHa8kmHScGpWmj4WggLyQjgPie1rFSruoUihUZREPSL39UNdE3BBDu76",
            ),
        ],
    ),
    # Test vector 2
    (
        (
            "fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a2"
            "9f9c999693908d8a8784817e7b7875726f6c696663605d5a5754514e4b484542"
        ),
        [
            (
                "m",
                "xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4a6mr8BDzTJY47LJhkJ8UB7WEGuduB",
                "xprv9s21ZrQH143K31xYSDQpPDxsXRTUcvj2iNHm5NUtrGiGG5e2DtALGdso3pGz6ssrdK4PFmM8NSpSBHNqPqm55Qn3LqFtT2emdEXVYsCzC2U",
            ),
            (
                "m/0",
                "xpub69H7F5d8KSRgmmdJg2KhpAK8SR3DjMwAdkxj3ZuxV27CprR9LgpeyGmXUbC6wb7ERfvrnKZjXoUmmDznezpbZb7ap6r1D3tgFxHmwMkQTPH",
                "xprv9vHkqa6EV4sPZHYqZznhT2NPtPCjKuDKGY38FBWLvgaDx45zo9WQRUT3dKYnjwih2yJD9mkrocEZXo1ex8G81dwSM1fwqWpWkeS3v86pgKt",
            ),
            (
                "m/0/2147483647'",
                "xpub6ASAVgeehLbnwdqV6UKMHVzgqAG8Gr6riv3Fxxpj8ksbH9ebxaEyBLZ85ySDhKiLDBrQSARLq1uNRts8RuJiHjaDMBU4Zn9h8LZNnBC5y4a",
                "xprv9wSp6B7kry3Vj9m1zSnLvN3xH8RdsPP1Mh7fAaR7aRLcQMKTR2vidYEeEg2mUCTAwCd6vnxVrcjfy2kRgVsFawNzmjuHc2YmYRmagcEPdU9",
            ),
            (
                "m/0/2147483647'/1",
                "xpub6DF8uhdarytz3FWdA8TvFSvvAh8dP3283MY7p2V4SeE2wyWmG5mg5EwVvmdMVCQcoNJxGoWaU9DCWh89LojfZ537wTfunKau47EL2dhHKon",
                "xprv9zFnWC6h2cLgpmSA46vutJzBcfJ8yaJGg8cX1e5StJh45BBciYTRXSd25UEPVuesF9yog62tGAQtHjXajPPdbRCHuWS6T8XA2ECKADdw4Ef",
            ),
            (
                "m/0/2147483647'/1/2147483646'",
                "xpub6ERApfZwUNrhLCkDtcHTcxd75RbzS1ed54G1LkBUHQVHQKqhMkhgbmJbZRkrgZw4koxb5JaHWkY4ALHY2grBGRjaDMzQLcgJvLJuZZvRcEL",
                "xprvA1RpRA33e1JQ7ifknakTFpgNXPmW2YvmhqLQYMmrj4xJXXWYpDPS3xz7iAxn8L39njGVyuoseXzU6rcxFLJ8HFsTjSyQbLYnMpCqE2VbFWc",
            ),
            (
                "m/0/2147483647'/1/2147483646'/2",
                "xpub6FnCn6nSzZAw5Tw7cgR9bi15UV96gLZhjDstkXXxvCLsUXBGXPdSnLFbdpq8p9HmGsApME5hQTZ3emM2rnY5agb9rXpVGyy3bdW6EEgAtqt",
                "xprvA2nrNbFZABcdryreWet9Ea4LvTJcGsqrMzxHx98MMrotbir7yrKCEXw7nadnHM8Dq38EGfSh6dqA9QWTyefMLEcBYJUuekgW4BYPJcr9E7j",
            ),
        ],
    ),
    # Test vector 3
    (
        (
            "4b381541583be4423346c643850da4b320e46a87ae3d2a4e6da11eba819cd4ac"
            "ba45d239319ac14f863b8d5ab5a0d0c64d2e8a1e7d1457df2e5a3c51c73235be"
        ),
        [
            (
                "m",
                "xpub661MyMwAqRbcEZVB4dScxMAdx6d4nFc9nvyvH3v4gJL378CSRZiYmhRoP7mBy6gSPSCYk6SzXPTf3ND1cZAceL7SfJ1Z3GC8vBgp2epUt13",
                "xprv9s21ZrQH143K25QhxbucbDDuQ4naNntJRi4KUfWT7xo4EKsHt2QJDu7KXp1A3u7Bi1j8ph3EGsZ9Xvz9dGuVrtHHs7pXeTzjuxBrCmmhgC6",
            ),
            (
                "m/0'",
                "xpub68NZiKmJWnxxS6aaHmn81bvJeTESw724CRDs6HbuccFQN9Ku14VQrADWgqbhhTHBaohPX4CjNLf9fq9MYo6oDaPPLPxSb7gwQN3ih19Zm4Y",
                "xprv9uPDJpEQgRQfDcW7BkF7eTya6RPxXeJCqCJGHuCJ4GiRVLzkTXBAJMu2qaMWPrS7AANYqdq6vcBcBUdJCVVFceUvJFjaPdGZ2y9WACViL4L",
            ),
        ],
    ),
    # Test vector 4
    (
        "3ddd5602285899a946114506157c7997e5444528f3003f6134712147db19b678",
        [
            (
                "m",
                "xpub661MyMwAqRbcGczjuMoRm6dXaLDEhW1u34gKenbeYqAix21mdUKJyuyu5F1rzYGVxyL6tmgBUAEPrEz92mBXjByMRiJdba9wpnN37RLLAXa",
                "xprv9s21ZrQH143K48vGoLGRPxgo2JNkJ3J3fqkirQC2zVdk5Dgd5w14S7fRDyHH4dWNHUgkvsvNDCkvAwcSHNAQwhwgNMgZhLtQC63zxwhQmRv",
            ),
            (
                "m/0'",
                "xpub69AUMk3qDBi3uW1sXgjCmVjJ2G6WQoYSnNHyzkmdCHEhSZ4tBok37xfFEqHd2AddP56Tqp4o56AePAgCjYdvpW2PU2jbUPFKsav5ut6Ch1m",
                "xprv9vB7xEWwNp9kh1wQRfCCQMnZUEG21LpbR9NPCNN1dwhiZkjjeGRnaALmPXCX7SgjFTiCTT6bXes17boXtjq3xLpcDjzEuGLQBM5ohqkao9G",
            ),
            (
                "m/0'/1'",
                "xpub6BJA1jSqiukeaesWfxe6sNK9CCGaujFFSJLomWHprUL9DePQ4JDkM5d88n49sMGJxrhpjazuXYWdMf17C9T5XnxkopaeS7jGk1GyyVziaMt",
                "xprv9xJocDuwtYCMNAo3Zw76WENQeAS6WGXQ55RCy7tDJ8oALr4FWkuVoHJeHVAcAqiZLE7Je3vZJHxspZdFHfnBEjHqU5hG1Jaj32dVoS6XLT1",
            ),
        ],
    ),
]

BIP32_INVALID: list[tuple[str, str]] = [
    (
        "xpub661MyMwAqRbcEYS8w7XLSVeEsBXy79zSzH1J8vCdxAZningWLdN3zgtU6LBpB85b3D2yc8sfvZU521AAwdZafEz7mnzBBsz4wKY5fTtTQBm",
        "pubkey version / prvkey mismatch",
    ),
    (
        "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzFGTQQD3dC4H2D5GBj7vWvSQaaBv5cxi9gafk7NF3pnBju6dwKvH",
        "prvkey version / pubkey mismatch",
    ),
    (
        "xpub661MyMwAqRbcEYS8w7XLSVeEsBXy79zSzH1J8vCdxAZningWLdN3zgtU6Txnt3siSujt9RCVYsx4qHZGc62TG4McvMGcAUjeuwZdduYEvFn",
        "invalid pubkey prefix 04",
    ),
    (
        "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzFGpWnsj83BHtEy5Zt8CcDr1UiRXuWCmTQLxEK9vbz5gPstX92JQ",
        "invalid prvkey prefix 04",
    ),
    (
        "xpub661MyMwAqRbcEYS8w7XLSVeEsBXy79zSzH1J8vCdxAZningWLdN3zgtU6N8ZMMXctdiCjxTNq964yKkwrkBJJwpzZS4HS2fxvyYUA4q2Xe4",
        "invalid pubkey prefix 01",
    ),
    (
        "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzFAzHGBP2UuGCqWLTAPLcMtD9y5gkZ6Eq3Rjuahrv17fEQ3Qen6J",
        "invalid prvkey prefix 01",
    ),
    (
        "xprv9s2SPatNQ9Vc6GTbVMFPFo7jsaZySyzk7L8n2uqKXJen3KUmvQNTuLh3fhZMBoG3G4ZW1N2kZuHEPY53qmbZzCHshoQnNf4GvELZfqTUrcv",
        "zero depth with non-zero parent fingerprint",
    ),
    (
        "xpub661no6RGEX3uJkY4bNnPcw4URcQTrSibUZ4NqJEw5eBkv7ovTwgiT91XX27VbEXGENhYRCf7hyEbWrR3FewATdCEebj6znwMfQkhRYHRLpJ",
        "zero depth with non-zero parent fingerprint",
    ),
    (
        "xprv9s21ZrQH4r4TsiLvyLXqM9P7k1K3EYhA1kkD6xuquB5i39AU8KF42acDyL3qsDbU9NmZn6MsGSUYZEsuoePmjzsB3eFKSUEh3Gu1N3cqVUN",
        "zero depth with non-zero index",
    ),
    (
        "xpub661MyMwAuDcm6CRQ5N4qiHKrJ39Xe1R1NyfouMKTTWcguwVcfrZJaNvhpebzGerh7gucBvzEQWRugZDuDXjNDRmXzSZe4c7mnTK97pTvGS8",
        "zero depth with non-zero index",
    ),
    (
        "DMwo58pR1QLEFihHiXPVykYB6fJmsTeHvyTp7hRThAtCX8CvYzgPcn8XnmdfHGMQzT7ayAmfo4z3gY5KfbrZWZ6St24UVf2Qgo6oujFktLHdHY4",
        "unknown extended key version",
    ),
    (
        "DMwo58pR1QLEFihHiXPVykYB6fJmsTeHvyTp7hRThAtCX8CvYzgPcn8XnmdfHPmHJiEDXkTiJTVV9rHEBUem2mwVbbNfvT2MTcAqj3nesx8uBf9",
        "unknown extended key version",
    ),
    (
        "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzF93Y5wvzdUayhgkkFoicQZcP3y52uPPxFnfoLZB21Teqt1VvEHx",
        "private key 0 not in 1..n-1",
    ),
    (
        "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzFAzHGBP2UuGCqWLTAPLcMtD5SDKr24z3aiUvKr9bJpdrcLg1y3G",
        "private key n not in 1..n-1",
    ),
    (
        "xpub661MyMwAqRbcEYS8w7XLSVeEsBXy79zSzH1J8vCdxAZningWLdN3zgtU6Q5JXayek4PRsn35jii4veMimro1xefsM58PgBMrvdYre8QyULY",
        "invalid pubkey 020000000000000000000000000000000000000000000000000000000000000007",
    ),
    (
        "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHL",
        "invalid checksum",
    ),
]


def _chains() -> list[tuple[str, str, str, str]]:
    return [(seed, path, xpub, xprv) for seed, chains in BIP32_VECTORS for path, xpub, xprv in chains]


@pytest.mark.parametrize(("seed", "path", "xpub", "xprv"), _chains())
def test_spec_vectors_private_derivation(seed: str, path: str, xpub: str, xprv: str) -> None:
    master = ExtendedPrivateKey.from_seed(bytes.fromhex(seed))
    key = master.derive_path(path)
    assert key.to_string() == xprv
    assert key.neuter().to_string() == xpub


@pytest.mark.parametrize(("seed", "path", "xpub", "xprv"), _chains())
def test_spec_vectors_parse_and_reserialize(seed: str, path: str, xpub: str, xprv: str) -> None:
    private = ExtendedPrivateKey.from_string(xprv)
    public = ExtendedPublicKey.from_string(xpub)
    assert private.neuter() == public
    assert private.to_string() == xprv
    assert public.to_string() == xpub
    assert private.depth == len(parse_path(path))


@pytest.mark.parametrize(("seed", "chains"), BIP32_VECTORS)
def test_spec_vectors_public_derivation_of_unhardened_steps(
    seed: str, chains: list[tuple[str, str, str]]
) -> None:
    # Every non-hardened step in the vectors must also be reachable from the parent xpub alone.
    for (_, parent_xpub, _), (child_path, child_xpub, _) in itertools.pairwise(chains):
        last = parse_path(child_path)[-1]
        if last >= HARDENED:
            continue
        child = ExtendedPublicKey.from_string(parent_xpub).child(last)
        assert child.to_string() == child_xpub


@pytest.mark.parametrize(("encoded", "reason"), BIP32_INVALID)
def test_spec_invalid_extended_keys(encoded: str, reason: str) -> None:
    with pytest.raises(Bip32Error):
        parse_extended_key(encoded)


def test_testnet_serialization_and_network_checks() -> None:
    master = ExtendedPrivateKey.from_seed(bytes(range(16)))
    tprv = master.to_string(Network.TESTNET)
    tpub = master.neuter().to_string(Network.REGTEST)
    assert tprv.startswith("tprv")
    assert tpub.startswith("tpub")
    assert ExtendedPrivateKey.from_string(tprv, Network.SIGNET) == master
    assert ExtendedPublicKey.from_string(tpub) == master.neuter()
    with pytest.raises(Bip32Error):
        ExtendedPrivateKey.from_string(tprv, Network.MAINNET)
    with pytest.raises(Bip32Error):
        ExtendedPrivateKey.from_string(master.neuter().to_string())
    with pytest.raises(Bip32Error):
        ExtendedPublicKey.from_string(master.to_string())


def test_metadata_of_derived_keys() -> None:
    master = ExtendedPrivateKey.from_seed(bytes(32))
    child = master.derive_path("m/84'/1'/0'/0/5")
    assert child.depth == 5
    assert child.child_number == 5
    parent = master.derive_path("m/84'/1'/0'/0")
    assert child.parent_fingerprint == parent.fingerprint
    assert master.derive_path("m") == master
    assert master.derive_path([]) == master
    assert master.derive_path([84 + HARDENED, 1 + HARDENED]) == master.derive_path("m/84h/1H")


def test_private_key_not_in_repr() -> None:
    master = ExtendedPrivateKey.from_seed(bytes(32))
    assert master.private_key.hex() not in repr(master)


def test_hardened_public_derivation_refused() -> None:
    xpub = ExtendedPrivateKey.from_seed(bytes(32)).neuter()
    with pytest.raises(Bip32Error):
        xpub.child(HARDENED)
    with pytest.raises(Bip32Error):
        xpub.derive_path("m/0/1'")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("m", ()),
        ("", ()),
        ("m/0", (0,)),
        ("0/1", (0, 1)),
        ("m/84'/1'/0'/0/5", (84 + HARDENED, 1 + HARDENED, HARDENED, 0, 5)),
        ("m/2147483647h/1H", (0xFFFFFFFF, 1 + HARDENED)),
    ],
)
def test_parse_path(path: str, expected: tuple[int, ...]) -> None:
    assert parse_path(path) == expected


@pytest.mark.parametrize("path", ["m/", "m//1", "m/x", "m/-1", "m/2147483648", "m/1''", "m/٣", "m/ 1"])
def test_parse_path_rejects(path: str) -> None:
    with pytest.raises(Bip32Error):
        parse_path(path)


def test_seed_length_limits() -> None:
    with pytest.raises(Bip32Error):
        ExtendedPrivateKey.from_seed(bytes(15))
    with pytest.raises(Bip32Error):
        ExtendedPrivateKey.from_seed(bytes(65))


def test_wrong_payload_length_rejected() -> None:
    payload = b58check_decode(BIP32_VECTORS[0][1][0][2])
    with pytest.raises(Bip32Error):
        parse_extended_key(b58check_encode(payload + b"\0"))


def test_bip84_account_and_addresses() -> None:
    # From bip-0084.mediawiki "Test vectors": the zprv/zpub use SLIP-132 version bytes, which
    # carry the same key data as xprv/xpub.
    mnemonic = " ".join(["abandon"] * 11 + ["about"])
    zprv_root = (
        "zprvAWgYBBk7JR8Gjrh4UJQ2uJdG1r3WNRRfURiABBE3RvMXYSrRJL62XuezvGdPvG6GFBZduosC"
        "c1YP5wixPox7zhZLfiUm8aunE96BBa4Kei5"
    )
    zpub_account = (
        "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToU"
        "G868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs"
    )
    master = ExtendedPrivateKey.from_seed(mnemonic_to_seed(mnemonic))
    assert master == ExtendedPrivateKey.from_string(
        b58check_encode(Network.MAINNET.xprv_version + b58check_decode(zprv_root)[4:])
    )
    account = master.derive_path("m/84'/0'/0'")
    assert account.neuter() == ExtendedPublicKey.from_string(
        b58check_encode(Network.MAINNET.xpub_version + b58check_decode(zpub_account)[4:])
    )
    expected = [
        (
            "0/0",
            "0330d54fd0dd420a6e5f8d3624f5f3482cae350f79d5f0753bf5beef9c2d91af3c",
            "KyZpNDKnfs94vbrwhJneDi77V6jF64PWPF8x5cdJb8ifgg2DUc9d",
            "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu",
        ),
        (
            "0/1",
            "03e775fd51f0dfb8cd865d9ff1cca2a158cf651fe997fdc9fee9c1d3b5e995ea77",
            "Kxpf5b8p3qX56DKEe5NqWbNUP9MnqoRFzZwHRtsFqhzuvUJsYZCy",
            "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g",
        ),
        (
            "1/0",
            "03025324888e429ab8e3dbaf1f7802648b9cd01e9b418485c5fa4c1b9b5700e1a6",
            "KxuoxufJL5csa1Wieb2kp29VNdn92Us8CoaUG3aGtPtcF3AzeXvF",
            "bc1q8c6fshw2dlwun7ekn9qwf37cu2rn755upcp6el",
        ),
    ]
    for path, pubkey, wif, address in expected:
        key = account.derive_path(path)
        assert key.public_key.hex() == pubkey
        assert account.neuter().derive_path(path).public_key.hex() == pubkey
        assert b58check_decode(wif) == b"\x80" + key.private_key + b"\x01"
        spk = witness_script_pubkey(0, hash160(key.public_key))
        assert script_pubkey_to_address(spk, Network.MAINNET) == address


_SEEDS = st.binary(min_size=16, max_size=64)
_UNHARDENED = st.integers(min_value=0, max_value=HARDENED - 1)
_ANY_INDEX = st.integers(min_value=0, max_value=0xFFFFFFFF)


@given(_SEEDS, st.lists(_ANY_INDEX, max_size=3), st.lists(_UNHARDENED, min_size=1, max_size=3))
def test_public_derivation_matches_private(seed: bytes, prefix: list[int], tail: list[int]) -> None:
    parent = ExtendedPrivateKey.from_seed(seed).derive_path(prefix)
    assert parent.derive_path(tail).neuter() == parent.neuter().derive_path(tail)


@given(_SEEDS, st.lists(_ANY_INDEX, max_size=4), st.sampled_from(list(Network)))
def test_serialization_round_trip(seed: bytes, path: list[int], network: Network) -> None:
    key = ExtendedPrivateKey.from_seed(seed).derive_path(path)
    assert ExtendedPrivateKey.from_string(key.to_string(network), network) == key
    assert ExtendedPublicKey.from_string(key.neuter().to_string(network), network) == key.neuter()


@given(st.lists(_ANY_INDEX, max_size=8))
def test_path_format_round_trip(path: list[int]) -> None:
    assert parse_path(format_path(path)) == tuple(path)
