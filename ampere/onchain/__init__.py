"""On-chain enforcement (BOLT 5), sans-IO: what spent the funding output, and how every output
of it gets back to our wallet.

Modules: `classify` (mutual close, our commitment, the peer's current/next or revoked one),
`own_revoked` (our own revoked commitment, broadcast by a cheat),
`resolver` (`ChannelResolver`, one per closed channel, driven by `events`), `sweeps` (our and
the peer's unrevoked commitments), `justice` (revoked commitments: batching, fee bumps),
`claims` (multi-input claim transactions), `outputs` (tracked outputs, second stages), `fees`
(anchor CPFP, wallet-funded zero-fee HTLC transactions), `keys` (the signer interface).
Nothing here does I/O; the node watches the chain, stores the state and broadcasts.
"""

from ampere.onchain.claims import ClaimInput, WitnessKind, build_claim_tx, claim_weight, sign_claim_tx
from ampere.onchain.classify import (
    Classification,
    LocalCommitment,
    MutualClose,
    RemoteCommitment,
    RemoteWhich,
    RevocationLookup,
    RevokedCommitment,
    RevokedLocalCommitment,
    UnknownSpend,
    classify,
)
from ampere.onchain.errors import ClaimBuildError, ClassificationError, OnchainError, ResolverDecodeError
from ampere.onchain.events import (
    BlockConnected,
    BlockDisconnected,
    BroadcastTx,
    BumpCommitment,
    FundAndBroadcast,
    PreimageFound,
    PreimageLearned,
    Resolved,
    ResolverAction,
    ResolverEvent,
    SpendConfirmed,
    WatchOutpoint,
)
from ampere.onchain.keys import InMemoryOnchainSigner, KeyFamily, OnchainSigner
from ampere.onchain.outputs import OutputPath, OutputStatus, SecondStage, TrackedOutput
from ampere.onchain.resolver import ChannelResolver, ClaimInFlight, ResolverContext

__all__ = [
    "BlockConnected",
    "BlockDisconnected",
    "BroadcastTx",
    "BumpCommitment",
    "ChannelResolver",
    "ClaimBuildError",
    "ClaimInFlight",
    "ClaimInput",
    "Classification",
    "ClassificationError",
    "FundAndBroadcast",
    "InMemoryOnchainSigner",
    "KeyFamily",
    "LocalCommitment",
    "MutualClose",
    "OnchainError",
    "OnchainSigner",
    "OutputPath",
    "OutputStatus",
    "PreimageFound",
    "PreimageLearned",
    "RemoteCommitment",
    "RemoteWhich",
    "Resolved",
    "ResolverAction",
    "ResolverContext",
    "ResolverDecodeError",
    "ResolverEvent",
    "RevocationLookup",
    "RevokedCommitment",
    "RevokedLocalCommitment",
    "SecondStage",
    "SpendConfirmed",
    "TrackedOutput",
    "UnknownSpend",
    "WatchOutpoint",
    "WitnessKind",
    "build_claim_tx",
    "claim_weight",
    "classify",
    "sign_claim_tx",
]
