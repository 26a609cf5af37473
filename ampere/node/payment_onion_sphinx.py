"""TEMPORARY STAND-IN (not to be committed): replaced by the Sphinx adapter once the onion lands."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from ampere.bitcoin.keys import PrivateKey
from ampere.node.payment_onion_port import (
    BuiltOnion,
    ExpectedInvoice,
    FailMalformed,
    FailWithReason,
    Fulfil,
    HtlcVerdict,
)

INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS = 0x4000 | 15
FINAL_INCORRECT_CLTV_EXPIRY = 18
INVALID_ONION_PAYLOAD = 0x4000 | 22
INVALID_ONION_HMAC = 0x8000 | 0x4000 | 5
ONION_SIZE = 1366


class SphinxOnion:
    """A test onion: JSON payload, zero padded; `shared_secrets` is the session key."""

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
        return f"incorrect_or_unknown_payment_details code {int.from_bytes(reason[32:34], 'big'):#06x}"
