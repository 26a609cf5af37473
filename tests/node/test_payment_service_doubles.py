"""Stand-ins for the payment service's unit tests (no tests here): two services joined in memory.

`LoopbackChannel` keeps both balances and the HTLCs in flight, delivers each HTLC to the other side's
listener, and its outcomes back, like the channel service's promises (each once, in tasks). The
`PlainOnion` is a readable test onion: the payload in clear, checked against the expected invoice the
way a final hop must (BOLT 4 failure codes), and a failure reason the payer can read back.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from ampere.bitcoin.bip32 import ExtendedPrivateKey
from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.network import Network
from ampere.channel.twoway.actions import HtlcFailed, HtlcFulfilled, HtlcReceived
from ampere.node.htlc_interface import (
    ChannelUnavailableError,
    HtlcListener,
    HtlcRefusedError,
    OfferedHtlcReport,
    UsableChannel,
)
from ampere.node.keys import NodeKeys
from ampere.node.payment_onion_port import (
    BuiltOnion,
    ExpectedInvoice,
    FailMalformed,
    FailWithReason,
    Fulfil,
    HtlcVerdict,
)
from ampere.store import open_store

INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS = 0x4000 | 15
FINAL_INCORRECT_CLTV_EXPIRY = 18
INVALID_ONION_PAYLOAD = 0x4000 | 22
INVALID_ONION_HMAC = 0x8000 | 0x4000 | 5
ONION_SIZE = 1366


class PlainOnion:
    """A test onion: JSON payload, zero padded; `shared_secrets` is the session key."""

    def peel_ahead(self, onion: bytes, node_key: PrivateKey, payment_hash: bytes) -> None:
        return None  # nothing slow to do ahead for a readable test onion

    def build_final_hop(
        self,
        *,
        session_key: bytes,
        payee: bytes,
        amount_msat: int,
        total_msat: int,
        cltv_expiry: int,
        payment_secret: bytes,
        payment_hash: bytes,
    ) -> BuiltOnion:
        payload = {
            "payee": payee.hex(),
            "amount_msat": amount_msat,
            "total_msat": total_msat,
            "cltv_expiry": cltv_expiry,
            "payment_secret": payment_secret.hex(),
            "session": session_key.hex(),
        }
        data = json.dumps(payload).encode()
        return BuiltOnion(data.ljust(ONION_SIZE, b"\0"), (session_key,))

    def check_final_htlc(
        self,
        *,
        onion: bytes,
        node_key: PrivateKey,
        payment_hash: bytes,
        htlc_amount_msat: int,
        htlc_cltv_expiry: int,
        current_height: int,
        now: int,
        expected: ExpectedInvoice | None,
    ) -> HtlcVerdict:
        try:
            payload = json.loads(onion.rstrip(b"\0"))
            session = bytes.fromhex(payload["session"])
        except (ValueError, KeyError):
            return FailMalformed(hashlib.sha256(onion).digest(), INVALID_ONION_HMAC)
        if payload["payee"] != node_key.public_key.data.hex():
            return FailMalformed(hashlib.sha256(onion).digest(), INVALID_ONION_HMAC)

        def fail(code: int) -> FailWithReason:
            return FailWithReason(session + code.to_bytes(2, "big"), code)

        if payload["cltv_expiry"] != htlc_cltv_expiry:
            return fail(FINAL_INCORRECT_CLTV_EXPIRY)
        if payload["amount_msat"] != htlc_amount_msat:
            return fail(INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS)
        if (
            expected is None
            or expected.payment_hash != payment_hash
            or bytes.fromhex(payload["payment_secret"]) != expected.payment_secret
            or (expected.amount_msat is not None and htlc_amount_msat < expected.amount_msat)
            or now >= expected.expires_at
            or htlc_cltv_expiry < current_height + expected.min_final_cltv_expiry_delta
        ):
            return fail(INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS)
        return Fulfil()

    def describe_failure(self, shared_secrets: Sequence[bytes], reason: bytes) -> str:
        if reason[:32] != shared_secrets[0]:
            raise ValueError("reason not from our payee")
        return f"payee failed it with code {int.from_bytes(reason[32:34], 'big'):#06x}"


@dataclass
class Htlc:
    htlc_id: int
    amount_msat: int
    payment_hash: bytes


@dataclass
class Side:
    node_id: bytes
    balance_msat: int
    listeners: list[HtlcListener] = field(default_factory=list)
    offered: dict[int, Htlc] = field(default_factory=dict)
    next_id: int = 0


class LoopbackChannel:
    """One channel between two in-process payment services; each end is a `ChannelOperations`."""

    def __init__(self, a: bytes, b: bytes, a_msat: int, b_msat: int) -> None:
        self.channel_id = hashlib.sha256(a + b).digest()
        self.capacity_msat = a_msat + b_msat
        self.sides = {a: Side(a, a_msat), b: Side(b, b_msat)}
        self.online = True
        # While set, HTLCs wait here instead of reaching the other side (a peer that is slow to answer).
        self.held: list[tuple[bytes, HtlcReceived]] | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def end(self, node_id: bytes) -> LoopbackEnd:
        return LoopbackEnd(self, node_id)

    def other(self, node_id: bytes) -> Side:
        return next(side for key, side in self.sides.items() if key != node_id)

    def in_flight_msat(self) -> int:
        return sum(h.amount_msat for side in self.sides.values() for h in side.offered.values())

    def conserved(self) -> bool:
        total = sum(side.balance_msat for side in self.sides.values()) + self.in_flight_msat()
        return total == self.capacity_msat

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def release(self) -> None:
        held, self.held = self.held or [], None
        for receiver, received in held:
            for listener in self.sides[receiver].listeners:
                self.spawn(listener.htlc_received(self.channel_id, received))

    async def settle(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks))


class LoopbackEnd:
    def __init__(self, channel: LoopbackChannel, node_id: bytes) -> None:
        self.channel = channel
        self.node_id = node_id
        self.refuse: str | None = None
        #: Outcomes the channel layer would have in its outcome log (tests of a restart set them).
        self.logged: dict[bytes, HtlcFulfilled | HtlcFailed] = {}

    @property
    def side(self) -> Side:
        return self.channel.sides[self.node_id]

    def usable_channels(self, peer_id: bytes | None = None) -> list[UsableChannel]:
        peer = self.channel.other(self.node_id)
        if not self.channel.online or (peer_id is not None and peer_id != peer.node_id):
            return []
        return [UsableChannel(self.channel.channel_id, peer.node_id, None, self.side.balance_msat, 0)]

    async def add_htlc(
        self, channel_id: bytes, amount_msat: int, payment_hash: bytes, cltv_expiry: int, onion: bytes
    ) -> int:
        if not self.channel.online:
            raise ChannelUnavailableError("offline")
        if self.refuse is not None:
            raise HtlcRefusedError(self.refuse)
        if amount_msat > self.side.balance_msat:
            raise HtlcRefusedError("not enough balance")
        htlc = Htlc(self.side.next_id, amount_msat, payment_hash)
        self.side.next_id += 1
        self.side.balance_msat -= amount_msat
        self.side.offered[htlc.htlc_id] = htlc
        received = HtlcReceived(htlc.htlc_id, amount_msat, payment_hash, cltv_expiry, onion)
        if self.channel.held is not None:
            self.channel.held.append((self.channel.other(self.node_id).node_id, received))
            return htlc.htlc_id
        for listener in self.channel.other(self.node_id).listeners:
            self.channel.spawn(listener.htlc_received(channel_id, received))
        return htlc.htlc_id

    def _take(self, htlc_id: int) -> tuple[Side, Htlc]:
        offerer = self.channel.other(self.node_id)
        htlc = offerer.offered.pop(htlc_id, None)
        if htlc is None:
            raise HtlcRefusedError(f"no HTLC {htlc_id}")
        return offerer, htlc

    async def fulfill_htlc(self, channel_id: bytes, htlc_id: int, preimage: bytes) -> None:
        offerer, htlc = self._take(htlc_id)
        assert hashlib.sha256(preimage).digest() == htlc.payment_hash
        self.side.balance_msat += htlc.amount_msat
        for listener in offerer.listeners:
            self.channel.spawn(
                listener.htlc_fulfilled(channel_id, HtlcFulfilled(htlc_id, htlc.payment_hash, preimage))
            )

    async def fail_htlc(self, channel_id: bytes, htlc_id: int, reason: bytes) -> None:
        offerer, htlc = self._take(htlc_id)
        offerer.balance_msat += htlc.amount_msat
        for listener in offerer.listeners:
            self.channel.spawn(
                listener.htlc_failed(channel_id, HtlcFailed(htlc_id, htlc.payment_hash, reason))
            )

    async def fail_malformed_htlc(
        self, channel_id: bytes, htlc_id: int, sha256_of_onion: bytes, failure_code: int
    ) -> None:
        offerer, htlc = self._take(htlc_id)
        offerer.balance_msat += htlc.amount_msat
        failed = HtlcFailed(htlc_id, htlc.payment_hash, b"", failure_code, sha256_of_onion)
        for listener in offerer.listeners:
            self.channel.spawn(listener.htlc_failed(channel_id, failed))

    def add_htlc_listener(self, listener: HtlcListener) -> None:
        self.side.listeners.append(listener)

    def offered_htlcs(self, payment_hash: bytes) -> OfferedHtlcReport:
        in_flight = any(h.payment_hash == payment_hash for h in self.side.offered.values())
        logged = self.logged.get(payment_hash)
        return OfferedHtlcReport(
            in_flight,
            logged if isinstance(logged, HtlcFulfilled) else None,
            logged if isinstance(logged, HtlcFailed) else None,
        )


def stand_in_node(name: str, path: Any, height: int = 200) -> Any:
    """What the payment service reads of a `Node`: store, network, keys, id, height."""
    keys = NodeKeys(ExtendedPrivateKey.from_seed(hashlib.sha256(name.encode()).digest()), Network.REGTEST)
    store = open_store(path / f"{name}.sqlite")
    return SimpleNamespace(
        store=store,
        network=Network.REGTEST,
        keys=keys,
        node_id=keys.node_id,
        follower=SimpleNamespace(height=height),
        services=(),
    )
