"""The static channel backup file: what a node that lost its datadir needs to recover channel funds.

A backup holds, per channel, only what never changes after the funding is known: ids, the peer and
where to reach it, the funding outpoint and capacity, our role, the channel type, the key index (our
basepoints are re-derived from the seed), both to_self_delays and the peer's funding and payment
basepoints. With static_remotekey and anchors our balance on the peer's commitment pays a key derived
from our payment basepoint alone, so nothing that changes with payments is needed.

File layout (all integers big-endian)::

    magic "AMPSCB" | version u8 | nonce (12) | ciphertext | checksum (4)

The ciphertext is ChaCha20-Poly1305 under a key derived from the seed (`NodeKeys.backup_key`), with
magic and version as associated data, so a stolen file reveals nothing but its length. The checksum
(the first four bytes of SHA-256 over everything before it) tells a damaged file from one made by
another seed: the AEAD tag alone cannot tell the two apart. Decoding is pure and raises only
`BackupError` subclasses, whatever the bytes.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ampere.bitcoin.tx import OutPoint
from ampere.channel.twoway.state import ChannelType
from ampere.node.errors import NodeError

__all__ = [
    "BACKUP_MAGIC",
    "BACKUP_VERSION",
    "MAX_BACKUP_BYTES",
    "BackupContents",
    "BackupError",
    "BackupFormatError",
    "BackupKeyError",
    "ChannelBackup",
    "check_contents",
    "decode_backup",
    "decode_channel",
    "encode_backup",
    "encode_channel",
]

BACKUP_MAGIC = b"AMPSCB"
BACKUP_VERSION = 1
MAX_BACKUP_BYTES = 4 * 1024 * 1024
_NONCE_BYTES = 12
_CHECKSUM_BYTES = 4
_TAG_BYTES = 16
_HEADER_BYTES = len(BACKUP_MAGIC) + 1
_MAX_ADDRESSES = 8
_MAX_ADDRESS_BYTES = 255
_MAX_CHANNELS = 0xFFFF


class BackupError(NodeError):
    """A backup cannot be made, read or restored; the message says why."""


class BackupFormatError(BackupError):
    """The bytes are not an intact backup of a version we read (truncated, damaged, not a backup)."""


class BackupKeyError(BackupError):
    """The backup is intact but was not made with this node's seed (or for another network)."""


@dataclass(frozen=True, slots=True)
class ChannelBackup:
    """One channel as a static backup knows it."""

    channel_id: bytes
    peer_id: bytes
    peer_addresses: tuple[str, ...]  # "host:port", most recently used first
    funding_outpoint: OutPoint
    capacity_sat: int
    is_funder: bool
    channel_type: ChannelType
    key_index: int
    local_to_self_delay: int  # the delay we impose on the peer's to_local
    remote_to_self_delay: int  # the delay the peer imposes on ours
    local_payment_basepoint: bytes  # checked against the seed's derivation on restore
    remote_funding_pubkey: bytes
    remote_payment_basepoint: bytes

    def __post_init__(self) -> None:
        _require(len(self.channel_id) == 32, "channel_id must be 32 bytes")
        for name in (
            "peer_id",
            "local_payment_basepoint",
            "remote_funding_pubkey",
            "remote_payment_basepoint",
        ):
            _require(len(getattr(self, name)) == 33, f"{name} must be a 33-byte public key")
        _require(0 < self.capacity_sat < 1 << 64, "capacity out of range")
        _require(0 <= self.key_index < 1 << 31, "key index out of range")
        for delay in (self.local_to_self_delay, self.remote_to_self_delay):
            _require(0 <= delay <= 0xFFFF, "to_self_delay out of range")
        _require(len(self.peer_addresses) <= _MAX_ADDRESSES, "too many peer addresses")
        for address in self.peer_addresses:
            _require(0 < len(address.encode()) <= _MAX_ADDRESS_BYTES, "peer address too long or empty")


@dataclass(frozen=True, slots=True)
class BackupContents:
    chain_hash: bytes
    created_at: int  # unix seconds
    next_key_index: int  # channel key indexes below this may be in use: a restored node skips them
    channels: tuple[ChannelBackup, ...]


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise BackupFormatError(reason)


# --- plaintext ------------------------------------------------------------------------------------------


class _Writer:
    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def raw(self, data: bytes) -> _Writer:
        self._parts.append(data)
        return self

    def uint(self, value: int, size: int) -> _Writer:
        return self.raw(value.to_bytes(size, "big"))

    def blob(self, data: bytes) -> _Writer:
        return self.uint(len(data), 2).raw(data)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def raw(self, size: int) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise BackupFormatError("the backup is truncated")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.raw(size), "big")

    def blob(self) -> bytes:
        return self.raw(self.uint(2))

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise BackupFormatError("unexpected bytes after the last channel")


def encode_channel(channel: ChannelBackup) -> bytes:
    writer = _Writer()
    _write_channel(writer, channel)
    return writer.getvalue()


def decode_channel(data: bytes) -> ChannelBackup:
    reader = _Reader(data)
    channel = _read_channel(reader)
    reader.finish()
    return channel


def _write_channel(writer: _Writer, channel: ChannelBackup) -> None:
    writer.raw(channel.channel_id).raw(channel.peer_id)
    writer.uint(len(channel.peer_addresses), 1)
    for address in channel.peer_addresses:
        writer.blob(address.encode())
    writer.raw(channel.funding_outpoint.txid).uint(channel.funding_outpoint.vout, 4)
    writer.uint(channel.capacity_sat, 8).uint(int(channel.is_funder), 1)
    writer.blob(channel.channel_type.to_bytes()).uint(channel.key_index, 4)
    writer.uint(channel.local_to_self_delay, 2).uint(channel.remote_to_self_delay, 2)
    writer.raw(channel.local_payment_basepoint)
    writer.raw(channel.remote_funding_pubkey).raw(channel.remote_payment_basepoint)


def _read_channel(reader: _Reader) -> ChannelBackup:
    channel_id, peer_id = reader.raw(32), reader.raw(33)
    count = reader.uint(1)
    _require(count <= _MAX_ADDRESSES, "too many peer addresses")
    addresses = []
    for _ in range(count):
        try:
            addresses.append(reader.blob().decode("utf-8"))
        except UnicodeDecodeError:
            raise BackupFormatError("a peer address is not UTF-8") from None
    txid, vout = reader.raw(32), reader.uint(4)
    capacity, funder = reader.uint(8), reader.uint(1)
    _require(funder in (0, 1), "bad funder flag")
    channel_type = ChannelType.from_bytes(reader.blob())
    if channel_type is None:
        raise BackupFormatError("unsupported channel_type")
    key_index = reader.uint(4)
    local_delay, remote_delay = reader.uint(2), reader.uint(2)
    local_payment = reader.raw(33)
    remote_funding, remote_payment = reader.raw(33), reader.raw(33)
    try:
        outpoint = OutPoint(txid, vout)
    except ValueError as exc:
        raise BackupFormatError(f"bad funding outpoint: {exc}") from None
    return ChannelBackup(
        channel_id=channel_id,
        peer_id=peer_id,
        peer_addresses=tuple(addresses),
        funding_outpoint=outpoint,
        capacity_sat=capacity,
        is_funder=bool(funder),
        channel_type=channel_type,
        key_index=key_index,
        local_to_self_delay=local_delay,
        remote_to_self_delay=remote_delay,
        local_payment_basepoint=local_payment,
        remote_funding_pubkey=remote_funding,
        remote_payment_basepoint=remote_payment,
    )


def _encode_plaintext(contents: BackupContents) -> bytes:
    if len(contents.channels) > _MAX_CHANNELS:
        raise BackupError(f"too many channels for one backup ({len(contents.channels)})")
    writer = _Writer().raw(contents.chain_hash).uint(contents.created_at, 8)
    writer.uint(contents.next_key_index, 4).uint(len(contents.channels), 2)
    for channel in contents.channels:
        _write_channel(writer, channel)
    return writer.getvalue()


def _decode_plaintext(data: bytes) -> BackupContents:
    reader = _Reader(data)
    chain_hash, created_at = reader.raw(32), reader.uint(8)
    next_key_index, count = reader.uint(4), reader.uint(2)
    channels = tuple(_read_channel(reader) for _ in range(count))
    reader.finish()
    return BackupContents(chain_hash, created_at, next_key_index, channels)


# --- the file -------------------------------------------------------------------------------------------


def _check_key(key: bytes) -> None:
    if len(key) != 32:
        raise BackupError("the backup key must be 32 bytes")


def encode_backup(contents: BackupContents, key: bytes, *, nonce: bytes | None = None) -> bytes:
    """The encrypted file. `nonce` is for tests only: a fresh random one is drawn otherwise."""
    _check_key(key)
    nonce = os.urandom(_NONCE_BYTES) if nonce is None else nonce
    if len(nonce) != _NONCE_BYTES:
        raise BackupError("the nonce must be 12 bytes")
    header = BACKUP_MAGIC + bytes([BACKUP_VERSION])
    ciphertext = ChaCha20Poly1305(key).encrypt(nonce, _encode_plaintext(contents), header)
    body = header + nonce + ciphertext
    return body + hashlib.sha256(body).digest()[:_CHECKSUM_BYTES]


def decode_backup(data: bytes, key: bytes) -> BackupContents:
    """The contents of a backup file; `BackupFormatError` or `BackupKeyError` if it cannot be read."""
    _check_key(key)
    if len(data) > MAX_BACKUP_BYTES:
        raise BackupFormatError(f"the file is larger than a backup can be ({len(data)} bytes)")
    if len(data) < _HEADER_BYTES or data[: len(BACKUP_MAGIC)] != BACKUP_MAGIC:
        raise BackupFormatError("not a static channel backup (bad magic)")
    version = data[len(BACKUP_MAGIC)]
    if version != BACKUP_VERSION:
        raise BackupFormatError(f"backup version {version} is not supported (we read {BACKUP_VERSION})")
    if len(data) < _HEADER_BYTES + _NONCE_BYTES + _TAG_BYTES + _CHECKSUM_BYTES:
        raise BackupFormatError("the backup is truncated")
    body, checksum = data[:-_CHECKSUM_BYTES], data[-_CHECKSUM_BYTES:]
    if hashlib.sha256(body).digest()[:_CHECKSUM_BYTES] != checksum:
        raise BackupFormatError("checksum mismatch: the backup is damaged or truncated")
    nonce = body[_HEADER_BYTES : _HEADER_BYTES + _NONCE_BYTES]
    try:
        plaintext = ChaCha20Poly1305(key).decrypt(
            nonce, body[_HEADER_BYTES + _NONCE_BYTES :], body[:_HEADER_BYTES]
        )
    except InvalidTag:
        raise BackupKeyError("the backup was not made with this node's seed") from None
    return _decode_plaintext(plaintext)


def check_contents(contents: BackupContents, chain_hash: bytes) -> None:
    """Refuse a backup of another network (its key would differ too, but say so plainly)."""
    if contents.chain_hash != chain_hash:
        raise BackupKeyError("the backup belongs to another network")
