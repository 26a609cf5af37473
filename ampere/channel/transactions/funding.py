"""The funding output: a P2WSH of the 2-of-2 between both peers' funding keys."""

from __future__ import annotations

from dataclasses import dataclass

from ampere.bitcoin.script import p2wsh_script
from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.channel.transactions.errors import FundingOutputNotFoundError, TransactionBuildError
from ampere.channel.transactions.scripts import funding_script

__all__ = [
    "FundingOutput",
    "find_funding_output",
    "funding_script",
    "funding_script_pubkey",
]


def funding_script_pubkey(pubkey_a: bytes, pubkey_b: bytes) -> bytes:
    return p2wsh_script(funding_script(pubkey_a, pubkey_b))


@dataclass(frozen=True, slots=True)
class FundingOutput:
    """What every commitment and closing transaction spends."""

    outpoint: OutPoint
    amount_sat: int
    local_funding_pubkey: bytes
    remote_funding_pubkey: bytes

    def __post_init__(self) -> None:
        if self.amount_sat <= 0:
            raise TransactionBuildError("funding amount must be positive")

    @property
    def witness_script(self) -> bytes:
        return funding_script(self.local_funding_pubkey, self.remote_funding_pubkey)

    @property
    def script_pubkey(self) -> bytes:
        return p2wsh_script(self.witness_script)

    def swapped(self) -> FundingOutput:
        """The same output seen from the peer (local and remote exchanged)."""
        return FundingOutput(
            self.outpoint, self.amount_sat, self.remote_funding_pubkey, self.local_funding_pubkey
        )


def find_funding_output(
    tx: Transaction, pubkey_a: bytes, pubkey_b: bytes, amount_sat: int | None = None
) -> int:
    """Index of the funding output in `tx`; with `amount_sat`, the value must match too.

    Exactly one match is required: two identical funding outputs in one transaction would make
    the channel ambiguous, and that is a peer's mistake worth refusing.
    """
    script_pubkey = funding_script_pubkey(pubkey_a, pubkey_b)
    matches = [
        index
        for index, txout in enumerate(tx.outputs)
        if txout.script_pubkey == script_pubkey and (amount_sat is None or txout.value == amount_sat)
    ]
    if not matches:
        raise FundingOutputNotFoundError("transaction has no output paying the funding 2-of-2")
    if len(matches) > 1:
        raise FundingOutputNotFoundError("transaction pays the funding 2-of-2 more than once")
    return matches[0]
