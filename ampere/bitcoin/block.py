"""Blocks and block headers: serialization, merkle roots, the BIP141 witness commitment, coinbase
building (BIP34) and regtest proof-of-work.

Nothing here decides whether a block is valid; that is libbitcoinkernel's job (`ampere.chain.kernel`).
These are the pieces needed to build blocks the kernel will accept and to read back the ones it stored.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from ampere.bitcoin.errors import DeserializationError
from ampere.bitcoin.hashes import sha256d
from ampere.bitcoin.script import Op, push_data, push_int
from ampere.bitcoin.serialize import ByteReader, compact_size
from ampere.bitcoin.tx import COIN, NULL_OUTPOINT, SEQUENCE_FINAL, Transaction, TxIn, TxOut

HEADER_SIZE = 80
# Version bits top pattern (BIP9) as Bitcoin Core's miner sets it; any version >= 4 passes on regtest.
BLOCK_VERSION = 0x2000_0000
REGTEST_BITS = 0x207F_FFFF
REGTEST_HALVING_INTERVAL = 150
MAX_BLOCK_WEIGHT = 4_000_000
MAX_BLOCK_SIGOPS_COST = 80_000
COINBASE_MATURITY = 100

WITNESS_COMMITMENT_HEADER = bytes.fromhex("aa21a9ed")
# Bitcoin Core always uses 32 zero bytes as the witness reserved value of the blocks it mines.
WITNESS_RESERVED_VALUE = b"\x00" * 32
_MAX_NONCE = 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """An 80-byte block header; `prev_hash` and `merkle_root` are in internal byte order."""

    version: int
    prev_hash: bytes
    merkle_root: bytes
    time: int
    bits: int
    nonce: int

    def __post_init__(self) -> None:
        if len(self.prev_hash) != 32 or len(self.merkle_root) != 32:
            raise ValueError("prev_hash and merkle_root must be 32 bytes")

    def serialize(self) -> bytes:
        return (
            struct.pack("<i", self.version)
            + self.prev_hash
            + self.merkle_root
            + struct.pack("<III", self.time, self.bits, self.nonce)
        )

    @classmethod
    def parse(cls, raw: bytes) -> BlockHeader:
        if len(raw) != HEADER_SIZE:
            raise DeserializationError(f"block header must be {HEADER_SIZE} bytes, got {len(raw)}")
        return cls.read_from(ByteReader(raw))

    @classmethod
    def read_from(cls, reader: ByteReader) -> BlockHeader:
        version = reader.i32()
        prev_hash = reader.read(32)
        merkle_root = reader.read(32)
        time, bits, nonce = reader.u32(), reader.u32(), reader.u32()
        return cls(version, prev_hash, merkle_root, time, bits, nonce)

    @property
    def hash(self) -> bytes:
        """Internal byte order (as in `prev_hash` of the next header)."""
        return sha256d(self.serialize())

    @property
    def hash_hex(self) -> str:
        return self.hash[::-1].hex()

    def target(self) -> int:
        return bits_to_target(self.bits)

    def check_pow(self) -> bool:
        return int.from_bytes(self.hash, "little") <= self.target()


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    transactions: tuple[Transaction, ...]

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def hash_hex(self) -> str:
        return self.header.hash_hex

    def serialize(self) -> bytes:
        parts = [self.header.serialize(), compact_size(len(self.transactions))]
        parts.extend(tx.serialize() for tx in self.transactions)
        return b"".join(parts)

    @classmethod
    def parse(cls, raw: bytes) -> Block:
        reader = ByteReader(raw)
        header = BlockHeader.read_from(reader)
        count = reader.compact_size()
        # The smallest transaction is 60 bytes; this bounds the allocation a hostile count could ask for.
        if count > reader.remaining() // 60 + 1:
            raise DeserializationError("transaction count exceeds the data")
        transactions = tuple(Transaction.read_from(reader) for _ in range(count))
        if not reader.at_end():
            raise DeserializationError(f"{reader.remaining()} trailing bytes after block")
        return cls(header, transactions)

    @property
    def weight(self) -> int:
        base = HEADER_SIZE + len(compact_size(len(self.transactions)))
        return base * 4 + sum(tx.weight for tx in self.transactions)

    def computed_merkle_root(self) -> bytes:
        return merkle_root([tx.txid for tx in self.transactions])

    def computed_witness_root(self) -> bytes:
        return witness_merkle_root(self.transactions)


def bits_to_target(bits: int) -> int:
    exponent = bits >> 24
    mantissa = bits & 0x007F_FFFF
    if exponent <= 3:
        return mantissa >> (8 * (3 - exponent))
    return mantissa << (8 * (exponent - 3))


def merkle_root(hashes: Sequence[bytes]) -> bytes:
    """Bitcoin's merkle root over `hashes` (internal byte order), duplicating the last of an odd level."""
    if not hashes:
        raise ValueError("a merkle tree needs at least one leaf")
    level = list(hashes)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def witness_merkle_root(transactions: Sequence[Transaction]) -> bytes:
    """BIP141: the merkle root of the wtxids, with the coinbase's wtxid taken as zero."""
    leaves = [b"\x00" * 32] + [tx.wtxid for tx in transactions[1:]]
    return merkle_root(leaves)


def witness_commitment(witness_root: bytes, reserved_value: bytes = WITNESS_RESERVED_VALUE) -> bytes:
    return sha256d(witness_root + reserved_value)


def witness_commitment_script(commitment: bytes) -> bytes:
    return bytes([Op.OP_RETURN]) + push_data(WITNESS_COMMITMENT_HEADER + commitment)


def find_witness_commitment(coinbase: Transaction) -> bytes | None:
    """The commitment the coinbase carries; the last matching output counts, as in BIP141."""
    found = None
    for txout in coinbase.outputs:
        spk = txout.script_pubkey
        if len(spk) >= 38 and spk[:6] == b"\x6a\x24" + WITNESS_COMMITMENT_HEADER:
            found = spk[6:38]
    return found


def block_subsidy(height: int, halving_interval: int = REGTEST_HALVING_INTERVAL) -> int:
    halvings = height // halving_interval
    if halvings >= 64:
        return 0
    return (50 * COIN) >> halvings


def coinbase_script_sig(height: int, extra: bytes = b"") -> bytes:
    """BIP34 height push, then `extra` (or OP_0): heights 1-16 encode as a single opcode, and
    consensus wants the scriptSig to be at least two bytes long."""
    script = push_int(height) + (push_data(extra) if extra else bytes([Op.OP_0]))
    if not 2 <= len(script) <= 100:
        raise ValueError("coinbase scriptSig must be 2 to 100 bytes")
    return script


def build_coinbase(
    height: int,
    script_pubkey: bytes,
    value: int,
    commitment: bytes | None,
    extra: bytes = b"",
) -> Transaction:
    """A coinbase paying `value` to `script_pubkey`; with `commitment`, it carries the BIP141 output
    and the reserved value as its input witness."""
    txin = TxIn(
        NULL_OUTPOINT,
        coinbase_script_sig(height, extra),
        SEQUENCE_FINAL,
        (WITNESS_RESERVED_VALUE,) if commitment is not None else (),
    )
    outputs = [TxOut(value, script_pubkey)]
    if commitment is not None:
        outputs.append(TxOut(0, witness_commitment_script(commitment)))
    return Transaction(version=2, inputs=(txin,), outputs=tuple(outputs), locktime=0)


def assemble_block(
    prev_hash: bytes,
    height: int,
    time: int,
    script_pubkey: bytes,
    transactions: Sequence[Transaction],
    fees: int,
    *,
    bits: int = REGTEST_BITS,
    extra: bytes = b"",
    coinbase_value: int | None = None,
) -> Block:
    """A complete block on `prev_hash` with its proof of work found.

    `coinbase_value` overrides subsidy + fees; it exists to build invalid blocks in tests.
    """
    value = block_subsidy(height) + fees if coinbase_value is None else coinbase_value
    placeholder = build_coinbase(height, script_pubkey, value, b"\x00" * 32, extra)
    commitment = witness_commitment(witness_merkle_root([placeholder, *transactions]))
    coinbase = build_coinbase(height, script_pubkey, value, commitment, extra)
    txs = (coinbase, *transactions)
    header = BlockHeader(BLOCK_VERSION, prev_hash, merkle_root([tx.txid for tx in txs]), time, bits, 0)
    return Block(grind(header), txs)


def grind(header: BlockHeader) -> BlockHeader:
    """Search nonces until the header meets its own target (instant at regtest difficulty)."""
    target = header.target()
    prefix = header.serialize()[:76]
    for nonce in range(_MAX_NONCE + 1):
        if int.from_bytes(sha256d(prefix + struct.pack("<I", nonce)), "little") <= target:
            return BlockHeader(
                header.version, header.prev_hash, header.merkle_root, header.time, header.bits, nonce
            )
    raise ValueError("no nonce satisfies the target; change the time or the coinbase")
