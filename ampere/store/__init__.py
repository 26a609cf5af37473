"""Persistence: a small key-value `Store` contract, its SQLite and PostgreSQL backends, and typed
repositories the node builds on. See `ampere.store.interface` for the durability and threading rules."""

from ampere.store.errors import (
    ChannelArchivedError,
    ConcurrentModificationError,
    DuplicateRecordError,
    InvalidTransitionError,
    KeyKindError,
    NestedTransactionError,
    RecordNotFoundError,
    SchemaVersionError,
    StaleRevisionError,
    StoreClosedError,
    StoreCorruptionError,
    StoreError,
    StoreUnavailableError,
)
from ampere.store.factory import open_store
from ampere.store.interface import Revisioned, Store, atomic

__all__ = [
    "ChannelArchivedError",
    "ConcurrentModificationError",
    "DuplicateRecordError",
    "InvalidTransitionError",
    "KeyKindError",
    "NestedTransactionError",
    "RecordNotFoundError",
    "Revisioned",
    "SchemaVersionError",
    "StaleRevisionError",
    "Store",
    "StoreClosedError",
    "StoreCorruptionError",
    "StoreError",
    "StoreUnavailableError",
    "atomic",
    "open_store",
]
