"""Every owner and requester page fits a phone and a laptop, and every field is labelled.

In Debian's chromium (Playwright) against the real server code in-process (cheroot, loopback,
port 0 picked free), with real encrypted clips. Each page, in each state we can reach (empty,
with data, with errors), is loaded at 390x844 and at 1280x800 and must:

- not scroll sideways: ``document.documentElement.scrollWidth <= clientWidth``;
- give every visible form control (input, select, textarea; not hidden ones or buttons) a
  visible label that belongs to it (``control.labels``: ``<label for>`` or a wrapping label);
- load without console errors (the favicon too) and without CSP violations.

Screenshots go to ``test-artifacts/layout/`` (git-ignored; ``DOORBELL_ARTIFACTS`` overrides)
as ``<viewport>-<page>.png``: look at them.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from exports_helpers import log_sealed_clips
from test_ui_browser import browser as chromium_browser  # noqa: F401 - the chromium fixture
from test_ui_browser import free_port
from ui_helpers import T0, Clock, FakeVault, make_clip, prepare_data_dir, ui_config

from doorbell.age.identities import X25519Identity
from doorbell.store import Store

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}
ARTIFACTS = Path(
    os.environ.get("DOORBELL_ARTIFACTS")
    or Path(__file__).resolve().parents[2] / "test-artifacts" / "layout"
)
NOW = T0 + 86400.0

MEASURE = """() => {
  const doc = document.documentElement;
  const unlabelled = [];
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden" || el.closest("[hidden]") || !el.getClientRects().length) continue;
    const labels = Array.from(el.labels || []).filter(l => {
      const r = l.getBoundingClientRect();
      return r.width > 4 && r.height > 4 && l.textContent.trim().replace(/\\s+/g, " ").length > 1;
    });
    if (!labels.length) unlabelled.push(el.id || el.name || el.outerHTML.slice(0, 80));
  }
  const wide = [];
  for (const el of document.querySelectorAll("body *")) {
    const r = el.getBoundingClientRect();
    if (r.right <= doc.clientWidth + 1 || getComputedStyle(el).position === "fixed") continue;
    const name = typeof el.className === "string" ? el.className.split(" ")[0] : "";
    const tag = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (name ? "." + name : "");
    wide.push(tag + " " + Math.round(r.right));
  }
  return {
    scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth, unlabelled, wide: wide.slice(0, 8),
  };
}"""


class Server:
    """The web app on a loopback port, served by the real server code in a named thread."""

    def __init__(self, data_dir: Path, vault: FakeVault) -> None:
        from doorbell.commands.web import build_server
        from doorbell.ui import create_app

        self.config = ui_config(data_dir, port=free_port())
        self.clock = Clock()
        self.wall = _Wall(NOW)
        self.app = create_app(self.config, vault=vault, clock=self.clock, wall_clock=self.wall)
        self.server = build_server(self.app, self.config, data_dir)
        # four browser contexts (phone and laptop, owner and requester) share 127.0.0.1 here,
        # each keeping several connections open: the per-address cap (8, tested in
        # tests/test_web_attacks.py) would close theirs at accept
        self.server.connection_counter.cap = 64
        self.stop = threading.Event()
        self.base = f"http://127.0.0.1:{self.config.web.port}"

    def start(self) -> None:
        from doorbell.commands.web import serve

        ready = threading.Event()
        self.thread = threading.Thread(
            target=serve, args=(self.server, self.stop), kwargs={"ready": ready.set}, name="e2e-web"
        )
        self.thread.start()
        if not ready.wait(20):
            raise AssertionError("the web server did not start")

    def close(self) -> None:
        from doorbell.ui import close_app

        self.stop.set()
        self.thread.join(30)
        close_app(self.app)


class _Wall:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Server, FakeVault, list[str]]]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    vault = FakeVault()
    prepare_data_dir(data_dir, vault)
    (data_dir / "keys" / "owner.recipients").write_text(f"{vault.identity.recipient}\n")
    with Store.open(data_dir) as store:
        clips = [
            make_clip(
                store,
                [vault.identity.recipient],
                T0 + 600 * (i + 1),
                seconds=1.0,
                size=(320, 180),
                trigger="ring" if i == 1 else "motion",
                seed=i,
            )
            for i in range(3)
        ]
        log_sealed_clips(data_dir, store, clips)  # what the recorder logs: approval needs it
    running = Server(data_dir, vault)
    running.start()
    try:
        yield running, vault, clips
    finally:
        running.close()


class Checker:
    """Loads pages in one browser context per viewport and checks each."""

    def __init__(self, browser: Any, name: str, base: str) -> None:
        self.name = name
        self.base = base
        self.context = browser.new_context(viewport=VIEWPORTS[name])
        self.page = self.context.new_page()
        self.errors: list[str] = []
        # a page's own status (404, 410, 400 with the form's problems) is the point of
        # some pages; every other failed load (favicon, CSS, scripts) and every script or
        # CSP error is a problem
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("response", self._response)
        self.problems: list[str] = []
        self.checked = 0

    def _console(self, message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def _response(self, response: Any) -> None:
        if response.status < 400 or response.request.resource_type == "document":
            return
        if response.status == 429 and "/preview.jpg" in response.url:
            return  # the previous page's preview still running: exports.js retries
        if response.status == 503 and "/live/frame.jpg" in response.url:
            return  # no recorder runs in this test: the live page says "Connecting…"
        self.errors.append(f"{response.status} {response.url}")

    def check(self, label: str, path: str | None = None) -> None:
        if path is not None:
            self.page.goto(self.base + path, wait_until="load")
        self.page.wait_for_timeout(150)  # scripts that unhide tools have run
        found = self.page.evaluate(MEASURE)
        where = f"{self.name} {label} ({self.page.url.removeprefix(self.base)})"
        if found["scrollWidth"] > found["clientWidth"]:
            self.problems.append(
                f"{where}: scrolls sideways ({found['scrollWidth']} > {found['clientWidth']}): "
                f"{found['wide']}"
            )
        if found["unlabelled"]:
            self.problems.append(f"{where}: no visible label for {found['unlabelled']}")
        if self.errors:
            self.problems.append(f"{where}: console errors {self.errors}")
        self.errors.clear()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{self.name}-{label}.png"), full_page=True)
        self.checked += 1

    def unlock(self) -> None:
        self.page.goto(self.base + "/unlock")
        self.page.fill("#passphrase", FakeVault().passphrase)
        self.page.click("button[type=submit]")
        self.page.wait_for_url("**/timeline")


def _fill_request(page: Any, recipient: str, *, window_end: str = "2026-01-01T01:00") -> None:
    page.fill("#requester", "Constable Jane Smith-Wolfeschlegelsteinhausenbergerdorff")
    page.fill("#organisation", "Example Constabulary, Criminal Investigation Department")
    page.fill("#contact", "jane.smith.investigations@police-department.example")
    page.select_option("#kind", "police")
    page.select_option("#legal_basis", "warrant")
    page.fill("#legal_reference", "W-2026/0042")
    page.fill("#window_start", "2026-01-01T00:00")
    page.fill("#window_end", window_end)
    page.fill("#reason", "A parcel was stolen from the porch that evening.")
    page.check("#delivery_recipient")
    page.fill("#recipient", recipient)
    page.click("#submit-request")
    page.wait_for_load_state("load")


def test_every_page_fits_a_phone_and_a_laptop_with_labelled_fields(
    server: tuple[Server, FakeVault, list[str]],
    chromium_browser: Any,  # noqa: F811 - the fixture imported above
) -> None:
    running, _vault, clips = server
    base = running.base
    registry = running.app.extensions["doorbell_exports"].registry
    jobs = running.app.extensions["doorbell_exports"].jobs
    owners = {name: Checker(chromium_browser, name, base) for name in VIEWPORTS}
    requesters = {name: Checker(chromium_browser, name, base) for name in VIEWPORTS}

    # Locked, and the pages anyone may see.
    for name in VIEWPORTS:
        owners[name].check("unlock", "/unlock")
        requesters[name].check("no-such-invitation", "/requests/invite/" + "A" * 43)
        requesters[name].check("open-form-closed", "/requests/new")
        requesters[name].check("no-such-status", "/requests/status/" + "B" * 43)
        owners[name].unlock()
        # Empty states.
        owners[name].check("requests-empty", "/exports")
        owners[name].check("timeline-empty-filter", "/timeline?kind=interrupted")
        owners[name].check("audit-no-match", "/audit?q=nothing-matches-this")
        owners[name].check("transparency-empty", "/transparency")
        owners[name].check("not-found", "/no-such-page")

    # With data: invitations (one per viewport, used by that viewport's requester).
    tokens: dict[str, str] = {}
    for name in VIEWPORTS:
        page = owners[name].page
        page.goto(base + "/exports")
        page.fill("#label", "The insurer of number 12, claims department (ref. 2026-XYZ)")
        page.click("#create-invitation")
        page.wait_for_selector("#invitation-link")
        owners[name].check("invitation-link")
        page.click("#copy-link")  # copied, or (no clipboard permission) selected for Ctrl+C
        page.wait_for_function(
            "() => document.querySelector('.copy-status').textContent.length > 0"
        )
        link = page.inner_text("#invitation-link").strip()
        tokens[name] = link[link.index("/requests/invite/") :]
    for name, requester in requesters.items():
        requester.check("request-form", tokens[name])
        _fill_request(requester.page, "age1bogus", window_end="2025-12-31T23:00")
        requester.check("request-form-errors")
        assert requester.page.locator("#form-problems").count() == 1
        _fill_request(requester.page, str(X25519Identity.generate().recipient))
        requester.page.wait_for_selector("#status-link")
        requester.check("request-submitted")
        status = requester.page.get_attribute("#status-link", "href")
        requester.check("status-pending", status)
        requester.check("invitation-used", tokens[name])
        tokens[name] = status

    pending = registry.requests(status="pending")
    assert len(pending) == 2
    for name in VIEWPORTS:
        owners[name].check("timeline", "/timeline")
        assert owners[name].page.locator("#pending-banner").count() == 1
        owners[name].check("requests", "/exports")
        owners[name].check("live", "/live")
        owners[name].check("audit", "/audit")
        owners[name].check("settings", "/settings")
        owners[name].check("passphrase", "/settings/passphrase")
        owners[name].check("notifications", "/settings/notifications")
        page = owners[name].page
        page.goto(base + "/settings")
        page.evaluate(  # past the browser's own checks: the server's errors page
            "() => { const f = document.getElementById('motion_threshold');"
            " f.removeAttribute('max'); f.value = '999'; }"
        )
        page.click("#settings-form button[type=submit]")
        page.wait_for_load_state("load")
        assert page.locator("main .banner.danger").count() == 1
        owners[name].check("settings-errors")
        owners[name].check("clip", f"/clips/{clips[0]}")

    # The approval page: empty choice, then a refused approval (wrong passphrase).
    first, second = pending[0].id, pending[1].id
    for name, request_id in (("phone", first), ("desktop", second)):
        page = owners[name].page
        owners[name].check("approve", f"/exports/{request_id}")
        assert page.locator("input[name=clip]:checked").count() == 0
        assert "No clip chosen yet" in page.inner_text("#approve-summary")
        page.click("#select-all")
        assert page.locator("input[name=clip]:checked").count() == len(clips)
        assert page.inner_text("#approve-summary").startswith(f"{len(clips)} clips, 3 s")
        page.click("#select-none")
        page.check(f"#clip-{clips[0]}")
        page.check("#redact_faces")
        page.fill("#days", "2")
        summary = page.inner_text("#approve-summary")
        assert summary.startswith("1 clip, 1 s, faces blurred, to Constable"), summary
        assert summary.endswith("expires in 2 days, 3 downloads."), summary
        page.fill("#passphrase", "not the passphrase")
        page.click("#approve")
        page.wait_for_selector("#review-error")
        owners[name].check("approve-refused")
        assert page.locator("input[name=clip]:checked").count() == 1
        assert page.is_checked(f"#clip-{clips[0]}") and page.is_checked("#redact_faces")
        assert "1 clip" in page.inner_text("#approve-summary")
        # the preview works again after the reload (the one before may still be running)
        page.wait_for_function(
            "() => document.getElementById('redact-preview-status').textContent"
            ".startsWith('Preview shows')",
            timeout=60000,
        )
        running.clock.now += 60  # past the wrong-passphrase delay
        page.fill("#passphrase", FakeVault().passphrase)
        page.click("#approve")
        page.wait_for_url(f"**/exports/{request_id}")
        assert page.inner_text("#review-status") == "approved"
        jobs.join(60)
        assert registry.get(request_id).status == "approved", name
        owners[name].check("approved", f"/exports/{request_id}")
        shown = owners[name].page.inner_text("main")
        assert owners[name].page.locator("#approved-clips li").count() == 1, shown[:1500]
        # the requester's status link, as they got it, with its copy button (issue 18)
        link = owners[name].page.inner_text("#requester-status-link").strip()
        assert link.endswith(tokens[name]) and owners[name].page.is_visible("#copy-status-link")
        requesters[name].check("status-approved", tokens[name])
    # Revoke one; its requester sees it.
    page = owners["phone"].page
    page.goto(base + f"/exports/{first}")
    page.fill("#revoke_passphrase", FakeVault().passphrase)
    page.click("#revoke")
    page.wait_for_selector("#revoked-note")
    owners["phone"].check("revoked")
    requesters["phone"].check("status-revoked", tokens["phone"])
    assert requesters["phone"].page.get_attribute("#request-status", "data-status") == "revoked"
    requesters["desktop"].check("status-revoked", tokens["phone"])
    # A self-export, the counts, the audit page with data and a 404 with the owner signed in.
    page = owners["desktop"].page
    page.goto(base + "/exports")
    page.fill("#self_start", "2026-01-01T00:00")
    page.fill("#self_end", "2026-01-01T01:00")
    page.click("text=Export (encrypted to your key)")
    page.wait_for_url(re.compile(r".*/exports/req-.*"))
    jobs.join(60)
    self_path = page.url.removeprefix(base)
    for name in VIEWPORTS:
        owners[name].check("self-export", self_path)
        owners[name].check("requests-decided", "/exports")
        owners[name].check("transparency", "/transparency")
        owners[name].check("audit-requests", "/audit?kind=requests")
        owners[name].check("audit-page-2", "/audit?page=2")
    # A denied request (entered by the owner, as for a paper request), published counts.
    denied, denied_token = registry.submit(
        {
            "requester": "A neighbour",
            "organisation": "",
            "contact": "+44 20 7946 0000",
            "kind": "neighbour",
            "legal_basis": "voluntary",
            "legal_reference": "",
            "window_start": "2026-01-01T00:00",
            "window_end": "2026-01-01T01:00",
            "reason": "My bicycle went missing that night.",
            "delivery": "passphrase",
        },
        source="owner",
    )
    page = owners["phone"].page
    owners["phone"].check("approve-passphrase-delivery", f"/exports/{denied.id}")
    page.fill("#reason", "Nothing in the footage shows the bicycle rack.")
    page.click("#deny")
    page.wait_for_url(f"**/exports/{denied.id}")
    owners["phone"].check("denied")
    for name in VIEWPORTS:
        requesters[name].check("status-denied", f"/requests/status/{denied_token}")
    page.goto(base + "/exports")
    page.click("button[name=public]")
    page.wait_for_url("**/exports")
    for name in VIEWPORTS:
        requesters[name].check("transparency-public", "/transparency/public")
        owners[name].check("transparency-published", "/transparency")
    # Errors last: a wrong passphrase slows the next check from this address.
    for name in VIEWPORTS:
        page = owners[name].page
        running.clock.now += 60
        page.goto(base + "/settings/passphrase")
        page.fill("#old_passphrase", "not the passphrase")
        page.fill("#new_passphrase", "a much longer new passphrase 2026")
        page.fill("#confirm_passphrase", "a much longer new passphrase 2026")
        page.click("main form button[type=submit]")
        page.wait_for_load_state("load")
        owners[name].check("passphrase-errors")
        running.clock.now += 60
        page = requesters[name].page
        page.goto(base + "/unlock")
        page.fill("#passphrase", "not the passphrase")
        page.click("button[type=submit]")
        page.wait_for_selector("#unlock-error")
        requesters[name].check("unlock-error")
    for checker in (*owners.values(), *requesters.values()):
        checker.context.close()
    problems = [p for c in (*owners.values(), *requesters.values()) for p in c.problems]
    assert not problems, "\n".join(problems)
    assert sum(c.checked for c in (*owners.values(), *requesters.values())) >= 66
