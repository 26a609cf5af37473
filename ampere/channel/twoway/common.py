"""What every phase's handlers share: the handler signature, the signing steps of a commitment
dance, and signature conversions.

A handler is a pure function `(state, event, context) -> Transition`. The context carries what
is not channel state: the signer, the local policy and the node's current feerate estimate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ampere.bitcoin.errors import InvalidKeyError
from ampere.bitcoin.keys import compact_to_der, der_to_compact, is_low_s
from ampere.bitcoin.tx import Transaction
from ampere.channel.signer import ChannelSigner
from ampere.channel.transactions.commitment import CommitmentTransaction
from ampere.channel.transactions.funding import FundingOutput
from ampere.channel.transactions.htlc import htlc_transactions
from ampere.channel.transactions.signing import (
    finalize_commitment,
    verify_commitment_signature,
    verify_remote_htlc_signature,
)
from ampere.channel.twoway.actions import Action, LocalCommitmentSigned
from ampere.channel.twoway.config import ChannelConfig
from ampere.channel.twoway.errors import ChannelError
from ampere.channel.twoway.ledger import (
    View,
    build_view_commitment,
    mark_remote_signed,
    snapshot,
)
from ampere.channel.twoway.messages import CommitmentSigned
from ampere.channel.twoway.state import ChannelState, Ledger

__all__ = [
    "Context",
    "Handler",
    "Transition",
    "compact",
    "der",
    "funding_output",
    "kept_local_commitment",
    "local_commitment",
    "sign_remote_commitment",
    "signed_local_commitment",
    "verify_local_commitment",
]


@dataclass(frozen=True, slots=True)
class Context:
    signer: ChannelSigner
    config: ChannelConfig
    feerate_estimate_per_kw: int | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    state: ChannelState
    actions: tuple[Action, ...] = ()


Handler = Callable[[ChannelState, Any, Context], Transition]


def compact(signature_der: bytes) -> bytes:
    return der_to_compact(signature_der)


def der(signature: bytes, what: str) -> bytes:
    """The DER form of a peer's 64-byte signature; high-S or malformed ones fail here (BOLT 2
    requires LOW-S everywhere)."""
    if len(signature) != 64 or not is_low_s(signature):
        raise ChannelError(f"{what} is not a valid low-S signature")
    try:
        return compact_to_der(signature)
    except InvalidKeyError as exc:
        raise ChannelError(f"{what} is malformed") from exc


def local_commitment(
    state: ChannelState, ledger: Ledger, ctx: Context, view: View = View.LOCAL
) -> CommitmentTransaction:
    number = ledger.local_commitment_number + (0 if view is View.LOCAL else 1)
    point = ctx.signer.per_commitment_point(number)
    return build_view_commitment(state, snapshot(ledger, view), number, point)


def verify_local_commitment(
    state: ChannelState,
    commitment: CommitmentTransaction,
    signature: bytes,
    htlc_signatures: tuple[bytes, ...],
) -> None:
    """BOLT 2 commitment_signed receiver checks: the commitment signature, the HTLC signature
    count, and every HTLC signature in output order."""
    _, remote = state.require_params()
    if not verify_commitment_signature(
        commitment, remote.basepoints.funding_pubkey, der(signature, "signature")
    ):
        raise ChannelError(
            f"invalid signature for commitment {commitment.commitment_number} (tx {commitment.tx.to_hex()})"
        )
    htlc_txs = htlc_transactions(commitment)
    if len(htlc_signatures) != len(htlc_txs):
        raise ChannelError(
            f"commitment_signed carries {len(htlc_signatures)} HTLC signatures "
            f"for {len(htlc_txs)} HTLC outputs"
        )
    for index, (htlc_tx, signature_bytes) in enumerate(zip(htlc_txs, htlc_signatures, strict=True)):
        if not verify_remote_htlc_signature(
            htlc_tx, commitment.keys.remote_htlc_pubkey, der(signature_bytes, "htlc_signature")
        ):
            raise ChannelError(
                f"invalid htlc_signature {index} for commitment {commitment.commitment_number}"
            )


def sign_remote_commitment(
    state: ChannelState, ledger: Ledger, ctx: Context
) -> tuple[Ledger, CommitmentSigned]:
    """Sign the peer's next commitment (REMOTE_NEXT) and move the updates it covers on."""
    if ledger.remote_next_point is None:
        raise ChannelError("the peer's next per-commitment point is not known yet")
    number = ledger.remote_commitment_number + 1
    point = ledger.remote_next_point
    commitment = build_view_commitment(state, snapshot(ledger, View.REMOTE_NEXT), number, point)
    signatures = ctx.signer.sign_counterparty_commitment(commitment, point)
    message = CommitmentSigned(
        channel_id=state.channel_id,
        signature=compact(signatures.commitment_signature),
        htlc_signature=tuple(compact(sig) for sig in signatures.htlc_signatures),
        funding_txid=state.require_funding().txid,
    )
    ledger = replace(
        mark_remote_signed(ledger, number),
        remote_commitment_number=number,
        awaiting_revocation=True,
        remote_prev_point=ledger.remote_point,
        remote_point=point,
        remote_next_point=None,
        last_sent_commitment_signed=message,
        revoke_sent_after_commit=False,
    )
    return ledger, message


def funding_output(state: ChannelState) -> FundingOutput:
    local, remote = state.require_params()
    return FundingOutput(
        state.require_funding(),
        state.funding_sat,
        local.basepoints.funding_pubkey,
        remote.basepoints.funding_pubkey,
    )


def signed_local_commitment(state: ChannelState, ctx: Context) -> Transaction:
    """Our newest commitment with both signatures: what a force close broadcasts."""
    ledger = state.require_ledger()
    commitment = local_commitment(state, ledger, ctx)
    ours = ctx.signer.sign_holder_commitment(commitment)
    return finalize_commitment(commitment, ours, der(ledger.local_commit_signature, "stored signature"))


def kept_local_commitment(state: ChannelState, ctx: Context) -> tuple[Action, ...]:
    """Developer mode: our newest commitment, fully signed, while the signer still signs it."""
    if not ctx.config.keep_signed_commitments:
        return ()
    number = state.require_ledger().local_commitment_number
    return (LocalCommitmentSigned(state.channel_id, number, signed_local_commitment(state, ctx)),)
