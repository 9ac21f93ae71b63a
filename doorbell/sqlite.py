"""One SQLite connection shared by a process's threads: lock, lifecycle, IMMEDIATE transactions.

:class:`Store` (the index) and the export registry both hold their connection this way; the
audit log has its own, because its transactions also carry the Merkle tree state.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from typing import Self


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
        """``BEGIN IMMEDIATE`` (the write lock across processes) ... ``COMMIT`` or rollback."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
