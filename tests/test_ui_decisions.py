"""Web: the owner's decisions front and centre (issue 18).

Requests in the header and a banner while one waits; approval starts from nothing shared and
keeps every choice through a refusal; an approved request shows what was shared and can be
revoked (step-up, bundle deleted, audited, the requester sees "revoked"); requester pages
speak the form's words and answer unusable links with the right status and no owner links;
times in the configured zone; the audit page in sentences with filters.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from exports_helpers import NOW, WallClock
from test_ui_exports import approve, form_fields, invite, submit
from test_ui_exports import site as site
from ui_helpers import T0, Clock, FakeVault, csrf_from, make_clip, prepare_data_dir, ui_config
from ui_helpers import unlock as unlock_owner

from doorbell.age.identities import X25519Identity
from doorbell.audit.entries import decode_entry
from doorbell.config import parse_config
from doorbell.errors import ConfigError
from doorbell.localtime import LocalTime
from doorbell.store import Store
from doorbell.ui import close_app, create_app

PASSPHRASE = FakeVault().passphrase


def pending_request(site: dict, **changes: str) -> tuple[Any, str, str]:
    """A request submitted through an invitation: (requester client, status token, id)."""
    key = X25519Identity.generate()
    requester, token = submit(site, invite(site), str(key.recipient), **changes)
    return requester, token, site["exports"].registry.by_token(token).id


def audit_actions(app: Any) -> list[dict]:
    return [decode_entry(leaf) for _i, leaf in app.extensions["doorbell"].audit.entries()]


def checked_clips(page: str) -> set[str]:
    return set(re.findall(r'name="clip" value="([^"]+)"[^>]*checked', page))


# --- Requests in reach ------------------------------------------------------------------------


def test_header_counts_pending_requests_and_every_owner_page_shows_the_banner(site: dict) -> None:
    owner = site["owner"]
    before = owner.get("/timeline").text
    assert 'id="nav-requests"' in before and 'id="pending-count"' not in before
    assert 'id="pending-banner"' not in before
    _r, _t, request_id = pending_request(site)
    for path in ("/timeline", "/audit", "/settings", "/exports", "/live"):
        page = owner.get(path).text
        assert re.search(r'id="pending-count"[^>]*>1<', page), path
        banner = page[page.index('id="pending-banner"') :]
        banner = html.unescape(banner[: banner.index("</div>")])
        assert "PC Jane Smith (Example Police)" in banner
        assert "2026-01-01 00:00 to 2026-01-01 01:00" in banner  # the window (UTC zone here)
        decide_by = site["exports"].registry.get(request_id).decide_by
        assert (
            f"Decide by <strong>{LocalTime.from_setting('UTC').format(decide_by)}</strong>"
            in banner
        )
        assert f"/exports/{request_id}" in banner
    listing = owner.get("/exports").text
    assert "Decide by" in listing and "waiting for you" in listing
    page = owner.get(f"/exports/{request_id}")
    owner.post(
        f"/exports/{request_id}/deny",
        data={"csrf_token": csrf_from(page.data), "reason": "No warrant attached."},
    )
    after = owner.get("/timeline").text
    assert 'id="pending-count"' not in after and 'id="pending-banner"' not in after


def test_requester_pages_show_no_banner_or_owner_navigation(site: dict) -> None:
    requester, token, _id = pending_request(site)
    page = requester.get(f"/requests/status/{token}").text
    assert 'id="pending-banner"' not in page and 'id="nav-requests"' not in page


def test_invitation_link_page_has_a_copy_button_and_a_wrapping_link(site: dict) -> None:
    page = site["owner"].get("/exports")
    shown = (
        site["owner"]
        .post(
            "/exports/invitations",
            data={"csrf_token": csrf_from(page.data), "label": "Insurer", "days": "2"},
        )
        .text
    )
    assert 'data-copy="invitation-link"' in shown
    assert re.search(r'<code id="invitation-link" class="wrap">', shown)


# --- Approval starts from nothing and keeps choices ----------------------------------------


def test_approval_page_preselects_nothing_one_labelled_row_per_clip(site: dict) -> None:
    _r, _t, request_id = pending_request(site)
    page = site["owner"].get(f"/exports/{request_id}").text
    assert checked_clips(page) == set()
    assert 'id="redact_faces" checked' not in page.replace('"redact_faces" checked', "X")
    for clip_id in site["clips"]:
        assert f'id="clip-{clip_id}"' in page and f'<label for="clip-{clip_id}">' in page
    assert "No clip chosen yet" in page
    assert 'id="select-all"' in page and 'id="select-none"' in page


def test_approving_nothing_is_refused(site: dict) -> None:
    _r, _t, request_id = pending_request(site)
    response = approve(site, request_id, [], PASSPHRASE)
    assert response.status_code == 400
    assert site["exports"].registry.get(request_id).status == "pending"


def test_every_choice_survives_a_wrong_passphrase(site: dict) -> None:
    _r, _t, request_id = pending_request(site)
    regions = json.dumps([[[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]])
    first = site["clips"][1]
    response = approve(
        site,
        request_id,
        [first],
        "not the passphrase",
        redact_faces="on",
        redact_method="fill",
        regions=regions,
        days="2",
        download_limit="4",
    )
    assert response.status_code == 400
    page = response.text
    assert "did not unlock" in page and "Your choices below are kept" in page
    assert checked_clips(page) == {first}
    assert 'id="redact_faces" checked' in page
    assert '<option value="fill" selected>' in page
    assert f'id="regions" value="{html.escape(regions)}"' in page
    assert 'id="days" name="days" type="number" step="any" min="0.01" max="90" value="2"' in page
    assert 'value="4"' in page[page.index('id="download_limit"') :][:200]
    summary = html.unescape(page[page.index('id="approve-summary"') :][:400])
    assert "1 clip, 1 s, faces filled, 1 region redacted" in summary
    assert "to PC Jane Smith, Example Police, expires in 2 days, 4 downloads." in summary
    assert site["exports"].registry.get(request_id).status == "pending"
    site["app"].extensions["doorbell"].clock.advance(60)  # past the wrong-passphrase delay
    # Retyping the passphrase approves exactly what was chosen, nothing more.
    again = approve(
        site,
        request_id,
        [first],
        PASSPHRASE,
        redact_faces="on",
        redact_method="fill",
        regions=regions,
        days="2",
        download_limit="4",
    )
    assert again.status_code == 302
    approved = site["exports"].registry.get(request_id)
    assert approved.clip_ids == (first,) and approved.download_limit == 4
    assert approved.redaction["what"]["faces"] is True


# --- An approved request: what was shared, revoke ------------------------------------------


def test_approved_request_shows_what_was_shared_and_can_be_revoked(site: dict) -> None:
    requester, token, request_id = pending_request(site)
    assert approve(site, request_id, site["clips"][:2], PASSPHRASE).status_code == 302
    site["exports"].jobs.join(60)
    bundle = site["data_dir"] / "exports" / f"{request_id}.tar.age"
    assert bundle.exists()
    page = site["owner"].get(f"/exports/{request_id}").text
    shared = page[page.index('id="approved-clips"') :][:600]
    assert shared.count("<li>") == 2 and "motion" in shared
    assert "none: the clips are shared as recorded" in page
    assert "0 used, 1 left (limit 1)" in page
    assert 'id="revoke"' in page
    # A wrong passphrase revokes nothing.
    wrong = site["owner"].post(
        f"/exports/{request_id}/revoke",
        data={"csrf_token": csrf_from(page), "passphrase": "nope"},
    )
    assert wrong.status_code == 400 and bundle.exists()
    site["app"].extensions["doorbell"].clock.advance(60)  # past the wrong-passphrase delay
    right = site["owner"].post(
        f"/exports/{request_id}/revoke",
        data={"csrf_token": csrf_from(page), "passphrase": PASSPHRASE},
    )
    assert right.status_code == 302
    assert not bundle.exists()
    found = site["exports"].registry.get(request_id)
    assert found.bundle_state == "revoked" and found.status == "closed"
    revoked = [e for e in audit_actions(site["app"]) if e["action"] == "export.bundle_revoked"]
    assert len(revoked) == 1 and revoked[0]["actor"] == "owner"
    assert revoked[0]["object"] == f"request/{request_id}"
    status = requester.get(f"/requests/status/{token}").text
    assert 'data-status="revoked"' in status and 'id="revoked-note"' in status
    assert requester.get(f"/requests/status/{token}/bundle").status_code == 403
    again = site["owner"].post(
        f"/exports/{request_id}/revoke",
        data={"csrf_token": csrf_from(page), "passphrase": PASSPHRASE},
    )
    assert again.status_code == 409


def test_revoke_needs_csrf_and_a_session(site: dict) -> None:
    _r, _t, request_id = pending_request(site)
    approve(site, request_id, site["clips"][:1], PASSPHRASE)
    site["exports"].jobs.join(60)
    no_csrf = site["owner"].post(f"/exports/{request_id}/revoke", data={"passphrase": PASSPHRASE})
    assert no_csrf.status_code == 400
    stranger = site["app"].test_client()
    response = stranger.post(
        f"/exports/{request_id}/revoke",
        data={"passphrase": PASSPHRASE},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 401
    assert site["exports"].registry.get(request_id).bundle_state == "ready"


def test_own_export_page_says_how_to_open_and_verify(site: dict) -> None:
    page = site["owner"].get("/exports")
    response = site["owner"].post(
        "/exports/self",
        data={
            "csrf_token": csrf_from(page.data),
            "window_start": "2026-01-01T00:00",
            "window_end": "2026-01-01T01:00",
        },
    )
    assert response.status_code == 302
    site["exports"].jobs.join(60)
    shown = site["owner"].get(response.headers["Location"]).text
    assert 'id="open-help"' in shown
    assert "age -d -i keys/owner.key.age" in shown and "doorbell verify-bundle" in shown


# --- Requester pages -----------------------------------------------------------------------


def test_requester_problems_use_the_form_labels(site: dict) -> None:
    token = invite(site)
    requester = site["app"].test_client()
    page = requester.get(f"/requests/invite/{token}")
    response = requester.post(
        f"/requests/invite/{token}",
        data={
            "csrf_token": csrf_from(page.data),
            **form_fields("age1bogus", window_start="2026-01-01T02:00"),
        },
    )
    assert response.status_code == 400
    problems = html.unescape(response.text[response.text.index('id="form-problems"') :][:1500])
    assert 'To: must be after "From"' in problems
    assert "Your age public key: not an age public key" in problems
    assert "window_end" not in problems and "window_start" not in problems
    assert "recipient:" not in problems
    # what was typed is kept
    assert 'value="2026-01-01T02:00"' in response.text and 'value="PC Jane Smith"' in response.text


def test_used_and_unknown_invitations_get_friendly_pages_without_owner_links(site: dict) -> None:
    token = invite(site)
    pending_token = submit(site, token, str(X25519Identity.generate().recipient))[1]
    assert pending_token
    client = site["app"].test_client()
    used = client.get(f"/requests/invite/{token}")
    assert used.status_code == 410
    assert "can no longer be used" in used.text and "timeline" not in used.text.lower()
    unknown = client.get("/requests/invite/" + "A" * 43)
    assert unknown.status_code == 404 and "does not work" in unknown.text
    assert "If you entered the URL manually" not in unknown.text
    closed = client.get("/requests/new")
    assert closed.status_code == 404 and "The request form is closed" in closed.text
    for response in (used, unknown, closed):
        assert "/exports" not in response.text and "/timeline" not in response.text
        assert 'id="request-form"' not in response.text


def test_requester_form_explains_both_delivery_options(site: dict) -> None:
    page = site["app"].test_client().get(f"/requests/invite/{invite(site)}").text
    assert "age-keygen" in page and "another way" in page
    assert (
        '<label for="delivery_recipient">' in page and '<label for="delivery_passphrase">' in page
    )


# --- Local time ----------------------------------------------------------------------------


@pytest.fixture
def new_york(data_dir: Path) -> Iterator[dict[str, Any]]:
    vault = FakeVault()
    prepare_data_dir(data_dir, vault)
    with Store.open(data_dir) as store:
        clip = make_clip(store, [vault.identity.recipient], T0 + 3600, seconds=1.0)
    app = create_app(
        ui_config(data_dir, timezone="America/New_York"),
        vault=vault,
        clock=Clock(),
        wall_clock=WallClock(NOW),
    )
    owner = app.test_client()
    unlock_owner(owner)
    yield {"app": app, "owner": owner, "clip": clip}
    close_app(app)


def test_pages_show_the_configured_zone_once_and_local_24_hour_times(new_york: dict) -> None:
    page = new_york["owner"].get("/timeline").text
    assert page.count("America/New_York (") == 1  # once, in words; the body carries it for live.js
    assert 'data-time-zone="America/New_York"' in page
    assert "America/New_York (EST, UTC-05:00)" in page
    # T0 + 1 h = 2026-01-01 01:00Z = 2025-12-31 20:00 in New York
    assert "2025-12-31" in page and "20:00:00" in page
    assert "UTC" not in page.replace("UTC-05:00", "")
    audit = new_york["owner"].get("/audit").text
    assert "Owner unlocked" in audit and re.search(r"20\d\d-\d\d-\d\d \d\d:\d\d:\d\d", audit)


def test_requested_window_is_read_in_the_device_zone_and_stored_in_utc(new_york: dict) -> None:
    app, owner = new_york["app"], new_york["owner"]
    page = owner.get("/exports")
    response = owner.post(
        "/exports/invitations",
        data={"csrf_token": csrf_from(page.data), "label": "x", "days": "2"},
    )
    found = re.search(r"/requests/invite/([A-Za-z0-9_-]{43})", response.text)
    assert found is not None, response.text
    token = found.group(1)
    requester = app.test_client()
    form = requester.get(f"/requests/invite/{token}")
    sent = requester.post(
        f"/requests/invite/{token}",
        data={
            "csrf_token": csrf_from(form.data),
            **form_fields(
                str(X25519Identity.generate().recipient),
                window_start="2025-12-31T19:00",
                window_end="2025-12-31T21:00",
            ),
        },
    )
    assert sent.status_code == 200, sent.text
    (found,) = app.extensions["doorbell_exports"].registry.requests()
    assert found.fields.window_start == T0  # 19:00 EST is 00:00Z
    assert found.fields.window_end == T0 + 2 * 3600
    review = owner.get(f"/exports/{found.id}").text
    assert "2025-12-31 19:00 to 2025-12-31 21:00" in review


def test_timezone_setting_is_validated() -> None:
    assert parse_config({"web": {"timezone": "Europe/Berlin"}}).web.timezone == "Europe/Berlin"
    for bad in ("Mars/Olympus", "../../etc/passwd", "/etc/localtime"):
        with pytest.raises(ConfigError, match=r"web\.timezone"):
            parse_config({"web": {"timezone": bad}})


def test_local_time_reads_and_writes_around_daylight_saving() -> None:
    berlin = LocalTime.from_setting("Europe/Berlin")
    summer = berlin.parse_input("2026-07-01T12:00")
    assert summer is not None and berlin.format(summer) == "2026-07-01 12:00"
    assert "CEST" in berlin.name(summer) and "CET," in berlin.name(T0)
    assert berlin.parse_input("yesterday") is None


# --- Audit page ----------------------------------------------------------------------------


def test_audit_page_reads_as_sentences_with_filters(site: dict) -> None:
    owner = site["owner"]
    _r, _t, request_id = pending_request(site)
    page = owner.get("/audit").text
    assert "Owner unlocked" in page
    assert f"Request {request_id} submitted" in page
    assert "The audit log checks out" in page
    assert "<details" in page and "Technical detail" in page
    assert "(--cosigner)" not in page[: page.index("Technical detail")]
    only_requests = owner.get("/audit?kind=requests").text
    assert f"Request {request_id} submitted" in only_requests
    assert "Owner unlocked" not in only_requests
    only_login = owner.get("/audit?kind=login").text
    assert "Owner unlocked" in only_login and "submitted" not in only_login
    # entries are dated by the wall clock of the app: NOW is 2026-01-02
    assert "Owner unlocked" in owner.get("/audit?from=2026-01-02&to=2026-01-02").text
    assert "No entries match" in owner.get("/audit?from=2026-01-03&to=2026-01-03").text
    # the fixture seals its clips on 2026-01-01 (clip.sealed entries): nothing before that
    assert "No entries match" in owner.get("/audit?to=2025-12-31").text


def test_audit_page_paginates(site: dict) -> None:
    for _ in range(30):
        site["owner"].get("/timeline")
    first = site["owner"].get("/audit?kind=viewing").text
    assert first.count('class="entry"') == 25 and 'rel="next"' in first
    second = site["owner"].get("/audit?kind=viewing&page=2").text
    assert 'rel="prev"' in second and "kind=viewing" in second


# --- Thumbnails and favicon ----------------------------------------------------------------


def test_open_clip_shows_recording_and_pages_have_a_favicon(site: dict) -> None:
    from doorbell.store import new_clip_id

    with Store.open(site["data_dir"]) as store:
        started = T0 + 3000
        event = store.add_event("motion", started_at=started)
        clip_id = new_clip_id(started)
        store.begin_clip(clip_id, started_at=started, trigger="motion", event_id=event)
    page = site["owner"].get("/timeline").text
    item = page[page.index(f'data-clip="{clip_id}"') :]
    item = item[: item.index("</li>")]
    assert "recording…" in item and "0 B" not in item
    sealed = page[page.index(f'data-clip="{site["clips"][0]}"') :]
    assert "recording…" not in sealed[: sealed.index("</li>")]
    assert 'rel="icon"' in page
    with site["app"].test_client().get("/static/favicon.svg") as icon:  # no session needed
        assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"


def test_audit_sentences_for_an_approval_and_a_download() -> None:
    from doorbell.ui.auditwords import describe

    when = LocalTime.from_setting("UTC").format
    approved = describe(
        {
            "action": "export.request_approved",
            "actor": "owner",
            "object": "request/req-0123456789ab",
            "details": {"clips": ["a", "b"], "redaction": None, "download_limit": 3},
            "index": 7,
            "time": "2026-01-02T00:00:00.000Z",
        },
        when,
    )
    assert approved.sentence == "Request req-0123456789ab approved (2 clips)"
    assert ("Redaction", "none: the clips are shared as recorded") in approved.fields
    assert ("By", "you (the owner)") in approved.fields
    downloaded = describe(
        {
            "action": "export.downloaded",
            "actor": "requester:req-0123456789ab",
            "object": "request/req-0123456789ab",
            "details": {"download": 1, "limit": 3, "client": "127.0.0.1"},
            "index": 8,
            "time": "2026-01-02T00:00:00.000Z",
        },
        when,
    )
    assert downloaded.sentence == "Bundle for req-0123456789ab downloaded (1 of 3)"
    sealed = describe(
        {
            "action": "clip.sealed",
            "actor": "recorder",
            "object": "c1",
            "details": {"duration_s": 28.2, "trigger": "motion", "size_bytes": 1_200_000},
            "index": 9,
            "time": "2026-01-02T00:00:00.000Z",
        },
        when,
    )
    assert sealed.sentence == "Clip sealed (28 s, motion)"
    assert ("Size", "1.2 MB") in sealed.fields


def test_each_request_page_shows_its_own_request_while_others_wait(site: dict) -> None:
    """The banner names the request with the nearest deadline; the page under it must still
    be the one in the address (a template variable shared by both once showed the banner's
    request on every request page, with its approve form)."""
    _r1, _t1, first = pending_request(site)
    site["wall"].advance(3600)  # the second one's deadline is an hour later
    _r2, _t2, second = pending_request(site)
    page = site["owner"].get(f"/exports/{second}").text
    banner = page[page.index('id="pending-banner"') :]
    assert f"/exports/{first}" in banner[: banner.index("</div>")]
    main = page[page.index('<main id="main">') :]
    assert f'Request <span class="wrap">{second}</span>' in main
    assert f'action="/exports/{second}/approve"' in main
    assert f"/exports/{first}" not in main


# --- The requester's status link on the owner's request page -------------------------------


def _link_in(page: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]+)<', page)
    assert match is not None, page
    return html.unescape(match.group(1)).strip()


def test_request_page_shows_the_status_link_the_requester_got(site: dict) -> None:
    from doorbell.ui.guard import external_url

    key = X25519Identity.generate()
    requester = site["app"].test_client()
    invitation = invite(site)
    form = requester.get(f"/requests/invite/{invitation}")
    sent = requester.post(
        f"/requests/invite/{invitation}",
        data={"csrf_token": csrf_from(form.data), **form_fields(str(key.recipient))},
    ).text
    given = _link_in(sent, "status-link")
    token = given.rsplit("/", 1)[1]
    request_id = site["exports"].registry.by_token(token).id
    with site["app"].test_request_context():  # the configured name, not the Host header
        assert given == external_url(f"/requests/status/{token}")
    assert "//localhost" not in given
    # The database holds the link only encrypted to the owner.
    database = b"".join(p.read_bytes() for p in site["data_dir"].glob("exports.sqlite3*"))
    assert token.encode() not in database and given.encode() not in database
    pending = site["owner"].get(f"/exports/{request_id}").text
    assert _link_in(pending, "requester-status-link") == given
    assert 'data-copy="requester-status-link"' in pending
    assert approve(site, request_id, site["clips"][:1], PASSPHRASE).status_code == 302
    site["exports"].jobs.join(60)
    approved = site["owner"].get(f"/exports/{request_id}").text
    assert 'id="revoke"' in approved and 'id="approved-downloads"' in approved
    assert _link_in(approved, "requester-status-link") == given
    status = requester.get(urlsplit(given).path)  # the link shown works for the requester
    assert status.status_code == 200 and 'data-status="approved"' in status.text
    viewed = [
        e
        for e in audit_actions(site["app"])
        if e["action"] == "export.request_viewed" and e["object"] == f"request/{request_id}"
    ]
    assert viewed and all(e["details"] == {"status_link_shown": True} for e in viewed)
    # Locked, the page (and the link) is behind the gate.
    stranger = site["app"].test_client()
    assert token not in stranger.get(f"/exports/{request_id}").text


def test_a_request_without_a_link_copy_says_so(site: dict) -> None:
    import sqlite3

    _requester, token, request_id = pending_request(site)
    with sqlite3.connect(site["data_dir"] / "exports.sqlite3") as db:  # as an older row
        db.execute("UPDATE export_requests SET status_token_age = NULL WHERE id = ?", (request_id,))
    page = site["owner"].get(f"/exports/{request_id}").text
    assert 'id="requester-status-link"' not in page and token not in page
    assert "Not available: no copy of this link was kept" in html.unescape(
        page[page.index('id="requester-link-missing"') :][:400]
    )
    viewed = [e for e in audit_actions(site["app"]) if e["action"] == "export.request_viewed"]
    assert viewed[-1]["details"] == {}


def test_a_swapped_link_copy_is_not_shown(site: dict) -> None:
    """Anyone able to write the registry can seal a token to the owner's public key; the page
    must not hand request A's requester the link of request B."""
    import sqlite3

    _ra, token_a, first = pending_request(site)
    _rb, token_b, second = pending_request(site)
    with sqlite3.connect(site["data_dir"] / "exports.sqlite3") as db:
        db.execute(
            "UPDATE export_requests SET status_token_age ="
            " (SELECT status_token_age FROM export_requests WHERE id = ?) WHERE id = ?",
            (second, first),
        )
    page = site["owner"].get(f"/exports/{first}").text
    assert token_b not in page and token_a not in page
    assert "edited the export registry" in html.unescape(page)
