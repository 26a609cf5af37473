"""Invoices we issued and payments we sent: JSON records keyed by payment hash, with unique labels and a
status index.

Index layout per kind: `<records>/payment_hash -> record`, `<labels>/utf8(label) -> payment_hash`,
`<status>/status 0x00 created_at(8, big-endian) payment_hash -> b""`. The status index lists one status
in creation order without decoding every record; all three change together in one transaction.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import ClassVar, Generic, TypeVar

from ampere.store._codec import RecordReader, encode_record, hex_or_none
from ampere.store.errors import DuplicateRecordError, InvalidTransitionError, RecordNotFoundError
from ampere.store.interface import Store, atomic
from ampere.store.repositories import (
    INVOICE_LABELS,
    INVOICE_STATUS,
    INVOICES,
    PAYMENT_LABELS,
    PAYMENT_STATUS,
    PAYMENTS,
)

_HASH_LEN = 32


class InvoiceStatus(StrEnum):
    UNPAID = "unpaid"
    PAID = "paid"
    EXPIRED = "expired"


class PaymentStatus(StrEnum):
    PENDING = "pending"
    COMPLETE = "complete"
    FAILED = "failed"


def _check_hash(name: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != _HASH_LEN:
        raise ValueError(f"{name} must be {_HASH_LEN} bytes")


def _check_amount(name: str, value: int | None, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")


def _check_preimage(payment_hash: bytes, preimage: bytes) -> None:
    _check_hash("payment_preimage", preimage)
    if hashlib.sha256(preimage).digest() != payment_hash:
        raise ValueError("payment_preimage does not hash to payment_hash")


@dataclass(frozen=True)
class InvoiceRecord:
    """An invoice we issued. `amount_msat` is None for an any-amount invoice; times are unix seconds."""

    payment_hash: bytes
    label: str
    bolt11: str
    payment_secret: bytes
    payment_preimage: bytes
    amount_msat: int | None
    description: str
    created_at: int
    expires_at: int
    status: InvoiceStatus = InvoiceStatus.UNPAID
    paid_at: int | None = None
    received_msat: int | None = None

    def __post_init__(self) -> None:
        _check_hash("payment_hash", self.payment_hash)
        _check_hash("payment_secret", self.payment_secret)
        _check_preimage(self.payment_hash, self.payment_preimage)
        if not isinstance(self.label, str) or not self.label:
            raise ValueError("an invoice needs a non-empty label")
        _check_amount("amount_msat", self.amount_msat, optional=True)
        _check_amount("created_at", self.created_at)
        _check_amount("expires_at", self.expires_at)
        _check_amount("paid_at", self.paid_at, optional=True)
        _check_amount("received_msat", self.received_msat, optional=True)
        settled = self.paid_at is not None and self.received_msat is not None
        if (self.status is InvoiceStatus.PAID) != settled:
            raise ValueError("paid_at and received_msat are set exactly when the invoice is paid")

    def to_bytes(self) -> bytes:
        return encode_record(
            {
                "payment_hash": self.payment_hash.hex(),
                "label": self.label,
                "bolt11": self.bolt11,
                "payment_secret": self.payment_secret.hex(),
                "payment_preimage": self.payment_preimage.hex(),
                "amount_msat": self.amount_msat,
                "description": self.description,
                "created_at": self.created_at,
                "expires_at": self.expires_at,
                "status": self.status.value,
                "paid_at": self.paid_at,
                "received_msat": self.received_msat,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> InvoiceRecord:
        r = RecordReader(data, "invoice record")
        try:
            return cls(
                payment_hash=r.req_hex("payment_hash"),
                label=r.req_str("label"),
                bolt11=r.req_str("bolt11"),
                payment_secret=r.req_hex("payment_secret"),
                payment_preimage=r.req_hex("payment_preimage"),
                amount_msat=r.opt_int("amount_msat"),
                description=r.req_str("description"),
                created_at=r.req_int("created_at"),
                expires_at=r.req_int("expires_at"),
                status=InvoiceStatus(r.req_str("status")),
                paid_at=r.opt_int("paid_at"),
                received_msat=r.opt_int("received_msat"),
            )
        except ValueError as exc:
            raise r.corrupt(str(exc)) from exc


@dataclass(frozen=True)
class PaymentRecord:
    """A payment we sent: `amount_msat` reaches the destination, `fee_msat` goes to the route."""

    payment_hash: bytes
    amount_msat: int
    created_at: int
    status: PaymentStatus = PaymentStatus.PENDING
    fee_msat: int = 0
    label: str | None = None
    bolt11: str | None = None
    destination: bytes | None = None
    payment_preimage: bytes | None = None
    completed_at: int | None = None
    failure: str | None = None

    def __post_init__(self) -> None:
        _check_hash("payment_hash", self.payment_hash)
        _check_amount("amount_msat", self.amount_msat)
        _check_amount("fee_msat", self.fee_msat)
        _check_amount("created_at", self.created_at)
        _check_amount("completed_at", self.completed_at, optional=True)
        if self.label is not None and (not isinstance(self.label, str) or not self.label):
            raise ValueError("a payment label, if any, is a non-empty string")
        if self.destination is not None and len(self.destination) != 33:
            raise ValueError("destination must be a 33-byte node id")
        if self.payment_preimage is not None:
            _check_preimage(self.payment_hash, self.payment_preimage)
        if self.status is PaymentStatus.COMPLETE and self.payment_preimage is None:
            raise ValueError("a complete payment has its preimage")

    def to_bytes(self) -> bytes:
        return encode_record(
            {
                "payment_hash": self.payment_hash.hex(),
                "amount_msat": self.amount_msat,
                "created_at": self.created_at,
                "status": self.status.value,
                "fee_msat": self.fee_msat,
                "label": self.label,
                "bolt11": self.bolt11,
                "destination": hex_or_none(self.destination),
                "payment_preimage": hex_or_none(self.payment_preimage),
                "completed_at": self.completed_at,
                "failure": self.failure,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> PaymentRecord:
        r = RecordReader(data, "payment record")
        try:
            return cls(
                payment_hash=r.req_hex("payment_hash"),
                amount_msat=r.req_int("amount_msat"),
                created_at=r.req_int("created_at"),
                status=PaymentStatus(r.req_str("status")),
                fee_msat=r.req_int("fee_msat"),
                label=r.opt_str("label"),
                bolt11=r.opt_str("bolt11"),
                destination=r.opt_hex("destination"),
                payment_preimage=r.opt_hex("payment_preimage"),
                completed_at=r.opt_int("completed_at"),
                failure=r.opt_str("failure"),
            )
        except ValueError as exc:
            raise r.corrupt(str(exc)) from exc


R = TypeVar("R", InvoiceRecord, PaymentRecord)


class _IndexedRepository(ABC, Generic[R]):
    _records: ClassVar[str]
    _labels: ClassVar[str]
    _statuses: ClassVar[str]
    _kind: ClassVar[str]

    def __init__(self, store: Store) -> None:
        self._store = store

    @abstractmethod
    def _decode(self, data: bytes) -> R: ...

    @abstractmethod
    def _check_transition(self, old: R, status: str) -> None:
        """Raise `InvalidTransitionError` if `old` may not be rewritten with `status`."""

    @staticmethod
    def _status_key(record: R) -> bytes:
        created = record.created_at.to_bytes(8, "big")
        return record.status.value.encode() + b"\x00" + created + record.payment_hash

    def _index(self, record: R) -> None:
        if record.label is not None:
            self._store.put(self._labels, record.label.encode(), record.payment_hash)
        self._store.put(self._statuses, self._status_key(record), b"")

    def _unindex(self, record: R) -> None:
        if record.label is not None:
            self._store.delete(self._labels, record.label.encode())
        self._store.delete(self._statuses, self._status_key(record))

    def _check_label_free(self, record: R) -> None:
        if record.label is None:
            return
        owner = self._store.get(self._labels, record.label.encode())
        if owner is not None and owner != record.payment_hash:
            raise DuplicateRecordError(f"{self._kind} label {record.label!r} is taken")

    def add(self, record: R) -> None:
        """Insert a new record; `DuplicateRecordError` if its payment hash or label is taken."""
        with atomic(self._store):
            if self._store.get(self._records, record.payment_hash) is not None:
                raise DuplicateRecordError(f"{self._kind} {record.payment_hash.hex()} exists")
            self._check_label_free(record)
            self._store.put(self._records, record.payment_hash, record.to_bytes())
            self._index(record)

    def update(self, record: R) -> None:
        """Replace the record with the same payment hash, keeping the indexes in step."""
        with atomic(self._store):
            old = self.get(record.payment_hash)
            if old is None:
                raise RecordNotFoundError(f"no {self._kind} {record.payment_hash.hex()}")
            self._rewrite(old, record)

    def _rewrite(self, old: R, record: R) -> None:
        """Replace `old`, just read in the caller's transaction, with `record`. Index keys that stay the
        same are not touched (a status change moves one status key; the label key stays)."""
        if old == record:
            return
        self._check_transition(old, record.status)
        if record.label != old.label:
            self._check_label_free(record)
            if old.label is not None:
                self._store.delete(self._labels, old.label.encode())
            if record.label is not None:
                self._store.put(self._labels, record.label.encode(), record.payment_hash)
        old_status, new_status = self._status_key(old), self._status_key(record)
        if old_status != new_status:
            self._store.delete(self._statuses, old_status)
            self._store.put(self._statuses, new_status, b"")
        self._store.put(self._records, record.payment_hash, record.to_bytes())

    def get(self, payment_hash: bytes) -> R | None:
        _check_hash("payment_hash", payment_hash)
        data = self._store.get(self._records, payment_hash)
        return None if data is None else self._decode(data)

    def get_by_label(self, label: str) -> R | None:
        payment_hash = self._store.get(self._labels, label.encode())
        if payment_hash is None:
            return None
        record = self.get(payment_hash)
        if record is None or record.label != label:  # changed between the two reads
            return None
        return record

    def list_by_status(self, status: str) -> list[R]:
        """Records with `status`, oldest first."""
        records = []
        for key in self._store.list_keys(self._statuses, status.encode() + b"\x00"):
            record = self.get(key[-_HASH_LEN:])
            if record is not None and record.status == status:  # skip ones changed since the listing
                records.append(record)
        return records

    def list_all(self) -> list[R]:
        """Every record, oldest first."""
        records = [self._decode(value) for _, value in self._store.items(self._records)]
        return sorted(records, key=lambda record: (record.created_at, record.payment_hash))

    def delete(self, payment_hash: bytes) -> bool:
        with atomic(self._store):
            old = self.get(payment_hash)
            if old is None:
                return False
            self._unindex(old)
            self._store.delete(self._records, payment_hash)
        return True

    def _require(self, payment_hash: bytes) -> R:
        record = self.get(payment_hash)
        if record is None:
            raise RecordNotFoundError(f"no {self._kind} {payment_hash.hex()}")
        return record


class InvoiceRepository(_IndexedRepository[InvoiceRecord]):
    """Invoices: unpaid -> paid | expired, expired -> paid (money that arrives late still counts);
    paid is final."""

    _records, _labels, _statuses, _kind = INVOICES, INVOICE_LABELS, INVOICE_STATUS, "invoice"

    def _decode(self, data: bytes) -> InvoiceRecord:
        return InvoiceRecord.from_bytes(data)

    def _check_transition(self, old: InvoiceRecord, status: str) -> None:
        if old.status is InvoiceStatus.PAID:
            raise InvalidTransitionError(f"invoice {old.payment_hash.hex()} is paid; it cannot change")
        if status == InvoiceStatus.UNPAID and old.status is not InvoiceStatus.UNPAID:
            raise InvalidTransitionError(f"invoice {old.payment_hash.hex()} cannot become unpaid again")

    def mark_paid(self, payment_hash: bytes, *, paid_at: int, received_msat: int) -> InvoiceRecord:
        with atomic(self._store):
            old = self._require(payment_hash)
            replayed = (old.paid_at, old.received_msat) == (paid_at, received_msat)
            if old.status is InvoiceStatus.PAID and replayed:
                return old  # the same settlement replayed after a restart
            self._check_transition(old, InvoiceStatus.PAID)
            paid = replace(
                old,
                status=InvoiceStatus.PAID,
                paid_at=paid_at,
                received_msat=received_msat,
            )
            self._rewrite(old, paid)
        return paid

    def mark_expired(self, payment_hash: bytes) -> InvoiceRecord:
        with atomic(self._store):
            old = self._require(payment_hash)
            self._check_transition(old, InvoiceStatus.EXPIRED)
            expired = replace(old, status=InvoiceStatus.EXPIRED)
            self._rewrite(old, expired)
        return expired


class PaymentRepository(_IndexedRepository[PaymentRecord]):
    """Payments: pending -> complete | failed, failed -> pending (retry) | complete (a preimage learned
    late, e.g. on chain); complete is final."""

    _records, _labels, _statuses, _kind = PAYMENTS, PAYMENT_LABELS, PAYMENT_STATUS, "payment"

    def _decode(self, data: bytes) -> PaymentRecord:
        return PaymentRecord.from_bytes(data)

    def _check_transition(self, old: PaymentRecord, status: str) -> None:
        if old.status is PaymentStatus.COMPLETE:
            raise InvalidTransitionError(f"payment {old.payment_hash.hex()} is complete; it cannot change")

    def mark_complete(
        self, payment_hash: bytes, *, preimage: bytes, fee_msat: int, completed_at: int
    ) -> PaymentRecord:
        with atomic(self._store):
            old = self._require(payment_hash)
            if old.status is PaymentStatus.COMPLETE and old.payment_preimage == preimage:
                return old  # learned again (off-chain and on-chain, or after a restart)
            self._check_transition(old, PaymentStatus.COMPLETE)
            done = replace(
                old,
                status=PaymentStatus.COMPLETE,
                payment_preimage=preimage,
                fee_msat=fee_msat,
                completed_at=completed_at,
                failure=None,
            )
            self._rewrite(old, done)
        return done

    def mark_failed(self, payment_hash: bytes, *, reason: str, failed_at: int) -> PaymentRecord:
        with atomic(self._store):
            old = self._require(payment_hash)
            self._check_transition(old, PaymentStatus.FAILED)
            failed = replace(
                old,
                status=PaymentStatus.FAILED,
                completed_at=failed_at,
                failure=reason,
            )
            self._rewrite(old, failed)
        return failed
