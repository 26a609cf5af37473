"""BOLT 3 transactions: scripts, commitment/HTLC/closing builders, signing and witnesses.

Modules: `scripts` (every witness script), `fees` (formats, expected weights, trimming),
`keys` (per-commitment keys), `funding`, `commitment`, `htlc`, `signing` (signatures and
witness stacks), `closing`, `weights` (witness weights for sweep fee estimation).

Conventions: keys are 33-byte compressed points as bytes, private keys 32-byte secrets;
on-chain amounts are int satoshis (`*_sat`), balances and HTLCs int millisatoshis (`*_msat`);
signatures are DER without the sighash byte. Nothing here does I/O.
"""

from ampere.channel.transactions.closing import (
    ClosingTransaction,
    ClosingVariant,
    build_legacy_closing_tx,
    build_simple_closing_tx,
    dust_threshold_sat,
    finalize_closing,
    sign_closing,
    verify_closing_signature,
)
from ampere.channel.transactions.commitment import (
    CommitmentOutput,
    CommitmentParams,
    CommitmentTransaction,
    Htlc,
    HtlcDirection,
    OutputKind,
    build_commitment,
    commitment_number_from_tx,
    commitment_obscuring_factor,
    untrimmed_htlcs,
)
from ampere.channel.transactions.errors import (
    FundingOutputNotFoundError,
    SignatureError,
    TransactionBuildError,
)
from ampere.channel.transactions.fees import (
    ANCHOR_OUTPUT_SAT,
    CommitmentFormat,
    commitment_base_fee_sat,
    htlc_success_fee_sat,
    htlc_timeout_fee_sat,
)
from ampere.channel.transactions.funding import FundingOutput, find_funding_output, funding_script_pubkey
from ampere.channel.transactions.htlc import HtlcTransaction, HtlcTxKind, htlc_transactions
from ampere.channel.transactions.keys import ChannelBasepoints, CommitmentKeys, derive_commitment_keys
from ampere.channel.transactions.signing import (
    finalize_commitment,
    finalize_htlc_tx,
    sign_commitment,
    sign_local_htlc,
    sign_remote_htlc,
    verify_commitment_signature,
    verify_local_htlc_signature,
    verify_remote_htlc_signature,
)

__all__ = [
    "ANCHOR_OUTPUT_SAT",
    "ChannelBasepoints",
    "ClosingTransaction",
    "ClosingVariant",
    "CommitmentFormat",
    "CommitmentKeys",
    "CommitmentOutput",
    "CommitmentParams",
    "CommitmentTransaction",
    "FundingOutput",
    "FundingOutputNotFoundError",
    "Htlc",
    "HtlcDirection",
    "HtlcTransaction",
    "HtlcTxKind",
    "OutputKind",
    "SignatureError",
    "TransactionBuildError",
    "build_commitment",
    "build_legacy_closing_tx",
    "build_simple_closing_tx",
    "commitment_base_fee_sat",
    "commitment_number_from_tx",
    "commitment_obscuring_factor",
    "derive_commitment_keys",
    "dust_threshold_sat",
    "finalize_closing",
    "finalize_commitment",
    "finalize_htlc_tx",
    "find_funding_output",
    "funding_script_pubkey",
    "htlc_success_fee_sat",
    "htlc_timeout_fee_sat",
    "htlc_transactions",
    "sign_closing",
    "sign_commitment",
    "sign_local_htlc",
    "sign_remote_htlc",
    "untrimmed_htlcs",
    "verify_closing_signature",
    "verify_commitment_signature",
    "verify_local_htlc_signature",
    "verify_remote_htlc_signature",
]
