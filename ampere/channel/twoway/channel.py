"""`Channel`: the object the node's peer layer drives — one state, one signer, `handle(event)`.

It is a thin shell around the pure `transitions.step`: it keeps the current state and turns a
`ChannelError` into the reaction its response calls for, so callers only ever see actions.
"""

from __future__ import annotations

from dataclasses import replace

from ampere.channel.signer import ChannelSigner, SignerState
from ampere.channel.twoway.actions import Action, Error, HtlcReceived, SendMessage
from ampere.channel.twoway.common import Context
from ampere.channel.twoway.config import ChannelConfig
from ampere.channel.twoway.errors import ChannelError, CommandError, ErrorResponse
from ampere.channel.twoway.events import Event, FailChannel
from ampere.channel.twoway.ledger import irrevocable
from ampere.channel.twoway.messages import WarningMessage, parse_message
from ampere.channel.twoway.persistence import deserialize_state
from ampere.channel.twoway.reestablish import disconnect
from ampere.channel.twoway.state import PRE_FUNDING_PHASES, ChannelState, Phase
from ampere.channel.twoway.transitions import step
from ampere.wire import Message, UnknownMessage
from ampere.wire.features import Features

__all__ = ["Channel", "pending_incoming_htlcs", "signer_state_for"]


def signer_state_for(state: ChannelState) -> SignerState:
    """The signer counters a persisted channel implies (to restore a restarted signer)."""
    ledger = state.ledger
    if ledger is None:
        return SignerState()
    remote = ledger.remote_commitment_number
    return SignerState(
        holder_commitment_number=ledger.local_commitment_number,
        counterparty_signed=remote,
        counterparty_revoked=remote - 2 if ledger.awaiting_revocation else remote - 1,
    )


class Channel:
    """One two-way channel. Not thread-safe; feed it one event at a time."""

    __slots__ = ("_state", "config", "feerate_estimate_per_kw", "signer")

    def __init__(
        self,
        state: ChannelState,
        signer: ChannelSigner,
        config: ChannelConfig | None = None,
        feerate_estimate_per_kw: int | None = None,
    ) -> None:
        self._state = state
        self.signer = signer
        self.config = config or ChannelConfig()
        # The node's current estimate, against which the peer's feerates are judged.
        self.feerate_estimate_per_kw = feerate_estimate_per_kw

    @classmethod
    def new(
        cls,
        signer: ChannelSigner,
        *,
        chain_hash: bytes,
        local_features: Features,
        remote_features: Features,
        shutdown_script: bytes,
        config: ChannelConfig | None = None,
        feerate_estimate_per_kw: int | None = None,
    ) -> Channel:
        """A channel before opening: give it `OpenChannelCommand` to open one, or the peer's
        `open_channel` to accept one."""
        state = ChannelState.initial(chain_hash, local_features, remote_features, shutdown_script)
        return cls(state, signer, config, feerate_estimate_per_kw)

    @classmethod
    def restore(
        cls,
        data: bytes,
        signer: ChannelSigner,
        config: ChannelConfig | None = None,
        feerate_estimate_per_kw: int | None = None,
    ) -> Channel:
        """A channel from its persisted bytes, as after a restart: disconnected, with the peer's
        unsigned updates forgotten, and the signer's counters brought up to date. A channel that
        was still negotiating its opening is forgotten (nothing of it is on chain)."""
        state = disconnect(deserialize_state(data))
        if state.phase in PRE_FUNDING_PHASES:
            state = replace(state, phase=Phase.ABORTED, failure="restarted while opening")
        signer.restore(signer_state_for(state))
        return cls(state, signer, config, feerate_estimate_per_kw)

    @property
    def state(self) -> ChannelState:
        return self._state

    def _context(self) -> Context:
        return Context(self.signer, self.config, self.feerate_estimate_per_kw)

    def handle(self, event: Event) -> list[Action]:
        try:
            result = step(self._state, event, self._context())
        except ChannelError as error:
            return self._react(error)
        self._state = result.state
        return list(result.actions)

    def receive(self, message: Message | UnknownMessage) -> list[Action]:
        """Handle a decoded wire message addressed to this channel."""
        try:
            event = parse_message(message)
        except ChannelError as error:
            return self._react(error)
        return self.handle(event)

    def _react(self, error: ChannelError) -> list[Action]:
        response = error.response
        if response is ErrorResponse.CLOSE and not isinstance(error, CommandError):
            try:
                result = step(self._state, FailChannel(error.reason, error.channel_id), self._context())
            except ChannelError as failure:
                # Failing cannot fail for lack of anything but keys we lost; report both.
                return [Error(ErrorResponse.CLOSE, f"{error.reason}; then {failure.reason}")]
            self._state = result.state
            return [*result.actions, Error(response, error.reason)]
        actions: list[Action] = []
        if response in (ErrorResponse.WARN, ErrorResponse.DISCONNECT) and self._state.is_live:
            actions.append(
                SendMessage(WarningMessage(self._state.wire_channel_id, error.reason.encode()[:1000]))
            )
        actions.append(Error(response, error.reason))
        return actions


def pending_incoming_htlcs(state: ChannelState) -> tuple[HtlcReceived, ...]:
    """Incoming HTLCs that are irrevocably committed and not yet being removed: what the node
    must still fulfill, fail or forward (after a restart, `HtlcReceived` may have been lost)."""
    ledger = state.ledger
    if ledger is None:
        return ()
    return tuple(
        HtlcReceived(entry.htlc_id, entry.amount_msat, entry.payment_hash, entry.cltv_expiry, entry.onion)
        for entry in ledger.htlcs
        if not entry.offered and entry.removal is None and irrevocable(entry.add, ledger)
    )
