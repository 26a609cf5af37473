"""Signature hashes: BIP143 (segwit v0) for every sighash type, and the legacy algorithm."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntFlag

from ampere.bitcoin.hashes import sha256d
from ampere.bitcoin.serialize import compact_size, var_bytes
from ampere.bitcoin.tx import Transaction, TxOut


class SigHash(IntFlag):
    ALL = 0x01
    NONE = 0x02
    SINGLE = 0x03
    ANYONECANPAY = 0x80
    SINGLE_ANYONECANPAY = SINGLE | ANYONECANPAY

    @property
    def base(self) -> int:
        return int(self) & 0x1F


_ZERO32 = b"\x00" * 32


@dataclass(frozen=True, slots=True)
class _Bip143Midstate:
    hash_prevouts: bytes
    hash_sequence: bytes
    hash_outputs: bytes


def _midstate(tx: Transaction) -> _Bip143Midstate:
    cached = tx._cache.get("bip143")
    if cached is not None:
        return _Bip143Midstate(cached[:32], cached[32:64], cached[64:])
    hash_prevouts = sha256d(b"".join(txin.prevout.serialize() for txin in tx.inputs))
    hash_sequence = sha256d(b"".join(struct.pack("<I", txin.sequence) for txin in tx.inputs))
    hash_outputs = sha256d(b"".join(txout.serialize() for txout in tx.outputs))
    tx._cache["bip143"] = hash_prevouts + hash_sequence + hash_outputs
    return _Bip143Midstate(hash_prevouts, hash_sequence, hash_outputs)


def bip143_sighash(
    tx: Transaction, input_index: int, script_code: bytes, amount: int, sighash: int = SigHash.ALL
) -> bytes:
    """The digest a segwit v0 input signs. `script_code` is the witness script (or P2PKH code for P2WPKH)."""
    if not 0 <= input_index < len(tx.inputs):
        raise IndexError("input index out of range")
    base = sighash & 0x1F
    anyone_can_pay = bool(sighash & SigHash.ANYONECANPAY)
    mid = _midstate(tx)
    hash_prevouts = _ZERO32 if anyone_can_pay else mid.hash_prevouts
    commits_to_sequences = not anyone_can_pay and base not in (SigHash.SINGLE, SigHash.NONE)
    hash_sequence = mid.hash_sequence if commits_to_sequences else _ZERO32
    if base not in (SigHash.SINGLE, SigHash.NONE):
        hash_outputs = mid.hash_outputs
    elif base == SigHash.SINGLE and input_index < len(tx.outputs):
        hash_outputs = sha256d(tx.outputs[input_index].serialize())
    else:
        hash_outputs = _ZERO32
    txin = tx.inputs[input_index]
    preimage = b"".join(
        (
            struct.pack("<i", tx.version),
            hash_prevouts,
            hash_sequence,
            txin.prevout.serialize(),
            var_bytes(script_code),
            struct.pack("<q", amount),
            struct.pack("<I", txin.sequence),
            hash_outputs,
            struct.pack("<I", tx.locktime),
            struct.pack("<I", sighash),
        )
    )
    return sha256d(preimage)


_SIGHASH_SINGLE_BUG = (1).to_bytes(32, "little")


def legacy_sighash(
    tx: Transaction, input_index: int, script_code: bytes, sighash: int = SigHash.ALL
) -> bytes:
    """Pre-segwit signature hash (for P2PKH/P2SH inputs), including the SIGHASH_SINGLE quirk."""
    if not 0 <= input_index < len(tx.inputs):
        raise IndexError("input index out of range")
    base = sighash & 0x1F
    if base == SigHash.SINGLE and input_index >= len(tx.outputs):
        return _SIGHASH_SINGLE_BUG
    # OP_CODESEPARATOR is not used by anything Ampere signs, so the script code is taken whole.
    if sighash & SigHash.ANYONECANPAY:
        inputs = [(tx.inputs[input_index], script_code)]
        signed_position = 0
    else:
        inputs = [(txin, script_code if i == input_index else b"") for i, txin in enumerate(tx.inputs)]
        signed_position = input_index
    parts = [struct.pack("<i", tx.version), compact_size(len(inputs))]
    for position, (txin, code) in enumerate(inputs):
        sequence = txin.sequence
        if position != signed_position and base in (SigHash.NONE, SigHash.SINGLE):
            sequence = 0
        parts.append(txin.prevout.serialize() + var_bytes(code) + struct.pack("<I", sequence))
    if base == SigHash.NONE:
        outputs: list[TxOut] = []
    elif base == SigHash.SINGLE:
        outputs = [TxOut(-1, b"") for _ in range(input_index)] + [tx.outputs[input_index]]
    else:
        outputs = list(tx.outputs)
    parts.append(compact_size(len(outputs)))
    parts.extend(txout.serialize() for txout in outputs)
    parts.append(struct.pack("<I", tx.locktime))
    parts.append(struct.pack("<I", sighash))
    return sha256d(b"".join(parts))
