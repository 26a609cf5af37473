"""Property and fuzz tests: encode→decode round trips, and hostile strings raise only InvoiceError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.address import script_pubkey_to_address, witness_script_pubkey
from ampere.bitcoin.bech32 import Encoding, bech32_encode
from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.network import Network
from ampere.invoice import (
    Invoice,
    InvoiceError,
    RouteHint,
    RouteHintHop,
    decode_invoice,
    encode_invoice,
)
from ampere.invoice.model import MAX_AMOUNT_MSAT, MAX_TIMESTAMP, MAX_U32
from ampere.wire.features import Feature, Features
from ampere.wire.primitives import ShortChannelId
from tests.invoice.helpers import VECTORS, write_raw

KEYS = [PrivateKey.from_int(value) for value in (1, 2, 0xC0FFEE, 2**200 + 17)]
NODE_IDS = [key.public_key.data for key in KEYS]
SAFE_FEATURES = [Feature.VAR_ONION_OPTIN, Feature.BASIC_MPP, Feature.PAYMENT_METADATA, Feature.ROUTE_BLINDING]

u32 = st.integers(min_value=0, max_value=MAX_U32)
hops = st.builds(
    RouteHintHop,
    pubkey=st.sampled_from(NODE_IDS),
    short_channel_id=st.builds(
        ShortChannelId,
        st.integers(0, (1 << 24) - 1),
        st.integers(0, (1 << 24) - 1),
        st.integers(0, (1 << 16) - 1),
    ),
    fee_base_msat=u32,
    fee_proportional_millionths=u32,
    cltv_expiry_delta=st.integers(0, (1 << 16) - 1),
)


@st.composite
def features(draw: st.DrawFn) -> Features:
    result = Features().with_feature(Feature.PAYMENT_SECRET, required=draw(st.booleans()))
    for feature in draw(st.lists(st.sampled_from(SAFE_FEATURES), max_size=4)):
        result = result.with_feature(feature, required=draw(st.booleans()))
    for odd_bit in draw(st.lists(st.integers(100, 300).map(lambda bit: bit | 1), max_size=3)):
        result = result.set_bit(odd_bit)
    return result


@st.composite
def fallback_addresses(draw: st.DrawFn, network: Network) -> str:
    version = draw(st.integers(0, 16))
    if version == 0:
        program = draw(st.binary(min_size=20, max_size=20) | st.binary(min_size=32, max_size=32))
    else:
        program = draw(st.binary(min_size=2, max_size=40))
    return script_pubkey_to_address(witness_script_pubkey(version, program), network)


@st.composite
def invoices(draw: st.DrawFn) -> tuple[Invoice, PrivateKey]:
    index = draw(st.integers(0, len(KEYS) - 1))
    network = draw(st.sampled_from(list(Network)))
    use_hash = draw(st.booleans())
    invoice = Invoice(
        network=network,
        amount_msat=draw(st.none() | st.integers(1, MAX_AMOUNT_MSAT)),
        timestamp=draw(st.integers(0, MAX_TIMESTAMP)),
        payment_hash=draw(st.binary(min_size=32, max_size=32)),
        payment_secret=draw(st.binary(min_size=32, max_size=32)),
        payee=NODE_IDS[index],
        description=None if use_hash else draw(st.text(max_size=60)),
        description_hash=draw(st.binary(min_size=32, max_size=32)) if use_hash else None,
        expiry=draw(u32),
        min_final_cltv_expiry_delta=draw(u32),
        features=draw(features()),
        route_hints=tuple(
            draw(
                st.lists(st.builds(RouteHint, st.lists(hops, min_size=1, max_size=3).map(tuple)), max_size=2)
            )
        ),
        fallback_addresses=tuple(draw(st.lists(fallback_addresses(network), max_size=2))),
        metadata=draw(st.none() | st.binary(max_size=40)),
    )
    return invoice, KEYS[index]


@given(invoices())
def test_encode_then_decode_roundtrips(case: tuple[Invoice, PrivateKey]) -> None:
    invoice, key = case
    text = encode_invoice(invoice, key)
    decoded = decode_invoice(text, network=invoice.network)
    assert decoded == invoice
    assert encode_invoice(decoded, key) == text
    assert decode_invoice(text.upper()) == invoice


VALID_TEXTS = [vector["invoice"] for vector in VECTORS["valid"]]
_ALPHABET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l1lnbcQPZ \x00é"


def _decode_or_invoice_error(text: str) -> None:
    try:
        decode_invoice(text)
    except InvoiceError as exc:
        assert str(exc)


@pytest.mark.fuzz
@given(st.sampled_from(VALID_TEXTS), st.data())
def test_mutated_vectors_raise_only_invoice_error(text: str, data: st.DataObject) -> None:
    chars = list(text)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(chars) - 1))
        action = data.draw(st.sampled_from(["replace", "delete", "insert", "truncate"]))
        if action == "replace":
            chars[position] = data.draw(st.sampled_from(_ALPHABET))
        elif action == "delete" and len(chars) > 1:
            del chars[position]
        elif action == "insert":
            chars.insert(position, data.draw(st.sampled_from(_ALPHABET)))
        else:
            chars = chars[: max(position, 1)]
    _decode_or_invoice_error("".join(chars))


@pytest.mark.fuzz
@given(st.text(max_size=300) | st.text(alphabet=_ALPHABET, max_size=400))
def test_garbage_text_raises_only_invoice_error(text: str) -> None:
    _decode_or_invoice_error(text)


@pytest.mark.fuzz
@given(
    st.sampled_from(["lnbc", "lntb", "lnbcrt", "lntbs", "lnbc25m", "lnbc1p", "ln", "lnbc0", "lnxx"]),
    st.lists(st.integers(0, 31), max_size=400),
)
def test_random_words_with_a_valid_checksum_raise_only_invoice_error(hrp: str, words: list[int]) -> None:
    # The checksum is right, so every later stage (fields, signature, recovery) sees the hostile data.
    _decode_or_invoice_error(bech32_encode(hrp, words, Encoding.BECH32, max_length=None))


@pytest.mark.fuzz
@given(st.lists(st.tuples(st.integers(0, 31), st.lists(st.integers(0, 31), max_size=70)), max_size=8))
def test_signed_random_fields_raise_only_invoice_error(fields: list[tuple[int, list[int]]]) -> None:
    # Correctly signed, so field interpretation runs to the end on arbitrary field soup.
    words = [
        *[1, 1, 20, *([0] * 52)],  # a valid `p` so the soup is interpreted past the first checks
        *[word for tag, data in fields for word in (tag, len(data) >> 5, len(data) & 31, *data)],
    ]
    _decode_or_invoice_error(write_raw(words))
