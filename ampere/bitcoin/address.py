"""Bitcoin addresses: segwit (BIP173 bech32 for v0, BIP350 bech32m for v1+) and legacy Base58Check.

Addresses are only an edge format: inside Ampere outputs are scriptPubKeys, and these
functions convert between the two for a given network.
"""

from __future__ import annotations

from dataclasses import dataclass

from ampere.bitcoin.base58 import Base58Error, b58check_decode, b58check_encode
from ampere.bitcoin.bech32 import Bech32Error, Encoding, bech32_decode, bech32_encode, convertbits
from ampere.bitcoin.errors import BitcoinError
from ampere.bitcoin.network import Network

__all__ = [
    "AddressError",
    "WitnessProgram",
    "address_to_script_pubkey",
    "decode_segwit_address",
    "encode_segwit_address",
    "p2pkh_script_pubkey",
    "p2sh_script_pubkey",
    "parse_witness_script_pubkey",
    "script_pubkey_to_address",
    "witness_script_pubkey",
]

_OP_0 = 0x00
_OP_1 = 0x51
_OP_16 = 0x60
_OP_DUP = 0x76
_OP_HASH160 = 0xA9
_OP_EQUAL = 0x87
_OP_EQUALVERIFY = 0x88
_OP_CHECKSIG = 0xAC

_MIN_PROGRAM = 2
_MAX_PROGRAM = 40
_HASH160_LEN = 20


class AddressError(BitcoinError):
    """An address that is malformed, for another network, or a script with no address form."""


@dataclass(frozen=True, slots=True)
class WitnessProgram:
    """A segwit output: witness version 0..16 and its 2..40-byte program."""

    version: int
    program: bytes

    def __post_init__(self) -> None:
        _check_witness_program(self.version, self.program)

    @property
    def script_pubkey(self) -> bytes:
        return witness_script_pubkey(self.version, self.program)


def _check_witness_program(version: int, program: bytes) -> None:
    if not 0 <= version <= 16:
        raise AddressError(f"witness version {version} out of range 0..16")
    if not _MIN_PROGRAM <= len(program) <= _MAX_PROGRAM:
        raise AddressError(f"witness program of {len(program)} bytes, must be 2..40")
    # BIP141 defines only the P2WPKH (20) and P2WSH (32) program sizes for version 0.
    if version == 0 and len(program) not in (20, 32):
        raise AddressError(f"version 0 witness program of {len(program)} bytes, must be 20 or 32")


def witness_script_pubkey(version: int, program: bytes) -> bytes:
    """OP_n <program>: the scriptPubKey of a witness output."""
    _check_witness_program(version, program)
    opcode = _OP_0 if version == 0 else _OP_1 + version - 1
    return bytes([opcode, len(program)]) + program


def parse_witness_script_pubkey(script_pubkey: bytes) -> WitnessProgram | None:
    """The witness program of `script_pubkey`, or None when it is not a witness output."""
    if not 4 <= len(script_pubkey) <= 42:
        return None
    opcode, push = script_pubkey[0], script_pubkey[1]
    if opcode != _OP_0 and not _OP_1 <= opcode <= _OP_16:
        return None
    if push != len(script_pubkey) - 2:
        return None
    version = 0 if opcode == _OP_0 else opcode - _OP_1 + 1
    try:
        return WitnessProgram(version, script_pubkey[2:])
    except AddressError:
        return None


def p2pkh_script_pubkey(pubkey_hash: bytes) -> bytes:
    if len(pubkey_hash) != _HASH160_LEN:
        raise AddressError("P2PKH needs a 20-byte public key hash")
    return bytes([_OP_DUP, _OP_HASH160, _HASH160_LEN]) + pubkey_hash + bytes([_OP_EQUALVERIFY, _OP_CHECKSIG])


def p2sh_script_pubkey(script_hash: bytes) -> bytes:
    if len(script_hash) != _HASH160_LEN:
        raise AddressError("P2SH needs a 20-byte script hash")
    return bytes([_OP_HASH160, _HASH160_LEN]) + script_hash + bytes([_OP_EQUAL])


def _encoding_for(version: int) -> Encoding:
    # BIP350: bech32m for every version but 0, so that a v0 checksum cannot be replayed onto a
    # mutated version-1+ address (bech32's insertion weakness).
    return Encoding.BECH32 if version == 0 else Encoding.BECH32M


def encode_segwit_address(hrp: str, version: int, program: bytes) -> str:
    _check_witness_program(version, program)
    data = [version, *convertbits(program, 8, 5, pad=True)]
    try:
        address = bech32_encode(hrp, data, _encoding_for(version))
    except Bech32Error as exc:
        raise AddressError(str(exc)) from exc
    # Round-trip as BIP173's reference encoder does, so no address is produced that its own
    # decoder would refuse (an HRP too long for the 90-character limit, for one).
    decode_segwit_address(hrp, address)
    return address


def decode_segwit_address(hrp: str, address: str) -> WitnessProgram:
    """Decode a segwit address, requiring HRP `hrp` and the checksum variant of its version."""
    try:
        decoded = bech32_decode(address)
    except Bech32Error as exc:
        raise AddressError(f"invalid segwit address: {exc}") from exc
    if decoded.hrp != hrp.lower():
        raise AddressError(f"address HRP {decoded.hrp!r} is not the expected {hrp.lower()!r}")
    if not decoded.data:
        raise AddressError("segwit address has an empty data section")
    version = decoded.data[0]
    if version > 16:
        raise AddressError(f"witness version {version} out of range 0..16")
    if decoded.encoding is not _encoding_for(version):
        wanted = _encoding_for(version).name.lower()
        raise AddressError(f"witness version {version} address must use {wanted}")
    try:
        program = bytes(convertbits(decoded.data[1:], 5, 8, pad=False))
    except Bech32Error as exc:
        raise AddressError(f"invalid witness program encoding: {exc}") from exc
    return WitnessProgram(version, program)


def address_to_script_pubkey(address: str, network: Network) -> bytes:
    """The scriptPubKey paying `address`, which must belong to `network`."""
    # No Base58 address of any network starts with a bech32 HRP and '1', so a mistyped segwit
    # address gets the bech32 error rather than a confusing Base58 one.
    if address.lower().startswith(network.hrp + "1"):
        return decode_segwit_address(network.hrp, address).script_pubkey
    try:
        decoded = bech32_decode(address)
    except Bech32Error:
        decoded = None
    if decoded is not None:
        if decoded.hrp != network.hrp:
            raise AddressError(f"address HRP {decoded.hrp!r} is not {network.label}'s {network.hrp!r}")
        return decode_segwit_address(network.hrp, address).script_pubkey
    try:
        payload = b58check_decode(address)
    except Base58Error as exc:
        raise AddressError(f"not a valid segwit or base58check address: {exc}") from exc
    if len(payload) != 1 + _HASH160_LEN:
        raise AddressError(f"base58check address payload of {len(payload)} bytes, must be 21")
    prefix, body = payload[0], payload[1:]
    if prefix == network.p2pkh_prefix:
        return p2pkh_script_pubkey(body)
    if prefix == network.p2sh_prefix:
        return p2sh_script_pubkey(body)
    raise AddressError(f"base58 version byte {prefix:#04x} is not a {network.label} address")


def script_pubkey_to_address(script_pubkey: bytes, network: Network) -> str:
    """The address of a P2PKH, P2SH or witness (v0..v16) scriptPubKey on `network`."""
    witness = parse_witness_script_pubkey(script_pubkey)
    if witness is not None:
        return encode_segwit_address(network.hrp, witness.version, witness.program)
    if (
        len(script_pubkey) == 25
        and script_pubkey[:3] == bytes([_OP_DUP, _OP_HASH160, _HASH160_LEN])
        and script_pubkey[23:] == bytes([_OP_EQUALVERIFY, _OP_CHECKSIG])
    ):
        return b58check_encode(bytes([network.p2pkh_prefix]) + script_pubkey[3:23])
    if (
        len(script_pubkey) == 23
        and script_pubkey[:2] == bytes([_OP_HASH160, _HASH160_LEN])
        and script_pubkey[22] == _OP_EQUAL
    ):
        return b58check_encode(bytes([network.p2sh_prefix]) + script_pubkey[2:22])
    raise AddressError("script has no standard address form")
