"""Micropayment channels' states: the latest `Persist` blob of each channel, with its peer.

One revisioned key per channel in the `micro_channels` namespace; the value is the peer's node id
(33 bytes) followed by the blob the machine wrote. The revision is the machine's own, so a writer
holding an older state (a second process, a restored backup) is refused with `StaleRevisionError`
instead of rolling a channel back.
"""

from __future__ import annotations

from ampere.channel.micropayment.manager import StoredChannel
from ampere.store.errors import StoreCorruptionError
from ampere.store.interface import Store
from ampere.store.repositories import CHANNEL_ID_LEN, MICRO_CHANNELS, NODE_ID_LEN

__all__ = ["MicroChannelRepository"]


def _check_channel_id(channel_id: bytes) -> None:
    if not isinstance(channel_id, bytes) or len(channel_id) != CHANNEL_ID_LEN:
        raise ValueError(f"channel_id must be {CHANNEL_ID_LEN} bytes")


class MicroChannelRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def put(self, record: StoredChannel) -> None:
        """Store the channel's state at `record.revision`; returns once durable."""
        _check_channel_id(record.channel_id)
        if len(record.peer_id) != NODE_ID_LEN:
            raise ValueError(f"peer_id must be {NODE_ID_LEN} bytes")
        self._store.put_revisioned(
            MICRO_CHANNELS, record.channel_id, record.revision, record.peer_id + record.blob
        )

    def get(self, channel_id: bytes) -> StoredChannel | None:
        _check_channel_id(channel_id)
        found = self._store.get_revisioned(MICRO_CHANNELS, channel_id)
        if found is None:
            return None
        if len(found.value) <= NODE_ID_LEN:
            raise StoreCorruptionError(f"micro channel {channel_id.hex()}: record too short")
        return StoredChannel(channel_id, found.value[:NODE_ID_LEN], found.revision, found.value[NODE_ID_LEN:])

    def list_channel_ids(self) -> list[bytes]:
        return self._store.list_keys(MICRO_CHANNELS)

    def load_all(self) -> list[StoredChannel]:
        """Every stored channel, in channel id order, for `MicropaymentManager.restore` at start-up."""
        records = []
        for channel_id in self.list_channel_ids():
            record = self.get(channel_id)
            if record is not None:  # deleted between the listing and the read
                records.append(record)
        return records

    def delete(self, channel_id: bytes) -> bool:
        """Drop a channel the manager forgot (a negotiation that never reached the chain)."""
        _check_channel_id(channel_id)
        return self._store.delete(MICRO_CHANNELS, channel_id)
