"""The payment service's one-hop onions: built by the payer, judged by the payee as BOLT 4's final node,
failures decrypted by the payer only."""

from __future__ import annotations

import hashlib

import pytest

from ampere.bitcoin.keys import PrivateKey
from ampere.crypto.sphinx import INVALID_ONION_HMAC, create_onion
from ampere.errors import AmpereError
from ampere.node.payment_onion_port import ExpectedInvoice, FailMalformed, FailWithReason, Fulfil
from ampere.node.payment_onion_sphinx import SphinxOnion
from ampere.wire.onion import FailureCode, HopPayload

PAYEE = PrivateKey(bytes([0x41]) * 32)
SESSION = bytes([0x42]) * 32
PAYMENT_HASH = hashlib.sha256(b"preimage").digest()
SECRET = bytes([7]) * 32
HEIGHT = 500
NOW = 1_700_000_000
AMOUNT = 50_000
CLTV = HEIGHT + 40

INVOICE = ExpectedInvoice(PAYMENT_HASH, SECRET, AMOUNT, 18, NOW + 3600)
onion = SphinxOnion()


def _build(amount: int = AMOUNT, total: int = AMOUNT, cltv: int = CLTV, secret: bytes = SECRET) -> tuple:
    built = onion.build_final_hop(
        session_key=SESSION,
        payee=PAYEE.public_key.data,
        amount_msat=amount,
        total_msat=total,
        cltv_expiry=cltv,
        payment_secret=secret,
        payment_hash=PAYMENT_HASH,
    )
    return built.packet, built.shared_secrets


def _judge(packet: bytes, *, amount: int = AMOUNT, cltv: int = CLTV, expected=INVOICE, by=None):  # type: ignore[no-untyped-def]
    return (by or onion).check_final_htlc(
        onion=packet,
        node_key=PAYEE,
        payment_hash=PAYMENT_HASH,
        htlc_amount_msat=amount,
        htlc_cltv_expiry=cltv,
        current_height=HEIGHT,
        now=NOW,
        expected=expected,
    )


def _failure_name(verdict: object, shared: tuple[bytes, ...]) -> str:
    assert isinstance(verdict, FailWithReason)
    return onion.describe_failure(shared, verdict.reason)


def test_a_matching_htlc_is_fulfilled() -> None:
    packet, _ = _build()
    assert len(packet) == 1366
    assert isinstance(_judge(packet), Fulfil)


@pytest.mark.parametrize(
    ("build", "judge", "code"),
    [
        ({"secret": bytes(32)}, {}, FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS),
        (
            {"amount": AMOUNT - 1, "total": AMOUNT - 1},
            {"amount": AMOUNT - 1},
            FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS,
        ),
        (
            {"amount": 2 * AMOUNT + 1, "total": 2 * AMOUNT + 1},
            {"amount": 2 * AMOUNT + 1},
            FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS,
        ),
        ({"total": 2 * AMOUNT}, {}, FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS),
        ({"cltv": HEIGHT + 10}, {"cltv": HEIGHT + 10}, FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS),
        ({"cltv": CLTV + 1}, {}, FailureCode.FINAL_INCORRECT_CLTV_EXPIRY),
        ({"amount": AMOUNT + 5}, {}, FailureCode.FINAL_INCORRECT_HTLC_AMOUNT),
        ({}, {"expected": None}, FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS),
    ],
)
def test_each_final_node_rule_fails_with_its_code(build: dict, judge: dict, code: FailureCode) -> None:  # type: ignore[type-arg]
    packet, shared = _build(**build)
    verdict = _judge(packet, **judge)
    assert isinstance(verdict, FailWithReason)
    assert verdict.failure_code == code
    assert code.name.lower() in _failure_name(verdict, shared)


def test_an_expired_invoice_is_not_paid() -> None:
    packet, shared = _build()
    expired = ExpectedInvoice(PAYMENT_HASH, SECRET, AMOUNT, 18, NOW)
    verdict = _judge(packet, expected=expired)
    assert "incorrect_or_unknown_payment_details" in _failure_name(verdict, shared)


def test_a_tampered_onion_is_malformed_with_its_hash() -> None:
    packet, _ = _build()
    tampered = packet[:100] + bytes([packet[100] ^ 1]) + packet[101:]
    verdict = _judge(tampered)
    assert verdict == FailMalformed(hashlib.sha256(tampered).digest(), INVALID_ONION_HMAC)


def test_a_payload_without_payment_data_is_an_invalid_payload() -> None:
    bare = HopPayload(AMOUNT, CLTV).encode()
    packet, _ = create_onion(SESSION, [_hop(bare)], PAYMENT_HASH)
    verdict = _judge(packet)
    assert isinstance(verdict, FailWithReason)
    assert verdict.failure_code == FailureCode.INVALID_ONION_PAYLOAD


def test_an_onion_for_another_hop_is_refused_as_unknown_next_peer() -> None:
    forward = HopPayload(AMOUNT, CLTV, short_channel_id=bytes(8)).encode()
    other = PrivateKey(bytes([0x43]) * 32).public_key.data
    packet, shared = create_onion(SESSION, [_hop(forward), _hop(forward, other)], PAYMENT_HASH)
    verdict = _judge(packet)
    assert isinstance(verdict, FailWithReason)
    assert verdict.failure_code == FailureCode.UNKNOWN_NEXT_PEER
    assert "hop 0" in onion.describe_failure(shared, verdict.reason)


def test_a_reason_from_a_stranger_is_an_error_not_a_crash() -> None:
    _, shared = _build()
    with pytest.raises(AmpereError):
        onion.describe_failure(shared, bytes(292))


def _hop(payload: bytes, node: bytes | None = None):  # type: ignore[no-untyped-def]
    from ampere.crypto.sphinx import OnionHop

    return OnionHop(PAYEE.public_key.data if node is None else node, payload)


def test_peeling_ahead_never_changes_a_verdict() -> None:
    good, _ = _build()
    wrong_secret, _ = _build(secret=bytes([8]) * 32)
    garbled = good[:1] + bytes([good[1] ^ 1]) + good[2:]  # not a point any more
    bad_hmac = good[:-1] + bytes([good[-1] ^ 1])
    bad_version = b"\x01" + good[1:]
    for packet in (good, wrong_secret, garbled, bad_hmac, bad_version):
        cold = _judge(packet)
        fresh = SphinxOnion()
        fresh.peel_ahead(packet, PAYEE, PAYMENT_HASH)
        fresh.peel_ahead(packet, PAYEE, PAYMENT_HASH)  # a repeat (a retransmitted add) keeps one entry
        warm = _judge(packet, by=fresh)
        assert type(warm) is type(cold)
        if isinstance(cold, FailMalformed):
            assert warm == cold
        if isinstance(cold, FailWithReason):
            assert isinstance(warm, FailWithReason) and warm.failure_code == cold.failure_code
        assert fresh.kept == 0  # the check took what was kept


def test_onions_peeled_ahead_are_bounded() -> None:
    fresh = SphinxOnion()
    packet, _ = _build()
    for i in range(4100):
        fresh.peel_ahead(packet, PAYEE, i.to_bytes(32, "big"))  # never checked: wrong hashes, all kept
    assert fresh.kept == 4096
    assert (packet, (0).to_bytes(32, "big")) not in fresh._peeled  # the oldest went first


def test_a_late_peel_ahead_after_the_check_keeps_nothing() -> None:
    fresh = SphinxOnion()
    packet, _ = _build()
    verdict = _judge(packet, by=fresh)
    assert isinstance(verdict, Fulfil)
    fresh.peel_ahead(packet, PAYEE, PAYMENT_HASH)  # the hint came after the HTLC was decided
    assert fresh.kept == 0
