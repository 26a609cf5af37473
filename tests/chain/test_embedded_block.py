"""`ampere.bitcoin.block` on its own: serialization, merkle roots, coinbases, subsidy, proof of work."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.block import (
    REGTEST_BITS,
    Block,
    BlockHeader,
    assemble_block,
    bits_to_target,
    block_subsidy,
    coinbase_script_sig,
    find_witness_commitment,
    merkle_root,
    witness_commitment,
)
from ampere.bitcoin.errors import DeserializationError
from ampere.bitcoin.hashes import sha256d
from ampere.bitcoin.tx import COIN, OutPoint, Transaction, TxIn, TxOut

SPK = bytes.fromhex("0014") + b"\x07" * 20
# Bitcoin Core's regtest genesis block header.
REGTEST_GENESIS_HEADER = bytes.fromhex(
    "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e"
    "67768f617fc81bc3888a51323a9fb8aa4b1e5e4adae5494dffff7f2002000000"
)

hashes32 = st.binary(min_size=32, max_size=32)


@given(
    st.integers(-(2**31), 2**31 - 1),
    hashes32,
    hashes32,
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)
def test_header_round_trips(version: int, prev: bytes, root: bytes, time: int, bits: int, nonce: int) -> None:
    header = BlockHeader(version, prev, root, time, bits, nonce)
    raw = header.serialize()
    assert len(raw) == 80
    assert BlockHeader.parse(raw) == header
    assert header.hash == sha256d(raw)


def test_regtest_genesis_header() -> None:
    header = BlockHeader.parse(REGTEST_GENESIS_HEADER)
    assert header.hash_hex == "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    assert header.bits == REGTEST_BITS and header.check_pow()


def test_merkle_root_duplicates_the_odd_leaf() -> None:
    a, b, c = (bytes([i]) * 32 for i in (1, 2, 3))
    assert merkle_root([a]) == a
    assert merkle_root([a, b]) == sha256d(a + b)
    assert merkle_root([a, b, c]) == sha256d(sha256d(a + b) + sha256d(c + c))
    with pytest.raises(ValueError):
        merkle_root([])


@pytest.mark.parametrize(
    ("height", "script_sig"),
    [(1, "5100"), (16, "6000"), (17, "011100"), (128, "02800000"), (150, "02960000"), (70_000, "0370110100")],
)
def test_coinbase_script_sig_starts_with_the_bip34_height(height: int, script_sig: str) -> None:
    assert coinbase_script_sig(height).hex() == script_sig


def test_subsidy_halves_every_150_blocks_on_regtest() -> None:
    assert block_subsidy(1) == 50 * COIN
    assert block_subsidy(149) == 50 * COIN
    assert block_subsidy(150) == 25 * COIN
    assert block_subsidy(300) == 1_250_000_000
    assert block_subsidy(150 * 64) == 0


def test_regtest_target() -> None:
    assert bits_to_target(REGTEST_BITS) == 0x7FFFFF << (8 * 29)


def test_assembled_block_commits_to_its_witnesses_and_round_trips() -> None:
    spend = Transaction(
        2, (TxIn(OutPoint(b"\x01" * 32, 0), b"", 0xFFFF_FFFD, (b"sig", b"key")),), (TxOut(1000, SPK),), 0
    )
    block = assemble_block(b"\x02" * 32, 200, 1_700_000_000, SPK, [spend], 500)
    coinbase = block.transactions[0]
    assert coinbase.outputs[0].value == block_subsidy(200) + 500
    assert coinbase.inputs[0].witness == (b"\x00" * 32,)
    assert find_witness_commitment(coinbase) == witness_commitment(block.computed_witness_root())
    assert block.computed_merkle_root() == block.header.merkle_root
    assert block.header.check_pow()
    raw = block.serialize()
    assert Block.parse(raw) == block
    base_size = 80 + 1 + sum(len(tx.serialize(include_witness=False)) for tx in block.transactions)
    assert block.weight == base_size * 3 + len(raw)
    with pytest.raises(DeserializationError):
        Block.parse(raw + b"\x00")
