"""BOLT 11 invoices: decode and verify what payers are given, encode and sign what we hand out."""

from ampere.invoice.codec import (
    INVOICE_FEATURES,
    MAX_INVOICE_LENGTH,
    decode_invoice,
    encode_invoice,
    new_invoice,
)
from ampere.invoice.errors import InvoiceError
from ampere.invoice.hrp import CURRENCY_PREFIXES
from ampere.invoice.model import (
    DEFAULT_EXPIRY,
    DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA,
    Invoice,
    InvoiceEncoding,
    RouteHint,
    RouteHintHop,
    TaggedField,
)

__all__ = [
    "CURRENCY_PREFIXES",
    "DEFAULT_EXPIRY",
    "DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA",
    "INVOICE_FEATURES",
    "MAX_INVOICE_LENGTH",
    "Invoice",
    "InvoiceEncoding",
    "InvoiceError",
    "RouteHint",
    "RouteHintHop",
    "TaggedField",
    "decode_invoice",
    "encode_invoice",
    "new_invoice",
]
