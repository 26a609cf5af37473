"""Worst-case witness weights of the inputs that spend BOLT 3 outputs, for fee estimation.

Witness bytes weigh 1 weight unit each. Every figure assumes 73-byte signatures (72 bytes of DER
plus the sighash byte, the maximum), a `to_self_delay` up to 0xFFFF and a `cltv_expiry` below
2^31 (any block height), so an estimate made with them never undershoots. A spending input also
has 41 non-witness bytes (`INPUT_NON_WITNESS_WEIGHT`), and a transaction with any witness pays 2
more weight units once for the segwit marker and flag.
"""

from __future__ import annotations

from ampere.bitcoin.serialize import compact_size

__all__ = [
    "ANCHOR_SWEEP_WITNESS_WEIGHT",
    "ANCHOR_WITNESS_WEIGHT",
    "COMMITMENT_INPUT_WITNESS_WEIGHT",
    "INPUT_NON_WITNESS_WEIGHT",
    "MAX_SIGNATURE_SIZE",
    "TO_LOCAL_DELAYED_WITNESS_WEIGHT",
    "TO_LOCAL_REVOCATION_WITNESS_WEIGHT",
    "TO_REMOTE_ANCHORS_WITNESS_WEIGHT",
    "TO_REMOTE_P2WPKH_WITNESS_WEIGHT",
    "htlc_success_tx_witness_weight",
    "htlc_timeout_tx_witness_weight",
    "input_weight",
    "offered_htlc_preimage_witness_weight",
    "offered_htlc_revocation_witness_weight",
    "received_htlc_revocation_witness_weight",
    "received_htlc_timeout_witness_weight",
    "witness_weight",
]

MAX_SIGNATURE_SIZE = 73
_PUBKEY = 33
_PREIMAGE = 32
# outpoint (36) + empty scriptSig length (1) + nSequence (4), times the witness scale factor of 4.
INPUT_NON_WITNESS_WEIGHT = 41 * 4

# Script sizes at their largest: to_self_delay 0xFFFF is a 3-byte script number, a block-height
# cltv_expiry at most 4 bytes. The anchors variants of the HTLC scripts add `1 OP_CSV OP_DROP`.
FUNDING_SCRIPT_SIZE = 71
TO_LOCAL_SCRIPT_MAX_SIZE = 78
TO_REMOTE_ANCHORS_SCRIPT_SIZE = 37
ANCHOR_SCRIPT_SIZE = 40
OFFERED_HTLC_SCRIPT_SIZE = 133
RECEIVED_HTLC_SCRIPT_MAX_SIZE = 140
_ANCHORS_HTLC_SCRIPT_EXTRA = 3


def witness_weight(*item_sizes: int) -> int:
    """Weight of a witness stack whose items have these byte lengths."""
    return len(compact_size(len(item_sizes))) + sum(len(compact_size(size)) + size for size in item_sizes)


def input_weight(witness_weight_wu: int) -> int:
    """Full weight of one spending input with a witness of that weight."""
    return INPUT_NON_WITNESS_WEIGHT + witness_weight_wu


_SIG = MAX_SIGNATURE_SIZE

COMMITMENT_INPUT_WITNESS_WEIGHT = witness_weight(0, _SIG, _SIG, FUNDING_SCRIPT_SIZE)  # 222, as BOLT 3
TO_LOCAL_DELAYED_WITNESS_WEIGHT = witness_weight(_SIG, 0, TO_LOCAL_SCRIPT_MAX_SIZE)
TO_LOCAL_REVOCATION_WITNESS_WEIGHT = witness_weight(_SIG, 1, TO_LOCAL_SCRIPT_MAX_SIZE)
TO_REMOTE_P2WPKH_WITNESS_WEIGHT = witness_weight(_SIG, _PUBKEY)
TO_REMOTE_ANCHORS_WITNESS_WEIGHT = witness_weight(_SIG, TO_REMOTE_ANCHORS_SCRIPT_SIZE)
ANCHOR_WITNESS_WEIGHT = witness_weight(_SIG, ANCHOR_SCRIPT_SIZE)
ANCHOR_SWEEP_WITNESS_WEIGHT = witness_weight(0, ANCHOR_SCRIPT_SIZE)


def _offered_size(anchors: bool) -> int:
    return OFFERED_HTLC_SCRIPT_SIZE + (_ANCHORS_HTLC_SCRIPT_EXTRA if anchors else 0)


def _received_size(anchors: bool) -> int:
    return RECEIVED_HTLC_SCRIPT_MAX_SIZE + (_ANCHORS_HTLC_SCRIPT_EXTRA if anchors else 0)


def offered_htlc_preimage_witness_weight(anchors: bool) -> int:
    """The peer claiming an offered HTLC with the preimage."""
    return witness_weight(_SIG, _PREIMAGE, _offered_size(anchors))


def received_htlc_timeout_witness_weight(anchors: bool) -> int:
    """The peer reclaiming a received HTLC after its expiry."""
    return witness_weight(_SIG, 0, _received_size(anchors))


def offered_htlc_revocation_witness_weight(anchors: bool) -> int:
    return witness_weight(_SIG, _PUBKEY, _offered_size(anchors))


def received_htlc_revocation_witness_weight(anchors: bool) -> int:
    return witness_weight(_SIG, _PUBKEY, _received_size(anchors))


def htlc_timeout_tx_witness_weight(anchors: bool) -> int:
    """Input 0 of an HTLC-timeout transaction (BOLT 3 Appendix A: 285, or 288 with anchors)."""
    return witness_weight(0, _SIG, _SIG, 0, _offered_size(anchors))


def htlc_success_tx_witness_weight(anchors: bool) -> int:
    """Input 0 of an HTLC-success transaction (BOLT 3 Appendix A: 324, or 327 with anchors)."""
    return witness_weight(0, _SIG, _SIG, _PREIMAGE, _received_size(anchors))
