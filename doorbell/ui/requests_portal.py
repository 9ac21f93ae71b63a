"""The requester portal (blueprint ``requests``): public, and it never shows footage.

- ``/requests/invite/<token>``: the request form behind an owner's invitation link.
- ``/requests/new``: the open form, only while the owner has switched it on (else 404).
- ``/requests/status/<token>``: the requester's own request, by the token shown once at
  submission; ``/requests/status/<token>/bundle`` downloads the encrypted bundle within its
  expiry and download limit (each download and each refusal of a known token audited).

No page here names a clip, an event, a thumbnail or whether anything was recorded: only
what the requester sent and the owner's decision. A link that does not work gets a page
for people, with the right status and no owner links: 404 for an unknown link or a closed
open form, 410 for a used, revoked or expired invitation (only its holder can tell those
apart from unknown: tokens are 256-bit). Problems name the form's labels, not field names.
Times on the form are read in the device's time zone (``web.timezone``) and stored in UTC.
Everything is rate-limited per client address.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request, url_for
from flask.typing import ResponseReturnValue

from doorbell.errors import NotPermitted
from doorbell.exports.model import KINDS, LEGAL_BASES, RequestInvalid
from doorbell.ui.guard import public
from doorbell.ui.state import local_time, web_state

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


#: The form's labels, used in problems instead of the field names.
FIELD_LABELS = {
    "requester": "Your name",
    "organisation": "Organisation",
    "contact": "Contact",
    "kind": "You are",
    "legal_basis": "Legal basis",
    "legal_reference": "Warrant, subpoena or order number",
    "window_start": "From",
    "window_end": "To",
    "window": "Time window",
    "reason": "Reason",
    "delivery": "Delivery",
    "recipient": "Your age public key",
    "unknown fields": "Unexpected fields",
}
KIND_WORDS = {
    "police": "Police",
    "insurer": "Insurer",
    "neighbour": "Neighbour",
    "household": "Someone living here",
    "other": "Other",
}
_FIELD_NAME = re.compile(r"\b(" + "|".join(sorted(FIELD_LABELS, key=len, reverse=True)) + r")\b")


def human_problem(problem: str) -> str:
    """``window_end: must be after window_start`` -> ``To: must be after From``."""
    field, sep, message = problem.partition(": ")
    if not sep or field not in FIELD_LABELS:
        return problem
    if field == "recipient" and message.startswith("not an age public key"):
        message = "not an age public key (it starts with age1 and is 62 characters long)"
    message = _FIELD_NAME.sub(lambda m: f'"{FIELD_LABELS[m.group(1)]}"', message)
    message = message.replace("(UTC, like", "(like").replace("(want UTC, like", "(like")
    return f"{FIELD_LABELS[field]}: {message}"


def _closed(title: str, message: str, status: int) -> Any:
    page = render_template("requests/closed.html", title=title, message=message)
    return page, status


def _unusable_invitation(exc: NotPermitted) -> Any:
    if "unknown" in str(exc):
        return _closed(
            "This link does not work",
            "This invitation link is not known here. Check that you copied the whole link; "
            "if it still does not work, ask the owner of the doorbell for a new one.",
            404,
        )
    return _closed(
        "This invitation can no longer be used",
        "An invitation link works once and for a limited time: this one has been used, "
        "withdrawn or has expired. If you sent a request with it, use the private status "
        "link you were given then. Otherwise ask the owner of the doorbell for a new link.",
        410,
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
        problems=[human_problem(p) for p in problems],
        kinds=KINDS,
        kind_words=KIND_WORDS,
        bases=LEGAL_BASES,
    )
    return page, status


def _submit(source: str, action: str, invitation_token: str | None) -> Any:
    typed = {name: request.form.get(name, "") for name in _FIELDS}
    raw: dict[str, object] = dict(typed)
    if raw["delivery"] != "recipient":
        raw.pop("recipient")
    local = local_time()
    for name in ("window_start", "window_end"):
        moment = local.parse_input(typed[name])  # the device's zone; None: reported as typed
        if moment is not None:
            raw[name] = moment
    exports = _exports()
    try:
        created, token = exports.registry.submit(
            raw, source=source, invitation_token=invitation_token
        )
    except RequestInvalid as exc:
        return _form(action, typed, exc.problems, 400)
    except NotPermitted as exc:
        if source == "invitation":
            return _unusable_invitation(exc)
        return _form_closed()
    from doorbell.ui.guard import external_url

    # from the configuration, never from the Host header: the link the owner's request page
    # shows again is this same one
    link = external_url(url_for("requests.status", token=token))
    return render_template("requests/submitted.html", request_id=created.id, token=token, link=link)


def _form_closed() -> Any:
    return _closed(
        "The request form is closed",
        "The owner of this doorbell does not take requests through an open form right now. "
        "If you need footage, contact them and ask for an invitation link.",
        404,
    )


@bp.route("/invite/<token>", methods=["GET", "POST"])
@public
def invite(token: str) -> ResponseReturnValue:
    with _limit(PORTAL_RATE):
        try:
            _exports().registry.invitation_for(token)
        except NotPermitted as exc:
            return _unusable_invitation(exc)
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
            return _form_closed()
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
            return _closed(
                "This link does not work",
                "This status link is not known here. Check that you copied the whole link "
                "you were given when you sent your request.",
                404,
            )
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
            kind_words=KIND_WORDS,
        )


@bp.get("/status/<token>/bundle")
@public
def download(token: str) -> ResponseReturnValue:
    with _limit(PORTAL_RATE):
        registry = _exports().registry
        try:
            found, handle = registry.open_download(token, client=request.remote_addr or "")
        except NotPermitted as exc:
            reason = str(exc).removeprefix("download refused: ")
            message = (
                "This download link is not known here."
                if "unknown" in reason
                else f"This download is not available ({reason})."
            )
            return _closed("Download not available", message, 403)

        def stream() -> Any:
            with handle:
                while chunk := handle.read(1 << 16):
                    yield chunk

        headers = {"Content-Disposition": f'attachment; filename="{found.id}.tar.age"'}
        return Response(stream(), mimetype="application/octet-stream", headers=headers)
