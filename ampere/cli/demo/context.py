"""What every scene of the demo shares: the chain, the cast, the narrator, and verdict bookkeeping."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.chain.embedded import EmbeddedChain
from ampere.chain.errors import BroadcastError, RejectReason
from ampere.channel.transactions import CommitmentTransaction, OutputKind
from ampere.cli.demo.channel_kit import SINK_SCRIPT, Party
from ampere.cli.demo.narrator import Narrator

# The seed's two-way story names them so.
ALICE_NAME = "张三 (Alice)"
BOB_NAME = "李四 (Bob)"


@dataclass
class DemoContext:
    chain: EmbeddedChain
    narrator: Narrator
    alice: Party
    bob: Party
    to_self_delay: int
    feerate_per_kw: int
    # Channels get distinct key sets; each chapter takes the next index.
    next_channel_index: int = 0
    wallets_funded: bool = field(default=False)

    @classmethod
    def create(
        cls, chain: EmbeddedChain, narrator: Narrator, to_self_delay: int, feerate_per_kw: int
    ) -> DemoContext:
        alice = Party(ALICE_NAME, sha256(b"ampere demo: alice"))
        bob = Party(BOB_NAME, sha256(b"ampere demo: bob"))
        return cls(chain, narrator, alice, bob, to_self_delay, feerate_per_kw)

    def channel_index(self) -> int:
        index = self.next_channel_index
        self.next_channel_index += 1
        return index

    # --- the chain ---------------------------------------------------------------------------------------
    @property
    def tip(self) -> int:
        return self.chain.tip_height()

    def mine(self, count: int, why: str = "") -> None:
        if count <= 0:
            return
        self.chain.generate(count, SINK_SCRIPT)
        suffix = f" ({why})" if why else ""
        if count == 1:
            self.narrator.detail(f"block {self.tip} mined{suffix}")
        else:
            self.narrator.detail(f"{count} blocks mined, tip now {self.tip}{suffix}")

    def mine_to(self, height: int, why: str = "") -> None:
        if height < self.tip:
            raise RuntimeError(f"the story needs height {height} but the tip is already {self.tip}")
        self.mine(height - self.tip, why)

    def submit(
        self, what: str, tx: Transaction, expect: RejectReason | None = None, *, show_txid: bool = True
    ) -> bool:
        """Broadcast `tx` and narrate the chain's verdict; `expect` is the reason the story
        expects it to be refused for (None: it should be accepted). Returns whether it was accepted."""
        if show_txid:
            self.narrator.detail(f"txid {tx.txid_hex}  ({tx.vsize} vB)")
        try:
            self.chain.submit(tx)
        except BroadcastError as error:
            self.narrator.verdict(what, False, error.detail, as_expected=error.reason is expect)
            return False
        self.narrator.verdict(what, True, as_expected=expect is None)
        return True

    def test_accept(self, what: str, tx: Transaction, expect: RejectReason | None = None) -> bool:
        """Ask the chain whether it would take `tx` now (bitcoind's `testmempoolaccept`) without
        broadcasting it; narrated and recorded as `submit` does."""
        self.narrator.detail(f"txid {tx.txid_hex}  ({tx.vsize} vB), tested only: not broadcast")
        try:
            self.chain.test_accept(tx)
        except BroadcastError as error:
            self.narrator.verdict(what, False, error.detail, as_expected=error.reason is expect)
            return False
        self.narrator.verdict(what, True, as_expected=expect is None)
        return True

    def mined_in(self, txs: Sequence[Transaction]) -> bool:
        """Mine one block and check it confirmed every one of `txs`."""
        self.mine(1)
        height = self.tip
        return all(self.chain.tx_status(tx.txid).block_height == height for tx in txs)

    # --- money --------------------------------------------------------------------------------------------
    def fee_of(self, tx: Transaction) -> int:
        value_in = 0
        for txin in tx.inputs:
            found = self.chain.get_transaction(txin.prevout.txid)
            if found is None:
                raise RuntimeError(f"input {txin.prevout} of {tx.txid_hex} is unknown to the chain")
            value_in += found[0].outputs[txin.prevout.vout].value
        return value_in - tx.total_output_value()

    def describe_commitment(
        self, commitment: CommitmentTransaction, names: Callable[[OutputKind], str]
    ) -> None:
        for output in commitment.outputs:
            label = names(output.kind)
            if output.htlc is not None:
                label += f", HTLC {output.htlc.amount_msat // 1000:,} sat, expiry {output.htlc.cltv_expiry}"
            self.narrator.detail(f"output {output.index}: {output.amount_sat:>9,} sat  {label}")
        self.narrator.detail(f"fee: {commitment.fee_sat:,} sat")

    def tally(self, root: OutPoint, root_sat: int, txs: Sequence[Transaction]) -> dict[OutPoint, int]:
        """Narrate where the money of `root` went through `txs` and check that it adds up exactly:
        final outputs + fees = the root's amount + any wallet inputs added on the way."""
        ours = {tx.txid for tx in txs}
        spent = {txin.prevout for tx in txs for txin in tx.inputs}
        fees = external = 0
        final: dict[OutPoint, int] = {}
        for tx in txs:
            fees += self.fee_of(tx)
            for txin in tx.inputs:
                if txin.prevout != root and txin.prevout.txid not in ours:
                    found = self.chain.get_transaction(txin.prevout.txid)
                    assert found is not None  # fee_of has just looked it up
                    external += found[0].outputs[txin.prevout.vout].value
            for vout, txout in enumerate(tx.outputs):
                if OutPoint(tx.txid, vout) not in spent:
                    final[OutPoint(tx.txid, vout)] = txout.value
        total = sum(final.values())
        extra = f" + {external:,} sat of wallet inputs" if external else ""
        self.narrator.check(
            f"final outputs {total:,} sat + fees {fees:,} sat = {total + fees:,} sat "
            f"= the channel's {root_sat:,} sat{extra}",
            total + fees == root_sat + external,
        )
        unspent = all(self.chain.get_txout(outpoint, include_mempool=False) is not None for outpoint in final)
        self.narrator.check("every final output is confirmed and unspent", unspent)
        return final
