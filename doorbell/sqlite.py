"""One SQLite connection shared by a process's threads: lock, lifecycle, IMMEDIATE transactions.

:func:`immediate_transaction` is the one write-transaction helper: :class:`Store` (the index),
its schema migration, the export registry and the audit log all write through it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from typing import Self

from doorbell.errors import StorageError


@contextlib.contextmanager
def immediate_transaction(
    connection: sqlite3.Connection, lock: threading.RLock, *, name: str | None = None
) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` (the write lock across processes) ... ``COMMIT``, under ``lock``.

    An exception in the body rolls back and propagates unchanged. A failing ``BEGIN`` or
    ``COMMIT`` propagates its :class:`sqlite3.Error` as is, or, when ``name`` is given (the
    database, for the message), as :class:`StorageError` (a failed commit is rolled back).
    """
    with lock:
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            if name is None:
                raise
            raise StorageError(f"{name}: cannot start a write ({exc})") from exc
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        try:
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            if name is None:
                raise
            connection.execute("ROLLBACK")
            raise StorageError(f"{name}: commit failed ({exc})") from exc


class LockedConnection:
    """Base for classes that keep ``self._db`` (a connection) behind ``self._lock`` (RLock).

    Subclasses set both in ``__init__``. ``with`` closes the connection at the end.
    """

    _db: sqlite3.Connection
    _lock: threading.RLock

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on ``self._db`` (:func:`immediate_transaction`)."""
        with immediate_transaction(self._db, self._lock) as connection:
            yield connection
