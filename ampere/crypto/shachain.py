"""BOLT 3 per-commitment secrets: generation from a seed and the receiver's compact store.

The sender derives the secret for 48-bit index I from a 32-byte seed by walking I's bits
from the top: for every set bit B, flip bit B of the running value and hash it. Secrets are
used in descending index order, starting at 2^48 - 1, so commitment number n uses index
2^48 - 1 - n. That ordering is what lets the receiver keep only 49 secrets: a secret whose
index ends in k zero bits can regenerate every index that shares its upper 48 - k bits, so
one secret per count of trailing zeros is enough to answer for every secret revealed so far.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from ampere.crypto.keys import per_commitment_point
from ampere.errors import AmpereError

__all__ = [
    "INDEX_BITS",
    "MAX_INDEX",
    "PerCommitmentSecretGenerator",
    "ShachainEntry",
    "ShachainError",
    "ShachainStore",
    "commitment_number_to_index",
    "derive_secret",
    "generate_from_seed",
    "index_to_commitment_number",
    "where_to_put_secret",
]

INDEX_BITS = 48
MAX_INDEX = (1 << INDEX_BITS) - 1
# One bucket per possible count of trailing zeros (0..47), plus one for index 0 (the seed).
_BUCKETS = INDEX_BITS + 1

_SERIAL_VERSION = 1
_ENTRY_LEN = 1 + 6 + 32
_CHECKSUM_LEN = 4


class ShachainError(AmpereError):
    """A secret that does not belong to the chain, an index out of range, or unknown secret."""


def _check_index(index: int) -> None:
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= MAX_INDEX:
        raise ShachainError(f"shachain index must be an integer in [0, 2^48 - 1], got {index!r}")


def _check_secret(secret: bytes, what: str) -> None:
    if not isinstance(secret, bytes) or len(secret) != 32:
        raise ShachainError(f"{what} must be 32 bytes")


def derive_secret(base: bytes, bits: int, index: int) -> bytes:
    """Walk from `base` (the secret of `index` with its low `bits` bits cleared) down to `index`.

    Only the low `bits` bits of `index` are used: the caller is responsible for `base` being
    the secret of the shared prefix.
    """
    _check_secret(base, "base secret")
    if not 0 <= bits <= INDEX_BITS:
        raise ShachainError(f"bits must be in [0, {INDEX_BITS}], got {bits}")
    _check_index(index)
    value = bytearray(base)
    for bit in range(bits - 1, -1, -1):
        if (index >> bit) & 1:
            # Bit B counts from the least significant bit of the first byte, per BOLT 3.
            value[bit // 8] ^= 1 << (bit % 8)
            value = bytearray(hashlib.sha256(value).digest())
    return bytes(value)


def generate_from_seed(seed: bytes, index: int) -> bytes:
    """The per-commitment secret at 48-bit `index` (BOLT 3 `generate_from_seed`)."""
    _check_secret(seed, "seed")
    return derive_secret(seed, INDEX_BITS, index)


def where_to_put_secret(index: int) -> int:
    """The bucket of `index`: its number of trailing zero bits, 48 for index 0."""
    _check_index(index)
    if index == 0:
        return INDEX_BITS
    return (index & -index).bit_length() - 1


def commitment_number_to_index(commitment_number: int) -> int:
    """Commitment numbers count up from 0 while shachain indexes count down from 2^48 - 1."""
    if not isinstance(commitment_number, int) or not 0 <= commitment_number <= MAX_INDEX:
        raise ShachainError(f"commitment number out of range: {commitment_number!r}")
    return MAX_INDEX - commitment_number


def index_to_commitment_number(index: int) -> int:
    _check_index(index)
    return MAX_INDEX - index


@dataclass(frozen=True, slots=True, repr=False)
class PerCommitmentSecretGenerator:
    """The sender's side: per-commitment secrets and points by commitment number."""

    seed: bytes

    def __post_init__(self) -> None:
        _check_secret(self.seed, "shachain seed")

    def __repr__(self) -> str:
        # The seed unlocks every past and future revocation secret: never print it.
        return "PerCommitmentSecretGenerator(seed=<hidden>)"

    def secret(self, commitment_number: int) -> bytes:
        return generate_from_seed(self.seed, commitment_number_to_index(commitment_number))

    def point(self, commitment_number: int) -> bytes:
        return per_commitment_point(self.secret(commitment_number))


@dataclass(frozen=True, slots=True, repr=False)
class ShachainEntry:
    """One stored secret: the newest received index with a given number of trailing zeros."""

    index: int
    secret: bytes

    def __repr__(self) -> str:
        return f"ShachainEntry(index={self.index:#014x}, secret=<hidden>)"

    @property
    def bucket(self) -> int:
        return where_to_put_secret(self.index)

    def can_derive(self, index: int) -> bool:
        mask = ~((1 << self.bucket) - 1)
        return (index & mask) == self.index

    def derive(self, index: int) -> bytes:
        if not self.can_derive(index):
            raise ShachainError(f"index {index:#x} does not share the prefix of {self.index:#x}")
        return derive_secret(self.secret, self.bucket, index)


def _expected_entry_index(latest: int, bucket: int) -> int | None:
    """The index held in `bucket` after every index from MAX_INDEX down to `latest` was inserted.

    That is the smallest index >= latest with exactly `bucket` trailing zeros, if any.
    """
    if bucket == INDEX_BITS:
        return 0 if latest == 0 else None
    low = 1 << bucket
    step = low << 1
    # Candidates are low, low + step, low + 2*step, ...; take the first at or above latest.
    multiple = 0 if latest <= low else -(-(latest - low) // step)
    candidate = low + multiple * step
    return candidate if candidate <= MAX_INDEX else None


class ShachainStore:
    """The receiver's compact storage of the counterparty's revealed per-commitment secrets.

    Secrets must arrive in the order the protocol reveals them: index 2^48 - 1 first, then
    each next lower index. Every insert checks that the new secret regenerates the older
    secrets it covers; a mismatch means the peer's secrets do not come from one seed.
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: list[ShachainEntry | None] = [None] * _BUCKETS

    def __repr__(self) -> str:
        latest = self.latest_index
        shown = "none" if latest is None else f"{latest:#014x}"
        return f"ShachainStore(latest_index={shown}, entries={len(self)})"

    def __len__(self) -> int:
        return sum(1 for entry in self._entries if entry is not None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ShachainStore):
            return NotImplemented
        return self._entries == other._entries

    def entries(self) -> Iterator[ShachainEntry]:
        """The stored entries, lowest bucket first."""
        return (entry for entry in self._entries if entry is not None)

    @property
    def latest_index(self) -> int | None:
        """The most recently inserted index (the lowest one), or None when empty."""
        indexes = [entry.index for entry in self.entries()]
        return min(indexes) if indexes else None

    @property
    def next_index(self) -> int | None:
        """The index the next insert must carry; None once index 0 has been stored."""
        latest = self.latest_index
        if latest is None:
            return MAX_INDEX
        return latest - 1 if latest > 0 else None

    @property
    def next_commitment_number(self) -> int | None:
        index = self.next_index
        return None if index is None else index_to_commitment_number(index)

    def insert_secret(self, secret: bytes, index: int) -> None:
        """Store the secret for `index`, after checking it regenerates the entries it covers."""
        _check_secret(secret, "per-commitment secret")
        _check_index(index)
        expected = self.next_index
        if expected is None:
            raise ShachainError("shachain store is complete: index 0 was already stored")
        if index != expected:
            raise ShachainError(f"expected the secret for index {expected:#x}, got {index:#x}")
        bucket = where_to_put_secret(index)
        for lower in range(bucket):
            known = self._entries[lower]
            if known is None:
                continue
            if derive_secret(secret, bucket, known.index) != known.secret:
                raise ShachainError(
                    f"secret for index {index:#x} does not derive the stored secret for {known.index:#x}"
                )
        self._entries[bucket] = ShachainEntry(index, secret)

    def insert_commitment_secret(self, secret: bytes, commitment_number: int) -> None:
        self.insert_secret(secret, commitment_number_to_index(commitment_number))

    def derive_secret(self, index: int) -> bytes:
        """The secret for an already revealed `index`; ShachainError if it cannot be known."""
        _check_index(index)
        for entry in self.entries():
            if entry.can_derive(index):
                return entry.derive(index)
        raise ShachainError(f"secret for index {index:#x} has not been revealed")

    def get(self, index: int) -> bytes:
        """Alias of `derive_secret`: stored or derivable secret, else ShachainError."""
        return self.derive_secret(index)

    def secret_for_commitment(self, commitment_number: int) -> bytes:
        return self.derive_secret(commitment_number_to_index(commitment_number))

    def to_bytes(self) -> bytes:
        """version(1) | count(1) | count × (bucket(1) | index(6, BE) | secret(32)) | checksum(4).

        The checksum is the first 4 bytes of SHA256 over everything before it. The highest stored
        secret covers no other stored one, so without it a corrupted copy could go unnoticed until
        the peer's next revocation.
        """
        stored = list(self.entries())
        parts = [bytes([_SERIAL_VERSION, len(stored)])]
        for entry in stored:
            parts.append(bytes([entry.bucket]) + entry.index.to_bytes(6, "big") + entry.secret)
        body = b"".join(parts)
        return body + hashlib.sha256(body).digest()[:_CHECKSUM_LEN]

    @classmethod
    def from_bytes(cls, data: bytes) -> ShachainStore:
        """Parse `to_bytes` output, rejecting anything an in-order insert sequence cannot produce."""
        if len(data) < 2 + _CHECKSUM_LEN:
            raise ShachainError("shachain store encoding is truncated")
        data, checksum = data[:-_CHECKSUM_LEN], data[-_CHECKSUM_LEN:]
        if hashlib.sha256(data).digest()[:_CHECKSUM_LEN] != checksum:
            raise ShachainError("shachain store encoding checksum mismatch")
        if data[0] != _SERIAL_VERSION:
            raise ShachainError(f"unknown shachain store encoding version {data[0]}")
        count = data[1]
        if count > _BUCKETS:
            raise ShachainError(f"shachain store claims {count} entries, at most {_BUCKETS} exist")
        if len(data) != 2 + count * _ENTRY_LEN:
            raise ShachainError("shachain store encoding has the wrong length")
        store = cls()
        previous_bucket = -1
        for position in range(count):
            offset = 2 + position * _ENTRY_LEN
            bucket = data[offset]
            index = int.from_bytes(data[offset + 1 : offset + 7], "big")
            secret = data[offset + 7 : offset + _ENTRY_LEN]
            if bucket <= previous_bucket:
                raise ShachainError("shachain store entries are not in strictly increasing bucket order")
            if index > MAX_INDEX or where_to_put_secret(index) != bucket:
                raise ShachainError(f"index {index:#x} does not belong in bucket {bucket}")
            store._entries[bucket] = ShachainEntry(index, secret)
            previous_bucket = bucket
        store._check_consistent()
        return store

    def _check_consistent(self) -> None:
        latest = self.latest_index
        if latest is None:
            return
        for bucket, entry in enumerate(self._entries):
            expected = _expected_entry_index(latest, bucket)
            actual = None if entry is None else entry.index
            if actual != expected:
                raise ShachainError(f"bucket {bucket} is inconsistent with in-order insertion")
        stored = list(self.entries())
        for higher in stored:
            for lower in stored:
                if (
                    lower.bucket < higher.bucket
                    and higher.can_derive(lower.index)
                    and higher.derive(lower.index) != lower.secret
                ):
                    raise ShachainError(f"stored secret for {lower.index:#x} is not derivable")
