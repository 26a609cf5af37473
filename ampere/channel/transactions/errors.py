"""Errors raised while building or signing BOLT 3 transactions."""

from ampere.errors import AmpereError


class TransactionBuildError(AmpereError):
    """Inputs that cannot produce a valid BOLT 3 transaction (bad amounts, keys, or parameters)."""


class FundingOutputNotFoundError(TransactionBuildError):
    """A transaction that does not pay the expected 2-of-2 funding output."""


class SignatureError(AmpereError):
    """A signature that cannot be produced or is attached where it does not belong."""
