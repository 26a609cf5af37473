"""Persisted channel bytes: round trip, determinism, and refusal of damaged or foreign data."""

from __future__ import annotations

import pytest

from ampere.channel.signer import InMemorySigner
from ampere.channel.twoway import (
    Channel,
    StateDecodeError,
    deserialize_state,
    serialize_state,
    signer_state_for,
    summarize,
)
from ampere.channel.twoway.codec import FORMAT_VERSION, MAGIC
from ampere.channel.twoway.state import Connection
from tests.channel.twoway.harness import open_pair


def _mid_dance_bytes() -> bytes:
    pair = open_pair(push_msat=200_000_000)
    pair.pay(pair.alice, 10_000_000)
    pair.pay(pair.bob, 3_000_000, sign=False)
    pair.deliver_one(pair.alice)
    pair.deliver_one(pair.alice)
    return serialize_state(pair.bob.state)


def test_round_trip_is_exact_and_deterministic() -> None:
    data = _mid_dance_bytes()
    state = deserialize_state(data)
    assert serialize_state(state) == data
    assert data.startswith(MAGIC) and data[len(MAGIC)] == FORMAT_VERSION


@pytest.mark.parametrize("position", [0, 5, 40, -5, -1])
def test_corruption_is_detected(position: int) -> None:
    data = bytearray(_mid_dance_bytes())
    data[position] ^= 0x01
    with pytest.raises(StateDecodeError):
        deserialize_state(bytes(data))


def test_truncation_and_unknown_versions_are_refused() -> None:
    data = _mid_dance_bytes()
    for cut in (0, 3, 10, len(data) - 1):
        with pytest.raises(StateDecodeError):
            deserialize_state(data[:cut])
    other_version = bytearray(data)
    other_version[len(MAGIC)] = FORMAT_VERSION + 1
    with pytest.raises(StateDecodeError):
        deserialize_state(bytes(other_version))


def test_restore_comes_back_disconnected_with_signer_counters() -> None:
    pair = open_pair(push_msat=200_000_000)
    for _ in range(3):
        pair.pay(pair.alice, 1_000_000)
        pair.flush()
    data = serialize_state(pair.alice.state)
    signer = InMemorySigner(pair.alice.root)
    channel = Channel.restore(data, signer)
    assert channel.state.connection is Connection.DISCONNECTED
    assert signer.state == signer_state_for(pair.alice.state)
    ledger = pair.alice.state.ledger
    assert ledger is not None
    assert signer.state.holder_commitment_number == ledger.local_commitment_number


def test_summary_balances_add_up_to_the_capacity() -> None:
    pair = open_pair(push_msat=200_000_000)
    pair.pay(pair.alice, 10_000_000)
    pair.pay(pair.bob, 3_000_000)
    pair.flush(fulfill=False)
    summary = summarize(pair.alice.state)
    assert summary.status == "normal" and summary.capacity_sat == 1_000_000
    assert sorted(h.direction for h in summary.pending_htlcs) == ["incoming", "outgoing"]
    total = summary.local_balance_msat + summary.remote_balance_msat
    assert total + sum(h.amount_msat for h in summary.pending_htlcs) == 1_000_000_000
    # Acknowledged outgoing HTLCs no longer carry their onion in the persisted state.
    ledger = pair.alice.state.ledger
    assert ledger is not None
    assert all(entry.onion == b"" for entry in ledger.htlcs if entry.offered)
    assert all(len(entry.onion) == 1366 for entry in ledger.htlcs if not entry.offered)


def test_restart_while_opening_forgets_the_channel() -> None:
    from ampere.channel.twoway import OpenChannelCommand, Phase
    from tests.channel.twoway.harness import FEERATE, make_peer

    alice = make_peer("alice")
    alice.handle(OpenChannelCommand(bytes(32), 1_000_000, 0, FEERATE))
    assert alice.persisted is not None
    restored = Channel.restore(alice.persisted, InMemorySigner(alice.root))
    assert restored.state.phase is Phase.ABORTED
