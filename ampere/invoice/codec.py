"""BOLT 11 invoice encoding and decoding: bech32 framing, tagged fields, signature and payee recovery."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ampere.bitcoin.bech32 import Bech32Error, Encoding, bech32_decode, bech32_encode, convertbits
from ampere.bitcoin.errors import InvalidKeyError
from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.keys import (
    PrivateKey,
    is_low_s,
    is_valid_pubkey,
    recover_pubkey,
    sign_recoverable,
    verify_compact,
)
from ampere.bitcoin.network import Network
from ampere.invoice.errors import InvoiceError
from ampere.invoice.fields import (
    MAX_FIELD_WORDS,
    Tag,
    bytes_to_words,
    fallback_field,
    int_to_words,
    parse_fallback,
    parse_route_hint,
    parse_uint,
    route_hint_field,
    split_fields,
    words_to_bytes,
    words_to_int,
)
from ampere.invoice.hrp import format_hrp, parse_hrp
from ampere.invoice.model import (
    DEFAULT_EXPIRY,
    DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA,
    Invoice,
    InvoiceEncoding,
    RouteHint,
    TaggedField,
)
from ampere.wire.errors import FeatureError
from ampere.wire.features import Feature, Features

__all__ = ["INVOICE_FEATURES", "MAX_INVOICE_LENGTH", "decode_invoice", "encode_invoice", "new_invoice"]

logger = logging.getLogger(__name__)

#: What a payee of ours needs from the payer: var_onion_optin and payment_secret are compulsory
#: (BOLT 9 lists them as ASSUMED, so writers set them required); basic_mpp is offered.
INVOICE_FEATURES = Features.of(
    required=(Feature.VAR_ONION_OPTIN, Feature.PAYMENT_SECRET), optional=(Feature.BASIC_MPP,)
)
#: BOLT 11 lifts bech32's 90-character limit but sets none of its own. A QR code holds at most
#: 4296 alphanumeric characters; we allow four times that and refuse more before any parsing work.
MAX_INVOICE_LENGTH = 16384
_URI_SCHEME = "lightning:"
_TIMESTAMP_WORDS = 7
_SIGNATURE_WORDS = 104  # 520 bits: r, s and the recovery id
_FIXED_LENGTHS = {Tag.PAYMENT_HASH: 52, Tag.PAYMENT_SECRET: 52, Tag.DESCRIPTION_HASH: 52, Tag.PAYEE: 53}


def _signing_digest(hrp: str, signed_words: Sequence[int]) -> bytes:
    return sha256(hrp.encode() + bytes(convertbits(signed_words, 5, 8, pad=True)))


def _check_fixed_lengths(fields: Sequence[TaggedField]) -> None:
    # Since PR #1243 a reader fails, rather than skips, a p/h/s/n field of the wrong length.
    for tagged in fields:
        expected = _FIXED_LENGTHS.get(tagged.tag)
        if expected is not None and len(tagged.data) != expected:
            raise InvoiceError(
                f"'{tagged.letter}' field has data_length {len(tagged.data)}, it must be {expected}"
            )


def _parse_features(words: Sequence[int]) -> Features:
    if words and words[0] == 0:
        raise InvoiceError("'9' (features) field is not minimally encoded (leading zero)")
    features = Features(words_to_int(words))
    try:
        features.validate()
    except FeatureError as exc:
        raise InvoiceError(f"invoice features: {exc}") from None
    return features


def _invoice_from_fields(
    *,
    network: Network,
    amount_msat: int | None,
    timestamp: int,
    fields: Sequence[TaggedField],
    payee: bytes,
    encoding: InvoiceEncoding | None,
) -> Invoice:
    """Interpret the tagged fields: the first of each single-valued type counts, unknown types are skipped."""
    _check_fixed_lengths(fields)
    first: dict[int, tuple[int, ...]] = {}
    route_hints: list[RouteHint] = []
    fallbacks: list[str] = []
    for tagged in fields:
        if tagged.tag == Tag.ROUTE_HINT:
            route_hints.append(parse_route_hint(tagged.data))
        elif tagged.tag == Tag.FALLBACK:
            address = parse_fallback(tagged.data, network)
            if address is not None:
                fallbacks.append(address)
        else:
            first.setdefault(tagged.tag, tagged.data)
    if Tag.PAYMENT_HASH not in first:
        raise InvoiceError("missing required 'p' field (payment hash)")
    if Tag.PAYMENT_SECRET not in first:
        raise InvoiceError("missing required 's' field (payment secret)")
    has_description, has_hash = Tag.DESCRIPTION in first, Tag.DESCRIPTION_HASH in first
    if has_description == has_hash:
        which = "both" if has_description else "neither"
        raise InvoiceError(f"an invoice needs exactly one of 'd' and 'h' fields, it has {which}")
    description = None
    if has_description:
        raw = words_to_bytes(first[Tag.DESCRIPTION], "'d' (description) field")
        try:
            description = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvoiceError("'d' (description) field is not valid UTF-8") from None
    description_hash = None
    if has_hash:
        description_hash = words_to_bytes(first[Tag.DESCRIPTION_HASH], "'h' (description hash) field")
    metadata = None
    if Tag.METADATA in first:
        metadata = words_to_bytes(first[Tag.METADATA], "'m' (metadata) field")
    expiry = DEFAULT_EXPIRY
    if Tag.EXPIRY in first:
        expiry = parse_uint(first[Tag.EXPIRY], "'x' (expiry)")
    min_final = DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA
    if Tag.MIN_FINAL_CLTV_EXPIRY in first:
        min_final = parse_uint(first[Tag.MIN_FINAL_CLTV_EXPIRY], "'c' (min_final_cltv_expiry_delta)")
    features = _parse_features(first.get(Tag.FEATURES, ()))
    return Invoice(
        network=network,
        amount_msat=amount_msat,
        timestamp=timestamp,
        payment_hash=words_to_bytes(first[Tag.PAYMENT_HASH], "'p' (payment hash) field"),
        payment_secret=words_to_bytes(first[Tag.PAYMENT_SECRET], "'s' (payment secret) field"),
        payee=payee,
        description=description,
        description_hash=description_hash,
        expiry=expiry,
        min_final_cltv_expiry_delta=min_final,
        features=features,
        route_hints=tuple(route_hints),
        fallback_addresses=tuple(fallbacks),
        metadata=metadata,
        encoding=encoding,
    )


def _payee(fields: Sequence[TaggedField], signature: bytes, digest: bytes) -> bytes:
    payee_words = next((tagged.data for tagged in fields if tagged.tag == Tag.PAYEE), None)
    if payee_words is None:
        # Without `n` the reader recovers the key and accepts high-S as well as low-S signatures.
        try:
            return recover_pubkey(signature, digest)
        except InvalidKeyError as exc:
            raise InvoiceError(f"signature is not recoverable: {exc}") from None
    payee = words_to_bytes(payee_words, "'n' (payee) field")
    if not is_valid_pubkey(payee):
        raise InvoiceError("'n' (payee) field is not a valid public key")
    if not is_low_s(signature[:64]):
        raise InvoiceError("signature is not low-S, which a reader must refuse when the 'n' field is present")
    if not verify_compact(payee, signature[:64], digest):
        raise InvoiceError("signature does not verify against the payee key in the 'n' field")
    return payee


def decode_invoice(text: str, *, network: Network | None = None) -> Invoice:
    """Decode and verify a BOLT 11 invoice; with `network`, an invoice for another currency is refused."""
    if not isinstance(text, str):
        raise InvoiceError(f"an invoice is a string, not {type(text).__name__}")
    text = text.strip()
    if text[: len(_URI_SCHEME)].lower() == _URI_SCHEME:
        text = text[len(_URI_SCHEME) :]
    if len(text) > MAX_INVOICE_LENGTH:
        raise InvoiceError(f"invoice of {len(text)} characters is longer than {MAX_INVOICE_LENGTH}")
    try:
        decoded = bech32_decode(text, max_length=None)
    except Bech32Error as exc:
        raise InvoiceError(f"not a valid bech32 string: {exc}") from None
    if decoded.encoding is not Encoding.BECH32:
        raise InvoiceError("invoice uses a bech32m checksum, BOLT 11 requires bech32")
    invoice_network, amount_msat = parse_hrp(decoded.hrp)
    if network is not None and invoice_network is not network:
        raise InvoiceError(f"invoice is for {invoice_network.value}, not {network.value}")
    words = decoded.data
    if len(words) < _TIMESTAMP_WORDS + _SIGNATURE_WORDS:
        raise InvoiceError(f"data part of {len(words)} words is too short for a timestamp and a signature")
    signed_words = words[:-_SIGNATURE_WORDS]
    signature = words_to_bytes(words[-_SIGNATURE_WORDS:], "signature")
    if signature[64] > 3:
        raise InvoiceError(f"signature recovery id {signature[64]} is not 0..3")
    fields = split_fields(signed_words[_TIMESTAMP_WORDS:])
    _check_fixed_lengths(fields)
    payee = _payee(fields, signature, _signing_digest(decoded.hrp, signed_words))
    return _invoice_from_fields(
        network=invoice_network,
        amount_msat=amount_msat,
        timestamp=words_to_int(signed_words[:_TIMESTAMP_WORDS]),
        fields=fields,
        payee=payee,
        encoding=InvoiceEncoding(decoded.hrp, tuple(fields), signature),
    )


def _bytes_field(tag: int, data: bytes) -> TaggedField:
    return TaggedField(tag, tuple(bytes_to_words(data)))


def _fields_for(invoice: Invoice) -> list[TaggedField]:
    """Our own field order for an invoice built locally. `n` is left out: readers recover the payee."""
    if invoice.payment_secret is None:
        raise InvoiceError("a writer must include a payment secret ('s' field)")
    fields = [
        _bytes_field(Tag.PAYMENT_HASH, invoice.payment_hash),
        _bytes_field(Tag.PAYMENT_SECRET, invoice.payment_secret),
    ]
    if invoice.description is not None:
        fields.append(_bytes_field(Tag.DESCRIPTION, invoice.description.encode("utf-8")))
    if invoice.description_hash is not None:
        fields.append(_bytes_field(Tag.DESCRIPTION_HASH, invoice.description_hash))
    if invoice.metadata is not None:
        fields.append(_bytes_field(Tag.METADATA, invoice.metadata))
    if invoice.expiry != DEFAULT_EXPIRY:
        fields.append(TaggedField(Tag.EXPIRY, tuple(int_to_words(invoice.expiry))))
    # Writers SHOULD include `c` even at the default value.
    fields.append(
        TaggedField(Tag.MIN_FINAL_CLTV_EXPIRY, tuple(int_to_words(invoice.min_final_cltv_expiry_delta)))
    )
    fields.extend(fallback_field(address, invoice.network) for address in invoice.fallback_addresses)
    fields.extend(route_hint_field(hint) for hint in invoice.route_hints)
    if invoice.features.bits:
        fields.append(TaggedField(Tag.FEATURES, tuple(int_to_words(invoice.features.bits))))
    for tagged in fields:
        if len(tagged.data) > MAX_FIELD_WORDS:
            raise InvoiceError(
                f"'{tagged.letter}' field needs {len(tagged.data)} words, "
                f"more than the {MAX_FIELD_WORDS} allowed"
            )
    return fields


def _written_form(invoice: Invoice) -> tuple[str, list[TaggedField]]:
    """The decoded form (HRP and fields in their order) when it still says what `invoice` says, else ours."""
    recorded = invoice.encoding
    if recorded is not None:
        try:
            network, amount_msat = parse_hrp(recorded.hrp)
            payee_fields = [tagged.data for tagged in recorded.fields if tagged.tag == Tag.PAYEE]
            same_payee = not payee_fields or words_to_bytes(payee_fields[0], "'n' field") == invoice.payee
            replica = _invoice_from_fields(
                network=network,
                amount_msat=amount_msat,
                timestamp=invoice.timestamp,
                fields=recorded.fields,
                payee=invoice.payee,
                encoding=None,
            )
        except InvoiceError:
            logger.debug("recorded encoding of an invoice no longer decodes; writing it afresh")
        else:
            if same_payee and replica == invoice:
                return recorded.hrp, list(recorded.fields)
    return format_hrp(invoice.network, invoice.amount_msat), _fields_for(invoice)


def _check_features(invoice: Invoice) -> None:
    try:
        invoice.features.validate()
    except FeatureError as exc:
        raise InvoiceError(f"invoice features: {exc}") from None
    if not invoice.features.has(Feature.PAYMENT_SECRET):
        raise InvoiceError("the payment_secret feature must be set: a writer always includes an 's' field")


def encode_invoice(invoice: Invoice, private_key: PrivateKey) -> str:
    """Sign `invoice` with the payee's key and return the (lowercase) bech32 string.

    A decoded invoice whose values are unchanged is written with its original field order and
    unknown fields, so it re-encodes byte for byte (signatures are deterministic, RFC 6979).
    """
    if private_key.public_key.data != invoice.payee:
        raise InvoiceError("the private key does not belong to the invoice's payee")
    _check_features(invoice)
    hrp, fields = _written_form(invoice)
    words = [(invoice.timestamp >> 5 * shift) & 31 for shift in range(_TIMESTAMP_WORDS - 1, -1, -1)]
    for tagged in fields:
        words.extend((tagged.tag, len(tagged.data) >> 5, len(tagged.data) & 31, *tagged.data))
    try:
        signature = sign_recoverable(private_key.secret, _signing_digest(hrp, words))
    except InvalidKeyError as exc:  # pragma: no cover - PrivateKey is validated on construction
        raise InvoiceError(f"cannot sign the invoice: {exc}") from None
    return bech32_encode(hrp, [*words, *bytes_to_words(signature)], Encoding.BECH32, max_length=None)


def new_invoice(
    *,
    network: Network,
    amount_msat: int | None,
    payment_hash: bytes,
    payment_secret: bytes,
    private_key: PrivateKey,
    timestamp: int,
    description: str | None = None,
    description_hash: bytes | None = None,
    expiry: int = DEFAULT_EXPIRY,
    min_final_cltv_expiry_delta: int = DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA,
    features: Features = INVOICE_FEATURES,
    route_hints: Sequence[RouteHint] = (),
    fallback_addresses: Sequence[str] = (),
    metadata: bytes | None = None,
) -> tuple[str, Invoice]:
    """Build, sign and re-decode an invoice of ours: returns the bech32 string and the decoded invoice.

    Without `description_hash` the description defaults to the empty string (BOLT 11 needs `d` or `h`).
    """
    if description is None and description_hash is None:
        description = ""
    invoice = Invoice(
        network=network,
        amount_msat=amount_msat,
        timestamp=timestamp,
        payment_hash=payment_hash,
        payment_secret=payment_secret,
        payee=private_key.public_key.data,
        description=description,
        description_hash=description_hash,
        expiry=expiry,
        min_final_cltv_expiry_delta=min_final_cltv_expiry_delta,
        features=features,
        route_hints=tuple(route_hints),
        fallback_addresses=tuple(fallback_addresses),
        metadata=metadata,
    )
    text = encode_invoice(invoice, private_key)
    return text, decode_invoice(text, network=network)
