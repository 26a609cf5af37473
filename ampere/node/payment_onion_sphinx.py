"""The payment service's onions, built and read with BOLT 4 Sphinx (`ampere.crypto.sphinx`).

A direct payment is a one-hop onion whose only payload is the final hop's: amount, CLTV and
`payment_data` (the invoice's payment secret and the total). The payee peels it and applies BOLT 4's
requirements for the final node; a failure goes back encrypted with the hop's shared secret, so only
the payer can read it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ampere.bitcoin.keys import PrivateKey
from ampere.crypto.sphinx import (
    INVALID_ONION_HMAC,
    BadOnionError,
    OnionHop,
    OnionPayloadLengthError,
    PeeledOnion,
    create_failure,
    create_onion,
    decode_failure,
    peel_onion,
)
from ampere.node.payment_onion_port import (
    BuiltOnion,
    ExpectedInvoice,
    FailMalformed,
    FailWithReason,
    Fulfil,
    HtlcVerdict,
)
from ampere.wire.onion import FailureMessage, HopPayload, OnionPayloadError

__all__ = ["SphinxOnion"]

_Peel = PeeledOnion | BadOnionError | OnionPayloadLengthError

# BOLT 4: a final node rejects an amount more than twice what it asked for (it may be a probe).
_MAX_OVERPAYMENT_FACTOR = 2


# Peeled onions kept for `check_final_htlc` (bounded: HTLCs that never get committed are forgotten).
_PEELED_CACHE_SIZE = 4096
_CHECKED = "checked"  # kept instead of a peel the check already did itself: a late peel_ahead skips it


class SphinxOnion:
    """`peel_ahead` peels an incoming onion before its HTLC is committed (the ECDH is the dear part) and
    keeps the result for `check_final_htlc`, which peels itself when nothing was kept."""

    def __init__(self) -> None:
        self._peeled: dict[tuple[bytes, bytes], _Peel | str] = {}

    @property
    def kept(self) -> int:
        """Peels done ahead and not used by a check yet."""
        return sum(1 for value in self._peeled.values() if value is not _CHECKED)

    def peel_ahead(self, onion: bytes, node_key: PrivateKey, payment_hash: bytes) -> None:
        key = (onion, payment_hash)
        if key not in self._peeled:
            self._keep(key, self._peel(onion, node_key, payment_hash))

    def _keep(self, key: tuple[bytes, bytes], value: _Peel | str) -> None:
        if len(self._peeled) >= _PEELED_CACHE_SIZE:
            del self._peeled[next(iter(self._peeled))]  # the oldest
        self._peeled[key] = value

    @staticmethod
    def _peel(onion: bytes, node_key: PrivateKey, payment_hash: bytes) -> _Peel:
        try:
            return peel_onion(onion, node_key.secret, payment_hash)
        except (BadOnionError, OnionPayloadLengthError) as exc:
            return exc

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
        payload = HopPayload(
            amt_to_forward=amount_msat,
            outgoing_cltv_value=cltv_expiry,
            payment_secret=payment_secret,
            total_msat=total_msat,
        )
        packet, shared_secrets = create_onion(session_key, [OnionHop(payee, payload.encode())], payment_hash)
        return BuiltOnion(packet, shared_secrets)

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
        key = (onion, payment_hash)
        cached = self._peeled.pop(key, None)
        peeled: _Peel
        if cached is None or isinstance(cached, str):
            peeled = self._peel(onion, node_key, payment_hash)
            self._keep(key, _CHECKED)
        else:
            peeled = cached
        if isinstance(peeled, BadOnionError):
            return FailMalformed(hashlib.sha256(onion).digest(), peeled.failure_code)
        if isinstance(peeled, OnionPayloadLengthError):
            # The packet is ours but its payload length is unusable: we cannot peel further, so we
            # cannot encrypt a reason either; report it as an unreadable onion.
            return FailMalformed(hashlib.sha256(onion).digest(), INVALID_ONION_HMAC)

        def fail(message: FailureMessage) -> FailWithReason:
            return FailWithReason(create_failure(peeled.shared_secret, message.encode()), message.code)

        try:
            payload = HopPayload.decode(peeled.payload)
        except OnionPayloadError as exc:
            return fail(FailureMessage.invalid_onion_payload(exc.tlv_type, min(exc.offset, 0xFFFF)))
        if peeled.next_packet is not None or not payload.is_final:
            # We do not forward yet: to the payer we are a dead end.
            return fail(FailureMessage.unknown_next_peer())
        if payload.payment_secret is None or payload.total_msat is None:
            return fail(FailureMessage.invalid_onion_payload(8, 0))
        if payload.outgoing_cltv_value > htlc_cltv_expiry:
            return fail(FailureMessage.final_incorrect_cltv_expiry(htlc_cltv_expiry))
        if payload.amt_to_forward > htlc_amount_msat:
            return fail(FailureMessage.final_incorrect_htlc_amount(htlc_amount_msat))
        unknown = FailureMessage.incorrect_or_unknown_payment_details(htlc_amount_msat, current_height)
        if expected is None or expected.payment_hash != payment_hash:
            return fail(unknown)
        if payload.payment_secret != expected.payment_secret or now >= expected.expires_at:
            return fail(unknown)
        # Single-part payments only: the whole total must arrive in this HTLC.
        if payload.total_msat != htlc_amount_msat:
            return fail(unknown)
        if expected.amount_msat is not None and not (
            expected.amount_msat <= htlc_amount_msat <= _MAX_OVERPAYMENT_FACTOR * expected.amount_msat
        ):
            return fail(unknown)
        if htlc_cltv_expiry < current_height + expected.min_final_cltv_expiry_delta:
            return fail(unknown)
        return Fulfil()

    def describe_failure(self, shared_secrets: Sequence[bytes], reason: bytes) -> str:
        """Raises `SphinxError`/`WireError` (both `AmpereError`s) for a reason no hop of ours wrote."""
        index, message = decode_failure(shared_secrets, reason)
        failure = FailureMessage.decode(message)
        who = "the payee" if index == len(shared_secrets) - 1 else f"hop {index}"
        return f"{who} failed the payment: {failure.describe()}"
