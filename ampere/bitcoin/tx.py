"""Bitcoin transactions: legacy and segwit (BIP144) serialization, txid/wtxid, weight and vsize."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ampere.bitcoin.errors import DeserializationError
from ampere.bitcoin.hashes import sha256d
from ampere.bitcoin.serialize import ByteReader, compact_size, var_bytes

SEQUENCE_FINAL = 0xFFFF_FFFF
# nSequence that lets nLockTime count while opting out of relative locks and RBF signalling semantics
SEQUENCE_LOCKTIME_ONLY = 0xFFFF_FFFE
# nSequence that signals BIP125 replaceability and keeps nLockTime in force
SEQUENCE_RBF = 0xFFFF_FFFD
COIN = 100_000_000
MAX_MONEY = 21_000_000 * COIN
WITNESS_SCALE_FACTOR = 4


@dataclass(frozen=True, slots=True, order=True)
class OutPoint:
    """A reference to a transaction output; `txid` is in internal (little-endian) byte order."""

    txid: bytes
    vout: int

    def __post_init__(self) -> None:
        if len(self.txid) != 32:
            raise ValueError("txid must be 32 bytes")
        if not 0 <= self.vout <= 0xFFFF_FFFF:
            raise ValueError("vout out of range")

    def serialize(self) -> bytes:
        return self.txid + struct.pack("<I", self.vout)

    @classmethod
    def from_display(cls, txid_hex: str, vout: int) -> OutPoint:
        return cls(bytes.fromhex(txid_hex)[::-1], vout)

    @property
    def txid_hex(self) -> str:
        return self.txid[::-1].hex()

    def __str__(self) -> str:
        return f"{self.txid_hex}:{self.vout}"

    @classmethod
    def parse(cls, text: str) -> OutPoint:
        txid_hex, _, vout = text.partition(":")
        return cls.from_display(txid_hex, int(vout))


NULL_OUTPOINT = OutPoint(b"\x00" * 32, 0xFFFF_FFFF)


@dataclass(frozen=True, slots=True)
class TxIn:
    prevout: OutPoint
    script_sig: bytes = b""
    sequence: int = SEQUENCE_FINAL
    witness: tuple[bytes, ...] = ()

    def serialize(self) -> bytes:
        return self.prevout.serialize() + var_bytes(self.script_sig) + struct.pack("<I", self.sequence)


@dataclass(frozen=True, slots=True)
class TxOut:
    value: int  # satoshis
    script_pubkey: bytes

    def serialize(self) -> bytes:
        return struct.pack("<q", self.value) + var_bytes(self.script_pubkey)


@dataclass(frozen=True, slots=True)
class Transaction:
    version: int = 2
    inputs: tuple[TxIn, ...] = ()
    outputs: tuple[TxOut, ...] = ()
    locktime: int = 0
    # Serialization memo; init=False so that dataclasses.replace() never carries a stale one over.
    _cache: dict[str, bytes] = field(init=False, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cache", {})

    # --- serialization -------------------------------------------------------------------------
    def has_witness(self) -> bool:
        return any(txin.witness for txin in self.inputs)

    def serialize(self, include_witness: bool = True) -> bytes:
        key = "with" if include_witness else "without"
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        segwit = include_witness and self.has_witness()
        parts = [struct.pack("<i", self.version)]
        if segwit:
            parts.append(b"\x00\x01")
        parts.append(compact_size(len(self.inputs)))
        parts.extend(txin.serialize() for txin in self.inputs)
        parts.append(compact_size(len(self.outputs)))
        parts.extend(txout.serialize() for txout in self.outputs)
        if segwit:
            for txin in self.inputs:
                parts.append(compact_size(len(txin.witness)))
                parts.extend(var_bytes(item) for item in txin.witness)
        parts.append(struct.pack("<I", self.locktime))
        raw = b"".join(parts)
        self._cache[key] = raw
        return raw

    def to_hex(self) -> str:
        return self.serialize().hex()

    @classmethod
    def from_hex(cls, text: str) -> Transaction:
        try:
            raw = bytes.fromhex(text)
        except ValueError as exc:
            raise DeserializationError("transaction hex is not valid hex") from exc
        return cls.parse(raw)

    @classmethod
    def parse(cls, raw: bytes) -> Transaction:
        reader = ByteReader(raw)
        tx = cls.read_from(reader)
        if not reader.at_end():
            raise DeserializationError(f"{reader.remaining()} trailing bytes after transaction")
        return tx

    @classmethod
    def read_from(cls, reader: ByteReader) -> Transaction:
        version = reader.i32()
        segwit = False
        if reader.peek(1) == b"\x00":
            marker_flag = reader.read(2)
            if marker_flag[1] != 1:
                raise DeserializationError("unknown segwit flag")
            segwit = True
        input_count = reader.compact_size()
        if input_count > reader.remaining() // 41:
            raise DeserializationError("input count exceeds the data")
        raw_inputs = []
        for _ in range(input_count):
            prevout = OutPoint(reader.read(32), reader.u32())
            script_sig = reader.var_bytes()
            raw_inputs.append((prevout, script_sig, reader.u32()))
        output_count = reader.compact_size()
        if output_count > reader.remaining() // 9:
            raise DeserializationError("output count exceeds the data")
        outputs = []
        for _ in range(output_count):
            value: int = struct.unpack("<q", reader.read(8))[0]
            outputs.append(TxOut(value, reader.var_bytes()))
        witnesses: list[tuple[bytes, ...]] = [() for _ in raw_inputs]
        if segwit:
            for index in range(len(raw_inputs)):
                item_count = reader.compact_size()
                if item_count > reader.remaining():
                    raise DeserializationError("witness item count exceeds the data")
                witnesses[index] = tuple(reader.var_bytes() for _ in range(item_count))
            if not any(witnesses):
                raise DeserializationError("segwit marker with an empty witness")
        locktime = reader.u32()
        inputs = tuple(
            TxIn(prevout, script_sig, sequence, witness)
            for (prevout, script_sig, sequence), witness in zip(raw_inputs, witnesses, strict=True)
        )
        return cls(version, inputs, tuple(outputs), locktime)

    # --- identity and size -----------------------------------------------------------------------
    @property
    def txid(self) -> bytes:
        """Internal byte order, as used inside outpoints."""
        return sha256d(self.serialize(include_witness=False))

    @property
    def txid_hex(self) -> str:
        return self.txid[::-1].hex()

    @property
    def wtxid(self) -> bytes:
        return sha256d(self.serialize(include_witness=True))

    @property
    def weight(self) -> int:
        base = len(self.serialize(include_witness=False))
        total = len(self.serialize(include_witness=True))
        return base * (WITNESS_SCALE_FACTOR - 1) + total

    @property
    def vsize(self) -> int:
        return (self.weight + WITNESS_SCALE_FACTOR - 1) // WITNESS_SCALE_FACTOR

    def is_coinbase(self) -> bool:
        return len(self.inputs) == 1 and self.inputs[0].prevout == NULL_OUTPOINT

    def outpoint(self, vout: int) -> OutPoint:
        return OutPoint(self.txid, vout)

    # --- building ----------------------------------------------------------------------------------
    def with_witness(self, index: int, witness: Sequence[bytes]) -> Transaction:
        inputs = list(self.inputs)
        inputs[index] = replace(inputs[index], witness=tuple(witness))
        return replace(self, inputs=tuple(inputs))

    def with_script_sig(self, index: int, script_sig: bytes) -> Transaction:
        inputs = list(self.inputs)
        inputs[index] = replace(inputs[index], script_sig=script_sig)
        return replace(self, inputs=tuple(inputs))

    def total_output_value(self) -> int:
        return sum(txout.value for txout in self.outputs)
