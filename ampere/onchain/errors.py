"""Typed errors of on-chain enforcement."""

from __future__ import annotations

from ampere.errors import AmpereError

__all__ = ["ClaimBuildError", "ClassificationError", "OnchainError", "ResolverDecodeError"]


class OnchainError(AmpereError):
    """Base class of the on-chain layer's errors."""


class ClassificationError(OnchainError):
    """A transaction handed to the classifier does not spend this channel's funding output."""


class ClaimBuildError(OnchainError):
    """A claim transaction cannot be built (nothing to claim, or everything would go to fees)."""


class ResolverDecodeError(OnchainError):
    """Persisted resolver bytes are truncated, of an unknown version or inconsistent."""
