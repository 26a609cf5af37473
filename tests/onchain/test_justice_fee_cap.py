"""A justice transaction whose fee bumps outgrow what it claims: it is capped at everything above the
dust threshold (better the miners than the cheater), and once at the cap the transaction in flight is
kept, never forgotten, so the mempool always holds one and nothing is refused."""

from __future__ import annotations

from ampere.chain.embedded import EmbeddedChain
from ampere.channel.transactions.closing import dust_threshold_sat
from ampere.onchain.events import BlockConnected
from ampere.onchain.outputs import OutputPath, OutputStatus

from .harness import DELAY, Chain, open_on_chain, punish


def test_justice_fee_is_capped_by_what_it_claims_and_never_dropped(chain: EmbeddedChain) -> None:
    # Alice's revoked first state holds only about 13 000 sat: the doubling bumps soon ask for more.
    pair = open_on_chain(chain, 100_000, push_msat=85_000_000)
    first = pair.alice.persisted
    assert first is not None
    pair.pay(pair.alice, 5_000_000)
    pair.flush()
    shell, _, height = punish(chain, pair, first)
    [to_local] = [o for o in shell.resolver.outputs if o.path is OutputPath.JUSTICE]
    dust = dust_threshold_sat(shell.resolver.destination)

    fees: list[int] = []
    for late in range(1, DELAY + 2):
        # Blocks pass (as far as the resolver knows) without the justice transaction.
        shell.handle(BlockConnected(height + late))
        [pending] = [c for c in shell.resolver.claims if c.justice and c.confirmed_height is None]
        assert chain.mempool_tx(pending.tx.txid) is not None, f"no justice in the mempool {late} blocks on"
        assert pending.fee_sat == to_local.amount_sat - pending.tx.total_output_value()
        fees.append(pending.fee_sat)
    assert not shell.rejected, shell.rejected
    assert fees == sorted(fees)
    # It reached the cap: all but the dust threshold goes to the fee, and from then on it stays.
    assert fees[-1] == to_local.amount_sat - dust
    assert fees.index(fees[-1]) < DELAY - 1

    Chain(chain, shell).mine(1)
    [out] = [o for o in shell.resolver.outputs if o.path is OutputPath.JUSTICE]
    assert out.status is OutputStatus.SWEPT and out.by_us
