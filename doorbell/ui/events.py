"""Timeline, thumbnails and playback: everything decrypted on the fly, in memory only.

- ``/timeline``: clips by day with thumbnails, filters, an events-per-hour chart and a
  storage gauge. Each page view is one audit entry (``timeline.viewed``), which stands for
  the batch of thumbnails it shows and names their clip ids.
- ``/thumbs/<id>.jpg``: a thumbnail decrypted into memory, sent with ``no-store``; one of a
  clip not on the session's last audited timeline page is audited as ``thumbnail.viewed``.
- ``/clips/<id>``: the playback page; ``/clips/<id>/video``: the MP4, decrypted per request
  with HTTP Range (206, suffix ranges, 416), seeking without decrypting what comes before.
  The first video request of a clip in a session is audited as ``clip.viewed``.
- ``/clips/<id>/download``: the same bytes as an attachment, audited as ``clip.downloaded``.

Interrupted clips play their authenticated prefix, and say so on the page.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request
from flask import session as flask_session

from doorbell.errors import AgeError, StorageError
from doorbell.masks import zone_names
from doorbell.store import CLIP_ID_PATTERN
from doorbell.ui.ranges import ranged_response
from doorbell.ui.timeline import FILTERS, hourly_chart_svg, human_size, storage_gauge_svg
from doorbell.ui.vault import decrypt_small, open_encrypted

log = logging.getLogger(__name__)
bp = Blueprint("events", __name__)

#: A clip's view is audited again if the same session comes back after this many seconds.
VIEW_AUDIT_INTERVAL_S = 600.0


def _state() -> Any:
    return current_app.extensions["doorbell"]


def _clip_or_404(clip_id: str) -> Any:
    if not CLIP_ID_PATTERN.match(clip_id):
        abort(404)
    try:
        return _state().store.get_clip(clip_id)
    except StorageError:
        abort(404)


@bp.get("/")
def home() -> Any:
    return redirect("/timeline")


#: a zone filter longer than this is cut (zone names are short labels from the config)
ZONE_NAME_MAX = 64


@bp.get("/timeline")
def timeline() -> Any:
    state = _state()
    kind = request.args.get("kind", "all")
    if kind not in FILTERS:
        kind = "all"
    try:
        page_number = int(request.args.get("page", "1"))
    except ValueError:
        page_number = 1
    zone = request.args.get("zone", "")[:ZONE_NAME_MAX] or None
    page = state.timeline.page(kind, page_number, zone=zone)
    now = state.wall_clock()
    used = state.store.used_bytes()
    quota = int(state.config.storage.quota_gb * 1e9)
    if quota:
        gauge = storage_gauge_svg(used, quota, "quota")
    else:
        from doorbell.store import free_bytes

        gauge = storage_gauge_svg(used, used + free_bytes(state.data_dir), "disk space")
    shown = [item.clip_id for item in page.items]
    state.record(
        "owner",
        "timeline.viewed",
        "",
        {
            "filter": kind,
            "zone": zone,
            "page": page.page,
            "clips_shown": len(page.items),
            "clips": shown,
        },
    )
    flask_session["timeline_clips"] = shown  # thumbnails of these are covered by this entry
    return render_template(
        "events/timeline.html",
        page=page,
        kind=kind,
        filters=FILTERS,
        zone=zone,
        zones=zone_names(state.config.motion.zones),
        chart=hourly_chart_svg(state.timeline.per_hour(now), now),
        gauge=gauge,
        human_size=human_size,
        checkpoint=flask_session.owner.checkpoint,
    )


@bp.get("/thumbs/<clip_id>.jpg")
def thumbnail(clip_id: str) -> Any:
    clip = _clip_or_404(clip_id)
    if not clip.thumb_path:
        abort(404)
    state = _state()
    try:
        jpeg = decrypt_small(state.store.absolute(clip.thumb_path), flask_session.owner.identity)
    except (StorageError, AgeError) as exc:
        log.warning("thumbnail %s: %s", clip_id, exc)
        abort(404)
    if clip.id not in flask_session.get("timeline_clips", ()):
        state.record("owner", "thumbnail.viewed", clip.id, {})  # not on the audited page
    return Response(jpeg, mimetype="image/jpeg")


@bp.get("/clips/<clip_id>")
def clip_page(clip_id: str) -> Any:
    clip = _clip_or_404(clip_id)
    return render_template("events/clip.html", clip=clip, human_size=human_size)


def _open_clip(clip: Any) -> Any:
    state = _state()
    try:
        return open_encrypted(
            state.store.absolute(clip.path),
            flask_session.owner.identity,
            allow_truncated=clip.interrupted or not clip.sealed,
        )
    except (StorageError, AgeError) as exc:
        log.warning("clip %s does not open: %s", clip.id, exc)
        abort(404 if isinstance(exc, StorageError) else 500)


def _audit_view(clip: Any) -> None:
    state = _state()
    seen: dict[str, float] = flask_session.setdefault("viewed_clips", {})
    now = state.clock()
    last = seen.get(clip.id)
    if last is not None and now - last < VIEW_AUDIT_INTERVAL_S:
        return
    details = {"interrupted": clip.interrupted, "range": request.headers.get("Range", "")[:64]}
    state.record("owner", "clip.viewed", clip.id, details)
    seen[clip.id] = now
    flask_session.modified = True


@bp.get("/clips/<clip_id>/video")
def clip_video(clip_id: str) -> Any:
    clip = _clip_or_404(clip_id)
    opened = _open_clip(clip)
    try:
        _audit_view(clip)
    except BaseException:
        opened.close()
        raise
    return ranged_response(
        request.headers.get("Range"),
        opened.reader,
        opened.size,
        opened.close,
        mimetype="video/mp4",
        etag=f"{clip.id}-{opened.size}",
        if_range=request.headers.get("If-Range"),
    )


@bp.get("/clips/<clip_id>/download")
def clip_download(clip_id: str) -> Any:
    clip = _clip_or_404(clip_id)
    opened = _open_clip(clip)
    range_header = request.headers.get("Range")
    try:
        _state().record(
            "owner",
            "clip.downloaded",
            clip.id,
            {"bytes": opened.size, "range": (range_header or "")[:64]},
        )
    except BaseException:
        opened.close()
        raise
    response = ranged_response(
        range_header, opened.reader, opened.size, opened.close, mimetype="video/mp4"
    )
    response.headers["Content-Disposition"] = f'attachment; filename="{clip.id}.mp4"'
    return response
