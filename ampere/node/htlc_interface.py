"""The seam between the node's two-way channels and its payments.

`ChannelOperations` is what the channel service offers: add an HTLC to a channel and settle the
HTLCs it received. `HtlcListener` is what the payment service implements to hear about HTLCs
arriving, and about the outcome of the HTLCs it offered. Neither side knows the other's class, so
payments can be tested against any channel service and a forwarding layer can sit in between later.

Ordering promises the channel service keeps:
- `htlc_received` is delivered only once the HTLC is irrevocably committed on both sides, and again
  after a restart for every such HTLC not yet settled (a listener must be idempotent).
- `htlc_fulfilled` / `htlc_failed` for an offered HTLC are delivered once the removal is durably
  stored; after a restart, outcomes not yet acknowledged are delivered again.
- `offered_htlcs(payment_hash)` answers, at any time, what became of the HTLCs offered for a hash:
  still in flight (off chain or on chain), fulfilled, or failed. The outcomes come from the outcome log
  (`ampere.store.htlc_outcomes`), written with the channel state that holds each removal, so they
  outlive the HTLC itself; the payment side forgets them once its own final record is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ampere.channel.twoway.actions import HtlcFailed, HtlcFulfilled, HtlcReceived
from ampere.errors import AmpereError

__all__ = [
    "ChannelOperations",
    "ChannelUnavailableError",
    "HtlcListener",
    "HtlcRefusedError",
    "OfferedHtlcReport",
    "UsableChannel",
]


class ChannelUnavailableError(AmpereError):
    """No such channel, or it is not in a state to carry a new HTLC (not normal, peer offline)."""


class HtlcRefusedError(AmpereError):
    """The channel refused to add the HTLC (over a limit, below the minimum, no balance);
    the message is the channel's reason."""


@dataclass(frozen=True, slots=True)
class UsableChannel:
    channel_id: bytes
    peer_id: bytes
    short_channel_id: int | None
    spendable_msat: int  # what one more outgoing HTLC may carry now
    receivable_msat: int


@dataclass(frozen=True, slots=True)
class OfferedHtlcReport:
    """What the channels know of the HTLCs offered for one payment hash. Nothing at all (no flight,
    no outcome) means no HTLC for it was ever durably offered, so the peer never received one."""

    in_flight: bool  # an HTLC for the hash is still offered, unresolved, off chain or on chain
    fulfilled: HtlcFulfilled | None = None  # the peer revealed the preimage (on any channel)
    failed: HtlcFailed | None = None  # an HTLC for the hash failed, irrevocably


class HtlcListener(Protocol):
    def htlc_arriving(self, channel_id: bytes, htlc_id: int, payment_hash: bytes, onion: bytes) -> None:
        """The peer's `update_add_htlc` was taken, not committed yet: a hint to start slow work early
        (peeling the onion) while the commitment dance goes on. Nothing may be decided on it."""
        ...

    async def htlc_received(self, channel_id: bytes, htlc: HtlcReceived) -> None: ...

    async def htlc_fulfilled(self, channel_id: bytes, outcome: HtlcFulfilled) -> None: ...

    async def htlc_failed(self, channel_id: bytes, outcome: HtlcFailed) -> None: ...


class ChannelOperations(Protocol):
    def usable_channels(self, peer_id: bytes | None = None) -> list[UsableChannel]:
        """Channels in `normal` state with a connected peer (all peers when `peer_id` is None)."""
        ...

    async def add_htlc(
        self, channel_id: bytes, amount_msat: int, payment_hash: bytes, cltv_expiry: int, onion: bytes
    ) -> int:
        """Offer an HTLC and get its id; the commitment is signed soon after (updates batch).
        Raises `ChannelUnavailableError` or `HtlcRefusedError`."""
        ...

    async def fulfill_htlc(self, channel_id: bytes, htlc_id: int, preimage: bytes) -> None: ...

    async def fail_htlc(self, channel_id: bytes, htlc_id: int, reason: bytes) -> None:
        """`reason` is the onion-encrypted failure for `update_fail_htlc`."""
        ...

    async def fail_malformed_htlc(
        self, channel_id: bytes, htlc_id: int, sha256_of_onion: bytes, failure_code: int
    ) -> None: ...

    def add_htlc_listener(self, listener: HtlcListener) -> None: ...

    def offered_htlcs(self, payment_hash: bytes) -> OfferedHtlcReport: ...
