"""The justice transaction's fee in a node: while blocks come without it, each one brings a replacement
paying more (BIP125, judged by the real mempool), faster as the cheater's `to_self_delay` runs out, and
the node broadcasts every replacement. Blocks are mined without the mempool's transactions (as a miner
ignoring a low fee would), then normally: the last replacement confirms before the cheater could take its
`to_local`, and it still takes everything.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from pathlib import Path

from ampere.bitcoin.block import assemble_block
from ampere.chain.embedded import EmbeddedChain
from ampere.channel.twoway.common import Context, signed_local_commitment
from ampere.onchain import ChannelResolver, ClaimInFlight, OutputPath, OutputStatus
from ampere.store.revocation_log import RevocationLogRepository
from tests.chain.helpers import SINK_SCRIPT

from .channel_helpers import followed, mine, offer, open_channel, preimage, wait_until
from .helpers import async_test
from .test_onchain_service import CAPACITY_SAT, DELAY, PUSH_MSAT, pair, resolver_of, swept_into_wallet


def mine_without_mempool(chain: EmbeddedChain) -> None:
    """One block holding only its coinbase, whatever the mempool offers."""
    tip = chain.tip_height()
    tip_hash = chain.tip_hash()
    recent = max(chain.block_time(height) for height in range(max(0, tip - 10), tip + 1))
    block = assemble_block(tip_hash, tip + 1, max(int(time.time()), recent + 1), SINK_SCRIPT, [], 0)
    verdict = chain.submit_block(block)
    assert verdict.valid, verdict.describe()
    assert chain.tip_height() == tip + 1


def pending_justice(resolver: ChannelResolver) -> ClaimInFlight:
    [claim] = [c for c in resolver.claims if c.justice and c.confirmed_height is None]
    return claim


@async_test
async def test_an_unconfirmed_justice_is_replaced_each_block_and_confirms_before_the_deadline(
    tmp_path: Path,
) -> None:
    async with pair(tmp_path) as (chain, alice, bob):
        channel_id = await open_channel(alice, bob, CAPACITY_SAT, PUSH_MSAT)
        managed = alice.channel(channel_id)
        cheat = signed_local_commitment(
            managed.state, Context(managed.channel.signer, managed.channel.config)
        )
        bob.listener.preimages[hashlib.sha256(preimage(3)).digest()] = preimage(3)
        await offer(alice, channel_id, 300_000_000, 3, chain.tip_height() + 40)
        await wait_until(lambda: alice.listener.fulfilled, "the payment to be fulfilled")
        revocations = RevocationLogRepository(bob.running.store)
        await wait_until(lambda: revocations.get(channel_id, 0) is not None, "bob to log the revocation")
        await alice.stop()

        chain.submit(cheat)
        breach_height = await mine(chain, 1, bob)
        resolver = await wait_until(lambda: bob.channels.onchain.resolver(channel_id), "bob's resolver")
        assert resolver.close_type.value == "breach"
        first = pending_justice(resolver)
        assert chain.mempool_tx(first.tx.txid) is not None
        # Alice could spend her to_local in block breach_height + DELAY: the justice must be in before.
        fees, feerates = [first.fee_sat], [first.feerate_per_kw]
        previous = first
        while chain.tip_height() < breach_height + DELAY - 3:
            mine_without_mempool(chain)
            await followed(chain, bob)
            bump = pending_justice(resolver_of(bob, channel_id))
            assert bump.tx.txid != previous.tx.txid and bump.label.startswith("justice (fee bump)")
            assert {i.prevout for i in bump.tx.inputs} == {i.prevout for i in first.tx.inputs}
            assert bump.fee_sat > previous.fee_sat and bump.feerate_per_kw > previous.feerate_per_kw
            # The node broadcast the replacement, and the mempool dropped what it replaced.
            assert chain.mempool_tx(bump.tx.txid) is not None
            assert chain.mempool_tx(previous.tx.txid) is None
            rejections = bob.channels.onchain.broadcaster.rejections
            assert not [r for r in rejections if r.label.startswith("justice")], rejections
            fees.append(bump.fee_sat)
            feerates.append(bump.feerate_per_kw)
            previous = bump
        assert len(fees) == DELAY - 2
        # Two blocks from the deadline the feerate doubles rather than growing by a quarter.
        assert feerates[-1] == 2 * feerates[-2]
        assert all(later < 2 * earlier for earlier, later in itertools.pairwise(feerates[:-1]))
        assert fees[-1] > 4 * fees[0]

        confirmed_at = await mine(chain, 1, bob)
        assert confirmed_at < breach_height + DELAY
        assert chain.tx_status(previous.tx.txid).block_height == confirmed_at
        resolver = resolver_of(bob, channel_id)
        justice_outputs = [o for o in resolver.outputs if o.path is OutputPath.JUSTICE]
        assert justice_outputs and all(
            o.status is OutputStatus.SWEPT and o.by_us and o.sweep_txid == previous.tx.txid
            for o in justice_outputs
        )

        # Bob ends with the whole channel less the commitment's fee and what the claims paid.
        await mine(chain, 6, bob)
        await wait_until(lambda: resolver_of(bob, channel_id).resolved, "bob's resolver to finish")
        gained = sum(bob.wallet_coins().values())
        assert gained == swept_into_wallet(bob, resolver_of(bob, channel_id))
        to_remote_fee = sum(
            c.fee_sat for c in resolver_of(bob, channel_id).claims if not c.justice and c.confirmed_height
        )
        assert gained == cheat.total_output_value() - previous.fee_sat - to_remote_fee
