"""The node's registry of its channels: the one place `getinfo`, `listpeers` and the RPC layer look.

The channel layers (micropayment and two-way channels) register each channel they load at start or
open later, and unregister it once it is closed and archived. The registry only indexes; each
channel object keeps its own state and persistence.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["ChannelRegistry", "RegisteredChannel"]


class RegisteredChannel(Protocol):
    """What the registry needs of a channel, whatever kind it is."""

    @property
    def channel_id(self) -> bytes: ...

    @property
    def peer_id(self) -> bytes: ...

    @property
    def is_active(self) -> bool:
        """Counts in `num_channels`: opening or open, not yet closed."""
        ...


class ChannelRegistry:
    def __init__(self) -> None:
        self._channels: dict[bytes, RegisteredChannel] = {}

    def register(self, channel: RegisteredChannel) -> None:
        existing = self._channels.get(channel.channel_id)
        if existing is not None and existing is not channel:
            raise ValueError(f"channel {channel.channel_id.hex()} is already registered")
        self._channels[channel.channel_id] = channel

    def unregister(self, channel_id: bytes) -> None:
        self._channels.pop(channel_id, None)

    def get(self, channel_id: bytes) -> RegisteredChannel | None:
        return self._channels.get(channel_id)

    def channels(self) -> list[RegisteredChannel]:
        return list(self._channels.values())

    def for_peer(self, peer_id: bytes) -> list[RegisteredChannel]:
        return [channel for channel in self._channels.values() if channel.peer_id == peer_id]

    @property
    def num_active(self) -> int:
        return sum(1 for channel in self._channels.values() if channel.is_active)
