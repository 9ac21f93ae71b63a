"""Issue 17: a hostile device on the home network, nothing but HTTP(S) to a real
``doorbell web`` on loopback. Each test reproduces one attack from the issue and shows the
owner still gets in within a stated bound (see docs/web.md, "Under attack").

Source addresses are picked from 127.0.0.0/8 (all loopback on Linux), so "many addresses"
is real TCP from distinct peers, as IPv4 aliases on a LAN would be.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from web_attack_helpers import (
    WebProcess,
    make_site,
    start_web,
    timed_unlock,
    tls_context,
    unlocked,
)

#: What "a normal unlock" may take on this loaded CI machine (scrypt 2^10 + TLS + audit).
NORMAL_UNLOCK_S = 3.0


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[WebProcess, Path]]:
    data_dir, config = make_site(tmp_path)
    process = start_web(config)
    try:
        yield process, data_dir
    finally:
        process.stop()


# --- finding 4: slowloris ----------------------------------------------------------------


def _trickle(port: int, source: str, stop: threading.Event, opened: list[int]) -> None:
    """Send a request's headers one line a second, forever."""
    while not stop.is_set():
        try:
            raw = socket.create_connection(
                ("127.0.0.1", port), timeout=5, source_address=(source, 0)
            )
        except OSError:
            stop.wait(0.2)
            continue
        with raw:
            try:
                with tls_context().wrap_socket(raw) as conn:
                    opened[0] += 1
                    conn.sendall(b"GET /unlock HTTP/1.1\r\nHost: localhost\r\n")
                    while not stop.is_set():
                        conn.sendall(b"X-a: b\r\n")
                        stop.wait(1.0)
            except OSError:
                stop.wait(0.2)


def _silent(port: int, source: str, stop: threading.Event) -> None:
    """Connect and never say anything (not even a TLS hello)."""
    while not stop.is_set():
        try:
            raw = socket.create_connection(
                ("127.0.0.1", port), timeout=1, source_address=(source, 0)
            )
        except OSError:
            stop.wait(0.2)
            continue
        with raw:
            while not stop.is_set():
                try:
                    if not raw.recv(1):
                        break
                except TimeoutError:
                    continue
                except OSError:
                    break


def test_slowloris_connections_do_not_make_the_ui_unreachable(web) -> None:
    process, _ = web
    stop, opened = threading.Event(), [0]
    threads = [
        threading.Thread(target=_trickle, args=(process.port, "127.0.0.30", stop, opened))
        for _ in range(30)
    ] + [
        threading.Thread(target=_silent, args=(process.port, "127.0.0.31", stop)) for _ in range(10)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(3.0)
        answer, elapsed = timed_unlock(process.port)
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    assert opened[0] >= 8, "the attack really ran (up to the per-address cap)"
    assert unlocked(answer)
    assert elapsed < NORMAL_UNLOCK_S + 2.0


# --- finding 5: one request with a huge header ---------------------------------------------


def test_a_huge_header_is_refused_without_growing_memory(web) -> None:
    process, _ = web
    before = process.rss_bytes()
    sent = 0
    chunk = b"a" * (1 << 20)
    raw = socket.create_connection(("127.0.0.1", process.port), timeout=10)
    with raw, tls_context().wrap_socket(raw) as conn:
        conn.sendall(b"GET /unlock HTTP/1.1\r\nHost: localhost\r\nX-Big: ")
        with contextlib.suppress(OSError):
            while sent < 200 << 20:
                conn.sendall(chunk)
                sent += len(chunk)
        grown = process.rss_bytes() - before
    assert sent < 8 << 20, f"the server read {sent >> 20} MiB of one header"
    assert grown < 32 << 20, f"the web process grew by {grown >> 20} MiB"
    answer, elapsed = timed_unlock(process.port)
    assert unlocked(answer) and elapsed < NORMAL_UNLOCK_S
