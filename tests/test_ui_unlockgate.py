"""The passphrase gate's rules on an injected clock (issue 17, finding 2)."""

from __future__ import annotations

import threading
import time

import pytest
from ui_helpers import Clock

from doorbell.ui import unlockgate
from doorbell.ui.unlockgate import FailureLedger, GateRefused, PassphraseGate


def fail(gate: PassphraseGate, client: str) -> None:
    key = gate.acquire(client)
    gate.release(key, "wrong")


def test_over_the_budget_an_address_that_failed_is_refused_a_fresh_one_is_not() -> None:
    clock = Clock()
    gate = PassphraseGate(clock)
    for n in range(unlockgate.GLOBAL_FAILURE_BUDGET):
        fail(gate, f"192.0.2.{n}")
        clock.advance(1)
    with pytest.raises(GateRefused) as refused:
        gate.acquire("192.0.2.0")  # failed before, and the budget is spent: no check
    assert refused.value.reason == "budget"
    key = gate.acquire("192.0.2.200")  # the owner's phone, never failed: checked
    gate.release(key, "unlocked")
    fail(gate, "192.0.2.200")  # an address that unlocked is exempt from the budget
    gate.release(gate.acquire("192.0.2.200"), "unlocked")
    clock.advance(unlockgate.FAILURE_MEMORY_S + 1)
    gate.release(gate.acquire("192.0.2.0"), "wrong")  # memory expired: one more try


def test_ipv6_addresses_of_one_slash_64_are_one_address() -> None:
    clock = Clock()
    gate = PassphraseGate(clock)
    for n in range(unlockgate.GLOBAL_FAILURE_BUDGET):
        fail(gate, f"2001:db8:0:{n + 16:x}::1")
    fail(gate, "2001:db8:0:1::1")
    with pytest.raises(GateRefused):
        gate.acquire("2001:db8:0:1::ffff")


def test_a_burst_is_one_entry_at_its_start_and_one_summary_at_its_end() -> None:
    clock = Clock()
    written: list[tuple[str, str, dict]] = []
    ledger = FailureLedger(lambda a, action, o, d: written.append((a, action, d)), clock, clock)
    for _ in range(500):
        ledger.note("unknown", "web.unlock_failed", "web.unlock_refused", "192.0.2.9", "wrong")
        clock.advance(0.01)
    assert len(written) == 1 and written[0][2]["burst"] == "start"
    assert ledger.flush() == 0  # still going
    clock.advance(unlockgate.BURST_QUIET_S)
    assert ledger.flush() == 1
    assert written[-1][2]["count"] == 499 and written[-1][2]["failed"] == 500


def _wait_in_queue(gate: PassphraseGate, client: str, refused: list[str]) -> None:
    try:
        key = gate.acquire(client)
    except GateRefused as exc:
        refused.append(exc.reason)
        return
    gate.release(key, "wrong")


def _queued(gate: PassphraseGate, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(gate._waiting) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(gate._waiting)} checks queued, expected {count}")
        time.sleep(0.01)


def test_an_address_that_unlocked_is_admitted_when_others_fill_the_queue() -> None:
    """Review finding (gate.py): with one check running and MAX_WAITING others waiting, the
    owner's recently unlocked address was refused "busy" at once, before its priority
    counted. It must wait for the running check only."""
    clock = Clock()
    gate = PassphraseGate(clock)
    owner = "192.0.2.10"
    gate.release(gate.acquire(owner), "unlocked")
    running = gate.acquire("192.0.2.200")  # a long scrypt check by someone else
    refused: list[str] = []
    waiters = [
        threading.Thread(
            target=_wait_in_queue, args=(gate, f"192.0.2.{100 + n}", refused), daemon=True
        )
        for n in range(unlockgate.MAX_WAITING)
    ]
    for waiter in waiters:
        waiter.start()
    _queued(gate, unlockgate.MAX_WAITING)
    with pytest.raises(GateRefused):
        gate.acquire("192.0.2.99")  # a new address still finds the queue full
    owner_refused: list[str] = []
    owner_thread = threading.Thread(
        target=_wait_in_queue, args=(gate, owner, owner_refused), daemon=True
    )
    try:
        owner_thread.start()
        owner_thread.join(0.5)
        assert owner_refused == [], "the owner was refused at once (before the fix: busy)"
        _queued(gate, unlockgate.MAX_WAITING + 1)
        head = gate._head()  # who runs next is what is tested
        assert head is not None and head.key == owner
    finally:
        gate.release(running, "wrong")
        owner_thread.join(10)
        for waiter in waiters:
            waiter.join(10)
    assert owner_refused == []
    assert refused == [], "the others still had their turn"


def test_a_check_that_timed_out_waiting_counts_as_a_failure() -> None:
    """Review finding: a ticket that waited MAX_WAIT_S and gave up cost its address nothing,
    so strangers could hold the queue for free. It now counts as a wrong try (not for an
    address that recently unlocked, whose checks go first anyway)."""
    clock = Clock()
    gate = PassphraseGate(clock)
    for n in range(unlockgate.GLOBAL_FAILURE_BUDGET - 1):
        fail(gate, f"192.0.2.{n}")
    running = gate.acquire("192.0.2.200")
    refused: list[str] = []
    waiter = threading.Thread(
        target=_wait_in_queue, args=(gate, "192.0.2.150", refused), daemon=True
    )
    try:
        waiter.start()
        _queued(gate, 1)
        clock.advance(unlockgate.MAX_WAIT_S + 1)
        waiter.join(10)
    finally:
        gate.release(running, "unlocked")
    assert refused == ["busy"]
    with pytest.raises(GateRefused) as again:
        gate.acquire("192.0.2.150")  # its timeout spent the last of the budget
    assert again.value.reason == "budget"
