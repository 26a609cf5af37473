"""The persistent state of one two-way channel, as immutable values.

A transition never mutates a state: it returns a new one, which the shell persists before it
lets any message that depends on it leave the process.

The update lifecycle (BOLT 2 "Normal Operation"). Every update (an HTLC add, its removal, a fee
change) goes through five stages: pending on the receiver; in the receiver's latest commitment;
the receiver's previous commitment revoked, so pending on the sender; in the sender's latest
commitment; the sender's previous commitment revoked. Rather than a named state per stage and
direction, each update records *which* commitment of each side first included it (`Marks`):
`local` is the number of our commitment, `remote` the number of the peer's. Together with the
ledger's counters that pins down the stage exactly:

    stage                       sent by us                       sent by the peer
    1 pending on receiver       remote is None                   local is None
    2 in receiver's latest      remote set, not yet acked        local set (we revoked at once,
    3 receiver revoked          remote acked, local is None        so 2 and 3 coincide)
    4/5 in sender's latest,     local set (we revoke at once)    remote set and acked
        sender revoked

where "acked" means the peer has revoked the commitment before the one that first included it.
Stage 5 is "irrevocably committed". An HTLC is in a commitment when its add is and its removal
is not; it is deleted, and its amount settled into the balances, once its removal is
irrevocably committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.channel.transactions.fees import CommitmentFormat
from ampere.channel.transactions.keys import ChannelBasepoints
from ampere.channel.twoway.errors import ChannelError
from ampere.channel.twoway.fast_replace import fast_replace
from ampere.channel.twoway.messages import ClosingComplete, ClosingSigned, CommitmentSigned, RevokeAndAck
from ampere.wire.features import Feature, Features

__all__ = [
    "TRANSIENT",
    "ChannelState",
    "ChannelStatus",
    "ChannelType",
    "Connection",
    "FeeUpdate",
    "HtlcEntry",
    "Ledger",
    "Marks",
    "Negotiation",
    "Phase",
    "Removal",
    "RemovalKind",
    "ShutdownState",
    "SideParams",
]


# Field metadata key: the field is a cache, left out of the persisted encoding.
TRANSIENT = "transient"


class Phase(Enum):
    """Where the channel is in its life; each phase's transitions live in one module."""

    INIT = "init"
    WAIT_ACCEPT = "wait_accept"  # opener: open_channel sent
    WAIT_FUNDING_TX = "wait_funding_tx"  # opener: asked the wallet for the funding transaction
    WAIT_FUNDING_SIGNED = "wait_funding_signed"  # opener: funding_created sent
    WAIT_FUNDING_CREATED = "wait_funding_created"  # accepter: accept_channel sent
    WAIT_CHANNEL_READY = "wait_channel_ready"  # both signed: waiting for depth and channel_ready
    NORMAL = "normal"
    SHUTDOWN = "shutdown"  # shutdown sent or received; HTLCs drain
    NEGOTIATING = "negotiating"  # closing_signed fee negotiation
    CLOSING = "closing"  # mutual close broadcast
    FORCE_CLOSING = "force_closing"  # a commitment is (or is to be) on chain
    CLOSED = "closed"  # every output resolved
    ABORTED = "aborted"  # opening failed before anything reached the chain


class ChannelStatus(Enum):
    """The states `listchannels` reports (the node's contract)."""

    OPENING = "opening"
    NORMAL = "normal"
    SHUTTING_DOWN = "shutting_down"
    CLOSING = "closing"
    FORCE_CLOSING = "force_closing"
    CLOSED = "closed"


_STATUS = {
    Phase.INIT: ChannelStatus.OPENING,
    Phase.WAIT_ACCEPT: ChannelStatus.OPENING,
    Phase.WAIT_FUNDING_TX: ChannelStatus.OPENING,
    Phase.WAIT_FUNDING_SIGNED: ChannelStatus.OPENING,
    Phase.WAIT_FUNDING_CREATED: ChannelStatus.OPENING,
    Phase.WAIT_CHANNEL_READY: ChannelStatus.OPENING,
    Phase.NORMAL: ChannelStatus.NORMAL,
    Phase.SHUTDOWN: ChannelStatus.SHUTTING_DOWN,
    Phase.NEGOTIATING: ChannelStatus.SHUTTING_DOWN,
    Phase.CLOSING: ChannelStatus.CLOSING,
    Phase.FORCE_CLOSING: ChannelStatus.FORCE_CLOSING,
    Phase.CLOSED: ChannelStatus.CLOSED,
    Phase.ABORTED: ChannelStatus.CLOSED,
}

PRE_FUNDING_PHASES = frozenset(
    {
        Phase.INIT,
        Phase.WAIT_ACCEPT,
        Phase.WAIT_FUNDING_TX,
        Phase.WAIT_FUNDING_SIGNED,
        Phase.WAIT_FUNDING_CREATED,
    }
)


# BOLT 1: errors use the temporary id until the funder has sent funding_created and until the
# fundee sends funding_signed; funding_signed itself introduces the real one.
TEMPORARY_ID_PHASES = frozenset(
    {Phase.INIT, Phase.WAIT_ACCEPT, Phase.WAIT_FUNDING_TX, Phase.WAIT_FUNDING_CREATED}
)


class Connection(Enum):
    LIVE = "live"
    DISCONNECTED = "disconnected"
    REESTABLISHING = "reestablishing"  # our channel_reestablish is out; theirs has not arrived


class ChannelType(Enum):
    """The channel types BOLT 2 defines that we support (no scid_alias or zeroconf variants)."""

    STATIC_REMOTEKEY = "static_remotekey"
    ANCHORS = "anchors"

    @property
    def commitment_format(self) -> CommitmentFormat:
        return CommitmentFormat.ANCHORS if self is ChannelType.ANCHORS else CommitmentFormat.STATIC_REMOTEKEY

    def to_bytes(self) -> bytes:
        """The smallest bitmap with the type's even bits (BOLT 2 "Defined Channel Types")."""
        features = [Feature.STATIC_REMOTEKEY]
        if self is ChannelType.ANCHORS:
            features.append(Feature.ANCHORS)
        return Features.of(required=features).to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> ChannelType | None:
        """The type `data` encodes exactly, or None if it is not one we support."""
        for channel_type in cls:
            if channel_type.to_bytes() == data:
                return channel_type
        return None


@dataclass(frozen=True, slots=True)
class SideParams:
    """What one side announced in open_channel/accept_channel.

    Most of these limit the *other* side: the reserve it must keep, the delay on its to_local,
    the HTLCs it may offer. `dust_limit_sat` applies to the announcing side's own commitment.
    """

    dust_limit_sat: int
    max_htlc_value_in_flight_msat: int
    channel_reserve_sat: int
    htlc_minimum_msat: int
    to_self_delay: int
    max_accepted_htlcs: int
    basepoints: ChannelBasepoints
    first_per_commitment_point: bytes
    upfront_shutdown_script: bytes


@dataclass(frozen=True, slots=True)
class Marks:
    """When an update was sent/received (`seq`, a per-channel counter that gives the original
    order for retransmission) and which commitment of each side first included it."""

    seq: int
    local: int | None = None
    remote: int | None = None


class RemovalKind(Enum):
    FULFILL = "fulfill"
    FAIL = "fail"
    FAIL_MALFORMED = "fail_malformed"


@dataclass(frozen=True, slots=True)
class Removal:
    """An update_fulfill/fail/fail_malformed for an HTLC; sent by whoever did not offer it."""

    kind: RemovalKind
    marks: Marks
    payment_preimage: bytes = b""
    reason: bytes = b""
    sha256_of_onion: bytes = b""
    failure_code: int = 0


@dataclass(frozen=True, slots=True)
class HtlcEntry:
    """One HTLC; `offered` is True when we offered it (outgoing). Ids are per direction.

    The onion of an outgoing HTLC is emptied once the peer has acknowledged the add: it is only
    kept for retransmission. The onion of an incoming one is emptied once we remove it: it is only
    kept until the HTLC is decided (and to tell the node of it again after a restart)."""

    offered: bool
    htlc_id: int
    amount_msat: int
    payment_hash: bytes
    cltv_expiry: int
    onion: bytes
    add: Marks
    removal: Removal | None = None

    @property
    def key(self) -> tuple[bool, int]:
        return self.offered, self.htlc_id


@dataclass(frozen=True, slots=True)
class FeeUpdate:
    """An update_fee in flight (always from the opener, so `from_us` is whether we opened)."""

    feerate_per_kw: int
    marks: Marks
    from_us: bool


@dataclass(frozen=True, slots=True)
class Ledger:
    """Commitments, balances, HTLCs and revocation data of a funded channel.

    `local_balance_msat`/`remote_balance_msat` are settled balances: every HTLC still in
    `htlcs` is counted in its offerer's balance, and `ledger.py` works out each commitment's
    view. `remote_commitment_number` is the peer's newest commitment we signed; while
    `awaiting_revocation` its predecessor is still unrevoked.
    """

    local_commitment_number: int
    remote_commitment_number: int
    awaiting_revocation: bool
    local_balance_msat: int
    remote_balance_msat: int
    feerate_per_kw: int
    htlcs: tuple[HtlcEntry, ...]
    fee_updates: tuple[FeeUpdate, ...]
    next_local_htlc_id: int
    next_remote_htlc_id: int
    next_seq: int
    # The peer's per-commitment points: of its commitment before the newest (only while it is
    # unrevoked), of the newest, and of the next one (known once the newest is revoked).
    remote_prev_point: bytes | None
    remote_point: bytes
    remote_next_point: bytes | None
    # The peer's revealed secrets, `ShachainStore.to_bytes()` form (kept as bytes so the state
    # stays immutable).
    remote_secrets: bytes
    # The peer's signatures of our newest commitment (compact), so we can broadcast it.
    local_commit_signature: bytes
    local_htlc_signatures: tuple[bytes, ...]
    # For retransmission after a reconnection.
    last_sent_commitment_signed: CommitmentSigned | None = None
    last_sent_revoke_and_ack: RevokeAndAck | None = None
    revoke_sent_after_commit: bool = False
    # `totals.LedgerTotals` of this content, when known: a memo, neither persisted nor compared.
    totals_memo: object = field(default=None, compare=False, repr=False, metadata={TRANSIENT: True})

    @property
    def remote_acked_upto(self) -> int:
        """The newest peer commitment whose predecessor is revoked."""
        return (
            self.remote_commitment_number - 1 if self.awaiting_revocation else self.remote_commitment_number
        )

    def next_marks(self) -> tuple[Marks, Ledger]:
        return Marks(self.next_seq), fast_replace(self, next_seq=self.next_seq + 1)

    def find(self, offered: bool, htlc_id: int) -> HtlcEntry | None:
        for entry in self.htlcs:
            if entry.htlc_id == htlc_id and entry.offered == offered:
                return entry
        return None

    def replace_htlc(self, entry: HtlcEntry) -> Ledger:
        """The ledger with `entry` in place of the HTLC with its key (unchanged if there is none)."""
        htlcs = self.htlcs
        for index, old in enumerate(htlcs):
            if old.htlc_id == entry.htlc_id and old.offered == entry.offered:
                return fast_replace(self, htlcs=(*htlcs[:index], entry, *htlcs[index + 1 :]))
        return self


@dataclass(frozen=True, slots=True)
class ShutdownState:
    local_sent: bool = False
    remote_script: bytes | None = None
    # Asked for by the node but not sendable yet (our updates are not all signed).
    local_requested: bool = False


@dataclass(frozen=True, slots=True)
class Negotiation:
    """closing_signed negotiation (legacy close); restarts after a reconnection."""

    our_fee_sat: int | None = None
    our_min_fee_sat: int = 0
    our_max_fee_sat: int = 0
    their_fee_sat: int | None = None
    last_sent: ClosingSigned | None = None
    # option_simple_close: our last closing_complete, until its closing_sig arrives.
    last_complete: ClosingComplete | None = None


@dataclass(frozen=True, slots=True)
class ChannelState:
    """Everything persisted about one channel."""

    phase: Phase
    revision: int
    chain_hash: bytes
    local_features: bytes
    remote_features: bytes
    local_shutdown_script: bytes
    is_opener: bool = False
    temporary_channel_id: bytes = bytes(32)
    channel_id: bytes = bytes(32)
    channel_type: ChannelType = ChannelType.STATIC_REMOTEKEY
    announce: bool = False
    funding_sat: int = 0
    push_msat: int = 0
    initial_feerate_per_kw: int = 0
    local: SideParams | None = None
    remote: SideParams | None = None
    minimum_depth: int = 0
    funding_outpoint: OutPoint | None = None
    funding_tx: Transaction | None = None
    funding_depth: int = 0
    blocks_waiting: int = 0
    short_channel_id: int | None = None
    channel_ready_sent: bool = False
    channel_ready_received: bool = False
    ledger: Ledger | None = None
    shutdown: ShutdownState = ShutdownState()
    negotiation: Negotiation | None = None
    closing_tx: Transaction | None = None
    connection: Connection = Connection.LIVE
    # We learnt from channel_reestablish that our state is stale: never broadcast it.
    data_loss: bool = False
    failure: str = ""

    @classmethod
    def initial(
        cls, chain_hash: bytes, local_features: Features, remote_features: Features, shutdown_script: bytes
    ) -> ChannelState:
        return cls(
            phase=Phase.INIT,
            revision=0,
            chain_hash=chain_hash,
            local_features=local_features.to_bytes(),
            remote_features=remote_features.to_bytes(),
            local_shutdown_script=shutdown_script,
        )

    @property
    def status(self) -> ChannelStatus:
        return _STATUS[self.phase]

    @property
    def commitment_format(self) -> CommitmentFormat:
        return self.channel_type.commitment_format

    @property
    def features(self) -> tuple[Features, Features]:
        return Features.from_bytes(self.local_features), Features.from_bytes(self.remote_features)

    def both_support(self, feature: Feature) -> bool:
        local, remote = self.features
        return local.has(feature) and remote.has(feature)

    @property
    def is_live(self) -> bool:
        return self.connection is Connection.LIVE

    def require_ledger(self) -> Ledger:
        if self.ledger is None:
            raise ChannelError("channel is not funded yet")
        return self.ledger

    def require_params(self) -> tuple[SideParams, SideParams]:
        if self.local is None or self.remote is None:
            raise ChannelError("channel parameters are not negotiated yet")
        return self.local, self.remote

    def require_funding(self) -> OutPoint:
        if self.funding_outpoint is None:
            raise ChannelError("channel has no funding outpoint yet")
        return self.funding_outpoint

    @property
    def wire_channel_id(self) -> bytes:
        """The id our messages carry: the temporary one until funding is known (BOLT 1)."""
        return self.temporary_channel_id if self.phase in TEMPORARY_ID_PHASES else self.channel_id
