"""Errors of the invoice layer."""

from ampere.errors import AmpereError


class InvoiceError(AmpereError):
    """A BOLT 11 invoice that cannot be decoded, verified or encoded; the message names the problem."""
