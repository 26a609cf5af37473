"""The typed repositories, over both backends."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from ampere.store import (
    ChannelArchivedError,
    DuplicateRecordError,
    InvalidTransitionError,
    RecordNotFoundError,
    StaleRevisionError,
    Store,
    StoreCorruptionError,
)
from ampere.store.interface import Revisioned
from ampere.store.payments import (
    InvoiceRecord,
    InvoiceRepository,
    InvoiceStatus,
    PaymentRecord,
    PaymentRepository,
    PaymentStatus,
)
from ampere.store.repositories import (
    INVOICES,
    ChannelState,
    ChannelStateRepository,
    PeerRecord,
    PeerRepository,
    PreimageRepository,
    RevocationSecretRepository,
)

CHAN_A = b"\xaa" * 32
CHAN_B = b"\xbb" * 32


def _preimage(n: int) -> bytes:
    return hashlib.sha256(b"preimage %d" % n).digest()


def _hash(n: int) -> bytes:
    return hashlib.sha256(_preimage(n)).digest()


def _invoice(n: int, label: str, created_at: int = 1000) -> InvoiceRecord:
    return InvoiceRecord(
        payment_hash=_hash(n),
        label=label,
        bolt11=f"lnbcrt{n}",
        payment_secret=bytes([n]) * 32,
        payment_preimage=_preimage(n),
        amount_msat=1000 * n,
        description=f"invoice {n}",
        created_at=created_at,
        expires_at=created_at + 3600,
    )


def test_channel_state_revisions_and_archive(store: Store) -> None:
    repo = ChannelStateRepository(store)
    assert repo.get_latest(CHAN_A) is None
    repo.put_state(CHAN_A, 0, b"open")
    repo.put_state(CHAN_A, 1, b"state1")
    repo.put_state(CHAN_B, 4, b"b4")
    with pytest.raises(StaleRevisionError):
        repo.put_state(CHAN_A, 1, b"stale")
    assert repo.get_latest(CHAN_A) == ChannelState(CHAN_A, 1, b"state1")
    assert repo.list_channel_ids() == [CHAN_A, CHAN_B]
    assert repo.load_all() == [ChannelState(CHAN_A, 1, b"state1"), ChannelState(CHAN_B, 4, b"b4")]
    assert repo.archive(CHAN_A) == ChannelState(CHAN_A, 1, b"state1")
    assert repo.list_channel_ids() == [CHAN_B]
    assert repo.list_archived_ids() == [CHAN_A]
    assert repo.get_archived(CHAN_A) == ChannelState(CHAN_A, 1, b"state1")
    with pytest.raises(ChannelArchivedError):
        repo.put_state(CHAN_A, 2, b"after close")
    with pytest.raises(RecordNotFoundError):
        repo.archive(CHAN_A)
    with pytest.raises(ValueError):
        repo.put_state(b"short", 1, b"x")


def test_channel_state_put_composes_into_a_transaction(store: Store) -> None:
    repo = ChannelStateRepository(store)
    preimages = PreimageRepository(store)
    with pytest.raises(RuntimeError), store.transaction():
        repo.put_state(CHAN_A, 1, b"s1")
        preimages.add(CHAN_A, _preimage(1))
        raise RuntimeError
    assert repo.get_latest(CHAN_A) is None
    assert preimages.for_channel(CHAN_A) == {}


def test_revocation_secrets(store: Store) -> None:
    repo = RevocationSecretRepository(store)
    assert repo.get(CHAN_A) is None
    repo.put(CHAN_A, 1, b"shachain-1")
    repo.put(CHAN_A, 2, b"shachain-2")
    with pytest.raises(StaleRevisionError):
        repo.put(CHAN_A, 1, b"shachain-old")
    assert repo.get(CHAN_A) == Revisioned(2, b"shachain-2")
    assert repo.delete(CHAN_A)
    assert repo.get(CHAN_A) is None


def test_preimages_per_channel(store: Store) -> None:
    repo = PreimageRepository(store)
    assert repo.add(CHAN_A, _preimage(1)) == _hash(1)
    assert repo.add(CHAN_A, _preimage(1)) == _hash(1)  # idempotent
    repo.add(CHAN_A, _preimage(2))
    repo.add(CHAN_B, _preimage(3))
    assert repo.get(CHAN_A, _hash(2)) == _preimage(2)
    assert repo.get(CHAN_B, _hash(2)) is None
    assert repo.for_channel(CHAN_A) == {_hash(1): _preimage(1), _hash(2): _preimage(2)}
    assert repo.forget_channel(CHAN_A) == 2
    assert repo.for_channel(CHAN_A) == {}
    assert repo.for_channel(CHAN_B) == {_hash(3): _preimage(3)}


def test_invoices_lookup_label_status(store: Store) -> None:
    repo = InvoiceRepository(store)
    first, second, third = _invoice(1, "coffee", 30), _invoice(2, "tea", 10), _invoice(3, "cake", 20)
    for invoice in (first, second, third):
        repo.add(invoice)
    with pytest.raises(DuplicateRecordError):
        repo.add(_invoice(4, "coffee"))
    with pytest.raises(DuplicateRecordError):
        repo.add(replace(first, label="other"))
    assert repo.get(_hash(2)) == second
    assert repo.get_by_label("cake") == third
    assert repo.get_by_label("nothing") is None
    assert [i.label for i in repo.list_by_status(InvoiceStatus.UNPAID)] == ["tea", "cake", "coffee"]
    assert [i.label for i in repo.list_all()] == ["tea", "cake", "coffee"]

    paid = repo.mark_paid(_hash(3), paid_at=2000, received_msat=3000)
    assert repo.get(_hash(3)) == paid and paid.status is InvoiceStatus.PAID
    assert repo.mark_paid(_hash(3), paid_at=2000, received_msat=3000) == paid  # replay is a no-op
    with pytest.raises(InvalidTransitionError):
        repo.mark_paid(_hash(3), paid_at=2001, received_msat=3000)
    with pytest.raises(InvalidTransitionError):
        repo.mark_expired(_hash(3))
    repo.mark_expired(_hash(2))
    with pytest.raises(InvalidTransitionError):
        repo.update(replace(repo.get(_hash(2)) or second, status=InvoiceStatus.UNPAID))
    late = repo.mark_paid(_hash(2), paid_at=5000, received_msat=2000)  # late money still counts
    assert [i.label for i in repo.list_by_status(InvoiceStatus.PAID)] == ["tea", "cake"]
    assert [i.label for i in repo.list_by_status(InvoiceStatus.UNPAID)] == ["coffee"]
    assert repo.list_by_status(InvoiceStatus.EXPIRED) == []
    assert late.received_msat == 2000

    with pytest.raises(DuplicateRecordError):
        repo.update(replace(first, label="tea"))
    repo.update(replace(first, label="espresso"))
    assert repo.get_by_label("coffee") is None
    assert repo.get_by_label("espresso") == replace(first, label="espresso")
    assert repo.delete(_hash(1)) and not repo.delete(_hash(1))
    assert repo.get_by_label("espresso") is None
    with pytest.raises(RecordNotFoundError):
        repo.mark_paid(_hash(1), paid_at=1, received_msat=1)


def test_invoice_validation_and_corruption(store: Store) -> None:
    with pytest.raises(ValueError):
        replace(_invoice(1, "x"), payment_preimage=_preimage(2))
    with pytest.raises(ValueError):
        replace(_invoice(1, "x"), amount_msat=-1)
    with pytest.raises(ValueError):
        replace(_invoice(1, "x"), status=InvoiceStatus.PAID)  # paid without paid_at
    repo = InvoiceRepository(store)
    repo.add(_invoice(1, "x"))
    assert b'"amount_msat":1000' in (store.get(INVOICES, _hash(1)) or b"")
    store.put(INVOICES, _hash(1), (store.get(INVOICES, _hash(1)) or b"").replace(b":1000,", b":1000.5,"))
    with pytest.raises(StoreCorruptionError, match="non-integer"):
        repo.get(_hash(1))
    store.put(INVOICES, _hash(1), b"\xff not json")
    with pytest.raises(StoreCorruptionError):
        repo.get(_hash(1))


def test_payments(store: Store) -> None:
    repo = PaymentRepository(store)
    pending = PaymentRecord(payment_hash=_hash(1), amount_msat=5000, created_at=10, label="rent")
    repo.add(pending)
    repo.add(PaymentRecord(payment_hash=_hash(2), amount_msat=7000, created_at=5))
    with pytest.raises(DuplicateRecordError):
        repo.add(PaymentRecord(payment_hash=_hash(3), amount_msat=1, created_at=1, label="rent"))
    assert repo.get_by_label("rent") == pending
    assert [p.payment_hash for p in repo.list_by_status(PaymentStatus.PENDING)] == [_hash(2), _hash(1)]
    failed = repo.mark_failed(_hash(2), reason="no route", failed_at=20)
    assert failed.failure == "no route"
    retried = replace(failed, status=PaymentStatus.PENDING)
    repo.update(retried)
    with pytest.raises(ValueError):
        repo.mark_complete(_hash(1), preimage=_preimage(9), fee_msat=3, completed_at=30)
    done = repo.mark_complete(_hash(1), preimage=_preimage(1), fee_msat=3, completed_at=30)
    assert done.status is PaymentStatus.COMPLETE and done.fee_msat == 3
    assert repo.mark_complete(_hash(1), preimage=_preimage(1), fee_msat=4, completed_at=50) == done
    with pytest.raises(InvalidTransitionError):
        repo.mark_failed(_hash(1), reason="late failure", failed_at=40)
    assert repo.get(_hash(1)) == done
    assert repo.list_by_status(PaymentStatus.COMPLETE) == [done]
    assert [p.status for p in repo.list_all()] == [PaymentStatus.PENDING, PaymentStatus.COMPLETE]


def test_peers(store: Store) -> None:
    repo = PeerRepository(store)
    alice = PeerRecord(b"\x02" + b"\x01" * 32, "127.0.0.1:9735", b"\x02\xa2")
    bob = PeerRecord(b"\x03" + b"\x02" * 32, "[::1]:9736")
    repo.put(bob)
    repo.put(alice)
    assert repo.get(alice.node_id) == alice
    assert repo.list_all() == [alice, bob]
    repo.put(replace(alice, address="127.0.0.1:19735"))
    assert repo.get(alice.node_id) == replace(alice, address="127.0.0.1:19735")
    assert repo.delete(bob.node_id)
    assert repo.get(bob.node_id) is None
    with pytest.raises(ValueError):
        PeerRecord(b"\x02" * 32, "x")
