"""The embedded chain's mempool: Bitcoin Core's relay policy on top of the kernel's consensus checks.

Every input's script goes through libbitcoinkernel's verifier (with the coins it spends taken from the
chain's UTXO index or from unconfirmed parents); what the verifier does not judge is checked here the
way bitcoind's AcceptToMemoryPool does, with its reject strings: finality against the next block's
height and BIP113 median time past, BIP68 sequence locks for the next block, coinbase maturity,
fees, standardness, dust, ancestor limits and full-RBF replacement.

Single-threaded, like the rest of the embedded chain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ampere.bitcoin.block import COINBASE_MATURITY
from ampere.bitcoin.hashes import hash160, sha256
from ampere.bitcoin.script import is_p2wpkh, is_p2wsh
from ampere.bitcoin.tx import MAX_MONEY, OutPoint, Transaction, TxOut
from ampere.chain.errors import BroadcastError, RejectReason
from ampere.chain.interface import UnspentOutput
from ampere.chain.kernel import CONSENSUS_FLAGS, ScriptFlags, failing_inputs
from ampere.chain.policy import (
    DEFAULT_POLICY,
    MAX_STANDARD_TX_SIGOPS_COST,
    FeeRate,
    Policy,
    check_standard,
    check_transaction,
    check_witness_standard,
    format_money,
    has_high_s,
    is_final,
    policy_vsize,
    reject,
    sequence_locks,
    sequence_locks_met,
    sigop_cost,
)

log = logging.getLogger(__name__)

ScriptVerifier = Callable[[bytes, Sequence[TxOut], ScriptFlags], list[int]]

_EVAL_FALSE = "Script evaluated without error but finished with a false/empty top stack element"


class ChainView(Protocol):
    """What the mempool needs to know about the confirmed chain."""

    def tip_height(self) -> int: ...

    def median_time_past(self, height: int) -> int: ...

    def get_utxo(self, outpoint: OutPoint) -> UnspentOutput | None: ...

    def tx_location(self, txid: bytes) -> tuple[int, int] | None: ...


@dataclass(frozen=True, slots=True)
class MempoolEntry:
    tx: Transaction
    txid: bytes
    wtxid: bytes
    fee: int
    vsize: int  # sigop-adjusted, as fees are charged
    weight: int
    sigops: int
    time: int
    sequence: int  # arrival order

    @property
    def feerate(self) -> FeeRate:
        return FeeRate(self.fee * 1000 // self.vsize)


@dataclass(frozen=True, slots=True)
class AcceptResult:
    txid: bytes
    wtxid: bytes
    fee: int
    vsize: int
    replaced: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything acceptance decided, so that applying it needs no second look."""

    entry: MempoolEntry
    parents: frozenset[bytes]
    replaced: frozenset[bytes]


class Mempool:
    def __init__(
        self,
        chain: ChainView,
        verifier: ScriptVerifier = failing_inputs,
        policy: Policy = DEFAULT_POLICY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._chain = chain
        self._verify = verifier
        self.policy = policy
        self._clock = clock
        self._entries: dict[bytes, MempoolEntry] = {}
        self._spenders: dict[OutPoint, bytes] = {}
        self._parents: dict[bytes, set[bytes]] = {}
        self._children: dict[bytes, set[bytes]] = {}
        self._sequence = 0

    # --- reading ---------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, txid: object) -> bool:
        return txid in self._entries

    def get(self, txid: bytes) -> MempoolEntry | None:
        return self._entries.get(txid)

    def txids(self) -> list[bytes]:
        """In arrival order, which is also an order where parents come before children."""
        return list(self._entries)

    def entries(self) -> list[MempoolEntry]:
        return list(self._entries.values())

    def spender(self, outpoint: OutPoint) -> bytes | None:
        return self._spenders.get(outpoint)

    def output(self, outpoint: OutPoint) -> TxOut | None:
        entry = self._entries.get(outpoint.txid)
        if entry is None or outpoint.vout >= len(entry.tx.outputs):
            return None
        return entry.tx.outputs[outpoint.vout]

    def parents(self, txid: bytes) -> frozenset[bytes]:
        return frozenset(self._parents.get(txid, ()))

    def ancestors(self, txid: bytes) -> set[bytes]:
        return self._closure(self._parents.get(txid, set()), self._parents)

    def descendants(self, txid: bytes) -> set[bytes]:
        return self._closure(self._children.get(txid, set()), self._children)

    @staticmethod
    def _closure(start: Iterable[bytes], links: dict[bytes, set[bytes]]) -> set[bytes]:
        seen: set[bytes] = set()
        todo = list(start)
        while todo:
            txid = todo.pop()
            if txid not in seen:
                seen.add(txid)
                todo.extend(links.get(txid, ()))
        return seen

    # --- acceptance ------------------------------------------------------------------------------------
    def test_accept(self, tx: Transaction) -> AcceptResult:
        """Decide as `accept` would, changing nothing; raises BroadcastError."""
        plan = self._check(tx)
        return AcceptResult(
            plan.entry.txid, plan.entry.wtxid, plan.entry.fee, plan.entry.vsize, tuple(plan.replaced)
        )

    def accept(self, tx: Transaction) -> AcceptResult:
        plan = self._check(tx)
        for txid in plan.replaced:
            self._remove_one(txid)
        entry = plan.entry
        self._entries[entry.txid] = entry
        for txin in entry.tx.inputs:
            self._spenders[txin.prevout] = entry.txid
        self._parents[entry.txid] = set(plan.parents)
        for parent in plan.parents:
            self._children.setdefault(parent, set()).add(entry.txid)
        self._sequence += 1
        if plan.replaced:
            log.info("mempool: %s replaced %s", entry.tx.txid_hex, [t[::-1].hex() for t in plan.replaced])
        return AcceptResult(entry.txid, entry.wtxid, entry.fee, entry.vsize, tuple(plan.replaced))

    def _check(self, tx: Transaction) -> _Plan:
        check_transaction(tx)
        txid = tx.txid
        if self._chain.tx_location(txid) is not None:
            raise reject(RejectReason.ALREADY_IN_CHAIN, "Transaction outputs already in utxo set")
        check_standard(tx, self.policy)
        tip = self._chain.tip_height()
        next_height = tip + 1
        tip_mtp = self._chain.median_time_past(tip)
        if not is_final(tx, next_height, tip_mtp):
            raise reject(RejectReason.NON_FINAL, "non-final")
        existing = self._entries.get(txid)
        if existing is not None:
            if existing.wtxid == tx.wtxid:
                raise reject(RejectReason.ALREADY_IN_MEMPOOL, "txn-already-in-mempool")
            raise reject(RejectReason.ALREADY_IN_MEMPOOL, "txn-same-nonwitness-data-in-mempool")
        conflicts = {self._spenders[i.prevout] for i in tx.inputs if i.prevout in self._spenders}

        coins: list[UnspentOutput] = []
        parents: set[bytes] = set()
        for txin in tx.inputs:
            coin = self._coin(txin.prevout)
            if coin is None:
                raise reject(RejectReason.MISSING_OR_SPENT_INPUTS, "bad-txns-inputs-missingorspent")
            if coin.height is None:
                parents.add(txin.prevout.txid)
            coins.append(coin)
        spent = [coin.output for coin in coins]

        heights = [coin.height if coin.height is not None else next_height for coin in coins]
        locks = sequence_locks(tx, heights, self._chain.median_time_past)
        if not sequence_locks_met(locks, next_height, tip_mtp):
            raise reject(RejectReason.NON_BIP68_FINAL, "non-BIP68-final")

        for coin in coins:
            if coin.coinbase and coin.height is not None and next_height - coin.height < COINBASE_MATURITY:
                raise reject(
                    RejectReason.PREMATURE_COINBASE_SPEND,
                    "bad-txns-premature-spend-of-coinbase",
                    f"tried to spend coinbase at depth {next_height - coin.height}",
                )
        value_in = sum(out.value for out in spent)
        if any(not 0 <= out.value <= MAX_MONEY for out in spent) or value_in > MAX_MONEY:
            raise reject(RejectReason.INVALID, "bad-txns-inputvalues-outofrange")
        value_out = tx.total_output_value()
        if value_in < value_out:
            raise reject(
                RejectReason.OUTPUTS_EXCEED_INPUTS,
                "bad-txns-in-belowout",
                f"value in ({format_money(value_in)}) < value out ({format_money(value_out)})",
            )
        fee = value_in - value_out

        check_witness_standard(tx, spent)
        sigops = sigop_cost(tx, spent)
        if sigops > MAX_STANDARD_TX_SIGOPS_COST:
            raise reject(RejectReason.NONSTANDARD, "bad-txns-too-many-sigops", str(sigops))
        weight = tx.weight
        vsize = policy_vsize(weight, sigops)
        min_fee = self.policy.min_relay_fee.fee(vsize)
        if fee < min_fee:
            raise reject(RejectReason.INSUFFICIENT_FEE, "min relay fee not met", f"{fee} < {min_fee}")

        ancestors = self._closure(parents, self._parents)
        self._check_chain_limits(ancestors)
        entry = MempoolEntry(
            tx, txid, tx.wtxid, fee, vsize, weight, sigops, int(self._clock()), self._sequence
        )
        replaced: set[bytes] = set()
        if conflicts:
            replaced = self._check_replacement(entry, conflicts, ancestors, parents)
        self._check_scripts(tx, spent)
        return _Plan(entry, frozenset(parents), frozenset(replaced))

    def _coin(self, outpoint: OutPoint) -> UnspentOutput | None:
        # A coin spent by a mempool transaction is still offered: the spend may be a replacement.
        parent = self._entries.get(outpoint.txid)
        if parent is not None:
            if outpoint.vout >= len(parent.tx.outputs):
                return None
            return UnspentOutput(outpoint, parent.tx.outputs[outpoint.vout], None, False)
        return self._chain.get_utxo(outpoint)

    def _check_chain_limits(self, ancestors: set[bytes]) -> None:
        limit = self.policy.max_ancestors
        if len(ancestors) + 1 > limit:
            raise reject(
                RejectReason.NONSTANDARD,
                "too-long-mempool-chain",
                f"too many unconfirmed ancestors [limit: {limit}]",
            )
        limit = self.policy.max_descendants
        for ancestor in ancestors:
            if len(self.descendants(ancestor)) + 2 > limit:
                raise reject(
                    RejectReason.NONSTANDARD,
                    "too-long-mempool-chain",
                    f"too many descendants for tx {ancestor[::-1].hex()} [limit: {limit}]",
                )

    def _check_replacement(
        self, entry: MempoolEntry, conflicts: set[bytes], ancestors: set[bytes], parents: set[bytes]
    ) -> set[bytes]:
        """Bitcoin Core's full-RBF rules (BIP125 without the signalling requirement)."""
        txid_hex = entry.tx.txid_hex
        for conflict in sorted(conflicts):
            if conflict in ancestors:
                raise reject(
                    RejectReason.CONFLICT,
                    "bad-txns-spends-conflicting-tx",
                    f"{txid_hex} spends conflicting transaction {conflict[::-1].hex()}",
                )
        replaced = set(conflicts)
        for conflict in conflicts:
            replaced |= self.descendants(conflict)
        limit = self.policy.max_replacements
        if len(replaced) > limit:
            raise reject(
                RejectReason.CONFLICT,
                "too many potential replacements",
                f"rejecting replacement {txid_hex}; too many potential replacements "
                f"({len(replaced)} > {limit})",
            )
        conflict_parents: set[bytes] = set()
        for conflict in conflicts:
            conflict_parents |= self._parents.get(conflict, set())
        for index, txin in enumerate(entry.tx.inputs):
            if txin.prevout.txid in parents and txin.prevout.txid not in conflict_parents:
                raise reject(
                    RejectReason.CONFLICT,
                    "replacement-adds-unconfirmed",
                    f"replacement {txid_hex} adds unconfirmed input, idx {index}",
                )
        new_rate = entry.feerate
        for conflict in sorted(conflicts):
            old = self._entries[conflict]
            # Compared as fractions, so rounding never lets an equal fee rate through.
            if entry.fee * old.vsize <= old.fee * entry.vsize:
                raise reject(
                    RejectReason.INSUFFICIENT_FEE,
                    "insufficient fee",
                    f"rejecting replacement {txid_hex}; new feerate {new_rate} <= old feerate {old.feerate}",
                )
        original_fees = sum(self._entries[t].fee for t in replaced)
        if entry.fee < original_fees:
            raise reject(
                RejectReason.INSUFFICIENT_FEE,
                "insufficient fee",
                f"rejecting replacement {txid_hex}, less fees than conflicting txs; "
                f"{format_money(entry.fee)} < {format_money(original_fees)}",
            )
        additional = entry.fee - original_fees
        relay_fee = self.policy.incremental_relay_fee.fee(entry.vsize)
        if additional < relay_fee:
            raise reject(
                RejectReason.INSUFFICIENT_FEE,
                "insufficient fee",
                f"rejecting replacement {txid_hex}, not enough additional fees to relay; "
                f"{format_money(additional)} < {format_money(relay_fee)}",
            )
        return replaced

    def _check_scripts(self, tx: Transaction, spent: Sequence[TxOut]) -> None:
        raw = tx.serialize()
        failed = self._verify(raw, spent, CONSENSUS_FLAGS)
        if failed:
            index = failed[0]
            raise reject(
                RejectReason.SCRIPT_VERIFY_FAILED,
                f"mandatory-script-verify-flag-failed ({self._describe_failure(tx, raw, spent, index)})",
            )
        if has_high_s(tx):
            raise reject(
                RejectReason.SCRIPT_VERIFY_FAILED,
                "non-mandatory-script-verify-flag (Non-canonical signature: S value is unnecessarily high)",
            )
        for txin, prev in zip(tx.inputs, spent, strict=True):
            if is_p2wpkh(prev.script_pubkey) and len(txin.witness) == 2 and len(txin.witness[1]) != 33:
                raise reject(
                    RejectReason.SCRIPT_VERIFY_FAILED,
                    "non-mandatory-script-verify-flag (Using non-compressed keys in segwit)",
                )

    def _describe_failure(self, tx: Transaction, raw: bytes, spent: Sequence[TxOut], index: int) -> str:
        """Bitcoin Core's script error text where it can be told apart from outside the interpreter.

        The kernel only answers pass or fail; running it again without the lock-time opcodes, and
        looking at the shape of P2WPKH and P2WSH witnesses, recovers the common cases.
        """
        for flag in (ScriptFlags.CHECKLOCKTIMEVERIFY, ScriptFlags.CHECKSEQUENCEVERIFY):
            if index not in self._verify(raw, spent, CONSENSUS_FLAGS & ~flag):
                return "Locktime requirement not satisfied"
        witness = tx.inputs[index].witness
        script = spent[index].script_pubkey
        if is_p2wpkh(script) or is_p2wsh(script):
            if not witness:
                return "Witness program was passed an empty witness"
            if is_p2wpkh(script):
                if len(witness) != 2:
                    return "Witness program hash mismatch"
                if hash160(witness[1]) != script[2:]:
                    return "Script failed an OP_EQUALVERIFY operation"
                return _EVAL_FALSE
            if sha256(witness[-1]) != script[2:]:
                return "Witness program hash mismatch"
        return f"input {index} failed script verification"

    # --- removal ---------------------------------------------------------------------------------------
    def _remove_one(self, txid: bytes) -> None:
        entry = self._entries.pop(txid, None)
        if entry is None:
            return
        for txin in entry.tx.inputs:
            if self._spenders.get(txin.prevout) == txid:
                del self._spenders[txin.prevout]
        for parent in self._parents.pop(txid, set()):
            self._children.get(parent, set()).discard(txid)
        for child in self._children.pop(txid, set()):
            self._parents.get(child, set()).discard(txid)

    def remove(self, txid: bytes) -> list[bytes]:
        """Remove a transaction and everything that spends it; returns what was removed."""
        if txid not in self._entries:
            return []
        doomed = [txid, *self.descendants(txid)]
        for item in doomed:
            self._remove_one(item)
        return doomed

    def remove_for_block(self, transactions: Sequence[Transaction]) -> None:
        """Drop what a newly connected block confirmed, and whatever now conflicts with it."""
        confirmed = [tx.txid for tx in transactions]
        for txid in confirmed:
            self._remove_one(txid)
        for tx in transactions:
            for txin in tx.inputs:
                spender = self._spenders.get(txin.prevout)
                if spender is not None:
                    removed = self.remove(spender)
                    log.info("mempool: %d transaction(s) conflicting with block removed", len(removed))

    def clear(self) -> list[Transaction]:
        """Empty the pool; returns its transactions in arrival order."""
        transactions = [entry.tx for entry in self._entries.values()]
        self._entries.clear()
        self._spenders.clear()
        self._parents.clear()
        self._children.clear()
        return transactions

    def readd(self, transactions: Iterable[Transaction]) -> list[bytes]:
        """Offer transactions again (after a reorg or a restart); returns the txids refused."""
        refused = []
        for tx in transactions:
            try:
                self.accept(tx)
            except BroadcastError as exc:
                if exc.reason is not RejectReason.ALREADY_IN_MEMPOOL:
                    log.info("mempool: dropped %s: %s", tx.txid_hex, exc.detail)
                    refused.append(tx.txid)
        return refused
