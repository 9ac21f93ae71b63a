"""The passphrase gate's rules on an injected clock (issue 17, finding 2)."""

from __future__ import annotations

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
