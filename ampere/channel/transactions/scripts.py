"""Every BOLT 3 witness script, and the output scripts that commit to them.

Keys are 33-byte compressed points as bytes. Each `*_script` returns a witness script (what a
P2WSH output hashes and its spender reveals); wrap it with `p2wsh_script` for the output script.
The scripts are built from the spec text of BOLT 3 "Commitment Transaction Outputs"; a single
byte of difference changes the txid and invalidates every signature the peer sent, so the
vector tests compare them byte for byte.
"""

from __future__ import annotations

from ampere.bitcoin.hashes import hash160, ripemd160
from ampere.bitcoin.script import (
    Op,
    build_script,
    multisig_2of2_script,
    p2wpkh_script,
    p2wsh_script,
)
from ampere.channel.transactions.errors import TransactionBuildError

__all__ = [
    "anchor_script",
    "check_pubkey",
    "funding_script",
    "htlc_output_script",
    "offered_htlc_script",
    "received_htlc_script",
    "to_local_script",
    "to_remote_anchors_script",
    "to_remote_script_pubkey",
]

# BOLT 2 carries to_self_delay as a u16 and cltv_expiry as a u32.
MAX_TO_SELF_DELAY = 0xFFFF
MAX_CLTV_EXPIRY = 0xFFFF_FFFF


def check_pubkey(pubkey: bytes, what: str) -> bytes:
    """Shape check only (length and prefix): on-curve validity is the key layer's job, and this
    runs for every output of every commitment, so it must stay cheap."""
    if len(pubkey) != 33 or pubkey[0] not in (2, 3):
        raise TransactionBuildError(f"{what} must be a 33-byte compressed public key")
    return pubkey


def _check_payment_hash(payment_hash: bytes) -> bytes:
    if len(payment_hash) != 32:
        raise TransactionBuildError("payment_hash must be 32 bytes")
    return payment_hash


def _check_delay(to_self_delay: int) -> int:
    if not 0 <= to_self_delay <= MAX_TO_SELF_DELAY:
        raise TransactionBuildError("to_self_delay must fit in a u16")
    return to_self_delay


def funding_script(pubkey_a: bytes, pubkey_b: bytes) -> bytes:
    """`2 <pubkey1> <pubkey2> 2 OP_CHECKMULTISIG`, keys in lexicographic order, so the two
    peers derive the same script whichever of them is "local"."""
    check_pubkey(pubkey_a, "funding pubkey")
    check_pubkey(pubkey_b, "funding pubkey")
    if pubkey_a == pubkey_b:
        raise TransactionBuildError("the two funding pubkeys must differ")
    return multisig_2of2_script(pubkey_a, pubkey_b)


def to_local_script(revocation_pubkey: bytes, to_self_delay: int, local_delayed_pubkey: bytes) -> bytes:
    """The `to_local` output, also the output of HTLC-timeout/HTLC-success transactions:
    the owner after `to_self_delay` blocks, or the counterparty at once with the revocation key."""
    return build_script(
        Op.OP_IF,
        check_pubkey(revocation_pubkey, "revocation pubkey"),
        Op.OP_ELSE,
        _check_delay(to_self_delay),
        Op.OP_CHECKSEQUENCEVERIFY,
        Op.OP_DROP,
        check_pubkey(local_delayed_pubkey, "local delayed pubkey"),
        Op.OP_ENDIF,
        Op.OP_CHECKSIG,
    )


# The second-stage HTLC output uses the very same script as to_local.
htlc_output_script = to_local_script


def to_remote_anchors_script(remote_pubkey: bytes) -> bytes:
    """`<remotepubkey> OP_CHECKSIGVERIFY 1 OP_CHECKSEQUENCEVERIFY`: with anchors every non-anchor
    output carries a CSV of at least 1 so that only the anchors can be spent unconfirmed (CPFP carve-out)."""
    return build_script(
        check_pubkey(remote_pubkey, "remote pubkey"), Op.OP_CHECKSIGVERIFY, 1, Op.OP_CHECKSEQUENCEVERIFY
    )


def to_remote_script_pubkey(remote_pubkey: bytes, *, anchors: bool) -> bytes:
    """The output script of `to_remote`: P2WPKH without anchors, P2WSH of the CSV-1 script with them."""
    if anchors:
        return p2wsh_script(to_remote_anchors_script(remote_pubkey))
    return p2wpkh_script(check_pubkey(remote_pubkey, "remote pubkey"))


def anchor_script(funding_pubkey: bytes) -> bytes:
    """An anchor: its owner's funding key at once, or anyone after 16 blocks so the UTXO set is
    cleaned up. The funding key is public on-chain once the funding output is spent."""
    return build_script(
        check_pubkey(funding_pubkey, "funding pubkey"),
        Op.OP_CHECKSIG,
        Op.OP_IFDUP,
        Op.OP_NOTIF,
        Op.OP_16,
        Op.OP_CHECKSEQUENCEVERIFY,
        Op.OP_ENDIF,
    )


def offered_htlc_script(
    revocation_pubkey: bytes,
    local_htlc_pubkey: bytes,
    remote_htlc_pubkey: bytes,
    payment_hash: bytes,
    *,
    anchors: bool,
) -> bytes:
    """An HTLC the commitment owner offered: revocation, the peer with the preimage, or the owner
    through the (peer-co-signed, timelocked) HTLC-timeout transaction."""
    items: list[Op | bytes | int] = [
        Op.OP_DUP,
        Op.OP_HASH160,
        hash160(check_pubkey(revocation_pubkey, "revocation pubkey")),
        Op.OP_EQUAL,
        Op.OP_IF,
        Op.OP_CHECKSIG,
        Op.OP_ELSE,
        check_pubkey(remote_htlc_pubkey, "remote htlc pubkey"),
        Op.OP_SWAP,
        Op.OP_SIZE,
        32,
        Op.OP_EQUAL,
        Op.OP_NOTIF,
        Op.OP_DROP,
        2,
        Op.OP_SWAP,
        check_pubkey(local_htlc_pubkey, "local htlc pubkey"),
        2,
        Op.OP_CHECKMULTISIG,
        Op.OP_ELSE,
        Op.OP_HASH160,
        ripemd160(_check_payment_hash(payment_hash)),
        Op.OP_EQUALVERIFY,
        Op.OP_CHECKSIG,
        Op.OP_ENDIF,
    ]
    if anchors:
        items += [1, Op.OP_CHECKSEQUENCEVERIFY, Op.OP_DROP]
    items.append(Op.OP_ENDIF)
    return build_script(*items)


def received_htlc_script(
    revocation_pubkey: bytes,
    local_htlc_pubkey: bytes,
    remote_htlc_pubkey: bytes,
    payment_hash: bytes,
    cltv_expiry: int,
    *,
    anchors: bool,
) -> bytes:
    """An HTLC the commitment owner received: revocation, the owner through the (peer-co-signed)
    HTLC-success transaction with the preimage, or the peer once `cltv_expiry` has passed."""
    if not 0 <= cltv_expiry <= MAX_CLTV_EXPIRY:
        raise TransactionBuildError("cltv_expiry must fit in a u32")
    items: list[Op | bytes | int] = [
        Op.OP_DUP,
        Op.OP_HASH160,
        hash160(check_pubkey(revocation_pubkey, "revocation pubkey")),
        Op.OP_EQUAL,
        Op.OP_IF,
        Op.OP_CHECKSIG,
        Op.OP_ELSE,
        check_pubkey(remote_htlc_pubkey, "remote htlc pubkey"),
        Op.OP_SWAP,
        Op.OP_SIZE,
        32,
        Op.OP_EQUAL,
        Op.OP_IF,
        Op.OP_HASH160,
        ripemd160(_check_payment_hash(payment_hash)),
        Op.OP_EQUALVERIFY,
        2,
        Op.OP_SWAP,
        check_pubkey(local_htlc_pubkey, "local htlc pubkey"),
        2,
        Op.OP_CHECKMULTISIG,
        Op.OP_ELSE,
        Op.OP_DROP,
        cltv_expiry,
        Op.OP_CHECKLOCKTIMEVERIFY,
        Op.OP_DROP,
        Op.OP_CHECKSIG,
        Op.OP_ENDIF,
    ]
    if anchors:
        items += [1, Op.OP_CHECKSEQUENCEVERIFY, Op.OP_DROP]
    items.append(Op.OP_ENDIF)
    return build_script(*items)
