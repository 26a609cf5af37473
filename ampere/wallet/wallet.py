"""The on-chain wallet: follows blocks and the mempool, knows its coins, builds and signs spends.

The wallet holds no connection to anything: the node feeds it blocks (`apply_block`, `undo_block`) and
unconfirmed transactions (`apply_unconfirmed`), and broadcasts what it builds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ampere.bitcoin.bip32 import ExtendedPrivateKey
from ampere.bitcoin.network import Network
from ampere.bitcoin.signing import sign_p2wpkh_input
from ampere.bitcoin.tx import SEQUENCE_RBF, OutPoint, Transaction, TxIn, TxOut
from ampere.chain.interface import BlockInfo
from ampere.wallet.coin_selection import (
    Candidate,
    Selection,
    output_weight,
    select_all,
    select_coins,
)
from ampere.wallet.errors import InsufficientFundsError, WalletError
from ampere.wallet.keychain import CHANGE_CHAIN, RECEIVE_CHAIN, Bip84Keychain, KeyPath

log = logging.getLogger(__name__)

COINBASE_MATURITY = 100
GAP_LIMIT = 20
_UNDO_DEPTH = 144  # blocks of undo data kept for reorgs


@dataclass(frozen=True, slots=True)
class WalletCoin:
    outpoint: OutPoint
    value: int
    script_pubkey: bytes
    path: KeyPath
    height: int | None  # None while unconfirmed
    coinbase: bool = False


@dataclass(slots=True)
class _BlockUndo:
    height: int
    block_hash: bytes
    added: list[OutPoint]
    spent: list[WalletCoin]


class Wallet:
    """A BIP84 wallet over one account."""

    def __init__(self, master: ExtendedPrivateKey, network: Network, birth_height: int = 0) -> None:
        self.network = network
        self.keychain = Bip84Keychain(master, network)
        self.keychain.ensure_derived(RECEIVE_CHAIN, GAP_LIMIT)
        self.keychain.ensure_derived(CHANGE_CHAIN, GAP_LIMIT)
        self._next_index = {RECEIVE_CHAIN: 0, CHANGE_CHAIN: 0}
        self._coins: dict[OutPoint, WalletCoin] = {}
        self._spent_unconfirmed: dict[OutPoint, bytes] = {}  # coin -> txid of the mempool spend
        self._unconfirmed_txs: dict[bytes, Transaction] = {}
        self._reserved: set[OutPoint] = set()
        self._undo: list[_BlockUndo] = []
        self.synced_height = birth_height - 1

    # --- addresses -----------------------------------------------------------------------------------
    def new_address(self) -> str:
        return self.keychain.address(self._next_path(RECEIVE_CHAIN))

    def new_change_script(self) -> bytes:
        return self.keychain.script_pubkey(self._next_path(CHANGE_CHAIN))

    def new_script_pubkey(self) -> bytes:
        return self.keychain.script_pubkey(self._next_path(RECEIVE_CHAIN))

    def next_index(self, chain: int = RECEIVE_CHAIN) -> int:
        """The index the next new address of `chain` will use."""
        return self._next_index[chain]

    def skip_to_index(self, next_index: int, chain: int = RECEIVE_CHAIN) -> None:
        """Never hand out indexes below `next_index` (restored after a restart)."""
        if next_index > self._next_index[chain]:
            self._next_index[chain] = next_index
            self.keychain.ensure_derived(chain, next_index + GAP_LIMIT)

    def _next_path(self, chain: int) -> KeyPath:
        index = self._next_index[chain]
        self._next_index[chain] = index + 1
        self.keychain.ensure_derived(chain, index + 1 + GAP_LIMIT)
        return KeyPath(chain, index)

    def _mark_used(self, path: KeyPath) -> None:
        if path.index >= self._next_index[path.chain]:
            self._next_index[path.chain] = path.index + 1
        self.keychain.ensure_derived(path.chain, path.index + 1 + GAP_LIMIT)

    def owns(self, script_pubkey: bytes) -> bool:
        return self.keychain.lookup(script_pubkey) is not None

    # --- following the chain -------------------------------------------------------------------------
    def apply_block(self, block: BlockInfo) -> None:
        if block.height <= self.synced_height:
            return
        undo = _BlockUndo(block.height, block.block_hash, [], [])
        for tx in block.transactions:
            self._apply_tx(tx, block.height, undo)
            self._unconfirmed_txs.pop(tx.txid, None)
        self.synced_height = block.height
        self._undo.append(undo)
        del self._undo[:-_UNDO_DEPTH]

    def applied_hash(self, height: int) -> bytes | None:
        """The hash of the block applied at `height`, while its undo data is kept."""
        for undo in reversed(self._undo):
            if undo.height == height:
                return undo.block_hash
        return None

    def undo_block(self, height: int) -> None:
        """Forget what block `height` did (it was disconnected); its transactions may return later."""
        if not self._undo or self._undo[-1].height != height:
            raise WalletError(f"no undo data for block {height}: rescan needed")
        undo = self._undo.pop()
        for outpoint in undo.added:
            self._coins.pop(outpoint, None)
        for coin in undo.spent:
            self._coins[coin.outpoint] = coin
        self.synced_height = height - 1

    def apply_unconfirmed(self, tx: Transaction) -> None:
        """A mempool transaction: its outputs to us become unconfirmed coins and its spends are noted."""
        if tx.txid in self._unconfirmed_txs:
            return
        relevant = any(txin.prevout in self._coins for txin in tx.inputs) or any(
            self.owns(out.script_pubkey) for out in tx.outputs
        )
        if not relevant:
            return
        self._unconfirmed_txs[tx.txid] = tx
        for txin in tx.inputs:
            if txin.prevout in self._coins:
                self._spent_unconfirmed[txin.prevout] = tx.txid
        for vout, out in enumerate(tx.outputs):
            path = self.keychain.lookup(out.script_pubkey)
            if path is not None:
                outpoint = OutPoint(tx.txid, vout)
                coin = WalletCoin(outpoint, out.value, out.script_pubkey, path, None)
                self._coins.setdefault(outpoint, coin)
                self._mark_used(path)

    def drop_unconfirmed(self, txid: bytes) -> None:
        """An unconfirmed transaction left the mempool without confirming (replaced or expired)."""
        tx = self._unconfirmed_txs.pop(txid, None)
        if tx is None:
            return
        for txin in tx.inputs:
            if self._spent_unconfirmed.get(txin.prevout) == txid:
                del self._spent_unconfirmed[txin.prevout]
        for vout in range(len(tx.outputs)):
            coin = self._coins.get(OutPoint(txid, vout))
            if coin is not None and coin.height is None:
                del self._coins[coin.outpoint]

    def _apply_tx(self, tx: Transaction, height: int, undo: _BlockUndo) -> None:
        if not tx.is_coinbase():
            for txin in tx.inputs:
                spent = self._coins.pop(txin.prevout, None)
                self._spent_unconfirmed.pop(txin.prevout, None)
                self._reserved.discard(txin.prevout)
                if spent is not None:
                    undo.spent.append(spent)
        txid = tx.txid
        for vout, out in enumerate(tx.outputs):
            path = self.keychain.lookup(out.script_pubkey)
            if path is None:
                continue
            outpoint = OutPoint(txid, vout)
            previous = self._coins.get(outpoint)
            coin = WalletCoin(outpoint, out.value, out.script_pubkey, path, height, tx.is_coinbase())
            self._coins[outpoint] = coin
            if previous is None or previous.height is None:
                undo.added.append(outpoint)
            self._mark_used(path)

    # --- what we have --------------------------------------------------------------------------------
    def coins(self, *, include_spent_unconfirmed: bool = True) -> list[WalletCoin]:
        """Our coins, oldest first; optionally without those a mempool transaction already spends."""
        coins: Iterable[WalletCoin] = self._coins.values()
        if not include_spent_unconfirmed:
            coins = [coin for coin in coins if coin.outpoint not in self._spent_unconfirmed]
        return sorted(coins, key=lambda c: (c.height is None, c.height or 0, c.outpoint))

    @staticmethod
    def is_immature(coin: WalletCoin, tip_height: int) -> bool:
        """A coinbase output that may not be spent yet: a coinbase of height h may be spent in block
        h + 100, i.e. with 100 confirmations at the tip (bitcoind's wallet waits for one more)."""
        if not coin.coinbase:
            return False
        confirmations = 0 if coin.height is None else tip_height - coin.height + 1
        return confirmations < COINBASE_MATURITY

    def spendable_coins(self, tip_height: int, min_confirmations: int = 1) -> list[WalletCoin]:
        result = []
        for coin in self._coins.values():
            if coin.outpoint in self._spent_unconfirmed or coin.outpoint in self._reserved:
                continue
            if self.is_immature(coin, tip_height):
                continue
            confirmations = 0 if coin.height is None else tip_height - coin.height + 1
            if confirmations < min_confirmations and not (coin.height is None and self._is_own_change(coin)):
                continue
            result.append(coin)
        return result

    def _is_own_change(self, coin: WalletCoin) -> bool:
        parent = self._unconfirmed_txs.get(coin.outpoint.txid)
        return (
            parent is not None
            and coin.path.chain == CHANGE_CHAIN
            and all(
                txin.prevout in self._coins or txin.prevout in self._spent_unconfirmed
                for txin in parent.inputs
            )
        )

    def balance(self, tip_height: int) -> tuple[int, int]:
        """(confirmed, unconfirmed) satoshis, not counting coins spent by our own mempool transactions.
        Immature coinbase outputs count as confirmed: this is what the wallet holds, not what it can
        spend now (`spendable_coins` is that)."""
        confirmed = unconfirmed = 0
        for coin in self._coins.values():
            if coin.outpoint in self._spent_unconfirmed:
                continue
            if coin.height is None:
                unconfirmed += coin.value
            else:
                confirmed += coin.value
        return confirmed, unconfirmed

    # --- spending ------------------------------------------------------------------------------------
    def build_transaction(
        self,
        outputs: Sequence[TxOut],
        feerate_per_kw: int,
        tip_height: int,
        *,
        locktime: int | None = None,
        reserve: bool = True,
    ) -> Transaction:
        """A signed transaction paying `outputs`, with change back to us. Coins used are reserved."""
        candidates = self._candidates(tip_height)
        weight = sum(output_weight(out.script_pubkey) for out in outputs)
        selection = select_coins(candidates, sum(out.value for out in outputs), weight, feerate_per_kw)
        all_outputs = list(outputs)
        if selection.change:
            all_outputs.append(TxOut(selection.change, self.new_change_script()))
        return self._sign(selection, all_outputs, tip_height if locktime is None else locktime, reserve)

    def build_sweep(self, script_pubkey: bytes, feerate_per_kw: int, tip_height: int) -> Transaction:
        """Send everything spendable to `script_pubkey`, the fee taken from that amount."""
        candidates = self._candidates(tip_height)
        selection = select_all(candidates, output_weight(script_pubkey), feerate_per_kw)
        amount = selection.total_in - selection.fee
        if amount <= 0:
            raise InsufficientFundsError(selection.fee, selection.total_in)
        return self._sign(selection, [TxOut(amount, script_pubkey)], tip_height, True)

    def _candidates(self, tip_height: int) -> list[Candidate]:
        return [Candidate(coin.outpoint, coin.value) for coin in self.spendable_coins(tip_height)]

    def _sign(self, selection: Selection, outputs: list[TxOut], locktime: int, reserve: bool) -> Transaction:
        coins = [self._coins[candidate.outpoint] for candidate in selection.chosen]
        # nLockTime at the tip discourages fee sniping; nSequence opts in to replacement (BIP125).
        tx = Transaction(
            version=2,
            inputs=tuple(TxIn(coin.outpoint, sequence=SEQUENCE_RBF) for coin in coins),
            outputs=tuple(outputs),
            locktime=locktime,
        )
        for index, coin in enumerate(coins):
            tx = sign_p2wpkh_input(tx, index, self.keychain.private_key(coin.path), coin.value)
        if reserve:
            self._reserved.update(coin.outpoint for coin in coins)
        return tx

    def release(self, outpoints: Iterable[OutPoint]) -> None:
        """Give back coins reserved for a transaction that will not be broadcast."""
        self._reserved.difference_update(outpoints)

    def coin(self, outpoint: OutPoint) -> WalletCoin | None:
        return self._coins.get(outpoint)
