"""The revocation log: for every commitment the peer revoked, what punishing it needs.

Append-only, one plain key per (channel id, commitment number) in the `revocation_log`
namespace; the value is `CommitmentRevoked.to_bytes()` (31 bytes plus 53 per HTLC). The
node appends the record a `revoke_and_ack` produced in the same store transaction as the
channel state that follows it (`atomic` lets `append` join the caller's transaction), so a
revocation we acknowledged is never missing from the log. Records are never rewritten: a second
append of the same number must carry the same bytes.
"""

from __future__ import annotations

from ampere.channel.twoway.actions import CommitmentRevoked
from ampere.store.errors import DuplicateRecordError, StoreCorruptionError
from ampere.store.interface import Store, atomic
from ampere.store.repositories import CHANNEL_ID_LEN

__all__ = ["REVOCATION_LOG", "RevocationLogRepository"]

REVOCATION_LOG = "revocation_log"
_NUMBER_LEN = 8  # commitment numbers are 48-bit; 8 big-endian bytes keep keys in numeric order


def _key(channel_id: bytes, commitment_number: int) -> bytes:
    if not isinstance(channel_id, bytes) or len(channel_id) != CHANNEL_ID_LEN:
        raise ValueError(f"channel_id must be {CHANNEL_ID_LEN} bytes")
    if not 0 <= commitment_number < 1 << 48:
        raise ValueError(f"commitment number out of range: {commitment_number}")
    return channel_id + commitment_number.to_bytes(_NUMBER_LEN, "big")


class RevocationLogRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def append(self, record: CommitmentRevoked) -> None:
        """Store the record; idempotent for identical bytes, `DuplicateRecordError` otherwise."""
        key = _key(record.channel_id, record.commitment_number)
        data = record.to_bytes()
        with atomic(self._store):
            found = self._store.get(REVOCATION_LOG, key)
            if found is not None:
                if found == data:
                    return
                raise DuplicateRecordError(
                    f"channel {record.channel_id.hex()}: commitment {record.commitment_number} "
                    "is already in the revocation log with different content"
                )
            self._store.put(REVOCATION_LOG, key, data)

    def get(self, channel_id: bytes, commitment_number: int) -> CommitmentRevoked | None:
        data = self._store.get(REVOCATION_LOG, _key(channel_id, commitment_number))
        if data is None:
            return None
        try:
            return CommitmentRevoked.from_bytes(channel_id, data)
        except ValueError as exc:
            raise StoreCorruptionError(
                f"revocation log of {channel_id.hex()} #{commitment_number}: {exc}"
            ) from exc

    def commitment_numbers(self, channel_id: bytes) -> list[int]:
        """The revoked numbers on record for the channel, ascending."""
        keys = self._store.list_keys(REVOCATION_LOG, _key(channel_id, 0)[:CHANNEL_ID_LEN])
        return [int.from_bytes(key[CHANNEL_ID_LEN:], "big") for key in keys]

    def delete_channel(self, channel_id: bytes) -> int:
        """Forget a channel's log once it is closed and resolved; returns how many were removed."""
        numbers = self.commitment_numbers(channel_id)
        with atomic(self._store):
            for number in numbers:
                self._store.delete(REVOCATION_LOG, _key(channel_id, number))
        return len(numbers)
