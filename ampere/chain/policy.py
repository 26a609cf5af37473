"""Bitcoin Core's relay policy and the context checks the kernel's script verifier leaves out.

Pure functions over transactions: standardness (IsStandardTx, IsWitnessStandard), dust, sigop cost,
nLockTime finality (with BIP113 median time past) and BIP68 sequence locks. Each failure carries the
reject string bitcoind uses, so that clients reading bitcoind's errors read ours the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ampere.bitcoin.errors import ScriptError
from ampere.bitcoin.keys import CURVE_ORDER
from ampere.bitcoin.script import Op, iter_script, witness_program
from ampere.bitcoin.tx import MAX_MONEY, SEQUENCE_FINAL, Transaction, TxOut
from ampere.chain.errors import BroadcastError, RejectReason

MAX_STANDARD_TX_WEIGHT = 400_000
MIN_STANDARD_TX_NONWITNESS_SIZE = 65
MAX_STANDARD_SCRIPTSIG_SIZE = 1650
MAX_STANDARD_TX_SIGOPS_COST = 16_000
MAX_OP_RETURN_RELAY = 83
MAX_STANDARD_VERSION = 2
MAX_P2WSH_SCRIPT_SIZE = 3600
MAX_P2WSH_STACK_ITEMS = 100
MAX_STANDARD_STACK_ITEM_SIZE = 80
BYTES_PER_SIGOP = 20
MAX_PUBKEYS_PER_MULTISIG = 20
LOCKTIME_THRESHOLD = 500_000_000
SEQUENCE_DISABLE_FLAG = 1 << 31
SEQUENCE_TYPE_FLAG = 1 << 22
SEQUENCE_MASK = 0x0000_FFFF
SEQUENCE_GRANULARITY = 9
_HALF_ORDER = CURVE_ORDER // 2


@dataclass(frozen=True, slots=True)
class FeeRate:
    """Satoshis per 1000 virtual bytes, rounded up when turned into a fee, as Bitcoin Core's CFeeRate."""

    sat_per_kvb: int

    def fee(self, vsize: int) -> int:
        fee = -(-self.sat_per_kvb * vsize // 1000)
        return 1 if fee == 0 and vsize and self.sat_per_kvb > 0 else fee

    def __str__(self) -> str:
        return f"{self.sat_per_kvb // 100_000_000}.{self.sat_per_kvb % 100_000_000:08d} BTC/kvB"


@dataclass(frozen=True, slots=True)
class Policy:
    """The relay settings; defaults follow the project's contract (1 sat/vB floors, 3 sat/vB dust)."""

    min_relay_fee: FeeRate = FeeRate(1000)
    incremental_relay_fee: FeeRate = FeeRate(1000)
    dust_relay_fee: FeeRate = FeeRate(3000)
    max_ancestors: int = 25
    max_descendants: int = 25
    max_replacements: int = 100


DEFAULT_POLICY = Policy()


def reject(reason: RejectReason, code: str, debug: str = "") -> BroadcastError:
    """bitcoind's reject string is the reason code, then ", " and the debug text when there is one."""
    return BroadcastError(reason, f"{code}, {debug}" if debug else code)


def format_money(sats: int) -> str:
    """Bitcoin Core's FormatMoney: BTC with trailing zeros dropped down to two decimals."""
    sign = "-" if sats < 0 else ""
    whole, frac = divmod(abs(sats), 100_000_000)
    text = f"{frac:08d}".rstrip("0").ljust(2, "0")
    return f"{sign}{whole}.{text}"


# --- context-free checks (CheckTransaction) ---------------------------------------------------------


def check_transaction(tx: Transaction) -> None:
    """Consensus checks that need no chain, with bitcoind's codes."""
    if not tx.inputs:
        raise reject(RejectReason.INVALID, "bad-txns-vin-empty")
    if not tx.outputs:
        raise reject(RejectReason.INVALID, "bad-txns-vout-empty")
    if len(tx.serialize(include_witness=False)) * 4 > 4_000_000:
        raise reject(RejectReason.INVALID, "bad-txns-oversize")
    total = 0
    for txout in tx.outputs:
        if txout.value < 0:
            raise reject(RejectReason.INVALID, "bad-txns-vout-negative")
        if txout.value > MAX_MONEY:
            raise reject(RejectReason.INVALID, "bad-txns-vout-toolarge")
        total += txout.value
        if total > MAX_MONEY:
            raise reject(RejectReason.INVALID, "bad-txns-txouttotal-toolarge")
    if len({txin.prevout for txin in tx.inputs}) != len(tx.inputs):
        raise reject(RejectReason.INVALID, "bad-txns-inputs-duplicate")
    if tx.is_coinbase():
        raise reject(RejectReason.INVALID, "coinbase")
    if any(txin.prevout.txid == b"\x00" * 32 and txin.prevout.vout == 0xFFFF_FFFF for txin in tx.inputs):
        raise reject(RejectReason.INVALID, "bad-txns-prevout-null")


# --- standardness (IsStandardTx) -----------------------------------------------------------------------


def _is_push_only(script: bytes) -> bool:
    try:
        return all(op.opcode <= Op.OP_16 for op in iter_script(script))
    except ScriptError:
        return False


def _is_bare_multisig(script: bytes) -> bool:
    try:
        ops = list(iter_script(script))
    except ScriptError:
        return False
    if len(ops) < 4 or ops[-1].opcode != Op.OP_CHECKMULTISIG:
        return False
    m, n = ops[0].opcode, ops[-2].opcode
    if not (Op.OP_1 <= m <= Op.OP_16 and Op.OP_1 <= n <= Op.OP_16):
        return False
    keys = ops[1:-2]
    m_value, n_value = m - Op.OP_1 + 1, n - Op.OP_1 + 1
    return (
        len(keys) == n_value
        and m_value <= n_value <= 3
        and all(k.data is not None and len(k.data) in (33, 65) for k in keys)
    )


def is_standard_output(script: bytes) -> bool:
    """Whether Core's Solver recognises `script` as a standard output type."""
    program = witness_program(script)
    if program is not None:
        version, data = program
        if version == 0:
            return len(data) in (20, 32)
        return 2 <= len(data) <= 40
    if len(script) == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac":
        return True  # P2PKH
    if len(script) == 23 and script[:2] == b"\xa9\x14" and script[22] == Op.OP_EQUAL:
        return True  # P2SH
    if len(script) in (35, 67) and script[0] == len(script) - 2 and script[-1] == Op.OP_CHECKSIG:
        return True  # P2PK
    if script[:1] == bytes([Op.OP_RETURN]):
        return len(script) <= MAX_OP_RETURN_RELAY and _is_push_only(script[1:])
    return _is_bare_multisig(script)


def is_unspendable(script: bytes) -> bool:
    return script[:1] == bytes([Op.OP_RETURN]) or len(script) > 10_000


def dust_threshold(txout: TxOut, dust_relay_fee: FeeRate) -> int:
    """Core's GetDustThreshold: the value below which spending the output costs more than it is worth."""
    if is_unspendable(txout.script_pubkey):
        return 0
    size = len(txout.serialize())
    # Outpoint, sequence and an input script (or its witness discount) the spend would need.
    size += 32 + 4 + 1 + 26 + 4 if witness_program(txout.script_pubkey) is not None else 32 + 4 + 1 + 107 + 4
    return dust_relay_fee.fee(size)


def is_dust(txout: TxOut, dust_relay_fee: FeeRate) -> bool:
    return txout.value < dust_threshold(txout, dust_relay_fee)


def check_standard(tx: Transaction, policy: Policy = DEFAULT_POLICY) -> None:
    if not 1 <= tx.version <= MAX_STANDARD_VERSION:
        raise reject(RejectReason.NONSTANDARD, "version")
    if tx.weight > MAX_STANDARD_TX_WEIGHT:
        raise reject(RejectReason.NONSTANDARD, "tx-size")
    for txin in tx.inputs:
        if len(txin.script_sig) > MAX_STANDARD_SCRIPTSIG_SIZE:
            raise reject(RejectReason.NONSTANDARD, "scriptsig-size")
        if not _is_push_only(txin.script_sig):
            raise reject(RejectReason.NONSTANDARD, "scriptsig-not-pushonly")
    data_outputs = 0
    for txout in tx.outputs:
        if not is_standard_output(txout.script_pubkey):
            raise reject(RejectReason.NONSTANDARD, "scriptpubkey")
        if txout.script_pubkey[:1] == bytes([Op.OP_RETURN]):
            data_outputs += 1
    if data_outputs > 1:
        raise reject(RejectReason.NONSTANDARD, "multi-op-return")
    if any(is_dust(txout, policy.dust_relay_fee) for txout in tx.outputs):
        raise reject(RejectReason.DUST, "dust")
    # Checked after IsStandardTx in Core, hence here, after the output checks.
    if len(tx.serialize(include_witness=False)) < MIN_STANDARD_TX_NONWITNESS_SIZE:
        raise reject(RejectReason.NONSTANDARD, "tx-size-small")


def check_witness_standard(tx: Transaction, spent: Sequence[TxOut]) -> None:
    """IsWitnessStandard for segwit v0 and taproot spends."""
    for txin, prev in zip(tx.inputs, spent, strict=True):
        if not txin.witness:
            continue
        script = prev.script_pubkey
        if script[:2] == b"\xa9\x14" and len(script) == 23:  # P2SH-wrapped witness program
            pushes = [op.data for op in iter_script(txin.script_sig)] if txin.script_sig else []
            script = pushes[-1] if pushes and pushes[-1] is not None else b""
        program = witness_program(script)
        if program is None:
            raise reject(RejectReason.NONSTANDARD, "bad-witness-nonstandard")
        version, data = program
        stack = txin.witness
        if version == 0 and len(data) == 32:
            if len(stack[-1]) > MAX_P2WSH_SCRIPT_SIZE or len(stack) - 1 > MAX_P2WSH_STACK_ITEMS:
                raise reject(RejectReason.NONSTANDARD, "bad-witness-nonstandard")
            if any(len(item) > MAX_STANDARD_STACK_ITEM_SIZE for item in stack[:-1]):
                raise reject(RejectReason.NONSTANDARD, "bad-witness-nonstandard")
        elif version == 1 and len(data) == 32 and prev.script_pubkey == script:
            if len(stack) >= 2 and stack[-1][:1] == b"\x50":
                raise reject(RejectReason.NONSTANDARD, "bad-witness-nonstandard")  # annex
            script_path = len(stack) >= 2 and stack[-1][:1] != b"" and stack[-1][0] & 0xFE == 0xC0
            if script_path and any(len(item) > MAX_STANDARD_STACK_ITEM_SIZE for item in stack[:-2]):
                raise reject(RejectReason.NONSTANDARD, "bad-witness-nonstandard")


# --- sigops --------------------------------------------------------------------------------------------


def count_sigops(script: bytes, accurate: bool) -> int:
    """Core's GetSigOpCount: CHECKMULTISIG counts 20 unless `accurate` and preceded by OP_1..OP_16."""
    count = 0
    last = 0xFF
    try:
        for op in iter_script(script):
            if op.opcode in (Op.OP_CHECKSIG, Op.OP_CHECKSIGVERIFY):
                count += 1
            elif op.opcode in (Op.OP_CHECKMULTISIG, Op.OP_CHECKMULTISIGVERIFY):
                if accurate and Op.OP_1 <= last <= Op.OP_16:
                    count += last - Op.OP_1 + 1
                else:
                    count += MAX_PUBKEYS_PER_MULTISIG
            last = op.opcode
    except ScriptError:
        pass  # Core counts up to the point where the script stops parsing
    return count


def _witness_sigops(version: int, program: bytes, witness: tuple[bytes, ...]) -> int:
    if version == 0 and len(program) == 20:
        return 1
    if version == 0 and len(program) == 32 and witness:
        return count_sigops(witness[-1], accurate=True)
    return 0


def sigop_cost(tx: Transaction, spent: Sequence[TxOut]) -> int:
    """GetTransactionSigOpCost for a non-coinbase transaction, P2SH and witness included."""
    legacy = sum(count_sigops(txin.script_sig, False) for txin in tx.inputs)
    legacy += sum(count_sigops(txout.script_pubkey, False) for txout in tx.outputs)
    cost = legacy * 4
    for txin, prev in zip(tx.inputs, spent, strict=True):
        script = prev.script_pubkey
        redeem: bytes | None = None
        if len(script) == 23 and script[:2] == b"\xa9\x14" and _is_push_only(txin.script_sig):
            pushes = list(iter_script(txin.script_sig))
            if pushes and pushes[-1].data is not None:
                redeem = pushes[-1].data
                cost += count_sigops(redeem, accurate=True) * 4
        program = witness_program(redeem if redeem is not None else script)
        if program is not None:
            cost += _witness_sigops(program[0], program[1], txin.witness)
    return cost


def policy_vsize(weight: int, sigops: int) -> int:
    """GetVirtualTransactionSize: the size charged for fees, raised for sigop-heavy transactions."""
    return (max(weight, sigops * BYTES_PER_SIGOP) + 3) // 4


# --- low-S ---------------------------------------------------------------------------------------------


def _der_s(signature: bytes) -> int | None:
    """The S value of a strict-DER signature followed by a sighash byte, or None if it is not one."""
    sig = signature[:-1]
    if len(sig) < 8 or len(sig) > 72 or sig[0] != 0x30 or sig[1] != len(sig) - 2 or sig[2] != 0x02:
        return None
    r_len = sig[3]
    if 5 + r_len >= len(sig) or sig[4 + r_len] != 0x02:
        return None
    s_len = sig[5 + r_len]
    if 6 + r_len + s_len != len(sig) or s_len == 0:
        return None
    return int.from_bytes(sig[6 + r_len :], "big")


def has_high_s(tx: Transaction) -> bool:
    """Whether any witness item or scriptSig push that parses as a DER signature has S > n/2.

    The kernel's flags do not include LOW_S, which Core applies as policy; checking every element
    that has a signature's shape is stricter than Core only for data that merely looks like one.
    """
    for txin in tx.inputs:
        items = list(txin.witness)
        with contextlib.suppress(ScriptError):
            items += [op.data for op in iter_script(txin.script_sig) if op.data is not None]
        for item in items:
            s_value = _der_s(item)
            if s_value is not None and s_value > _HALF_ORDER:
                return True
    return False


# --- finality -----------------------------------------------------------------------------------------


def is_final(tx: Transaction, height: int, time: int) -> bool:
    """IsFinalTx: `height` is that of the block that would include the tx, `time` its cutoff (BIP113 MTP)."""
    if tx.locktime == 0:
        return True
    cutoff = height if tx.locktime < LOCKTIME_THRESHOLD else time
    if tx.locktime < cutoff:
        return True
    return all(txin.sequence == SEQUENCE_FINAL for txin in tx.inputs)


@dataclass(frozen=True, slots=True)
class LockPoints:
    """BIP68: the tx may be in a block of height > `min_height` whose parent's MTP is > `min_time`."""

    min_height: int
    min_time: int


def sequence_locks(
    tx: Transaction, coin_heights: Sequence[int], median_time_past: Callable[[int], int]
) -> LockPoints:
    """CalculateSequenceLocks. `coin_heights[i]` is the height of the coin input i spends (the next
    block's height for a coin still in the mempool); `median_time_past(h)` is the MTP of block h."""
    min_height = -1
    min_time = -1
    if tx.version < 2:
        return LockPoints(min_height, min_time)
    for txin, coin_height in zip(tx.inputs, coin_heights, strict=True):
        sequence = txin.sequence
        if sequence & SEQUENCE_DISABLE_FLAG:
            continue
        value = sequence & SEQUENCE_MASK
        if sequence & SEQUENCE_TYPE_FLAG:
            coin_time = median_time_past(max(coin_height - 1, 0))
            min_time = max(min_time, coin_time + (value << SEQUENCE_GRANULARITY) - 1)
        else:
            min_height = max(min_height, coin_height + value - 1)
    return LockPoints(min_height, min_time)


def sequence_locks_met(locks: LockPoints, block_height: int, prev_median_time_past: int) -> bool:
    """EvaluateSequenceLocks for a block at `block_height` whose parent has `prev_median_time_past`."""
    return locks.min_height < block_height and locks.min_time < prev_median_time_past
