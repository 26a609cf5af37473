"""Errors of the chain layer: a typed reason for every way a broadcast can be refused."""

from __future__ import annotations

from enum import Enum

from ampere.errors import AmpereError


class RejectReason(Enum):
    """Why a transaction was refused, the same whichever backend (embedded or bitcoind) refused it."""

    DECODE_FAILED = "decode-failed"
    NON_FINAL = "non-final"  # nLockTime not yet reached (BIP113 median time for time locks)
    NON_BIP68_FINAL = "non-BIP68-final"  # relative lock (CSV/nSequence) not yet reached
    SCRIPT_VERIFY_FAILED = "script-verify-failed"
    MISSING_OR_SPENT_INPUTS = "missing-or-spent-inputs"
    ALREADY_IN_CHAIN = "already-in-chain"
    ALREADY_IN_MEMPOOL = "already-in-mempool"
    CONFLICT = "mempool-conflict"  # double spend the replacement rules refused
    INSUFFICIENT_FEE = "insufficient-fee"  # below min relay fee, or an RBF replacement paying too little
    PREMATURE_COINBASE_SPEND = "premature-coinbase-spend"
    OUTPUTS_EXCEED_INPUTS = "outputs-exceed-inputs"
    DUST = "dust"
    NONSTANDARD = "nonstandard"
    INVALID = "invalid"  # consensus-invalid for another reason
    OTHER = "other"


class ChainError(AmpereError):
    """A chain backend failed or answered something unusable."""


class BroadcastError(ChainError):
    """A transaction refused by the mempool/chain; `detail` is bitcoind's reject string."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class BlockRejectedError(ChainError):
    """A block the kernel refused to connect."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(ChainError):
    """The chain has no such block (or height), whichever backend was asked."""


class ChainUnavailableError(ChainError):
    """The backend cannot be reached (bitcoind down, wrong credentials, ...)."""
