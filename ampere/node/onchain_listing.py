"""`listclosed` entries, and what a resolution tells the HTLC listeners.

A force close lists the resolver's outputs as they are (`ChannelResolver.listclosed_entry`). A mutual
close has nothing to claim: its outputs paying our closing script are listed as `to_local`, swept by the
closing transaction itself once it confirmed. Every entry also carries `state`: `closing` (a mutual close
not yet confirmed), `force_closing` (outputs being resolved) or `closed` (every output resolved), the
words `listchannels` uses.
"""

from __future__ import annotations

from typing import Any

from ampere.channel.twoway import HtlcFailed
from ampere.channel.twoway.actions import CloseType
from ampere.node.onchain_record import ResolutionRecord
from ampere.onchain import OutputPath, OutputStatus

__all__ = [
    "ANTI_REORG_DEPTH",
    "ONCHAIN_TIMEOUT_REASON",
    "listclosed_entry",
    "onchain_timeout",
    "timed_out_htlcs",
]

# A timeout is reported to the payment side only this deep: a shallower one could still be undone.
ANTI_REORG_DEPTH = 6
ONCHAIN_TIMEOUT_REASON = (
    "HTLC timed out on chain (the channel was force closed and the peer never claimed it)"
)


def listclosed_entry(record: ResolutionRecord) -> dict[str, Any]:
    resolver = record.resolver
    entry = resolver.listclosed_entry()
    if resolver.close_type is CloseType.MUTUAL:
        tx = resolver.closing_tx
        confirmed = resolver.closing_height
        entry["outputs"] = [
            {
                "outpoint": str(tx.outpoint(vout)),
                "amount_sat": tx.outputs[vout].value,
                "path": OutputPath.TO_LOCAL.value,
                "claimable_at_height": confirmed,
                "status": (OutputStatus.PENDING if confirmed is None else OutputStatus.SWEPT).value,
                "sweep_txid": None if confirmed is None else tx.txid_hex,
                "swept_by": None if confirmed is None else "us",
            }
            for vout in record.mutual_vouts
        ]
    if resolver.resolved:
        entry["state"] = "closed"
    elif resolver.close_type is CloseType.MUTUAL:
        entry["state"] = "closing"
    else:
        entry["state"] = "force_closing"
    entry["closing_height"] = resolver.closing_height
    return entry


def onchain_timeout(htlc_id: int, payment_hash: bytes) -> HtlcFailed:
    """The failure of our offered HTLC that we took back on chain: no onion reason exists for it."""
    return HtlcFailed(htlc_id, payment_hash, b"", local_reason=ONCHAIN_TIMEOUT_REASON)


def timed_out_htlcs(record: ResolutionRecord) -> list[HtlcFailed]:
    """Our offered HTLCs that are failed for good, not reported yet: those whose timeout claim is deep
    enough, and those the closing transaction has no output for (trimmed as dust, or not in that
    commitment at all) once it is as deep, since nobody can claim them any more."""
    resolver = record.resolver
    deep = resolver.tip - ANTI_REORG_DEPTH + 1
    closing_deep = (
        resolver.closing_height is not None and resolver.closing_height <= deep and not resolver.revoked_local
    )
    with_output = {out.payment_hash for out in resolver.outputs if out.parent is None and out.payment_hash}
    hashes = {
        out.payment_hash
        for out in resolver.outputs
        # Taken back after the timeout, or with the revocation key from a cheater's commitment.
        if out.path in (OutputPath.HTLC_TIMEOUT, OutputPath.JUSTICE)
        and out.payment_hash
        and out.parent is None
        and out.status is OutputStatus.SWEPT
        and out.by_us
        and out.spent_height is not None
        and out.spent_height <= deep
    }
    return [
        onchain_timeout(htlc.htlc_id, htlc.payment_hash)
        for htlc in record.offered
        if htlc.htlc_id not in record.failures_reported
        and htlc.payment_hash not in resolver.preimages
        and (htlc.payment_hash in hashes or (closing_deep and htlc.payment_hash not in with_output))
    ]
