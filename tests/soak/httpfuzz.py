"""HTTP fuzz of a running ``doorbell web`` on 127.0.0.1: every route, method and parameter.

Hypothesis draws requests (a route of the app's URL map with hostile path values, query
strings, Range headers, form bodies, with or without an unlocked session) and sends them over
TLS to a real server. Findings are counted, not raised, so a long run reports them all:

- responses with status 500 (or a dropped connection): must be 0;
- protected routes answering 2xx without a session: must be 0;
- afterwards the index and the clip files are unchanged and the audit log verifies.

CI sends ~1,000 requests (tests/test_http_fuzz.py); the long run::

    .venv/bin/python tests/soak/httpfuzz.py --requests 10000
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make tests/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import collections
import hashlib
import http.client
import json
import re
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recorder_helpers import IndexCamera, ScriptedMotion
from stress_helpers import kill_hard, start_doorbell, stderr_tail

from doorbell.audit.verify import verify_data_dir

#: the repository root: results go to bench/results/ wherever the script is run from
ROOT = Path(__file__).resolve().parents[2]

PASSPHRASE = "fuzzy-lantern-maple-orbit-harbour-7"
HOSTILE = [
    "",
    "..",
    "../../etc/passwd",
    "%00",
    "%2e%2e%2f",
    "a" * 5000,
    "-1",
    "0",
    "1e309",
    "NaN",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "\u202e",
    "%ff%fe",
    "20991231",
    "2024-02-30",
    "9" * 40,
    "null",
    "[]",
    "{}",
    "../index.sqlite3",
]
QUERY_KEYS = [
    "day",
    "date",
    "page",
    "kind",
    "since",
    "until",
    "before",
    "after",
    "zone",
    "trigger",
    "limit",
    "offset",
    "cursor",
    "q",
    "next",
    "from",
    "to",
    "filter",
    "clip",
    "event",
    "start",
    "end",
    "sort",
    "format",
]
FORM_KEYS = [
    "csrf_token",
    "passphrase",
    "next",
    "reason",
    "clips",
    "expiry_days",
    "download_limit",
    "recipient",
    "name",
    "organisation",
    "contact",
    "legal_basis",
    "window_start",
    "window_end",
    "delivery",
    "masks",
    "retention_days",
    "new_passphrase",
    "confirm",
    "open_form",
    "invitations",
]


@dataclass
class FuzzReport:
    requests: int = 0
    statuses: collections.Counter = field(default_factory=collections.Counter)
    server_errors: list[str] = field(default_factory=list)
    unprotected: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    routes: int = 0
    index_unchanged: bool = False
    log_verifies: bool = False
    web_kills: int = 0
    web_kill_log_verifies: int = 0

    def summary(self) -> str:
        return (
            f"requests: {self.requests}, status 500: {len(self.server_errors)}, "
            f"protected data without a session: {len(self.unprotected)}, "
            f"dropped connections: {len(self.dropped)}"
        )

    @property
    def ok(self) -> bool:
        return (
            not self.server_errors
            and not self.unprotected
            and not self.dropped
            and self.index_unchanged
            and self.log_verifies
        )


class Client:
    """One keep-alive TLS connection to the server (reopened after an error)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.context = ssl.create_default_context()
        self.context.check_hostname, self.context.verify_mode = False, ssl.CERT_NONE
        self.cookie = ""
        self.cookies: dict[str, str] = {}
        self._conn: http.client.HTTPSConnection | None = None

    def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict, bytes]:
        headers = dict(headers or {})
        if self.cookie:
            headers["Cookie"] = self.cookie
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPSConnection(
                    "127.0.0.1", self.port, context=self.context, timeout=30
                )
            try:
                self._conn.request(method, target, body=body, headers=headers)
                response = self._conn.getresponse()
                if response.getheader("Content-Type", "").startswith("text/event-stream"):
                    # a live event stream runs for a minute: its status and headers are what
                    # the fuzz judges, so hang up instead of waiting for its end
                    status, got_headers = response.status, dict(response.getheaders())
                    self.close()
                    return status, got_headers, b""
                data = response.read()
                for name, value in response.getheaders():
                    if name.lower() == "set-cookie":
                        key, _eq, rest = value.split(";", 1)[0].partition("=")
                        self.cookies[key] = rest
                self.cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items() if v)
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return response.status, dict(response.getheaders()), data
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def csrf_token(html: bytes) -> str:
    match = re.search(rb'name="csrf_token" value="([^"]+)"', html)
    return match.group(1).decode() if match else ""


def unlock(client: Client) -> str:
    """Log in with the passphrase; return the session's CSRF token."""
    _status, _headers, page = client.request("GET", "/unlock")
    token = csrf_token(page)
    body = urllib.parse.urlencode({"csrf_token": token, "passphrase": PASSPHRASE, "next": "/"})
    status, _headers, _page = client.request(
        "POST",
        "/unlock",
        body.encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    if status not in (302, 303):
        raise AssertionError(f"unlock failed: {status}")
    _status, _headers, page = client.request("GET", "/settings")
    return csrf_token(page) or token


def prepare(work: Path) -> tuple[Path, Path, list[tuple[str, list[str], bool, str]], dict]:
    """A data dir with keys (doorbell init), two real clips, a config; the app's routes."""
    data_dir = work / "data"
    passphrase_file = work / "passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n")
    passphrase_file.chmod(0o600)
    port = _free_port()
    config = work / "doorbell.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{data_dir}"\nmin_free_gb = 0.0\n'
        f'[web]\nbind = "127.0.0.1"\nport = {port}\n'
        f'[live]\nsocket_path = "{work / "live.sock"}"\n'
        "[camera]\nwidth = 320\nheight = 240\nlores_width = 160\nlores_height = 120\n"
        "realtime = false\n"
    )
    init = start_doorbell(
        "init",
        "--config",
        str(config),
        "--passphrase-file",
        str(passphrase_file),
        "--owner-key-work-factor",
        "10",
        stderr=subprocess.PIPE,
    )  # a short command: a pipe is fine
    _out, err = init.communicate(timeout=120)
    if init.returncode != 0:
        raise AssertionError(f"doorbell init failed: {err}")
    _record_clips(data_dir, config)
    from doorbell.config import load_config
    from doorbell.ui import close_app, create_app
    from doorbell.ui.guard import is_public

    # an app only to list its routes: closed again, or its sweeper threads keep the process
    # from exiting (CI once printed "1042 passed" and then never ended)
    app = create_app(load_config(config))
    routes = []
    try:
        with app.app_context():
            for rule in app.url_map.iter_rules():
                methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
                routes.append((rule.rule, methods, is_public(rule.endpoint), rule.endpoint))
    finally:
        close_app(app)
    from doorbell.store import Store

    with Store.open(data_dir) as store:
        ids = {"clip_id": [c.id for c in store.clips()]}
    return config, data_dir, routes, {"port": port, **ids}


def _record_clips(data_dir: Path, config_path: Path) -> None:
    from doorbell.age.recipients import parse_recipients_file
    from doorbell.audit.devicekey import load_device_signer
    from doorbell.audit.log import AuditLog
    from doorbell.config import load_config
    from doorbell.recorder.pipeline import Recorder
    from doorbell.store import Store

    config = load_config(config_path)
    with (
        AuditLog.open(data_dir, signer=load_device_signer(data_dir / "keys")) as audit,
        Store.open(data_dir) as store,
    ):
        Recorder(
            config,
            camera_factory=lambda: IndexCamera(150),
            detector=ScriptedMotion(set(range(20, 40)) | set(range(90, 110))),
            store=store,
            audit=audit,
            recipients=parse_recipients_file(data_dir / "keys" / "owner.recipients"),
        ).run()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def snapshot(data_dir: Path) -> dict[str, str]:
    """Hashes of every clip and thumbnail file and of the clips table: what must not change."""
    files = {
        str(p.relative_to(data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for sub in ("clips", "thumbs")
        if (data_dir / sub).exists()
        for p in sorted((data_dir / sub).rglob("*"))
        if p.is_file()
    }
    from stress_helpers import index_rows

    files["index"] = hashlib.sha256(
        json.dumps(sorted(index_rows(data_dir), key=lambda r: r["id"]), default=str).encode()
    ).hexdigest()
    return files


def requests_strategy(routes, ids):
    def fill(rule: str, draw) -> str:
        def value(match: re.Match) -> str:
            name = match.group(1).split(":")[-1]
            choices = ids.get(name, []) + HOSTILE
            return urllib.parse.quote(
                draw(st.one_of(st.sampled_from(choices), st.text(max_size=30))), safe=""
            )

        return re.sub(r"<([^>]+)>", value, rule)

    @st.composite
    def one(draw):
        rule, methods, public, endpoint = draw(st.sampled_from(routes))
        method = draw(
            st.one_of(
                st.sampled_from(methods), st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"])
            )
        )
        path = fill(rule, draw)
        query = draw(
            st.dictionaries(
                st.one_of(st.sampled_from(QUERY_KEYS), st.text(max_size=8)),
                st.one_of(st.sampled_from(HOSTILE), st.text(max_size=20), st.integers().map(str)),
                max_size=4,
            )
        )
        target = path + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = {}
        if draw(st.booleans()):
            headers["Range"] = draw(
                st.one_of(
                    st.sampled_from(
                        [
                            "bytes=0-",
                            "bytes=-1",
                            "bytes=5-2",
                            "bytes=0-0,5-9",
                            "bytes=99999999999-",
                            "bytes=abc",
                            "items=0-1",
                            "bytes=-0",
                        ]
                    ),
                    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20).map(
                        lambda t: "bytes=" + t
                    ),
                )
            )
        form = draw(
            st.dictionaries(
                st.one_of(st.sampled_from(FORM_KEYS), st.text(max_size=8)),
                st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40)),
                max_size=5,
            )
        )
        body = None
        if method != "GET":
            headers["Content-Type"] = draw(
                st.sampled_from(
                    [
                        "application/x-www-form-urlencoded",
                        "multipart/form-data; boundary=x",
                        "application/json",
                        "text/plain",
                    ]
                )
            )
            body = urllib.parse.urlencode(form).encode()
        with_session = draw(st.booleans())
        use_csrf = draw(st.booleans())
        return method, target, headers, body, with_session, use_csrf, public, endpoint

    return one()


def run_fuzz(work: Path, *, requests: int, log=print, kill_web: int = 3) -> FuzzReport:
    config, data_dir, routes, ids = prepare(work)
    port = ids.pop("port")
    report = FuzzReport(routes=len(routes))
    before = snapshot(data_dir)
    web = start_doorbell("web", "--config", str(config))
    try:
        _wait_listening(port, web)
        owner, anonymous = Client(port), Client(port)
        token = unlock(owner)

        @settings(
            max_examples=requests,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(requests_strategy(routes, ids))
        def fuzz(drawn) -> None:
            method, target, headers, body, with_session, use_csrf, public, endpoint = drawn
            client = owner if with_session else anonymous
            if with_session and use_csrf and body is not None:
                body = body + b"&" + urllib.parse.urlencode({"csrf_token": token}).encode()
            if with_session and target.startswith("/lock"):
                return  # the owner stays logged in (lock is fuzzed without a session)
            report.requests += 1
            try:
                status, _headers, _data = client.request(method, target, body, headers)
            except (http.client.HTTPException, OSError) as error:
                report.dropped.append(f"{method} {target[:120]}: {error}")
                return
            report.statuses[status] += 1
            if status == 500:  # an unhandled error; 503 (no live feed, busy) is deliberate
                report.server_errors.append(f"{status} {method} {target[:200]}")
            if not with_session and not public and 200 <= status < 300:
                report.unprotected.append(f"{status} {method} {target[:200]} ({endpoint})")

        fuzz()
        owner.close()
        anonymous.close()
        for _ in range(kill_web):
            web = _kill_web_mid_login(config, data_dir, port, web, report)
        web.terminate()
        web.communicate(timeout=30)
    finally:
        kill_hard(web)
    report.index_unchanged = snapshot(data_dir) == before
    report.log_verifies = verify_data_dir(data_dir).ok
    log(report.summary())
    return report


def _wait_listening(port: int, process) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"doorbell web exited {process.returncode}: {stderr_tail(process)}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("doorbell web did not listen")


def _kill_web_mid_login(config: Path, data_dir: Path, port: int, web, report: FuzzReport):
    """kill -9 the web process while a login and clip views are in flight; restart it."""
    import threading

    def views() -> None:
        client = Client(port)
        try:
            unlock(client)
            for _ in range(50):
                client.request("GET", "/timeline")
        except (AssertionError, OSError, http.client.HTTPException):
            pass  # the server died under us: that is the point
        finally:
            client.close()

    thread = threading.Thread(target=views, name="views")
    thread.start()
    time.sleep(0.3)
    kill_hard(web)
    thread.join(60)
    report.web_kills += 1
    if verify_data_dir(data_dir).ok:
        report.web_kill_log_verifies += 1
    web = start_doorbell("web", "--config", str(config))
    _wait_listening(port, web)
    return web


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "httpfuzz.json")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="doorbell-httpfuzz-") as scratch:
        report = run_fuzz(Path(scratch), requests=args.requests)
    print(f"routes: {report.routes}, statuses: {dict(sorted(report.statuses.items()))}")
    print(
        f"web kill -9 during login/views: {report.web_kills}, "
        f"log verifies after: {report.web_kill_log_verifies}/{report.web_kills}"
    )
    print(
        f"index and clips unchanged: {report.index_unchanged}, "
        f"audit log verifies: {report.log_verifies}"
    )
    for finding in [*report.server_errors, *report.unprotected, *report.dropped][:20]:
        print("  !", finding)
    print(report.summary(), f"({time.monotonic() - started:.0f} s)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(vars(report), default=str, indent=2) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
