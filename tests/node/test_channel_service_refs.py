"""Channel references from the outside (RPC/CLI `CHANNEL` arguments): parsed exactly or refused clearly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.node.channel_chain import format_short_channel_id, short_channel_id
from ampere.node.channel_open import parse_channel_ref
from ampere.node.errors import InvalidArgumentError


@given(st.integers(0, (1 << 24) - 1), st.integers(0, (1 << 24) - 1), st.integers(0, (1 << 16) - 1))
def test_short_channel_id_round_trips(height: int, tx_index: int, output: int) -> None:
    scid = short_channel_id(height, tx_index, output)
    assert parse_channel_ref(format_short_channel_id(scid)) == ("scid", scid)


@given(st.binary(min_size=32, max_size=32))
def test_channel_id_hex_parses(channel_id: bytes) -> None:
    assert parse_channel_ref(channel_id.hex()) == ("id", channel_id)
    assert parse_channel_ref(channel_id.hex().upper()) == ("id", channel_id)


@given(st.text(max_size=80))
def test_anything_else_is_refused_with_a_typed_error(text: str) -> None:
    try:
        kind, value = parse_channel_ref(text)
    except InvalidArgumentError as exc:
        assert exc.param == "channel"
        return
    if kind == "id":
        assert isinstance(value, bytes) and len(value) == 32
    else:
        assert kind == "scid" and isinstance(value, int) and 0 <= value < 1 << 64


@pytest.mark.parametrize("text", ["", "1x2", "1x2x3x4", "16777216x0x0", "0x0x65536", "zz" * 32, "ab" * 31])
def test_malformed_references(text: str) -> None:
    with pytest.raises(InvalidArgumentError):
        parse_channel_ref(text)
