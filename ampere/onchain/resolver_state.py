"""The state a `ChannelResolver` keeps (all of it persisted by `resolver_codec`), and the helpers both
of its halves use: tracking the chain (`resolver_chain`) and deciding claims (`resolver_claims`)."""

from __future__ import annotations

from collections.abc import Iterable

from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.channel.twoway.actions import CloseType
from ampere.onchain.events import BroadcastTx, FundAndBroadcast, ResolverAction
from ampere.onchain.flight import ClaimInFlight
from ampere.onchain.outputs import TrackedOutput

__all__ = ["DEFAULT_RESOLVE_DEPTH", "REBROADCAST_AFTER_BLOCKS", "ResolverState"]

DEFAULT_RESOLVE_DEPTH = 6
REBROADCAST_AFTER_BLOCKS = 6


class ResolverState:
    """The fields of a resolver; see `ChannelResolver`."""

    __slots__ = (
        "channel_id",
        "claims",
        "close_type",
        "closing_fee_sat",
        "closing_height",
        "closing_tx",
        "cpfp_height",
        "destination",
        "justice_delay",
        "outputs",
        "preimages",
        "resolve_depth",
        "resolved",
        "revocable_script",
        "revocation_secret",
        "revoked_local",
        "tip",
    )

    def __init__(
        self,
        channel_id: bytes,
        close_type: CloseType,
        closing_tx: Transaction,
        destination: bytes,
        outputs: Iterable[TrackedOutput],
        *,
        tip: int,
        preimages: dict[bytes, bytes] | None = None,
        revocable_script: bytes = b"",
        revocation_secret: bytes = b"",
        justice_delay: int = 0,
        resolve_depth: int = DEFAULT_RESOLVE_DEPTH,
        closing_fee_sat: int = 0,
        revoked_local: bool = False,
    ) -> None:
        self.channel_id = channel_id
        self.close_type = close_type
        self.closing_tx = closing_tx
        self.closing_height: int | None = None
        self.destination = destination
        self.outputs: list[TrackedOutput] = list(outputs)
        self.claims: list[ClaimInFlight] = []
        self.preimages: dict[bytes, bytes] = dict(preimages or {})
        self.tip = tip
        self.resolved = False
        self.revocable_script = revocable_script
        self.revocation_secret = revocation_secret
        self.justice_delay = justice_delay
        self.resolve_depth = resolve_depth
        self.closing_fee_sat = closing_fee_sat
        self.cpfp_height: int | None = None
        # The closing transaction is one of our own revoked commitments: its outputs are the peer's
        # to take, and the resolution waits until each has gone (to the peer, or to us if it never came).
        self.revoked_local = revoked_local

    def _output_index(self, outpoint: OutPoint) -> int | None:
        for index, out in enumerate(self.outputs):
            if out.outpoint == outpoint:
                return index
        return None

    def _rebroadcast(self, claim: ClaimInFlight) -> ResolverAction:
        if claim.needs_funding:
            index = self._output_index(claim.inputs[0])
            if index is not None and self.outputs[index].stage is not None:
                out = self.outputs[index]
                assert out.stage is not None
                return FundAndBroadcast(
                    out.outpoint, out.stage, self.preimages.get(out.payment_hash), claim.label
                )
        return BroadcastTx(claim.tx, f"{claim.label} (again)")
