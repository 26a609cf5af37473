"""Static channel backups in the node: `DIR/backup.scb`, `exportbackup` and `restorebackup`.

The service rewrites `backup.scb` (temporary file, fsync, rename, fsync of the directory) at start,
whenever a channel's funding becomes known and whenever a channel ends; `export` writes the same bytes
elsewhere. Restored channels that are not resolved yet are part of the backup too, so that losing the
datadir again before the peer has closed loses nothing.

`restore` reads a backup made from the same seed, skips the channels this node still has, stores the
others as restored channels (see `backup_restore`), makes sure no new channel reuses their key indexes,
connects to their peers and asks each to force close.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ampere.node.backup_codec import (
    MAX_BACKUP_BYTES,
    BackupContents,
    BackupError,
    BackupKeyError,
    ChannelBackup,
    check_contents,
    decode_backup,
    encode_backup,
)
from ampere.node.backup_restore import NAMESPACE, RestoredChannel, RestoredChannels
from ampere.node.channel_managed import ManagedChannel
from ampere.node.channel_open import ChannelRecords
from ampere.node.channel_service import ChannelService, channel_service_of
from ampere.node.errors import InvalidArgumentError
from ampere.node.node import Node
from ampere.node.peer_address import format_host_port, parse_host_port
from ampere.node.peer_protocol import PeerError
from ampere.onchain.keys import InMemoryOnchainSigner
from ampere.store.repositories import PeerRepository

__all__ = ["BackupService", "ExportResult", "backup_service_of", "write_atomically"]

log = logging.getLogger(__name__)

_KEY_HIGH_WATER = b"key_index_high_water"
_CONNECT_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class ExportResult:
    file: Path
    channels: int


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new file, never a mix."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class BackupService:
    """Add it after the `ChannelService` (`node.add_service`)."""

    def __init__(self) -> None:
        self._node: Node | None = None
        self._channels: ChannelService | None = None
        self._restored: RestoredChannels | None = None
        self._write_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def node(self) -> Node:
        if self._node is None:
            raise BackupError("the backup service is not running")
        return self._node

    @property
    def restored(self) -> RestoredChannels:
        if self._restored is None:
            raise BackupError("the backup service is not running")
        return self._restored

    async def start(self, node: Node) -> None:
        self._node = node
        self._channels = channel_service_of(node)
        self._restored = RestoredChannels(node, self.schedule_write)
        self._restored.load()
        if self._channels is not None:
            self._channels.add_change_listener(self.schedule_write)
        node.peers.subscribe(self._restored.on_peer_event)
        node.follower.add_listener(self._restored)
        self._restored.running = True
        self.write_now()
        await self._restored.catch_up()
        for restored in self._restored.unresolved():
            self._ask_peer(restored.backup)

    async def stop(self) -> None:
        if self._restored is not None:
            self._restored.running = False
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._node is not None and self._write_scheduled:
            self.write_now()
        self._node = None

    # --- backup.scb ---------------------------------------------------------------------------------------
    def schedule_write(self) -> None:
        """Coalesce the changes of one loop turn into one rewrite."""
        if self._write_scheduled or self._node is None:
            return
        self._write_scheduled = True
        asyncio.get_running_loop().call_soon(self._scheduled_write)

    def _scheduled_write(self) -> None:
        if self._node is None:
            return
        try:
            self.write_now()
        except (OSError, BackupError):
            log.exception("cannot write %s", self.node.config.datadir.backup_file)

    def write_now(self) -> int:
        self._write_scheduled = False
        contents = self.snapshot()
        write_atomically(
            self.node.config.datadir.backup_file, encode_backup(contents, self.node.keys.backup_key)
        )
        log.info("static channel backup written (%d channels)", len(contents.channels))
        return len(contents.channels)

    def snapshot(self) -> BackupContents:
        node = self.node
        channels: dict[bytes, ChannelBackup] = {}
        if self._channels is not None:
            for managed in self._channels.funded_channels():
                backup = self._channel_backup(managed)
                if backup is not None:
                    channels[backup.channel_id] = backup
        for restored in self.restored.unresolved():
            channels.setdefault(restored.channel_id, restored.backup)
        high_water = self._key_high_water(max((c.key_index + 1 for c in channels.values()), default=0))
        return BackupContents(node.network.chain_hash, int(time.time()), high_water, tuple(channels.values()))

    def _key_high_water(self, seen: int) -> int:
        """The highest key index ever backed up, plus one (remembered: closed channels leave the backup)."""
        store = self.node.store
        raw = store.get(NAMESPACE, _KEY_HIGH_WATER)
        stored = 0 if raw is None else int.from_bytes(raw, "big")
        if seen > stored:
            store.put(NAMESPACE, _KEY_HIGH_WATER, seen.to_bytes(4, "big"))
        return max(seen, stored)

    def _channel_backup(self, managed: ManagedChannel) -> ChannelBackup | None:
        state = managed.state
        if state.local is None or state.remote is None or state.funding_outpoint is None:
            return None
        return ChannelBackup(
            channel_id=state.channel_id,
            peer_id=managed.peer_id,
            peer_addresses=self._addresses(managed.peer_id),
            funding_outpoint=state.funding_outpoint,
            capacity_sat=state.funding_sat,
            is_funder=state.is_opener,
            channel_type=state.channel_type,
            key_index=managed.key_index,
            local_to_self_delay=state.local.to_self_delay,
            remote_to_self_delay=state.remote.to_self_delay,
            local_payment_basepoint=state.local.basepoints.payment_basepoint,
            remote_funding_pubkey=state.remote.basepoints.funding_pubkey,
            remote_payment_basepoint=state.remote.basepoints.payment_basepoint,
        )

    def _addresses(self, peer_id: bytes) -> tuple[str, ...]:
        """Where the peer can be dialed: the stored address, and the one we reached it at."""
        node = self.node
        addresses: list[str] = []
        stored = PeerRepository(node.store).get(peer_id)
        if stored is not None and stored.address:
            addresses.append(stored.address)
        record = node.peers.peer(peer_id)
        if record is not None and record.outgoing and record.address and record.address not in addresses:
            addresses.append(record.address)
        return tuple(addresses)

    # --- commands -----------------------------------------------------------------------------------------
    def export(self, file: str) -> ExportResult:
        path = _absolute(file)
        contents = self.snapshot()
        data = encode_backup(contents, self.node.keys.backup_key)
        try:
            write_atomically(path, data)
        except OSError as exc:
            raise BackupError(f"cannot write {path}: {exc.strerror or exc}") from None
        return ExportResult(path, len(contents.channels))

    def read(self, file: str) -> BackupContents:
        path = _absolute(file)
        try:
            with path.open("rb") as source:
                data = source.read(MAX_BACKUP_BYTES + 1)
        except OSError as exc:
            raise BackupError(f"cannot read {path}: {exc.strerror or exc}") from None
        contents = decode_backup(data, self.node.keys.backup_key)
        check_contents(contents, self.node.network.chain_hash)
        return contents

    async def restore(self, file: str) -> list[RestoredChannel]:
        """Restore what `file` holds that this node does not have; returns the channels restored now."""
        node = self.node
        contents = self.read(file)
        for channel in contents.channels:
            derived = InMemoryOnchainSigner(node.keys.channel_keys_root(channel.key_index).private_key)
            if derived.basepoints.payment_basepoint != channel.local_payment_basepoint:
                raise BackupKeyError(
                    f"channel {channel.channel_id.hex()}: its keys do not derive from this node's seed"
                )
        self._reserve_key_indexes(contents)
        added = []
        records = ChannelRecords(node.store)
        for channel in contents.channels:
            if self.restored.knows(channel.channel_id) or records.get(channel.channel_id) is not None:
                log.info("channel %s is already known; not restored", channel.channel_id.hex())
                continue
            added.append(self.restored.add(channel))
            log.info("restored channel %s with %s", channel.channel_id.hex(), channel.peer_id.hex())
        self.schedule_write()
        for restored in added:
            self._ask_peer(restored.backup)
        await self.restored.catch_up()
        return added

    def _reserve_key_indexes(self, contents: BackupContents) -> None:
        """New channels must never reuse a restored channel's keys (its secrets are the peer's proofs)."""
        wanted = max([contents.next_key_index, *(c.key_index + 1 for c in contents.channels)])
        records = ChannelRecords(self.node.store)
        while records.allocate_key_index() + 1 < wanted:
            pass
        self._key_high_water(wanted)

    def list_restored(self) -> list[RestoredChannel]:
        return self.restored.all()

    # --- reaching the peers -------------------------------------------------------------------------------
    def _ask_peer(self, backup: ChannelBackup) -> None:
        node = self.node
        if node.peers.is_connected(backup.peer_id):
            self._spawn(self.restored.request_close(backup.peer_id))
            return
        self._spawn(self._connect(backup))

    async def _connect(self, backup: ChannelBackup) -> None:
        """Dial the peer's known addresses; the close request goes out on `PeerConnected`."""
        node = self.node
        for address in backup.peer_addresses:
            if node.peers.is_connected(backup.peer_id):
                return
            try:
                host, port = parse_host_port(address)
                await asyncio.wait_for(
                    node.connect(f"{backup.peer_id.hex()}@{format_host_port(host, port)}"), _CONNECT_TIMEOUT
                )
                return
            except (PeerError, InvalidArgumentError, TimeoutError, OSError) as exc:
                log.info("cannot reach %s at %s: %s", backup.peer_id.hex(), address, exc)
        for address in backup.peer_addresses:
            try:
                # Keep trying in the background: the peer may just be offline.
                node.peers.set_persistent(backup.peer_id, True, address=parse_host_port(address))
                return
            except PeerError:
                continue
        log.warning("no usable address for %s: waiting for it to connect to us", backup.peer_id.hex())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _absolute(file: str) -> Path:
    path = Path(file).expanduser()
    if not path.is_absolute():
        raise InvalidArgumentError(
            "file", "must be an absolute path (the node reads and writes it, not the CLI)"
        )
    return path


def backup_service_of(node: Node) -> BackupService | None:
    return next((s for s in node.services if isinstance(s, BackupService)), None)
