"""Coin selection and transaction weight estimates for a P2WPKH wallet (fee rates in sat per 1000 weight)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ampere.bitcoin.tx import OutPoint
from ampere.wallet.errors import InsufficientFundsError

# Weight of the parts of a transaction spending P2WPKH inputs.
TX_OVERHEAD_WEIGHT = 4 * (4 + 1 + 1 + 4) + 2  # version, counts, locktime; segwit marker and flag
P2WPKH_INPUT_WEIGHT = 4 * (32 + 4 + 1 + 4) + (1 + 1 + 72 + 1 + 33)  # outpoint..sequence; witness
P2WPKH_OUTPUT_WEIGHT = 4 * (8 + 1 + 22)
P2WPKH_DUST_LIMIT = 294  # bitcoind's dust threshold for P2WPKH at the 3 sat/vB dust relay fee


def output_weight(script_pubkey: bytes) -> int:
    return 4 * (8 + 1 + len(script_pubkey))


def fee_for_weight(weight: int, feerate_per_kw: int) -> int:
    return weight * feerate_per_kw // 1000


@dataclass(frozen=True, slots=True)
class Candidate:
    """A coin that may be spent: its outpoint and its value in satoshis."""

    outpoint: OutPoint
    value: int


@dataclass(frozen=True, slots=True)
class Selection:
    chosen: tuple[Candidate, ...]
    fee: int
    change: int  # 0 when no change output is made

    @property
    def total_in(self) -> int:
        return sum(c.value for c in self.chosen)


def select_coins(
    candidates: Sequence[Candidate],
    outputs_value: int,
    outputs_weight: int,
    feerate_per_kw: int,
    *,
    dust_limit: int = P2WPKH_DUST_LIMIT,
) -> Selection:
    """Pick coins to pay `outputs_value` plus the fee, with change when it is worth keeping.

    Largest coins first keeps the input count (and so the fee) low; change below the dust limit is
    left to the fee instead of creating an unspendable output.
    """
    base_weight = TX_OVERHEAD_WEIGHT + outputs_weight
    chosen: list[Candidate] = []
    total = 0
    for candidate in sorted(candidates, key=lambda c: c.value, reverse=True):
        chosen.append(candidate)
        total += candidate.value
        weight_no_change = base_weight + P2WPKH_INPUT_WEIGHT * len(chosen)
        fee_no_change = fee_for_weight(weight_no_change, feerate_per_kw)
        if total < outputs_value + fee_no_change:
            continue
        fee_with_change = fee_for_weight(weight_no_change + P2WPKH_OUTPUT_WEIGHT, feerate_per_kw)
        change = total - outputs_value - fee_with_change
        if change >= dust_limit:
            return Selection(tuple(chosen), fee_with_change, change)
        return Selection(tuple(chosen), total - outputs_value, 0)
    input_weight = P2WPKH_INPUT_WEIGHT * max(1, len(chosen))
    needed = outputs_value + fee_for_weight(base_weight + input_weight, feerate_per_kw)
    raise InsufficientFundsError(needed, total)


def select_all(candidates: Sequence[Candidate], outputs_weight: int, feerate_per_kw: int) -> Selection:
    """Spend every candidate to one output; the fee comes out of that output."""
    if not candidates:
        raise InsufficientFundsError(1, 0)
    weight = TX_OVERHEAD_WEIGHT + outputs_weight + P2WPKH_INPUT_WEIGHT * len(candidates)
    fee = fee_for_weight(weight, feerate_per_kw)
    return Selection(tuple(candidates), fee, 0)
