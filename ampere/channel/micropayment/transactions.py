"""The three transactions of a micropayment channel, built identically by both sides.

* funding: made by the payer's wallet; pays `capacity_sat` to the P2WSH of the sorted 2-of-2.
* refund: spends the funding output back to the payer's refund script with nLockTime = `refund_height`
  and nSequence 0xfffffffe (so that the lock counts); the fee comes out of the refunded value.
* update (and settlement, which is the best update with both signatures): spends the funding output to
  the payee (floor(paid_msat / 1000) sat) and the payer's change; the change pays a fee fixed at the
  opening. An output under the channel's dust limit is left out; what it held goes to the miners.

Fees are computed from the worst-case signed weight (73-byte signatures), so both sides arrive at the
same figure without seeing each other's signature, and the real fee rate never falls below the agreed one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ampere.bitcoin.errors import InvalidKeyError
from ampere.bitcoin.keys import PrivateKey, compact_to_der, der_to_compact, verify_der
from ampere.bitcoin.script import is_p2tr, is_p2wpkh, is_p2wsh, p2wsh_script
from ampere.bitcoin.serialize import compact_size
from ampere.bitcoin.sighash import SigHash, bip143_sighash
from ampere.bitcoin.tx import (
    SEQUENCE_FINAL,
    SEQUENCE_LOCKTIME_ONLY,
    WITNESS_SCALE_FACTOR,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
)
from ampere.channel.transactions.closing import dust_threshold_sat
from ampere.channel.transactions.funding import funding_script
from ampere.channel.transactions.signing import funding_spend_witness
from ampere.channel.transactions.weights import COMMITMENT_INPUT_WITNESS_WEIGHT

__all__ = [
    "LOCKTIME_THRESHOLD",
    "ChannelTerms",
    "UpdateOutputs",
    "is_standard_payout_script",
    "sign_funding_spend",
    "verify_funding_spend",
]

LOCKTIME_THRESHOLD = 500_000_000  # nLockTime at or above this is a timestamp, not a height
_TX_VERSION = 2
# version, input count, one input's non-witness bytes, output count, locktime
_FIXED_NON_WITNESS_BYTES = 4 + 1 + 41 + 1 + 4
_SEGWIT_MARKER_WEIGHT = 2


def is_standard_payout_script(script: bytes) -> bool:
    """P2WPKH, P2WSH, P2TR, P2PKH or P2SH: outputs every node relays, so a settlement or refund paying
    it is never stuck for non-standardness."""
    p2pkh = len(script) == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac"
    p2sh = len(script) == 23 and script[:2] == b"\xa9\x14" and script[22] == 0x87
    return is_p2wpkh(script) or is_p2wsh(script) or is_p2tr(script) or p2pkh or p2sh


def _output_bytes(script: bytes) -> int:
    return 8 + len(compact_size(len(script))) + len(script)


def _spend_fee_sat(feerate_per_kw: int, output_scripts: tuple[bytes, ...]) -> int:
    non_witness = _FIXED_NON_WITNESS_BYTES + sum(_output_bytes(script) for script in output_scripts)
    weight = non_witness * WITNESS_SCALE_FACTOR + _SEGWIT_MARKER_WEIGHT + COMMITMENT_INPUT_WITNESS_WEIGHT
    return feerate_per_kw * weight // 1000


@dataclass(frozen=True, slots=True)
class UpdateOutputs:
    """The update transaction's outputs for a cumulative payment; 0 means the output is left out."""

    paid_msat: int
    payee_sat: int
    change_sat: int


@dataclass(frozen=True)
class ChannelTerms:
    """Everything both sides agreed on once the payee accepted; the rules of every transaction follow."""

    channel_id: bytes
    chain_hash: bytes
    capacity_sat: int
    refund_height: int
    feerate_per_kw: int
    payer_funding_pubkey: bytes
    payee_funding_pubkey: bytes
    refund_script: bytes
    payout_script: bytes
    announced_dust_limit_sat: int
    safety_margin: int

    @cached_property
    def witness_script(self) -> bytes:
        return funding_script(self.payer_funding_pubkey, self.payee_funding_pubkey)

    @cached_property
    def funding_script_pubkey(self) -> bytes:
        return p2wsh_script(self.witness_script)

    @cached_property
    def dust_limit_sat(self) -> int:
        """One limit for both outputs: a settlement carrying an output that relay policy calls dust would
        not propagate, so the payee needs the change above dust as much as its own output."""
        return max(
            self.announced_dust_limit_sat,
            dust_threshold_sat(self.payout_script),
            dust_threshold_sat(self.refund_script),
        )

    @cached_property
    def update_fee_sat(self) -> int:
        """The fee of every update, computed with both outputs present, so it never changes."""
        return _spend_fee_sat(self.feerate_per_kw, (self.payout_script, self.refund_script))

    @cached_property
    def refund_fee_sat(self) -> int:
        return _spend_fee_sat(self.feerate_per_kw, (self.refund_script,))

    @property
    def settle_height(self) -> int:
        """From this tip height the payee settles whatever the payer does, and the payer stops paying."""
        return self.refund_height - self.safety_margin

    @property
    def max_paid_msat(self) -> int:
        """The most the channel can pay: everything but the update fee."""
        return (self.capacity_sat - self.update_fee_sat) * 1000

    def viability_problem(self) -> str | None:
        """Why these terms cannot make a working channel, or None."""
        floor = self.update_fee_sat + 2 * self.dust_limit_sat
        if self.capacity_sat < floor:
            return (
                f"capacity {self.capacity_sat} sat cannot hold the update fee {self.update_fee_sat} sat "
                f"and two outputs above the dust limit {self.dust_limit_sat} sat (needs {floor} sat)"
            )
        if self.capacity_sat - self.refund_fee_sat < self.dust_limit_sat:
            return f"the refund fee {self.refund_fee_sat} sat leaves a dust refund"
        if self.payer_funding_pubkey == self.payee_funding_pubkey:
            return "the payer and the payee use the same funding key"
        return None

    # --- outputs -----------------------------------------------------------------------------------
    def outputs_for(self, paid_msat: int) -> UpdateOutputs:
        """The canonical outputs for a cumulative payment of `paid_msat` (at most `max_paid_msat`)."""
        payee = paid_msat // 1000
        change = self.capacity_sat - payee - self.update_fee_sat
        return UpdateOutputs(
            paid_msat,
            payee if payee >= self.dust_limit_sat else 0,
            change if change >= self.dust_limit_sat else 0,
        )

    # --- transactions --------------------------------------------------------------------------------
    def refund_tx(self, funding: OutPoint) -> Transaction:
        """The unsigned refund. nSequence below final makes nLockTime count (BIP65's finality rule)."""
        return Transaction(
            _TX_VERSION,
            (TxIn(funding, b"", SEQUENCE_LOCKTIME_ONLY),),
            (TxOut(self.capacity_sat - self.refund_fee_sat, self.refund_script),),
            self.refund_height,
        )

    def update_tx(self, funding: OutPoint, outputs: UpdateOutputs) -> Transaction:
        """The unsigned update; outputs in BIP69 order, as every other funding spend here."""
        txouts = [
            TxOut(value, script)
            for value, script in (
                (outputs.payee_sat, self.payout_script),
                (outputs.change_sat, self.refund_script),
            )
            if value > 0
        ]
        txouts.sort(key=lambda txout: (txout.value, txout.script_pubkey))
        return Transaction(_TX_VERSION, (TxIn(funding, b"", SEQUENCE_FINAL),), tuple(txouts), 0)

    def sighash(self, tx: Transaction) -> bytes:
        return bip143_sighash(tx, 0, self.witness_script, self.capacity_sat, SigHash.ALL)

    def with_signatures(self, tx: Transaction, payer_signature: bytes, payee_signature: bytes) -> Transaction:
        """`tx` with the 2-of-2 witness; signatures are the 64-byte compact form the wire carries."""
        witness = funding_spend_witness(
            self.witness_script,
            self.payer_funding_pubkey,
            compact_to_der(payer_signature),
            self.payee_funding_pubkey,
            compact_to_der(payee_signature),
        )
        return tx.with_witness(0, witness)


def sign_funding_spend(terms: ChannelTerms, tx: Transaction, key: PrivateKey) -> bytes:
    """A compact SIGHASH_ALL signature of input 0 (the funding output)."""
    return der_to_compact(key.sign(terms.sighash(tx)))


def verify_funding_spend(terms: ChannelTerms, tx: Transaction, pubkey: bytes, signature: bytes) -> bool:
    """True only for a valid low-S signature by `pubkey`; any malformed signature is simply invalid."""
    try:
        der = compact_to_der(signature)
    except InvalidKeyError:
        return False
    return verify_der(pubkey, der, terms.sighash(tx))
