"""BOLT 4 attribution data: the Returning Errors and Returning success vectors, tampering, fuzz."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.crypto.attribution import (
    ATTRIBUTION_DATA_SIZE,
    AttributionError,
    add_attribution,
    decode_attributed_failure,
    decode_success_attribution,
)
from ampere.crypto.sphinx import SphinxError, compute_shared_secrets, forward_failure
from tests.conftest import load_vectors

VECTORS: dict[str, Any] = load_vectors("bolt04_onion.json")
RETURNING = VECTORS["returning_errors"]
SUCCESS = VECTORS["returning_success"]
PARAMS = RETURNING["parameters"]
NHOPS: int = PARAMS["nhops"]
SECRETS = compute_shared_secrets(
    bytes.fromhex(PARAMS["session_key"]), [bytes.fromhex(hop["pubkey"]) for hop in PARAMS["hops"]]
)


def _hold_time(node: int) -> int:
    # The vectors have node i report the hold time written beside pubkey[nhops-1-i] (see the vector notes).
    value: int = PARAMS["hops"][NHOPS - 1 - node]["htlc_hold_time"]
    return value


def _forward_error_trace(tamper_after: int | None = None) -> tuple[bytes, bytes]:
    """Run the failure back from node 4 to the origin; optionally flip a bit of the attribution data
    that node ``tamper_after`` hands upstream: in its own hold time, which its HMACs cover."""
    packet = bytes.fromhex(RETURNING["create"]["raw_error_packet"])
    data: bytes | None = None
    for step in RETURNING["forward"]:
        node = step["node"]
        data = add_attribution(SECRETS[node], _hold_time(node), packet, data)
        packet = forward_failure(SECRETS[node], packet)
        if node == tamper_after:
            data = data[:3] + bytes([data[3] ^ 1]) + data[4:]
    assert data is not None
    return packet, data


def test_shared_secrets_match_the_erring_node() -> None:
    assert SECRETS[PARAMS["failure_source_node"]].hex() == RETURNING["create"]["shared_secret"]


def test_each_forwarding_step_matches_the_vector() -> None:
    packet = bytes.fromhex(RETURNING["create"]["raw_error_packet"])
    data: bytes | None = None
    assert [step["node"] for step in RETURNING["forward"]] == [4, 3, 2, 1, 0]
    for step in RETURNING["forward"]:
        node = step["node"]
        data = add_attribution(SECRETS[node], _hold_time(node), packet, data)
        assert len(data) == ATTRIBUTION_DATA_SIZE
        assert data.hex() == step["attribution_data"]
        packet = forward_failure(SECRETS[node], packet)
        assert packet.hex() == step["error_packet"]


def test_origin_identifies_the_erring_node_and_hold_times() -> None:
    reason, data = _forward_error_trace()
    decoded = decode_attributed_failure(SECRETS, reason, data)
    assert decoded.erring_hop == PARAMS["failure_source_node"]
    assert decoded.failure_message == bytes.fromhex(RETURNING["create"]["encoded_failure_message"])[:320]
    assert decoded.attribution.blamed_hop is None
    assert decoded.attribution.hold_times == tuple(_hold_time(node) for node in range(NHOPS))


@pytest.mark.parametrize("tamper_after", [1, 2, 3, 4])
def test_tampered_attribution_blames_the_right_hop(tamper_after: int) -> None:
    reason, data = _forward_error_trace(tamper_after)
    decoded = decode_attributed_failure(SECRETS, reason, data)
    # The failure packet itself is intact, so the erring node is still known.
    assert decoded.erring_hop == 4
    # Upstream hops covered the corrupted bytes in their own HMACs; the tampering hop's HMAC breaks.
    assert decoded.attribution.blamed_hop == tamper_after
    assert decoded.attribution.hold_times == tuple(_hold_time(node) for node in range(tamper_after))


def test_tampered_failure_packet_is_attributed() -> None:
    packet = bytes.fromhex(RETURNING["create"]["raw_error_packet"])
    data: bytes | None = None
    for node in range(NHOPS - 1, -1, -1):
        data = add_attribution(SECRETS[node], _hold_time(node), packet, data)
        packet = forward_failure(SECRETS[node], packet)
        if node == 3:
            packet = packet[:40] + bytes([packet[40] ^ 0x80]) + packet[41:]
    assert data is not None
    decoded = decode_attributed_failure(SECRETS, packet, data)
    assert decoded.erring_hop is None
    assert decoded.failure_message is None
    assert decoded.attribution.blamed_hop == 3


def test_success_attribution_matches_the_vector() -> None:
    data: bytes | None = None
    assert [entry["node"] for entry in SUCCESS["attribution_data"]] == [4, 3, 2, 1, 0]
    for entry in SUCCESS["attribution_data"]:
        node = entry["node"]
        data = add_attribution(SECRETS[node], _hold_time(node), b"", data)
        assert data.hex() == entry["attribution_data"]
    assert data is not None
    decoded = decode_success_attribution(SECRETS, data)
    assert decoded.blamed_hop is None
    assert decoded.hold_times == (5, 4, 3, 2, 1)


def test_bad_sizes_and_hold_times_raise_typed_errors() -> None:
    with pytest.raises(AttributionError):
        add_attribution(SECRETS[0], 1, b"", bytes(ATTRIBUTION_DATA_SIZE - 1))
    with pytest.raises(AttributionError):
        add_attribution(SECRETS[0], 1 << 32, b"")
    with pytest.raises(AttributionError):
        decode_success_attribution(SECRETS, bytes(10))
    with pytest.raises(AttributionError):
        decode_success_attribution([], bytes(ATTRIBUTION_DATA_SIZE))


@given(data=st.binary(min_size=ATTRIBUTION_DATA_SIZE, max_size=ATTRIBUTION_DATA_SIZE))
def test_garbage_success_attribution_blames_the_first_hop(data: bytes) -> None:
    decoded = decode_success_attribution(SECRETS, data)
    # A 4-byte HMAC guess succeeds with probability 2**-32; random data never passes hop 0 in practice.
    assert decoded.blamed_hop == 0
    assert decoded.hold_times == ()


@given(
    reason=st.binary(min_size=0, max_size=1200),
    data=st.binary(min_size=0, max_size=ATTRIBUTION_DATA_SIZE + 2),
)
def test_garbage_failure_input_raises_only_typed_errors(reason: bytes, data: bytes) -> None:
    try:
        decoded = decode_attributed_failure(SECRETS, reason, data)
    except SphinxError:
        return
    assert decoded.erring_hop is None
    assert decoded.attribution.blamed_hop == 0
