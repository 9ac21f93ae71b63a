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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as flask_session
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from doorbell.datadir import DataDir
from doorbell.errors import AgeError, StorageError
from doorbell.masks import zone_names
from doorbell.store import CLIP_ID_PATTERN, Clip, TimelineItem
from doorbell.ui.ranges import ranged_response
from doorbell.ui.sessions import current_owner
from doorbell.ui.state import local_time, web_state
from doorbell.ui.timeline import (
    FILTERS,
    RenderedDays,
    hourly_chart_svg,
    human_size,
    storage_gauge_svg,
)
from doorbell.ui.vault import OpenedFile, decrypt_small, open_encrypted

if TYPE_CHECKING:
    from doorbell.ui import WebState

log = logging.getLogger(__name__)
bp = Blueprint("events", __name__)

#: A clip's view is audited again if the same session comes back after this many seconds.
VIEW_AUDIT_INTERVAL_S = 600.0


def _clip_or_404(clip_id: str) -> Clip:
    if not CLIP_ID_PATTERN.match(clip_id):
        abort(404)
    try:
        return web_state().store.get_clip(clip_id)
    except StorageError:
        abort(404)


@bp.get("/")
def home() -> ResponseReturnValue:
    return redirect("/timeline")


#: a zone filter longer than this is cut (zone names are short labels from the config)
ZONE_NAME_MAX = 64


@bp.get("/timeline")
def timeline() -> ResponseReturnValue:
    state = web_state()
    kind = request.args.get("kind", "all")
    if kind not in FILTERS:
        kind = "all"
    try:
        page_number = int(request.args.get("page", "1"))
    except ValueError:
        page_number = 1
    motion_zone = request.args.get("zone", "")[:ZONE_NAME_MAX] or None
    now = state.wall_clock()
    page, used, per_hour = state.timeline.overview(kind, page_number, now, zone=motion_zone)
    quota = int(state.config.storage.quota_gb * 1e9)
    if quota:
        gauge = storage_gauge_svg(used, quota, "quota")
    else:
        from doorbell.store import free_bytes

        gauge = storage_gauge_svg(used, used + free_bytes(state.data_dir), "disk space")
    shown = [item.clip_id for item in page.items]
    held = _held_reasons(state, page.items)
    state.record(
        "owner",
        "timeline.viewed",
        "",
        {
            "filter": kind,
            "zone": motion_zone,
            "page": page.page,
            "clips_shown": len(page.items),
            "clips": shown,
        },
    )
    flask_session["timeline_clips"] = shown  # thumbnails of these are covered by this entry
    local = local_time()
    rendered: RenderedDays = current_app.extensions.setdefault(
        "doorbell_timeline_days", RenderedDays()
    )
    days = rendered.get(
        page,
        local,
        held,
        request.script_root,
        lambda: render_template(
            "events/timeline_days.html",
            page=page,
            zone=local.zone,
            held=held,
            human_size=human_size,
            clip_link=clip_links("events.clip_page"),
            thumb_link=clip_links("events.thumbnail"),
        ),
    )
    return render_template(
        "events/timeline.html",
        page=page,
        kind=kind,
        filters=FILTERS,
        chart=hourly_chart_svg(per_hour, now, local.zone),
        days=Markup(days),  # noqa: S704 - rendered (autoescaped) by timeline_days.html
        motion_zone=motion_zone,
        motion_zones=zone_names(state.config.motion.zones),
        gauge=gauge,
        checkpoint=current_owner().checkpoint,
    )


#: A clip id for :func:`clip_links` to build around (it matches ``CLIP_ID_PATTERN``).
_PLACEHOLDER_ID = "00000000T000000Z-00000000"


def clip_links(endpoint: str) -> Callable[[str], str]:
    """``url_for(endpoint, clip_id=...)`` for the 48 clips of a page at the cost of one call.

    Clip ids (``CLIP_ID_PATTERN``: digits, ``T``, ``Z``, ``-``, hex) are left as they are by
    URL quoting, so the URL built for a placeholder id, split around it, fits every id.
    Building 96 URLs was a quarter of rendering a page (issue 17, load).
    """
    head, tail = url_for(endpoint, clip_id=_PLACEHOLDER_ID).split(_PLACEHOLDER_ID)

    def link(clip_id: str) -> str:
        if not CLIP_ID_PATTERN.match(clip_id):
            return url_for(endpoint, clip_id=clip_id)
        return f"{head}{clip_id}{tail}"

    return link


#: How long the timeline's "held" badges may lag the request registry (seconds).
HELD_CACHE_S = 5.0


def _held_reasons(state: WebState, items: Sequence[TimelineItem]) -> dict[str, str]:
    """Clip id -> why retention keeps it, for the clips on this page (issue 17: the owner
    sees which clips are held and why)."""
    from doorbell.recorder.retention import held_windows

    # Display only (retention reads the registry itself): a few seconds stale at most.
    cache = state.__dict__.setdefault("_held_cache", {})
    bucket = int(state.clock() // HELD_CACHE_S)
    if cache.get("bucket") != bucket:
        cache.update(bucket=bucket, windows=held_windows(DataDir(state.data_dir).exports_index))
    windows = cache["windows"]
    if windows is None:
        reason = "kept: export requests cannot be read, so retention deletes nothing"
        return {item.clip_id: reason for item in items}
    held = {}
    for item in items:
        end = item.started_at + item.duration_s
        if any(item.started_at <= w_end and end >= w_start for w_start, w_end in windows):
            held[item.clip_id] = "kept by retention: a pending or approved export request names it"
    return held


@bp.get("/thumbs/<clip_id>.jpg")
def thumbnail(clip_id: str) -> ResponseReturnValue:
    clip = _clip_or_404(clip_id)
    if not clip.thumb_path:
        abort(404)
    state = web_state()
    try:
        jpeg = decrypt_small(state.store.absolute(clip.thumb_path), current_owner().identity)
    except (StorageError, AgeError) as exc:
        log.warning("thumbnail %s: %s", clip_id, exc)
        abort(404)
    if clip.id not in flask_session.get("timeline_clips", ()):
        state.record("owner", "thumbnail.viewed", clip.id, {})  # not on the audited page
    return Response(jpeg, mimetype="image/jpeg")


@bp.get("/clips/<clip_id>")
def clip_page(clip_id: str) -> ResponseReturnValue:
    clip = _clip_or_404(clip_id)
    return render_template("events/clip.html", clip=clip, human_size=human_size)


def _open_clip(clip: Clip) -> OpenedFile:
    state = web_state()
    try:
        return open_encrypted(
            state.store.absolute(clip.path),
            current_owner().identity,
            allow_truncated=clip.interrupted or not clip.sealed,
        )
    except (StorageError, AgeError) as exc:
        log.warning("clip %s does not open: %s", clip.id, exc)
        abort(404 if isinstance(exc, StorageError) else 500)


def _audit_view(clip: Clip) -> None:
    state = web_state()
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
def clip_video(clip_id: str) -> ResponseReturnValue:
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
def clip_download(clip_id: str) -> ResponseReturnValue:
    clip = _clip_or_404(clip_id)
    opened = _open_clip(clip)
    range_header = request.headers.get("Range")
    try:
        web_state().record(
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
