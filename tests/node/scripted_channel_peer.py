"""A scripted channel peer: a real two-way channel, driven by our own sans-IO core, that can lie.

It connects to an in-process `Node` over real TCP (BOLT 8 noise from `ampere.crypto.noise`, then
`init`), funds channels from its own coins on the embedded chain, and runs the other end of each
channel with `ampere.channel.twoway.Channel` and an `InMemorySigner`. Everything it sends passes
through hooks a test sets: replace a field of the next `commitment_signed`, drop a message, flip
bytes of the encoded message, or fund with a transaction whose output is not the agreed one. A test
can also send any message it likes with `send`.

Errors and warnings from the node are recorded but not fed to the core: the scripted peer never
broadcasts a commitment of its own, so what reaches the mempool is the node's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, cast

from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.network import Network
from ampere.bitcoin.script import p2wpkh_script
from ampere.bitcoin.signing import sign_p2wpkh_input
from ampere.bitcoin.tx import OutPoint, Transaction, TxIn, TxOut
from ampere.chain.embedded import EmbeddedChain
from ampere.chain.errors import BroadcastError
from ampere.chain.interface import FEERATE_FLOOR_PER_KW
from ampere.channel.signer import InMemorySigner
from ampere.channel.twoway import (
    Action,
    AddHtlc,
    Broadcast,
    Channel,
    ChannelConfig,
    ChannelMessage,
    ChannelState,
    ChannelType,
    Error,
    Event,
    FulfillHtlc,
    FundingConfirmed,
    FundingTransactionBuilt,
    HtlcFailed,
    HtlcFulfilled,
    HtlcReceived,
    OpenChannelCommand,
    Phase,
    RequestFundingTransaction,
    SendMessage,
    SignCommitment,
)
from ampere.channel.twoway import open as open_phase
from ampere.channel.twoway.common import Context
from ampere.channel.twoway.messages import CHANNEL_MESSAGE_NAMES, FundingCreated
from ampere.node.peer_protocol import DEFAULT_FEATURES
from ampere.wire import Features, Message, UnknownMessage, encode_message, make_message
from ampere.wire.features import combine_init_features

from .helpers import ScriptedPeer

__all__ = ["FUNDING_FEE_SAT", "ScriptedChannelPeer", "Tamper", "bad_signature", "with_fields"]

log = logging.getLogger(__name__)

#: The fee of the scripted peer's funding transactions (one P2WPKH input, two outputs).
FUNDING_FEE_SAT = 2_000
ONION = bytes(1366)
WAIT = 10.0
#: What a hook may turn an outgoing message into: another message, raw bytes, or None to drop it.
Outgoing = ChannelMessage | Message | bytes | None
Tamper = Callable[[ChannelMessage], Outgoing]


def bad_signature(seed: bytes = b"not the right signer") -> bytes:
    """A well-formed compact signature (valid encoding, low S) that signs nothing of the channel's."""
    key = PrivateKey(hashlib.sha256(b"stranger key" + seed).digest())
    return key.sign_compact(hashlib.sha256(seed).digest())


def with_fields(**changes: Any) -> Tamper:
    """A hook that sends the message with some fields replaced (by their spec names)."""

    def change(message: ChannelMessage) -> ChannelMessage:
        changed: ChannelMessage = dataclasses.replace(cast(Any, message), **changes)
        return changed

    return change


class ScriptedChannelPeer:
    """One scripted node holding (at most) one channel with the node under test."""

    def __init__(self, name: str, chain: EmbeddedChain, config: ChannelConfig | None = None) -> None:
        seed = hashlib.sha256(b"scripted channel peer " + name.encode()).digest()
        self.name = name
        self.chain = chain
        self.config = config
        self.wire = ScriptedPeer(PrivateKey(hashlib.sha256(seed + b"node").digest()))
        self.wallet_key = PrivateKey(hashlib.sha256(seed + b"wallet").digest())
        self.wallet_script = p2wpkh_script(self.wallet_key.public_key.data)
        self._signer_root = hashlib.sha256(seed + b"channel").digest()
        self.node_features: Features | None = None
        self.channel: Channel | None = None
        self.funding_tx: Transaction | None = None
        # --- hooks ---
        self._tampers: list[tuple[str, Tamper]] = []
        self.mutate: Callable[[str, bytes], bytes] | None = None
        self.funding_output: Callable[[TxOut], TxOut] | None = None
        self.broadcast_funding = True
        # --- what happened ---
        self.received: list[Message | UnknownMessage] = []
        self.sent: list[bytes] = []
        # The names of the channel messages our core produced (whatever the hooks made of them).
        self.sent_names: list[str] = []
        self.broadcasts: list[Transaction] = []
        self.htlcs_received: list[HtlcReceived] = []
        self.fulfilled: list[HtlcFulfilled] = []
        self.failed: list[HtlcFailed] = []
        self.errors: list[Error] = []
        self.preimages: dict[bytes, bytes] = {}
        self.connection_closed = False
        # An exception in the reading task (a bug of this helper, not the node's): re-raised by waits.
        self.reader_failure: BaseException | None = None
        self._used_coins: set[OutPoint] = set()
        self._lock = asyncio.Lock()
        self._pump: asyncio.Task[None] | None = None

    # --- identity and coins ------------------------------------------------------------------------------
    @property
    def node_id(self) -> bytes:
        return self.wire.node_id

    @property
    def state(self) -> ChannelState:
        assert self.channel is not None, "open a channel first"
        return self.channel.state

    @property
    def channel_id(self) -> bytes:
        return self.state.channel_id

    def fund_wallet(self) -> None:
        """Mine one block paying our wallet; it can fund a channel 100 blocks later."""
        self.chain.generate(1, self.wallet_script)

    def _coin(self) -> tuple[OutPoint, int]:
        height = self.chain.tip_height()
        for coin in self.chain.utxos_for_script(self.wallet_script):
            mature = coin.height is not None and (not coin.coinbase or height - coin.height >= 100)
            if mature and coin.outpoint not in self._used_coins:
                self._used_coins.add(coin.outpoint)
                return coin.outpoint, coin.output.value
        raise AssertionError(f"{self.name} has no mature coin to fund a channel with")

    # --- connection --------------------------------------------------------------------------------------
    async def connect(self, port: int, node_id: bytes) -> ScriptedChannelPeer:
        """Noise handshake and `init` with the node's default features, then start reading."""
        await self.wire.connect(port, node_id)
        reply = await self.wire.init(DEFAULT_FEATURES)
        self.node_features = combine_init_features(
            reply.get_bytes("globalfeatures"), reply.get_bytes("features")
        )
        self._pump = asyncio.create_task(self._read_loop(), name=f"scripted-{self.name}")
        return self

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        self.wire.close()

    async def _read_loop(self) -> None:
        try:
            while True:
                message = await self.wire.recv(timeout=3600)
                self.received.append(message)
                if message.name == "ping":
                    assert isinstance(message, Message)
                    pong = make_message("pong", ignored=bytes(message.get_int("num_pong_bytes")))
                    await self._write(encode_message(pong))
                    continue
                if (
                    self.channel is None
                    or message.name not in CHANNEL_MESSAGE_NAMES
                    or message.name in ("error", "warning")
                ):
                    continue
                async with self._lock:
                    await self._carry_out(self.channel.receive(message))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            self.connection_closed = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.reader_failure = exc
            self.connection_closed = True

    # --- sending, with the test's hooks ------------------------------------------------------------------
    def tamper_next(self, name: str, change: Tamper) -> None:
        """Apply `change` to the next outgoing message called `name` (queued hooks apply in order)."""
        self._tampers.append((name, change))

    def drop_next(self, name: str) -> None:
        self.tamper_next(name, lambda _message: None)

    async def send(self, message: ChannelMessage | Message | bytes) -> None:
        """Send anything, untouched by the hooks (bytes are a whole plaintext message)."""
        if isinstance(message, bytes):
            data = message
        else:
            data = encode_message(message if isinstance(message, Message) else message.to_wire())
        await self._write(data)

    async def _write(self, data: bytes) -> None:
        self.sent.append(data)
        await self.wire.send_raw(data)

    async def _send_out(self, message: ChannelMessage) -> None:
        self.sent_names.append(message.NAME)
        outgoing: Outgoing = message
        for index, (name, change) in enumerate(self._tampers):
            if name == message.NAME:
                del self._tampers[index]
                outgoing = change(message)
                break
        if outgoing is None:
            return
        if isinstance(outgoing, bytes):
            data = outgoing
        else:
            data = encode_message(outgoing if isinstance(outgoing, Message) else outgoing.to_wire())
        if self.mutate is not None:
            data = self.mutate(message.NAME, data)
        with contextlib.suppress(ConnectionError, OSError):
            await self._write(data)

    # --- driving the channel -----------------------------------------------------------------------------
    async def handle(self, event: Event) -> list[Action]:
        async with self._lock:
            assert self.channel is not None, "open a channel first"
            actions = self.channel.handle(event)
            await self._carry_out(actions)
            return actions

    async def _carry_out(self, actions: list[Action]) -> None:
        channel = self.channel
        assert channel is not None
        for action in actions:
            if isinstance(action, SendMessage):
                await self._send_out(action.message)
            elif isinstance(action, Broadcast):
                await self._broadcast(action)
            elif isinstance(action, RequestFundingTransaction):
                await self._fund(action)
            elif isinstance(action, HtlcReceived):
                self.htlcs_received.append(action)
                preimage = self.preimages.get(action.payment_hash)
                if preimage is not None:
                    await self._carry_out(channel.handle(FulfillHtlc(action.htlc_id, preimage)))
                    await self._carry_out(channel.handle(SignCommitment()))
            elif isinstance(action, HtlcFulfilled):
                self.fulfilled.append(action)
            elif isinstance(action, HtlcFailed):
                self.failed.append(action)
            elif isinstance(action, Error):
                log.info("%s: our channel reports %s: %s", self.name, action.response.value, action.reason)
                self.errors.append(action)

    async def _broadcast(self, action: Broadcast) -> None:
        if action.label == "funding" and not self.broadcast_funding:
            return
        try:
            self.chain.submit(action.transaction)
            self.broadcasts.append(action.transaction)
        except BroadcastError as exc:
            log.info("%s: broadcast of %s refused: %s", self.name, action.label, exc)

    async def _fund(self, request: RequestFundingTransaction) -> None:
        channel = self.channel
        assert channel is not None
        outpoint, value = self._coin()
        funding = TxOut(request.amount_sat, request.script_pubkey)
        if self.funding_output is not None:
            funding = self.funding_output(funding)
        change = TxOut(value - request.amount_sat - FUNDING_FEE_SAT, self.wallet_script)
        unsigned = Transaction(2, (TxIn(outpoint, b"", 0xFFFFFFFD),), (funding, change))
        tx = sign_p2wpkh_input(unsigned, 0, self.wallet_key, value)
        self.funding_tx = tx
        if self.funding_output is None:
            await self._carry_out(channel.handle(FundingTransactionBuilt(tx, 0)))
            return
        # Our own core refuses to fund with a wrong output, so do what `funding_built` does by hand:
        # sign the node's first commitment as if `tx` paid the agreed 2-of-2 output.
        state = channel.state
        _local, remote = state.require_params()
        state = replace(
            state,
            funding_outpoint=OutPoint(tx.txid, 0),
            funding_tx=tx,
            channel_id=open_phase.derive_channel_id(tx.txid, 0),
        )
        ledger = open_phase._initial_ledger(state, remote.first_per_commitment_point)
        context = Context(channel.signer, channel.config, channel.feerate_estimate_per_kw)
        signature = open_phase._sign_remote_initial(state, ledger, context)
        state = replace(state, phase=Phase.WAIT_FUNDING_SIGNED, ledger=ledger)
        self.channel = Channel(state, channel.signer, channel.config, channel.feerate_estimate_per_kw)
        await self._send_out(FundingCreated(state.temporary_channel_id, tx.txid, 0, signature))

    async def open_channel(self, funding_sat: int, push_msat: int = 0) -> None:
        """Open as the funder; returns once funding_signed came back (the funding is then broadcast)."""
        assert self.node_features is not None, "connect first"
        feerate = max(FEERATE_FLOOR_PER_KW, self.chain.estimate_feerate_sat_per_kvb(6) // 4)
        self.channel = Channel.new(
            InMemorySigner(self._signer_root),
            chain_hash=Network.REGTEST.chain_hash,
            local_features=DEFAULT_FEATURES,
            remote_features=self.node_features,
            shutdown_script=self.wallet_script,
            config=self.config,
            feerate_estimate_per_kw=feerate,
        )
        temporary_id = hashlib.sha256(b"temporary " + self.name.encode()).digest()
        await self.handle(
            OpenChannelCommand(temporary_id, funding_sat, push_msat, feerate, ChannelType.STATIC_REMOTEKEY)
        )
        await self.wait_for(
            lambda: self.state.phase in (Phase.WAIT_CHANNEL_READY, Phase.ABORTED), "funding_signed"
        )
        assert self.state.phase is Phase.WAIT_CHANNEL_READY, self.state.failure

    async def follow_chain(self) -> None:
        """Tell the core how deep the funding transaction is (the node's watcher does the same)."""
        tx = self.funding_tx
        assert tx is not None
        status = self.chain.tx_status(tx.txid)
        if status.block_height is None:
            return
        block_hash = self.chain.block_hash(status.block_height)
        assert block_hash is not None
        block = self.chain.get_block(block_hash)
        assert block is not None
        index = next(i for i, each in enumerate(block.transactions) if each.txid == tx.txid)
        depth = self.chain.tip_height() - status.block_height + 1
        scid = (status.block_height << 40) | (index << 16)
        await self.handle(FundingConfirmed(tx, depth, scid))

    async def add_htlc(self, amount_msat: int, payment_hash: bytes, cltv_expiry: int) -> None:
        """Offer an HTLC through our core and sign it (both messages pass the hooks)."""
        actions = await self.handle(AddHtlc(amount_msat, payment_hash, cltv_expiry, ONION))
        refused = [a for a in actions if isinstance(a, Error)]
        assert not refused, refused
        await self.handle(SignCommitment())

    # --- waiting -----------------------------------------------------------------------------------------
    async def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if self.reader_failure is not None:
                raise AssertionError(f"{self.name}: the reader failed") from self.reader_failure
            if loop.time() > deadline:
                raise AssertionError(f"{self.name}: timed out waiting for {what}")
            await asyncio.sleep(0.01)

    def messages(self, name: str) -> list[Message]:
        return [m for m in self.received if isinstance(m, Message) and m.name == name]

    async def wait_for_message(self, name: str, timeout: float = WAIT) -> Message:
        """The first message called `name` received so far, waiting for one if there is none yet."""
        await self.wait_for(lambda: bool(self.messages(name)), f"a {name} message", timeout)
        return self.messages(name)[0]
