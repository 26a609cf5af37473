"""Typed errors for the wire layer.

Every failure to decode bytes received from a peer surfaces as a ``WireError``
(or subclass), never as a stray ``IndexError``/``ValueError``, so that the peer
layer can treat any of them uniformly.  ``must_disconnect`` tells it whether
BOLT #1 obliges it to close the connection (unknown even message, malformed
known message, invalid extension) or whether the fault is local (we tried to
encode something invalid).
"""

from __future__ import annotations

from ampere.errors import AmpereError


class WireError(AmpereError):
    """Base class of every wire-format error."""

    must_disconnect: bool = True

    def __init__(self, message: str, *, msg_type: int | None = None) -> None:
        super().__init__(message)
        self.msg_type = msg_type


class DecodeError(WireError):
    """Bytes from the wire do not form a valid encoding (truncated, non-canonical, out of range)."""


class UnexpectedEOFError(DecodeError):
    """The input ended before a field was complete."""


class NonCanonicalError(DecodeError):
    """A value was not minimally encoded (BigSize, truncated integer)."""


class InvalidPointError(DecodeError):
    """A ``point`` field is not a valid compressed secp256k1 public key."""


class TlvError(DecodeError):
    """A TLV stream violates BOLT #1 (ordering, duplicates, lengths, unknown even type)."""


class UnknownEvenTlvError(TlvError):
    """A TLV stream holds an even record type we do not understand."""

    def __init__(self, message: str, *, tlv_type: int, msg_type: int | None = None) -> None:
        super().__init__(message, msg_type=msg_type)
        self.tlv_type = tlv_type


class UnknownEvenMessageError(WireError):
    """A message of even, unknown type: BOLT #1 says the connection MUST be closed."""


class EncodeError(WireError):
    """A value handed to an encoder does not fit its declared wire type (a local bug, not the peer's)."""

    must_disconnect = False


class MessageTooLongError(EncodeError):
    """A message would exceed the 65535-byte limit of the transport."""


class SchemaError(WireError):
    """The wire tables (CSV) are inconsistent, or a name is not in them."""

    must_disconnect = False


class FeatureError(WireError):
    """A feature vector sets unknown even bits or lacks a dependency."""
