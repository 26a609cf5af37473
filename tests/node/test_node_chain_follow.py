"""ChainFollower against a scripted chain: blocks in order, reorgs as undo then redo, mempool events."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from ampere.bitcoin.tx import OutPoint, Transaction, TxIn, TxOut
from ampere.chain.errors import NotFoundError
from ampere.chain.interface import BlockInfo, UnspentOutput
from ampere.node.chain_follow import ChainFollower


def _tx(tag: int) -> Transaction:
    return Transaction(inputs=(TxIn(OutPoint(bytes([tag % 256]) * 32, tag)),), outputs=(TxOut(tag, b"\x51"),))


@dataclass
class FakeChain:
    """A best chain of made-up blocks; `fork` replaces its top with a new branch."""

    blocks: list[BlockInfo] = field(default_factory=list)
    mempool: list[Transaction] = field(default_factory=list)
    salt: int = 0

    def __post_init__(self) -> None:
        self.extend(1)  # genesis

    def extend(self, count: int, txs: tuple[Transaction, ...] = ()) -> None:
        for _ in range(count):
            height = len(self.blocks)
            prev = self.blocks[-1].block_hash if self.blocks else bytes(32)
            block_hash = hashlib.sha256(prev + bytes([self.salt]) + height.to_bytes(4, "little")).digest()
            self.blocks.append(BlockInfo(height, block_hash, prev, 0, txs))
            txs = ()

    def fork(self, depth: int, new_blocks: int) -> None:
        del self.blocks[len(self.blocks) - depth :]
        self.salt += 1
        self.extend(new_blocks)

    async def tip_height(self) -> int:
        return len(self.blocks) - 1

    async def block_hash(self, height: int) -> bytes:
        if not 0 <= height < len(self.blocks):
            raise NotFoundError(str(height))
        return self.blocks[height].block_hash

    async def block_at(self, height: int) -> BlockInfo:
        if not 0 <= height < len(self.blocks):
            raise NotFoundError(str(height))
        return self.blocks[height]

    async def block_by_hash(self, block_hash: bytes) -> BlockInfo:
        for block in self.blocks:
            if block.block_hash == block_hash:
                return block
        raise NotFoundError(block_hash.hex())

    async def get_txout(self, outpoint: OutPoint, include_mempool: bool = True) -> UnspentOutput | None:
        return None

    async def mempool_transactions(self) -> tuple[Transaction, ...]:
        return tuple(self.mempool)


@dataclass
class Recorder:
    events: list[tuple[str, object]] = field(default_factory=list)
    chain: list[bytes] = field(default_factory=list)  # what the listener believes is the best chain

    async def block_connected(self, block: BlockInfo) -> None:
        assert not self.chain or block.prev_hash == self.chain[-1]
        self.chain.append(block.block_hash)
        self.events.append(("connected", block.height))

    async def block_disconnected(self, height: int, block_hash: bytes) -> None:
        assert self.chain[-1] == block_hash
        self.chain.pop()
        self.events.append(("disconnected", height))

    async def transaction_seen(self, tx: Transaction) -> None:
        self.events.append(("seen", tx.txid))

    async def transaction_dropped(self, txid: bytes) -> None:
        self.events.append(("dropped", txid))


def _follow(chain: FakeChain, start: int = 0) -> tuple[ChainFollower, Recorder]:
    follower = ChainFollower(chain, start)
    recorder = Recorder()
    follower.add_listener(recorder)
    return follower, recorder


def test_catch_up_then_new_blocks() -> None:
    async def scenario() -> None:
        chain = FakeChain()
        chain.extend(5)
        follower, recorder = _follow(chain, start=3)
        assert await follower.sync() == 5
        assert recorder.events == [("connected", 3), ("connected", 4), ("connected", 5)]
        chain.extend(2)
        await follower.sync()
        assert follower.height == 7 and recorder.events[-1] == ("connected", 7)

    asyncio.run(scenario())


def test_reorg_is_undone_from_the_tip_down_then_redone() -> None:
    async def scenario() -> None:
        chain = FakeChain()
        chain.extend(10)
        follower, recorder = _follow(chain)
        await follower.sync()
        recorder.events.clear()
        chain.fork(depth=3, new_blocks=4)
        await follower.sync()
        assert recorder.events == [
            ("disconnected", 10),
            ("disconnected", 9),
            ("disconnected", 8),
            ("connected", 8),
            ("connected", 9),
            ("connected", 10),
            ("connected", 11),
        ]
        assert recorder.chain == [block.block_hash for block in chain.blocks]
        assert follower.block_hash(11) == chain.blocks[11].block_hash

    asyncio.run(scenario())


def test_mempool_seen_once_mined_and_dropped() -> None:
    async def scenario() -> None:
        chain = FakeChain()
        follower, recorder = _follow(chain)
        a, b, c = _tx(1), _tx(2), _tx(3)
        chain.mempool = [a, b]
        await follower.sync(mempool=True)
        await follower.sync(mempool=True)
        assert [event for event in recorder.events if event[0] == "seen"] == [
            ("seen", a.txid),
            ("seen", b.txid),
        ]
        recorder.events.clear()
        # a is mined, b is replaced by c.
        chain.mempool = [c]
        chain.extend(1, (a,))
        await follower.sync(mempool=True)
        assert recorder.events == [("connected", 1), ("dropped", b.txid), ("seen", c.txid)]

    asyncio.run(scenario())


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 5)), min_size=1, max_size=12))
def test_listener_always_ends_on_the_best_chain(steps: list[tuple[int, int]]) -> None:
    async def scenario() -> None:
        chain = FakeChain()
        follower, recorder = _follow(chain)
        await follower.sync()
        for depth, grow in steps:
            depth = min(depth, len(chain.blocks) - 1)
            if depth:
                chain.fork(depth, depth + grow)
            else:
                chain.extend(grow)
            await follower.sync()
            assert recorder.chain == [block.block_hash for block in chain.blocks]
            assert follower.height == len(chain.blocks) - 1

    asyncio.run(scenario())
