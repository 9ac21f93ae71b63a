"""What the web UI and the CLI share: clips of a request, approval, bundles in the background.

- :func:`clips_for_request`: the clips overlapping a request's time window (what the owner
  reviews; approval may choose only among them).
- :func:`check_owner_log`: before any approval, the owner keys check the audit log against
  the owner anchor and cosign it (the same check as web unlock); a refusal stops the approval.
- :func:`approve_and_build`: that check, approve (checked choice), then build the bundle in
  this thread (the CLI).
- :class:`BundleJobs`: the same, with the build in a named background thread and progress
  the UI polls. The owner's identity and the passphrase for the bundle live in that thread's
  memory only until the build ends.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from doorbell.errors import AuditError, Cancelled, RequestError, StorageError
from doorbell.exports.bundle import BundleResult, ProgressCallback, build_bundle
from doorbell.exports.core import ExportRequest

if TYPE_CHECKING:  # types only
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from doorbell.age.identities import X25519Identity
    from doorbell.audit.log import AuditLog
    from doorbell.exports.registry import ExportRegistry
    from doorbell.store import Clip, Store

#: Clips may be this long at most (config.recording.max_clip_s is capped lower), so a clip
#: that started this much before the window may still overlap it.
_LONGEST_CLIP_S = 3600.0


def clips_for_request(store: Store, request: ExportRequest) -> list[Clip]:
    """Sealed clips overlapping ``[window_start, window_end)``, oldest first (none for a
    stored window outside 1970..now: see :func:`doorbell.exports.model.window_in_bounds`)."""
    from doorbell.exports.model import window_in_bounds

    start, end = request.fields.window_start, request.fields.window_end
    if not window_in_bounds(start, end, math.inf):
        return []
    found = store.clips(since=start - _LONGEST_CLIP_S, until=end, newest_first=False)
    return [c for c in found if c.sealed and (c.ended_at or c.started_at) >= start]


class LogNotAnchored(RequestError):
    """Not approved: the audit log does not match the owner anchor, the anchor is missing,
    or the owner's cosignature was refused. Nothing was approved or exported."""


def check_owner_log(
    audit: AuditLog,
    identity: X25519Identity,
    cosigning_key: Ed25519PrivateKey,
    *,
    clock: Callable[[], float] = time.time,
) -> bytes:
    """Check the audit log against the owner anchor and cosign it; return the cosignature.

    What web unlock runs (:func:`doorbell.audit.anchor.owner_cosign`: the same entries,
    ``audit.anchor_mismatch``, ``audit.anchor_missing``, ``audit.cosign_refused`` or
    ``audit.anchor_created``, and the anchor moves on), run again before each approval so a
    log rewritten with the device key is never approved from and cosigned into a bundle.
    ``identity`` is the owner's age identity (it derives the anchor key); ``clock`` (epoch
    seconds) dates the anchor. Raises :class:`LogNotAnchored` (nothing cosigned then).
    """
    from doorbell.audit.anchor import AnchorError, AnchorMissing, owner_cosign
    from doorbell.keys import OWNER_COSIGNER_NAME, derive_owner_anchor_key

    try:
        return owner_cosign(
            audit,
            derive_owner_anchor_key(identity),
            cosigning_key,
            OWNER_COSIGNER_NAME,
            clock=clock,
        )
    except AnchorMissing as exc:
        problem = f"the owner anchor is missing: {exc}"
    except AnchorError as exc:
        problem = f"the audit log does not match the owner anchor: {exc}"
    except (AuditError, StorageError) as exc:
        problem = f"the audit log cannot be cosigned: {exc}"
    raise LogNotAnchored(
        f"not approved: {problem}. Nothing was exported. Check the log with `doorbell audit "
        "verify --owner-check`; if you accept it as it is, do so on the web UI's Audit page"
    )


def check_clip_choice(store: Store, request: ExportRequest, clip_ids: list[str]) -> None:
    """Raise :class:`RequestError` unless every id is a clip in the request's window."""
    allowed = {c.id for c in clips_for_request(store, request)}
    outside = sorted(set(clip_ids) - allowed)
    if outside:
        raise RequestError(f"clips not in the request's time window: {', '.join(outside)[:300]}")


def approve(
    registry: ExportRegistry,
    store: Store,
    request_id: str,
    *,
    cosigning_key: Ed25519PrivateKey,
    clip_ids: list[str],
    expires_in_s: float | None = None,
    download_limit: int | None = None,
    redaction: dict[str, Any] | None = None,
    passphrase: str | None = None,
    include_later_footage: bool = False,
) -> ExportRequest:
    """Check the choice and approve (audited, the decision signed with the owner's
    ``cosigning_key``: :mod:`.decision`). ``passphrase`` must be given (not stored) when
    the request is delivered with one. Returns the approved request.

    The request is rebuilt from its signed ``export.request_submitted`` entry; a registry
    row that differs from it in any field is refused (audited ``export.approval_refused``,
    :class:`doorbell.exports.registry.SubmissionMismatch`). Run :func:`check_owner_log`
    first, so the entry is read from a log that matches the owner anchor."""
    # the signed submission, not the row, is what is approved (a differing row is refused)
    request = registry.signed_request(request_id, refusing="export.approval_refused")
    check_clip_choice(store, request, clip_ids)
    check_clip_origins(registry, request_id, clip_ids, include_later_footage)
    if request.fields.delivery == "passphrase" and not passphrase:
        raise RequestError("this request is delivered with a passphrase: set one to approve it")
    if passphrase is not None and request.fields.delivery == "passphrase" and len(passphrase) < 12:
        raise RequestError("the bundle passphrase must be at least 12 characters")
    if redaction:
        from doorbell.redact import RedactionSpec

        redaction = RedactionSpec.from_dict(redaction).to_dict()
    return registry.approve(
        request_id,
        cosigning_key=cosigning_key,
        clip_ids=clip_ids,
        expires_in_s=expires_in_s,
        download_limit=download_limit,
        redaction=redaction,
        include_later_footage=include_later_footage,
    )


def check_clip_origins(
    registry: ExportRegistry, request_id: str, clip_ids: list[str], include_later_footage: bool
) -> None:
    """Raise :class:`RequestError` unless every clip's ``clip.sealed`` entry is in the log
    (the bundle proves each clip's origin with it) and, unless ``include_later_footage``,
    precedes the request's submission entry."""
    from doorbell.exports.record import read_record

    record = read_record(registry.audit_log, request_id, clip_ids)
    unlogged = sorted(set(clip_ids) - set(record.clips))
    if unlogged:
        raise RequestError(
            f"clips without a clip.sealed entry in the audit log (their origin cannot be "
            f"proven, so they cannot be exported): {', '.join(unlogged)[:300]}"
        )
    if record.submitted is None:
        raise RequestError(f"request {request_id}: no submission entry in the audit log")
    submitted_at = record.submitted.time
    later = sorted(c for c in clip_ids if record.clips[c].time >= submitted_at)
    if later and not include_later_footage:
        raise RequestError(
            f"clips sealed after the request was submitted ({submitted_at}): "
            f"{', '.join(later)[:300]}; include them only on purpose (--include-later-footage "
            "/ the 'include later footage' box): the bundle will say so"
        )


def approve_and_build(
    registry: ExportRegistry,
    store: Store,
    audit: AuditLog,
    request_id: str,
    *,
    identity: X25519Identity,
    cosigning_key: Ed25519PrivateKey,
    clip_ids: list[str],
    passphrase: str | None = None,
    progress: ProgressCallback | None = None,
    work_factor: int | None = None,
    **decision: Any,
) -> BundleResult:
    """Check the log through the owner anchor, approve, and build the bundle in this thread
    (the CLI). Raises :class:`LogNotAnchored` (before anything is approved: see
    :func:`check_owner_log`), or like :func:`approve` and the build."""
    check_owner_log(audit, identity, cosigning_key)
    approve(
        registry,
        store,
        request_id,
        cosigning_key=cosigning_key,
        clip_ids=clip_ids,
        passphrase=passphrase,
        **decision,
    )
    config = registry.config
    return build_bundle(
        registry=registry,
        store=store,
        audit=audit,
        request_id=request_id,
        identity=identity,
        cosigning_key=cosigning_key,
        passphrase=passphrase,
        work_factor=work_factor or config.passphrase_work_factor,
        progress=progress,
        checkpoint_wait_s=config.checkpoint_wait_s,
    )


@dataclass
class JobProgress:
    stage: str = "queued"
    done: int = 0
    total: int = 0
    error: str = ""
    finished: bool = False

    def as_dict(self) -> dict[str, Any]:
        percent = (
            100
            if self.finished and not self.error
            else (int(100 * self.done / self.total) if self.total else 0)
        )
        return {
            "stage": self.stage,
            "done": self.done,
            "total": self.total,
            "percent": min(percent, 100),
            "error": self.error,
            "finished": self.finished,
        }


class BundleJobs:
    """Bundles built in background threads (named ``bundle-<request>``, non-daemon)."""

    def __init__(
        self,
        *,
        registry: ExportRegistry,
        store: Store,
        audit: AuditLog,
        work_factor: int | None = None,
    ) -> None:
        self.registry, self.store, self.audit = registry, store, audit
        self.work_factor = work_factor or registry.config.passphrase_work_factor
        self._jobs: dict[str, tuple[threading.Thread, JobProgress]] = {}
        self._lock = threading.Lock()
        self._cancelled = threading.Event()

    def start(
        self, request_id: str, *, identity: Any, cosigning_key: Any, passphrase: str | None = None
    ) -> None:
        """Build the bundle of an approved request in the background."""
        progress = JobProgress()

        def report(stage: str, done: int, total: int) -> None:
            self._raise_if_cancelled()
            progress.stage, progress.done, progress.total = stage, done, total

        def run() -> None:
            try:
                build_bundle(
                    registry=self.registry,
                    store=self.store,
                    audit=self.audit,
                    request_id=request_id,
                    identity=identity,
                    cosigning_key=cosigning_key,
                    passphrase=passphrase,
                    work_factor=self.work_factor,
                    progress=report,
                    checkpoint_wait_s=self.registry.config.checkpoint_wait_s,
                    sleep=self._sleep,
                )
            except Exception as exc:  # reported on the page and in the audit log
                progress.error = f"{type(exc).__name__}: {exc}"
            finally:
                progress.finished = True

        thread = threading.Thread(target=run, name=f"bundle-{request_id}", daemon=False)
        with self._lock:
            self._jobs[request_id] = (thread, progress)
        thread.start()

    def progress(self, request_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get(request_id)
        return None if job is None else job[1].as_dict()

    def cancel(self) -> None:
        """Stop every running build at its next step (the web UI is shutting down).

        Each stops with :class:`Cancelled`: its temporary file is removed and the bundle is
        marked failed, audited, as any failed build is.
        """
        self._cancelled.set()

    def _raise_if_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise Cancelled("the web UI stopped while this bundle was being built")

    def _sleep(self, seconds: float) -> None:
        """``time.sleep`` for the builds, cut short by :meth:`cancel`."""
        self._cancelled.wait(seconds)
        self._raise_if_cancelled()

    def join(self, timeout: float | None = None) -> None:
        """Wait for every running build (shutdown, tests)."""
        with self._lock:
            threads = [thread for thread, _progress in self._jobs.values()]
        for thread in threads:
            thread.join(timeout)


class ExpirySweeper:
    """Deletes expired bundles and expires undecided requests on a timer, not only when a
    page happens to load: a named thread (``exports-expiry-sweep``, non-daemon) calling
    ``registry.sweep()`` every ``interval_s`` seconds; :meth:`stop` joins it."""

    def __init__(self, registry: ExportRegistry, interval_s: float = 60.0) -> None:
        if not interval_s > 0:
            raise ValueError(f"sweep interval must be positive, not {interval_s!r}")
        self._registry = registry
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="exports-expiry-sweep", daemon=False)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        import logging

        while not self._stop.wait(self._interval_s):
            try:
                self._registry.sweep()
            except Exception:  # a locked database or a full disk must not end the sweeping
                logging.getLogger(__name__).exception("export expiry sweep failed")

    def stop(self) -> None:
        """Stop and join the thread (idempotent)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
