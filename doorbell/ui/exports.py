"""The owner's side of export requests (blueprint ``exports``) and the transparency page.

- ``/exports``: requests (pending first), invitations (create one: the link is shown once),
  the open-form and public-transparency switches.
- ``/exports/<id>``: a request beside the clips in its window (thumbnails, times); approve
  the clips the owner ticks (none is ticked at first; every choice comes back after a
  refusal: :mod:`doorbell.ui.decisions`) with optional redaction (faces, owner-drawn
  regions, "keep only this region", pixelate or fill: :mod:`doorbell.redact.parse`
  validates the form), an expiry and a download limit (the passphrase is asked again:
  step-up, throttled like unlock; then the log is checked through the owner anchor and
  cosigned, as at unlock and in ``doorbell requests approve``: a mismatch refuses the
  approval), or deny with a reason the requester sees. The bundle is then built in a
  background thread; ``/exports/<id>/progress`` reports it. In every state the page shows
  the requester's status link, decrypted in memory from the owner's copy
  (:mod:`doorbell.exports.tokencopy`) and built from the configuration; the view's audit
  entry then says ``status_link_shown``.
- ``/exports/<id>/revoke``: take an approval back (passphrase step-up): the request closes
  with bundle state ``revoked``, the bundle is deleted, ``export.bundle_revoked`` is audited
  and the requester's status page says "revoked".
- ``/exports/<id>/preview.jpg?clip=...&at=...`` + the redaction fields: one frame of a clip in
  the request's window, decrypted in memory and redacted as the export would be (owner
  session only, ``no-store``, audited as ``export.preview_viewed``; one preview at a time).
- ``/exports/self``: the owner's own download as an export (a self-request approved in one
  step with the unlocked identity); ``/exports/<id>/download`` fetches it (audited).
- ``/transparency`` (owner) and ``/transparency/public`` (only if published): requests per
  month by kind, legal basis and outcome; counts only.

:func:`install` opens the export registry and the bundle jobs on an app built by
:func:`doorbell.ui.create_app` and registers the three blueprints.
"""

from __future__ import annotations

import math
import threading
from typing import Any, BinaryIO, cast

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from doorbell.errors import (
    AgeError,
    NotPermitted,
    PassphraseError,
    RedactionError,
    RequestError,
    StorageError,
    VideoError,
)
from doorbell.ui.decisions import (
    SOURCE_WORDS,
    STATUS_WORDS,
    approval_summary,
    chosen_on_form,
    redaction_in_words,
)
from doorbell.ui.guard import passive, public
from doorbell.ui.state import local_time

bp = Blueprint("exports", __name__, url_prefix="/exports")
transparency_bp = Blueprint("transparency", __name__)


class ExportsState:
    """The registry and background bundle jobs of a web app."""

    def __init__(self, registry: Any, jobs: Any, sweeper: Any) -> None:
        self.registry = registry
        self.jobs = jobs
        #: deletes expired bundles on a timer (not only on a page load)
        self.sweeper = sweeper
        #: one preview decode at a time (each holds a decoded clip's frames and a detector)
        self.preview_gate = threading.BoundedSemaphore(1)

    def close(self) -> None:
        """Stop the sweeper and running bundle builds (each marked failed, audited); close."""
        self.sweeper.stop()
        self.jobs.cancel()  # a build may wait up to a minute for a checkpoint: not at shutdown
        self.jobs.join()
        self.registry.close()


def install(app: Flask) -> None:
    """Open the export registry for ``app`` and register the export blueprints."""
    from doorbell.exports.registry import ExportRegistry
    from doorbell.exports.service import BundleJobs, ExpirySweeper
    from doorbell.ui import requests_portal

    state = app.extensions["doorbell"]
    registry = ExportRegistry.open(
        state.data_dir, state.audit, clock=state.wall_clock, config=state.config.exports
    )
    jobs = BundleJobs(registry=registry, store=state.store, audit=state.audit)
    sweeper = ExpirySweeper(registry)
    app.extensions["doorbell_exports"] = ExportsState(registry, jobs, sweeper)
    sweeper.start()
    for blueprint in (requests_portal.bp, bp, transparency_bp):
        app.register_blueprint(blueprint)
    app.context_processor(_pending_for_templates)


def _pending_for_templates() -> dict[str, Any]:
    """The owner's header and banner: requests waiting for a decision (oldest deadline
    first). Nothing for a locked session or a requester's page."""
    if getattr(session, "owner", None) is None:
        return {"pending_requests": []}
    now = _state().wall_clock()
    waiting = [r for r in _exports().registry.pending_requests() if r.decide_by > now]
    waiting.sort(key=lambda r: r.decide_by)
    return {"pending_requests": waiting}


def _state() -> Any:
    return current_app.extensions["doorbell"]


def _exports() -> Any:
    return current_app.extensions["doorbell_exports"]


def _request_or_404(request_id: str) -> Any:
    try:
        return _exports().registry.get(request_id)
    except RequestError:
        abort(404)


@bp.get("")
def index() -> Any:
    registry = _exports().registry
    registry.sweep()
    found = registry.requests()
    found.sort(key=lambda r: (r.status != "pending", -r.created_at))
    return render_template(
        "exports/index.html",
        status_words=STATUS_WORDS,
        requests=found,
        invitations=registry.invitations(),
        open_form=registry.open_form_enabled(),
        public=registry.transparency_public(),
        new_link=None,
        now=_state().wall_clock(),
    )


@bp.post("/invitations")
def create_invitation() -> Any:
    registry = _exports().registry
    try:
        days = float(request.form.get("days") or registry.config.invitation_expiry_days)
        _invitation, token = registry.create_invitation(
            request.form.get("label", ""), expires_in_s=days * 86400
        )
    except (ValueError, RequestError) as exc:
        return render_template("error.html", status=400, message=str(exc)), 400
    from doorbell.ui.guard import external_url

    link = external_url(url_for("requests.invite", token=token))  # never from the Host header
    return render_template("exports/invitation.html", link=link)


@bp.post("/switches")
def switches() -> Any:
    registry = _exports().registry
    if "open_form" in request.form:
        registry.set_open_form(request.form["open_form"] == "on")
    if "public" in request.form:
        registry.set_transparency_public(request.form["public"] == "on")
    return redirect(url_for("exports.index"))


@bp.get("/<request_id>")
def review(request_id: str, *, error: str = "", status: int = 200) -> Any:
    from doorbell.exports.model import window_warning
    from doorbell.exports.service import clips_for_request

    found = _request_or_404(request_id)
    clips = clips_for_request(_state().store, found)
    status_link, link_problem = _status_link(found)
    _state().record(
        "owner",
        "export.request_viewed",
        f"request/{found.id}",
        {"status_link_shown": True} if status_link else {},
    )
    fields = found.fields
    error = error or window_warning(fields.window_start, fields.window_end, _state().wall_clock())
    config = _exports().registry.config
    chosen = chosen_on_form(request.form if request.method == "POST" else None, config)
    approved_clips = []
    for clip_id in found.clip_ids:
        try:
            approved_clips.append(_state().store.get_clip(clip_id))
        except StorageError:
            continue
    page = render_template(
        "exports/review.html",
        r=found,
        clips=clips,
        error=error,
        progress=_exports().jobs.progress(found.id),
        chosen=chosen,
        summary=approval_summary(found, clips, chosen),
        approved_clips=approved_clips,
        redaction_words=redaction_in_words(found.redaction),
        revocable=found.status in ("approved", "delivered")
        and found.bundle_state in ("ready", "failed"),
        status_words=STATUS_WORDS,
        source_words=SOURCE_WORDS,
        status_link=status_link,
        link_problem=link_problem,
    )
    return page, status


#: Why the requester's status link cannot be shown, by cause.
_NO_LINK_COPY = (
    "Not available: no copy of this link was kept (the request was stored before this "
    "doorbell kept one, or before it was set up). The requester has the link they were given."
)
_LINK_KEY_GONE = (
    "Not available: the copy of this link is encrypted to an owner key you no longer hold. "
    "The requester has the link they were given."
)


def _status_link(found: Any) -> tuple[str, str]:
    """The requester's status link of ``found`` (decrypted in memory with the unlocked
    owner's identity, built from the configuration like invitation links, never from the
    Host header) and, when there is none to show, why: ``(link, "")`` or ``("", why)``."""
    from doorbell.ui.guard import external_url
    from doorbell.ui.sessions import current_owner

    if found.source == "self":
        return "", ""
    try:
        token = _exports().registry.status_token(found.id, current_owner().identity)
    except AgeError:
        return "", _LINK_KEY_GONE
    except RequestError as exc:
        return "", str(exc)
    if token is None:
        return "", _NO_LINK_COPY
    return external_url(url_for("requests.status", token=token)), ""


def _step_up() -> Any:
    """The owner keys if the passphrase typed on the form unlocks them (throttled, one
    scrypt check at a time: :mod:`doorbell.ui.stepup`)."""
    from doorbell.ui.stepup import check_passphrase

    return check_passphrase(
        _state(),
        request.form.get("passphrase", ""),
        request.remote_addr or "unknown",
        actor="owner",
        failed_action="export.step_up_failed",
        refused_action="export.step_up_refused",
    )


@bp.post("/<request_id>/approve")
def approve(request_id: str) -> Any:
    from doorbell.exports.service import approve as approve_request
    from doorbell.exports.service import check_owner_log
    from doorbell.redact.parse import spec_from_form

    found = _request_or_404(request_id)
    try:
        spec = spec_from_form(request.form)  # refused before the passphrase costs a check
        redaction = None if spec.is_empty else spec.to_dict()
        keys = _step_up()
        days = float(request.form.get("days", "3"))
        limit = int(request.form.get("download_limit", "1"))
        bundle_passphrase = request.form.get("bundle_passphrase") or None
        # the log must match the owner anchor, as at unlock and in `doorbell requests approve`
        check_owner_log(
            _state().audit, keys.identity, keys.cosigning_key, clock=_state().wall_clock
        )
        approve_request(
            _exports().registry,
            _state().store,
            found.id,
            cosigning_key=keys.cosigning_key,
            clip_ids=request.form.getlist("clip"),
            expires_in_s=days * 86400,
            download_limit=limit,
            redaction=redaction,
            passphrase=bundle_passphrase,
            # clips sealed after the request only on purpose (the manifest then says so)
            include_later_footage=request.form.get("include_later_footage") == "on",
        )
    except RedactionError as exc:
        return review(request_id, error=f"Redaction: {exc}", status=400)
    except (ValueError, RequestError, PassphraseError) as exc:
        return review(request_id, error=str(exc), status=400)
    _exports().jobs.start(
        found.id,
        identity=keys.identity,
        cosigning_key=keys.cosigning_key,
        passphrase=bundle_passphrase,
    )
    return redirect(url_for("exports.review", request_id=found.id))


#: How long a preview waits for the one before it (seconds) before answering 429.
_PREVIEW_WAIT_S = 5.0
#: Longest clip offset a preview may ask for (seconds).
_MAX_PREVIEW_AT_S = 3600.0


def _plain_error(message: str, status: int) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")


@bp.get("/<request_id>/preview.jpg")
def preview(request_id: str) -> Any:
    """One redacted frame of a clip in the request's window, as JPEG bytes from memory."""
    from doorbell.exports.bundle import BundleError, playable_prefix
    from doorbell.exports.service import clips_for_request
    from doorbell.redact import preview_jpeg
    from doorbell.redact.parse import spec_from_form
    from doorbell.ui.vault import open_encrypted

    found = _request_or_404(request_id)
    state = _state()
    clips = {c.id: c for c in clips_for_request(state.store, found)}
    clip = clips.get(request.args.get("clip", ""))
    if clip is None:
        abort(404)
    try:
        spec = spec_from_form(request.args)
        at_s = float(request.args.get("at") or 0)
        if not math.isfinite(at_s) or not 0 <= at_s <= _MAX_PREVIEW_AT_S:
            raise ValueError(f"at: seconds into the clip, 0..{_MAX_PREVIEW_AT_S:g}")
    except (ValueError, RedactionError) as exc:
        return _plain_error(str(exc), 400)
    gate = _exports().preview_gate
    # a preview still being made for a page that was just left (or reloaded) ends soon
    if not gate.acquire(timeout=_PREVIEW_WAIT_S):
        return _plain_error("Another preview is being made. Try again.", 429)
    try:
        opened = open_encrypted(
            state.store.absolute(clip.path),
            session.owner.identity,  # type: ignore[attr-defined]
            allow_truncated=clip.interrupted,
        )
        try:
            source = playable_prefix(opened.reader, clip.id) if clip.interrupted else opened.reader
            jpeg = preview_jpeg(cast(BinaryIO, source), spec, at_s=at_s, width=640)
        finally:
            opened.close()
    except RedactionError as exc:
        return _plain_error(f"Redaction: {exc}", 400)
    except (StorageError, AgeError, VideoError, BundleError) as exc:
        return _plain_error(f"This clip cannot be previewed: {exc}", 422)
    finally:
        gate.release()
    state.record(
        "owner",
        "export.preview_viewed",
        clip.id,
        {
            "request": found.id,
            "at_s": round(at_s, 3),
            "faces": spec.faces,
            "regions": len(spec.regions),
            "keep": len(spec.keep),
            "method": spec.method,
        },
    )
    response = Response(jpeg, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/<request_id>/deny")
def deny(request_id: str) -> Any:
    found = _request_or_404(request_id)
    try:
        _exports().registry.deny(found.id, request.form.get("reason", ""))
    except RequestError as exc:
        return review(request_id, error=str(exc), status=400)
    return redirect(url_for("exports.review", request_id=found.id))


@bp.post("/<request_id>/revoke")
def revoke(request_id: str) -> Any:
    """Take an approval back: passphrase step-up, then the bundle is deleted (audited)."""
    found = _request_or_404(request_id)
    try:
        _step_up()
    except PassphraseError as exc:
        return review(request_id, error=str(exc), status=400)
    if not _exports().registry.revoke_bundle(found.id):
        message = (
            "The bundle is still being built; revoke it when it is ready."
            if found.bundle_state == "building"
            else f"This request is {found.status}; there is nothing to revoke."
        )
        return review(request_id, error=message, status=409)
    return redirect(url_for("exports.review", request_id=found.id))


@bp.get("/<request_id>/progress")
@passive
def progress(request_id: str) -> Any:
    found = _request_or_404(request_id)
    job = _exports().jobs.progress(found.id) or {}
    return jsonify(bundle_state=found.bundle_state, **job)


@bp.post("/self")
def self_export() -> Any:
    from doorbell.exports.service import clips_for_request
    from doorbell.pubkeys import load_owner_recipients

    owner = session.owner  # type: ignore[attr-defined]
    local = local_time()
    start = local.parse_input(request.form.get("window_start", ""))
    end = local.parse_input(request.form.get("window_end", ""))
    if start is None or end is None or end <= start:
        message = (
            "From and To must both be a date and time, like 2026-01-02 15:04."
            if start is None or end is None
            else "To must be after From."
        )
        return render_template("error.html", status=400, message=message), 400
    registry = _exports().registry
    recipient = str(load_owner_recipients(_state().data_dir)[0])
    found = registry.add_self_export(window_start=start, window_end=end, recipient=recipient)
    clip_ids = [c.id for c in clips_for_request(_state().store, found)]
    try:
        registry.approve(
            found.id,
            cosigning_key=owner.cosigning_key,
            clip_ids=clip_ids,
            download_limit=3,
            step_up=False,
        )
    except RequestError as exc:
        registry.deny(found.id, f"nothing to export: {exc}")
        return render_template("error.html", status=400, message=str(exc)), 400
    _exports().jobs.start(found.id, identity=owner.identity, cosigning_key=owner.cosigning_key)
    return redirect(url_for("exports.review", request_id=found.id))


@bp.get("/<request_id>/download")
def owner_download(request_id: str) -> Any:
    try:
        found, handle = _exports().registry.open_owner_download(request_id)
    except (NotPermitted, RequestError) as exc:
        return render_template("error.html", status=403, message=str(exc)), 403

    def stream() -> Any:
        with handle:
            while chunk := handle.read(1 << 16):
                yield chunk

    headers = {"Content-Disposition": f'attachment; filename="{found.id}.tar.age"'}
    return Response(stream(), mimetype="application/octet-stream", headers=headers)


def _table() -> list[dict[str, Any]]:
    return _exports().registry.monthly_counts()


@transparency_bp.get("/transparency")
def transparency() -> Any:
    return render_template(
        "transparency/counts.html",
        rows=_table(),
        public_page=False,
        published=_exports().registry.transparency_public(),
    )


@transparency_bp.get("/transparency/public")
@public
def transparency_public() -> Any:
    if not _exports().registry.transparency_public():
        abort(404)
    return render_template(
        "transparency/counts.html", rows=_table(), public_page=True, published=True
    )
