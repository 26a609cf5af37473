"""BOLT #7 gossip-query encodings: ``encoded_short_ids``, timestamps, query flags and checksums.

The query messages carry arrays behind a one-byte encoding type.  Only type
0 (uncompressed) is allowed; type 1 (zlib) "MUST NOT be used" any more, and
is rejected here rather than inflated, which also removes a decompression-bomb
surface.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ampere.wire.bigsize import encode_bigsize
from ampere.wire.errors import DecodeError, EncodeError
from ampere.wire.messages import make_message
from ampere.wire.primitives import Reader, ShortChannelId
from ampere.wire.values import FieldValue, Message, Struct

ENCODING_UNCOMPRESSED = 0
ENCODING_ZLIB = 1  # forbidden by BOLT #7; named only to produce a clear error


class QueryOption(enum.IntFlag):
    """``query_option_flags`` of ``query_channel_range``."""

    WANT_TIMESTAMPS = 1
    WANT_CHECKSUMS = 2


class QueryFlag(enum.IntFlag):
    """Per-channel flags of ``query_short_channel_ids``' ``query_flags``."""

    CHANNEL_ANNOUNCEMENT = 1
    CHANNEL_UPDATE_NODE_1 = 2
    CHANNEL_UPDATE_NODE_2 = 4
    NODE_ANNOUNCEMENT_NODE_1 = 8
    NODE_ANNOUNCEMENT_NODE_2 = 16


@dataclass(frozen=True, slots=True)
class UpdatePair:
    """A value for each direction of a channel (timestamps or checksums of its two ``channel_update``s)."""

    node_1: int
    node_2: int


def _check_encoding(encoding_type: int, what: str) -> None:
    if encoding_type == ENCODING_ZLIB:
        raise DecodeError(f"{what}: zlib encoding (type 1) is forbidden by BOLT #7")
    if encoding_type != ENCODING_UNCOMPRESSED:
        raise DecodeError(f"{what}: unknown encoding type {encoding_type}")


def decode_short_channel_ids(encoded: bytes) -> tuple[ShortChannelId, ...]:
    """Decode an ``encoded_short_ids`` field (encoding byte included); empty means no ids."""
    if not encoded:
        return ()
    _check_encoding(encoded[0], "encoded_short_ids")
    body = encoded[1:]
    if len(body) % 8:
        raise DecodeError("encoded_short_ids is not a whole number of short_channel_ids")
    return tuple(ShortChannelId.from_bytes(body[i : i + 8]) for i in range(0, len(body), 8))


def encode_short_channel_ids(scids: Sequence[ShortChannelId]) -> bytes:
    """Encode ids as an uncompressed ``encoded_short_ids`` (they must be in ascending order)."""
    if any(a > b for a, b in itertools.pairwise(scids)):
        raise EncodeError("encoded_short_ids must be in ascending order")
    return bytes((ENCODING_UNCOMPRESSED,)) + b"".join(scid.to_bytes() for scid in scids)


def decode_timestamps(encoding_type: int, encoded: bytes) -> tuple[UpdatePair, ...]:
    """Decode ``encoded_timestamps`` of a ``timestamps_tlv``."""
    _check_encoding(encoding_type, "encoded_timestamps")
    if len(encoded) % 8:
        raise DecodeError("encoded_timestamps is not a whole number of timestamp pairs")
    return tuple(
        UpdatePair(int.from_bytes(encoded[i : i + 4], "big"), int.from_bytes(encoded[i + 4 : i + 8], "big"))
        for i in range(0, len(encoded), 8)
    )


def encode_timestamps(pairs: Iterable[UpdatePair]) -> bytes:
    return b"".join(p.node_1.to_bytes(4, "big") + p.node_2.to_bytes(4, "big") for p in pairs)


def decode_query_flags(encoding_type: int, encoded: bytes) -> tuple[int, ...]:
    """Decode ``encoded_query_flags``: an array of BigSize flags."""
    _check_encoding(encoding_type, "encoded_query_flags")
    reader = Reader(encoded)
    flags: list[int] = []
    while not reader.at_end():
        flags.append(reader.read_bigsize())
    return tuple(flags)


def encode_query_flags(flags: Iterable[int]) -> bytes:
    return b"".join(encode_bigsize(flag) for flag in flags)


# --------------------------------------------------------------------------- message views


def short_channel_ids(message: Message) -> tuple[ShortChannelId, ...]:
    """The ids of a ``query_short_channel_ids`` or ``reply_channel_range``."""
    return decode_short_channel_ids(message.get_bytes("encoded_short_ids"))


def query_flags(message: Message) -> tuple[int, ...] | None:
    """The per-id flags of a ``query_short_channel_ids``, or ``None`` if absent."""
    record = message.tlv("query_flags")
    if record is None:
        return None
    return decode_query_flags(record.get_int("encoding_type"), record.get_bytes("encoded_query_flags"))


def reply_timestamps(message: Message) -> tuple[UpdatePair, ...] | None:
    """The ``timestamps_tlv`` of a ``reply_channel_range``, or ``None`` if absent."""
    record = message.tlv("timestamps_tlv")
    if record is None:
        return None
    return decode_timestamps(record.get_int("encoding_type"), record.get_bytes("encoded_timestamps"))


def reply_checksums(message: Message) -> tuple[UpdatePair, ...] | None:
    """The ``checksums_tlv`` of a ``reply_channel_range``, or ``None`` if absent."""
    record = message.tlv("checksums_tlv")
    if record is None:
        return None
    pairs: list[UpdatePair] = []
    for item in record.get_tuple("checksums"):
        assert isinstance(item, Struct)
        pairs.append(UpdatePair(item.get_int("checksum_node_id_1"), item.get_int("checksum_node_id_2")))
    return tuple(pairs)


def validate_query(message: Message) -> None:
    """Check the encoded arrays of a query message (ids, flags, timestamps, checksums) and their counts.

    Other messages (``query_channel_range`` included) carry no encoded arrays and always pass.
    """
    if message.name not in ("query_short_channel_ids", "reply_channel_range"):
        return
    ids = short_channel_ids(message)
    extras: list[tuple[str, tuple[int, ...] | tuple[UpdatePair, ...] | None]] = []
    if message.name == "query_short_channel_ids":
        extras.append(("query_flags", query_flags(message)))
    elif message.name == "reply_channel_range":
        extras.append(("timestamps_tlv", reply_timestamps(message)))
        extras.append(("checksums_tlv", reply_checksums(message)))
    for name, values in extras:
        if values is not None and len(values) != len(ids):
            raise DecodeError(f"{message.name}: {name} has {len(values)} entries for {len(ids)} ids")


def make_query_short_channel_ids(
    chain_hash: bytes, scids: Sequence[ShortChannelId], flags: Sequence[int] | None = None
) -> Message:
    tlvs: dict[str, dict[str, FieldValue]] = {}
    if flags is not None:
        if len(flags) != len(scids):
            raise EncodeError("query_flags needs one entry per short_channel_id")
        tlvs["query_flags"] = {
            "encoding_type": ENCODING_UNCOMPRESSED,
            "encoded_query_flags": encode_query_flags(flags),
        }
    return make_message(
        "query_short_channel_ids",
        chain_hash=chain_hash,
        encoded_short_ids=encode_short_channel_ids(scids),
        tlvs=tlvs,
    )


def make_query_channel_range(
    chain_hash: bytes, first_blocknum: int, number_of_blocks: int, options: QueryOption | None = None
) -> Message:
    tlvs: dict[str, dict[str, FieldValue]] = {}
    if options is not None:
        tlvs["query_option"] = {"query_option_flags": int(options)}
    return make_message(
        "query_channel_range",
        chain_hash=chain_hash,
        first_blocknum=first_blocknum,
        number_of_blocks=number_of_blocks,
        tlvs=tlvs,
    )


def make_reply_channel_range(
    chain_hash: bytes,
    first_blocknum: int,
    number_of_blocks: int,
    *,
    sync_complete: bool,
    scids: Sequence[ShortChannelId],
    timestamps: Sequence[UpdatePair] | None = None,
    checksums: Sequence[UpdatePair] | None = None,
) -> Message:
    tlvs: dict[str, dict[str, FieldValue]] = {}
    for name, values in (("timestamps_tlv", timestamps), ("checksums_tlv", checksums)):
        if values is not None and len(values) != len(scids):
            raise EncodeError(f"{name} needs one entry per short_channel_id")
    if timestamps is not None:
        tlvs["timestamps_tlv"] = {
            "encoding_type": ENCODING_UNCOMPRESSED,
            "encoded_timestamps": encode_timestamps(timestamps),
        }
    if checksums is not None:
        tlvs["checksums_tlv"] = {
            "checksums": tuple(
                Struct(
                    "channel_update_checksums",
                    {"checksum_node_id_1": pair.node_1, "checksum_node_id_2": pair.node_2},
                )
                for pair in checksums
            )
        }
    return make_message(
        "reply_channel_range",
        chain_hash=chain_hash,
        first_blocknum=first_blocknum,
        number_of_blocks=number_of_blocks,
        sync_complete=int(sync_complete),
        encoded_short_ids=encode_short_channel_ids(scids),
        tlvs=tlvs,
    )


# --------------------------------------------------------------------------- channel_update checksum


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, RFC 3720 appendix B.4)."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# Offsets within an encoded channel_update (2-byte type included).
_CU_SIGNATURE_END = 2 + 64
_CU_TIMESTAMP = 2 + 64 + 32 + 8


def channel_update_checksum(encoded_update: bytes) -> int:
    """BOLT #7 checksum of a ``channel_update``: CRC32C of it without ``signature`` and ``timestamp``.

    ``encoded_update`` is the whole wire message, type included; the type is
    not part of the checksummed data.
    """
    if len(encoded_update) < _CU_TIMESTAMP + 4 or encoded_update[:2] != b"\x01\x02":
        raise DecodeError("not an encoded channel_update")
    return crc32c(encoded_update[_CU_SIGNATURE_END:_CU_TIMESTAMP] + encoded_update[_CU_TIMESTAMP + 4 :])
