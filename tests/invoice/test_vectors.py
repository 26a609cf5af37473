"""Every BOLT 11 example invoice: decoded field by field, re-encoded byte for byte; every invalid one refused.

Two vectors need a decision, both following the reader rules of the spec commit the vectors come from:

* "Same, but including fields which must be ignored" is still listed as valid, but since PR #1243 a
  reader MUST fail the payment when a p/h/s/n field has the wrong data_length. We follow the
  requirement and refuse it, naming the offending field.
* "Public-key recovery with high-S signature": the spec states no expected payee. A reader without
  `n` MUST accept high-S signatures and recover the key; we recover from (r, s, recovery id) as
  transmitted, which gives 02d0139c...803d (the vector file's decoded key, also what eclair asserts),
  not the examples' signing key. Its low-S twin is the first example, which is what re-signing yields.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from ampere.bitcoin.keys import is_low_s
from ampere.bitcoin.network import Network
from ampere.invoice import Invoice, InvoiceError, decode_invoice, encode_invoice
from ampere.wire.primitives import ShortChannelId
from tests.invoice.helpers import SPEC_KEY, VECTORS

NETWORKS = {"bitcoin mainnet": Network.MAINNET, "bitcoin testnet": Network.TESTNET}
IGNORED_FIELDS_TITLE = "Same, but including fields which must be ignored."
HIGH_S_TITLE = "Public-key recovery with high-S signature"
VALID = [vector for vector in VECTORS["valid"] if vector["title"] != IGNORED_FIELDS_TITLE]
RESIGNABLE = [vector for vector in VALID if vector["title"] != HIGH_S_TITLE]


def _by_title(title: str) -> dict[str, Any]:
    matches: list[dict[str, Any]] = [vector for vector in VECTORS["valid"] if vector["title"] == title]
    assert len(matches) == 1
    return matches[0]


def test_vector_counts() -> None:
    assert len(VECTORS["valid"]) == VECTORS["counts"]["valid"] == 16
    assert len(VECTORS["invalid"]) == VECTORS["counts"]["invalid"] == 10
    assert len(VALID) == 15 and len(RESIGNABLE) == 14


def _assert_matches(invoice: Invoice, expected: dict[str, Any]) -> None:
    assert invoice.network is NETWORKS[expected["network"]]
    assert invoice.amount_msat == expected["amount_msat"]
    assert invoice.timestamp == expected["timestamp"]
    assert invoice.payment_hash.hex() == expected["payment_hash"]
    assert invoice.payment_secret is not None
    assert invoice.payment_secret.hex() == expected["payment_secret"]
    assert invoice.description == expected.get("description")
    description_hash = invoice.description_hash.hex() if invoice.description_hash else None
    assert description_hash == expected.get("description_hash")
    assert invoice.expiry == expected.get("expiry", 3600)
    assert invoice.min_final_cltv_expiry_delta == expected.get("min_final_cltv_expiry_delta", 18)
    assert list(invoice.features.bit_numbers()) == expected["features"]["bits"]
    metadata = invoice.metadata.hex() if invoice.metadata is not None else None
    assert metadata == expected.get("metadata")
    assert invoice.payee.hex() == expected["pubkey"]
    assert invoice.fallback_addresses == tuple(
        item["address"] for item in expected.get("fallback_addresses", [])
    )
    hints = [
        [
            {
                "pubkey": hop.pubkey.hex(),
                "short_channel_id": str(hop.short_channel_id),
                "fee_base_msat": hop.fee_base_msat,
                "fee_proportional_millionths": hop.fee_proportional_millionths,
                "cltv_expiry_delta": hop.cltv_expiry_delta,
            }
            for hop in hint.hops
        ]
        for hint in invoice.route_hints
    ]
    assert hints == expected.get("routing_hints", [])
    assert invoice.encoding is not None
    assert [tagged.letter for tagged in invoice.encoding.fields] == expected["tagged_field_order"]
    assert invoice.signature == bytes.fromhex(expected["signature"]) + bytes([expected["recovery_flag"]])


@pytest.mark.parametrize("vector", VALID, ids=lambda vector: vector["title"][:50])
def test_valid_vector_decodes_to_its_fields(vector: dict[str, Any]) -> None:
    _assert_matches(decode_invoice(vector["invoice"]), vector["decoded"])


@pytest.mark.parametrize("vector", RESIGNABLE, ids=lambda vector: vector["title"][:50])
def test_valid_vector_reencodes_byte_for_byte(vector: dict[str, Any]) -> None:
    invoice = decode_invoice(vector["invoice"])
    # Writers produce lowercase; the all-uppercase example differs from its lowercase form only in case.
    assert encode_invoice(invoice, SPEC_KEY) == vector["invoice"].lower()


@pytest.mark.parametrize("vector", RESIGNABLE, ids=lambda vector: vector["title"][:50])
def test_valid_vector_written_afresh_decodes_to_the_same_invoice(vector: dict[str, Any]) -> None:
    invoice = decode_invoice(vector["invoice"])
    fresh = dataclasses.replace(invoice, encoding=None)
    assert decode_invoice(encode_invoice(fresh, SPEC_KEY)) == invoice


def test_route_hint_short_channel_ids_are_typed() -> None:
    invoice = decode_invoice(VALID[5]["invoice"])
    assert invoice.route_hints[0].hops[0].short_channel_id == ShortChannelId(66051, 263430, 1800)
    assert invoice.route_hints[0].hops[1].short_channel_id.to_bytes() == bytes.fromhex("030405060708090a")


def test_high_s_signature_is_accepted_and_recovered_as_transmitted() -> None:
    vector = _by_title(HIGH_S_TITLE)
    invoice = decode_invoice(vector["invoice"])
    assert invoice.signature is not None and not is_low_s(invoice.signature[:64])
    assert invoice.payee.hex() == vector["decoded"]["pubkey"] != VECTORS["public_key"]
    # Signed by the examples' key, the same content gives the low-S first example.
    ours = dataclasses.replace(invoice, payee=SPEC_KEY.public_key.data)
    assert encode_invoice(ours, SPEC_KEY) == VECTORS["valid"][0]["invoice"]
    with pytest.raises(InvoiceError, match="private key does not belong"):
        encode_invoice(invoice, SPEC_KEY)


def test_wrong_length_fixed_fields_are_refused_under_current_reader_rules() -> None:
    vector = _by_title(IGNORED_FIELDS_TITLE)
    assert "spec_inconsistency" in vector
    with pytest.raises(InvoiceError, match=r"'p' field has data_length 51, it must be 52"):
        decode_invoice(vector["invoice"])


INVALID_MESSAGES = {
    "Same, but adding invalid unknown feature 100": r"unknown required feature bits \[100\]",
    "Bech32 checksum is invalid.": r"invalid checksum",
    "Malformed bech32 string (no 1)": r"no separator",
    "Malformed bech32 string (mixed case)": r"mixed-case",
    "Signature is not recoverable.": r"not recoverable",
    "String is too short.": r"too short",
    "Invalid multiplier": r"invalid amount '2500x'.*multiplier",
    "Invalid sub-millisatoshi precision.": r"sub-millisatoshi",
    "Missing required `s` field.": r"missing required 's' field",
    "Non canonical signature (high-S) with 'n' field defined": r"not low-S.*'n' field",
}


def test_every_invalid_vector_has_an_expected_message() -> None:
    assert sorted(vector["reason"] for vector in VECTORS["invalid"]) == sorted(INVALID_MESSAGES)


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda vector: vector["reason"][:50])
def test_invalid_vector_is_refused_with_a_message_naming_the_problem(vector: dict[str, Any]) -> None:
    with pytest.raises(InvoiceError, match=re.compile(INVALID_MESSAGES[vector["reason"]], re.IGNORECASE)):
        decode_invoice(vector["invoice"])
