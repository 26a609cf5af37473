"""Signing the input types Ampere's wallet owns: P2WPKH, and P2WSH with a given witness script."""

from __future__ import annotations

from collections.abc import Sequence

from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.script import p2pkh_script_code
from ampere.bitcoin.sighash import SigHash, bip143_sighash
from ampere.bitcoin.tx import Transaction


def sign_p2wpkh_input(
    tx: Transaction, input_index: int, key: PrivateKey, amount: int, sighash: int = SigHash.ALL
) -> Transaction:
    """Return `tx` with input `input_index` spending a P2WPKH output of `key` worth `amount` sat."""
    pubkey = key.public_key.data
    digest = bip143_sighash(tx, input_index, p2pkh_script_code(pubkey), amount, sighash)
    signature = key.sign(digest) + bytes([sighash])
    return tx.with_witness(input_index, [signature, pubkey])


def p2wsh_signature(
    tx: Transaction,
    input_index: int,
    key: PrivateKey,
    witness_script: bytes,
    amount: int,
    sighash: int = SigHash.ALL,
) -> bytes:
    """A signature (with its sighash byte) for a P2WSH input; the caller assembles the witness."""
    digest = bip143_sighash(tx, input_index, witness_script, amount, sighash)
    return key.sign(digest) + bytes([sighash])


def with_p2wsh_witness(
    tx: Transaction, input_index: int, stack: Sequence[bytes], witness_script: bytes
) -> Transaction:
    return tx.with_witness(input_index, [*stack, witness_script])
