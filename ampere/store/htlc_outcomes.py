"""The outcome log: how each HTLC we offered ended, kept until the payment it belongs to has recorded it.

A channel forgets an offered HTLC once its removal is irrevocably committed on both sides, which can
happen a round trip after the peer's `update_fulfill_htlc` or `update_fail_htlc`; the payment record is
written by another writer. Without this log a crash between the two would leave the payment `pending`
for ever (and, for a fulfilment, without the preimage that proves it was paid). So the node writes each
outcome in the SAME store transaction as the channel state that holds the removal, and the payment side
deletes it in the same transaction as the payment's final status.

One plain key per HTLC in the `htlc_outcomes` namespace: payment_hash (32) | channel_id (32) |
htlc_id (8, big-endian), so that every outcome of one payment is one prefix scan. Values: `0x01` and
the preimage for a fulfilment; `0x02`, failure_code (u16), the length of `sha256_of_onion` (u8) and its
bytes, then the onion-encrypted `reason`, for a failure.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from ampere.channel.twoway.actions import HtlcFailed, HtlcFulfilled
from ampere.store.errors import StoreCorruptionError
from ampere.store.interface import Store, atomic
from ampere.store.repositories import CHANNEL_ID_LEN

__all__ = ["HTLC_OUTCOMES", "HtlcOutcome", "HtlcOutcomeRepository"]

HTLC_OUTCOMES = "htlc_outcomes"
_HASH_LEN = 32
_FULFILLED, _FAILED = 0x01, 0x02
_FAIL_HEAD = struct.Struct(">BHB")


@dataclass(frozen=True, slots=True)
class HtlcOutcome:
    """The outcome of one offered HTLC, with the channel it was offered on."""

    channel_id: bytes
    outcome: HtlcFulfilled | HtlcFailed


def _key(payment_hash: bytes, channel_id: bytes, htlc_id: int) -> bytes:
    if not isinstance(payment_hash, bytes) or len(payment_hash) != _HASH_LEN:
        raise ValueError(f"payment_hash must be {_HASH_LEN} bytes")
    if not isinstance(channel_id, bytes) or len(channel_id) != CHANNEL_ID_LEN:
        raise ValueError(f"channel_id must be {CHANNEL_ID_LEN} bytes")
    if not 0 <= htlc_id < 1 << 64:
        raise ValueError(f"htlc id out of range: {htlc_id}")
    return payment_hash + channel_id + htlc_id.to_bytes(8, "big")


def _encode(outcome: HtlcFulfilled | HtlcFailed) -> bytes:
    if isinstance(outcome, HtlcFulfilled):
        if hashlib.sha256(outcome.payment_preimage).digest() != outcome.payment_hash:
            raise ValueError("the preimage does not hash to the payment hash")
        return bytes([_FULFILLED]) + outcome.payment_preimage
    onion_hash = outcome.sha256_of_onion
    if len(onion_hash) > 255 or not 0 <= outcome.failure_code <= 0xFFFF:
        raise ValueError("failure_code or sha256_of_onion out of range")
    return _FAIL_HEAD.pack(_FAILED, outcome.failure_code, len(onion_hash)) + onion_hash + outcome.reason


def _decode(key: bytes, value: bytes) -> HtlcOutcome:
    payment_hash = key[:_HASH_LEN]
    channel_id = key[_HASH_LEN : _HASH_LEN + CHANNEL_ID_LEN]
    htlc_id = int.from_bytes(key[_HASH_LEN + CHANNEL_ID_LEN :], "big")
    where = f"HTLC outcome {channel_id.hex()}/{htlc_id}"
    if len(key) != _HASH_LEN + CHANNEL_ID_LEN + 8 or not value:
        raise StoreCorruptionError(f"{where}: malformed record")
    if value[0] == _FULFILLED:
        preimage = value[1:]
        if len(preimage) != 32 or hashlib.sha256(preimage).digest() != payment_hash:
            raise StoreCorruptionError(f"{where}: the stored preimage does not hash to the payment hash")
        return HtlcOutcome(channel_id, HtlcFulfilled(htlc_id, payment_hash, preimage))
    if value[0] == _FAILED and len(value) >= _FAIL_HEAD.size:
        _, failure_code, onion_hash_len = _FAIL_HEAD.unpack_from(value)
        onion_hash = value[_FAIL_HEAD.size : _FAIL_HEAD.size + onion_hash_len]
        if len(onion_hash) == onion_hash_len:
            reason = value[_FAIL_HEAD.size + onion_hash_len :]
            return HtlcOutcome(
                channel_id, HtlcFailed(htlc_id, payment_hash, reason, failure_code, onion_hash)
            )
    raise StoreCorruptionError(f"{where}: unknown or truncated record")


class HtlcOutcomeRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def record(self, channel_id: bytes, outcome: HtlcFulfilled | HtlcFailed) -> None:
        """Store the outcome (joins the caller's transaction); a repeat replaces it with the same facts."""
        self._store.put(
            HTLC_OUTCOMES, _key(outcome.payment_hash, channel_id, outcome.htlc_id), _encode(outcome)
        )

    def for_payment(self, payment_hash: bytes) -> list[HtlcOutcome]:
        """Every outcome on record for HTLCs of `payment_hash`, on any channel."""
        if not isinstance(payment_hash, bytes) or len(payment_hash) != _HASH_LEN:
            raise ValueError(f"payment_hash must be {_HASH_LEN} bytes")
        return [_decode(key, value) for key, value in self._store.items(HTLC_OUTCOMES, payment_hash)]

    def payment_hashes(self) -> list[bytes]:
        """The payment hashes with at least one outcome on record, in bytewise order."""
        hashes = {key[:_HASH_LEN] for key in self._store.list_keys(HTLC_OUTCOMES)}
        return sorted(hashes)

    def forget(self, payment_hash: bytes) -> int:
        """Drop the outcomes of a payment whose final status is stored; returns how many."""
        if not isinstance(payment_hash, bytes) or len(payment_hash) != _HASH_LEN:
            raise ValueError(f"payment_hash must be {_HASH_LEN} bytes")
        with atomic(self._store):
            keys = self._store.list_keys(HTLC_OUTCOMES, payment_hash)
            for key in keys:
                self._store.delete(HTLC_OUTCOMES, key)
        return len(keys)
