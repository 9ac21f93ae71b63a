"""HTTP fuzz of a running `doorbell web` (CI size; the long run is tests/soak/httpfuzz.py)."""

from __future__ import annotations

from pathlib import Path

from soak.httpfuzz import run_fuzz


def test_fuzzed_requests_never_500_never_leak_and_change_nothing(tmp_path: Path) -> None:
    report = run_fuzz(tmp_path, requests=1000, log=lambda _line: None, kill_web=2)
    findings = "\n".join([*report.server_errors, *report.unprotected, *report.dropped])
    assert report.requests >= 900, report.summary()
    assert report.server_errors == [], findings
    assert report.unprotected == [], findings
    assert report.dropped == [], findings
    assert report.index_unchanged, "no clip or index row was lost or overwritten"
    assert report.log_verifies
    assert report.web_kill_log_verifies == report.web_kills == 2, "kill -9 mid-login is safe"
    assert len(report.statuses) >= 4, f"the fuzz reached many code paths: {report.statuses}"
