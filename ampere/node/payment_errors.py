"""Errors of invoices and payments; the RPC layer maps each to its own JSON-RPC application error."""

from __future__ import annotations

from ampere.errors import AmpereError

__all__ = [
    "AlreadyPaidError",
    "DuplicateLabelError",
    "InvalidInvoiceError",
    "InvoiceExpiredError",
    "NoRouteError",
    "PaymentError",
    "PaymentInProgressError",
    "PaymentsUnavailableError",
    "SelfPaymentError",
]


class PaymentError(AmpereError):
    """An invoice or a payment cannot be made as asked; the message says why."""


class InvalidInvoiceError(PaymentError):
    """The BOLT 11 text does not decode, is for another network, or lacks what we need (an amount)."""


class InvoiceExpiredError(PaymentError):
    """The invoice's expiry has passed: its payee may no longer accept the payment."""


class AlreadyPaidError(PaymentError):
    """A payment to this payment hash already completed."""


class PaymentInProgressError(PaymentError):
    """A payment to this payment hash is still pending."""


class SelfPaymentError(PaymentError):
    """The invoice is our own."""


class NoRouteError(PaymentError):
    """No channel can carry the payment to the payee (direct channels only for now)."""


class DuplicateLabelError(PaymentError):
    """Another invoice already has this label."""


class PaymentsUnavailableError(PaymentError):
    """The payment service is not running, or the node has no two-way channels to pay over."""
