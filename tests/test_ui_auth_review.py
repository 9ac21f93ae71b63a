"""Web UI unlock after the security review: owner anchor at unlock, redirects, concurrency,
throttle fairness, audit ordering, idle sweep (doorbell/ui/auth.py, guard.py, sessions.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from ui_helpers import (
    PASSPHRASE,
    Clock,
    FakeVault,
    csrf_from,
    prepare_data_dir,
    rewrite_log,
    ui_config,
    unlock,
)

from doorbell.audit.anchor import ANCHOR_FILE, read_anchor
from doorbell.audit.devicekey import load_device_signer
from doorbell.audit.entries import decode_entry
from doorbell.audit.log import AuditLog
from doorbell.keys import OWNER_COSIGNER_NAME, derive_owner_anchor_key
from doorbell.ui import close_app, create_app
from doorbell.ui.auth import _safe_next


def _app(data_dir: Path, vault, clock=None):
    return create_app(ui_config(data_dir), vault=vault, clock=clock or Clock())


def actions(app) -> list[dict]:
    return [decode_entry(leaf) for _, leaf in app.extensions["doorbell"].audit.entries(0)]


def cosignatures(app) -> int:
    conn = app.extensions["doorbell"].audit._conn
    return conn.execute("SELECT count(*) FROM cosignatures").fetchone()[0]


@pytest.fixture
def vault() -> FakeVault:
    return FakeVault()


def test_unlock_moves_the_anchor_on(data_dir: Path, vault) -> None:
    prepare_data_dir(data_dir, vault)
    key = derive_owner_anchor_key(vault.identity)
    before = read_anchor(data_dir, key).size
    app = _app(data_dir, vault)
    try:
        client = app.test_client()
        assert unlock(client).status_code == 302
        assert read_anchor(data_dir, key).size > before
        assert b"audit-warning" not in client.get("/timeline").data
    finally:
        close_app(app)


def test_rewritten_log_is_not_cosigned_at_unlock_and_the_owner_is_warned(
    data_dir: Path, vault
) -> None:
    prepare_data_dir(data_dir, vault)
    with AuditLog.open(data_dir, signer=load_device_signer(data_dir / "keys")) as log:
        log.append("owner", "clip.viewed", "20260101T000000Z-deadbeef")
        log.append("owner", "clip.downloaded", "20260101T000000Z-deadbeef")
        note = log.cosign(vault.cosigning_key, OWNER_COSIGNER_NAME)
    from doorbell.audit.anchor import anchor_from_cosignature, write_anchor

    write_anchor(data_dir, anchor_from_cosignature(note), derive_owner_anchor_key(vault.identity))
    rewrite_log(data_dir)
    app = _app(data_dir, vault)
    try:
        client = app.test_client()
        assert unlock(client).status_code == 302  # the owner still reaches the footage
        assert cosignatures(app) == 0  # but the rewritten history is not cosigned
        assert "audit.anchor_mismatch" in [e["action"] for e in actions(app)]
        page = client.get("/timeline").data
        assert b"audit-warning" in page and b"rewritten" in page
    finally:
        close_app(app)


def test_missing_anchor_warns_then_the_owner_accepts_the_log(data_dir: Path, vault) -> None:
    prepare_data_dir(data_dir, vault)
    (data_dir / ANCHOR_FILE).unlink()
    clock = Clock()
    app = _app(data_dir, vault, clock)
    try:
        client = app.test_client()
        unlock(client)
        assert cosignatures(app) == 1  # only init's
        assert "audit.anchor_missing" in [e["action"] for e in actions(app)]
        page = client.get("/timeline").data
        assert b"audit-warning" in page
        token = csrf_from(client.get("/audit").data)
        wrong = client.post("/audit/accept", data={"csrf_token": token, "passphrase": "no"})
        assert wrong.status_code == 401 and not (data_dir / ANCHOR_FILE).exists()
        clock.advance(2)
        accepted = client.post(
            "/audit/accept", data={"csrf_token": token, "passphrase": PASSPHRASE}
        )
        assert accepted.status_code == 302
        assert (data_dir / ANCHOR_FILE).exists() and cosignatures(app) == 2
        assert "audit.anchor_reset" in [e["action"] for e in actions(app)]
        assert b"audit-warning" not in client.get("/timeline").data
    finally:
        close_app(app)


def test_data_dir_from_before_anchors_gets_one_at_unlock(data_dir: Path, vault) -> None:
    prepare_data_dir(data_dir)
    with AuditLog.open(data_dir, signer=load_device_signer(data_dir / "keys")) as log:
        log.append("owner", "keys.created", "keys", {})
        log.cosign(vault.cosigning_key, OWNER_COSIGNER_NAME, first=True)
    app = _app(data_dir, vault)
    try:
        client = app.test_client()
        unlock(client)
        assert "audit.anchor_created" in [e["action"] for e in actions(app)]
        assert read_anchor(data_dir, derive_owner_anchor_key(vault.identity)).size >= 3
        assert b"audit-warning" not in client.get("/timeline").data
    finally:
        close_app(app)


# --- finding 2: open redirect -----------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/\t/evil.example/x",
        "/\n/evil.example/x",
        "/\r/evil.example",
        "//evil.example",
        "/\\evil.example",
        "https:evil.example",
        "https://evil.example/",
        "/ /evil.example",
        "javascript:alert(1)",
        "",
        None,
        "timeline",
    ],
)
def test_next_is_only_ever_a_local_path(target) -> None:
    from flask import Flask

    app = Flask("t")
    app.add_url_rule("/timeline", "events.timeline", lambda: "")
    with app.test_request_context():
        assert _safe_next(target) == "/timeline"


def test_next_keeps_a_local_path_and_query(data_dir: Path, vault) -> None:
    from flask import Flask

    app = Flask("t")
    app.add_url_rule("/timeline", "events.timeline", lambda: "")
    with app.test_request_context():
        assert _safe_next("/clips/abc?x=1") == "/clips/abc?x=1"


def test_next_with_a_tab_or_newline_redirects_home(data_dir: Path, vault) -> None:
    prepare_data_dir(data_dir, vault)
    app = _app(data_dir, vault)
    try:
        for target in ("/\t/evil.example/x", "/\n/evil.example/x"):
            client = app.test_client()
            token = csrf_from(client.get("/unlock").data)
            response = client.post(
                "/unlock", data={"csrf_token": token, "passphrase": PASSPHRASE, "next": target}
            )
            assert response.status_code == 302 and response.headers["Location"] == "/timeline"
    finally:
        close_app(app)


# --- finding 3: one passphrase check at a time --------------------------------------------


class SlowVault(FakeVault):
    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def unlock(self, passphrase: str):
        self.calls += 1
        self.entered.set()
        self.release.wait(10)
        return super().unlock(passphrase)


def test_concurrent_checks_are_queued_one_per_address(data_dir: Path) -> None:
    """Issue 17: a second address waits its turn (it used to be refused as "busy"); a second
    check from the same address is refused at once, and scrypt never runs twice at a time."""
    vault = SlowVault()
    prepare_data_dir(data_dir, vault)
    app = _app(data_dir, vault)
    try:
        first, second, again = app.test_client(), app.test_client(), app.test_client()
        tokens = [csrf_from(c.get("/unlock").data) for c in (first, second, again)]
        results = {}

        def post(name, client, token, address) -> None:
            results[name] = client.post(
                "/unlock",
                environ_base={"REMOTE_ADDR": address},
                data={"csrf_token": token, "passphrase": f"wrong {name}"},
            )

        one = threading.Thread(target=post, args=("first", first, tokens[0], "10.0.0.8"))
        one.start()
        assert vault.entered.wait(5)
        two = threading.Thread(target=post, args=("second", second, tokens[1], "10.0.0.9"))
        two.start()
        post("again", again, tokens[2], "10.0.0.8")
        assert results["again"].status_code == 429  # same address: refused, not queued
        assert vault.calls == 1
        vault.release.set()
        one.join(10)
        two.join(10)
        assert results["first"].status_code == 401
        assert results["second"].status_code == 401  # queued, then checked
        assert vault.calls == 2
    finally:
        close_app(app)
    with AuditLog.open(data_dir) as log:
        entries = [decode_entry(leaf) for _, leaf in log.entries()]
    refused = [e for e in entries if e["action"] in ("web.unlock_failed", "web.unlock_refused")]
    summary = [e for e in refused if e["details"].get("client") == "10.0.0.8"]
    assert sum(e["details"]["count"] for e in summary) == 2
    assert summary[-1]["details"]["refused"] == 1


def test_throttle_counts_the_attempt_before_the_check() -> None:
    from doorbell.ui.guard import UnlockThrottle

    clock = Clock()
    throttle = UnlockThrottle(clock)
    assert throttle.begin("a") == 0.0
    assert throttle.begin("a") > 0  # the attempt in flight already counts as a failure
    throttle.succeeded("a")
    assert throttle.begin("a") == 0.0


# --- finding 6: a LAN host cannot lock the owner out ---------------------------------------


def test_failures_from_other_addresses_do_not_refuse_the_owner(data_dir: Path, vault) -> None:
    prepare_data_dir(data_dir, vault)
    clock = Clock()
    app = _app(data_dir, vault, clock)
    try:
        for i in range(40):
            attacker = app.test_client()
            token = csrf_from(attacker.get("/unlock").data)
            attacker.post(
                "/unlock",
                environ_base={"REMOTE_ADDR": f"10.0.1.{i}"},
                data={"csrf_token": token, "passphrase": "guess"},
            )
            clock.advance(1)
        owner = app.test_client()
        assert unlock(owner).status_code == 302
    finally:
        close_app(app)


# --- finding 5: unlock and lock are always audited -------------------------------------------


def test_unlock_is_audited_before_the_session_is_unlocked(data_dir: Path, vault) -> None:
    prepare_data_dir(data_dir, vault)
    app = _app(data_dir, vault)
    state = app.extensions["doorbell"]
    real = state.audit.append

    def failing(actor, action, *args, **kwargs):
        if action == "web.unlocked":
            raise OSError("disk gone")
        return real(actor, action, *args, **kwargs)

    try:
        state.audit.append = failing
        client = app.test_client()
        assert unlock(client).status_code == 500
        assert state.sessions.unlocked_sessions() == []
    finally:
        state.audit.append = real
        close_app(app)


def test_refused_unlocks_are_audited_in_summary(data_dir: Path, vault) -> None:
    prepare_data_dir(data_dir, vault)
    app = _app(data_dir, vault)
    try:
        client = app.test_client()
        unlock(client, "wrong")
        assert unlock(client, PASSPHRASE).status_code == 429
        assert unlock(client, PASSPHRASE).status_code == 429
        first = [e for e in actions(app) if e["action"] == "web.unlock_failed"]
        assert [e["details"]["burst"] for e in first] == ["start"]  # at once, then counted
        app.extensions["doorbell"].failure_ledger.flush(everything=True)
        summary = actions(app)[-1]
        assert summary["action"] == "web.unlock_failed"
        assert summary["details"]["reasons"] == {"throttled": 2, "wrong": 1}
        assert summary["details"]["count"] == 2
    finally:
        close_app(app)


def test_evicted_and_shutdown_sessions_are_audited_as_locked(data_dir: Path, vault) -> None:
    from doorbell.ui import sessions as sessions_module

    prepare_data_dir(data_dir, vault)
    app = _app(data_dir, vault)
    old = sessions_module.MAX_UNLOCKED_SESSIONS
    sessions_module.MAX_UNLOCKED_SESSIONS = 1
    try:
        unlock(app.test_client())
        unlock(app.test_client())
        reasons = [e["details"]["reason"] for e in actions(app) if e["action"] == "web.locked"]
        assert reasons == ["evicted"]
    finally:
        sessions_module.MAX_UNLOCKED_SESSIONS = old
        close_app(app)
    with AuditLog.open(data_dir) as log:
        reasons = [
            decode_entry(leaf)["details"].get("reason")
            for _, leaf in log.entries()
            if decode_entry(leaf)["action"] == "web.locked"
        ]
    assert reasons == ["evicted", "shutdown"]


# --- hardening: idle sessions are locked without waiting for their next request ----------------


def test_idle_sweep_drops_the_identity_without_a_request(data_dir: Path, vault) -> None:
    prepare_data_dir(data_dir, vault)
    clock = Clock()
    app = _app(data_dir, vault, clock)
    state = app.extensions["doorbell"]
    try:
        unlock(app.test_client())
        assert state.sweep_idle() == 0
        clock.advance(state.config.web.idle_lock_s + 1)
        assert state.sweep_idle() == 1
        assert state.sessions.unlocked_sessions() == []
        locked = [e for e in actions(app) if e["action"] == "web.locked"]
        assert locked[-1]["details"] == {"reason": "idle"}
    finally:
        close_app(app)


# --- issue 17, finding 3: anonymous visitors hold no server-side session ---------------------


def test_anonymous_form_gets_keep_nothing_server_side(data_dir: Path, vault) -> None:
    prepare_data_dir(data_dir, vault)
    app = _app(data_dir, vault)
    try:
        for _ in range(20):
            app.test_client().get("/unlock")
        assert len(app.extensions["doorbell"].sessions) == 0
        owner = app.test_client()
        token = csrf_from(owner.get("/unlock").data)
        cookie = owner.get_cookie("doorbell")
        assert cookie is not None and cookie.value.startswith("a.")
        forged = app.test_client()
        forged.set_cookie("doorbell", cookie.value[:-2] + "xx")  # signature no longer matches
        refused = forged.post("/unlock", data={"csrf_token": token, "passphrase": PASSPHRASE})
        assert refused.status_code == 400
        answer = owner.post("/unlock", data={"csrf_token": token, "passphrase": PASSPHRASE})
        assert answer.status_code == 302
        assert len(app.extensions["doorbell"].sessions) == 1
        assert not owner.get_cookie("doorbell").value.startswith("a.")
    finally:
        close_app(app)


def test_the_unlocked_web_cosigns_the_grown_log_every_few_minutes(data_dir: Path, vault) -> None:
    """Issue 17: what a compromised recorder can rewrite unseen is bounded by this interval."""
    from doorbell.ui import COSIGN_EVERY_S

    prepare_data_dir(data_dir, vault)
    clock = Clock()
    app = _app(data_dir, vault, clock)
    state = app.extensions["doorbell"]
    try:
        assert unlock(app.test_client()).status_code == 302
        after_unlock = cosignatures(app)
        state.record("recorder", "clip.sealed", "x")
        assert not state.cosign_while_unlocked()  # too soon
        clock.advance(COSIGN_EVERY_S + 1)
        assert state.cosign_while_unlocked()
        assert cosignatures(app) == after_unlock + 1
        clock.advance(COSIGN_EVERY_S + 1)
        state.sessions.lock_all("button")
        state.record("recorder", "clip.sealed", "y")
        assert not state.cosign_while_unlocked()  # locked: no keys, nothing signed
    finally:
        close_app(app)


def test_all_cosignatures_deleted_shows_on_the_audit_page(data_dir: Path, vault) -> None:
    """Issue 17, finding 9: deleting every cosignature was flagged neither by verify nor UI."""
    prepare_data_dir(data_dir, vault)
    with AuditLog.open(data_dir) as log:
        log._conn.execute("DELETE FROM cosignatures")
    app = _app(data_dir, vault)
    try:
        client = app.test_client()
        unlock(client)  # the anchor's cosignature is gone: not cosigned, warned
        assert "audit.anchor_mismatch" in [e["action"] for e in actions(app)]
        assert cosignatures(app) == 0
        page = client.get("/audit").get_data(as_text=True)
        assert "no owner cosignature at all" in page
        assert "cosignatures were deleted" in page
    finally:
        close_app(app)


# --- review finding: the throttle and the rate limit keyed on the raw IPv6 address ----------


def test_throttle_counts_an_ipv6_slash_64_as_one_address() -> None:
    """Before the fix a host that rotated its address within its /64 had a fresh throttle
    for every guess."""
    from doorbell.ui.guard import UnlockThrottle

    throttle = UnlockThrottle(Clock())
    assert throttle.begin("2001:db8:0:1::1") == 0.0
    assert throttle.begin("2001:db8:0:1:aaaa::2") > 0  # same /64: the same address
    assert throttle.failures("2001:db8:0:1::ffff") == 1
    assert throttle.begin("2001:db8:0:2::1") == 0.0  # another /64 is another address


def test_rate_limit_counts_an_ipv6_slash_64_as_one_address(data_dir: Path, vault) -> None:
    """Before the fix every wrong guess from a new address of one /64 was allowed: the
    flat rate limit never applied."""
    prepare_data_dir(data_dir, vault)
    clock = Clock()
    app = _app(data_dir, vault, clock)
    app.config["DOORBELL_UNLOCK_RATE"] = "3 per hour"
    statuses = []
    try:
        for i in range(5):
            clock.advance(3600)  # past the throttle's delay, not past the limiter's hour
            attacker = app.test_client()
            token = csrf_from(attacker.get("/unlock").data)
            answer = attacker.post(
                "/unlock",
                environ_base={"REMOTE_ADDR": f"2001:db8:0:1::{i + 1:x}"},
                data={"csrf_token": token, "passphrase": "guess"},
            )
            statuses.append(answer.status_code)
    finally:
        close_app(app)
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3:] == [429, 429], statuses
