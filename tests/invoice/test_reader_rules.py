"""BOLT 11 reader rules beyond the spec's examples, on invoices signed field by field by a raw writer."""

from __future__ import annotations

import pytest

from ampere.bitcoin.bech32 import Encoding
from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.network import Network
from ampere.invoice import InvoiceError, decode_invoice, encode_invoice
from tests.invoice.helpers import HASH, SECRET, SPEC_KEY, basic_fields, field, to_words, write_raw

OTHER_KEY = PrivateKey.from_int(7)


def test_minimal_raw_invoice_decodes_with_defaults() -> None:
    invoice = decode_invoice(write_raw(basic_fields()))
    assert (invoice.payment_hash, invoice.payment_secret, invoice.description) == (HASH, SECRET, "test")
    assert (invoice.expiry, invoice.min_final_cltv_expiry_delta, invoice.amount_msat) == (3600, 18, None)
    assert invoice.payee == SPEC_KEY.public_key.data
    assert invoice.expires_at == 1496314658 + 3600
    assert not invoice.is_expired(invoice.expires_at - 1) and invoice.is_expired(invoice.expires_at)


def test_uri_scheme_and_surrounding_whitespace_are_accepted() -> None:
    text = write_raw(basic_fields())
    assert decode_invoice(f"  LIGHTNING:{text}\n") == decode_invoice(text)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (field("h", to_words(bytes(32))), "exactly one of 'd' and 'h' fields, it has both"),
        (field("x", [0, 1]), r"'x' \(expiry\) field is not minimally encoded"),
        (field("c", [0, 9]), r"'c' .* not minimally encoded"),
        (field("x", [1] * 8), "does not fit in 32 bits"),
        (field("n", to_words(SPEC_KEY.public_key.data)[:52]), "'n' field has data_length 52, it must be 53"),
        (field("s", to_words(SECRET)[:51]), "'s' field has data_length 51"),
        (field("r", to_words(bytes(50))), "route hint field of 50 bytes"),
        (field("r", to_words(bytes(51))), "route hint pubkey is not a valid"),
        (field("f", []), "empty fallback address field"),
        (field("f", [0, *to_words(bytes(21))]), r"invalid fallback address \(version 0\)"),
        (field("f", [17, *to_words(bytes(19))]), "needs a 20-byte hash"),
        (field("m", [31, 31]), "non-zero padding"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_bad_field_is_refused(extra: list[int], message: str) -> None:
    with pytest.raises(InvoiceError, match=message):
        decode_invoice(write_raw([*basic_fields(), *extra]))


def test_invoice_without_description_or_hash_is_refused() -> None:
    fields = [*field("p", to_words(HASH)), *field("s", to_words(SECRET))]
    with pytest.raises(InvoiceError, match="it has neither"):
        decode_invoice(write_raw(fields))


def test_missing_payment_hash_is_refused() -> None:
    fields = [*field("s", to_words(SECRET)), *field("d", [])]
    with pytest.raises(InvoiceError, match="missing required 'p' field"):
        decode_invoice(write_raw(fields))


def test_invalid_utf8_description_is_refused() -> None:
    fields = [*field("p", to_words(HASH)), *field("s", to_words(SECRET)), *field("d", to_words(b"\xff\xfe"))]
    with pytest.raises(InvoiceError, match="not valid UTF-8"):
        decode_invoice(write_raw(fields))


def _with_features(feature_words: list[int]) -> str:
    return write_raw(
        [
            *field("p", to_words(HASH)),
            *field("s", to_words(SECRET)),
            *field("d", []),
            *field("9", feature_words),
        ]
    )


def test_non_minimal_features_are_refused() -> None:
    with pytest.raises(InvoiceError, match="not minimally encoded"):
        decode_invoice(_with_features([0, 16, 8, 0]))


def test_unknown_even_feature_is_refused_and_unknown_odd_ignored() -> None:
    # 21 words = bits 0..104; bit 100 is word 0's value 1 (bits 100..104), bit 101 is its value 2.
    high = [0] * 18 + [16, 8, 0]
    with pytest.raises(InvoiceError, match=r"unknown required feature bits \[100\]"):
        decode_invoice(_with_features([1, *high[1:]]))
    assert 101 in decode_invoice(_with_features([2, *high[1:]])).features.bit_numbers()


def test_padding_bits_of_a_description_must_be_zero() -> None:
    fields = [*field("p", to_words(HASH)), *field("s", to_words(SECRET)), *field("d", [0, 1])]
    with pytest.raises(InvoiceError, match="non-zero padding"):
        decode_invoice(write_raw(fields))


def test_feature_missing_its_dependency_is_refused() -> None:
    # basic_mpp (17) without payment_secret (14/15): bits 8 and 17 only.
    fields = [
        *field("p", to_words(HASH)),
        *field("s", to_words(SECRET)),
        *field("d", []),
        *field("9", [4, 0, 8, 0]),
    ]
    with pytest.raises(InvoiceError, match="BASIC_MPP needs PAYMENT_SECRET"):
        decode_invoice(write_raw(fields))


def test_unknown_fields_and_fallback_versions_are_skipped_and_kept_for_reencoding() -> None:
    extra = [*field("2", [0, 0, 0]), *field("f", [19, 1, 2, 3]), *field("t", [0, 0])]
    text = write_raw([*basic_fields(), *extra])
    invoice = decode_invoice(text)
    assert invoice.fallback_addresses == ()
    assert invoice.encoding is not None
    assert [tagged.letter for tagged in invoice.encoding.fields] == ["p", "s", "d", "9", "2", "f", "t"]
    assert encode_invoice(invoice, SPEC_KEY) == text


def test_first_of_repeated_single_fields_wins() -> None:
    other_hash = bytes(32)
    invoice = decode_invoice(
        write_raw([*basic_fields(), *field("p", to_words(other_hash)), *field("x", [2])])
    )
    assert invoice.payment_hash == HASH
    assert invoice.expiry == 2


def test_n_field_is_used_to_verify_instead_of_recovery() -> None:
    text = write_raw([*basic_fields(), *field("n", to_words(SPEC_KEY.public_key.data))], recovery_override=3)
    # A wrong recovery id does not matter when `n` names the key.
    assert decode_invoice(text).payee == SPEC_KEY.public_key.data


def test_n_field_naming_another_key_is_refused() -> None:
    text = write_raw([*basic_fields(), *field("n", to_words(OTHER_KEY.public_key.data))])
    with pytest.raises(InvoiceError, match="does not verify against the payee key"):
        decode_invoice(text)


def test_recovery_without_n_yields_the_signer() -> None:
    assert decode_invoice(write_raw(basic_fields(), key=OTHER_KEY)).payee == OTHER_KEY.public_key.data


def test_recovery_id_out_of_range_is_refused() -> None:
    with pytest.raises(InvoiceError, match=r"recovery id 4 is not 0\.\.3"):
        decode_invoice(write_raw(basic_fields(), recovery_override=4))


def test_bech32m_checksum_is_refused() -> None:
    with pytest.raises(InvoiceError, match="bech32m"):
        decode_invoice(write_raw(basic_fields(), encoding=Encoding.BECH32M))


def test_truncated_field_is_refused() -> None:
    with pytest.raises(InvoiceError, match="claims 52 words but the data ends first"):
        decode_invoice(write_raw(field("p", to_words(HASH))[:20]))


@pytest.mark.parametrize(
    ("hrp", "network"),
    [
        ("lnbc", Network.MAINNET),
        ("lntb", Network.TESTNET),
        ("lntbs", Network.SIGNET),
        ("lnbcrt", Network.REGTEST),
    ],
)
def test_currency_prefixes_and_network_filter(hrp: str, network: Network) -> None:
    text = write_raw(basic_fields(), hrp=hrp + "10u")
    invoice = decode_invoice(text, network=network)
    assert (invoice.network, invoice.amount_msat) == (network, 1_000_000)
    other = Network.MAINNET if network is not Network.MAINNET else Network.REGTEST
    with pytest.raises(InvoiceError, match=f"invoice is for {network.value}, not {other.value}"):
        decode_invoice(text, network=other)


def test_overlong_string_is_refused_before_parsing() -> None:
    with pytest.raises(InvoiceError, match="longer than"):
        decode_invoice("lnbc1" + "q" * 20000)


def test_non_string_is_refused() -> None:
    with pytest.raises(InvoiceError, match="is a string"):
        decode_invoice(b"lnbc1")  # type: ignore[arg-type]
