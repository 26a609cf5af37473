"""Our own revoked commitment on chain: what a cheater (`dev-cheat`, or a node run from an old copy of
its state) can still hope for, and what it stands to lose.

Every output but the peer's `to_remote` is the peer's to take with the revocation key. We track them so
that `listclosed` shows where they went: `to_local`, which we claim ourselves after `to_self_delay`
only if the peer has not punished us by then; the HTLC outputs we can recognise (from the HTLCs we still
know, see `classify`), which we cannot claim (the peer's second-stage signatures for a revoked state are
gone); and our anchor, which we never use to speed up a revoked commitment.
"""

from __future__ import annotations

from ampere.bitcoin.script import p2wsh_script
from ampere.bitcoin.tx import Transaction
from ampere.channel.transactions.scripts import (
    anchor_script,
    offered_htlc_script,
    received_htlc_script,
    to_local_script,
)
from ampere.channel.twoway.state import ChannelState
from ampere.onchain.claims import ClaimInput, WitnessKind
from ampere.onchain.classify import RevokedLocalCommitment
from ampere.onchain.keys import KeyFamily
from ampere.onchain.outputs import OutputPath, TrackedOutput

__all__ = ["revoked_local_outputs"]


def revoked_local_outputs(
    state: ChannelState, revoked: RevokedLocalCommitment, tx: Transaction
) -> tuple[TrackedOutput, ...]:
    local, remote = state.require_params()
    keys = revoked.keys
    delay = remote.to_self_delay
    anchors = state.commitment_format.has_anchors
    to_local = to_local_script(keys.revocation_pubkey, delay, keys.local_delayed_pubkey)
    htlc_scripts: dict[bytes, tuple[OutputPath, bytes]] = {}
    for htlc in revoked.htlcs:
        if htlc.offered:
            script = offered_htlc_script(
                keys.revocation_pubkey,
                keys.local_htlc_pubkey,
                keys.remote_htlc_pubkey,
                htlc.payment_hash,
                anchors=anchors,
            )
            htlc_scripts[p2wsh_script(script)] = (OutputPath.HTLC_TIMEOUT, htlc.payment_hash)
        else:
            script = received_htlc_script(
                keys.revocation_pubkey,
                keys.local_htlc_pubkey,
                keys.remote_htlc_pubkey,
                htlc.payment_hash,
                htlc.cltv_expiry,
                anchors=anchors,
            )
            htlc_scripts[p2wsh_script(script)] = (OutputPath.HTLC_SUCCESS, htlc.payment_hash)
    our_anchor = p2wsh_script(anchor_script(local.basepoints.funding_pubkey)) if anchors else None
    tracked: list[TrackedOutput] = []
    for vout, txout in enumerate(tx.outputs):
        outpoint = tx.outpoint(vout)
        script_pubkey = txout.script_pubkey
        if script_pubkey == p2wsh_script(to_local):
            claim = ClaimInput(
                outpoint,
                txout.value,
                WitnessKind.DELAYED,
                to_local,
                KeyFamily.DELAYED,
                revoked.per_commitment_point,
                delay,
            )
            tracked.append(TrackedOutput(outpoint, txout.value, OutputPath.TO_LOCAL, claim=claim, csv=delay))
        elif script_pubkey in htlc_scripts:
            path, payment_hash = htlc_scripts[script_pubkey]
            tracked.append(TrackedOutput(outpoint, txout.value, path, payment_hash=payment_hash))
        elif script_pubkey == our_anchor:
            tracked.append(TrackedOutput(outpoint, txout.value, OutputPath.ANCHOR))
    return tuple(tracked)
