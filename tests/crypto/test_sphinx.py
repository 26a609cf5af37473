"""BOLT 4 Sphinx: the official onion and error vectors byte for byte, plus fuzzing of untrusted packets."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.crypto.sphinx import (
    INVALID_ONION_HMAC,
    INVALID_ONION_KEY,
    INVALID_ONION_VERSION,
    ONION_PACKET_SIZE,
    BadOnionError,
    OnionHop,
    SphinxError,
    compute_shared_secrets,
    create_failure,
    create_onion,
    decode_failure,
    derive_key,
    forward_failure,
    generate_stream,
    peel_onion,
)
from ampere.wire.bigsize import decode_bigsize
from tests.conftest import load_vectors

VECTORS: dict[str, Any] = load_vectors("bolt04_onion.json")
ONION = VECTORS["onion_test"]["data"]
ERROR = VECTORS["onion_error_test"]["data"]
RETURNING = VECTORS["returning_errors"]


def _strip_length(framed_hex: str) -> bytes:
    framed = bytes.fromhex(framed_hex)
    length, offset = decode_bigsize(framed)
    assert offset + length == len(framed)
    return framed[offset:]


def _onion_hops() -> list[OnionHop]:
    return [
        OnionHop(bytes.fromhex(h["pubkey"]), _strip_length(h["payload"])) for h in ONION["generate"]["hops"]
    ]


def _build_vector_onion() -> tuple[bytes, tuple[bytes, ...]]:
    generate = ONION["generate"]
    return create_onion(
        bytes.fromhex(generate["session_key"]), _onion_hops(), bytes.fromhex(generate["associated_data"])
    )


def test_onion_creation_matches_vector() -> None:
    packet, secrets = _build_vector_onion()
    assert len(packet) == ONION_PACKET_SIZE
    assert packet.hex() == ONION["onion"]
    assert len(secrets) == 5


def test_each_hop_peels_its_payload_and_the_next_packet() -> None:
    associated_data = bytes.fromhex(ONION["generate"]["associated_data"])
    packet = bytes.fromhex(ONION["onion"])
    _, secrets = _build_vector_onion()
    hops = _onion_hops()
    for index, key_hex in enumerate(ONION["decode"]):
        peeled = peel_onion(packet, bytes.fromhex(key_hex), associated_data)
        assert peeled.payload == hops[index].payload
        assert peeled.shared_secret == secrets[index]
        if index < len(hops) - 1:
            assert peeled.next_packet is not None
            packet = peeled.next_packet
        else:
            assert peeled.next_packet is None


def test_shared_secrets_match_error_vector() -> None:
    generate = ERROR["generate"]
    secrets = compute_shared_secrets(
        bytes.fromhex(generate["session_key"]), [bytes.fromhex(h["pubkey"]) for h in generate["hops"]]
    )
    assert [s.hex() for s in secrets] == [h["hop_shared_secret"] for h in generate["hops"]]
    assert [derive_key(b"ammag", s).hex() for s in secrets] == [h["ammag_key"] for h in generate["hops"]]


def test_legacy_error_vector_wraps_back_and_decodes() -> None:
    generate = ERROR["generate"]
    secrets = [bytes.fromhex(h["hop_shared_secret"]) for h in generate["hops"]]
    message = bytes.fromhex(generate["failure_message"])
    reason = create_failure(secrets[4], message, pad_to=256)
    for secret in reversed(secrets[:4]):
        reason = forward_failure(secret, reason)
    assert reason.hex() == ERROR["errorpacket"]
    assert decode_failure(secrets, reason) == (4, message)


def test_returning_errors_trace_byte_for_byte() -> None:
    create = RETURNING["create"]
    message = bytes.fromhex(create["encoded_failure_message"])
    failure_len = int.from_bytes(bytes.fromhex(create["payload"])[:2], "big")
    failure = message[:failure_len]
    secret = bytes.fromhex(create["shared_secret"])
    assert derive_key(b"um", secret).hex() == create["um_key"]
    reason = create_failure(secret, failure)
    steps = RETURNING["forward"]
    assert reason.hex() == steps[0]["error_packet"]
    assert forward_failure(secret, reason).hex() == create["raw_error_packet"]
    for step in steps[1:]:
        step_secret = bytes.fromhex(step["shared_secret"])
        assert derive_key(b"ammag", step_secret).hex() == step["ammag_key"]
        assert generate_stream(derive_key(b"ammag", step_secret), len(reason)).hex() == step["stream"]
        reason = forward_failure(step_secret, reason)
        assert reason.hex() == step["error_packet"]
    origin_order = [bytes.fromhex(step["shared_secret"]) for step in reversed(steps)]
    assert decode_failure(origin_order, reason) == (4, failure)


def test_undecodable_reason_is_typed_error() -> None:
    secrets = [bytes.fromhex(h["hop_shared_secret"]) for h in ERROR["generate"]["hops"]]
    with pytest.raises(SphinxError):
        decode_failure(secrets, bytes(292))


def test_bad_version_hmac_and_key_give_malformed_codes() -> None:
    associated_data = bytes.fromhex(ONION["generate"]["associated_data"])
    packet = bytes.fromhex(ONION["onion"])
    key = bytes.fromhex(ONION["decode"][0])
    cases = [
        (b"\x01" + packet[1:], INVALID_ONION_VERSION),
        (packet[:-1] + bytes([packet[-1] ^ 1]), INVALID_ONION_HMAC),
        (packet[:1] + b"\x05" + packet[2:], INVALID_ONION_KEY),
    ]
    for bad, code in cases:
        with pytest.raises(BadOnionError) as caught:
            peel_onion(bad, key, associated_data)
        assert caught.value.failure_code == code
    with pytest.raises(BadOnionError):
        peel_onion(packet, key, b"other associated data")


def test_too_many_payload_bytes_rejected() -> None:
    hop = OnionHop(bytes.fromhex(ONION["generate"]["hops"][0]["pubkey"]), bytes(1300))
    with pytest.raises(SphinxError):
        create_onion(bytes(31) + b"\x01", [hop], b"")


@given(st.binary(min_size=0, max_size=ONION_PACKET_SIZE + 2))
def test_random_packets_raise_only_sphinx_errors(data: bytes) -> None:
    key = bytes.fromhex(ONION["decode"][0])
    with pytest.raises(SphinxError):
        peel_onion(data, key, b"")


@given(st.integers(min_value=0, max_value=ONION_PACKET_SIZE - 1), st.integers(min_value=1, max_value=255))
def test_mutated_vector_packet_is_rejected(position: int, flip: int) -> None:
    associated_data = bytes.fromhex(ONION["generate"]["associated_data"])
    packet = bytearray(bytes.fromhex(ONION["onion"]))
    packet[position] ^= flip
    with pytest.raises(BadOnionError):
        peel_onion(bytes(packet), bytes.fromhex(ONION["decode"][0]), associated_data)
