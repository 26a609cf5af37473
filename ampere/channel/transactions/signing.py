"""Signing and verifying BOLT 3 transactions, and the witness stacks that spend their outputs.

Signatures here are DER without the sighash byte (what BOLT 3's vectors print; the wire carries
the 64-byte compact form, see `ampere.bitcoin.keys.der_to_compact`). Witness builders take such
a signature plus its sighash type and append the sighash byte themselves, so a caller cannot
forget it or attach the wrong one.

Private keys are 32-byte secrets as bytes.
"""

from __future__ import annotations

from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.keys import sign_der, verify_der
from ampere.bitcoin.sighash import SigHash, bip143_sighash
from ampere.bitcoin.tx import Transaction
from ampere.channel.transactions.commitment import CommitmentTransaction
from ampere.channel.transactions.errors import SignatureError
from ampere.channel.transactions.fees import CommitmentFormat
from ampere.channel.transactions.htlc import HtlcTransaction, HtlcTxKind

__all__ = [
    "anchor_sweep_witness",
    "anchor_witness",
    "commitment_sighash",
    "finalize_commitment",
    "finalize_htlc_tx",
    "funding_spend_witness",
    "htlc_revocation_witness",
    "htlc_sighash",
    "htlc_tx_witness",
    "offered_htlc_preimage_witness",
    "received_htlc_timeout_witness",
    "remote_htlc_sighash_type",
    "sign_commitment",
    "sign_input",
    "sign_local_htlc",
    "sign_remote_htlc",
    "to_local_delayed_witness",
    "to_local_revocation_witness",
    "to_remote_anchors_witness",
    "to_remote_witness",
    "verify_commitment_signature",
    "verify_input",
    "verify_local_htlc_signature",
    "verify_remote_htlc_signature",
]


# --- generic segwit v0 input signing --------------------------------------------------------------


def sign_input(
    tx: Transaction,
    input_index: int,
    witness_script: bytes,
    amount_sat: int,
    privkey: bytes,
    sighash: SigHash = SigHash.ALL,
) -> bytes:
    """DER signature (no sighash byte) of a P2WSH input; for P2WPKH pass the P2PKH script code."""
    digest = bip143_sighash(tx, input_index, witness_script, amount_sat, sighash)
    return sign_der(privkey, digest)


def verify_input(
    tx: Transaction,
    input_index: int,
    witness_script: bytes,
    amount_sat: int,
    pubkey: bytes,
    signature: bytes,
    sighash: SigHash = SigHash.ALL,
) -> bool:
    digest = bip143_sighash(tx, input_index, witness_script, amount_sat, sighash)
    return verify_der(pubkey, signature, digest)


def _with_sighash(signature: bytes, sighash: SigHash) -> bytes:
    if not signature or signature[0] != 0x30:
        raise SignatureError("expected a DER signature without its sighash byte")
    return signature + bytes([sighash])


# --- funding output (commitment and closing transactions) -------------------------------------------


def funding_spend_witness(
    witness_script: bytes,
    pubkey_a: bytes,
    signature_a: bytes,
    pubkey_b: bytes,
    signature_b: bytes,
) -> tuple[bytes, ...]:
    """`0 <sig for pubkey1> <sig for pubkey2> <script>`: OP_CHECKMULTISIG matches signatures to
    keys in order, so the signatures follow the funding script's lexicographic key order. The
    leading empty item feeds CHECKMULTISIG's extra pop."""
    if pubkey_a == pubkey_b:
        raise SignatureError("the two funding pubkeys must differ")
    first, second = (signature_a, signature_b) if pubkey_a < pubkey_b else (signature_b, signature_a)
    return b"", _with_sighash(first, SigHash.ALL), _with_sighash(second, SigHash.ALL), witness_script


def commitment_sighash(commitment: CommitmentTransaction) -> bytes:
    return bip143_sighash(
        commitment.tx, 0, commitment.funding_witness_script, commitment.params.funding_amount_sat, SigHash.ALL
    )


def sign_commitment(commitment: CommitmentTransaction, funding_privkey: bytes) -> bytes:
    """Either peer's signature of this commitment (the owner's, or the one sent in commitment_signed)."""
    return sign_der(funding_privkey, commitment_sighash(commitment))


def verify_commitment_signature(
    commitment: CommitmentTransaction, funding_pubkey: bytes, signature: bytes
) -> bool:
    return verify_der(funding_pubkey, signature, commitment_sighash(commitment))


def finalize_commitment(
    commitment: CommitmentTransaction, local_signature: bytes, remote_signature: bytes
) -> Transaction:
    """The broadcastable commitment: `local` is its owner, `remote` the peer that signed it for them."""
    keys = commitment.keys
    witness = funding_spend_witness(
        commitment.funding_witness_script,
        keys.local_funding_pubkey,
        local_signature,
        keys.remote_funding_pubkey,
        remote_signature,
    )
    return commitment.tx.with_witness(0, witness)


# --- HTLC transactions ------------------------------------------------------------------------------


def remote_htlc_sighash_type(fmt: CommitmentFormat) -> SigHash:
    """With anchors, the peer's HTLC signature commits only to its own input/output pair so the
    owner can add fee inputs and outputs to the zero-fee HTLC transaction (BOLT 5)."""
    return SigHash.SINGLE_ANYONECANPAY if fmt.has_anchors else SigHash.ALL


def htlc_sighash(htlc_tx: HtlcTransaction, sighash: SigHash) -> bytes:
    return bip143_sighash(htlc_tx.tx, 0, htlc_tx.input_witness_script, htlc_tx.input_amount_sat, sighash)


def sign_remote_htlc(htlc_tx: HtlcTransaction, remote_htlc_privkey: bytes) -> bytes:
    """The signature the commitment's non-owner gives (one `htlc_signature` of commitment_signed)."""
    return sign_der(
        remote_htlc_privkey, htlc_sighash(htlc_tx, remote_htlc_sighash_type(htlc_tx.commitment_format))
    )


def verify_remote_htlc_signature(
    htlc_tx: HtlcTransaction, remote_htlc_pubkey: bytes, signature: bytes
) -> bool:
    sighash = remote_htlc_sighash_type(htlc_tx.commitment_format)
    return verify_der(remote_htlc_pubkey, signature, htlc_sighash(htlc_tx, sighash))


def sign_local_htlc(htlc_tx: HtlcTransaction, local_htlc_privkey: bytes) -> bytes:
    """The owner's own signature: always SIGHASH_ALL, or anyone could graft inputs and outputs on."""
    return sign_der(local_htlc_privkey, htlc_sighash(htlc_tx, SigHash.ALL))


def verify_local_htlc_signature(htlc_tx: HtlcTransaction, local_htlc_pubkey: bytes, signature: bytes) -> bool:
    return verify_der(local_htlc_pubkey, signature, htlc_sighash(htlc_tx, SigHash.ALL))


def htlc_tx_witness(
    htlc_tx: HtlcTransaction,
    remote_signature: bytes,
    local_signature: bytes,
    payment_preimage: bytes | None = None,
) -> tuple[bytes, ...]:
    """`0 <remotehtlcsig> <localhtlcsig> <preimage or empty> <script>` for input 0."""
    if htlc_tx.kind is HtlcTxKind.SUCCESS:
        if payment_preimage is None or sha256(payment_preimage) != htlc_tx.htlc.payment_hash:
            raise SignatureError("HTLC-success needs the preimage of the HTLC's payment hash")
        last = payment_preimage
    else:
        if payment_preimage is not None:
            raise SignatureError("HTLC-timeout takes no preimage")
        last = b""
    return (
        b"",
        _with_sighash(remote_signature, remote_htlc_sighash_type(htlc_tx.commitment_format)),
        _with_sighash(local_signature, SigHash.ALL),
        last,
        htlc_tx.input_witness_script,
    )


def finalize_htlc_tx(
    htlc_tx: HtlcTransaction,
    remote_signature: bytes,
    local_signature: bytes,
    payment_preimage: bytes | None = None,
) -> Transaction:
    """The HTLC transaction with its witness; with anchors it still pays no fee and needs
    inputs added (the remote signature allows that), the local one then re-signed."""
    witness = htlc_tx_witness(htlc_tx, remote_signature, local_signature, payment_preimage)
    return htlc_tx.tx.with_witness(0, witness)


# --- sweeping commitment and HTLC transaction outputs -------------------------------------------------
# Each returns a full witness stack, ending with the witness script where there is one. The
# spending input's nSequence matters: to_local (and HTLC transaction outputs) on the delayed path
# need nSequence = to_self_delay; with anchors, to_remote and the peer's HTLC claims need 1.


def to_local_delayed_witness(
    signature: bytes, witness_script: bytes, sighash: SigHash = SigHash.ALL
) -> tuple[bytes, ...]:
    """The owner, after to_self_delay: `<local_delayedsig> <>` (also for HTLC transaction outputs)."""
    return _with_sighash(signature, sighash), b"", witness_script


def to_local_revocation_witness(
    signature: bytes, witness_script: bytes, sighash: SigHash = SigHash.ALL
) -> tuple[bytes, ...]:
    """The peer, on a revoked commitment or HTLC transaction: `<revocation_sig> 1`."""
    return _with_sighash(signature, sighash), b"\x01", witness_script


def to_remote_witness(
    signature: bytes, remote_pubkey: bytes, sighash: SigHash = SigHash.ALL
) -> tuple[bytes, ...]:
    """P2WPKH to_remote (no anchors)."""
    return _with_sighash(signature, sighash), remote_pubkey


def to_remote_anchors_witness(
    signature: bytes, witness_script: bytes, sighash: SigHash = SigHash.ALL
) -> tuple[bytes, ...]:
    """CSV-1 to_remote (anchors): `<remote_sig>`, input nSequence 1."""
    return _with_sighash(signature, sighash), witness_script


def offered_htlc_preimage_witness(
    signature: bytes, payment_preimage: bytes, witness_script: bytes, sighash: SigHash = SigHash.ALL
) -> tuple[bytes, ...]:
    """The commitment's non-owner claims an HTLC the owner offered: `<remotehtlcsig> <preimage>`."""
    if len(payment_preimage) != 32:
        raise SignatureError("payment preimage must be 32 bytes")
    return _with_sighash(signature, sighash), payment_preimage, witness_script


def received_htlc_timeout_witness(
    signature: bytes, witness_script: bytes, sighash: SigHash = SigHash.ALL
) -> tuple[bytes, ...]:
    """The non-owner takes back an HTLC the owner received once nLockTime >= cltv_expiry:
    `<remotehtlcsig> <>`."""
    return _with_sighash(signature, sighash), b"", witness_script


def htlc_revocation_witness(
    signature: bytes, revocation_pubkey: bytes, witness_script: bytes, sighash: SigHash = SigHash.ALL
) -> tuple[bytes, ...]:
    """Penalty on a revoked commitment's HTLC output: `<revocation_sig> <revocationpubkey>`."""
    return _with_sighash(signature, sighash), revocation_pubkey, witness_script


def anchor_witness(
    signature: bytes, witness_script: bytes, sighash: SigHash = SigHash.ALL
) -> tuple[bytes, ...]:
    """The anchor's owner, with its funding key (for CPFP)."""
    return _with_sighash(signature, sighash), witness_script


def anchor_sweep_witness(witness_script: bytes) -> tuple[bytes, ...]:
    """Anyone, 16 blocks after confirmation (input nSequence 16): `<>`."""
    return b"", witness_script
