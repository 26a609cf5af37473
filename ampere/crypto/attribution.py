"""BOLT 4 attribution data: hold times and truncated HMACs that travel back with a failure or a fulfill.

The 920-byte ``attribution_data`` holds 20 u32 hold times (units of 100 ms) followed by 210 truncated
(4-byte) HMACs. Every node on the way back shifts what it received one slot to the right, writes its
own hold time and 20 HMACs at the front, and XORs the whole block with its ``ammagext`` stream. The
origin peels the layers hop by hop and checks each hop's HMAC: the first mismatch names the hop (or
the pair of hops) that tampered with the data.

Two points where the spec text and its test vectors differ; we follow the vectors:
- the spec lists ``htlc_hold_time[i]`` beside ``pubkey[i]``, but the vector data has node ``i``
  reporting the value written for ``nhops-1-i``; the values are opaque to this module, so this only
  concerns the tests;
- the HMAC area follows the spec's layout ``hmac_0_19..hmac_0_0 | hmac_1_18..hmac_1_0 | ... |
  hmac_19_0`` where ``hmac_x_y`` belongs to the node ``x`` hops from the one handling the data and
  assumes that node is ``y`` hops before the last node of the route.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from ampere.crypto.sphinx import (
    HMAC_SIZE,
    SphinxError,
    derive_key,
    forward_failure,
    generate_stream,
    hmac_sha256,
    xor_bytes,
)

MAX_HOPS = 20
HOLD_TIME_SIZE = 4
TRUNCATED_HMAC_SIZE = 4
HOLD_TIMES_SIZE = MAX_HOPS * HOLD_TIME_SIZE  # 80
HMAC_COUNT = MAX_HOPS * (MAX_HOPS + 1) // 2  # 210
ATTRIBUTION_DATA_SIZE = HOLD_TIMES_SIZE + HMAC_COUNT * TRUNCATED_HMAC_SIZE  # 920
_MAX_HOLD_TIME = 0xFFFFFFFF


class AttributionError(SphinxError):
    """Attribution data is malformed, or a hold time or route does not fit it."""


@dataclass(frozen=True)
class Attribution:
    """What the origin learns from attribution data.

    ``hold_times`` holds the hold time (100 ms units) each verified hop reported, in route order;
    ``blamed_hop`` is the index of the first hop whose HMAC did not verify (that hop or the one
    after it altered the data), None when every hop checked out."""

    hold_times: tuple[int, ...]
    blamed_hop: int | None


@dataclass(frozen=True)
class AttributedFailure:
    """The decoded failure: the erring hop and its message when its HMAC matched, plus the attribution."""

    erring_hop: int | None
    failure_message: bytes | None
    attribution: Attribution


def _region_start(position: int) -> int:
    """Index of the first HMAC of the node ``position`` hops away: regions shrink by one per hop."""
    return position * MAX_HOPS - position * (position - 1) // 2


def _hmac_index(position: int, distance: int) -> int:
    """Where ``hmac_position_distance`` lives: each region stores its largest distance first."""
    return _region_start(position) + (MAX_HOPS - 1 - position - distance)


def _get_hmac(hmacs: bytes, position: int, distance: int) -> bytes:
    start = _hmac_index(position, distance) * TRUNCATED_HMAC_SIZE
    return hmacs[start : start + TRUNCATED_HMAC_SIZE]


def _check_size(attribution_data: bytes) -> None:
    if len(attribution_data) != ATTRIBUTION_DATA_SIZE:
        raise AttributionError(
            f"attribution data is {len(attribution_data)} bytes, not {ATTRIBUTION_DATA_SIZE}"
        )


def _shift(attribution_data: bytes) -> tuple[bytes, bytearray]:
    """Make room at the front: hold times move one slot right, each HMAC region moves one region on
    and loses its left-most (now out of reach) HMAC. The vacated slots are zero."""
    hold_times = bytes(HOLD_TIME_SIZE) + attribution_data[: HOLD_TIMES_SIZE - HOLD_TIME_SIZE]
    old = attribution_data[HOLD_TIMES_SIZE:]
    new = bytearray(HMAC_COUNT * TRUNCATED_HMAC_SIZE)
    for position in range(MAX_HOPS - 1):
        for distance in range(MAX_HOPS - 1 - position - 1, -1, -1):
            target = _hmac_index(position + 1, distance) * TRUNCATED_HMAC_SIZE
            new[target : target + TRUNCATED_HMAC_SIZE] = _get_hmac(old, position, distance)
    return hold_times, new


def _unshift(attribution_data: bytes) -> bytes:
    """The inverse of ``_shift`` as far as it goes: the slots it dropped come back as zeros."""
    hold_times = attribution_data[HOLD_TIME_SIZE:HOLD_TIMES_SIZE] + bytes(HOLD_TIME_SIZE)
    shifted = attribution_data[HOLD_TIMES_SIZE:]
    old = bytearray(HMAC_COUNT * TRUNCATED_HMAC_SIZE)
    for position in range(MAX_HOPS - 1):
        for distance in range(MAX_HOPS - 1 - position - 1, -1, -1):
            target = _hmac_index(position, distance) * TRUNCATED_HMAC_SIZE
            old[target : target + TRUNCATED_HMAC_SIZE] = _get_hmac(shifted, position + 1, distance)
    return hold_times + bytes(old)


def _own_hmacs(um_key: bytes, message: bytes, hold_times: bytes, hmacs: bytes) -> bytes:
    """hmac_0_19 .. hmac_0_0: each covers the message, the first y+1 hold times and the y downstream
    HMACs hmac_1_(y-1) .. hmac_y_0 that would be checked after it."""
    own: list[bytes] = []
    for distance in range(MAX_HOPS - 1, -1, -1):
        downstream = b"".join(_get_hmac(hmacs, 1 + k, distance - 1 - k) for k in range(distance))
        covered = message + hold_times[: (distance + 1) * HOLD_TIME_SIZE] + downstream
        own.append(hmac_sha256(um_key, covered)[:TRUNCATED_HMAC_SIZE])
    return b"".join(own)


def _obfuscate(shared_secret: bytes, attribution_data: bytes) -> bytes:
    return xor_bytes(
        attribution_data, generate_stream(derive_key(b"ammagext", shared_secret), ATTRIBUTION_DATA_SIZE)
    )


def add_attribution(
    shared_secret: bytes, hold_time: int, message: bytes, downstream: bytes | None = None
) -> bytes:
    """Our layer of attribution data.

    ``message`` is the return packet as we received it, before our ``ammag`` obfuscation (for the
    erring node, the failure packet it built; empty for a fulfill). ``downstream`` is the attribution
    data received from the next hop; None when we start the chain (erring node, payee, or a
    downstream node that sent none)."""
    if not 0 <= hold_time <= _MAX_HOLD_TIME:
        raise AttributionError(f"hold time {hold_time} does not fit a u32")
    if downstream is None:
        hold_times, hmacs = bytes(HOLD_TIMES_SIZE), bytearray(HMAC_COUNT * TRUNCATED_HMAC_SIZE)
    else:
        _check_size(downstream)
        hold_times, hmacs = _shift(downstream)
    hold_times = struct.pack(">I", hold_time) + hold_times[HOLD_TIME_SIZE:]
    own = _own_hmacs(derive_key(b"um", shared_secret), message, hold_times, bytes(hmacs))
    hmacs[: len(own)] = own
    return _obfuscate(shared_secret, hold_times + bytes(hmacs))


def _peel_attribution(
    shared_secrets: Sequence[bytes],
    attribution_data: bytes,
    messages: Sequence[bytes],
    last_hop: int,
) -> Attribution:
    """Check hops 0..``last_hop``; ``messages[i]`` is what hop ``i`` covered."""
    _check_size(attribution_data)
    route_length = len(shared_secrets)
    if route_length > MAX_HOPS:
        raise AttributionError(f"a route of {route_length} hops is longer than attribution data covers")
    hold_times: list[int] = []
    data = attribution_data
    for index in range(last_hop + 1):
        secret = shared_secrets[index]
        if index:
            data = _unshift(data)
        data = _obfuscate(secret, data)
        distance = route_length - 1 - index
        times = data[:HOLD_TIMES_SIZE]
        hmacs = data[HOLD_TIMES_SIZE:]
        downstream = b"".join(_get_hmac(hmacs, 1 + k, distance - 1 - k) for k in range(distance))
        covered = messages[index] + times[: (distance + 1) * HOLD_TIME_SIZE] + downstream
        expected = hmac_sha256(derive_key(b"um", secret), covered)[:TRUNCATED_HMAC_SIZE]
        if not hmac.compare_digest(expected, _get_hmac(hmacs, 0, distance)):
            return Attribution(hold_times=tuple(hold_times), blamed_hop=index)
        (hold_time,) = struct.unpack(">I", times[:HOLD_TIME_SIZE])
        hold_times.append(hold_time)
    return Attribution(hold_times=tuple(hold_times), blamed_hop=None)


def decode_success_attribution(shared_secrets: Sequence[bytes], attribution_data: bytes) -> Attribution:
    """The origin's view of the attribution data of an update_fulfill_htlc for a route of these hops."""
    if not shared_secrets:
        raise AttributionError("a route has at least one hop")
    messages = [b""] * len(shared_secrets)
    return _peel_attribution(shared_secrets, attribution_data, messages, len(shared_secrets) - 1)


def decode_attributed_failure(
    shared_secrets: Sequence[bytes], reason: bytes, attribution_data: bytes
) -> AttributedFailure:
    """Peel an update_fail_htlc ``reason`` and its ``attribution_data`` together.

    The failure HMAC names the erring hop when it matches; the attribution data is then checked up to
    that hop. When no failure HMAC matches, every hop's attribution is checked so that the first
    broken HMAC points at whoever corrupted the reply."""
    if not shared_secrets:
        raise AttributionError("a route has at least one hop")
    if len(reason) < HMAC_SIZE + 4:
        raise SphinxError(f"failure reason too short ({len(reason)} bytes)")
    _check_size(attribution_data)
    messages: list[bytes] = []
    erring_hop: int | None = None
    failure_message: bytes | None = None
    for index, secret in enumerate(shared_secrets):
        reason = forward_failure(secret, reason)
        messages.append(reason)
        body = reason[HMAC_SIZE:]
        if hmac.compare_digest(hmac_sha256(derive_key(b"um", secret), body), reason[:HMAC_SIZE]):
            (length,) = struct.unpack(">H", body[:2])
            if 2 + length <= len(body):
                erring_hop, failure_message = index, body[2 : 2 + length]
            break
    last_hop = len(shared_secrets) - 1 if erring_hop is None else erring_hop
    attribution = _peel_attribution(
        shared_secrets, attribution_data, messages, min(last_hop, len(messages) - 1)
    )
    return AttributedFailure(erring_hop=erring_hop, failure_message=failure_message, attribution=attribution)
