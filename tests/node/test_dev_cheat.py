"""Developer mode and `dev_cheat`, in two in-process nodes on one embedded chain (real TCP and SQLite).

The method is called through the node's JSON-RPC processor, as a client would: served only with
`developer`, it broadcasts one of our kept commitments; the chain (the kernel) takes a revoked one as
the valid transaction it is, and the peer punishes it while our node stays out of the way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ampere.api.jsonrpc import JsonRpcProcessor
from ampere.api.service import build_registry
from ampere.bitcoin.network import Network
from ampere.bitcoin.tx import Transaction
from ampere.chain.embedded import EmbeddedChain, EmbeddedChainBackend
from ampere.channel.transactions.commitment import commitment_number_from_tx
from ampere.channel.twoway import ChannelConfig
from ampere.channel.twoway.ledger import obscuring_factor
from ampere.channel.twoway.state import Phase
from ampere.node.channel_service import ChannelService
from ampere.node.commands import Permission
from ampere.node.config import NodeConfig
from ampere.node.dev_commitments import KeptCommitmentRepository
from ampere.node.node import ChainConnection, Node
from ampere.onchain import OutputPath, OutputStatus
from ampere.store import open_store

from .channel_helpers import Member, mine, offer, open_channel, preimage, wait_until
from .helpers import async_test, fast_config

DELAY = 10
CAPACITY_SAT = 2_000_000
PUSH_MSAT = 1_000_000_000
PAYMENTS_MSAT = (100_000_000, 200_000_000, 200_000_000)  # 500 000 sat from Alice to Bob
MAX_CLAIM_FEE_SAT = 2_000


async def _no_close() -> None:
    return None


class DevMember(Member):
    """A `Member` whose node runs with `developer` as `ampere node --developer` does."""

    def __init__(self, name: str, root: Path, chain: EmbeddedChain, *, developer: bool) -> None:
        super().__init__(name, root, chain, ChannelConfig(to_self_delay=DELAY))
        self.developer = developer

    async def start(self) -> Node:
        config = NodeConfig(
            datadir=self.datadir, listen=("127.0.0.1", 0), poll_interval=0.05, developer=self.developer
        )
        connection = ChainConnection(EmbeddedChainBackend(self.chain), Network.REGTEST, close=_no_close)
        node = Node(config, self.keys, open_store(config.db_url), connection, 0, fast_config())
        self.channels = ChannelService(self.config)
        node.add_service(self.channels)
        await node.start()
        self.listener.service = self.channels
        self.channels.add_htlc_listener(self.listener)
        self.node = node
        return node

    async def call(self, method: str, params: Any) -> dict[str, Any]:
        """One JSON-RPC call with the admin token's permission; the reply document."""
        processor = JsonRpcProcessor(build_registry(self.running))
        request = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        reply = await processor.handle(json.dumps(request).encode(), Permission.ADMIN)
        assert reply.body is not None
        document: dict[str, Any] = json.loads(reply.body)
        return document


@asynccontextmanager
async def nodes(
    tmp_path: Path, *, developer: bool = True
) -> AsyncIterator[tuple[EmbeddedChain, DevMember, DevMember]]:
    chain = EmbeddedChain(tmp_path / "chain")
    alice = DevMember("alice", tmp_path, chain, developer=developer)
    bob = DevMember("bob", tmp_path, chain, developer=developer)
    try:
        await alice.start()
        await bob.start()
        yield chain, alice, bob
    finally:
        await alice.stop()
        await bob.stop()
        chain.close()


async def _pay_bob(alice: DevMember, bob: DevMember, channel_id: bytes, tip: int) -> None:
    for n, amount in enumerate(PAYMENTS_MSAT):
        secret = preimage(n)
        bob.listener.preimages[hashlib.sha256(secret).digest()] = secret
        await offer(alice, channel_id, amount, n, tip + 40)
        await wait_until(lambda n=n: len(alice.listener.fulfilled) > n, f"payment {n}")  # type: ignore[misc]
    await wait_until(
        lambda: (
            not bob.channels.list_channels()[0].summary.pending_htlcs
            and not alice.channels.list_channels()[0].summary.pending_htlcs
        ),
        "the payments to settle",
    )


@async_test
async def test_dev_cheat_broadcasts_a_revoked_commitment_and_bob_punishes_it(tmp_path: Path) -> None:
    async with nodes(tmp_path) as (chain, alice, bob):
        assert alice.channels.config.keep_signed_commitments
        channel_id = await open_channel(alice, bob, CAPACITY_SAT, PUSH_MSAT)
        await _pay_bob(alice, bob, channel_id, chain.tip_height())
        managed = alice.channel(channel_id)
        ledger = managed.state.ledger
        assert ledger is not None and ledger.local_commitment_number >= 2 * len(PAYMENTS_MSAT)
        kept = KeptCommitmentRepository(alice.running.store)
        assert kept.numbers(channel_id) == list(range(ledger.local_commitment_number + 1))

        # Errors first: each is a JSON-RPC application error, and nothing reaches the chain.
        unknown = await alice.call("dev_cheat", {"channel": "ab" * 32, "commitment_number": 0})
        assert unknown["error"]["code"] == -32004 and "unknown channel" in unknown["error"]["message"]
        missing = await alice.call("dev_cheat", [channel_id.hex(), 999])
        assert missing["error"]["code"] == -32004
        assert "no kept commitment 999" in missing["error"]["message"]
        assert managed.state.phase is Phase.NORMAL

        reply = await alice.call("dev_cheat", [channel_id.hex(), 0])
        txid = bytes.fromhex(reply["result"]["txid"])[::-1]
        assert reply["result"]["commitment_number"] == 0
        cheat = chain.mempool_tx(txid)
        assert isinstance(cheat, Transaction), "the kernel-validated mempool did not take the commitment"
        assert cheat.inputs[0].prevout == managed.state.funding_outpoint
        assert commitment_number_from_tx(cheat, obscuring_factor(managed.state)) == 0
        # Alice's side no longer uses the channel, and puts nothing of its own on chain.
        assert managed.state.phase is Phase.FORCE_CLOSING
        again = await alice.call("dev_cheat", [channel_id.hex(), 1])
        assert again["error"]["code"] == -32020 and "force_closing" in again["error"]["message"]

        # A restart before the cheat confirms does not make Alice's node go to chain against it.
        await alice.stop()
        await alice.start()
        assert alice.channel(channel_id).state.phase is Phase.FORCE_CLOSING
        funding = managed.state.funding_outpoint
        spending_funding = [
            mempool_txid
            for mempool_txid in chain.mempool_txids()
            if any(txin.prevout == funding for txin in chain.mempool_tx(mempool_txid).inputs)  # type: ignore[union-attr]
        ]
        assert spending_funding == [txid]
        breach_height = await mine(chain, 1, alice, bob)
        confirmed = chain.get_transaction(txid)
        assert confirmed is not None and confirmed[1] is not None
        resolver = await wait_until(lambda: bob.channels.onchain.resolver(channel_id), "bob's resolver")
        assert resolver.close_type.value == "breach"
        justice = await wait_until(lambda: [c for c in resolver.claims if c.justice], "the justice tx")
        assert all(chain.mempool_tx(claim.tx.txid) is not None for claim in justice)
        justice_height = await mine(chain, 1, alice, bob)
        assert justice_height < breach_height + DELAY
        await mine(chain, 6, alice, bob)
        await wait_until(lambda: bob.channels.onchain.resolver(channel_id).resolved, "bob to finish")  # type: ignore[union-attr]

        # Bob has the whole channel less the commitment's and his claims' fees; Alice nothing.
        bob_resolver = bob.channels.onchain.resolver(channel_id)
        assert bob_resolver is not None
        assert all(out.status is OutputStatus.SWEPT and out.by_us for out in bob_resolver.outputs)
        assert OutputPath.JUSTICE in {out.path for out in bob_resolver.outputs}
        commitment_fee = CAPACITY_SAT - cheat.total_output_value()
        gained = sum(bob.wallet_coins().values())
        assert CAPACITY_SAT - commitment_fee - 2 * MAX_CLAIM_FEE_SAT < gained < CAPACITY_SAT - commitment_fee
        alice_coins = set(alice.wallet_coins())
        assert not any(coin.txid in {cheat.txid, *(c.tx.txid for c in justice)} for coin in alice_coins)
        alice_resolver = alice.channels.onchain.resolver(channel_id)
        assert alice_resolver is not None and not any(out.by_us for out in alice_resolver.outputs)
        assert alice.channel(channel_id).state.phase in (Phase.FORCE_CLOSING, Phase.CLOSED)
        # Alice's listclosed: her own revoked commitment, its to_local taken by Bob's justice transaction.
        listed = (await alice.call("listclosed", {}))["result"]["channels"]
        entry = next(e for e in listed if e["channel_id"] == channel_id.hex())
        assert entry["close_type"] == "local_force" and entry["revoked"] is True
        assert entry["closing_txid"] == cheat.txid_hex
        justice_txids = {claim.tx.txid_hex for claim in justice}
        assert [(o["path"], o["status"], o["swept_by"]) for o in entry["outputs"]] == [
            ("to_local", "swept", "peer")
        ]
        assert entry["outputs"][0]["sweep_txid"] in justice_txids


@async_test
async def test_dev_cheat_is_unknown_without_developer_mode(tmp_path: Path) -> None:
    async with nodes(tmp_path, developer=False) as (_chain, alice, bob):
        assert not alice.channels.config.keep_signed_commitments
        channel_id = await open_channel(alice, bob, 1_000_000, 0)
        reply = await alice.call("dev_cheat", [channel_id.hex(), 0])
        assert reply["error"]["code"] == -32601
        assert not KeptCommitmentRepository(alice.running.store).numbers(channel_id)
        assert alice.channel(channel_id).state.phase is Phase.NORMAL
