"""Issue 17: a hostile device on the home network, nothing but HTTP(S) to a real
``doorbell web`` on loopback. Each test reproduces one attack from the issue and shows the
owner still gets in within a stated bound (see docs/web.md, "Under attack").

Source addresses are picked from 127.0.0.0/8 (all loopback on Linux), so "many addresses"
is real TCP from distinct peers, as IPv4 aliases on a LAN would be.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from stress_helpers import audit_entries
from web_attack_helpers import (
    Browser,
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


def _flood(port: int, sources: list[str], stop: threading.Event, counter: list[int]) -> None:
    index = 0
    while not stop.is_set():
        browser = Browser(port, sources[index % len(sources)], timeout_s=10)
        index += 1
        with contextlib.suppress(OSError, AssertionError):
            browser.unlock("not the passphrase")
        counter[0] += 1


# --- finding 1: refused unlocks must not grow the audit log per request ----------------------


def test_unlock_flood_from_one_address_adds_a_bounded_number_of_entries(web) -> None:
    process, data_dir = web
    before = len(audit_entries(data_dir))
    stop, counter = threading.Event(), [0]
    threads = [
        threading.Thread(target=_flood, args=(process.port, ["127.0.0.9"], stop, counter))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    time.sleep(8)
    stop.set()
    for thread in threads:
        thread.join(15)
    added = len(audit_entries(data_dir)) - before
    assert counter[0] >= 40, "the flood really ran"
    # before the fix: one fsynced entry per request (every refusal included)
    assert added <= 3, f"{counter[0]} wrong unlocks from one address added {added} entries"
    answer, elapsed = timed_unlock(process.port)
    assert unlocked(answer) and elapsed < NORMAL_UNLOCK_S


def test_a_burst_is_summarised_with_its_count_when_it_ends(tmp_path: Path) -> None:
    data_dir, config = make_site(tmp_path)
    process = start_web(config)
    try:
        browser = Browser(process.port, "127.0.0.7")
        for _ in range(6):
            browser.unlock("wrong guess")
    finally:
        process.stop()  # shutdown ends every burst
    summaries = [
        e
        for e in audit_entries(data_dir)
        if e["action"] in ("web.unlock_failed", "web.unlock_refused")
        and e["details"].get("client") == "127.0.0.7"
    ]
    assert sum(e["details"].get("count", 1) for e in summaries) == 6
    assert len(summaries) <= 2


# --- finding 2: many addresses, one wrong try each, must not lock the owner out --------------


def test_wrong_tries_from_many_addresses_do_not_refuse_the_owner(web) -> None:
    process, _ = web
    stop, counter = threading.Event(), [0]
    sources = [f"127.0.{n // 250 + 10}.{n % 250 + 1}" for n in range(400)]
    threads = [
        threading.Thread(target=_flood, args=(process.port, sources[i::6], stop, counter))
        for i in range(6)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        results = [timed_unlock(process.port, f"127.0.0.{n}") for n in (1, 2, 3)]
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    assert counter[0] > 20, "the attack really ran"
    for answer, elapsed in results:
        assert unlocked(answer), (answer.status, answer.body[-400:])
        assert elapsed < NORMAL_UNLOCK_S + 2.0


# --- finding 3: a flood of anonymous sessions must not evict the owner's ---------------------


def test_session_flood_does_not_evict_the_owners_unlock_form(web) -> None:
    process, _ = web
    owner = Browser(process.port)
    token = owner.form_token()
    for source in ("127.0.0.20", "127.0.0.21", "127.0.0.22"):
        connection = http.client.HTTPSConnection(
            "127.0.0.1", process.port, timeout=30, context=tls_context(), source_address=(source, 0)
        )
        with contextlib.closing(connection):
            for _ in range(200):  # keep-alive, no cookie: 200 new anonymous visitors each
                connection.request("GET", "/unlock", headers={"Host": "localhost"})
                connection.getresponse().read()
    started = time.monotonic()
    answer = owner.unlock(token=token)
    assert unlocked(answer), answer.body[-400:]
    assert time.monotonic() - started < NORMAL_UNLOCK_S


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


# --- finding 9: every Host header was served -------------------------------------------------


def test_only_configured_and_own_host_names_are_answered(tmp_path: Path) -> None:
    _, config = make_site(tmp_path, hosts=["doorbell.home"])
    process = start_web(config)
    try:
        for host in ("evil.example", "doorbell.home.evil.example", "10.9.9.9"):
            answer = Browser(process.port, host=host).request("GET", "/unlock")
            assert answer.status == 421, (host, answer.status)
            assert "set-cookie" not in answer.headers
        for host in ("doorbell.home", "localhost", "127.0.0.1", "[::1]"):
            answer = Browser(process.port, host=host).request("GET", "/unlock")
            assert answer.status == 200, (host, answer.status)
    finally:
        process.stop()


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost:8443", True),
        ("LOCALHOST.", True),
        ("127.0.0.1", True),
        ("[::1]:8443", True),
        ("doorbell.home:8443", True),
        ("evil.example", False),
        ("192.0.2.77", False),
        ("", False),
    ],
)
def test_host_allowed(host: str, allowed: bool) -> None:
    from doorbell.ui.guard import host_allowed

    assert host_allowed(host, ("doorbell.home",)) is allowed


def test_limits_count_an_ipv6_slash_64_as_one_address() -> None:
    from doorbell.webserver import ConnectionCounter, address_key

    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("192.0.2.7") != address_key("192.0.2.8")
    counter = ConnectionCounter(2)
    key = address_key("2001:db8:1:2::1")
    assert counter.admit(key) and counter.admit(key) and not counter.admit(key)
    counter.release(key)
    assert counter.admit(key)


# --- review finding: a request body trickled a byte at a time -------------------------------


def _slow_body(port: int, source: str, stop: threading.Event, opened: list[int]) -> None:
    """POST a form that announces 100,000 bytes, then send one byte every 2 s, forever."""
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
                    conn.sendall(
                        b"POST /unlock HTTP/1.1\r\nHost: localhost\r\n"
                        b"Content-Type: application/x-www-form-urlencoded\r\n"
                        b"Content-Length: 100000\r\n\r\npassphrase="
                    )
                    opened[0] += 1
                    while not stop.is_set():
                        stop.wait(2.0)
                        conn.sendall(b"a")
            except OSError:
                stop.wait(0.2)


def test_slow_request_bodies_do_not_hold_every_worker(web) -> None:
    """Review finding: only the headers had a deadline; a body trickled one byte per few
    seconds held its worker for ever (each byte reset the 30 s socket timeout), and three
    addresses with 8 connections each held all 24. Before the fix the owner's unlock timed
    out; now every request, body included, ends within REQUEST_DEADLINE_S."""
    from doorbell.commands.web import THREADS
    from doorbell.webserver import MAX_CONNECTIONS_PER_ADDRESS, REQUEST_DEADLINE_S

    process, _ = web
    stop, opened = threading.Event(), [0]
    sources = [f"127.0.0.{40 + n}" for n in range(-(-THREADS // MAX_CONNECTIONS_PER_ADDRESS))]
    threads = [
        threading.Thread(target=_slow_body, args=(process.port, source, stop, opened))
        for source in sources
        for _ in range(MAX_CONNECTIONS_PER_ADDRESS)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(4.0)
        browser = Browser(process.port, timeout_s=REQUEST_DEADLINE_S + 20)
        started = time.monotonic()
        try:
            answer = browser.unlock()
        except TimeoutError:
            answer = None
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    assert opened[0] >= THREADS, "the attack really ran (every worker held)"
    assert answer is not None, f"the owner's unlock timed out after {elapsed:.0f} s"
    assert unlocked(answer), (answer.status, answer.body[-400:])
    assert elapsed < REQUEST_DEADLINE_S + NORMAL_UNLOCK_S + 5.0
