"""The commitment transaction builder (BOLT 3 "Commitment Transaction Construction").

Everything here is seen from the commitment's owner ("local"); to build the peer's commitment,
pass the peer's view: its keys, its dust limit, the delay we impose on it, and HTLC directions
flipped (`Htlc.mirrored`).

Money: balances and HTLCs are millisatoshis; every output is `floor(msat / 1000)` satoshis and the
sub-satoshi remainders, the trimmed HTLCs and any omitted dust balance all end up as fee. The
opener pays the base fee and the two anchors out of its balance; if that balance cannot cover
them it is emptied (never negative) and the transaction simply pays less fee than the base fee,
as the spec's "fee greater than funder amount" vector shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.script import p2wpkh_script, p2wsh_script
from ampere.bitcoin.tx import OutPoint, Transaction, TxIn, TxOut
from ampere.channel.transactions.errors import TransactionBuildError
from ampere.channel.transactions.fees import (
    ANCHOR_OUTPUT_SAT,
    CommitmentFormat,
    commitment_base_fee_sat,
    is_offered_htlc_trimmed,
    is_received_htlc_trimmed,
)
from ampere.channel.transactions.keys import CommitmentKeys
from ampere.channel.transactions.scripts import (
    anchor_script,
    funding_script,
    offered_htlc_script,
    received_htlc_script,
    to_local_script,
    to_remote_anchors_script,
)

__all__ = [
    "MAX_COMMITMENT_NUMBER",
    "CommitmentOutput",
    "CommitmentParams",
    "CommitmentTransaction",
    "Htlc",
    "HtlcDirection",
    "OutputKind",
    "build_commitment",
    "commitment_locktime_and_sequence",
    "commitment_number_from_tx",
    "commitment_obscuring_factor",
    "obscured_commitment_number",
    "untrimmed_htlcs",
]

MAX_COMMITMENT_NUMBER = (1 << 48) - 1
_LOCKTIME_TAG = 0x20 << 24
_SEQUENCE_TAG = 0x80 << 24
_LOW24 = (1 << 24) - 1


# --- commitment number obscuring --------------------------------------------------------------


def commitment_obscuring_factor(opener_payment_basepoint: bytes, accepter_payment_basepoint: bytes) -> int:
    """Lower 48 bits of SHA256(opener's payment_basepoint || accepter's payment_basepoint).

    The order is by role in channel opening, not local/remote, so both peers get the same factor.
    """
    return int.from_bytes(sha256(opener_payment_basepoint + accepter_payment_basepoint)[-6:], "big")


def obscured_commitment_number(commitment_number: int, obscuring_factor: int) -> int:
    if not 0 <= commitment_number <= MAX_COMMITMENT_NUMBER:
        raise TransactionBuildError("commitment number must fit in 48 bits")
    if not 0 <= obscuring_factor <= MAX_COMMITMENT_NUMBER:
        raise TransactionBuildError("obscuring factor must fit in 48 bits")
    return commitment_number ^ obscuring_factor


def commitment_locktime_and_sequence(obscured: int) -> tuple[int, int]:
    """(nLockTime, nSequence): 0x20 then the low 24 bits; 0x80 then the high 24 bits.

    0x20 puts the locktime far in the past (a timestamp in 1987) so it never delays the
    transaction; 0x80 sets the disable flag so the sequence imposes no relative lock.
    """
    return _LOCKTIME_TAG | (obscured & _LOW24), _SEQUENCE_TAG | (obscured >> 24)


def commitment_number_from_tx(tx: Transaction, obscuring_factor: int) -> int | None:
    """Recover the commitment number from a transaction spending the funding output, or None if
    its locktime/sequence do not carry the commitment markers (e.g. a mutual close)."""
    if len(tx.inputs) != 1:
        return None
    locktime, sequence = tx.locktime, tx.inputs[0].sequence
    if locktime >> 24 != 0x20 or sequence >> 24 != 0x80:
        return None
    obscured = ((sequence & _LOW24) << 24) | (locktime & _LOW24)
    return obscured ^ obscuring_factor


# --- inputs -------------------------------------------------------------------------------------


class HtlcDirection(Enum):
    """Relative to the commitment's owner."""

    OFFERED = "offered"
    RECEIVED = "received"

    def flipped(self) -> HtlcDirection:
        return HtlcDirection.RECEIVED if self is HtlcDirection.OFFERED else HtlcDirection.OFFERED


@dataclass(frozen=True, slots=True)
class Htlc:
    """One committed HTLC. `htlc_id` is the offerer's id: ids are only unique per direction."""

    direction: HtlcDirection
    htlc_id: int
    amount_msat: int
    payment_hash: bytes
    cltv_expiry: int

    def __post_init__(self) -> None:
        if self.amount_msat <= 0:
            raise TransactionBuildError("HTLC amount must be positive")
        if self.htlc_id < 0:
            raise TransactionBuildError("HTLC id must not be negative")
        if len(self.payment_hash) != 32:
            raise TransactionBuildError("payment_hash must be 32 bytes")
        if not 0 <= self.cltv_expiry <= 0xFFFF_FFFF:
            raise TransactionBuildError("cltv_expiry must fit in a u32")

    @property
    def amount_sat(self) -> int:
        return self.amount_msat // 1000

    @property
    def key(self) -> tuple[HtlcDirection, int]:
        return self.direction, self.htlc_id

    def mirrored(self) -> Htlc:
        """The same HTLC as it appears in the other peer's commitment."""
        return Htlc(
            self.direction.flipped(), self.htlc_id, self.amount_msat, self.payment_hash, self.cltv_expiry
        )


@dataclass(frozen=True, slots=True)
class CommitmentParams:
    """Per-channel settings, as they apply to one side's commitment (its owner = "local").

    `to_self_delay` is the delay on the owner's own outputs, i.e. the value the *other* peer asked
    for; `dust_limit_sat` is the owner's own dust limit.
    """

    funding_outpoint: OutPoint
    funding_amount_sat: int
    to_self_delay: int
    dust_limit_sat: int
    owner_is_opener: bool
    obscuring_factor: int
    commitment_format: CommitmentFormat

    def __post_init__(self) -> None:
        if self.funding_amount_sat <= 0:
            raise TransactionBuildError("funding amount must be positive")
        if not 0 <= self.to_self_delay <= 0xFFFF:
            raise TransactionBuildError("to_self_delay must fit in a u16")
        # Zero would let zero-value outputs through; BOLT 2 requires at least 354 anyway.
        if self.dust_limit_sat < 1:
            raise TransactionBuildError("dust limit must be at least 1 satoshi")
        if not 0 <= self.obscuring_factor <= MAX_COMMITMENT_NUMBER:
            raise TransactionBuildError("obscuring factor must fit in 48 bits")


# --- output -------------------------------------------------------------------------------------


class OutputKind(Enum):
    TO_LOCAL = "to_local"
    TO_REMOTE = "to_remote"
    LOCAL_ANCHOR = "local_anchor"
    REMOTE_ANCHOR = "remote_anchor"
    OFFERED_HTLC = "offered_htlc"
    RECEIVED_HTLC = "received_htlc"


@dataclass(frozen=True, slots=True)
class CommitmentOutput:
    """What output `index` of the commitment is; `witness_script` is None only for a P2WPKH."""

    index: int
    kind: OutputKind
    amount_sat: int
    script_pubkey: bytes
    witness_script: bytes | None
    htlc: Htlc | None = None


@dataclass(frozen=True, slots=True)
class CommitmentTransaction:
    """An unsigned commitment transaction with a map of its outputs."""

    tx: Transaction
    outputs: tuple[CommitmentOutput, ...]  # outputs[i] describes tx.outputs[i]
    trimmed_htlcs: tuple[Htlc, ...]
    commitment_number: int
    params: CommitmentParams
    keys: CommitmentKeys
    feerate_per_kw: int
    base_fee_sat: int

    @property
    def commitment_format(self) -> CommitmentFormat:
        return self.params.commitment_format

    @property
    def fee_sat(self) -> int:
        """The actual fee: base fee plus trimmed HTLCs, omitted dust balances and msat remainders."""
        return self.params.funding_amount_sat - self.tx.total_output_value()

    @property
    def txid(self) -> bytes:
        return self.tx.txid

    @property
    def funding_witness_script(self) -> bytes:
        return funding_script(self.keys.local_funding_pubkey, self.keys.remote_funding_pubkey)

    @property
    def htlc_outputs(self) -> tuple[CommitmentOutput, ...]:
        """HTLC outputs in output order: the order of `htlc_signatures` in commitment_signed."""
        return tuple(output for output in self.outputs if output.htlc is not None)

    def output_of_kind(self, kind: OutputKind) -> CommitmentOutput | None:
        """The to_local/to_remote/anchor output of that kind, if the commitment has it."""
        for output in self.outputs:
            if output.kind is kind:
                return output
        return None

    def output_for_htlc(self, direction: HtlcDirection, htlc_id: int) -> CommitmentOutput | None:
        """The output of that HTLC, or None if it was trimmed (or is not in this commitment)."""
        for output in self.outputs:
            if output.htlc is not None and output.htlc.key == (direction, htlc_id):
                return output
        return None


# --- builder ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pending:
    kind: OutputKind
    amount_sat: int
    script_pubkey: bytes
    witness_script: bytes | None
    htlc: Htlc | None

    def sort_key(self) -> tuple[int, bytes, int, int, int]:
        # BIP69 (value, then script bytes: Python's bytes order is memcmp with shorter-first),
        # then cltv_expiry for HTLCs whose outputs are otherwise identical (BOLT 3). The last two
        # fields only make the order total; outputs equal up to there are byte-identical and so
        # are their HTLC transactions, so both peers still produce the same bytes and signatures.
        if self.htlc is None:
            return self.amount_sat, self.script_pubkey, 0, 0, 0
        direction = 0 if self.htlc.direction is HtlcDirection.OFFERED else 1
        return self.amount_sat, self.script_pubkey, self.htlc.cltv_expiry, direction, self.htlc.htlc_id


def _is_trimmed(htlc: Htlc, feerate_per_kw: int, dust_limit_sat: int, fmt: CommitmentFormat) -> bool:
    if htlc.direction is HtlcDirection.OFFERED:
        return is_offered_htlc_trimmed(htlc.amount_msat, feerate_per_kw, dust_limit_sat, fmt)
    return is_received_htlc_trimmed(htlc.amount_msat, feerate_per_kw, dust_limit_sat, fmt)


def _htlc_output(htlc: Htlc, keys: CommitmentKeys, fmt: CommitmentFormat) -> _Pending:
    if htlc.direction is HtlcDirection.OFFERED:
        script = offered_htlc_script(
            keys.revocation_pubkey,
            keys.local_htlc_pubkey,
            keys.remote_htlc_pubkey,
            htlc.payment_hash,
            anchors=fmt.has_anchors,
        )
        kind = OutputKind.OFFERED_HTLC
    else:
        script = received_htlc_script(
            keys.revocation_pubkey,
            keys.local_htlc_pubkey,
            keys.remote_htlc_pubkey,
            htlc.payment_hash,
            htlc.cltv_expiry,
            anchors=fmt.has_anchors,
        )
        kind = OutputKind.RECEIVED_HTLC
    return _Pending(kind, htlc.amount_sat, p2wsh_script(script), script, htlc)


def _check_htlcs(htlcs: tuple[Htlc, ...]) -> None:
    seen: set[tuple[HtlcDirection, int]] = set()
    for htlc in htlcs:
        if htlc.key in seen:
            raise TransactionBuildError(f"duplicate {htlc.direction.value} HTLC id {htlc.htlc_id}")
        seen.add(htlc.key)


def untrimmed_htlcs(
    htlcs: tuple[Htlc, ...] | list[Htlc], feerate_per_kw: int, dust_limit_sat: int, fmt: CommitmentFormat
) -> tuple[Htlc, ...]:
    """The HTLCs that get an output in a commitment with this feerate and owner's dust limit."""
    return tuple(htlc for htlc in htlcs if not _is_trimmed(htlc, feerate_per_kw, dust_limit_sat, fmt))


def build_commitment(
    params: CommitmentParams,
    keys: CommitmentKeys,
    commitment_number: int,
    to_local_msat: int,
    to_remote_msat: int,
    htlcs: tuple[Htlc, ...] | list[Htlc],
    feerate_per_kw: int,
) -> CommitmentTransaction:
    """Build the owner's commitment transaction for one channel state.

    `to_local_msat`/`to_remote_msat` are the balances excluding in-flight HTLCs, before any fee;
    together with the HTLCs they must add up to the channel capacity exactly.
    """
    fmt = params.commitment_format
    htlc_tuple = tuple(htlcs)
    _check_htlcs(htlc_tuple)
    if to_local_msat < 0 or to_remote_msat < 0:
        raise TransactionBuildError("balances must not be negative")
    total_msat = to_local_msat + to_remote_msat + sum(htlc.amount_msat for htlc in htlc_tuple)
    if total_msat != params.funding_amount_sat * 1000:
        raise TransactionBuildError(
            f"balances and HTLCs add up to {total_msat} msat, not the capacity "
            f"{params.funding_amount_sat * 1000} msat"
        )
    obscured = obscured_commitment_number(commitment_number, params.obscuring_factor)

    kept = untrimmed_htlcs(htlc_tuple, feerate_per_kw, params.dust_limit_sat, fmt)
    kept_keys = {htlc.key for htlc in kept}
    trimmed = tuple(htlc for htlc in htlc_tuple if htlc.key not in kept_keys)
    base_fee_sat = commitment_base_fee_sat(feerate_per_kw, len(kept), fmt)

    # Both anchors are charged to the opener even when only one materialises (BOLT 3 step 3).
    opener_charge_msat = (base_fee_sat + (2 * ANCHOR_OUTPUT_SAT if fmt.has_anchors else 0)) * 1000
    local_msat, remote_msat = to_local_msat, to_remote_msat
    if params.owner_is_opener:
        local_msat = max(0, local_msat - opener_charge_msat)
    else:
        remote_msat = max(0, remote_msat - opener_charge_msat)
    to_local_sat, to_remote_sat = local_msat // 1000, remote_msat // 1000
    has_to_local = to_local_sat >= params.dust_limit_sat
    has_to_remote = to_remote_sat >= params.dust_limit_sat

    pending = [_htlc_output(htlc, keys, fmt) for htlc in kept]
    if has_to_local:
        script = to_local_script(keys.revocation_pubkey, params.to_self_delay, keys.local_delayed_pubkey)
        pending.append(_Pending(OutputKind.TO_LOCAL, to_local_sat, p2wsh_script(script), script, None))
    if has_to_remote:
        if fmt.has_anchors:
            script = to_remote_anchors_script(keys.remote_payment_pubkey)
            pending.append(_Pending(OutputKind.TO_REMOTE, to_remote_sat, p2wsh_script(script), script, None))
        else:
            script_pubkey = p2wpkh_script(keys.remote_payment_pubkey)
            pending.append(_Pending(OutputKind.TO_REMOTE, to_remote_sat, script_pubkey, None, None))
    if fmt.has_anchors:
        if has_to_local or kept:
            script = anchor_script(keys.local_funding_pubkey)
            pending.append(
                _Pending(OutputKind.LOCAL_ANCHOR, ANCHOR_OUTPUT_SAT, p2wsh_script(script), script, None)
            )
        if has_to_remote or kept:
            script = anchor_script(keys.remote_funding_pubkey)
            pending.append(
                _Pending(OutputKind.REMOTE_ANCHOR, ANCHOR_OUTPUT_SAT, p2wsh_script(script), script, None)
            )
    pending.sort(key=_Pending.sort_key)

    if sum(item.amount_sat for item in pending) > params.funding_amount_sat:
        # Only reachable when the opener's balance cannot even cover the anchors, which BOLT 2's
        # reserve rules forbid; refuse rather than build a transaction that creates money.
        raise TransactionBuildError("opener cannot pay for the anchor outputs")

    locktime, sequence = commitment_locktime_and_sequence(obscured)
    tx = Transaction(
        version=2,
        inputs=(TxIn(params.funding_outpoint, b"", sequence),),
        outputs=tuple(TxOut(item.amount_sat, item.script_pubkey) for item in pending),
        locktime=locktime,
    )
    outputs = tuple(
        CommitmentOutput(
            index, item.kind, item.amount_sat, item.script_pubkey, item.witness_script, item.htlc
        )
        for index, item in enumerate(pending)
    )
    return CommitmentTransaction(
        tx=tx,
        outputs=outputs,
        trimmed_htlcs=trimmed,
        commitment_number=commitment_number,
        params=params,
        keys=keys,
        feerate_per_kw=feerate_per_kw,
        base_fee_sat=base_fee_sat,
    )
