"""`MicropaymentManager`: every micropayment channel of a node, behind one sans-IO boundary.

The node feeds it what happens (commands, custom messages from peers, blocks and transactions,
reconnections, completed persists) and runs what comes back: `ManagerOutput`s, each an action of one
channel with the peer it concerns. The manager routes messages by channel id, creates a payee channel
when a proposal arrives, answers refused messages with `micro_error`, and drops negotiations that
failed before anything reached the chain (`Forget`). Keys and the payee's policy come through the
callbacks given to it, so it never touches the wallet or the store itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.tx import Transaction
from ampere.channel.micropayment.codec import peek_role
from ampere.channel.micropayment.errors import (
    CommandRejectedError,
    MicropaymentError,
    Response,
    StateDecodeError,
)
from ampere.channel.micropayment.events import (
    Action,
    BlockConnected,
    BlockDisconnected,
    Event,
    FundingBuilt,
    FundingConfirmed,
    FundingSpent,
    OpenChannel,
    Pay,
    PeerConnected,
    PersistCompleted,
    Refund,
    Resumed,
    Send,
    Settle,
)
from ampere.channel.micropayment.machine import PayeeChannel, PayerChannel
from ampere.channel.micropayment.messages import Propose, decode_micro
from ampere.channel.micropayment.state import PayeeConfig, Role
from ampere.wire import Message, UnknownMessage

__all__ = [
    "ChannelInfo",
    "Forget",
    "ManagerOutput",
    "MicroKeys",
    "MicropaymentManager",
    "Refused",
    "StoredChannel",
]

Channel = PayerChannel | PayeeChannel


class MicroKeys(Protocol):
    """Where funding keys come from: the node derives them from its seed, one index per channel."""

    def funding_key(self, key_index: int) -> PrivateKey: ...


@dataclass(frozen=True, slots=True)
class Forget:
    """The channel failed before anything reached the chain: delete its record (and, for a payer whose
    wallet built a funding transaction, release the coins it reserved)."""

    channel_id: bytes


@dataclass(frozen=True, slots=True)
class Refused:
    """An input the channel refused (logged by the node; the peer was answered if it needed to be)."""

    channel_id: bytes
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ManagerOutput:
    channel_id: bytes
    peer_id: bytes
    action: Action | Forget | Refused


@dataclass(frozen=True, slots=True)
class StoredChannel:
    """What the node keeps per channel: the latest `Persist` blob and the peer it belongs to."""

    channel_id: bytes
    peer_id: bytes
    revision: int
    blob: bytes


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """One row of `micro list`."""

    channel_id: bytes
    peer_id: bytes
    role: Role
    capacity_sat: int
    paid_msat: int
    sequence: int
    state: str
    refund_height: int | None

    def to_json(self) -> dict[str, object]:
        return {
            "channel_id": self.channel_id.hex(),
            "peer_id": self.peer_id.hex(),
            "role": self.role.value,
            "capacity_sat": self.capacity_sat,
            "paid_msat": self.paid_msat,
            "state": self.state,
            "refund_height": self.refund_height,
        }


class MicropaymentManager:
    """All micropayment channels of one node; see the module docstring for the contract."""

    def __init__(
        self,
        keys: MicroKeys,
        payee_config: Callable[[bytes], PayeeConfig],
        *,
        tip_height: int = 0,
        next_key_index: int = 0,
    ) -> None:
        """`payee_config(peer_id)` is asked once per proposal received (a fresh payout script each time)."""
        self._keys = keys
        self._payee_config = payee_config
        self.tip_height = tip_height
        self.next_key_index = next_key_index
        self._channels: dict[bytes, Channel] = {}
        self._peers: dict[bytes, bytes] = {}

    # --- lookups --------------------------------------------------------------------------------------
    def channel(self, channel_id: bytes) -> Channel:
        found = self._channels.get(channel_id)
        if found is None:
            raise CommandRejectedError(f"no micropayment channel {channel_id.hex()}")
        return found

    def peer_of(self, channel_id: bytes) -> bytes:
        self.channel(channel_id)
        return self._peers[channel_id]

    def list_channels(self) -> list[ChannelInfo]:
        return [
            ChannelInfo(
                channel_id,
                self._peers[channel_id],
                channel.role,
                channel.capacity_sat,
                channel.paid_msat,
                channel.sequence,
                channel.public_state.value,
                channel.refund_height,
            )
            for channel_id, channel in sorted(self._channels.items())
        ]

    def confirmed_transactions(self) -> list[tuple[int, bytes]]:
        """(height, txid) of every funding and closing transaction a channel counts as confirmed, so
        that a node back from downtime can tell whether a reorg took one of them away meanwhile."""
        found: list[tuple[int, bytes]] = []
        for channel in self._channels.values():
            state = channel.state
            outpoint = channel.funding_outpoint
            if outpoint is not None and state.funding_height is not None:
                found.append((state.funding_height, outpoint.txid))
            if state.closing_txid is not None and state.closing_height is not None:
                found.append((state.closing_height, state.closing_txid))
        return found

    # --- driving one channel ------------------------------------------------------------------------
    def _wrap(self, channel_id: bytes, actions: Iterable[Action | Forget | Refused]) -> list[ManagerOutput]:
        peer_id = self._peers[channel_id]
        return [ManagerOutput(channel_id, peer_id, action) for action in actions]

    def _feed(self, channel_id: bytes, event: Event | PersistCompleted) -> list[ManagerOutput]:
        """Run an event that is not a local command: refusals become outputs, never exceptions."""
        channel = self._channels[channel_id]
        try:
            return self._wrap(channel_id, channel.handle(event))
        except MicropaymentError as exc:
            if exc.response is Response.DISCONNECT:
                raise
            outputs: list[Action | Forget | Refused] = [Refused(channel_id, exc.code, exc.message)]
            if exc.reply is not None:
                outputs.append(Send(exc.reply))
            wrapped = self._wrap(channel_id, outputs)
            if exc.response is Response.CLOSE and channel.can_forget:
                wrapped.append(ManagerOutput(channel_id, self._peers[channel_id], Forget(channel_id)))
                del self._channels[channel_id]
                del self._peers[channel_id]
            return wrapped

    def _command(self, channel_id: bytes, event: Event | PersistCompleted) -> list[ManagerOutput]:
        return self._wrap(channel_id, self.channel(channel_id).handle(event))

    # --- commands (raise CommandRejectedError for the caller to report) ------------------------------
    def open(
        self,
        peer_id: bytes,
        channel_id: bytes,
        chain_hash: bytes,
        capacity_sat: int,
        refund_after_blocks: int,
        refund_script: bytes,
        feerate_per_kw: int,
    ) -> list[ManagerOutput]:
        """Propose a channel to `peer_id`; `channel_id` is 32 random bytes the node draws."""
        if channel_id in self._channels:
            raise CommandRejectedError(f"channel {channel_id.hex()} exists")
        if refund_after_blocks <= 0:
            raise CommandRejectedError("refund-after must be a positive number of blocks")
        key_index = self.next_key_index
        channel = PayerChannel.create(
            self._keys.funding_key(key_index), key_index, channel_id, self.tip_height
        )
        event = OpenChannel(
            chain_hash, capacity_sat, self.tip_height + refund_after_blocks, feerate_per_kw, refund_script
        )
        actions = channel.handle(event)  # raises before anything is registered
        self.next_key_index += 1
        self._channels[channel_id] = channel
        self._peers[channel_id] = peer_id
        return self._wrap(channel_id, actions)

    def funding_built(self, channel_id: bytes, tx: Transaction) -> list[ManagerOutput]:
        return self._command(channel_id, FundingBuilt(tx))

    def pay(self, channel_id: bytes, amount_msat: int) -> list[ManagerOutput]:
        return self._command(channel_id, Pay(amount_msat))

    def settle(self, channel_id: bytes) -> list[ManagerOutput]:
        return self._command(channel_id, Settle())

    def refund(self, channel_id: bytes) -> list[ManagerOutput]:
        return self._command(channel_id, Refund())

    def persisted(self, channel_id: bytes, revision: int) -> list[ManagerOutput]:
        return self._command(channel_id, PersistCompleted(revision))

    # --- the peer --------------------------------------------------------------------------------------
    def receive(self, peer_id: bytes, data: bytes | Message | UnknownMessage) -> list[ManagerOutput]:
        """A custom message from `peer_id`. Raises `MicropaymentError` only when the peer must be
        disconnected (bytes that do not parse); every other refusal is answered through the outputs."""
        message = decode_micro(data)
        channel_id = message.channel_id
        if channel_id not in self._channels and isinstance(message, Propose):
            key_index = self.next_key_index
            channel = PayeeChannel.create(
                self._keys.funding_key(key_index),
                key_index,
                self._payee_config(peer_id),
                channel_id,
                self.tip_height,
            )
            self.next_key_index += 1
            self._channels[channel_id] = channel
            self._peers[channel_id] = peer_id
        elif self._peers.get(channel_id) != peer_id:
            # Unknown, or another peer's: answering would confirm that the id exists.
            return []
        return self._feed(channel_id, message)

    def peer_connected(self, peer_id: bytes) -> list[ManagerOutput]:
        outputs: list[ManagerOutput] = []
        for channel_id in [cid for cid, peer in self._peers.items() if peer == peer_id]:
            outputs += self._feed(channel_id, PeerConnected())
        return outputs

    # --- the chain --------------------------------------------------------------------------------------
    def block_connected(self, height: int, transactions: Iterable[Transaction] = ()) -> list[ManagerOutput]:
        """A new tip: first the block's transactions (funding confirmations and spends), then the height."""
        outputs: list[ManagerOutput] = []
        for tx in transactions:
            outputs += self.transaction_confirmed(tx, height)
        self.tip_height = max(self.tip_height, height)
        for channel_id in list(self._channels):
            outputs += self._feed(channel_id, BlockConnected(height))
        return outputs

    def block_disconnected(self, height: int) -> list[ManagerOutput]:
        """The block at `height` left the chain (a reorg); call once per block, from the old tip down."""
        self.tip_height = min(self.tip_height, height - 1)
        outputs: list[ManagerOutput] = []
        for channel_id in list(self._channels):
            outputs += self._feed(channel_id, BlockDisconnected(height))
        return outputs

    def transaction_confirmed(self, tx: Transaction, height: int) -> list[ManagerOutput]:
        outputs: list[ManagerOutput] = []
        spent = {txin.prevout for txin in tx.inputs}
        for channel_id, channel in list(self._channels.items()):
            outpoint = channel.funding_outpoint
            if outpoint is None:
                continue
            if tx.txid == outpoint.txid:
                outputs += self._feed(channel_id, FundingConfirmed(tx, height))
            elif outpoint in spent:
                outputs += self._feed(channel_id, FundingSpent(tx, height))
        return outputs

    # --- restart ----------------------------------------------------------------------------------------
    def restore(self, stored: Iterable[StoredChannel], payee_config: PayeeConfig) -> list[ManagerOutput]:
        """Rebuild every channel from its last blob; returns what each must redo (watches, broadcasts).
        Feed `block_connected` with the current tip afterwards, then `peer_connected` as peers return."""
        outputs: list[ManagerOutput] = []
        for record in stored:
            if peek_role(record.blob) is Role.PAYER:
                key_index = PayerChannel.key_index_of(record.blob)
                channel: Channel = PayerChannel.from_bytes(record.blob, self._keys.funding_key(key_index))
            else:
                key_index = PayeeChannel.key_index_of(record.blob)
                channel = PayeeChannel.from_bytes(
                    record.blob, self._keys.funding_key(key_index), payee_config
                )
            if channel.channel_id != record.channel_id:
                raise StateDecodeError(f"record {record.channel_id.hex()} holds another channel's state")
            self._channels[record.channel_id] = channel
            self._peers[record.channel_id] = record.peer_id
            self.next_key_index = max(self.next_key_index, key_index + 1)
            self.tip_height = max(self.tip_height, channel.state.tip_height)
            outputs += self._feed(record.channel_id, Resumed())
        return outputs
