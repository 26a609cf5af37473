"""Commitment formats and the BOLT 3 fee rules (expected weights, HTLC trimming).

All fees are whole satoshis computed as `feerate_per_kw * weight // 1000`, exactly as the spec
says: both peers must land on the same integer or their signatures do not match.
"""

from __future__ import annotations

from enum import Enum

from ampere.channel.transactions.errors import TransactionBuildError

__all__ = [
    "ANCHOR_OUTPUT_SAT",
    "COMMITMENT_HTLC_OUTPUT_WEIGHT",
    "CommitmentFormat",
    "commitment_base_fee_sat",
    "commitment_weight",
    "htlc_success_fee_sat",
    "htlc_timeout_fee_sat",
    "is_offered_htlc_trimmed",
    "is_received_htlc_trimmed",
]

# BOLT 3: fixed at the P2WSH dust threshold of Bitcoin Core.
ANCHOR_OUTPUT_SAT = 330
COMMITMENT_HTLC_OUTPUT_WEIGHT = 172
MAX_FEERATE_PER_KW = 0xFFFF_FFFF  # update_fee carries a u32


class CommitmentFormat(Enum):
    """Which commitment layout a channel uses.

    STATIC_REMOTEKEY: to_remote is a P2WPKH to the peer's payment basepoint; HTLC transactions
    carry their own fee. ANCHORS: `option_anchors` (zero-fee HTLC transactions): two 330-sat anchor
    outputs, a CSV-1 to_remote, CSV-1 on the HTLC outputs, and HTLC transactions with no fee whose
    remote signature is SIGHASH_SINGLE|SIGHASH_ANYONECANPAY so fees can be attached later.
    """

    STATIC_REMOTEKEY = "static_remotekey"
    ANCHORS = "anchors"

    @property
    def has_anchors(self) -> bool:
        return self is CommitmentFormat.ANCHORS

    @property
    def commitment_base_weight(self) -> int:
        return 1124 if self.has_anchors else 724

    @property
    def htlc_timeout_weight(self) -> int:
        """Expected weight of an HTLC-timeout transaction; with anchors it is only for estimating
        the fee of the inputs that will be added, the transaction itself pays none."""
        return 666 if self.has_anchors else 663

    @property
    def htlc_success_weight(self) -> int:
        return 706 if self.has_anchors else 703


def _check_feerate(feerate_per_kw: int) -> None:
    if not 0 <= feerate_per_kw <= MAX_FEERATE_PER_KW:
        raise TransactionBuildError("feerate_per_kw must fit in a u32")


def commitment_weight(num_untrimmed_htlcs: int, fmt: CommitmentFormat) -> int:
    """The spec's *expected* weight, which assumes both balance outputs (and both anchors) exist."""
    if num_untrimmed_htlcs < 0:
        raise TransactionBuildError("negative HTLC count")
    return fmt.commitment_base_weight + COMMITMENT_HTLC_OUTPUT_WEIGHT * num_untrimmed_htlcs


def commitment_base_fee_sat(feerate_per_kw: int, num_untrimmed_htlcs: int, fmt: CommitmentFormat) -> int:
    _check_feerate(feerate_per_kw)
    return feerate_per_kw * commitment_weight(num_untrimmed_htlcs, fmt) // 1000


def htlc_timeout_fee_sat(feerate_per_kw: int, fmt: CommitmentFormat) -> int:
    _check_feerate(feerate_per_kw)
    if fmt.has_anchors:
        return 0
    return feerate_per_kw * fmt.htlc_timeout_weight // 1000


def htlc_success_fee_sat(feerate_per_kw: int, fmt: CommitmentFormat) -> int:
    _check_feerate(feerate_per_kw)
    if fmt.has_anchors:
        return 0
    return feerate_per_kw * fmt.htlc_success_weight // 1000


def is_offered_htlc_trimmed(
    amount_msat: int, feerate_per_kw: int, dust_limit_sat: int, fmt: CommitmentFormat
) -> bool:
    """Trimmed when the whole-satoshi amount, less the HTLC-timeout fee, is below the commitment
    owner's dust limit: its second-stage transaction would itself be dust."""
    return amount_msat // 1000 - htlc_timeout_fee_sat(feerate_per_kw, fmt) < dust_limit_sat


def is_received_htlc_trimmed(
    amount_msat: int, feerate_per_kw: int, dust_limit_sat: int, fmt: CommitmentFormat
) -> bool:
    return amount_msat // 1000 - htlc_success_fee_sat(feerate_per_kw, fmt) < dust_limit_sat
