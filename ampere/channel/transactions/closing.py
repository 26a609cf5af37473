"""Mutual closing transactions: the legacy `closing_signed` one and the `option_simple_close`
(`closing_complete`/`closing_sig`) one.

Both spend the funding output with the same 2-of-2 witness as a commitment, pay each peer's
balance rounded down to whole satoshis, and sort their outputs by BIP69.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ampere.bitcoin.keys import sign_der, verify_der
from ampere.bitcoin.script import Op, witness_program
from ampere.bitcoin.sighash import SigHash, bip143_sighash
from ampere.bitcoin.tx import SEQUENCE_FINAL, Transaction, TxIn, TxOut
from ampere.channel.transactions.errors import TransactionBuildError
from ampere.channel.transactions.funding import FundingOutput
from ampere.channel.transactions.signing import funding_spend_witness

__all__ = [
    "SIMPLE_CLOSE_SEQUENCE",
    "ClosingTransaction",
    "ClosingVariant",
    "build_legacy_closing_tx",
    "build_simple_closing_tx",
    "dust_threshold_sat",
    "finalize_closing",
    "is_op_return",
    "sign_closing",
    "verify_closing_signature",
]

# Signals RBF: with option_simple_close each peer may re-send closing_complete with a higher fee.
SIMPLE_CLOSE_SEQUENCE = 0xFFFF_FFFD


def is_op_return(script_pubkey: bytes) -> bool:
    return script_pubkey[:1] == bytes([Op.OP_RETURN])


def dust_threshold_sat(script_pubkey: bytes) -> int:
    """Bitcoin Core's dust threshold for an output with this script (BOLT 3 "Dust Limits").

    Three times the bytes needed to create and later spend the output (at 3 sat/vB): 148 bytes
    for a legacy input, 67 for a segwit one. This reproduces the spec's table: P2PKH 546,
    P2SH 540, P2WPKH 294, P2WSH 330, P2A 240, a 40-byte unknown witness program 354, OP_RETURN 0.
    """
    if is_op_return(script_pubkey):
        return 0
    output_size = len(TxOut(0, script_pubkey).serialize())
    spend_size = 67 if witness_program(script_pubkey) is not None else 148
    return 3 * (output_size + spend_size)


@dataclass(frozen=True, slots=True)
class ClosingTransaction:
    """An unsigned closing transaction; the indexes are None for an omitted output."""

    tx: Transaction
    funding: FundingOutput
    local_output_index: int | None
    remote_output_index: int | None


def _assemble(
    funding: FundingOutput,
    local: TxOut | None,
    remote: TxOut | None,
    sequence: int,
    locktime: int,
) -> ClosingTransaction:
    present = [(txout, is_local) for txout, is_local in ((local, True), (remote, False)) if txout is not None]
    if not present:
        raise TransactionBuildError("a closing transaction needs at least one output")
    present.sort(key=lambda item: (item[0].value, item[0].script_pubkey))
    local_index = next((i for i, (_, is_local) in enumerate(present) if is_local), None)
    remote_index = next((i for i, (_, is_local) in enumerate(present) if not is_local), None)
    tx = Transaction(
        version=2,
        inputs=(TxIn(funding.outpoint, b"", sequence),),
        outputs=tuple(txout for txout, _ in present),
        locktime=locktime,
    )
    return ClosingTransaction(tx, funding, local_index, remote_index)


def _check_balances(funding: FundingOutput, local_msat: int, remote_msat: int, fee_sat: int) -> None:
    if local_msat < 0 or remote_msat < 0 or fee_sat < 0:
        raise TransactionBuildError("balances and fee must not be negative")
    if local_msat + remote_msat > funding.amount_sat * 1000:
        raise TransactionBuildError("balances exceed the channel capacity")


def build_legacy_closing_tx(
    funding: FundingOutput,
    local_script_pubkey: bytes,
    remote_script_pubkey: bytes,
    local_balance_msat: int,
    remote_balance_msat: int,
    fee_sat: int,
    *,
    local_is_opener: bool,
    dust_limit_sat: int,
    omit_local_output: bool = False,
) -> ClosingTransaction:
    """The `closing_signed` transaction: the opener pays `fee_sat`; outputs below the signer's own
    `dust_limit_sat` are dropped; nSequence final and nLockTime 0.

    The two peers may disagree on what is dust, which is why each variant is built by the side
    that signs it, with its own limit.
    """
    _check_balances(funding, local_balance_msat, remote_balance_msat, fee_sat)
    local_sat, remote_sat = local_balance_msat // 1000, remote_balance_msat // 1000
    if local_is_opener:
        local_sat -= fee_sat
    else:
        remote_sat -= fee_sat
    if min(local_sat, remote_sat) < 0:
        raise TransactionBuildError("closing fee exceeds the opener's balance")
    local = TxOut(local_sat, local_script_pubkey)
    remote = TxOut(remote_sat, remote_script_pubkey)
    return _assemble(
        funding,
        None if omit_local_output or local_sat < dust_limit_sat else local,
        None if remote_sat < dust_limit_sat else remote,
        SEQUENCE_FINAL,
        0,
    )


class ClosingVariant(Enum):
    """Which outputs a `closing_complete` signature covers (its TLV type)."""

    CLOSER_OUTPUT_ONLY = 1
    CLOSEE_OUTPUT_ONLY = 2
    CLOSER_AND_CLOSEE_OUTPUTS = 3


def build_simple_closing_tx(
    funding: FundingOutput,
    local_script_pubkey: bytes,
    remote_script_pubkey: bytes,
    local_balance_msat: int,
    remote_balance_msat: int,
    fee_sat: int,
    locktime: int,
    *,
    local_is_closer: bool,
    variant: ClosingVariant,
) -> ClosingTransaction:
    """The `option_simple_close` transaction for one signature variant.

    The closer (the sender of closing_complete) pays `fee_sat`; an OP_RETURN output is worth 0
    so that it relays; nSequence 0xFFFFFFFD and nLockTime from the message. Which variants to
    sign or accept given dust is BOLT 2 policy left to the caller (see `dust_threshold_sat`).
    """
    _check_balances(funding, local_balance_msat, remote_balance_msat, fee_sat)
    if not 0 <= locktime <= 0xFFFF_FFFF:
        raise TransactionBuildError("locktime must fit in a u32")
    closer_msat, closee_msat = (
        (local_balance_msat, remote_balance_msat)
        if local_is_closer
        else (remote_balance_msat, local_balance_msat)
    )
    closer_script, closee_script = (
        (local_script_pubkey, remote_script_pubkey)
        if local_is_closer
        else (remote_script_pubkey, local_script_pubkey)
    )
    if fee_sat > closer_msat // 1000:
        raise TransactionBuildError("closing fee exceeds the closer's balance")
    closer_sat = 0 if is_op_return(closer_script) else closer_msat // 1000 - fee_sat
    closee_sat = 0 if is_op_return(closee_script) else closee_msat // 1000
    closer = TxOut(closer_sat, closer_script) if variant is not ClosingVariant.CLOSEE_OUTPUT_ONLY else None
    closee = TxOut(closee_sat, closee_script) if variant is not ClosingVariant.CLOSER_OUTPUT_ONLY else None
    local, remote = (closer, closee) if local_is_closer else (closee, closer)
    return _assemble(funding, local, remote, SIMPLE_CLOSE_SEQUENCE, locktime)


def _closing_sighash(closing: ClosingTransaction) -> bytes:
    return bip143_sighash(
        closing.tx, 0, closing.funding.witness_script, closing.funding.amount_sat, SigHash.ALL
    )


def sign_closing(closing: ClosingTransaction, funding_privkey: bytes) -> bytes:
    """DER signature (no sighash byte) with either peer's funding key."""
    return sign_der(funding_privkey, _closing_sighash(closing))


def verify_closing_signature(closing: ClosingTransaction, funding_pubkey: bytes, signature: bytes) -> bool:
    return verify_der(funding_pubkey, signature, _closing_sighash(closing))


def finalize_closing(
    closing: ClosingTransaction, local_signature: bytes, remote_signature: bytes
) -> Transaction:
    funding = closing.funding
    witness = funding_spend_witness(
        funding.witness_script,
        funding.local_funding_pubkey,
        local_signature,
        funding.remote_funding_pubkey,
        remote_signature,
    )
    return closing.tx.with_witness(0, witness)
