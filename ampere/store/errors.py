"""Errors of the persistence layer; driver exceptions never escape it untranslated."""

from __future__ import annotations

from ampere.errors import AmpereError


class StoreError(AmpereError):
    """The store failed or refused a request (the driver's exception, if any, is the `__cause__`)."""


class StoreClosedError(StoreError):
    """The store was used after `close()`."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached or opened (server down, permissions, locked past the timeout)."""


class StoreCorruptionError(StoreError):
    """Stored bytes are not what this code wrote: not a database, or a record that does not decode."""


class SchemaVersionError(StoreError):
    """The database was written by a newer Ampere; opening it could lose data, so it is refused."""

    def __init__(self, found: int, supported: int) -> None:
        super().__init__(
            f"database schema version {found} is newer than this code supports ({supported}); "
            "upgrade Ampere instead of downgrading the database"
        )
        self.found = found
        self.supported = supported


class NestedTransactionError(StoreError):
    """`transaction()` was entered while the same caller already had one open."""


class KeyKindError(StoreError):
    """A plain write hit a revisioned key or a revisioned one hit a plain key.

    Mixing the two would let a writer step around the revision check, so each key keeps the kind it was
    created with until it is deleted.
    """


class ConcurrentModificationError(StoreError):
    """Another writer changed the record since the caller read it (or a transaction lost a conflict)."""


class StaleRevisionError(ConcurrentModificationError):
    """A revisioned write did not move the revision forward: the writer holds an outdated state."""

    def __init__(self, namespace: str, key: bytes, attempted: int, stored: int | None) -> None:
        super().__init__(
            f"stale write to {namespace}/{key.hex()}: revision {attempted} is not above stored {stored}"
        )
        self.namespace = namespace
        self.key = key
        self.attempted = attempted
        self.stored = stored


class RecordNotFoundError(StoreError):
    """A repository was asked to change a record that does not exist."""


class DuplicateRecordError(StoreError):
    """A record with this identity (payment hash, label, ...) already exists."""


class InvalidTransitionError(StoreError):
    """A status change that would undo a final state (a paid invoice, a completed payment)."""


class ChannelArchivedError(StoreError):
    """A state write for a channel that has already been archived as closed."""
