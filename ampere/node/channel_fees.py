"""The opener's side of BOLT 2 `update_fee`: keep each commitment's feerate near the chain's estimate.

After every block (and when a channel comes back from `channel_reestablish`) each channel we opened
that is `normal` with its peer connected is compared with the target feerate; when the target has
moved far enough from the feerate the channel's next commitment carries, the channel is given an
`UpdateFeeCommand` and signs it at once (the ordinary command path: the state with the update is
stored before `update_fee` and `commitment_signed` leave). The peer's `update_fee` is judged by the
channel core, never here; a node that did not open a channel never proposes one.

The policy (`CommitmentFeePolicy`, documented in docs/node.md):

* target: the chain's estimate for confirmation within 6 blocks, at least 253 sat/kw (the floor
  every implementation accepts) and at most `ChannelConfig.max_feerate_per_kw`;
* anchor channels: at most 2,500 sat/kw (10 sat/vB), since the commitment only has to enter the
  mempool and a CPFP through the anchor buys the rest, but never under half the estimate, because the
  peer judges our feerate against its own estimate (Ampere refuses one under a quarter of it);
* a new feerate is proposed only when it differs by more than 25 % from the current one, so ordinary
  noise in the estimate costs no signatures.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ampere.bitcoin.tx import Transaction
from ampere.chain.interface import FEERATE_FLOOR_PER_KW, BlockInfo
from ampere.channel.twoway import Error, Phase, UpdateFeeCommand
from ampere.channel.twoway.state import Ledger
from ampere.node.channel_managed import ManagedChannel

if TYPE_CHECKING:
    from ampere.node.channel_service import ChannelService

__all__ = ["CommitmentFeePolicy", "CommitmentFeeUpdater", "latest_feerate"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CommitmentFeePolicy:
    """Which commitment feerate the opener asks for, and when it is worth an `update_fee`."""

    update_threshold_percent: int = 25
    anchor_max_feerate_per_kw: int = 2_500
    anchor_min_estimate_percent: int = 50
    # Our channels' own bound (`ChannelConfig.max_feerate_per_kw`): the core refuses to send more.
    max_feerate_per_kw: int = 1_000_000

    def target(self, estimate_per_kw: int, *, anchors: bool) -> int:
        target = max(FEERATE_FLOOR_PER_KW, estimate_per_kw)
        if anchors:
            # Rounded up: the peer's lower bound is a fraction of its estimate too.
            near_estimate = -(-target * self.anchor_min_estimate_percent // 100)
            target = min(target, max(self.anchor_max_feerate_per_kw, near_estimate))
        return max(FEERATE_FLOOR_PER_KW, min(target, self.max_feerate_per_kw))

    def wants_update(self, current_per_kw: int, target_per_kw: int) -> bool:
        return abs(target_per_kw - current_per_kw) * 100 > current_per_kw * self.update_threshold_percent


def latest_feerate(ledger: Ledger) -> int:
    """The feerate our newest `update_fee` set (signed or not), else the committed one: what the
    channel's next commitments carry once every update in flight is through."""
    for update in reversed(ledger.fee_updates):
        if update.from_us:
            return update.feerate_per_kw
    return ledger.feerate_per_kw


class CommitmentFeeUpdater:
    """A chain hook of the channel service (see `ChainHook`): proposes `update_fee` where it is due."""

    def __init__(self, service: ChannelService, policy: CommitmentFeePolicy | None = None) -> None:
        self._service = service
        self.policy = policy or CommitmentFeePolicy(max_feerate_per_kw=service.config.max_feerate_per_kw)
        # The feerate each channel last refused (it could not afford it): not asked again until the
        # target moves, so a poor opener does not log a refusal every block.
        self._refused: dict[ManagedChannel, int] = {}

    def target_for(self, managed: ManagedChannel) -> int:
        anchors = managed.state.channel_type.commitment_format.has_anchors
        return self.policy.target(self._service.watcher.feerate_per_kw, anchors=anchors)

    def maybe_update(self, managed: ManagedChannel) -> int | None:
        """Propose and sign a new feerate for `managed` if it is due; returns the feerate proposed."""
        state = managed.state
        ledger = state.ledger
        if (
            ledger is None
            or not state.is_opener
            or state.phase is not Phase.NORMAL
            or not self._service.is_usable(managed)
        ):
            return None
        target = self.target_for(managed)
        current = latest_feerate(ledger)
        if not self.policy.wants_update(current, target) or self._refused.get(managed) == target:
            return None
        actions = managed.handle(UpdateFeeCommand(target))
        refusal = next((action for action in actions if isinstance(action, Error)), None)
        if refusal is not None:
            self._refused[managed] = target
            log.info(
                "channel %s: keeping feerate %d sat/kw, %d refused: %s",
                managed.channel_id.hex(),
                current,
                target,
                refusal.reason,
            )
            return None
        self._refused.pop(managed, None)
        log.info("channel %s: update_fee %d -> %d sat/kw", managed.channel_id.hex(), current, target)
        self._service.after_event(managed)
        self._service.schedule_sign(managed)
        return target

    def update_all(self) -> None:
        for managed in self._service.live_channels():
            self.maybe_update(managed)

    # --- ChainHook ----------------------------------------------------------------------------------
    def funding_spent(self, managed: ManagedChannel, tx: Transaction) -> None:
        self._refused.pop(managed, None)

    async def block_processed(self, block: BlockInfo) -> None:
        # The watcher refreshed the estimate just before this block's channel events.
        self.update_all()

    async def block_disconnected(self, height: int) -> None:
        return None
