"""Web UI: the session gate, unlock/lock, idle lock, CSRF, headers, throttle, consistency."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from ui_helpers import (
    PASSPHRASE,
    Clock,
    FakeVault,
    csrf_from,
    make_clip,
    prepare_data_dir,
    ui_config,
    unlock,
)

from doorbell.audit.entries import decode_entry
from doorbell.store import Store
from doorbell.ui import close_app, create_app
from doorbell.ui.guard import is_public


@pytest.fixture
def world(data_dir: Path):
    vault = FakeVault()
    prepare_data_dir(data_dir, vault)
    with Store.open(data_dir) as store:
        clip_id = make_clip(store, [vault.identity.recipient], 1_767_225_600.0)
    clock = Clock()
    app = create_app(ui_config(data_dir), vault=vault, clock=clock)
    app.config["DOORBELL_TEST_CLIP"] = clip_id
    yield app, vault, clock
    close_app(app)


def audit_actions(app) -> list[dict]:
    log = app.extensions["doorbell"].audit
    return [decode_entry(leaf) for _, leaf in log.entries(0)]


def concrete_path(rule, clip_id: str) -> str:
    values = {name: clip_id for name in rule.arguments}
    return rule.build(values)[1] if rule.arguments else rule.rule


def test_every_non_public_route_refuses_without_a_session(world) -> None:
    app, _, _ = world
    clip_id = app.config["DOORBELL_TEST_CLIP"]
    checked = 0
    with app.test_request_context():
        rules = [r for r in app.url_map.iter_rules() if not is_public(r.endpoint)]
    assert len(rules) >= 15
    for rule in rules:
        path = concrete_path(rule, clip_id)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for headers in ({}, {"Accept": "text/html"}):
                client = app.test_client()
                response = client.open(path, method=method, headers=headers)
                assert response.status_code in (302, 401, 403), (method, path, response.status)
                if response.status_code == 302:
                    assert response.headers["Location"].startswith("/unlock")
                assert b"\xff\xd8" not in response.data  # no JPEG
                assert b"ftyp" not in response.data  # no MP4
                assert len(response.data) < 600, (method, path)
                checked += 1
    assert checked >= 30


def test_public_routes_are_only_unlock_session_and_static(world) -> None:
    app, _, _ = world
    with app.test_request_context():
        public = {r.endpoint for r in app.url_map.iter_rules() if is_public(r.endpoint)}
    owner_side = {"static", "auth.unlock", "auth.unlock_post", "auth.session_state"}
    # the requester portal: reachable only with an invitation, the open form (off by default),
    # or a requester's own token; the transparency page only once the owner publishes it
    requester_side = {
        "requests.invite",
        "requests.open_form",
        "requests.status",
        "requests.download",
        "transparency.transparency_public",
    }
    assert public == owner_side | requester_side


def test_unlock_gives_an_opaque_rotated_cookie_and_a_cosigned_checkpoint(world) -> None:
    app, _, _ = world
    client = app.test_client()
    client.get("/unlock")
    before = client.get_cookie("doorbell").value
    response = unlock(client)
    assert response.status_code == 302
    assert response.headers["Location"] == "/timeline"
    cookie = client.get_cookie("doorbell")
    assert cookie.value != before  # rotated: no session fixation
    assert cookie.http_only
    assert cookie.same_site == "Strict"
    assert len(cookie.value) == 43 and "." not in cookie.value  # random id, no signed data
    assert client.get("/timeline").status_code == 200
    actions = [e["action"] for e in audit_actions(app)]
    assert "web.unlocked" in actions
    state = app.extensions["doorbell"]
    [record] = state.sessions.unlocked_sessions()
    assert record.owner.checkpoint["size"] >= 1
    log_notes = state.audit._conn.execute("SELECT count(*) FROM cosignatures").fetchone()[0]
    assert log_notes == 2  # the one at setup (init) and this unlock


def test_tls_cookie_is_secure_host_prefixed_and_hsts_is_sent(data_dir: Path) -> None:
    prepare_data_dir(data_dir)
    config = ui_config(data_dir, tls=True)
    app = create_app(config, vault=FakeVault(), clock=Clock())
    try:
        client = app.test_client()
        page = client.get("/unlock", base_url="https://localhost")
        assert "max-age" in page.headers["Strict-Transport-Security"]
        cookie = client.get_cookie("__Host-doorbell", domain="localhost")
        assert cookie is not None and cookie.secure and cookie.path == "/"
    finally:
        close_app(app)


def test_security_headers(world) -> None:
    app, _, _ = world
    response = app.test_client().get("/unlock")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP in this test
    assert b"<script>" not in response.data and b"onclick" not in response.data


def test_wrong_passphrase_is_refused_audited_and_slows_the_next_try(world) -> None:
    app, vault, clock = world
    client = app.test_client()
    response = unlock(client, "not it")
    assert response.status_code == 401
    assert b"did not unlock" in response.data
    assert client.get("/timeline").status_code == 401
    failed = [e for e in audit_actions(app) if e["action"] == "web.unlock_failed"]
    assert len(failed) == 1 and failed[0]["details"]["count"] == 1
    response = unlock(client, PASSPHRASE)  # right passphrase, but too soon after a failure
    assert response.status_code == 429
    assert vault.unlocks == 0
    clock.advance(1.1)
    unlock(client, "still not it")
    clock.advance(1.1)  # the second failure asks for 2 s
    assert unlock(client, PASSPHRASE).status_code == 429
    clock.advance(1.0)
    assert unlock(client, PASSPHRASE).status_code == 302
    assert vault.unlocks == 1


def test_flat_rate_limit_on_unlock(world) -> None:
    app, vault, clock = world
    client = app.test_client()
    statuses = []
    for _ in range(12):
        clock.advance(10_000)  # the growing delay is not what this test is about
        statuses.append(unlock(client, "wrong").status_code)
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429, 429]
    assert vault.unlocks == 0


def test_posts_without_csrf_token_are_refused(world) -> None:
    app, vault, _ = world
    client = app.test_client()
    client.get("/unlock")
    assert client.post("/unlock", data={"passphrase": PASSPHRASE}).status_code == 400
    assert vault.unlocks == 0
    unlock(client)
    for path, data in (
        ("/lock", {}),
        ("/settings", {"retention_days": "3"}),
        (
            "/settings/passphrase",
            {
                "old_passphrase": PASSPHRASE,
                "new_passphrase": "x" * 12,
                "confirm_passphrase": "x" * 12,
            },
        ),
    ):
        response = client.post(path, data=data)
        assert response.status_code == 400, path
        assert b"CSRF" in response.data
    assert vault.passphrase == PASSPHRASE
    assert client.get("/timeline").status_code == 200  # still unlocked: /lock was refused


def test_idle_lock_with_an_injected_clock(world) -> None:
    app, _, clock = world
    idle = app.extensions["doorbell"].config.web.idle_lock_s
    client = app.test_client()
    unlock(client)
    clock.advance(idle - 1)
    assert client.get("/timeline").status_code == 200  # activity: the idle timer restarts
    clock.advance(idle - 1)
    assert client.get("/session").json["unlocked"] is True  # a passive poll...
    clock.advance(2)
    assert client.get("/session").json["unlocked"] is False  # ...does not count as activity
    assert client.get("/timeline").status_code == 401
    locked = [e for e in audit_actions(app) if e["action"] == "web.locked"]
    assert locked[-1]["details"] == {"reason": "idle"}
    response = client.get("/timeline", headers={"Accept": "text/html"})
    assert response.status_code == 302 and response.headers["Location"].startswith("/unlock")


def test_static_files_do_not_count_as_activity(world) -> None:
    """Issue 17, finding 9: a page that keeps loading its CSS must still lock."""
    app, _, clock = world
    idle = app.extensions["doorbell"].config.web.idle_lock_s
    client = app.test_client()
    unlock(client)
    clock.advance(idle - 1)
    with client.get("/static/app.css") as static:
        assert static.status_code == 200
    assert client.get("/no/such/page").status_code == 404
    clock.advance(2)
    assert client.get("/timeline").status_code == 401


def test_lock_button_and_restart_lock(world, data_dir: Path) -> None:
    app, vault, _ = world
    client = app.test_client()
    unlock(client)
    token = csrf_from(client.get("/settings").data)
    response = client.post("/lock", data={"csrf_token": token})
    assert response.status_code == 302
    assert client.get("/timeline").status_code == 401
    assert [e["details"] for e in audit_actions(app) if e["action"] == "web.locked"] == [
        {"reason": "button"}
    ]
    unlock(client)
    cookie = client.get_cookie("doorbell").value
    restarted = create_app(ui_config(data_dir), vault=vault, clock=Clock())
    try:
        other = restarted.test_client()
        other.set_cookie("doorbell", cookie)
        assert other.get("/timeline").status_code == 401  # memory only: a restart locks
    finally:
        close_app(restarted)


def test_next_parameter_cannot_redirect_off_site(world) -> None:
    app, _, _ = world
    client = app.test_client()
    token = csrf_from(client.get("/unlock").data)
    response = client.post(
        "/unlock", data={"csrf_token": token, "passphrase": PASSPHRASE, "next": "//evil.example/"}
    )
    assert response.headers["Location"] == "/timeline"


def test_request_size_limit(world) -> None:
    app, _, _ = world
    client = app.test_client()
    response = client.post("/unlock", data={"passphrase": "x" * 400_000})
    assert response.status_code == 413


def test_consistency_check_accepts_growth_and_flags_rollback_and_fork(world) -> None:
    app, _, _ = world
    client = app.test_client()
    unlock(client)
    first = app.extensions["doorbell"].sessions.unlocked_sessions()[0].owner.checkpoint
    for i in range(5):
        app.extensions["doorbell"].audit.append("test", "test.filler", str(i))
    token = csrf_from(client.get("/settings").data)
    client.post("/lock", data={"csrf_token": token})
    unlock(client)
    second = app.extensions["doorbell"].sessions.unlocked_sessions()[0].owner.checkpoint
    assert second["size"] > first["size"]

    def check(size: int, root: str) -> dict:
        query = {"size": str(size), "root": root}
        return client.get("/checkpoint/consistency", query_string=query).json

    ok = check(first["size"], first["root"])
    assert ok["ok"] is True and ok["verdict"] == "ok" and ok["new_size"] == second["size"]
    forged = base64.b64encode(b"\x01" * 32).decode()
    forked = check(first["size"], forged)
    assert forked["ok"] is False and forked["verdict"] == "forked"
    bigger = second["size"] + 10
    shrank = check(bigger, second["root"])
    assert shrank["ok"] is False and shrank["verdict"] == "shrank"
    bad = client.get("/checkpoint/consistency?size=x&root=y")
    assert bad.status_code == 400
    assert json.loads(bad.data)["verdict"] == "bad-request"


def test_unlock_over_tls_works_without_a_referer(data_dir: Path) -> None:
    """Referrer-Policy: no-referrer means browsers send none; the CSRF check must not need it."""
    vault = FakeVault()
    prepare_data_dir(data_dir, vault)
    app = create_app(ui_config(data_dir, tls=True), vault=vault, clock=Clock())
    try:
        client = app.test_client()
        base = "https://localhost"
        token = csrf_from(client.get("/unlock", base_url=base).data)
        response = client.post(
            "/unlock", base_url=base, data={"csrf_token": token, "passphrase": PASSPHRASE}
        )
        assert response.status_code == 302 and vault.unlocks == 1
    finally:
        close_app(app)


def test_links_are_built_from_the_configuration_not_the_host_header(data_dir: Path) -> None:
    """Issue 17, finding 9: invitation links named whatever Host the request carried."""
    from doorbell.ui.guard import external_url

    config = ui_config(data_dir, hosts=["doorbell.home"], port=8443, tls=True)
    prepare_data_dir(data_dir)
    app = create_app(config, vault=FakeVault(), clock=Clock())
    try:
        with app.test_request_context("/", headers={"Host": "evil.example"}):
            assert external_url("/r/x") == "https://doorbell.home:8443/r/x"
    finally:
        close_app(app)


def test_signed_csrf_token_is_reused_only_for_the_same_raw_token(world) -> None:
    """Issue 17, load: an unlocked session's pages reuse one signed CSRF token (not signed
    anew per page); it still works, and after a lock and a new unlock the old one is refused
    and a different one is issued."""
    app, _, _ = world
    client = app.test_client()
    unlock(client)
    tokens = {csrf_from(client.get(path).data) for path in ("/settings", "/timeline", "/audit")}
    assert len(tokens) == 1
    [old] = tokens
    [record] = app.extensions["doorbell"].sessions.unlocked_sessions()
    assert record.signed_csrf == (record["csrf_token"], old)  # kept, not signed per page
    assert client.post("/lock", data={"csrf_token": old}).status_code == 302
    unlock(client)
    new = csrf_from(client.get("/settings").data)
    assert new != old
    refused = client.post("/lock", data={"csrf_token": old})
    assert refused.status_code == 400
    assert client.get("/timeline").status_code == 200  # still unlocked
    assert client.post("/lock", data={"csrf_token": new}).status_code == 302
    assert client.get("/timeline").status_code == 401
