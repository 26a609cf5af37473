"""BOLT 4 route blinding: the route_blinding_test vector byte for byte (construction and unblinding), fuzz."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.crypto.blinding import (
    BlindedHop,
    BlindingError,
    blinded_privkey,
    create_blinded_path,
    decrypt_recipient_data,
    unblind_hop,
)
from ampere.crypto.sphinx import OnionHop, SphinxError, create_onion, peel_onion
from ampere.wire.bigsize import decode_bigsize
from ampere.wire.tlv import parse_tlv_records, serialize_tlv_records
from tests.conftest import load_vectors

VECTORS: dict[str, Any] = load_vectors("bolt04_onion.json")
ROUTE = VECTORS["route_blinding_test"]["data"]
PAYMENT = VECTORS["blinded_payment_onion_test"]["data"]
MESSAGE = VECTORS["blinded_onion_message_onion_test"]["data"]
NEXT_PATH_KEY_OVERRIDE = 8
ENCRYPTED_RECIPIENT_DATA = 10
CURRENT_PATH_KEY = 12
MESSAGE_ENCRYPTED_RECIPIENT_DATA = 4
MESSAGE_HELLO = 1


def _tlvs(stream: bytes) -> dict[int, bytes]:
    return {record.type: record.value for record in parse_tlv_records(stream, known=range(0, 70000))}


def _strip_length(framed_hex: str) -> bytes:
    framed = bytes.fromhex(framed_hex)
    length, offset = decode_bigsize(framed)
    assert offset + length == len(framed)
    return framed[offset:]


def _segments() -> list[list[dict[str, Any]]]:
    """The vector route is two paths joined: a hop with a session_key starts a new one."""
    segments: list[list[dict[str, Any]]] = []
    for hop in ROUTE["generate"]["hops"]:
        if "session_key" in hop:
            segments.append([])
        segments[-1].append(hop)
    return segments


def test_blinded_route_construction_matches_vector() -> None:
    built: list[BlindedHop] = []
    first_keys = []
    for segment in _segments():
        path = create_blinded_path(
            bytes.fromhex(segment[0]["session_key"]),
            [bytes.fromhex(hop["node_id"]) for hop in segment],
            [bytes.fromhex(hop["encoded_tlvs"]) for hop in segment],
        )
        assert path.first_node_id.hex() == segment[0]["node_id"]
        first_keys.append(path.first_path_key.hex())
        built.extend(path.hops)
    assert first_keys[0] == ROUTE["route"]["first_path_key"]
    # The second path starts at the key Carol's next_path_key_override hands on.
    assert first_keys[1] == ROUTE["generate"]["hops"][1]["tlvs"]["next_path_key_override"]
    expected = ROUTE["route"]["hops"]
    assert [hop.blinded_node_id.hex() for hop in built] == [hop["blinded_node_id"] for hop in expected]
    assert [hop.encrypted_data.hex() for hop in built] == [hop["encrypted_data"] for hop in expected]


def test_each_hop_unblinds_and_follows_the_override() -> None:
    path_key = bytes.fromhex(ROUTE["route"]["first_path_key"])
    generated = ROUTE["generate"]["hops"]
    for index, (hop, blinded) in enumerate(
        zip(ROUTE["unblind"]["hops"], ROUTE["route"]["hops"], strict=True)
    ):
        assert path_key.hex() == hop["path_key"]
        unblinded = unblind_hop(
            bytes.fromhex(hop["node_privkey"]), path_key, bytes.fromhex(blinded["encrypted_data"])
        )
        assert unblinded.shared_secret.hex() == generated[index]["shared_secret"]
        assert unblinded.blinded_privkey.hex() == hop["blinded_privkey"]
        assert unblinded.decrypted_data.hex() == hop["decrypted_data"]
        records = _tlvs(unblinded.decrypted_data)
        # The vector lists the computed next key even where the TLVs override it (Carol).
        assert unblinded.next_path_key.hex() == hop["next_path_key"]
        path_key = records.get(NEXT_PATH_KEY_OVERRIDE, unblinded.next_path_key)
    assert path_key.hex() == ROUTE["unblind"]["hops"][-1]["next_path_key"]


def test_wrong_node_key_cannot_decrypt() -> None:
    hop = ROUTE["unblind"]["hops"][0]
    with pytest.raises(BlindingError):
        unblind_hop(
            bytes.fromhex(ROUTE["unblind"]["hops"][1]["node_privkey"]),
            bytes.fromhex(hop["path_key"]),
            bytes.fromhex(ROUTE["route"]["hops"][0]["encrypted_data"]),
        )


def test_bad_path_inputs_raise_typed_errors() -> None:
    with pytest.raises(BlindingError):
        create_blinded_path(bytes(32), [bytes.fromhex(ROUTE["route"]["first_node_id"])], [b""])
    with pytest.raises(BlindingError):
        create_blinded_path(b"\x01" * 32, [b"\x05" * 33], [b""])
    with pytest.raises(BlindingError):
        create_blinded_path(b"\x01" * 32, [], [])


@given(path_key=st.binary(min_size=0, max_size=40), encrypted=st.binary(min_size=0, max_size=200))
def test_garbage_unblinding_input_raises_only_typed_errors(path_key: bytes, encrypted: bytes) -> None:
    with pytest.raises(SphinxError):
        unblind_hop(b"\x42" * 32, path_key, encrypted)


@given(secret=st.binary(min_size=32, max_size=32), encrypted=st.binary(min_size=0, max_size=100))
def test_garbage_encrypted_data_is_rejected(secret: bytes, encrypted: bytes) -> None:
    with pytest.raises(BlindingError):
        decrypt_recipient_data(secret, encrypted)


def test_blinded_payment_onion_matches_vector() -> None:
    generate = PAYMENT["generate"]
    hops = [
        OnionHop(bytes.fromhex(hop["pubkey"]), _strip_length(hop["payload"]))
        for hop in generate["full_route"]["hops"]
    ]
    packet, _ = create_onion(
        bytes.fromhex(generate["session_key"]), hops, bytes.fromhex(generate["associated_data"])
    )
    assert packet.hex() == generate["onion"]


def test_blinded_payment_onion_peels_hop_by_hop() -> None:
    generate = PAYMENT["generate"]
    associated_data = bytes.fromhex(generate["associated_data"])
    packet = bytes.fromhex(generate["onion"])
    path_key: bytes | None = None  # arrives in update_add_htlc, or in the introduction node's payload
    decrypt_hops = PAYMENT["decrypt"]["hops"]
    expected_payloads = [_strip_length(hop["payload"]) for hop in generate["full_route"]["hops"]]
    for index, hop in enumerate(decrypt_hops):
        assert packet.hex() == hop["onion"]
        node_secret = bytes.fromhex(hop["node_privkey"])
        if path_key is None:
            # No path key in update_add_htlc: a normal hop, or the introduction node (addressed by its
            # real id, it finds the path key in its payload).
            peeled = peel_onion(packet, node_secret, associated_data)
        else:
            peeled = peel_onion(packet, blinded_privkey(node_secret, path_key)[0], associated_data)
        assert peeled.payload == expected_payloads[index]
        records = _tlvs(peeled.payload)
        if ENCRYPTED_RECIPIENT_DATA in records:
            key = records.get(CURRENT_PATH_KEY, path_key)
            assert key is not None
            unblinded = unblind_hop(node_secret, key, records[ENCRYPTED_RECIPIENT_DATA])
            path_key = _tlvs(unblinded.decrypted_data).get(NEXT_PATH_KEY_OVERRIDE, unblinded.next_path_key)
            # Unlike route_blinding_test, this vector lists the key after the override is applied.
            assert path_key.hex() == hop["next_path_key"]
        if index + 1 < len(decrypt_hops):
            assert peeled.next_packet is not None
            packet = peeled.next_packet
        else:
            assert peeled.next_packet is None


ONION_MESSAGE_TYPE = 513


def _message_route() -> list[BlindedHop]:
    """Alice's one-hop path (secret 0x63..) joined to Dave's Bob->Dave path (started by the override)."""
    hops = MESSAGE["generate"]["hops"]
    alice = create_blinded_path(
        bytes.fromhex(hops[0]["path_key_secret"]),
        [bytes.fromhex(MESSAGE["route"]["first_node_id"])],
        [bytes.fromhex(hops[0]["encrypted_data_tlv"])],
    )
    assert alice.first_path_key.hex() == MESSAGE["route"]["first_path_key"] == hops[0]["E"]
    rest = create_blinded_path(
        bytes.fromhex(hops[1]["path_key_secret"]),
        [bytes.fromhex(hops[0]["tlvs"]["next_node_id"])]
        + [bytes.fromhex(hop["tlvs"]["next_node_id"]) for hop in hops[1:3]],
        [bytes.fromhex(hop["encrypted_data_tlv"]) for hop in hops[1:]],
    )
    assert rest.first_path_key.hex() == hops[0]["tlvs"]["next_path_key_override"]
    return [*alice.hops, *rest.hops]


def _message_payloads(route: list[BlindedHop]) -> list[bytes]:
    payloads = [
        serialize_tlv_records([(MESSAGE_ENCRYPTED_RECIPIENT_DATA, hop.encrypted_data)]) for hop in route
    ]
    hello = bytes.fromhex(MESSAGE["onionmessage"]["unknown_tag_1"])
    payloads[-1] = serialize_tlv_records(
        [(MESSAGE_HELLO, hello), (MESSAGE_ENCRYPTED_RECIPIENT_DATA, route[-1].encrypted_data)]
    )
    return payloads


def test_onion_message_route_and_packet_match_vector() -> None:
    route = _message_route()
    expected = MESSAGE["route"]["hops"]
    assert [hop.blinded_node_id.hex() for hop in route] == [hop["blinded_node_id"] for hop in expected]
    assert [hop.encrypted_data.hex() for hop in route] == [
        hop["encrypted_recipient_data"] for hop in expected
    ]
    assert [hop.blinded_node_id.hex() for hop in route] == [
        hop["blinded_node_id"] for hop in MESSAGE["generate"]["hops"]
    ]
    onion_hops = [
        OnionHop(hop.blinded_node_id, payload)
        for hop, payload in zip(route, _message_payloads(route), strict=True)
    ]
    packet, _ = create_onion(bytes.fromhex(MESSAGE["generate"]["session_key"]), onion_hops, b"")
    assert packet.hex() == MESSAGE["onionmessage"]["onion_message_packet"]


def _onion_message(path_key: bytes, packet: bytes) -> bytes:
    return ONION_MESSAGE_TYPE.to_bytes(2, "big") + path_key + len(packet).to_bytes(2, "big") + packet


def test_onion_message_peels_hop_by_hop() -> None:
    decrypt_hops = MESSAGE["decrypt"]["hops"]
    message = bytes.fromhex(decrypt_hops[0]["onion_message"])
    for index, hop in enumerate(decrypt_hops):
        assert message.hex() == hop["onion_message"]
        path_key, packet = message[2:35], message[37:]
        assert int.from_bytes(message[35:37], "big") == len(packet)
        node_secret = bytes.fromhex(hop["privkey"])
        peeled = peel_onion(packet, blinded_privkey(node_secret, path_key)[0], b"")
        records = _tlvs(peeled.payload)
        unblinded = unblind_hop(node_secret, path_key, records[MESSAGE_ENCRYPTED_RECIPIENT_DATA])
        clear = _tlvs(unblinded.decrypted_data)
        assert unblinded.decrypted_data.hex() == MESSAGE["generate"]["hops"][index]["encrypted_data_tlv"]
        if index + 1 == len(decrypt_hops):
            assert peeled.next_packet is None
            assert records[MESSAGE_HELLO] == b"hello"
            return
        assert peeled.next_packet is not None
        assert clear[4].hex() == hop["next_node_id"]
        next_path_key = clear.get(NEXT_PATH_KEY_OVERRIDE, unblinded.next_path_key)
        message = _onion_message(next_path_key, peeled.next_packet)
    raise AssertionError("the final hop never received the message")
