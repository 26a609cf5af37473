"""The group committer writes a channel state and what belongs with it (revocation records, offered-HTLC
outcomes) in one transaction: all of it is durable together, or none of it is."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from ampere.channel.twoway import PersistState
from ampere.channel.twoway.actions import HtlcFailed, HtlcFulfilled
from ampere.node.channel_persist import GroupCommitter
from ampere.store import StaleRevisionError, open_store
from ampere.store.htlc_outcomes import HtlcOutcomeRepository
from ampere.store.repositories import ChannelStateRepository
from tests.channel.twoway.harness import open_pair

PREIMAGE = b"\x07" * 32
PAYMENT_HASH = hashlib.sha256(PREIMAGE).digest()


def test_state_and_outcomes_are_durable_together_or_not_at_all(tmp_path: Path) -> None:
    state = open_pair(funding_sat=500_000).alice.state
    channel_id = state.channel_id
    fulfilled = HtlcFulfilled(3, PAYMENT_HASH, PREIMAGE)
    failed = HtlcFailed(4, hashlib.sha256(b"other").digest(), b"\x00" * 32)
    store = open_store(tmp_path / "node.sqlite")

    async def run() -> None:
        committer = GroupCommitter(store)
        try:
            await committer.submit(channel_id, PersistState(7, state), (), (fulfilled,))
            # A stale revision is refused by the store: the outcome that came with it is not kept either.
            with pytest.raises(StaleRevisionError):
                await committer.submit(channel_id, PersistState(6, state), (), (failed,))
            # Two states asked for in one loop turn share one transaction, outcomes of both included.
            first = committer.submit(channel_id, PersistState(8, state), (), ())
            second = committer.submit(channel_id, PersistState(9, state), (), (failed,))
            before = committer.transactions
            await asyncio.gather(first, second)
            assert committer.transactions == before + 1
        finally:
            await committer.close()

    asyncio.run(run())
    stored = ChannelStateRepository(store).get_latest(channel_id)
    assert stored is not None and stored.revision == 9
    log = HtlcOutcomeRepository(store)
    assert [o.outcome for o in log.for_payment(PAYMENT_HASH)] == [fulfilled]
    assert [o.outcome for o in log.for_payment(failed.payment_hash)] == [failed]
    store.close()


def test_a_refused_state_leaves_no_outcome_behind(tmp_path: Path) -> None:
    state = open_pair(funding_sat=500_000).alice.state
    store = open_store(tmp_path / "node.sqlite")
    ChannelStateRepository(store).put_state(state.channel_id, 10, b"newer state")

    async def run() -> None:
        committer = GroupCommitter(store)
        try:
            with pytest.raises(StaleRevisionError):
                await committer.submit(
                    state.channel_id, PersistState(5, state), (), (HtlcFulfilled(1, PAYMENT_HASH, PREIMAGE),)
                )
        finally:
            await committer.close()

    asyncio.run(run())
    assert HtlcOutcomeRepository(store).for_payment(PAYMENT_HASH) == []
    store.close()
