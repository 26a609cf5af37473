"""Bitcoin Script: opcodes, a builder with minimal pushes, a parser, and the standard output templates."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

from ampere.bitcoin.errors import ScriptError
from ampere.bitcoin.hashes import hash160, sha256


class Op(IntEnum):
    OP_0 = 0x00
    OP_PUSHDATA1 = 0x4C
    OP_PUSHDATA2 = 0x4D
    OP_PUSHDATA4 = 0x4E
    OP_1NEGATE = 0x4F
    OP_1 = 0x51
    OP_2 = 0x52
    OP_3 = 0x53
    OP_16 = 0x60
    OP_NOP = 0x61
    OP_IF = 0x63
    OP_NOTIF = 0x64
    OP_ELSE = 0x67
    OP_ENDIF = 0x68
    OP_VERIFY = 0x69
    OP_RETURN = 0x6A
    OP_TOALTSTACK = 0x6B
    OP_FROMALTSTACK = 0x6C
    OP_IFDUP = 0x73
    OP_DROP = 0x75
    OP_DUP = 0x76
    OP_NIP = 0x77
    OP_OVER = 0x78
    OP_SWAP = 0x7C
    OP_SIZE = 0x82
    OP_EQUAL = 0x87
    OP_EQUALVERIFY = 0x88
    OP_1ADD = 0x8B
    OP_NOT = 0x91
    OP_ADD = 0x93
    OP_BOOLAND = 0x9A
    OP_NUMEQUAL = 0x9C
    OP_WITHIN = 0xA5
    OP_RIPEMD160 = 0xA6
    OP_SHA256 = 0xA8
    OP_HASH160 = 0xA9
    OP_HASH256 = 0xAA
    OP_CHECKSIG = 0xAC
    OP_CHECKSIGVERIFY = 0xAD
    OP_CHECKMULTISIG = 0xAE
    OP_CHECKMULTISIGVERIFY = 0xAF
    OP_CHECKLOCKTIMEVERIFY = 0xB1
    OP_CHECKSEQUENCEVERIFY = 0xB2
    OP_CHECKSIGADD = 0xBA


ScriptItem = Op | bytes | int


def encode_script_num(value: int) -> bytes:
    """CScriptNum: little-endian magnitude with the sign in the top bit of the last byte, minimal."""
    if value == 0:
        return b""
    negative = value < 0
    magnitude = -value if negative else value
    out = bytearray()
    while magnitude:
        out.append(magnitude & 0xFF)
        magnitude >>= 8
    if out[-1] & 0x80:
        out.append(0x80 if negative else 0x00)
    elif negative:
        out[-1] |= 0x80
    return bytes(out)


def decode_script_num(data: bytes, max_size: int = 5) -> int:
    if len(data) > max_size:
        raise ScriptError("script number too long")
    if not data:
        return 0
    if data[-1] & 0x7F == 0 and (len(data) == 1 or not data[-2] & 0x80):
        raise ScriptError("non-minimal script number")
    value = int.from_bytes(data, "little")
    if data[-1] & 0x80:
        return -(value & ~(0x80 << (8 * (len(data) - 1))))
    return value


def push_data(data: bytes) -> bytes:
    """The minimal push of `data`, as BIP62's minimal-push rule (and so standardness) requires."""
    size = len(data)
    if size == 0:
        return bytes([Op.OP_0])
    if size == 1 and 1 <= data[0] <= 16:
        return bytes([Op.OP_1 + data[0] - 1])
    if size == 1 and data[0] == 0x81:
        return bytes([Op.OP_1NEGATE])
    if size < Op.OP_PUSHDATA1:
        return bytes([size]) + data
    if size <= 0xFF:
        return bytes([Op.OP_PUSHDATA1, size]) + data
    if size <= 0xFFFF:
        return bytes([Op.OP_PUSHDATA2]) + struct.pack("<H", size) + data
    return bytes([Op.OP_PUSHDATA4]) + struct.pack("<I", size) + data


def push_int(value: int) -> bytes:
    if value == 0:
        return bytes([Op.OP_0])
    if value == -1:
        return bytes([Op.OP_1NEGATE])
    if 1 <= value <= 16:
        return bytes([Op.OP_1 + value - 1])
    return push_data(encode_script_num(value))


def build_script(*items: ScriptItem) -> bytes:
    """Opcodes are emitted as they are, byte strings as minimal pushes, ints as minimal numbers."""
    parts = []
    for item in items:
        if isinstance(item, Op):
            parts.append(bytes([item]))
        elif isinstance(item, bytes):
            parts.append(push_data(item))
        else:
            parts.append(push_int(item))
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class ScriptOp:
    opcode: int
    data: bytes | None  # the pushed bytes for push opcodes


def iter_script(script: bytes) -> Iterator[ScriptOp]:
    pos = 0
    while pos < len(script):
        opcode = script[pos]
        pos += 1
        if opcode < Op.OP_PUSHDATA1:
            size = opcode
        elif opcode == Op.OP_PUSHDATA1:
            if pos + 1 > len(script):
                raise ScriptError("truncated OP_PUSHDATA1")
            size = script[pos]
            pos += 1
        elif opcode == Op.OP_PUSHDATA2:
            if pos + 2 > len(script):
                raise ScriptError("truncated OP_PUSHDATA2")
            size = struct.unpack_from("<H", script, pos)[0]
            pos += 2
        elif opcode == Op.OP_PUSHDATA4:
            if pos + 4 > len(script):
                raise ScriptError("truncated OP_PUSHDATA4")
            size = struct.unpack_from("<I", script, pos)[0]
            pos += 4
        else:
            yield ScriptOp(opcode, None)
            continue
        if pos + size > len(script):
            raise ScriptError("push runs past the end of the script")
        yield ScriptOp(opcode, script[pos : pos + size])
        pos += size


def parse_script(script: bytes) -> list[ScriptOp]:
    return list(iter_script(script))


# --- output templates -------------------------------------------------------------------------------


def p2wpkh_script(pubkey: bytes) -> bytes:
    if len(pubkey) != 33:
        raise ScriptError("P2WPKH needs a 33-byte compressed public key")
    return build_script(Op.OP_0, hash160(pubkey))


def p2wpkh_script_from_hash(pubkey_hash: bytes) -> bytes:
    return build_script(Op.OP_0, pubkey_hash)


def p2wsh_script(witness_script: bytes) -> bytes:
    return build_script(Op.OP_0, sha256(witness_script))


def p2tr_script(output_key_xonly: bytes) -> bytes:
    if len(output_key_xonly) != 32:
        raise ScriptError("P2TR needs a 32-byte x-only output key")
    return build_script(Op.OP_1, output_key_xonly)


def p2pkh_script(pubkey_hash: bytes) -> bytes:
    return build_script(Op.OP_DUP, Op.OP_HASH160, pubkey_hash, Op.OP_EQUALVERIFY, Op.OP_CHECKSIG)


def p2sh_script(script_hash: bytes) -> bytes:
    return build_script(Op.OP_HASH160, script_hash, Op.OP_EQUAL)


def op_return_script(data: bytes) -> bytes:
    return bytes([Op.OP_RETURN]) + push_data(data)


def p2pkh_script_code(pubkey: bytes) -> bytes:
    """BIP143's scriptCode for a P2WPKH input."""
    return p2pkh_script(hash160(pubkey))


def multisig_2of2_script(pubkey_a: bytes, pubkey_b: bytes) -> bytes:
    """2-of-2 with keys in lexicographic order (BOLT 3's funding script)."""
    first, second = sorted((pubkey_a, pubkey_b))
    return build_script(Op.OP_2, first, second, Op.OP_2, Op.OP_CHECKMULTISIG)


def witness_program(script_pubkey: bytes) -> tuple[int, bytes] | None:
    """(version, program) of a segwit output script, or None for anything else."""
    if not 4 <= len(script_pubkey) <= 42:
        return None
    version_op = script_pubkey[0]
    if version_op != Op.OP_0 and not Op.OP_1 <= version_op <= Op.OP_16:
        return None
    if script_pubkey[1] + 2 != len(script_pubkey):
        return None
    version = 0 if version_op == Op.OP_0 else version_op - Op.OP_1 + 1
    return version, script_pubkey[2:]


def is_p2wpkh(script_pubkey: bytes) -> bool:
    return len(script_pubkey) == 22 and script_pubkey[:2] == b"\x00\x14"


def is_p2wsh(script_pubkey: bytes) -> bool:
    return len(script_pubkey) == 34 and script_pubkey[:2] == b"\x00\x20"


def is_p2tr(script_pubkey: bytes) -> bool:
    return len(script_pubkey) == 34 and script_pubkey[:2] == b"\x51\x20"
