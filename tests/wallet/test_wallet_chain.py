"""The wallet on the real embedded chain: mined coins, a kernel-accepted spend, a reorg."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ampere.bitcoin.bip32 import ExtendedPrivateKey
from ampere.bitcoin.network import Network
from ampere.bitcoin.tx import TxOut
from ampere.chain.embedded import EmbeddedChain, EmbeddedChainBackend
from ampere.wallet.sync import sync_wallet
from ampere.wallet.wallet import Wallet
from tests.chain.helpers import SINK_SCRIPT


def test_wallet_spends_mined_coins_and_follows_a_reorg(tmp_path: Path) -> None:
    wallet = Wallet(ExtendedPrivateKey.from_seed(b"\x07" * 32), Network.REGTEST)
    with EmbeddedChain(tmp_path / "chain") as chain:
        backend = EmbeddedChainBackend(chain)
        chain.generate(2, wallet.new_script_pubkey())
        chain.generate(100, SINK_SCRIPT)
        asyncio.run(sync_wallet(wallet, backend))
        tip = chain.tip_height()
        assert len(wallet.spendable_coins(tip)) == 2
        confirmed, _ = wallet.balance(tip)
        assert confirmed == 2 * 50 * 100_000_000

        tx = wallet.build_transaction([TxOut(70 * 100_000_000, SINK_SCRIPT)], 253, tip)
        chain.submit(tx)
        asyncio.run(sync_wallet(wallet, backend))
        confirmed, unconfirmed = wallet.balance(tip)
        fee = 100 * 100_000_000 - tx.total_output_value()
        assert unconfirmed == 100 * 100_000_000 - 70 * 100_000_000 - fee
        assert confirmed == 0  # both coins are spent by the mempool transaction

        chain.generate(1, SINK_SCRIPT)
        asyncio.run(sync_wallet(wallet, backend))
        assert wallet.balance(chain.tip_height()) == (unconfirmed, 0)

        # A two-block reorg takes the spend out of the chain; the wallet undoes it and sees the
        # transaction back in the mempool.
        chain.reorg(1, SINK_SCRIPT, new_blocks=2)
        asyncio.run(sync_wallet(wallet, backend))
        assert chain.tx_status(tx.txid).in_mempool
        assert wallet.balance(chain.tip_height()) == (0, unconfirmed)
