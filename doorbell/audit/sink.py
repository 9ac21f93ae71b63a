"""What code that only writes to the audit log needs of it: the :class:`AuditSink` seam.

:class:`doorbell.audit.log.AuditLog` is the implementation; the recorder and the seal
recovery (:mod:`doorbell.recorder.sealaudit`) take an ``AuditSink``, so a test can hand
them any object with these members and the type checker proves it fits.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from doorbell.audit.note import Signer


class AuditSink(Protocol):
    """Append entries, read them back, sign checkpoints when holding the device key."""

    @property
    def signer(self) -> Signer | None:
        """The device key when this process signs checkpoints, else None."""
        ...

    @property
    def size(self) -> int:
        """Number of entries."""
        ...

    def append(
        self,
        actor: str,
        action: str,
        object: str = "",
        details: dict[str, Any] | None = None,
    ) -> int:
        """Append one entry; return its index (durable on return)."""
        ...

    def entries(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """``(index, leaf bytes)`` from ``start`` on, in order."""
        ...

    def checkpoint(self) -> bytes:
        """Sign a checkpoint of the current tree (needs :attr:`signer`); return the note."""
        ...
