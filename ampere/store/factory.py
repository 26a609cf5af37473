"""`open_store`: the `--db` value to a backend, by URL scheme."""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from ampere.store.errors import StoreError
from ampere.store.interface import Store

_POSTGRES_SCHEMES = ("postgresql", "postgres")


def open_store(url_or_path: str | os.PathLike[str]) -> Store:
    """Open the store named by `url_or_path`.

    - `postgresql://...` or `postgres://...`: `PostgresStore` with that libpq URL.
    - `sqlite:///abs/path.sqlite` (the path after the authority, like `file:` URLs), `sqlite:rel/path`,
      or any plain path: `SqliteStore`.
    """
    text = os.fspath(url_or_path)
    scheme, sep, _ = text.partition("://")
    if sep and scheme.lower() in _POSTGRES_SCHEMES:
        from ampere.store.postgres import PostgresStore  # psycopg loads only when PostgreSQL is used

        return PostgresStore(text)
    from ampere.store.sqlite import SqliteStore

    if text.lower().startswith("sqlite:"):
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise StoreError(f"sqlite URLs name a local file; got host {parts.netloc!r} in {text!r}")
        path = unquote(parts.path)
        if not path:
            raise StoreError(f"no file path in {text!r}")
        return SqliteStore(path)
    if sep and "/" not in scheme and scheme.isalnum():
        raise StoreError(f"unsupported database URL scheme {scheme!r}: use sqlite: or postgresql://")
    return SqliteStore(text)
