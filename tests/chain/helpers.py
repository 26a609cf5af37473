"""Money on an embedded regtest chain for tests: mature coinbase coins, P2WPKH funding and spends.

    chain = EmbeddedChain(tmp_path / "chain")
    coin = fund_p2wpkh(chain, key, 1_000_000)             # confirmed P2WPKH output of exactly 1M sat
    tx = spend_p2wpkh([coin], [TxOut(900_000, script)])   # signed; the rest is fee
    chain.submit(tx)

A `Faucet` per chain (made on first use) holds mature coinbase coins of its own key and hands out
outputs of any amount to any script; `mine_coins` gives a test coinbase coins of its own key.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from ampere.bitcoin.block import COINBASE_MATURITY
from ampere.bitcoin.keys import PrivateKey
from ampere.bitcoin.script import Op, build_script, p2wpkh_script, p2wsh_script
from ampere.bitcoin.signing import sign_p2wpkh_input
from ampere.bitcoin.tx import SEQUENCE_LOCKTIME_ONLY, OutPoint, Transaction, TxIn, TxOut
from ampere.chain.embedded import EmbeddedChain

# Blocks mined only to make time pass pay here: a P2WSH of OP_TRUE, which credits no test's key.
SINK_SCRIPT = p2wsh_script(build_script(Op.OP_1))
FAUCET_KEY = PrivateKey.from_int(0xFA_0CE7)
DEFAULT_FEERATE_SAT_PER_VB = 2
# Enough for a one-input, two-output P2WPKH spend at the default fee rate.
_FUNDING_FEE_ALLOWANCE = 1_000


@dataclass(frozen=True, slots=True)
class Coin:
    """A P2WPKH output that `key` can spend."""

    outpoint: OutPoint
    value: int
    key: PrivateKey

    @property
    def script_pubkey(self) -> bytes:
        return p2wpkh_script(self.key.public_key.data)

    @property
    def txout(self) -> TxOut:
        return TxOut(self.value, self.script_pubkey)


def p2wpkh_spk(key: PrivateKey) -> bytes:
    return p2wpkh_script(key.public_key.data)


def mine_coins(chain: EmbeddedChain, key: PrivateKey, count: int = 1, *, mature: bool = True) -> list[Coin]:
    """Mine `count` blocks paying `key`, then (if `mature`) enough blocks for their coinbases to be
    spendable in the next block."""
    hashes = chain.generate(count, p2wpkh_spk(key))
    coins = []
    for block_hash in hashes:
        block = chain.get_block(block_hash)
        assert block is not None
        coinbase = block.transactions[0]
        coins.append(Coin(OutPoint(coinbase.txid, 0), coinbase.outputs[0].value, key))
    if mature:
        chain.generate(COINBASE_MATURITY - 1, SINK_SCRIPT)
    return coins


def spend_p2wpkh(
    coins: Sequence[Coin],
    outputs: Sequence[TxOut],
    *,
    change_script: bytes | None = None,
    fee: int | None = None,
    feerate_sat_per_vb: int = DEFAULT_FEERATE_SAT_PER_VB,
    locktime: int = 0,
    sequence: int = SEQUENCE_LOCKTIME_ONLY,
    version: int = 2,
) -> Transaction:
    """A signed transaction spending `coins` to `outputs`.

    The fee is `fee`, or `feerate_sat_per_vb` times the signed size; with `change_script` whatever
    is left goes there (dropped if it would be dust), otherwise it all goes to the fee.
    """
    total_in = sum(coin.value for coin in coins)
    total_out = sum(out.value for out in outputs)
    inputs = tuple(TxIn(coin.outpoint, b"", sequence) for coin in coins)

    def build(paid_fee: int) -> Transaction:
        outs = list(outputs)
        if change_script is not None:
            change = total_in - total_out - paid_fee
            if change >= 330:
                outs.append(TxOut(change, change_script))
        tx = Transaction(version, inputs, tuple(outs), locktime)
        for index, coin in enumerate(coins):
            tx = sign_p2wpkh_input(tx, index, coin.key, coin.value)
        return tx

    if fee is not None:
        return build(fee)
    if change_script is None:
        return build(0)
    paid = 0
    for _ in range(5):  # signatures vary by a byte, so the size settles over a round or two
        tx = build(paid)
        needed = feerate_sat_per_vb * tx.vsize
        if total_in - tx.total_output_value() >= needed:
            return tx
        paid = needed
    raise ValueError("the coins do not cover the outputs and the fee")


class Faucet:
    """Mature coins of `key` on one chain, handed out as outputs of exact amounts."""

    def __init__(self, chain: EmbeddedChain, key: PrivateKey = FAUCET_KEY, batch: int = 10) -> None:
        self.chain = chain
        self.key = key
        self.batch = batch
        self._coins: list[Coin] = []

    def _usable(self) -> list[Coin]:
        self._coins = [c for c in self._coins if self.chain.get_txout(c.outpoint) is not None]
        return self._coins

    def _select(self, amount: int) -> list[Coin]:
        for _ in range(3):
            confirmed = [c for c in self._usable() if self.chain.get_txout(c.outpoint, False) is not None]
            confirmed.sort(key=lambda c: c.value, reverse=True)
            chosen: list[Coin] = []
            for coin in confirmed:
                chosen.append(coin)
                if sum(c.value for c in chosen) >= amount + _FUNDING_FEE_ALLOWANCE * len(chosen):
                    return chosen
            if len(self._coins) > len(confirmed):
                self.chain.generate(1, SINK_SCRIPT)  # confirm the change outputs waiting in the mempool
            else:
                self._coins += mine_coins(self.chain, self.key, self.batch)
        raise AssertionError(f"the faucet cannot gather {amount} sat")

    def fund(self, script_pubkey: bytes, amount: int, *, confirm: bool = True) -> OutPoint:
        """Send `amount` to `script_pubkey`; mined in a block unless `confirm` is False."""
        chosen = self._select(amount)
        tx = spend_p2wpkh(chosen, [TxOut(amount, script_pubkey)], change_script=p2wpkh_spk(self.key))
        self.chain.submit(tx)
        spent = {c.outpoint for c in chosen}
        self._coins = [c for c in self._coins if c.outpoint not in spent]
        if len(tx.outputs) > 1:
            self._coins.append(Coin(tx.outpoint(1), tx.outputs[1].value, self.key))
        if confirm:
            self.chain.generate(1, SINK_SCRIPT)
        return tx.outpoint(0)

    def fund_p2wpkh(self, key: PrivateKey, amount: int, *, confirm: bool = True) -> Coin:
        return Coin(self.fund(p2wpkh_spk(key), amount, confirm=confirm), amount, key)


_faucets: weakref.WeakKeyDictionary[EmbeddedChain, Faucet] = weakref.WeakKeyDictionary()


def faucet(chain: EmbeddedChain) -> Faucet:
    """The chain's faucet, made on first use."""
    found = _faucets.get(chain)
    if found is None:
        found = _faucets[chain] = Faucet(chain)
    return found


def fund_p2wpkh(chain: EmbeddedChain, key: PrivateKey, amount: int, *, confirm: bool = True) -> Coin:
    """A P2WPKH output of exactly `amount` sat to `key`, confirmed unless `confirm` is False."""
    return faucet(chain).fund_p2wpkh(key, amount, confirm=confirm)


def fund_script(chain: EmbeddedChain, script_pubkey: bytes, amount: int, *, confirm: bool = True) -> OutPoint:
    """An output of exactly `amount` sat to any script (a P2WSH, a funding output, ...)."""
    return faucet(chain).fund(script_pubkey, amount, confirm=confirm)
