"""What the payment service needs from BOLT 4 onions, as a port: build a one-hop onion, judge an incoming
HTLC as its final hop, and read the failure a payee sent back.

The payment service speaks only these types, so its decisions can be tested without onions and the
onion implementation can change without touching it. `ampere.node.payment_onion_sphinx` plugs in the
real Sphinx construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ampere.bitcoin.keys import PrivateKey

__all__ = [
    "BuiltOnion",
    "ExpectedInvoice",
    "FailMalformed",
    "FailWithReason",
    "Fulfil",
    "HtlcVerdict",
    "OnionPort",
]


@dataclass(frozen=True, slots=True)
class ExpectedInvoice:
    """What an HTLC paying one of our invoices must match."""

    payment_hash: bytes
    payment_secret: bytes
    amount_msat: int | None
    min_final_cltv_expiry_delta: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class BuiltOnion:
    packet: bytes  # the 1366-byte onion_routing_packet of update_add_htlc
    shared_secrets: tuple[bytes, ...]  # one per hop, to decrypt a failure


@dataclass(frozen=True, slots=True)
class Fulfil:
    """The HTLC pays the invoice: reveal the preimage."""


@dataclass(frozen=True, slots=True)
class FailWithReason:
    """Fail with `update_fail_htlc`; `reason` is already encrypted for the payer."""

    reason: bytes
    failure_code: int


@dataclass(frozen=True, slots=True)
class FailMalformed:
    """The onion itself is unreadable: `update_fail_malformed_htlc`."""

    sha256_of_onion: bytes
    failure_code: int


HtlcVerdict = Fulfil | FailWithReason | FailMalformed


class OnionPort(Protocol):
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
    ) -> BuiltOnion: ...

    def peel_ahead(self, onion: bytes, node_key: PrivateKey, payment_hash: bytes) -> None:
        """Do the expensive part of `check_final_htlc` for this onion now, so that the check, when it
        comes, reuses it (a cache; calling it or not never changes a verdict)."""
        ...

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
        """`expected` None: no invoice (or one we must not settle): the verdict is a failure."""
        ...

    def describe_failure(self, shared_secrets: Sequence[bytes], reason: bytes) -> str:
        """A readable account of an `update_fail_htlc` reason (which hop, which failure); an
        `AmpereError` when no hop of the payment could have written it."""
        ...
