"""BOLT #4 Sphinx onion construction, peeling, and failure-message obfuscation.

Pure functions over bytes: the payment layer decides what goes into each hop
payload (``ampere.wire.onion``); this module only wraps and unwraps layers.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import coincurve
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from ampere.errors import AmpereError

ONION_VERSION = 0
ROUTING_INFO_SIZE = 1300
HMAC_SIZE = 32
ONION_PACKET_SIZE = 1 + 33 + ROUTING_INFO_SIZE + HMAC_SIZE  # 1366
# Current BOLT 4 pads failure_len + pad_len to 1024 so every error looks alike; 256 was the legacy size.
FAILURE_PAD_TARGET = 1024

_BADONION = 0x8000
_PERM = 0x4000
INVALID_ONION_VERSION = _BADONION | _PERM | 4
INVALID_ONION_HMAC = _BADONION | _PERM | 5
INVALID_ONION_KEY = _BADONION | _PERM | 6


class SphinxError(AmpereError):
    """An onion or an onion error could not be built or understood."""


class BadOnionError(SphinxError):
    """The packet itself is unusable; answer with update_fail_malformed_htlc and ``failure_code``."""

    def __init__(self, message: str, failure_code: int) -> None:
        super().__init__(message)
        self.failure_code = failure_code


class OnionPayloadLengthError(SphinxError):
    """The hop payload length inside a valid packet is zero or overruns the routing info."""


@dataclass(frozen=True)
class OnionHop:
    node_id: bytes
    payload: bytes  # the TLV stream; the BigSize length prefix is added here


@dataclass(frozen=True)
class PeeledOnion:
    payload: bytes
    next_packet: bytes | None  # None when the next HMAC is all zero: we are the final hop
    shared_secret: bytes


def derive_key(key_type: bytes, shared_secret: bytes) -> bytes:
    """rho, mu, um, pad, ammag...: HMAC-SHA256 keyed by the key type over the shared secret."""
    return hmac.new(key_type, shared_secret, hashlib.sha256).digest()


def generate_stream(key: bytes, length: int) -> bytes:
    """ChaCha20 keystream with a zero nonce and counter, as BOLT 4 specifies."""
    encryptor = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()
    return encryptor.update(bytes(length))


def xor_bytes(data: bytes, stream: bytes) -> bytes:
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream[: len(data)], "big")).to_bytes(
        len(data), "big"
    )


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _bigsize(value: int) -> bytes:
    if value < 0xFD:
        return bytes([value])
    if value <= 0xFFFF:
        return b"\xfd" + value.to_bytes(2, "big")
    if value <= 0xFFFFFFFF:
        return b"\xfe" + value.to_bytes(4, "big")
    return b"\xff" + value.to_bytes(8, "big")


def _read_bigsize(data: bytes) -> tuple[int, int]:
    """(value, bytes consumed); minimal encoding enforced."""
    if not data:
        raise OnionPayloadLengthError("empty routing info")
    first = data[0]
    if first < 0xFD:
        return first, 1
    width = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
    if len(data) < 1 + width:
        raise OnionPayloadLengthError("truncated payload length")
    value = int.from_bytes(data[1 : 1 + width], "big")
    minimum = {2: 0xFD, 4: 0x10000, 8: 0x100000000}[width]
    if value < minimum:
        raise OnionPayloadLengthError("non-minimal payload length")
    return value, 1 + width


CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def ecdh(secret: bytes, point: bytes) -> bytes:
    """BOLT 4's shared secret: SHA256 of the compressed point `secret`·`point`.

    One point multiplication: building a `coincurve.PrivateKey` would first derive its public keys
    (two more), which the sender paid for every hop of every payment."""
    return hashlib.sha256(coincurve.PublicKey(point).multiply(secret).format()).digest()


def blinding_factor(ephemeral_pubkey: bytes, shared_secret: bytes) -> bytes:
    return hashlib.sha256(ephemeral_pubkey + shared_secret).digest()


def compute_shared_secrets(session_key: bytes, node_ids: Sequence[bytes]) -> tuple[bytes, ...]:
    """The shared secret the sender shares with each hop, in route order."""
    return _sender_secrets(session_key, node_ids)[1]


def _sender_secrets(session_key: bytes, node_ids: Sequence[bytes]) -> tuple[bytes, tuple[bytes, ...]]:
    """The session public key, and the shared secret with each hop.

    The ephemeral key is blinded hop by hop: its secret as a number (a multiplication modulo the
    curve order), its public key by one point multiplication, skipped after the last hop."""
    try:
        ephemeral_point = coincurve.PublicKey.from_secret(session_key)
    except ValueError as exc:
        raise SphinxError("invalid session key") from exc
    session_pubkey = ephemeral_pubkey = ephemeral_point.format()
    scalar = int.from_bytes(session_key, "big")
    secrets: list[bytes] = []
    for index, node_id in enumerate(node_ids):
        try:
            secret = ecdh(scalar.to_bytes(32, "big"), node_id)
        except ValueError as exc:
            raise SphinxError(f"invalid hop public key {node_id.hex()}") from exc
        secrets.append(secret)
        if index + 1 < len(node_ids):
            factor = blinding_factor(ephemeral_pubkey, secret)
            ephemeral_point = ephemeral_point.multiply(factor)
            ephemeral_pubkey = ephemeral_point.format()
            scalar = scalar * int.from_bytes(factor, "big") % CURVE_ORDER
    return session_pubkey, tuple(secrets)


def _filler(hop_sizes: Sequence[int], secrets: Sequence[bytes]) -> bytes:
    filler = b""
    for size, secret in zip(hop_sizes[:-1], secrets[:-1], strict=True):
        filler += bytes(size)
        stream = generate_stream(derive_key(b"rho", secret), 2 * ROUTING_INFO_SIZE)
        start = ROUTING_INFO_SIZE + size - len(filler)
        filler = xor_bytes(filler, stream[start : start + len(filler)])
    return filler


def create_onion(
    session_key: bytes, hops: Sequence[OnionHop], associated_data: bytes
) -> tuple[bytes, tuple[bytes, ...]]:
    """Wrap ``hops`` into a 1366-byte packet; returns it with the shared secret of each hop."""
    if not hops:
        raise SphinxError("an onion needs at least one hop")
    session_pubkey, secrets = _sender_secrets(session_key, [hop.node_id for hop in hops])
    framed = [_bigsize(len(hop.payload)) + hop.payload for hop in hops]
    hop_sizes = [len(frame) + HMAC_SIZE for frame in framed]
    if sum(hop_sizes) > ROUTING_INFO_SIZE:
        raise SphinxError(f"hop payloads need {sum(hop_sizes)} bytes, more than {ROUTING_INFO_SIZE}")
    filler = _filler(hop_sizes, secrets)
    routing_info = generate_stream(derive_key(b"pad", session_key), ROUTING_INFO_SIZE)
    next_hmac = bytes(HMAC_SIZE)
    for index in range(len(hops) - 1, -1, -1):
        shifted = framed[index] + next_hmac + routing_info[: ROUTING_INFO_SIZE - hop_sizes[index]]
        routing_info = xor_bytes(
            shifted, generate_stream(derive_key(b"rho", secrets[index]), ROUTING_INFO_SIZE)
        )
        if index == len(hops) - 1 and filler:
            routing_info = routing_info[: ROUTING_INFO_SIZE - len(filler)] + filler
        next_hmac = hmac_sha256(derive_key(b"mu", secrets[index]), routing_info + associated_data)
    packet = bytes([ONION_VERSION]) + session_pubkey + routing_info + next_hmac
    return packet, secrets


def peel_onion(packet: bytes, node_secret: bytes, associated_data: bytes) -> PeeledOnion:
    """Remove our layer: BadOnionError for a packet we cannot authenticate, SphinxError for a bad payload."""
    if len(packet) != ONION_PACKET_SIZE:
        raise BadOnionError(f"onion is {len(packet)} bytes, not {ONION_PACKET_SIZE}", INVALID_ONION_VERSION)
    if packet[0] != ONION_VERSION:
        raise BadOnionError(f"unknown onion version {packet[0]}", INVALID_ONION_VERSION)
    ephemeral = packet[1:34]
    routing_info = packet[34 : 34 + ROUTING_INFO_SIZE]
    packet_hmac = packet[34 + ROUTING_INFO_SIZE :]
    try:
        shared_secret = ecdh(node_secret, ephemeral)
    except ValueError as exc:
        raise BadOnionError("onion ephemeral key is not a valid point", INVALID_ONION_KEY) from exc
    expected = hmac_sha256(derive_key(b"mu", shared_secret), routing_info + associated_data)
    if not hmac.compare_digest(expected, packet_hmac):
        raise BadOnionError("onion HMAC mismatch", INVALID_ONION_HMAC)
    stream = generate_stream(derive_key(b"rho", shared_secret), 2 * ROUTING_INFO_SIZE)
    clear = xor_bytes(routing_info + bytes(ROUTING_INFO_SIZE), stream)
    length, prefix = _read_bigsize(clear)
    if length == 0 or prefix + length + HMAC_SIZE > ROUTING_INFO_SIZE:
        raise OnionPayloadLengthError(f"hop payload length {length} is invalid")
    payload = clear[prefix : prefix + length]
    next_hmac = clear[prefix + length : prefix + length + HMAC_SIZE]
    if next_hmac == bytes(HMAC_SIZE):
        return PeeledOnion(payload=payload, next_packet=None, shared_secret=shared_secret)
    shift = prefix + length + HMAC_SIZE
    next_routing = clear[shift : shift + ROUTING_INFO_SIZE]
    factor = blinding_factor(ephemeral, shared_secret)
    next_ephemeral = coincurve.PublicKey(ephemeral).multiply(factor).format()
    next_packet = bytes([ONION_VERSION]) + next_ephemeral + next_routing + next_hmac
    return PeeledOnion(payload=payload, next_packet=next_packet, shared_secret=shared_secret)


def build_failure_packet(
    shared_secret: bytes, failure_message: bytes, *, pad_to: int = FAILURE_PAD_TARGET
) -> bytes:
    """hmac || failure_len || failure || pad_len || pad, before obfuscation."""
    if len(failure_message) > 0xFFFF:
        raise SphinxError("failure message too long")
    pad_len = max(0, pad_to - len(failure_message))
    body = (
        struct.pack(">H", len(failure_message))
        + failure_message
        + struct.pack(">H", pad_len)
        + bytes(pad_len)
    )
    return hmac_sha256(derive_key(b"um", shared_secret), body) + body


def forward_failure(shared_secret: bytes, reason: bytes) -> bytes:
    """Each hop on the way back XORs the reason with its ammag stream."""
    return xor_bytes(reason, generate_stream(derive_key(b"ammag", shared_secret), len(reason)))


def create_failure(
    shared_secret: bytes, failure_message: bytes, *, pad_to: int = FAILURE_PAD_TARGET
) -> bytes:
    """The erring node's ``reason`` for update_fail_htlc."""
    return forward_failure(shared_secret, build_failure_packet(shared_secret, failure_message, pad_to=pad_to))


def decode_failure(shared_secrets: Sequence[bytes], reason: bytes) -> tuple[int, bytes]:
    """Peel the reason hop by hop until one HMAC matches: (index of the erring hop, failure message)."""
    if len(reason) < HMAC_SIZE + 4:
        raise SphinxError(f"failure reason too short ({len(reason)} bytes)")
    for index, secret in enumerate(shared_secrets):
        reason = forward_failure(secret, reason)
        body = reason[HMAC_SIZE:]
        if hmac.compare_digest(hmac_sha256(derive_key(b"um", secret), body), reason[:HMAC_SIZE]):
            (length,) = struct.unpack(">H", body[:2])
            if 2 + length > len(body):
                raise SphinxError(f"failure length {length} overruns the reason")
            return index, body[2 : 2 + length]
    raise SphinxError("no hop's HMAC matches the failure reason")
