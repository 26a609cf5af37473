"""BIP39 mnemonics against the reference vectors, plus round-trip and checksum properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.bip32 import ExtendedPrivateKey
from ampere.bitcoin.bip39 import (
    VALID_ENTROPY_LENGTHS,
    VALID_WORD_COUNTS,
    Bip39Error,
    entropy_to_mnemonic,
    generate_mnemonic,
    is_valid_mnemonic,
    mnemonic_to_entropy,
    mnemonic_to_seed,
    wordlist,
)

# (entropy, mnemonic, seed with passphrase "TREZOR", BIP32 master xprv of that seed), copied from
# vectors.json ("english") of github.com/trezor/python-mnemonic, the reference vectors that
# bip-0039.mediawiki links to.
TREZOR_VECTORS: list[tuple[str, str, str, str]] = [
    (
        "00000000000000000000000000000000",
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
        "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04",
        "xprv9s21ZrQH143K3h3fDYiay8mocZ3afhfULfb5GX8kCBdno77K4HiA15Tg23wpbeF1pLfs1c5SPmYHrEpTuuRhxMwvKDwqdKiGJS9XFKzUsAF",
    ),
    (
        "7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f",
        "legal winner thank year wave sausage worth useful legal winner thank yellow",
        "2e8905819b8723fe2c1d161860e5ee1830318dbf49a83bd451cfb8440c28bd6fa457fe1296106559a3c80937a1c1069be3a3a5bd381ee6260e8d9739fce1f607",
        "xprv9s21ZrQH143K2gA81bYFHqU68xz1cX2APaSq5tt6MFSLeXnCKV1RVUJt9FWNTbrrryem4ZckN8k4Ls1H6nwdvDTvnV7zEXs2HgPezuVccsq",
    ),
    (
        "ffffffffffffffffffffffffffffffffffffffffffffffff",
        "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo when",
        "0cd6e5d827bb62eb8fc1e262254223817fd068a74b5b449cc2f667c3f1f985a76379b43348d952e2265b4cd129090758b3e3c2c49103b5051aac2eaeb890a528",
        "xprv9s21ZrQH143K36Ao5jHRVhFGDbLP6FCx8BEEmpru77ef3bmA928BxsqvVM27WnvvyfWywiFN8K6yToqMaGYfzS6Db1EHAXT5TuyCLBXUfdm",
    ),
    (
        "8080808080808080808080808080808080808080808080808080808080808080",
        "letter advice cage absurd amount doctor acoustic avoid letter advice cage absurd "
        "amount doctor acoustic avoid letter advice cage absurd amount doctor acoustic bless",
        "c0c519bd0e91a2ed54357d9d1ebef6f5af218a153624cf4f2da911a0ed8f7a09e2ef61af0aca007096df430022f7a2b6fb91661a9589097069720d015e4e982f",
        "xprv9s21ZrQH143K3CSnQNYC3MqAAqHwxeTLhDbhF43A4ss4ciWNmCY9zQGvAKUSqVUf2vPHBTSE1rB2pg4avopqSiLVzXEU8KziNnVPauTqLRo",
    ),
    (
        "9e885d952ad362caeb4efe34a8e91bd2",
        "ozone drill grab fiber curtain grace pudding thank cruise elder eight picnic",
        "274ddc525802f7c828d8ef7ddbcdc5304e87ac3535913611fbbfa986d0c9e5476c91689f9c8a54fd55bd38606aa6a8595ad213d4c9c9f9aca3fb217069a41028",
        "xprv9s21ZrQH143K2oZ9stBYpoaZ2ktHj7jLz7iMqpgg1En8kKFTXJHsjxry1JbKH19YrDTicVwKPehFKTbmaxgVEc5TpHdS1aYhB2s9aFJBeJH",
    ),
    (
        "6d9be1ee6ebd27a258115aad99b7317b9c8d28b6d76431c3",
        "horn tenant knee talent sponsor spell gate clip pulse "
        "soap slush warm silver nephew swap uncle crack brave",
        "fd579828af3da1d32544ce4db5c73d53fc8acc4ddb1e3b251a31179cdb71e853c56d2fcb11aed39898ce6c34b10b5382772db8796e52837b54468aeb312cfc3d",
        "xprv9s21ZrQH143K3R1SfVZZLtVbXEB9ryVxmVtVMsMwmEyEvgXN6Q84LKkLRmf4ST6QrLeBm3jQsb9gx1uo23TS7vo3vAkZGZz71uuLCcywUkt",
    ),
    (
        "9f6a2878b2520799a44ef18bc7df394e7061a224d2c33cd015b157d746869863",
        "panda eyebrow bullet gorilla call smoke muffin taste mesh discover soft ostrich "
        "alcohol speed nation flash devote level hobby quick inner drive ghost inside",
        "72be8e052fc4919d2adf28d5306b5474b0069df35b02303de8c1729c9538dbb6fc2d731d5f832193cd9fb6aeecbc469594a70e3dd50811b5067f3b88b28c3e8d",
        "xprv9s21ZrQH143K2WNnKmssvZYM96VAr47iHUQUTUyUXH3sAGNjhJANddnhw3i3y3pBbRAVk5M5qUGFr4rHbEWwXgX4qrvrceifCYQJbbFDems",
    ),
]


def test_wordlist_is_the_standard_list() -> None:
    words = wordlist()
    assert len(words) == 2048
    assert words[0] == "abandon"
    assert words[-1] == "zoo"
    assert list(words) == sorted(words)
    # Every English word is identified by its first four letters; wallets rely on it.
    assert len({word[:4] for word in words}) == 2048


@pytest.mark.parametrize(("entropy", "mnemonic", "seed", "xprv"), TREZOR_VECTORS)
def test_trezor_vectors(entropy: str, mnemonic: str, seed: str, xprv: str) -> None:
    assert entropy_to_mnemonic(bytes.fromhex(entropy)) == mnemonic
    assert mnemonic_to_entropy(mnemonic) == bytes.fromhex(entropy)
    assert is_valid_mnemonic(mnemonic)
    derived_seed = mnemonic_to_seed(mnemonic, "TREZOR")
    assert derived_seed.hex() == seed
    assert ExtendedPrivateKey.from_seed(derived_seed).to_string() == xprv


def test_seed_without_passphrase() -> None:
    # Same sentence as BIP84's test vector; the empty passphrase gives salt "mnemonic".
    mnemonic = " ".join(["abandon"] * 11 + ["about"])
    expected = hashlib.pbkdf2_hmac("sha512", mnemonic.encode(), b"mnemonic", 2048)
    assert mnemonic_to_seed(mnemonic) == expected


def test_passphrase_is_nfkd_normalized() -> None:
    mnemonic = TREZOR_VECTORS[0][1]
    composed = "caf\u00e9"
    decomposed = "cafe\u0301"
    assert mnemonic_to_seed(mnemonic, composed) == mnemonic_to_seed(mnemonic, decomposed)
    assert mnemonic_to_seed(mnemonic, composed) != mnemonic_to_seed(mnemonic, "cafe")


def test_whitespace_between_words_does_not_change_the_seed() -> None:
    mnemonic = TREZOR_VECTORS[1][1]
    messy = "  " + mnemonic.replace(" ", " \t\n ") + "\n"
    assert mnemonic_to_seed(messy, "TREZOR") == mnemonic_to_seed(mnemonic, "TREZOR")


@pytest.mark.parametrize(
    "mnemonic",
    [
        # Checksum mismatch: last word changed.
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon",
        # Unknown word.
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abou",
        # Eleven words.
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
        # Thirteen words.
        " ".join(["abandon"] * 12 + ["about"]),
        "",
        # Capitalised words are not in the list.
        "Abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
    ],
)
def test_invalid_mnemonics(mnemonic: str) -> None:
    assert not is_valid_mnemonic(mnemonic)
    with pytest.raises(Bip39Error):
        mnemonic_to_entropy(mnemonic)
    with pytest.raises(Bip39Error):
        mnemonic_to_seed(mnemonic)


def test_unvalidated_seed_is_allowed_explicitly() -> None:
    sentence = "not a bip39 sentence"
    expected = hashlib.pbkdf2_hmac("sha512", sentence.encode(), b"mnemonicpw", 2048)
    assert mnemonic_to_seed(sentence, "pw", validate=False) == expected


@pytest.mark.parametrize("length", [0, 8, 15, 17, 33, 64])
def test_bad_entropy_lengths(length: int) -> None:
    with pytest.raises(Bip39Error):
        entropy_to_mnemonic(bytes(length))


@pytest.mark.parametrize("word_count", VALID_WORD_COUNTS)
def test_generate_mnemonic(word_count: int) -> None:
    mnemonic = generate_mnemonic(word_count)
    assert len(mnemonic.split()) == word_count
    assert is_valid_mnemonic(mnemonic)


def test_generate_mnemonic_rejects_bad_word_count() -> None:
    with pytest.raises(Bip39Error):
        generate_mnemonic(13)


_ENTROPY = st.sampled_from(VALID_ENTROPY_LENGTHS).flatmap(lambda n: st.binary(min_size=n, max_size=n))


@given(_ENTROPY)
def test_entropy_round_trip(entropy: bytes) -> None:
    mnemonic = entropy_to_mnemonic(entropy)
    assert len(mnemonic.split()) == len(entropy) * 3 // 4
    assert mnemonic_to_entropy(mnemonic) == entropy


@given(_ENTROPY, st.data())
def test_single_word_substitution_is_usually_caught(entropy: bytes, data: st.DataObject) -> None:
    words = entropy_to_mnemonic(entropy).split()
    position = data.draw(st.integers(min_value=0, max_value=len(words) - 1))
    replacement = data.draw(st.sampled_from(wordlist()).filter(lambda word: word != words[position]))
    words[position] = replacement
    mutated = " ".join(words)
    # A changed word either breaks the checksum or decodes to different entropy: never the same.
    if is_valid_mnemonic(mutated):
        assert mnemonic_to_entropy(mutated) != entropy
