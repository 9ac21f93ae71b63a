"""Web: the requester portal, the owner's review/approval, downloads, transparency.

Nothing leaves without approval: every portal and download route is driven with missing,
forged, expired, over-limit and other-requester tokens, and all are refused.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from exports_helpers import NOW, WallClock, log_sealed_clips
from ui_helpers import T0, Clock, FakeVault, csrf_from, make_clip, prepare_data_dir, ui_config
from ui_helpers import unlock as unlock_owner

from doorbell.age.identities import X25519Identity
from doorbell.audit.entries import decode_entry
from doorbell.exports.verify import verify_bundle
from doorbell.store import Store
from doorbell.ui import close_app, create_app


@pytest.fixture
def site(data_dir: Path) -> Iterator[dict[str, Any]]:
    vault = FakeVault()
    prepare_data_dir(data_dir, vault)
    (data_dir / "keys" / "owner.recipients").write_text(f"{vault.identity.recipient}\n")
    with Store.open(data_dir) as store:
        clips = [
            make_clip(store, [vault.identity.recipient], T0 + 60 * (i + 1), seconds=1.0, seed=i)
            for i in range(3)
        ]
        log_sealed_clips(data_dir, store, clips)  # what the recorder logs
    wall = WallClock(NOW)
    app = create_app(ui_config(data_dir), vault=vault, clock=Clock(), wall_clock=wall)
    owner = app.test_client()
    unlock_owner(owner)
    yield {
        "app": app,
        "owner": owner,
        "clips": clips,
        "wall": wall,
        "data_dir": data_dir,
        "exports": app.extensions["doorbell_exports"],
    }
    close_app(app)


def actions(app: Any) -> list[dict]:
    return [decode_entry(leaf) for _i, leaf in app.extensions["doorbell"].audit.entries()]


def form_fields(recipient: str, **changes: str) -> dict[str, str]:
    fields = {
        "requester": "PC Jane Smith",
        "organisation": "Example Police",
        "contact": "jane@police.example",
        "kind": "police",
        "legal_basis": "warrant",
        "legal_reference": "W-7",
        "window_start": "2026-01-01T00:00",
        "window_end": "2026-01-01T01:00",
        "reason": "Burglary at number 12 that night.",
        "delivery": "recipient",
        "recipient": recipient,
    }
    fields.update(changes)
    return fields


def invite(site: dict) -> str:
    page = site["owner"].get("/exports")
    response = site["owner"].post(
        "/exports/invitations",
        data={"csrf_token": csrf_from(page.data), "label": "PC Smith", "days": "2"},
    )
    match = re.search(r"/requests/invite/([A-Za-z0-9_-]{43})", response.text)
    assert match is not None, response.text
    return match.group(1)


def submit(site: dict, token: str, recipient: str, **changes: str) -> tuple[Any, str]:
    requester = site["app"].test_client()
    page = requester.get(f"/requests/invite/{token}")
    assert page.status_code == 200
    response = requester.post(
        f"/requests/invite/{token}",
        data={"csrf_token": csrf_from(page.data), **form_fields(recipient, **changes)},
    )
    match = re.search(r"/requests/status/([A-Za-z0-9_-]{43})", response.text)
    return requester, match.group(1) if match else ""


def approve(site: dict, request_id: str, clip_ids: list[str], passphrase: str, **extra: str):
    page = site["owner"].get(f"/exports/{request_id}")
    data = {
        "csrf_token": csrf_from(page.data),
        "clip": clip_ids,
        "passphrase": passphrase,
        "days": "3",
        "download_limit": "1",
        **extra,
    }
    return site["owner"].post(f"/exports/{request_id}/approve", data=data)


def test_full_flow_invitation_approval_one_download_transparency(site: dict) -> None:
    requester_key = X25519Identity.generate()
    token = invite(site)
    requester, status_token = submit(site, token, str(requester_key.recipient))
    assert status_token
    request_id = site["exports"].registry.by_token(status_token).id
    # The portal says nothing about footage: no clip ids, no thumbnails.
    status_page = requester.get(f"/requests/status/{status_token}")
    assert 'data-status="pending"' in status_page.text
    assert (
        not any(c in status_page.text for c in site["clips"]) and "thumbs" not in status_page.text
    )
    assert requester.get(f"/requests/status/{status_token}/bundle").status_code == 403
    # The invitation is single use.
    assert (
        requester.get(f"/requests/invite/{token}").status_code == 410
    )  # gone (used), a page for people
    # Owner reviews beside the clips; a wrong step-up passphrase approves nothing.
    review = site["owner"].get(f"/exports/{request_id}")
    assert all(c in review.text for c in site["clips"])
    assert approve(site, request_id, site["clips"][:2], "wrong").status_code == 400
    assert "export.step_up_failed" in [e["action"] for e in actions(site["app"])[-2:]]
    assert site["exports"].registry.get(request_id).status == "pending"
    site["app"].extensions["doorbell"].clock.advance(2)  # the unlock throttle's delay
    response = approve(site, request_id, site["clips"][:2], FakeVault().passphrase)
    assert response.status_code == 302
    site["exports"].jobs.join(30)
    assert site["exports"].registry.get(request_id).bundle_state == "ready"
    progress = site["owner"].get(f"/exports/{request_id}/progress").get_json()
    assert progress["finished"] and progress["percent"] == 100
    first = requester.get(f"/requests/status/{status_token}/bundle")
    assert first.status_code == 200
    bundle = site["data_dir"] / "downloaded.tar.age"
    bundle.write_bytes(first.data)
    assert len(verify_bundle(bundle, [requester_key]).clips) == 2
    assert requester.get(f"/requests/status/{status_token}/bundle").status_code == 403
    assert not (site["data_dir"] / "exports" / f"{request_id}.tar.age").exists()
    mine = [e["action"] for e in actions(site["app"]) if e["object"] == f"request/{request_id}"]
    assert "export.downloaded" in mine and mine.count("export.downloaded") == 1
    # Transparency: private until published, then counts only.
    assert site["app"].test_client().get("/transparency/public").status_code == 404
    counts = site["owner"].get("/transparency")
    assert "police" in counts.text and "approved" in counts.text
    page = site["owner"].get("/exports")
    site["owner"].post(
        "/exports/switches", data={"csrf_token": csrf_from(page.data), "public": "on"}
    )
    public = site["app"].test_client().get("/transparency/public")
    assert public.status_code == 200 and "approved" in public.text and "Jane" not in public.text


@pytest.mark.parametrize(
    "path",
    [
        "/requests/invite/",
        "/requests/invite/x",
        "/requests/invite/" + "A" * 43,
        "/requests/new",
        "/requests/status/" + "B" * 43,
        "/requests/status/../../etc/passwd",
    ],
)
def test_forged_or_missing_portal_links_are_404(site: dict, path: str) -> None:
    assert site["app"].test_client().get(path).status_code == 404


def test_forged_download_tokens_refused(site: dict) -> None:
    client = site["app"].test_client()
    for token in ("C" * 43, "short", ""):
        response = client.get(f"/requests/status/{token}/bundle", follow_redirects=True)
        assert response.status_code in (403, 404)


def test_other_requester_and_expired_tokens_refused(site: dict) -> None:
    key = X25519Identity.generate()
    _r1, first = submit(site, invite(site), str(key.recipient))
    _r2, second = submit(site, invite(site), str(key.recipient))
    first_id = site["exports"].registry.by_token(first).id
    approve(site, first_id, site["clips"][:1], FakeVault().passphrase)
    site["exports"].jobs.join(30)
    client = site["app"].test_client()
    assert client.get(f"/requests/status/{second}/bundle").status_code == 403  # pending
    assert first_id not in client.get(f"/requests/status/{second}").text
    site["wall"].advance(4 * 86400)  # past the 3-day bundle expiry
    assert client.get(f"/requests/status/{first}/bundle").status_code == 403
    assert not (site["data_dir"] / "exports" / f"{first_id}.tar.age").exists()
    site["wall"].advance(15 * 86400)  # the undecided one expires as a denial
    assert "expired" in client.get(f"/requests/status/{second}").text


def test_invalid_submission_is_refused_with_reasons(site: dict) -> None:
    token = invite(site)
    _client, status = submit(site, token, "age1bogus", requester="")
    assert status == ""
    assert site["exports"].registry.requests() == []


def test_open_form_only_when_switched_on(site: dict) -> None:
    client = site["app"].test_client()
    assert client.get("/requests/new").status_code == 404
    page = site["owner"].get("/exports")
    site["owner"].post(
        "/exports/switches", data={"csrf_token": csrf_from(page.data), "open_form": "on"}
    )
    assert client.get("/requests/new").status_code == 200


def test_owner_pages_need_a_session(site: dict) -> None:
    client = site["app"].test_client()
    for path in ("/exports", f"/exports/req-{'0' * 12}", "/transparency"):
        assert client.get(path, headers={"Accept": "application/json"}).status_code == 401


def test_deny_shows_reason_and_makes_no_bundle(site: dict) -> None:
    key = X25519Identity.generate()
    requester, status = submit(site, invite(site), str(key.recipient))
    request_id = site["exports"].registry.by_token(status).id
    page = site["owner"].get(f"/exports/{request_id}")
    reason = "Please send the warrant first."
    site["owner"].post(
        f"/exports/{request_id}/deny", data={"csrf_token": csrf_from(page.data), "reason": reason}
    )
    assert "Please send the warrant first." in requester.get(f"/requests/status/{status}").text
    assert list((site["data_dir"] / "exports").iterdir()) == []


def test_approval_is_refused_when_the_log_does_not_match_the_owner_anchor(site: dict) -> None:
    """The same check as at unlock and in `doorbell requests approve`, at each approval."""
    from doorbell.audit.anchor import ANCHOR_FILE, read_anchor
    from doorbell.keys import derive_owner_anchor_key

    request_id = (
        site["exports"]
        .registry.submit(form_fields(str(X25519Identity.generate().recipient)), source="owner")[0]
        .id
    )
    key = derive_owner_anchor_key(site["app"].extensions["doorbell"].vault.identity)
    path = site["data_dir"] / ANCHOR_FILE
    good = path.read_bytes()
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # what a forged anchor looks like
    response = approve(site, request_id, site["clips"][:1], FakeVault().passphrase)
    assert response.status_code == 400 and "does not match the owner anchor" in response.text
    assert "audit.anchor_mismatch" in [e["action"] for e in actions(site["app"])[-3:]]
    assert site["exports"].registry.get(request_id).status == "pending"
    assert site["exports"].jobs.progress(request_id) is None  # no bundle started
    path.write_bytes(good)
    size = read_anchor(site["data_dir"], key).size
    site["app"].extensions["doorbell"].clock.advance(2)  # the unlock throttle's delay
    assert approve(site, request_id, site["clips"][:1], FakeVault().passphrase).status_code == 302
    site["exports"].jobs.join(30)
    assert site["exports"].registry.get(request_id).bundle_state == "ready"
    assert read_anchor(site["data_dir"], key).size > size  # cosigned through the anchor


def test_self_export_in_one_step(site: dict) -> None:
    page = site["owner"].get("/exports")
    response = site["owner"].post(
        "/exports/self",
        data={
            "csrf_token": csrf_from(page.data),
            "window_start": "2026-01-01T00:00",
            "window_end": "2026-01-01T00:02:30",
        },
    )
    assert response.status_code == 302
    site["exports"].jobs.join(30)
    request_id = response.headers["Location"].rsplit("/", 1)[-1]
    download = site["owner"].get(f"/exports/{request_id}/download")
    assert download.status_code == 200
    bundle = site["data_dir"] / "self.tar.age"
    bundle.write_bytes(download.data)
    assert (
        len(verify_bundle(bundle, [site["app"].extensions["doorbell"].vault.identity]).clips) == 2
    )


def test_public_export_routes_are_exactly_the_portal_and_published_counts(site: dict) -> None:
    from doorbell.ui.guard import is_public

    app = site["app"]
    with app.test_request_context():
        public = {r.endpoint for r in app.url_map.iter_rules() if is_public(r.endpoint)}
    mine = {e for e in public if e.split(".")[0] in ("requests", "exports", "transparency")}
    assert mine == {
        "requests.invite",
        "requests.open_form",
        "requests.status",
        "requests.download",
        "transparency.transparency_public",
    }


# --- redaction on the approval page -----------------------------------------------------

DRAWN = [[[0.05, 0.05], [0.3, 0.05], [0.3, 0.4], [0.05, 0.4]]]  # x 8..48, y 6..48 of 160x120


def _interior(frame: Any, x0: float, y0: float, x1: float, y1: float, inset: int = 4) -> Any:
    height, width = frame.shape[:2]
    return frame[
        int(y0 * height) + inset : int(y1 * height) - inset,
        int(x0 * width) + inset : int(x1 * width) - inset,
    ]


def test_approval_with_regions_redacts_every_frame_of_the_bundle(site: dict) -> None:
    from exports_helpers import bundle_clips, decoded_frames

    key = X25519Identity.generate()
    requester, status = submit(site, invite(site), str(key.recipient))
    request_id = site["exports"].registry.by_token(status).id
    response = approve(
        site,
        request_id,
        site["clips"][:2],
        FakeVault().passphrase,
        regions=json.dumps(DRAWN),
        redact_method="fill",
        box_x0="0.6",
        box_y0="0.5",
        box_x1="0.95",
        box_y1="0.95",
        box_kind="redact",
    )
    assert response.status_code == 302
    site["exports"].jobs.join(60)
    assert site["exports"].registry.get(request_id).bundle_state == "ready"
    bundle = site["data_dir"] / "redacted.tar.age"
    bundle.write_bytes(requester.get(f"/requests/status/{status}/bundle").data)
    report = verify_bundle(bundle, [key])
    assert "redacted: 2 region(s)" in report.summary() and "'fill'" in report.summary()
    manifest, clips = bundle_clips(bundle, key)
    assert len(clips) == 2
    for entry in manifest["clips"]:
        redaction = entry["redaction"]
        assert redaction["what"]["regions"][0] == DRAWN[0]
        assert redaction["method"]["name"] == "fill" and redaction["what"]["faces"] is False
        assert redaction["result"]["frames"] == 10
    for data in clips.values():
        frames = decoded_frames(data)
        assert len(frames) == 10
        for frame in frames:  # fully replaced (black, up to codec ringing) in every frame
            assert _interior(frame, 0.05, 0.05, 0.3, 0.4, inset=2).max() <= 12
            assert _interior(frame, 0.6, 0.5, 0.95, 0.95, inset=2).max() <= 12
        assert max(_interior(f, 0.4, 0.1, 0.55, 0.35).std() for f in frames) > 30  # not all


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"regions": "[[[0.1, 0.1], [0.5, 0.1]]]"}, "regions shape 1: want a list of 3"),
        ({"regions": "[[[0.1, 0.1], [0.5, 0.1], [1.7, 0.5]]]"}, "outside 0..1"),
        ({"keep": "not json"}, "keep: not valid JSON"),
        ({"box_x0": "0.5", "box_y0": "0.1", "box_x1": "0.2", "box_y1": "0.3"}, "left must be"),
        ({"box_x0": "0.5"}, "all four"),
        ({"redact_method": "blur"}, "redact_method"),
    ],
)
def test_bad_region_input_is_refused_before_the_step_up(
    site: dict, fields: dict, message: str
) -> None:
    key = X25519Identity.generate()
    _requester, status = submit(site, invite(site), str(key.recipient))
    request_id = site["exports"].registry.by_token(status).id
    before = len(actions(site["app"]))
    response = approve(site, request_id, site["clips"][:1], FakeVault().passphrase, **fields)
    assert response.status_code == 400
    assert "Redaction: " in response.text and message in html.unescape(response.text)
    assert site["exports"].registry.get(request_id).status == "pending"
    assert "export.step_up_failed" not in [e["action"] for e in actions(site["app"])[before:]]


def test_preview_needs_a_session_is_audited_and_masks_the_region(site: dict) -> None:
    import cv2
    import numpy as np

    key = X25519Identity.generate()
    _requester, status = submit(site, invite(site), str(key.recipient))
    request_id = site["exports"].registry.by_token(status).id
    clip = site["clips"][1]
    review_page = site["owner"].get(f"/exports/{request_id}")
    assert "exports.js" in review_page.text and 'id="redact-tools"' in review_page.text
    url = f"/exports/{request_id}/preview.jpg"
    query = {"clip": clip, "at": "0.5", "regions": json.dumps(DRAWN), "redact_method": "fill"}
    stranger = site["app"].test_client()
    assert (
        stranger.get(url, query_string=query, headers={"Accept": "application/json"}).status_code
        == 401
    )
    before = len(actions(site["app"]))
    response = site["owner"].get(url, query_string=query)
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert "no-store" in response.headers["Cache-Control"]
    image = cv2.imdecode(np.frombuffer(response.data, np.uint8), cv2.IMREAD_COLOR)
    assert _interior(image, 0.05, 0.05, 0.3, 0.4, inset=8).max() <= 24
    assert _interior(image, 0.4, 0.1, 0.55, 0.35, inset=8).std() > 30  # the rest is the clip
    viewed = [e for e in actions(site["app"])[before:] if e["action"] == "export.preview_viewed"]
    assert len(viewed) == 1 and viewed[0]["object"] == clip
    assert viewed[0]["details"]["request"] == request_id and viewed[0]["details"]["regions"] == 1
    # Bad input: a clear 400; a clip outside the request's window: 404.
    bad = site["owner"].get(url, query_string={**query, "regions": "[[[0,0],[2,0],[1,1]]]"})
    assert bad.status_code == 400 and "outside 0..1" in bad.text
    assert site["owner"].get(url, query_string={**query, "at": "nan"}).status_code == 400
    assert site["owner"].get(url, query_string={**query, "clip": "nope"}).status_code == 404


def test_blur_faces_choice_reaches_the_manifest_and_the_preview(site: dict) -> None:
    from exports_helpers import bundle_clips

    key = X25519Identity.generate()
    requester, status = submit(site, invite(site), str(key.recipient))
    request_id = site["exports"].registry.by_token(status).id
    query = {"clip": site["clips"][0], "redact_faces": "on"}
    preview = site["owner"].get(f"/exports/{request_id}/preview.jpg", query_string=query)
    assert preview.status_code == 200 and preview.data[:2] == b"\xff\xd8"
    response = approve(
        site, request_id, site["clips"][:1], FakeVault().passphrase, redact_faces="on"
    )
    assert response.status_code == 302
    site["exports"].jobs.join(60)
    assert site["exports"].registry.get(request_id).bundle_state == "ready"
    bundle = site["data_dir"] / "faces.tar.age"
    bundle.write_bytes(requester.get(f"/requests/status/{status}/bundle").data)
    manifest, _clips = bundle_clips(bundle, key)
    faces = manifest["clips"][0]["redaction"]["faces"]
    assert faces["detector"] == "centerface" and faces["detector_version"]
    assert manifest["clips"][0]["redaction"]["result"]["frames"] == 10
    assert "faces by 'centerface'" in verify_bundle(bundle, [key]).summary()


def test_web_approval_refuses_a_recipient_swapped_in_the_database(site: dict) -> None:
    """Issue 16: the web approval exported to whatever the row said; it now rebuilds the
    request from its signed submission entry and refuses a row that differs."""
    import sqlite3

    genuine = X25519Identity.generate()
    request_id = (
        site["exports"].registry.submit(form_fields(str(genuine.recipient)), source="owner")[0].id
    )
    thief = X25519Identity.generate()
    with sqlite3.connect(site["data_dir"] / "exports.sqlite3") as db:
        db.execute(
            "UPDATE export_requests SET recipient = ? WHERE id = ?",
            (str(thief.recipient), request_id),
        )
    response = approve(site, request_id, site["clips"][:1], FakeVault().passphrase)
    assert response.status_code == 400
    assert "differs from the signed submission in recipient" in html.unescape(response.text)
    assert "export.approval_refused" in [e["action"] for e in actions(site["app"])[-3:]]
    assert site["exports"].registry.get(request_id).status == "pending"
    assert site["exports"].jobs.progress(request_id) is None  # no bundle started


def test_the_timeline_shows_which_clips_are_held_and_why(site) -> None:
    """Issue 17, finding 6: clips of a pending request are kept, and the owner sees it."""
    before = site["owner"].get("/timeline").get_data(as_text=True)
    assert 'class="badge held"' not in before
    recipient = str(X25519Identity.generate().recipient)
    site["exports"].registry.submit(form_fields(recipient), source="owner")
    from doorbell.ui.events import HELD_CACHE_S

    site["app"].extensions["doorbell"].clock.advance(HELD_CACHE_S)  # the badges may lag 5 s
    page = site["owner"].get("/timeline").get_data(as_text=True)
    assert page.count('class="badge held"') == len(site["clips"])
    assert "a pending or approved export request names it" in page
