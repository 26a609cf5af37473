"""The node's on-chain wallet: a `Wallet` fed by the chain follower, plus what must survive restarts.

What is persisted (namespace `wallet` of the store): the birth height (the chain tip when the seed was
made; 0 after `--restore` or when the seed predates the store) and the next receive index, so that
`newaddress` never hands out an address twice. Coins are not stored: at start the wallet rescans from
its birth height, which on regtest is a few hundred blocks at most. If that ever gets slow, checkpoint
the coin set and the scanned height here and rescan only from the checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ampere.bitcoin.address import AddressError, address_to_script_pubkey, script_pubkey_to_address
from ampere.bitcoin.network import Network
from ampere.bitcoin.tx import OutPoint, Transaction, TxOut
from ampere.chain.errors import BroadcastError
from ampere.chain.interface import BlockInfo, ChainBackend
from ampere.node.errors import InvalidArgumentError
from ampere.store import Store
from ampere.store.repositories import WALLET
from ampere.wallet.errors import WalletError
from ampere.wallet.wallet import Wallet

__all__ = ["FundsOutput", "NodeWallet", "WithdrawResult"]

log = logging.getLogger(__name__)

_BIRTH_HEIGHT = b"birth_height"
_NEXT_RECEIVE = b"next_receive_index"
_WEIGHT_PER_VBYTE = 4
_MAX_FEERATE_SAT_PER_VB = 100_000


@dataclass(frozen=True, slots=True)
class FundsOutput:
    outpoint: OutPoint
    amount_sat: int
    address: str
    blockheight: int | None  # None while unconfirmed
    immature: bool = False  # a coinbase output not yet spendable (fewer than 100 confirmations)


@dataclass(frozen=True, slots=True)
class WithdrawResult:
    tx: Transaction
    fee_sat: int


def birth_height(store: Store) -> int | None:
    raw = store.get(WALLET, _BIRTH_HEIGHT)
    return None if raw is None else int(raw.decode("ascii"))


def set_birth_height(store: Store, height: int) -> None:
    store.put(WALLET, _BIRTH_HEIGHT, str(height).encode("ascii"))


class NodeWallet:
    """Chain listener and spending front of the wallet. Tip height comes from the node's follower."""

    def __init__(self, wallet: Wallet, store: Store, chain: ChainBackend, network: Network) -> None:
        self.wallet = wallet
        self._store = store
        self._chain = chain
        self._network = network
        raw = self._store.get(WALLET, _NEXT_RECEIVE)
        self.wallet.skip_to_index(0 if raw is None else int(raw.decode("ascii")))

    # --- ChainListener --------------------------------------------------------------------------------
    async def block_connected(self, block: BlockInfo) -> None:
        self.wallet.apply_block(block)

    async def block_disconnected(self, height: int, block_hash: bytes) -> None:
        try:
            self.wallet.undo_block(height)
        except WalletError as exc:
            log.error("wallet cannot undo block %d: %s; restart the node to rescan", height, exc)

    async def transaction_seen(self, tx: Transaction) -> None:
        self.wallet.apply_unconfirmed(tx)

    async def transaction_dropped(self, txid: bytes) -> None:
        self.wallet.drop_unconfirmed(txid)

    # --- queries -------------------------------------------------------------------------------------
    def new_address(self) -> str:
        address = self.wallet.new_address()
        # Persisted before the address leaves the node: after a crash it is never handed out again.
        self._store.put(WALLET, _NEXT_RECEIVE, str(self.wallet.next_index()).encode("ascii"))
        return address

    def new_script_pubkey(self) -> bytes:
        return address_to_script_pubkey(self.new_address(), self._network)

    def list_funds(self) -> list[FundsOutput]:
        """Every coin not spent by a mempool transaction; immature coinbase outputs are flagged."""
        tip = self.wallet.synced_height  # the last block the wallet applied: its own view of the tip
        return [
            FundsOutput(
                coin.outpoint,
                coin.value,
                script_pubkey_to_address(coin.script_pubkey, self._network),
                coin.height,
                self.wallet.is_immature(coin, tip),
            )
            for coin in self.wallet.coins(include_spent_unconfirmed=False)
        ]

    # --- spending ------------------------------------------------------------------------------------
    def parse_address(self, address: str, param: str = "address") -> bytes:
        try:
            return address_to_script_pubkey(address, self._network)
        except AddressError as exc:
            raise InvalidArgumentError(param, f"not a {self._network.value} address: {exc}") from None

    async def withdraw(
        self, address: str, amount_sat: int | None, feerate_sat_per_vb: int | None, tip_height: int
    ) -> WithdrawResult:
        """Send `amount_sat` (None: everything spendable) to `address` and broadcast it."""
        script_pubkey = self.parse_address(address)
        if amount_sat is not None and amount_sat <= 0:
            raise InvalidArgumentError("amount", "must be a positive number of satoshis or 'all'")
        if feerate_sat_per_vb is None:
            feerate_per_kw = await self._chain.feerate_per_kw(6)
        else:
            if not 1 <= feerate_sat_per_vb <= _MAX_FEERATE_SAT_PER_VB:
                raise InvalidArgumentError("feerate", f"must be 1..{_MAX_FEERATE_SAT_PER_VB} sat/vB")
            feerate_per_kw = feerate_sat_per_vb * 1000 // _WEIGHT_PER_VBYTE
        if amount_sat is None:
            tx = self.wallet.build_sweep(script_pubkey, feerate_per_kw, tip_height)
        else:
            tx = self.wallet.build_transaction([TxOut(amount_sat, script_pubkey)], feerate_per_kw, tip_height)
        inputs = [txin.prevout for txin in tx.inputs]
        input_total = 0
        for outpoint in inputs:
            coin = self.wallet.coin(outpoint)
            assert coin is not None  # just selected from the wallet's coins
            input_total += coin.value
        fee_sat = input_total - sum(out.value for out in tx.outputs)
        try:
            await self._chain.broadcast(tx)
        except BroadcastError:
            self.wallet.release(inputs)
            raise
        except Exception:
            # We cannot tell whether it reached the mempool; the follower sees it there if it did.
            self.wallet.release(inputs)
            raise
        log.info("withdrew %d sat in %s (fee %d sat)", tx.outputs[0].value, tx.txid_hex, fee_sat)
        await self.transaction_seen(tx)
        return WithdrawResult(tx, fee_sat)
