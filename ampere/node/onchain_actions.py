"""The chain-facing half of a resolver's actions: broadcasts, and the ones the node's wallet pays for.

`BroadcastTx` goes to the chain as it is; "already in the mempool" or "already in the chain" count as
success (a rebroadcast, or the peer's copy of the same transaction). `FundAndBroadcast` (an anchor
channel's zero-fee HTLC transaction) and `BumpCommitment` (a CPFP child of our commitment through our
anchor) take one confirmed wallet coin, with the change going back to a fresh wallet address; those
are shown to the wallet at once, so that the coin is not used twice. Plain claims are left to the chain
follower's mempool polling, which also tells the wallet when a replaced claim left the mempool.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from ampere.bitcoin.signing import sign_p2wpkh_input
from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.chain.errors import BroadcastError, ChainError, RejectReason
from ampere.node.node import Node
from ampere.onchain import BumpCommitment, ClaimBuildError, FundAndBroadcast, OnchainSigner
from ampere.onchain.fees import anchor_cpfp_tx, fund_second_stage, sign_anchor_input
from ampere.wallet.wallet import WalletCoin

__all__ = ["ClaimBroadcaster", "Rejection"]

log = logging.getLogger(__name__)

_ACCEPTED = (RejectReason.ALREADY_IN_MEMPOOL, RejectReason.ALREADY_IN_CHAIN)
_KEPT_REJECTIONS = 100


@dataclass(frozen=True, slots=True)
class Rejection:
    """A broadcast the chain refused (kept for diagnostics: the resolver retries on its own)."""

    channel_id: bytes
    label: str
    txid: bytes
    reason: RejectReason
    detail: str


class ClaimBroadcaster:
    def __init__(self, node: Node) -> None:
        self._node = node
        self.rejections: deque[Rejection] = deque(maxlen=_KEPT_REJECTIONS)
        # The wallet coin of each channel's CPFP child: a later bump replaces that child (same coin).
        self._cpfp_coins: dict[bytes, OutPoint] = {}
        self._cpfp_children: dict[bytes, bytes] = {}

    async def broadcast(self, channel_id: bytes, tx: Transaction, label: str) -> bool:
        try:
            await self._node.chain.backend.broadcast(tx)
        except BroadcastError as exc:
            if exc.reason not in _ACCEPTED:
                log.warning("channel %s: %s %s refused: %s", channel_id.hex(), label, tx.txid_hex, exc)
                self.rejections.append(Rejection(channel_id, label, tx.txid, exc.reason, exc.detail))
                return False
        except ChainError as exc:
            log.warning("channel %s: %s %s not broadcast: %s", channel_id.hex(), label, tx.txid_hex, exc)
            return False
        log.info("channel %s: broadcast %s %s", channel_id.hex(), label, tx.txid_hex)
        return True

    async def fund_and_broadcast(
        self, channel_id: bytes, action: FundAndBroadcast, signer: OnchainSigner, feerate_per_kw: int
    ) -> Transaction | None:
        """The zero-fee HTLC transaction grown with a wallet coin, signed and broadcast."""
        change = self._node.wallet.new_script_pubkey()
        for coin in self._fee_coins():
            try:
                grown = fund_second_stage(action.stage, action.preimage, coin, change, feerate_per_kw, signer)
            except ClaimBuildError:
                continue
            tx = self._sign_wallet_input(grown, 1, coin)
            if not await self.broadcast(channel_id, tx, action.label):
                return None
            await self._node.wallet.transaction_seen(tx)  # its coin must not pay for anything else
            return tx
        log.warning("channel %s: no wallet coin can pay for %s", channel_id.hex(), action.label)
        return None

    async def bump_commitment(
        self, channel_id: bytes, action: BumpCommitment, signer: OnchainSigner
    ) -> Transaction | None:
        """A child of our commitment spending our anchor and a wallet coin (replacing our earlier one)."""
        change = self._node.wallet.new_script_pubkey()
        previous = self._cpfp_coins.get(channel_id)
        coins = self._fee_coins()
        if previous is not None:
            earlier = self._node.wallet.wallet.coin(previous)
            if earlier is not None:
                coins = [earlier, *(c for c in coins if c.outpoint != previous)]
        for coin in coins:
            try:
                child = anchor_cpfp_tx(
                    action.anchor.outpoint,
                    coin,
                    change,
                    action.commitment_weight,
                    action.commitment_fee_sat,
                    action.feerate_per_kw,
                )
            except ClaimBuildError:
                continue
            signed = self._sign_wallet_input(sign_anchor_input(child, action.anchor, signer), 1, coin)
            if not await self.broadcast(channel_id, signed, "anchor CPFP"):
                return None
            replaced = self._cpfp_children.get(channel_id)
            if replaced is not None and replaced != signed.txid:
                await self._node.wallet.transaction_dropped(replaced)
            self._cpfp_coins[channel_id] = coin.outpoint
            self._cpfp_children[channel_id] = signed.txid
            await self._node.wallet.transaction_seen(signed)
            return signed
        log.warning("channel %s: no wallet coin can pay for an anchor CPFP", channel_id.hex())
        return None

    def _fee_coins(self) -> list[WalletCoin]:
        """Confirmed wallet coins, smallest first (the fee inputs should not lock up big coins)."""
        wallet = self._node.wallet.wallet
        coins = wallet.spendable_coins(self._node.follower.height, min_confirmations=1)
        return sorted(coins, key=lambda coin: (coin.value, coin.outpoint.txid, coin.outpoint.vout))

    def _sign_wallet_input(self, tx: Transaction, index: int, coin: WalletCoin) -> Transaction:
        key = self._node.wallet.wallet.keychain.private_key(coin.path)
        return sign_p2wpkh_input(tx, index, key, coin.value)
