"""The demo on a real terminal (a pty), as a newcomer meets it: early Enter, rings at every
start-up moment, a quiet terminal while browsing, Ctrl-C in every state, a port in use."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from demo_helpers import BANNER_END, Browser, DemoOnATerminal, audit_actions, free_port

from doorbell.commands.demo_processes import read_notifications, start_child

SMALL = ("--width", "320", "--height", "240", "--fps", "5")


def _doorbell(*args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; from doorbell.cli import main; sys.exit(main())",
        *args,
    ]


def test_enter_at_every_start_up_moment_never_kills_the_demo(tmp_path: Path) -> None:
    """The issue's `(printf '\\n'; sleep 30) | script ... scripts/demo` on a pty, and worse:
    Enter every 20 ms from the first instant until the banner, then one ring that counts."""
    demo = DemoOnATerminal("--data-dir", str(tmp_path / "demo"), "--port", str(free_port()), *SMALL)
    try:
        while BANNER_END not in demo.output:
            if demo.process.poll() is not None:
                raise AssertionError(f"demo died ({demo.process.returncode}):\n{demo.output}")
            demo.type("\n")
            time.sleep(0.02)
        before_banner = demo.output.split("doorbell demo running")[0]
        assert "ding dong" not in before_banner, "input typed before the demo was up rang"
        time.sleep(0.5)
        demo.type("\n")
        demo.wait_for("ding dong")
        demo.type("i\n")
        demo.wait_for(BANNER_END, count=2)  # shown again on request
        demo.ctrl_c()
        assert demo.wait(10) == 0, demo.output
    finally:
        demo.close()
    assert "demo: stopped cleanly" in demo.output
    assert "Traceback" not in demo.output
    assert "'recorder': -" not in demo.output  # killed by a signal (-10: SIGUSR1's default)
    rings = [e for e in audit_actions(tmp_path / "demo") if "ring" in str(e["action"])]
    assert rings, "the ring after the banner reached the recorder"


def test_a_ring_signal_at_every_start_up_moment_is_held_not_fatal(tmp_path: Path) -> None:
    """SIGUSR1 every 5 ms from the instant of spawn until READY=1: the recorder survives
    (before its handler exists the signal is blocked, so it waits instead of killing)."""
    demo = tmp_path / "demo"
    subprocess.run(
        _doorbell("demo", "--data-dir", str(demo), "--seconds", "0", "--no-web", *SMALL),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=True,
        timeout=120,
    )  # keys and config, once
    child = start_child("recorder", _doorbell("recorder", "--config", str(demo / "doorbell.toml")))
    sent = 0
    try:
        deadline = time.monotonic() + 120
        while not child.ready:
            assert child.process.poll() is None, f"recorder died: {child.process.returncode}"
            assert time.monotonic() < deadline, "recorder not ready in 120 s"
            child.process.send_signal(signal.SIGUSR1)
            sent += 1
            read_notifications([child], 0.005)
        child.process.send_signal(signal.SIGUSR1)  # and once more when up
        time.sleep(0.5)
    finally:
        child.process.send_signal(signal.SIGTERM)
        code = child.process.wait(timeout=20)
        child.notify.close()
    assert sent > 10, "the start-up took long enough to be probed many times"
    assert code == 0, f"recorder exited {code} after {sent} early rings"


def _aborted_handshakes(port: int) -> None:
    """What a browser does over a self-signed certificate: refuse it mid-handshake; and a
    connection closed before any TLS at all."""
    verifying = ssl.create_default_context()
    for _ in range(3):
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            pytest.raises(ssl.SSLCertVerificationError),
        ):
            verifying.wrap_socket(raw, server_hostname="127.0.0.1")
    for _ in range(2):
        socket.create_connection(("127.0.0.1", port), timeout=10).close()


def test_browsing_leaves_a_quiet_terminal_and_ctrl_c_with_live_viewers_stops_in_5_s(
    tmp_path: Path,
) -> None:
    data_dir, port = tmp_path / "demo", free_port()
    demo = DemoOnATerminal("--data-dir", str(data_dir), "--port", str(port), *SMALL)
    open_streams = []
    try:
        demo.wait_for(BANNER_END)
        _aborted_handshakes(port)
        browser = Browser(port)
        browser.unlock((data_dir / "DEMO-PASSPHRASE.txt").read_text().strip())
        assert browser.request("GET", "/live")[0] == 200
        # leave mid-stream: the event stream and a frame long poll, dropped without goodbye
        for _ in range(2):
            stream, first = browser.open_stream("/live/events")
            assert b"retry" in first
            stream.close()
            browser.open_wait("/live/frame.jpg?after=999999999").close()
        time.sleep(2.5)  # the server writes keep-alives into the dropped streams
        # still watching when Ctrl-C comes: an event stream and a waiting frame poll
        open_streams.append(browser.open_stream("/live/events")[0])
        open_streams.append(browser.open_wait("/live/frame.jpg?after=999999999"))
        time.sleep(0.5)
        quiet_part = demo.output
        started = time.monotonic()
        demo.ctrl_c()
        code = demo.wait(10)
        took = time.monotonic() - started
    finally:
        for stream in open_streams:
            stream.close()
        demo.close()
    assert quiet_part.count("Traceback") == 0, quiet_part
    assert "Error" not in quiet_part and "SSL" not in quiet_part, quiet_part
    assert quiet_part.rstrip().endswith(BANNER_END), "the banner is the last thing printed"
    assert code == 0, demo.output
    assert took < 5.0, f"Ctrl-C took {took:.1f} s"
    assert "did not stop" not in demo.output and "demo: stopped cleanly" in demo.output
    locked = [e for e in audit_actions(data_dir) if e["action"] == "web.locked"]
    assert [e["details"] for e in locked] == [{"reason": "shutdown"}]


def test_ctrl_c_while_starting_stops_both_within_5_s(tmp_path: Path) -> None:
    demo = DemoOnATerminal("--data-dir", str(tmp_path / "demo"), "--port", str(free_port()), *SMALL)
    try:
        demo.wait_for("demo: starting the recorder and the web UI")
        started = time.monotonic()
        demo.ctrl_c()
        code = demo.wait(10)
        took = time.monotonic() - started
    finally:
        demo.close()
    assert took < 5.0, f"Ctrl-C took {took:.1f} s:\n{demo.output}"
    assert code == 0, demo.output
    assert "Traceback" not in demo.output and "demo: stopped cleanly" in demo.output


def test_a_port_in_use_is_one_line_before_anything_runs(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            _doorbell("demo", "--data-dir", str(tmp_path / "demo"), "--port", str(port)),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.strip().count("\n") == 0, output  # one line
    assert f"port {port}" in output and "--port" in output
    assert "running" not in output and "Traceback" not in output
    assert not (tmp_path / "demo").exists(), "nothing was created or started"


def test_ctrl_c_with_a_paused_video_and_a_bundle_building_stops_in_5_s(tmp_path: Path) -> None:
    import re
    from datetime import UTC, datetime, timedelta
    from urllib.parse import urlencode

    data_dir, port = tmp_path / "demo", free_port()
    demo = DemoOnATerminal("--data-dir", str(data_dir), "--port", str(port), *SMALL)
    paused = None
    try:
        demo.wait_for(BANNER_END)
        browser = Browser(port)
        browser.unlock((data_dir / "DEMO-PASSPHRASE.txt").read_text().strip())
        demo.type("\n")  # a ring: a clip within seconds
        deadline = time.monotonic() + 60
        while not (
            clips := re.findall(rb"/clips/([\w-]+)", browser.request("GET", "/timeline")[1])
        ):
            assert time.monotonic() < deadline, "no clip in 60 s"
            time.sleep(1)
        clip_id = clips[0].decode()
        # a paused video: the response started, the player stopped reading
        paused = browser.open_wait(f"/clips/{clip_id}/video")
        assert paused.recv(64).startswith(b"HTTP/1.1 200")
        # a self-export (once a clip is sealed): the build waits for a signed checkpoint
        now = datetime.now(UTC)
        window = {
            "window_start": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
            "window_end": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        }
        while True:
            page = browser.request("GET", "/exports")[1]
            token = re.search(rb'name="csrf_token" value="([^"]+)"', page)
            assert token is not None
            form = {"csrf_token": token.group(1).decode(), **window}
            status, answer = browser.request("POST", "/exports/self", urlencode(form))
            if status == 302:
                break
            assert b"choose at least one clip" in answer, answer[-500:]
            assert time.monotonic() < deadline, "no sealed clip in 60 s"
            time.sleep(1)
        started = time.monotonic()
        demo.ctrl_c()
        code = demo.wait(10)
        took = time.monotonic() - started
    finally:
        if paused is not None:
            paused.close()
        demo.close()
    assert code == 0, demo.output
    assert took < 5.0, f"Ctrl-C took {took:.1f} s:\n{demo.output}"
    assert "Traceback" not in demo.output
    actions = audit_actions(data_dir)
    assert [e["details"] for e in actions if e["action"] == "web.locked"] == [
        {"reason": "shutdown"}
    ]
    built = [e for e in actions if e["action"] in ("export.bundle_ready", "export.bundle_failed")]
    assert built, "the bundle either finished or was stopped, audited either way"


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(part) for part in text.split()]


def test_children_die_with_a_demo_killed_outright(tmp_path: Path) -> None:
    """SIGKILL to the demo (a closed terminal, an OOM kill): no recorder or web server is left
    running behind it (they sit in their own process groups, so nothing else would stop them)."""
    demo = DemoOnATerminal("--data-dir", str(tmp_path / "demo"), "--port", str(free_port()), *SMALL)
    try:
        demo.wait_for(BANNER_END)
        children = _children(demo.process.pid)
        assert len(children) == 2, demo.output
        demo.process.kill()
        demo.process.wait()
        deadline = time.monotonic() + 10
        alive = children
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)
            alive = [pid for pid in children if _running(pid)]
    finally:
        demo.close()
    assert alive == [], f"children {alive} outlived the demo"


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
