"""`ChannelState` to bytes and back (see `codec` for the format)."""

from __future__ import annotations

from ampere.channel.twoway.codec import StateDecodeError, decode_value, encode_value
from ampere.channel.twoway.state import ChannelState

__all__ = ["StateDecodeError", "deserialize_state", "serialize_state"]


def serialize_state(state: ChannelState) -> bytes:
    return encode_value(state, ChannelState)


def deserialize_state(data: bytes) -> ChannelState:
    state = decode_value(data, ChannelState)
    if not isinstance(state, ChannelState):
        raise StateDecodeError("persisted value is not a channel state")
    return state
