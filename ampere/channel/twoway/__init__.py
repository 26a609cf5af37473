"""The BOLT 2 two-way channel: a sans-IO state machine (v1 open, updates, close, reestablish).

Feed a `Channel` events (typed peer messages from `messages`, local commands and chain events
from `events`); it returns `actions` for the shell to carry out in order, persisting state before
anything leaves the process (see `actions` for the contract). Keys live behind
`ampere.channel.signer.ChannelSigner`.

Modules: `state` (persistent dataclasses), `ledger` (commitment views), `limits` (BOLT 2
parameter and update rules), one transition table per phase — `open`, `update`, `close`,
`reestablish` — merged by `transitions`, and `channel` (the driving object).
"""

from ampere.channel.twoway.actions import (
    Action,
    Broadcast,
    ChannelClosed,
    ChannelReady,
    CloseType,
    Error,
    HtlcFailed,
    HtlcFulfilled,
    HtlcOffered,
    HtlcReceived,
    OpenFailed,
    PersistState,
    RequestFundingTransaction,
    SendMessage,
    WatchFunding,
)
from ampere.channel.twoway.channel import Channel, pending_incoming_htlcs, signer_state_for
from ampere.channel.twoway.config import ChannelConfig
from ampere.channel.twoway.errors import ChannelError, CommandError, ErrorResponse
from ampere.channel.twoway.events import (
    AddHtlc,
    BlockConnected,
    Disconnected,
    Event,
    FailHtlc,
    FailMalformedHtlc,
    ForceClose,
    FulfillHtlc,
    FundingConfirmed,
    FundingSpent,
    FundingTransactionBuilt,
    OnchainResolved,
    OpenChannelCommand,
    Reconnected,
    ShutdownCommand,
    SignCommitment,
    UpdateFeeCommand,
)
from ampere.channel.twoway.messages import ChannelMessage, parse_message
from ampere.channel.twoway.persistence import StateDecodeError, deserialize_state, serialize_state
from ampere.channel.twoway.state import ChannelState, ChannelStatus, ChannelType, Phase
from ampere.channel.twoway.summary import ChannelSummary, PendingHtlc, summarize

__all__ = [
    "Action",
    "AddHtlc",
    "BlockConnected",
    "Broadcast",
    "Channel",
    "ChannelClosed",
    "ChannelConfig",
    "ChannelError",
    "ChannelMessage",
    "ChannelReady",
    "ChannelState",
    "ChannelStatus",
    "ChannelSummary",
    "ChannelType",
    "CloseType",
    "CommandError",
    "Disconnected",
    "Error",
    "ErrorResponse",
    "Event",
    "FailHtlc",
    "FailMalformedHtlc",
    "ForceClose",
    "FulfillHtlc",
    "FundingConfirmed",
    "FundingSpent",
    "FundingTransactionBuilt",
    "HtlcFailed",
    "HtlcFulfilled",
    "HtlcOffered",
    "HtlcReceived",
    "OnchainResolved",
    "OpenChannelCommand",
    "OpenFailed",
    "PendingHtlc",
    "PersistState",
    "Phase",
    "Reconnected",
    "RequestFundingTransaction",
    "SendMessage",
    "ShutdownCommand",
    "SignCommitment",
    "StateDecodeError",
    "UpdateFeeCommand",
    "WatchFunding",
    "deserialize_state",
    "parse_message",
    "pending_incoming_htlcs",
    "serialize_state",
    "signer_state_for",
    "summarize",
]
