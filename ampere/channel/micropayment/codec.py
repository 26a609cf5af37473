"""Each side's state as bytes, for the store, and back.

Canonical JSON (sorted keys, no spaces): the blob is small next to a transaction, readable when
debugging a stuck channel, and versioned. Reading is strict: a float, a missing field or a value of
the wrong type means the bytes were not written by this code, and `StateDecodeError` says which field.
The one exception is a field added later (`closing_height`): blobs written before it lack it.
No secret is written; the shell re-derives the funding key from `key_index`.
"""

from __future__ import annotations

import json
from typing import NoReturn

from ampere.bitcoin.errors import BitcoinError
from ampere.bitcoin.tx import OutPoint, Transaction
from ampere.channel.micropayment.errors import StateDecodeError
from ampere.channel.micropayment.messages import Propose
from ampere.channel.micropayment.state import BestUpdate, PayeePhase, PayeeState, PayerPhase, PayerState, Role
from ampere.channel.micropayment.transactions import ChannelTerms

__all__ = ["FORMAT_VERSION", "decode_state", "encode_state", "peek_role"]

FORMAT_VERSION = 1
_Json = dict[str, object]


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def _proposal(proposal: Propose | None) -> _Json | None:
    if proposal is None:
        return None
    return {
        "channel_id": proposal.channel_id.hex(),
        "chain_hash": proposal.chain_hash.hex(),
        "capacity_sat": proposal.capacity_sat,
        "refund_height": proposal.refund_height,
        "feerate_per_kw": proposal.feerate_per_kw,
        "payer_funding_pubkey": proposal.payer_funding_pubkey.hex(),
        "refund_script": proposal.refund_script.hex(),
    }


def _terms(terms: ChannelTerms | None) -> _Json | None:
    if terms is None:
        return None
    return {
        "channel_id": terms.channel_id.hex(),
        "chain_hash": terms.chain_hash.hex(),
        "capacity_sat": terms.capacity_sat,
        "refund_height": terms.refund_height,
        "feerate_per_kw": terms.feerate_per_kw,
        "payer_funding_pubkey": terms.payer_funding_pubkey.hex(),
        "payee_funding_pubkey": terms.payee_funding_pubkey.hex(),
        "refund_script": terms.refund_script.hex(),
        "payout_script": terms.payout_script.hex(),
        "announced_dust_limit_sat": terms.announced_dust_limit_sat,
        "safety_margin": terms.safety_margin,
    }


def encode_state(state: PayerState | PayeeState) -> bytes:
    common: _Json = {
        "v": FORMAT_VERSION,
        "channel_id": state.channel_id.hex(),
        "key_index": state.key_index,
        "funding_pubkey": state.funding_pubkey.hex(),
        "phase": state.phase.value,
        "tip_height": state.tip_height,
        "proposal": _proposal(state.proposal),
        "terms": _terms(state.terms),
        "funding_height": state.funding_height,
        "closing_txid": _hex(state.closing_txid),
        "closing_height": state.closing_height,
        "revision": state.revision,
    }
    if isinstance(state, PayerState):
        body: _Json = {
            "role": Role.PAYER.value,
            "funding_tx": None if state.funding_tx is None else state.funding_tx.to_hex(),
            "funding_vout": state.funding_vout,
            "refund_signature": _hex(state.refund_signature),
            "sequence": state.sequence,
            "paid_msat": state.paid_msat,
            "acked_sequence": state.acked_sequence,
            "acked_paid_msat": state.acked_paid_msat,
            "max_signed_msat": state.max_signed_msat,
        }
    else:
        outpoint = state.funding_outpoint
        best = state.best
        body = {
            "role": Role.PAYEE.value,
            "minimum_depth": state.minimum_depth,
            "funding_outpoint": None if outpoint is None else [outpoint.txid.hex(), outpoint.vout],
            "refund_tx": None if state.refund_tx is None else state.refund_tx.to_hex(),
            "best": [best.sequence, best.paid_msat, best.payee_sat, best.change_sat, best.signature.hex()],
        }
    return json.dumps({**common, **body}, sort_keys=True, separators=(",", ":")).encode()


def _refuse_float(text: str) -> NoReturn:
    raise ValueError(f"non-integer number {text!r}")


class _Reader:
    def __init__(self, obj: object, where: str) -> None:
        if not isinstance(obj, dict):
            raise StateDecodeError(f"{where} is not an object")
        self._obj: dict[str, object] = obj
        self._where = where

    def fail(self, message: str) -> StateDecodeError:
        return StateDecodeError(f"micropayment state: {self._where}: {message}")

    def raw(self, name: str) -> object:
        if name not in self._obj:
            raise self.fail(f"missing field {name!r}")
        return self._obj[name]

    def get_int(self, name: str) -> int:
        value = self.raw(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(f"{name!r} is not a non-negative integer")
        return value

    def get_opt_int(self, name: str) -> int | None:
        return None if self.raw(name) is None else self.get_int(name)

    def get_later_int(self, name: str) -> int | None:
        """A field added after format 1 was first written: absent in older blobs, read as None."""
        return self.get_opt_int(name) if name in self._obj else None

    def get_str(self, name: str) -> str:
        value = self.raw(name)
        if not isinstance(value, str):
            raise self.fail(f"{name!r} is not a string")
        return value

    def get_bytes(self, name: str, length: int | None = None) -> bytes:
        try:
            value = bytes.fromhex(self.get_str(name))
        except ValueError as exc:
            raise self.fail(f"{name!r} is not hex") from exc
        if length is not None and len(value) != length:
            raise self.fail(f"{name!r} is not {length} bytes")
        return value

    def get_opt_bytes(self, name: str, length: int | None = None) -> bytes | None:
        return None if self.raw(name) is None else self.get_bytes(name, length)

    def opt_tx(self, name: str) -> Transaction | None:
        raw = self.get_opt_bytes(name)
        if raw is None:
            return None
        try:
            return Transaction.parse(raw)
        except BitcoinError as exc:
            raise self.fail(f"{name!r} is not a transaction: {exc}") from exc

    def opt_child(self, name: str) -> _Reader | None:
        value = self.raw(name)
        return None if value is None else _Reader(value, f"{self._where}.{name}")

    def get_list(self, name: str, length: int) -> _Reader:
        value = self.raw(name)
        if not isinstance(value, list) or len(value) != length:
            raise self.fail(f"{name!r} is not a list of {length}")
        return _Reader({str(index): item for index, item in enumerate(value)}, f"{self._where}.{name}")


def _read_proposal(r: _Reader | None) -> Propose | None:
    if r is None:
        return None
    return Propose(
        r.get_bytes("channel_id", 32),
        r.get_bytes("chain_hash", 32),
        r.get_int("capacity_sat"),
        r.get_int("refund_height"),
        r.get_int("feerate_per_kw"),
        r.get_bytes("payer_funding_pubkey", 33),
        r.get_bytes("refund_script"),
    )


def _read_terms(r: _Reader | None) -> ChannelTerms | None:
    if r is None:
        return None
    return ChannelTerms(
        r.get_bytes("channel_id", 32),
        r.get_bytes("chain_hash", 32),
        r.get_int("capacity_sat"),
        r.get_int("refund_height"),
        r.get_int("feerate_per_kw"),
        r.get_bytes("payer_funding_pubkey", 33),
        r.get_bytes("payee_funding_pubkey", 33),
        r.get_bytes("refund_script"),
        r.get_bytes("payout_script"),
        r.get_int("announced_dust_limit_sat"),
        r.get_int("safety_margin"),
    )


def _load(data: bytes) -> _Reader:
    try:
        obj = json.loads(data, parse_float=_refuse_float, parse_constant=_refuse_float)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateDecodeError(f"micropayment state does not decode: {exc}") from exc
    r = _Reader(obj, "state")
    if r.raw("v") != FORMAT_VERSION:
        raise r.fail(f"unknown format version {r.raw('v')!r}")
    return r


def peek_role(data: bytes) -> Role:
    """Which side wrote this blob, so that the caller knows which machine to restore."""
    r = _load(data)
    try:
        return Role(r.get_str("role"))
    except ValueError as exc:
        raise r.fail(f"unknown role {r.raw('role')!r}") from exc


def decode_state(data: bytes) -> PayerState | PayeeState:
    r = _load(data)
    role = peek_role(data)
    try:
        channel_id = r.get_bytes("channel_id", 32)
        key_index = r.get_int("key_index")
        funding_pubkey = r.get_bytes("funding_pubkey", 33)
        tip_height = r.get_int("tip_height")
        proposal = _read_proposal(r.opt_child("proposal"))
        terms = _read_terms(r.opt_child("terms"))
        funding_height = r.get_opt_int("funding_height")
        closing_txid = r.get_opt_bytes("closing_txid", 32)
        closing_height = r.get_later_int("closing_height")
        revision = r.get_int("revision")
        phase_text = r.get_str("phase")
        if role is Role.PAYER:
            return PayerState(
                channel_id=channel_id,
                key_index=key_index,
                funding_pubkey=funding_pubkey,
                phase=PayerPhase(phase_text),
                tip_height=tip_height,
                proposal=proposal,
                terms=terms,
                funding_tx=r.opt_tx("funding_tx"),
                funding_vout=r.get_int("funding_vout"),
                refund_signature=r.get_opt_bytes("refund_signature", 64),
                funding_height=funding_height,
                sequence=r.get_int("sequence"),
                paid_msat=r.get_int("paid_msat"),
                acked_sequence=r.get_int("acked_sequence"),
                acked_paid_msat=r.get_int("acked_paid_msat"),
                max_signed_msat=r.get_int("max_signed_msat"),
                closing_txid=closing_txid,
                closing_height=closing_height,
                revision=revision,
            )
        outpoint = None
        if r.raw("funding_outpoint") is not None:
            pair = r.get_list("funding_outpoint", 2)
            outpoint = OutPoint(pair.get_bytes("0", 32), pair.get_int("1"))
        best = r.get_list("best", 5)
        return PayeeState(
            channel_id=channel_id,
            key_index=key_index,
            funding_pubkey=funding_pubkey,
            minimum_depth=r.get_int("minimum_depth"),
            phase=PayeePhase(phase_text),
            tip_height=tip_height,
            proposal=proposal,
            terms=terms,
            funding_outpoint=outpoint,
            refund_tx=r.opt_tx("refund_tx"),
            funding_height=funding_height,
            best=BestUpdate(
                best.get_int("0"),
                best.get_int("1"),
                best.get_int("2"),
                best.get_int("3"),
                best.get_bytes("4", 64),
            ),
            closing_txid=closing_txid,
            closing_height=closing_height,
            revision=revision,
        )
    except ValueError as exc:  # an unknown phase, an out-of-range vout
        raise r.fail(str(exc)) from exc
