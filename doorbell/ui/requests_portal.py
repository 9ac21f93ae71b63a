"""The requester portal (blueprint ``requests``): public, and it never shows footage.

- ``/requests/invite/<token>``: the request form behind an owner's invitation link.
- ``/requests/new``: the open form, only while the owner has switched it on (else 404).
- ``/requests/status/<token>``: the requester's own request, by the token shown once at
  submission; ``/requests/status/<token>/bundle`` downloads the encrypted bundle within its
  expiry and download limit (each download and each refusal of a known token audited).

No page here names a clip, an event, a thumbnail or whether anything was recorded: only
what the requester sent and the owner's decision. Unknown, used and expired links all get
the same 404. Everything is rate-limited per client address.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, request
from flask.typing import ResponseReturnValue

from doorbell.errors import NotPermitted
from doorbell.exports.model import KINDS, LEGAL_BASES, RequestInvalid, format_time
from doorbell.ui.guard import public
from doorbell.ui.state import web_state

bp = Blueprint("requests", __name__, url_prefix="/requests")

#: Submissions and page views per client address (flask-limiter, in memory).
PORTAL_RATE = "30 per minute"
SUBMIT_RATE = "5 per minute"
_FIELDS = (
    "requester",
    "organisation",
    "contact",
    "kind",
    "legal_basis",
    "legal_reference",
    "window_start",
    "window_end",
    "reason",
    "delivery",
    "recipient",
)


def _exports() -> Any:
    return current_app.extensions["doorbell_exports"]


def _limit(rate: str) -> Any:
    return web_state().limiter.limit(rate)


def _form(action: str, values: dict[str, str], problems: list[str], status: int = 200) -> Any:
    page = render_template(
        "requests/form.html",
        action=action,
        values=values,
        problems=problems,
        kinds=KINDS,
        bases=LEGAL_BASES,
    )
    return page, status


def _submit(source: str, action: str, invitation_token: str | None) -> Any:
    raw = {name: request.form.get(name, "") for name in _FIELDS}
    if raw["delivery"] != "recipient":
        raw.pop("recipient")
    exports = _exports()
    try:
        created, token = exports.registry.submit(
            raw, source=source, invitation_token=invitation_token
        )
    except RequestInvalid as exc:
        return _form(action, {k: str(v) for k, v in raw.items()}, exc.problems, 400)
    except NotPermitted:
        abort(404)
    return render_template("requests/submitted.html", request_id=created.id, token=token)


@bp.route("/invite/<token>", methods=["GET", "POST"])
@public
def invite(token: str) -> ResponseReturnValue:
    with _limit(PORTAL_RATE):
        try:
            _exports().registry.invitation_for(token)
        except NotPermitted:
            abort(404)
        action = request.path
        if request.method == "GET":
            return _form(action, {}, [])
        with _limit(SUBMIT_RATE):
            return _submit("invitation", action, token)


@bp.route("/new", methods=["GET", "POST"])
@public
def open_form() -> ResponseReturnValue:
    with _limit(PORTAL_RATE):
        if not _exports().registry.open_form_enabled():
            abort(404)
        if request.method == "GET":
            return _form(request.path, {}, [])
        with _limit(SUBMIT_RATE):
            return _submit("open_form", request.path, None)


@bp.get("/status/<token>")
@public
def status(token: str) -> ResponseReturnValue:
    with _limit(PORTAL_RATE):
        registry = _exports().registry
        registry.sweep()
        try:
            found = registry.by_token(token)
        except NotPermitted:
            abort(404)
        downloadable = (
            found.status in ("approved", "delivered")
            and found.bundle_state == "ready"
            and found.downloads < found.download_limit
        )
        return render_template(
            "requests/status.html",
            r=found,
            token=token,
            downloadable=downloadable,
            format_time=format_time,
        )


@bp.get("/status/<token>/bundle")
@public
def download(token: str) -> ResponseReturnValue:
    with _limit(PORTAL_RATE):
        registry = _exports().registry
        try:
            found, handle = registry.open_download(token, client=request.remote_addr or "")
        except NotPermitted as exc:
            message = "This download is not available." if "unknown" in str(exc) else str(exc)
            return render_template("error.html", status=403, message=message), 403

        def stream() -> Any:
            with handle:
                while chunk := handle.read(1 << 16):
                    yield chunk

        headers = {"Content-Disposition": f'attachment; filename="{found.id}.tar.age"'}
        return Response(stream(), mimetype="application/octet-stream", headers=headers)
