"""Invoices of our own: what new_invoice writes, and what encode_invoice refuses to write."""

from __future__ import annotations

import dataclasses

import pytest

from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.network import Network
from ampere.invoice import (
    INVOICE_FEATURES,
    Invoice,
    InvoiceError,
    RouteHint,
    RouteHintHop,
    decode_invoice,
    encode_invoice,
    new_invoice,
)
from ampere.wire.features import Feature, Features
from ampere.wire.primitives import ShortChannelId

KEY = PrivateKey.from_int(0xA11CE)
PREIMAGE = bytes([7]) * 32
SECRET = bytes([9]) * 32
NOW = 1_700_000_000
HOP = RouteHintHop(
    pubkey=PrivateKey.from_int(3).public_key.data,
    short_channel_id=ShortChannelId(700_000, 12, 1),
    fee_base_msat=1000,
    fee_proportional_millionths=100,
    cltv_expiry_delta=144,
)


def _new(**overrides: object) -> tuple[str, Invoice]:
    arguments: dict[str, object] = {
        "network": Network.REGTEST,
        "amount_msat": 123_456,
        "payment_hash": sha256(PREIMAGE),
        "payment_secret": SECRET,
        "private_key": KEY,
        "timestamp": NOW,
    }
    arguments.update(overrides)
    return new_invoice(**arguments)  # type: ignore[arg-type]


def test_new_invoice_sets_what_our_payee_needs() -> None:
    text, invoice = _new(description="coffee", expiry=600)
    assert text.startswith("lnbcrt1234560p1")
    assert decode_invoice(text) == invoice
    assert invoice.payee == KEY.public_key.data
    assert invoice.features == INVOICE_FEATURES
    assert invoice.features.requires(Feature.VAR_ONION_OPTIN) and invoice.features.requires(
        Feature.PAYMENT_SECRET
    )
    assert invoice.features.is_set(Feature.BASIC_MPP.optional_bit)
    assert not invoice.features.is_set(Feature.BASIC_MPP.required_bit)
    assert (invoice.description, invoice.expiry, invoice.expires_at) == ("coffee", 600, NOW + 600)
    assert invoice.encoding is not None
    letters = [tagged.letter for tagged in invoice.encoding.fields]
    # No `n`: the payee is recovered from the signature. `c` is written even at its default.
    assert letters == ["p", "s", "d", "x", "c", "9"]
    assert invoice.min_final_cltv_expiry_delta == 18


def test_default_description_is_empty_and_hash_replaces_it() -> None:
    assert _new()[1].description == ""
    _, hashed = _new(description_hash=sha256(b"a long description"))
    assert (hashed.description, hashed.description_hash) == (None, sha256(b"a long description"))
    assert hashed.description_matches("a long description")
    assert not hashed.description_matches("another description")
    assert _new(description="tea")[1].description_matches("tea")
    assert not _new(description="tea")[1].description_matches("coffee")
    with pytest.raises(InvoiceError, match="exactly one of description and description_hash"):
        _new(description="x", description_hash=bytes(32))


def test_amountless_invoice_route_hints_fallbacks_and_metadata_roundtrip() -> None:
    _, invoice = _new(
        network=Network.MAINNET,
        amount_msat=None,
        route_hints=[RouteHint((HOP, HOP))],
        fallback_addresses=[
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
            "3EktnHQD7RiAE6uzMj2ZifT9YgRrkSgzQX",
        ],
        metadata=b"\x01\xfa",
        features=INVOICE_FEATURES.with_feature(Feature.PAYMENT_METADATA),
    )
    assert invoice.amount_msat is None
    assert invoice.route_hints == (RouteHint((HOP, HOP)),)
    assert invoice.fallback_addresses[1] == "3EktnHQD7RiAE6uzMj2ZifT9YgRrkSgzQX"
    assert invoice.metadata == b"\x01\xfa"


def test_description_at_the_field_size_limit() -> None:
    assert _new(description="a" * 639)[1].description == "a" * 639
    with pytest.raises(InvoiceError, match="'d' field needs 1024 words"):
        _new(description="a" * 640)


def test_route_hint_longer_than_one_field_is_refused() -> None:
    assert len(_new(route_hints=[RouteHint((HOP,) * 12)])[1].route_hints[0].hops) == 12
    with pytest.raises(InvoiceError, match="'r' field needs"):
        _new(route_hints=[RouteHint((HOP,) * 13)])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"features": Features.of(required=[Feature.VAR_ONION_OPTIN])}, "payment_secret feature must be set"),
        ({"features": INVOICE_FEATURES.set_bit(200)}, r"unknown required feature bits \[200\]"),
        ({"fallback_addresses": ["bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"]}, "fallback address"),
        ({"amount_msat": 0}, "must be positive"),
        ({"payment_hash": b"short"}, "payment_hash must be 32 bytes"),
        ({"timestamp": 1 << 35}, "35 bits"),
        ({"expiry": -1}, "expiry"),
    ],
)
def test_bad_invoice_values_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(InvoiceError, match=message):
        _new(**overrides)


def test_encoding_needs_the_payees_key_and_a_payment_secret() -> None:
    _, invoice = _new()
    with pytest.raises(InvoiceError, match="does not belong to the invoice's payee"):
        encode_invoice(invoice, PrivateKey.from_int(5))
    with pytest.raises(InvoiceError, match="must include a payment secret"):
        encode_invoice(dataclasses.replace(invoice, payment_secret=None, encoding=None), KEY)


def test_changed_values_are_written_afresh_not_from_the_recorded_form() -> None:
    text, invoice = _new(amount_msat=1000)
    changed = dataclasses.replace(invoice, amount_msat=2000, expiry=60)
    again = decode_invoice(encode_invoice(changed, KEY))
    assert (again.amount_msat, again.expiry) == (2000, 60)
    assert encode_invoice(invoice, KEY) == text


def test_expiry() -> None:
    _, invoice = _new(expiry=0)
    assert invoice.is_expired(NOW)
    _, invoice = _new()
    assert not invoice.is_expired(NOW + 3599) and invoice.is_expired(NOW + 3600)
