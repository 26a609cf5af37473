"""Typed repositories over a `Store` for the node's channel-side data.

Each repository owns its namespaces (listed below so that no two collide). Methods that touch several
keys run in `atomic(store)`, so they also compose into a transaction the caller already has open.
Invoices and payments live in `ampere.store.payments`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ampere.store._codec import RecordReader, encode_record
from ampere.store.errors import ChannelArchivedError, RecordNotFoundError, StoreCorruptionError
from ampere.store.interface import Revisioned, Store, atomic

CHANNEL_STATE = "channel_state"
CHANNEL_ARCHIVE = "channel_archive"
REVOCATION_SECRETS = "revocation_secrets"
HTLC_PREIMAGES = "htlc_preimages"
PEERS = "peers"
# Taken by `ampere.store.payments`.
INVOICES, INVOICE_LABELS, INVOICE_STATUS = "invoices", "invoice_labels", "invoice_status"
PAYMENTS, PAYMENT_LABELS, PAYMENT_STATUS = "payments", "payment_labels", "payment_status"
# Reserved for the repositories the node issues add.
MICRO_CHANNELS = "micro_channels"
WALLET = "wallet"
ONCHAIN_RESOLUTIONS = "onchain_resolutions"

CHANNEL_ID_LEN = 32
NODE_ID_LEN = 33


def _check_len(name: str, value: bytes, length: int) -> None:
    if not isinstance(value, bytes) or len(value) != length:
        raise ValueError(f"{name} must be {length} bytes")


@dataclass(frozen=True)
class ChannelState:
    """The latest durable state of one channel: an opaque blob the channel layer serializes."""

    channel_id: bytes
    revision: int
    blob: bytes


class ChannelStateRepository:
    """Channel states keyed by channel id, with a revision that only moves forward.

    `put_state` returns after the commit is durable; the node signs or revokes only then. A writer holding
    an old state (a second process, a restored backup) gets `StaleRevisionError` instead of overwriting.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def put_state(self, channel_id: bytes, revision: int, blob: bytes) -> None:
        _check_len("channel_id", channel_id, CHANNEL_ID_LEN)
        with atomic(self._store):
            if self._store.get(CHANNEL_ARCHIVE, channel_id) is not None:
                raise ChannelArchivedError(f"channel {channel_id.hex()} is closed and archived")
            self._store.put_revisioned(CHANNEL_STATE, channel_id, revision, blob)

    def get_latest(self, channel_id: bytes) -> ChannelState | None:
        _check_len("channel_id", channel_id, CHANNEL_ID_LEN)
        found = self._store.get_revisioned(CHANNEL_STATE, channel_id)
        return None if found is None else ChannelState(channel_id, found.revision, found.value)

    def list_channel_ids(self) -> list[bytes]:
        """Live (not archived) channels, in byte order."""
        return self._store.list_keys(CHANNEL_STATE)

    def load_all(self) -> list[ChannelState]:
        """Every live channel's latest state, for start-up."""
        states = []
        for channel_id in self.list_channel_ids():
            state = self.get_latest(channel_id)
            if state is not None:  # archived between the listing and the read
                states.append(state)
        return states

    def archive(self, channel_id: bytes) -> ChannelState:
        """Move a closed channel's last state out of the live set, keeping it for `listclosed` and audits."""
        _check_len("channel_id", channel_id, CHANNEL_ID_LEN)
        with atomic(self._store):
            found = self._store.get_revisioned(CHANNEL_STATE, channel_id)
            if found is None:
                raise RecordNotFoundError(f"no live state for channel {channel_id.hex()}")
            self._store.put_revisioned(CHANNEL_ARCHIVE, channel_id, found.revision, found.value)
            self._store.delete(CHANNEL_STATE, channel_id)
        return ChannelState(channel_id, found.revision, found.value)

    def get_archived(self, channel_id: bytes) -> ChannelState | None:
        _check_len("channel_id", channel_id, CHANNEL_ID_LEN)
        found = self._store.get_revisioned(CHANNEL_ARCHIVE, channel_id)
        return None if found is None else ChannelState(channel_id, found.revision, found.value)

    def list_archived_ids(self) -> list[bytes]:
        return self._store.list_keys(CHANNEL_ARCHIVE)


class RevocationSecretRepository:
    """The peer's revocation secrets per channel, as the shachain blob `ampere.crypto.shachain` writes.

    Revisioned (the caller passes e.g. the number of secrets received) because losing a secret by an
    out-of-order write would leave a breach by that commitment unpunishable.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def put(self, channel_id: bytes, revision: int, blob: bytes) -> None:
        _check_len("channel_id", channel_id, CHANNEL_ID_LEN)
        self._store.put_revisioned(REVOCATION_SECRETS, channel_id, revision, blob)

    def get(self, channel_id: bytes) -> Revisioned | None:
        _check_len("channel_id", channel_id, CHANNEL_ID_LEN)
        return self._store.get_revisioned(REVOCATION_SECRETS, channel_id)

    def delete(self, channel_id: bytes) -> bool:
        _check_len("channel_id", channel_id, CHANNEL_ID_LEN)
        return self._store.delete(REVOCATION_SECRETS, channel_id)


class PreimageRepository:
    """Preimages of HTLCs per channel (ours, and those learned from peers), keyed by payment hash."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def add(self, channel_id: bytes, preimage: bytes) -> bytes:
        """Record `preimage` (idempotent) and return its payment hash."""
        _check_len("channel_id", channel_id, CHANNEL_ID_LEN)
        _check_len("preimage", preimage, 32)
        payment_hash = hashlib.sha256(preimage).digest()
        self._store.put(HTLC_PREIMAGES, channel_id + payment_hash, preimage)
        return payment_hash

    def get(self, channel_id: bytes, payment_hash: bytes) -> bytes | None:
        _check_len("channel_id", channel_id, CHANNEL_ID_LEN)
        _check_len("payment_hash", payment_hash, 32)
        preimage = self._store.get(HTLC_PREIMAGES, channel_id + payment_hash)
        if preimage is not None and hashlib.sha256(preimage).digest() != payment_hash:
            raise StoreCorruptionError(f"stored preimage does not hash to {payment_hash.hex()}")
        return preimage

    def for_channel(self, channel_id: bytes) -> dict[bytes, bytes]:
        """payment_hash -> preimage for one channel."""
        _check_len("channel_id", channel_id, CHANNEL_ID_LEN)
        return {key[CHANNEL_ID_LEN:]: value for key, value in self._store.items(HTLC_PREIMAGES, channel_id)}

    def forget_channel(self, channel_id: bytes) -> int:
        """Drop a channel's preimages once all its outputs are resolved; returns how many."""
        _check_len("channel_id", channel_id, CHANNEL_ID_LEN)
        with atomic(self._store):
            keys = self._store.list_keys(HTLC_PREIMAGES, channel_id)
            for key in keys:
                self._store.delete(HTLC_PREIMAGES, key)
        return len(keys)


@dataclass(frozen=True)
class PeerRecord:
    """A peer we connect to: its node id, its last known `host:port`, and its init features."""

    node_id: bytes
    address: str
    features: bytes = b""

    def __post_init__(self) -> None:
        _check_len("node_id", self.node_id, NODE_ID_LEN)
        if not isinstance(self.address, str):
            raise ValueError("address must be a string")

    def to_bytes(self) -> bytes:
        return encode_record(
            {"node_id": self.node_id.hex(), "address": self.address, "features": self.features.hex()}
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> PeerRecord:
        reader = RecordReader(data, "peer record")
        try:
            features = reader.opt_hex("features") or b""
            return cls(reader.req_hex("node_id"), reader.req_str("address"), features)
        except ValueError as exc:
            raise reader.corrupt(str(exc)) from exc


class PeerRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def put(self, peer: PeerRecord) -> None:
        self._store.put(PEERS, peer.node_id, peer.to_bytes())

    def get(self, node_id: bytes) -> PeerRecord | None:
        _check_len("node_id", node_id, NODE_ID_LEN)
        data = self._store.get(PEERS, node_id)
        return None if data is None else PeerRecord.from_bytes(data)

    def list_all(self) -> list[PeerRecord]:
        return [PeerRecord.from_bytes(value) for _, value in self._store.items(PEERS)]

    def delete(self, node_id: bytes) -> bool:
        _check_len("node_id", node_id, NODE_ID_LEN)
        return self._store.delete(PEERS, node_id)
