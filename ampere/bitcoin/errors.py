"""Errors of the Bitcoin layer."""

from ampere.errors import AmpereError


class BitcoinError(AmpereError):
    """Base of every error raised by `ampere.bitcoin`."""


class DeserializationError(BitcoinError):
    """Bytes that do not decode to the Bitcoin structure asked for."""


class ScriptError(BitcoinError):
    """A script that cannot be built or parsed."""


class InvalidKeyError(BitcoinError):
    """An invalid private key, public key or signature encoding."""
