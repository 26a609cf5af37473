"""BIP39 mnemonic sentences (English wordlist): entropy <-> words with checksum, and the seed.

A mnemonic encodes ENT bits of entropy plus ENT/32 checksum bits (the top bits of
SHA256(entropy)) as 11-bit word indexes. The seed is PBKDF2-HMAC-SHA512 over the NFKD
sentence with salt "mnemonic" + passphrase and 2048 rounds; it is then a BIP32 seed.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from functools import cache
from importlib import resources

from ampere.bitcoin.errors import BitcoinError

__all__ = [
    "VALID_ENTROPY_LENGTHS",
    "VALID_WORD_COUNTS",
    "Bip39Error",
    "entropy_to_mnemonic",
    "generate_mnemonic",
    "is_valid_mnemonic",
    "mnemonic_to_entropy",
    "mnemonic_to_seed",
    "wordlist",
]

VALID_ENTROPY_LENGTHS = (16, 20, 24, 28, 32)
VALID_WORD_COUNTS = (12, 15, 18, 21, 24)
_WORDLIST_SIZE = 2048
_BITS_PER_WORD = 11
_PBKDF2_ROUNDS = 2048
# SHA256 of the wordlist file as published in bitcoin/bips (bip-0039/english.txt): a changed or
# truncated copy would silently map the same words to different keys.
_WORDLIST_SHA256 = "2f5eed53a4727b4bf8880d8f3f199efc90e58503646d9ff8eff3a2ed3b24dbda"


class Bip39Error(BitcoinError):
    """Entropy of an unsupported size, or a sentence that is not a valid English mnemonic."""


@cache
def wordlist() -> tuple[str, ...]:
    """The 2048-word BIP39 English list, in index order."""
    raw = resources.files("ampere.bitcoin").joinpath("bip39_english.txt").read_bytes()
    if hashlib.sha256(raw).hexdigest() != _WORDLIST_SHA256:
        raise Bip39Error("bundled BIP39 English wordlist is corrupted")
    words = tuple(raw.decode("ascii").split())
    if len(words) != _WORDLIST_SIZE:
        raise Bip39Error("bundled BIP39 English wordlist does not have 2048 words")
    return words


@cache
def _word_index() -> dict[str, int]:
    return {word: index for index, word in enumerate(wordlist())}


def _words(mnemonic: str) -> list[str]:
    # NFKD first so that composed and decomposed input compare equal, then any whitespace run
    # counts as one separator.
    return unicodedata.normalize("NFKD", mnemonic).split()


def entropy_to_mnemonic(entropy: bytes) -> str:
    """The mnemonic of 16, 20, 24, 28 or 32 bytes of entropy (12 to 24 words)."""
    if len(entropy) not in VALID_ENTROPY_LENGTHS:
        raise Bip39Error(f"entropy of {len(entropy)} bytes, must be one of {VALID_ENTROPY_LENGTHS}")
    entropy_bits = len(entropy) * 8
    checksum_bits = entropy_bits // 32
    checksum = hashlib.sha256(entropy).digest()[0] >> (8 - checksum_bits)
    value = (int.from_bytes(entropy, "big") << checksum_bits) | checksum
    word_count = (entropy_bits + checksum_bits) // _BITS_PER_WORD
    words = wordlist()
    indexes = [
        (value >> (_BITS_PER_WORD * (word_count - 1 - position))) & (_WORDLIST_SIZE - 1)
        for position in range(word_count)
    ]
    return " ".join(words[index] for index in indexes)


def mnemonic_to_entropy(mnemonic: str) -> bytes:
    """The entropy a mnemonic encodes; Bip39Error on an unknown word, bad length or checksum."""
    words = _words(mnemonic)
    if len(words) not in VALID_WORD_COUNTS:
        raise Bip39Error(f"mnemonic of {len(words)} words, must be one of {VALID_WORD_COUNTS}")
    index = _word_index()
    value = 0
    for position, word in enumerate(words, start=1):
        word_value = index.get(word)
        if word_value is None:
            raise Bip39Error(f"word {position} is not in the BIP39 English wordlist")
        value = (value << _BITS_PER_WORD) | word_value
    total_bits = len(words) * _BITS_PER_WORD
    checksum_bits = total_bits // 33
    entropy_bits = total_bits - checksum_bits
    entropy = (value >> checksum_bits).to_bytes(entropy_bits // 8, "big")
    expected = hashlib.sha256(entropy).digest()[0] >> (8 - checksum_bits)
    if value & ((1 << checksum_bits) - 1) != expected:
        raise Bip39Error("mnemonic checksum mismatch")
    return entropy


def is_valid_mnemonic(mnemonic: str) -> bool:
    try:
        mnemonic_to_entropy(mnemonic)
    except Bip39Error:
        return False
    return True


def mnemonic_to_seed(mnemonic: str, passphrase: str = "", *, validate: bool = True) -> bytes:
    """The 64-byte BIP39 seed.

    The sentence is NFKD-normalized and its words rejoined with single spaces, so stray
    whitespace cannot change the seed. `validate=False` skips the wordlist and checksum check,
    which BIP39 permits, for sentences made by other tools or with other wordlists.
    """
    if validate:
        mnemonic_to_entropy(mnemonic)
    sentence = " ".join(_words(mnemonic))
    salt = "mnemonic" + unicodedata.normalize("NFKD", passphrase)
    return hashlib.pbkdf2_hmac("sha512", sentence.encode("utf-8"), salt.encode("utf-8"), _PBKDF2_ROUNDS)


def generate_mnemonic(word_count: int = 24) -> str:
    """A fresh mnemonic from the OS's CSPRNG."""
    if word_count not in VALID_WORD_COUNTS:
        raise Bip39Error(f"word count {word_count}, must be one of {VALID_WORD_COUNTS}")
    entropy_bytes = word_count * _BITS_PER_WORD * 32 // 33 // 8
    return entropy_to_mnemonic(secrets.token_bytes(entropy_bytes))
