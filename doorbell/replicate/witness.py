"""The off-site copy as a witness: does this device's log still extend what the copy saw?

Someone who rewrites the SD card can roll the log back to an older, cosigned copy that the
device alone cannot tell from the truth. The checkpoints the replicator already put off-site
can: every one of them was signed by this device, so the device's log must still produce the
root of each at its size. A log shorter than the copy's latest checkpoint is *behind* (rolled
back); one that produces another root is *forked* (rewritten).

Used at unlock by the web UI (:func:`unlock_witness_check`, latest checkpoint only, with a
short timeout) and by ``doorbell audit verify --witness`` (every checkpoint in the copy).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from doorbell.audit.note import NoteError, Verifier, open_note, parse_checkpoint
from doorbell.errors import AuditError, ReplicationError
from doorbell.replicate import layout
from doorbell.replicate.destination import Destination, open_destination

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WitnessResult:
    """What the comparison found. ``verdict`` is "ok", "behind", "forked" or "empty"."""

    verdict: str
    message: str
    checked: int = 0
    copy_size: int = 0

    @property
    def ok(self) -> bool:
        return self.verdict in ("ok", "empty")


def checkpoint_sizes(dest: Destination) -> list[int]:
    """Sizes of the checkpoints in the copy, ascending."""
    sizes = []
    for name in dest.listdir(layout.CHECKPOINTS_DIR):
        stem = name.removesuffix(".note")
        if name.endswith(".note") and stem.isdigit():
            sizes.append(int(stem))
    return sorted(sizes)


def compare(
    log_size: int,
    root_at: Callable[[int], bytes],
    notes: list[bytes],
    device: Verifier,
) -> WitnessResult:
    """Compare a log (``log_size`` entries, ``root_at(n)`` its head at n) with checkpoint
    notes from the copy. Never raises for a bad log or copy: the result says what is wrong."""
    largest = 0
    for note in notes:
        try:
            checkpoint = parse_checkpoint(open_note(note, [device]).text)
        except NoteError as exc:
            return WitnessResult(
                "forked",
                f"a checkpoint in the copy is not signed by this device's key ({exc}): the "
                "device key was swapped or the copy is another device's",
                0,
            )
        largest = max(largest, checkpoint.size)
        if log_size < checkpoint.size:
            return WitnessResult(
                "behind",
                f"this device's audit log has {log_size} entries but the off-site copy holds "
                f"a checkpoint this device signed at {checkpoint.size}: the log was rolled back",
                len(notes),
                checkpoint.size,
            )
        try:
            root = root_at(checkpoint.size)
        except AuditError as exc:
            root = b""
            log.warning("cannot compute the root at %d: %s", checkpoint.size, exc)
        if root != checkpoint.root_hash:
            return WitnessResult(
                "forked",
                f"this device's audit log does not produce the root of the checkpoint at "
                f"{checkpoint.size} in the off-site copy: its history was rewritten (forked)",
                len(notes),
                checkpoint.size,
            )
    if not notes:
        return WitnessResult("empty", "the off-site copy holds no checkpoint yet")
    return WitnessResult(
        "ok",
        f"the log extends all {len(notes)} checked checkpoints of the off-site copy "
        f"(up to size {largest})",
        len(notes),
        largest,
    )


def check_against_copy(
    dest: Destination,
    log_size: int,
    root_at: Callable[[int], bytes],
    device: Verifier,
    *,
    every_checkpoint: bool = True,
) -> WitnessResult:
    """Read the copy's checkpoints (all, or only the latest) and :func:`compare`.

    Raises :class:`ReplicationError` when the copy cannot be read.
    """
    sizes = checkpoint_sizes(dest)
    if not every_checkpoint:
        sizes = sizes[-1:]
    notes = [dest.read(layout.checkpoint_path(size)) for size in sizes]
    return compare(log_size, root_at, notes, device)


def unlock_witness_check(config: Any, audit_log: Any) -> dict[str, str] | None:
    """At unlock: None when there is no copy configured or the log agrees with it; otherwise
    the anchor-banner entry ``{"error": ..., "anchor": "mismatch"}`` (behind or forked).

    A mounted-directory copy is read directly (its latest checkpoint). An SFTP copy is not
    contacted from the web process (it holds neither the replication key nor a way out
    through the firewall): the replicator keeps the copy's latest checkpoint, as found when
    it last connected, in ``replicate/witness.note``, and reports a log that went behind or
    forked in its status; both are checked here. An unreachable directory does not block
    the unlock (it is logged; doctor and the Audit page show it).
    """
    from doorbell.replicate.state import read_status, witness_note_path

    replicate = getattr(config, "replicate", None)
    if replicate is None or not replicate.destination:
        return None
    device = audit_log.device_verifier()
    if replicate.destination.startswith("sftp://"):
        status = read_status(config.data_dir)
        if status is not None and status.witness_conflict:
            return {"error": f"Off-site copy: {status.witness_conflict}", "anchor": "mismatch"}
        path = witness_note_path(config.data_dir)
        notes = [path.read_bytes()] if path.exists() else []
        result = compare(audit_log.size, audit_log.root_at, notes, device)
    else:
        try:
            dest = open_destination(replicate.destination, timeout_s=5.0)
            try:
                result = check_against_copy(
                    dest, audit_log.size, audit_log.root_at, device, every_checkpoint=False
                )
            finally:
                dest.close()
        except ReplicationError as exc:
            log.warning("witness check skipped, the copy is unreachable: %s", exc)
            return None
    if result.ok:
        return None
    return {"error": f"Off-site copy: {result.message}", "anchor": "mismatch"}
