"""Tagged fields: splitting the data part into fields, and each field's value to and from 5-bit words."""

from __future__ import annotations

from collections.abc import Sequence

from ampere.bitcoin.address import (
    AddressError,
    WitnessProgram,
    address_to_script_pubkey,
    p2pkh_script_pubkey,
    p2sh_script_pubkey,
    parse_witness_script_pubkey,
    script_pubkey_to_address,
)
from ampere.bitcoin.bech32 import Bech32Error, convertbits
from ampere.bitcoin.network import Network
from ampere.invoice.errors import InvoiceError
from ampere.invoice.model import MAX_U32, RouteHint, RouteHintHop, TaggedField
from ampere.wire.primitives import ShortChannelId

__all__ = [
    "MAX_FIELD_WORDS",
    "Tag",
    "bytes_to_words",
    "fallback_field",
    "int_to_words",
    "parse_fallback",
    "parse_route_hint",
    "parse_uint",
    "route_hint_field",
    "split_fields",
    "words_to_bytes",
    "words_to_int",
]

#: `data_length` is 10 bits.
MAX_FIELD_WORDS = (1 << 10) - 1
_HOP_BYTES = 33 + 8 + 4 + 4 + 2
_P2PKH_VERSION = 17
_P2SH_VERSION = 18
_HASH160_BYTES = 20
_P2PKH_PREFIX = bytes([0x76, 0xA9, 0x14])
_P2SH_PREFIX = bytes([0xA9, 0x14])


class Tag:
    """The 5-bit type of each tagged field BOLT 11 defines (the bech32 letter in comments)."""

    PAYMENT_HASH = 1  # p
    ROUTE_HINT = 3  # r
    FEATURES = 5  # 9
    EXPIRY = 6  # x
    FALLBACK = 9  # f
    INVOICE_TLVS = 11  # t (trampoline hints; skipped)
    DESCRIPTION = 13  # d
    PAYMENT_SECRET = 16  # s
    PAYEE = 19  # n
    DESCRIPTION_HASH = 23  # h
    MIN_FINAL_CLTV_EXPIRY = 24  # c
    METADATA = 27  # m


def words_to_bytes(words: Sequence[int], what: str) -> bytes:
    """Bytes from 5-bit words; the writer MUST pad with zeros, so leftover bits must be zero."""
    try:
        return bytes(convertbits(words, 5, 8, pad=False))
    except Bech32Error as exc:
        raise InvoiceError(f"{what}: {exc}") from None


def bytes_to_words(data: bytes) -> list[int]:
    return convertbits(data, 8, 5, pad=True)


def words_to_int(words: Sequence[int]) -> int:
    value = 0
    for word in words:
        value = value << 5 | word
    return value


def int_to_words(value: int) -> list[int]:
    """Big-endian 5-bit words with no leading zero word (zero is the empty field)."""
    words: list[int] = []
    while value:
        words.append(value & 31)
        value >>= 5
    return words[::-1]


def parse_uint(words: Sequence[int], what: str) -> int:
    """A minimally encoded integer field (`x`, `c`): a leading zero word makes the invoice invalid."""
    if words and words[0] == 0:
        raise InvoiceError(f"{what} field is not minimally encoded (leading zero)")
    value = words_to_int(words)
    if value > MAX_U32:
        raise InvoiceError(f"{what} field value {value} does not fit in 32 bits")
    return value


def split_fields(words: Sequence[int]) -> list[TaggedField]:
    """The tagged fields between the timestamp and the signature, in order."""
    fields: list[TaggedField] = []
    position = 0
    while position < len(words):
        if len(words) - position < 3:
            raise InvoiceError("truncated tagged field header")
        tag = words[position]
        length = words[position + 1] << 5 | words[position + 2]
        start = position + 3
        if start + length > len(words):
            raise InvoiceError(f"tagged field of type {tag} claims {length} words but the data ends first")
        fields.append(TaggedField(tag, tuple(words[start : start + length])))
        position = start + length
    return fields


def parse_route_hint(words: Sequence[int]) -> RouteHint:
    data = words_to_bytes(words, "route hint field")
    if not data or len(data) % _HOP_BYTES:
        raise InvoiceError(f"route hint field of {len(data)} bytes is not a multiple of {_HOP_BYTES}")
    hops = []
    for offset in range(0, len(data), _HOP_BYTES):
        hop = data[offset : offset + _HOP_BYTES]
        hops.append(
            RouteHintHop(
                pubkey=hop[:33],
                short_channel_id=ShortChannelId.from_bytes(hop[33:41]),
                fee_base_msat=int.from_bytes(hop[41:45], "big"),
                fee_proportional_millionths=int.from_bytes(hop[45:49], "big"),
                cltv_expiry_delta=int.from_bytes(hop[49:51], "big"),
            )
        )
    return RouteHint(tuple(hops))


def route_hint_field(hint: RouteHint) -> TaggedField:
    data = b"".join(
        hop.pubkey
        + hop.short_channel_id.to_bytes()
        + hop.fee_base_msat.to_bytes(4, "big")
        + hop.fee_proportional_millionths.to_bytes(4, "big")
        + hop.cltv_expiry_delta.to_bytes(2, "big")
        for hop in hint.hops
    )
    return TaggedField(Tag.ROUTE_HINT, tuple(bytes_to_words(data)))


def parse_fallback(words: Sequence[int], network: Network) -> str | None:
    """The address of an `f` field, or None for a version we must skip (19..31)."""
    if not words:
        raise InvoiceError("empty fallback address field")
    version = words[0]
    if version > _P2SH_VERSION:
        return None
    program = words_to_bytes(words[1:], "fallback address field")
    try:
        if version in (_P2PKH_VERSION, _P2SH_VERSION):
            if len(program) != _HASH160_BYTES:
                raise InvoiceError(f"fallback version {version} needs a 20-byte hash, got {len(program)}")
            build = p2pkh_script_pubkey if version == _P2PKH_VERSION else p2sh_script_pubkey
            return script_pubkey_to_address(build(program), network)
        return script_pubkey_to_address(WitnessProgram(version, program).script_pubkey, network)
    except AddressError as exc:
        raise InvoiceError(f"invalid fallback address (version {version}): {exc}") from None


def fallback_field(address: str, network: Network) -> TaggedField:
    try:
        script = address_to_script_pubkey(address, network)
    except AddressError as exc:
        raise InvoiceError(f"fallback address {address!r}: {exc}") from None
    witness = parse_witness_script_pubkey(script)
    if witness is not None:
        version, program = witness.version, witness.program
    elif script.startswith(_P2PKH_PREFIX):
        version, program = _P2PKH_VERSION, script[3:23]
    elif script.startswith(_P2SH_PREFIX):
        version, program = _P2SH_VERSION, script[2:22]
    else:  # pragma: no cover - address_to_script_pubkey only builds the three forms above
        raise InvoiceError(f"fallback address {address!r} has no BOLT 11 form")
    return TaggedField(Tag.FALLBACK, (version, *bytes_to_words(program)))
