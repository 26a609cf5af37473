"""BOLT #1 for one connection, sans-IO: ``init``, ``ping``/``pong``, ``error``/``warning`` and the
odd/even rules, plus empty answers to BOLT #7 gossip queries.

``PeerProtocol`` is fed whole decrypted messages (``receive``) and asked to
act (``start``, ``ping``, ``keepalive``); every call returns a list of actions
and events for the shell that owns the socket: ``SendMessage`` to write,
``Disconnect`` to close, ``PeerReady``/``MessageReceived``/``ErrorReceived``/
``PongReceived`` for the layers above.  Nothing here touches a socket or a
clock, so every rule is unit-testable.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ampere.errors import AmpereError
from ampere.wire import (
    DecodeError,
    Feature,
    Features,
    FieldValue,
    Message,
    UnknownEvenMessageError,
    UnknownMessage,
    WireError,
    decode_message,
    make_message,
)
from ampere.wire.addresses import NetAddress, parse_addresses
from ampere.wire.features import combine_init_features
from ampere.wire.gossip_queries import QueryOption, make_reply_channel_range, validate_query

logger = logging.getLogger(__name__)

#: BOLT #1: a ``ping`` asking for this many pong bytes or more must be ignored (65531 fills a message).
PONG_IGNORE_THRESHOLD = 65532
#: How many of our pings may await their pong; more than that means the peer is not answering.
MAX_OUTSTANDING_PINGS = 32
#: The largest ``ignored`` padding a ``ping`` can carry (65535 minus type and two length fields).
MAX_PING_PADDING = 65535 - 6

_ZERO_CHANNEL_ID = bytes(32)

#: What Ampere advertises by default: everything optional (odd), so that no peer is turned away for
#: lacking one of them; the channel layer checks what it needs per channel.
DEFAULT_FEATURES = Features.of(
    optional=(
        Feature.DATA_LOSS_PROTECT,
        Feature.GOSSIP_QUERIES,
        Feature.VAR_ONION_OPTIN,
        Feature.STATIC_REMOTEKEY,
        Feature.PAYMENT_SECRET,
        Feature.BASIC_MPP,
        Feature.LARGE_CHANNEL,
        Feature.ANCHORS,
        Feature.SHUTDOWN_ANYSEGWIT,
        Feature.CHANNEL_TYPE,
        Feature.MICROPAYMENT_CHANNEL,
    )
)


class PeerError(AmpereError):
    """A peer-layer failure: the peer misbehaved, is not connected, or a connection attempt failed."""


class PeerState(enum.Enum):
    AWAITING_INIT = "awaiting_init"
    READY = "ready"
    CLOSED = "closed"


# --------------------------------------------------------------------------- actions and events


@dataclass(frozen=True, slots=True)
class SendMessage:
    """Write this message to the peer."""

    message: Message | UnknownMessage


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close the connection (after writing any ``SendMessage`` that came before it)."""

    reason: str


@dataclass(frozen=True, slots=True)
class PeerReady:
    """The peer's ``init`` arrived and passed every check: the connection is usable."""

    features: Features
    negotiated: Features
    remote_addr: NetAddress | None
    chains: tuple[bytes, ...] | None


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A message for the layers above (channel, gossip, custom types)."""

    message: Message | UnknownMessage


@dataclass(frozen=True, slots=True)
class ErrorReceived:
    """An ``error`` (or, with ``warning`` set, a ``warning``) from the peer."""

    channel_id: bytes
    data: bytes
    warning: bool
    message: Message

    @property
    def text(self) -> str:
        """``data`` safe to print: BOLT #1 says not to print non-printable bytes verbatim."""
        if all(32 <= b <= 126 for b in self.data):
            return self.data.decode("ascii")
        return "0x" + self.data.hex()

    @property
    def all_channels(self) -> bool:
        return self.channel_id == _ZERO_CHANNEL_ID


@dataclass(frozen=True, slots=True)
class PongReceived:
    """The pong to the ping that ``PeerProtocol.ping`` numbered ``token``."""

    token: int
    byteslen: int
    keepalive: bool


Action = SendMessage | Disconnect | PeerReady | MessageReceived | ErrorReceived | PongReceived


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class ProtocolConfig:
    """What this node says in ``init`` and accepts in the peer's.

    ``features`` is advertised as is; a peer that requires (sets the even bit
    of) a feature absent from it is refused.  ``chains`` go in the
    ``networks`` TLV and a peer whose ``networks`` shares none of them is
    refused.
    """

    features: Features = DEFAULT_FEATURES
    chains: tuple[bytes, ...] = ()
    max_outstanding_pings: int = MAX_OUTSTANDING_PINGS

    def __post_init__(self) -> None:
        if any(len(chain) != 32 for chain in self.chains):
            raise PeerError("chain hashes are 32 bytes")


def unsupported_required_bits(local: Features, remote: Features) -> list[int]:
    """Even bits the peer sets for features we do not offer ourselves (BOLT #1: close the connection)."""
    return [
        bit
        for bit in remote.bit_numbers()
        if bit % 2 == 0 and not local.is_set(bit) and not local.is_set(bit + 1)
    ]


def negotiated_features(local: Features, remote: Features) -> Features:
    """BOLT #1 "negotiated": both offered the feature, or we offered it as required.

    Each negotiated pair is returned with its even bit when either side
    requires it and its odd bit otherwise.
    """
    result = Features()
    top = max(local.bits.bit_length(), remote.bits.bit_length())
    for even in range(0, top, 2):
        local_offers = local.is_set(even) or local.is_set(even + 1)
        remote_offers = remote.is_set(even) or remote.is_set(even + 1)
        if (local_offers and remote_offers) or local.is_set(even):
            required = local.is_set(even) or remote.is_set(even)
            result = result.set_bit(even if required else even + 1)
    return result


# --------------------------------------------------------------------------- the protocol


@dataclass(slots=True)
class _PendingPing:
    token: int
    num_pong_bytes: int
    keepalive: bool


@dataclass(slots=True)
class _PingTracker:
    pending: deque[_PendingPing] = field(default_factory=deque)
    next_token: int = 0

    def keepalive_outstanding(self) -> bool:
        return any(p.keepalive for p in self.pending)


class PeerProtocol:
    """BOLT #1 state machine for one authenticated connection.

    ``remote_addr`` is the peer's address as we see it, sent back in our
    ``init``.  ``is_handled(type)`` tells whether the layers above want a
    message type that the wire schema does not know (custom messages); such
    messages are delivered instead of being ignored (odd) or refused (even).
    """

    def __init__(
        self,
        config: ProtocolConfig,
        *,
        remote_addr: NetAddress | None = None,
        is_handled: Callable[[int], bool] | None = None,
    ) -> None:
        self._config = config
        self._remote_addr = remote_addr
        self._is_handled = is_handled or (lambda _type: False)
        self._state = PeerState.AWAITING_INIT
        self._started = False
        self._pings = _PingTracker()
        self.remote_features: Features | None = None
        self.negotiated: Features | None = None

    @property
    def state(self) -> PeerState:
        return self._state

    @property
    def ready(self) -> bool:
        return self._state is PeerState.READY

    @property
    def outstanding_pings(self) -> int:
        return len(self._pings.pending)

    def start(self) -> list[Action]:
        """Our ``init``: BOLT #1 has both sides send it first thing, without waiting for the other's."""
        if self._started:
            raise PeerError("init already sent")
        self._started = True
        tlvs: dict[str, dict[str, FieldValue]] = {}
        if self._config.chains:
            tlvs["networks"] = {"chains": tuple(self._config.chains)}
        if self._remote_addr is not None:
            tlvs["remote_addr"] = {"data": self._remote_addr.to_bytes()}
        init = make_message(
            "init",
            globalfeatures=b"",
            features=self._config.features.to_bytes(),
            tlvs=tlvs,
        )
        return [SendMessage(init)]

    # -------------------------------------------------------------- inbound

    def receive(self, data: bytes) -> list[Action]:
        """Handle one decrypted message."""
        if self._state is PeerState.CLOSED:
            return []
        msg_type = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
        try:
            message = decode_message(data)
        except UnknownEvenMessageError:
            if self.ready and msg_type is not None and self._is_handled(msg_type):
                return [MessageReceived(UnknownMessage(msg_type, bytes(data[2:])))]
            return self._fail(f"unknown even message type {msg_type}", send_warning=self.ready)
        except WireError as exc:
            return self._fail(f"malformed message: {exc}", send_warning=self.ready)
        if self._state is PeerState.AWAITING_INIT:
            if message.name != "init" or not isinstance(message, Message):
                # No warning: BOLT #1 forbids sending anything but init before receiving theirs.
                return self._fail(f"{message.name} before init", send_warning=False)
            return self._on_init(message)
        if isinstance(message, UnknownMessage):
            # It's ok to be odd: unknown odd types are dropped unless someone above asked for them.
            return [MessageReceived(message)] if self._is_handled(message.type) else []
        return self._dispatch(message)

    def _dispatch(self, message: Message) -> list[Action]:
        name = message.name
        if name == "ping":
            return self._on_ping(message)
        if name == "pong":
            return self._on_pong(message)
        if name in ("error", "warning"):
            return [
                ErrorReceived(
                    message.get_bytes("channel_id"), message.get_bytes("data"), name == "warning", message
                )
            ]
        if name == "init":
            return self._fail("second init on one connection")
        if name in ("query_channel_range", "query_short_channel_ids", "gossip_timestamp_filter"):
            return self._on_gossip_query(message)
        return [MessageReceived(message)]

    def _on_init(self, message: Message) -> list[Action]:
        remote = combine_init_features(message.get_bytes("globalfeatures"), message.get_bytes("features"))
        unsupported = unsupported_required_bits(self._config.features, remote)
        if unsupported:
            return self._fail(f"peer requires features we do not support: bits {unsupported}")
        missing = remote.missing_dependencies()
        if missing:
            text = ", ".join(f"{f.name.lower()} needs {d.name.lower()}" for f, d in missing)
            return self._fail(f"peer's features lack dependencies: {text}")
        chains = self._networks(message)
        if chains is not None and self._config.chains and not set(chains) & set(self._config.chains):
            return self._fail("no common chain in networks")
        self.remote_features = remote
        self.negotiated = negotiated_features(self._config.features, remote)
        self._state = PeerState.READY
        return [PeerReady(remote, self.negotiated, self._remote_addr_of(message), chains)]

    @staticmethod
    def _networks(message: Message) -> tuple[bytes, ...] | None:
        value = message.tlv_value("networks")
        if value is None:
            return None
        assert isinstance(value, tuple)
        return tuple(chain for chain in value if isinstance(chain, bytes))

    @staticmethod
    def _remote_addr_of(message: Message) -> NetAddress | None:
        data = message.tlv_value("remote_addr")
        if not isinstance(data, bytes):
            return None
        try:
            addresses = parse_addresses(data)
        except WireError:
            # Only advice about how others see us: a bad one is ignored, not fatal.
            logger.debug("ignoring unparsable remote_addr %s", data.hex())
            return None
        return addresses[0] if addresses else None

    def _on_ping(self, message: Message) -> list[Action]:
        num_pong_bytes = message.get_int("num_pong_bytes")
        if num_pong_bytes >= PONG_IGNORE_THRESHOLD:
            return []
        return [SendMessage(make_message("pong", ignored=bytes(num_pong_bytes)))]

    def _on_pong(self, message: Message) -> list[Action]:
        byteslen = len(message.get_bytes("ignored"))
        pending = self._pings.pending
        # Pongs come back in ping order, so the oldest outstanding ping is the one answered.
        if not pending:
            return self._fail("pong without a ping")
        expected = pending.popleft()
        if expected.num_pong_bytes != byteslen:
            return self._fail(f"pong of {byteslen} bytes to a ping asking {expected.num_pong_bytes}")
        return [PongReceived(expected.token, byteslen, expected.keepalive)]

    def _on_gossip_query(self, message: Message) -> list[Action]:
        if not self._config.features.has(Feature.GOSSIP_QUERIES) or message.name == "gossip_timestamp_filter":
            # No gossip store yet: a timestamp filter selects nothing to forward.
            return []
        try:
            validate_query(message)
        except DecodeError as exc:
            return self._fail(f"malformed {message.name}: {exc}")
        chain_hash = message.get_bytes("chain_hash")
        # With no gossip kept, the honest answer is "complete" for our chain and "don't know" for others.
        ours = chain_hash in self._config.chains
        if message.name == "query_short_channel_ids":
            reply = make_message(
                "reply_short_channel_ids_end", chain_hash=chain_hash, full_information=int(ours)
            )
            return [SendMessage(reply)]
        wanted = message.tlv_value("query_option")
        options = QueryOption(wanted & 3) if isinstance(wanted, int) else QueryOption(0)
        reply = make_reply_channel_range(
            chain_hash,
            message.get_int("first_blocknum"),
            message.get_int("number_of_blocks"),
            sync_complete=ours,
            scids=(),
            timestamps=() if QueryOption.WANT_TIMESTAMPS in options else None,
            checksums=() if QueryOption.WANT_CHECKSUMS in options else None,
        )
        return [SendMessage(reply)]

    # -------------------------------------------------------------- outbound

    def ping(
        self, num_pong_bytes: int, padding: int = 0, *, keepalive: bool = False
    ) -> tuple[int | None, list[Action]]:
        """A ``ping``; returns the token its ``PongReceived`` will carry (``None``: no pong expected)."""
        if not self.ready:
            raise PeerError("cannot ping before init is exchanged")
        if not 0 <= num_pong_bytes <= 0xFFFF or not 0 <= padding <= MAX_PING_PADDING:
            raise PeerError("ping sizes out of range")
        if len(self._pings.pending) >= self._config.max_outstanding_pings:
            raise PeerError(f"{len(self._pings.pending)} pings already await their pong")
        ping = make_message("ping", num_pong_bytes=num_pong_bytes, ignored=bytes(padding))
        if num_pong_bytes >= PONG_IGNORE_THRESHOLD:
            return None, [SendMessage(ping)]
        token = self._pings.next_token
        self._pings.next_token += 1
        self._pings.pending.append(_PendingPing(token, num_pong_bytes, keepalive))
        return token, [SendMessage(ping)]

    def keepalive(self) -> list[Action]:
        """One keep-alive tick: a dead peer (last tick's ping unanswered) is dropped, a live one pinged."""
        if not self.ready:
            return []
        if self._pings.keepalive_outstanding():
            return self._fail("no pong to the keep-alive ping", send_warning=False)
        if len(self._pings.pending) >= self._config.max_outstanding_pings:
            return self._fail("too many pings unanswered", send_warning=False)
        _token, actions = self.ping(0, keepalive=True)
        return actions

    def check_sendable(self, message: Message | UnknownMessage) -> None:
        """Raise ``PeerError`` unless the layers above may send ``message`` now."""
        if not self.ready:
            raise PeerError(f"cannot send {message.name}: connection not ready ({self._state.value})")
        if message.name == "init":
            raise PeerError("init is sent by the peer layer only")

    def close(self, reason: str) -> list[Action]:
        """Close on our own initiative (shutdown, replaced connection)."""
        if self._state is PeerState.CLOSED:
            return []
        self._state = PeerState.CLOSED
        return [Disconnect(reason)]

    def _fail(self, reason: str, *, send_warning: bool = True) -> list[Action]:
        # A warning rather than an error: an all-zero error would oblige both sides to fail every
        # channel, which a transport-level fault (or a feature mismatch after an upgrade) doesn't merit.
        self._state = PeerState.CLOSED
        actions: list[Action] = []
        if send_warning and self._started:
            text = reason.encode("ascii", "replace")[:1000]
            actions.append(SendMessage(make_message("warning", channel_id=_ZERO_CHANNEL_ID, data=text)))
        actions.append(Disconnect(reason))
        return actions


def describe(actions: Iterable[Action]) -> str:
    """A one-line summary for debug logs."""
    return ", ".join(type(action).__name__ for action in actions)
