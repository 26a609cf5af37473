"""Blocks, headers, transactions and scripts as bitcoind's RPCs show them (TxToUniv and friends),
and the parameter parsing those RPCs share, with bitcoind's error messages.

Hashes are shown in display (reversed) order, amounts as BTC with 8 decimals (`BtcAmount`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ampere.bitcoin.address import AddressError, parse_witness_script_pubkey, script_pubkey_to_address
from ampere.bitcoin.block import Block, BlockHeader, bits_to_target
from ampere.bitcoin.errors import BitcoinError, ScriptError
from ampere.bitcoin.network import Network
from ampere.bitcoin.script import iter_script
from ampere.bitcoin.serialize import compact_size
from ampere.bitcoin.tx import Transaction
from ampere.chain.jsonrpc import BtcAmount, RpcError, RpcErrorCode, btc_to_sat

if TYPE_CHECKING:
    from ampere.chain.mempool import MempoolEntry

__all__ = [
    "GENESIS_COINBASE_TXID",
    "amount_param",
    "block_json",
    "block_work",
    "chainwork_hex",
    "decode_tx",
    "difficulty",
    "fee_rate_param",
    "header_json",
    "int_param",
    "invalid_param",
    "is_hex",
    "is_unspendable",
    "mempool_entry_json",
    "not_found",
    "parse_hash",
    "script_asm",
    "script_pubkey_json",
    "script_type",
    "tx_json",
    "verbosity_param",
]

# The genesis coinbase is not in the UTXO set nor retrievable from bitcoind (same txid on every network).
_GENESIS_COINBASE_DISPLAY = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
GENESIS_COINBASE_TXID = bytes.fromhex(_GENESIS_COINBASE_DISPLAY)[::-1]

# Names of opcodes 0x61 (OP_NOP) .. 0xba (OP_CHECKSIGADD), in order, as Bitcoin Core's GetOpName.
_OPCODE_NAMES_FROM_NOP = (
    "OP_NOP",
    "OP_VER",
    "OP_IF",
    "OP_NOTIF",
    "OP_VERIF",
    "OP_VERNOTIF",
    "OP_ELSE",
    "OP_ENDIF",
    "OP_VERIFY",
    "OP_RETURN",
    "OP_TOALTSTACK",
    "OP_FROMALTSTACK",
    "OP_2DROP",
    "OP_2DUP",
    "OP_3DUP",
    "OP_2OVER",
    "OP_2ROT",
    "OP_2SWAP",
    "OP_IFDUP",
    "OP_DEPTH",
    "OP_DROP",
    "OP_DUP",
    "OP_NIP",
    "OP_OVER",
    "OP_PICK",
    "OP_ROLL",
    "OP_ROT",
    "OP_SWAP",
    "OP_TUCK",
    "OP_CAT",
    "OP_SUBSTR",
    "OP_LEFT",
    "OP_RIGHT",
    "OP_SIZE",
    "OP_INVERT",
    "OP_AND",
    "OP_OR",
    "OP_XOR",
    "OP_EQUAL",
    "OP_EQUALVERIFY",
    "OP_RESERVED1",
    "OP_RESERVED2",
    "OP_1ADD",
    "OP_1SUB",
    "OP_2MUL",
    "OP_2DIV",
    "OP_NEGATE",
    "OP_ABS",
    "OP_NOT",
    "OP_0NOTEQUAL",
    "OP_ADD",
    "OP_SUB",
    "OP_MUL",
    "OP_DIV",
    "OP_MOD",
    "OP_LSHIFT",
    "OP_RSHIFT",
    "OP_BOOLAND",
    "OP_BOOLOR",
    "OP_NUMEQUAL",
    "OP_NUMEQUALVERIFY",
    "OP_NUMNOTEQUAL",
    "OP_LESSTHAN",
    "OP_GREATERTHAN",
    "OP_LESSTHANOREQUAL",
    "OP_GREATERTHANOREQUAL",
    "OP_MIN",
    "OP_MAX",
    "OP_WITHIN",
    "OP_RIPEMD160",
    "OP_SHA1",
    "OP_SHA256",
    "OP_HASH160",
    "OP_HASH256",
    "OP_CODESEPARATOR",
    "OP_CHECKSIG",
    "OP_CHECKSIGVERIFY",
    "OP_CHECKMULTISIG",
    "OP_CHECKMULTISIGVERIFY",
    "OP_NOP1",
    "OP_CHECKLOCKTIMEVERIFY",
    "OP_CHECKSEQUENCEVERIFY",
    "OP_NOP4",
    "OP_NOP5",
    "OP_NOP6",
    "OP_NOP7",
    "OP_NOP8",
    "OP_NOP9",
    "OP_NOP10",
    "OP_CHECKSIGADD",
)
_OP_NOP = 0x61
_OP_RETURN = 0x6A
_OP_CHECKSIG = 0xAC
_OP_CHECKMULTISIG = 0xAE
_OP_1 = 0x51
_OP_16 = 0x60
_PUSH_NAMES = {
    0x00: "0",
    0x4C: "OP_PUSHDATA1",
    0x4D: "OP_PUSHDATA2",
    0x4E: "OP_PUSHDATA4",
    0x4F: "-1",
    0x50: "OP_RESERVED",
}
_MAX_SCRIPT_SIZE = 10_000


def _opcode_name(opcode: int) -> str:
    if opcode in _PUSH_NAMES:
        return _PUSH_NAMES[opcode]
    if _OP_1 <= opcode <= _OP_16:
        return str(opcode - _OP_1 + 1)
    index = opcode - _OP_NOP
    if 0 <= index < len(_OPCODE_NAMES_FROM_NOP):
        return _OPCODE_NAMES_FROM_NOP[index]
    return "OP_UNKNOWN"


def _small_number(data: bytes) -> int:
    """CScriptNum without the minimality check, as ScriptToAsmStr shows pushes of up to 4 bytes."""
    if not data:
        return 0
    value = int.from_bytes(data, "little")
    if data[-1] & 0x80:
        return -(value & ~(0x80 << (8 * (len(data) - 1))))
    return value


def script_asm(script: bytes) -> str:
    """Bitcoin Core's ScriptToAsmStr (without sighash decoding): pushes as hex or small numbers."""
    words: list[str] = []
    try:
        for op in iter_script(script):
            if op.data is None:
                words.append(_opcode_name(op.opcode))
            elif len(op.data) <= 4:
                words.append(str(_small_number(op.data)))
            else:
                words.append(op.data.hex())
    except ScriptError:
        words.append("[error]")
    return " ".join(words)


def is_unspendable(script: bytes) -> bool:
    return (bool(script) and script[0] == _OP_RETURN) or len(script) > _MAX_SCRIPT_SIZE


def _is_multisig(script: bytes) -> bool:
    try:
        ops = list(iter_script(script))
    except ScriptError:
        return False
    if len(ops) < 4 or ops[-1].opcode != _OP_CHECKMULTISIG:
        return False
    m, n = ops[0].opcode, ops[-2].opcode
    if not (_OP_1 <= m <= _OP_16 and _OP_1 <= n <= _OP_16):
        return False
    keys = ops[1:-2]
    return (
        len(keys) == n - _OP_1 + 1
        and m <= n
        and all(k.data is not None and len(k.data) in (33, 65) for k in keys)
    )


def script_type(script: bytes) -> str:
    """The output type names of Bitcoin Core's Solver (GetTxnOutputType)."""
    witness = parse_witness_script_pubkey(script)
    if witness is not None:
        if witness.version == 0:
            return "witness_v0_keyhash" if len(witness.program) == 20 else "witness_v0_scripthash"
        if witness.version == 1 and len(witness.program) == 32:
            return "witness_v1_taproot"
        if witness.version == 1 and witness.program == b"\x4e\x73":
            return "anchor"
        return "witness_unknown"
    if len(script) == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac":
        return "pubkeyhash"
    if len(script) == 23 and script[:2] == b"\xa9\x14" and script[22] == 0x87:
        return "scripthash"
    if len(script) in (35, 67) and script[0] == len(script) - 2 and script[-1] == _OP_CHECKSIG:
        return "pubkey"
    if script and script[0] == _OP_RETURN:
        try:
            if all(op.opcode <= _OP_16 for op in iter_script(script[1:])):
                return "nulldata"
        except ScriptError:
            pass
        return "nonstandard"
    if _is_multisig(script):
        return "multisig"
    return "nonstandard"


def script_pubkey_json(script: bytes, network: Network) -> dict[str, Any]:
    result: dict[str, Any] = {"asm": script_asm(script), "hex": script.hex()}
    kind = script_type(script)
    if kind not in ("pubkey", "multisig", "nulldata", "nonstandard"):
        with contextlib.suppress(AddressError):
            result["address"] = script_pubkey_to_address(script, network)
    result["type"] = kind
    return result


def tx_json(tx: Transaction, network: Network, *, include_hex: bool = True) -> dict[str, Any]:
    """TxToUniv: the decoded transaction, optionally with its hex."""
    vin: list[dict[str, Any]] = []
    for txin in tx.inputs:
        entry: dict[str, Any]
        if tx.is_coinbase():
            entry = {"coinbase": txin.script_sig.hex()}
        else:
            entry = {
                "txid": txin.prevout.txid_hex,
                "vout": txin.prevout.vout,
                "scriptSig": {"asm": script_asm(txin.script_sig), "hex": txin.script_sig.hex()},
            }
        if txin.witness:
            entry["txinwitness"] = [item.hex() for item in txin.witness]
        entry["sequence"] = txin.sequence
        vin.append(entry)
    vout = [
        {
            "value": BtcAmount(txout.value),
            "n": index,
            "scriptPubKey": script_pubkey_json(txout.script_pubkey, network),
        }
        for index, txout in enumerate(tx.outputs)
    ]
    result: dict[str, Any] = {
        "txid": tx.txid_hex,
        "hash": tx.wtxid[::-1].hex(),
        "version": tx.version,
        "size": len(tx.serialize()),
        "vsize": tx.vsize,
        "weight": tx.weight,
        "locktime": tx.locktime,
        "vin": vin,
        "vout": vout,
    }
    if include_hex:
        result["hex"] = tx.to_hex()
    return result


def difficulty(bits: int) -> float:
    """GetDifficulty: the minimum-difficulty target divided by this one, as a double."""
    shift = (bits >> 24) & 0xFF
    mantissa = bits & 0x00FF_FFFF
    if mantissa == 0:
        return 0.0
    value = 0x0000_FFFF / mantissa
    while shift < 29:
        value *= 256.0
        shift += 1
    while shift > 29:
        value /= 256.0
        shift -= 1
    return value


def block_work(bits: int) -> int:
    target = bits_to_target(bits)
    return (1 << 256) // (target + 1) if target >= 0 else 0


def chainwork_hex(height: int, bits: int) -> str:
    # Regtest never retargets, so every block up to `height` carries the same work as this one.
    return f"{(height + 1) * block_work(bits):064x}"


def header_json(
    header: BlockHeader,
    *,
    height: int,
    confirmations: int,
    median_time: int,
    tx_count: int,
    next_hash: bytes | None,
) -> dict[str, Any]:
    """blockheaderToJSON; `height` -1 and `confirmations` -1 for a block off the active chain."""
    result: dict[str, Any] = {
        "hash": header.hash_hex,
        "confirmations": confirmations,
        "height": height,
        "version": header.version,
        "versionHex": f"{header.version & 0xFFFF_FFFF:08x}",
        "merkleroot": header.merkle_root[::-1].hex(),
        "time": header.time,
        "mediantime": median_time,
        "nonce": header.nonce,
        "bits": f"{header.bits:08x}",
        "difficulty": difficulty(header.bits),
        "chainwork": chainwork_hex(max(height, 0), header.bits),
        "nTx": tx_count,
    }
    if header.prev_hash != b"\x00" * 32:
        result["previousblockhash"] = header.prev_hash[::-1].hex()
    if next_hash is not None:
        result["nextblockhash"] = next_hash[::-1].hex()
    return result


def block_json(header_fields: dict[str, Any], block: Block, transactions: list[Any]) -> dict[str, Any]:
    """blockToJSON: the header fields, sizes, and the transactions (txids or decoded)."""
    size = len(block.serialize())
    stripped = (
        80
        + len(compact_size(len(block.transactions)))
        + sum(len(tx.serialize(include_witness=False)) for tx in block.transactions)
    )
    result = dict(header_fields)
    result["strippedsize"] = stripped
    result["size"] = size
    result["weight"] = block.weight
    result["tx"] = transactions
    return result


def _closure(start: bytes, step: Callable[[bytes], list[bytes]]) -> set[bytes]:
    """`start` and everything reachable from it (bitcoind counts a transaction among its own ancestors)."""
    seen = {start}
    frontier = [start]
    while frontier:
        for nxt in step(frontier.pop()):
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return seen


def mempool_entry_json(txid: bytes, pool: dict[bytes, MempoolEntry], height: int) -> dict[str, Any]:
    """getmempoolentry's fields; a transaction counts among its own ancestors and descendants."""
    entry = pool[txid]

    def parents_of(item: bytes) -> list[bytes]:
        return [txin.prevout.txid for txin in pool[item].tx.inputs if txin.prevout.txid in pool]

    def children_of(item: bytes) -> list[bytes]:
        return [other for other, e in pool.items() if any(i.prevout.txid == item for i in e.tx.inputs)]

    ancestors = _closure(txid, parents_of)
    descendants = _closure(txid, children_of)
    return {
        "vsize": entry.vsize,
        "weight": entry.weight,
        "time": entry.time,
        "height": height,
        "descendantcount": len(descendants),
        "descendantsize": sum(pool[t].vsize for t in descendants),
        "ancestorcount": len(ancestors),
        "ancestorsize": sum(pool[t].vsize for t in ancestors),
        "wtxid": entry.wtxid[::-1].hex(),
        "fees": {
            "base": BtcAmount(entry.fee),
            "modified": BtcAmount(entry.fee),
            "ancestor": BtcAmount(sum(pool[t].fee for t in ancestors)),
            "descendant": BtcAmount(sum(pool[t].fee for t in descendants)),
        },
        "depends": sorted(parent[::-1].hex() for parent in set(parents_of(txid))),
        "spentby": sorted(child[::-1].hex() for child in children_of(txid)),
        "bip125-replaceable": True,  # full RBF: any mempool transaction can be replaced
        "unbroadcast": False,
    }


def invalid_param(message: str) -> RpcError:
    return RpcError(RpcErrorCode.INVALID_PARAMETER, message)


def not_found(message: str) -> RpcError:
    return RpcError(RpcErrorCode.INVALID_ADDRESS_OR_KEY, message)


# --- parameter parsing ------------------------------------------------------------------------------------


def parse_hash(value: Any, name: str) -> bytes:
    """A display-order hex hash to internal byte order, with ParseHashV's errors."""
    text = str(value)
    if len(text) != 64:
        raise invalid_param(f"{name} must be of length 64 (not {len(text)}, for '{text}')")
    if not is_hex(text):
        raise invalid_param(f"{name} must be hexadecimal string (not '{text}')")
    return bytes.fromhex(text)[::-1]


def is_hex(text: str) -> bool:
    return len(text) % 2 == 0 and all(char in "0123456789abcdefABCDEF" for char in text)


def decode_tx(value: Any) -> Transaction:
    text = str(value)
    if not is_hex(text):
        raise RpcError(
            RpcErrorCode.DESERIALIZATION_ERROR, "TX decode failed. Make sure the tx has at least one input."
        )
    try:
        return Transaction.parse(bytes.fromhex(text))
    except (BitcoinError, ValueError):
        raise RpcError(
            RpcErrorCode.DESERIALIZATION_ERROR, "TX decode failed. Make sure the tx has at least one input."
        ) from None


def int_param(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RpcError(RpcErrorCode.TYPE_ERROR, f"{name}: JSON value is not an integer as expected")
    return value


def verbosity_param(value: Any, default: int) -> int:
    """bitcoind's ParseVerbosity: null is the default, a bool means 0 or 1, else an integer."""
    if value is None:
        return default
    if isinstance(value, bool):
        return int(value)
    return int_param(value, "verbosity")


def fee_rate_param(value: Any, default: int) -> int:
    """A BTC/kvB fee rate parameter in sat/kvB."""
    if value is None:
        return default
    return amount_param(value)


def amount_param(value: Any) -> int:
    if isinstance(value, bool):
        raise RpcError(RpcErrorCode.TYPE_ERROR, "Amount is not a number or string")
    try:
        return btc_to_sat(value)
    except ValueError as exc:
        raise RpcError(RpcErrorCode.TYPE_ERROR, str(exc)) from None
