"""Who gets a passphrase check, in what order, and how failures reach the audit log.

Issue 17 found two ways a LAN device could hurt the owner through ``POST /unlock``:
every refused try was one fsynced audit entry (a flood filled the disk), and one wrong try
from each of many addresses kept the single scrypt check busy so that the owner's correct
passphrase was refused ("another check is running"). Here:

- :class:`PassphraseGate` queues checks **fairly** instead of refusing: one check runs at a
  time (scrypt costs 256 MiB), at most one per address waits (more from the same address are
  refused at once), in arrival order, addresses that recently unlocked first. At most
  :data:`MAX_WAITING` other addresses wait; addresses that recently unlocked have their own
  :data:`MAX_WAITING` places, so a queue full of strangers never refuses them, and they wait
  only for the check running and other recently unlocked addresses. A new address waits
  for at most ``MAX_WAITING`` checks, or is refused "busy" while the queue is full (see
  docs/web.md, "Under attack", for the bound in seconds).
- It keeps a **global failure budget**: once more than :data:`GLOBAL_FAILURE_BUDGET` wrong
  passphrases came from addresses that did not recently unlock within
  :data:`BUDGET_WINDOW_S`, an address that already failed within :data:`FAILURE_MEMORY_S`
  is refused without a check. A guesser gets one try per address per ``FAILURE_MEMORY_S``
  (IPv6 counts per /64); the owner's address, with no failure on record, still gets its
  check, and an address that unlocked recently is exempt. A check that waited
  :data:`MAX_WAIT_S` for its turn and gave up counts as a failure too (except for an
  address that recently unlocked), so holding a place in the queue is not free.
- :class:`FailureLedger` turns failures and refusals into **one audit entry at the start of
  a burst per address and one summary with the count when the burst ends** (quiet for
  :data:`BURST_QUIET_S`, or :data:`BURST_MAX_S` long, or at shutdown), never one per request.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from doorbell.webserver import address_key

#: Checks that may wait for their turn (each holds a server thread while it waits), counted
#: separately for addresses that recently unlocked and for all others.
MAX_WAITING = 8
#: Longest a check waits for its turn before it is refused as busy (seconds).
MAX_WAIT_S = 30.0
#: Wrong passphrases from not-recently-unlocked addresses tolerated per window.
GLOBAL_FAILURE_BUDGET = 20
BUDGET_WINDOW_S = 600.0
#: How long an address's last failure counts against it once the budget is spent.
FAILURE_MEMORY_S = 900.0
#: An address that unlocked within this long is exempt from the global budget.
RECENT_UNLOCK_S = 7 * 86_400.0
#: A burst of failures from one address ends after this long without one (seconds) ...
BURST_QUIET_S = 60.0
#: ... or after this long in all, so a steady trickle is still summarised regularly.
BURST_MAX_S = 600.0
#: Addresses tracked individually (memory bound); beyond, they are summed as "others".
MAX_TRACKED = 1024


class GateRefused(Exception):
    """No check was run: ``reason`` ("busy", "budget"), retry after ``retry_s`` seconds."""

    def __init__(self, reason: str, retry_s: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_s = retry_s


@dataclass
class _Ticket:
    key: str
    exempt: bool
    seq: int


class PassphraseGate:
    """Fair admission to the one passphrase check at a time (see the module doc)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._running = False
        self._waiting: list[_Ticket] = []
        self._seq = 0
        self._budget: deque[float] = deque()
        self._last_failure: OrderedDict[str, float] = OrderedDict()
        self._unlocked: OrderedDict[str, float] = OrderedDict()

    def exempt(self, key: str) -> bool:
        when = self._unlocked.get(key)
        return when is not None and self._clock() - when < RECENT_UNLOCK_S

    def _over_budget(self, now: float) -> bool:
        while self._budget and now - self._budget[0] > BUDGET_WINDOW_S:
            self._budget.popleft()
        return len(self._budget) >= GLOBAL_FAILURE_BUDGET

    def acquire(self, client: str) -> str:
        """Wait for this client's turn; return its address key. Raises :class:`GateRefused`."""
        key = address_key(client)
        with self._cond:
            now = self._clock()
            exempt = self.exempt(key)
            last = self._last_failure.get(key)
            if (
                not exempt
                and last is not None
                and now - last < FAILURE_MEMORY_S
                and self._over_budget(now)
            ):
                raise GateRefused("budget", FAILURE_MEMORY_S - (now - last))
            if any(t.key == key for t in self._waiting):
                raise GateRefused("busy", 2.0)
            # An address that recently unlocked is admitted beyond the cap (up to its own cap):
            # checked after the priority, else a full queue of strangers refused the owner.
            crowd = sum(1 for t in self._waiting if t.exempt == exempt)
            if crowd >= MAX_WAITING:
                raise GateRefused("busy", 2.0)
            self._seq += 1
            ticket = _Ticket(key, exempt, self._seq)
            self._waiting.append(ticket)
            deadline = now + MAX_WAIT_S
            try:
                while self._running or self._head() is not ticket:
                    left = deadline - self._clock()
                    if left <= 0:
                        if not exempt:  # else holding a place in the queue costs nothing
                            self._count_failure(key, self._clock())
                        raise GateRefused("busy", 2.0)
                    self._cond.wait(min(left, 1.0))
                self._running = True
            finally:
                self._waiting.remove(ticket)
                self._cond.notify_all()
        return key

    def _head(self) -> _Ticket | None:
        if not self._waiting:
            return None
        return min(self._waiting, key=lambda t: (not t.exempt, t.seq))

    def release(self, key: str, outcome: str) -> None:
        """The check of ``key`` is over (``outcome``: "unlocked", "wrong", or "skipped" when
        no passphrase was tried): record it and let the next check run."""
        with self._cond:
            now = self._clock()
            if outcome == "unlocked":
                self._remember(self._unlocked, key, now)
                self._last_failure.pop(key, None)
            elif outcome == "wrong":
                self._count_failure(key, now)
            self._running = False
            self._cond.notify_all()

    def _count_failure(self, key: str, now: float) -> None:
        self._remember(self._last_failure, key, now)
        if not self.exempt(key):
            self._budget.append(now)

    @staticmethod
    def _remember(table: OrderedDict[str, float], key: str, now: float) -> None:
        table[key] = now
        table.move_to_end(key)
        while len(table) > MAX_TRACKED * 4:
            table.popitem(last=False)


@dataclass
class _Burst:
    actor: str
    failed_action: str
    refused_action: str
    client: str
    first_at: float
    last_at: float
    #: monotonic times of the first and the latest event
    started: float
    touched: float
    failed: int = 0
    refused: int = 0
    reported: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class FailureLedger:
    """Wrong and refused passphrase checks, summarised per address and burst (module doc)."""

    def __init__(
        self,
        record: Callable[[str, str, str, dict[str, Any]], None],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self._record = record
        self._clock = clock
        self._wall_clock = wall_clock
        self._bursts: dict[tuple[str, str, str], _Burst] = {}
        self._lock = threading.Lock()

    def note(
        self, actor: str, failed_action: str, refused_action: str, client: str, reason: str
    ) -> None:
        """One wrong passphrase (``reason`` "wrong") or refusal (any other reason).

        The first of a burst is audited at once (the owner sees an attack start); the rest
        are counted for the summary. Raises what the audit log raises for that first entry.
        """
        now = self._clock()
        key = address_key(client)
        start: _Burst | None = None
        with self._lock:
            slot = (key, failed_action, actor)
            burst = self._bursts.get(slot)
            if burst is None and len(self._bursts) >= MAX_TRACKED:
                slot = ("others", failed_action, actor)
                burst = self._bursts.get(slot)
                key = "others"
            if burst is None:
                wall = self._wall_clock()
                burst = _Burst(actor, failed_action, refused_action, key, wall, wall, now, now)
                self._bursts[slot] = burst
                start = burst
            burst.last_at = self._wall_clock()
            burst.reasons[reason] = burst.reasons.get(reason, 0) + 1
            if reason == "wrong":
                burst.failed += 1
            else:
                burst.refused += 1
            burst.touched = now
            if start is None:
                return
            burst.reported = 1
        action = failed_action if reason == "wrong" else refused_action
        details: dict[str, Any] = {"client": key, "reason": reason, "count": 1, "burst": "start"}
        self._record(actor, action, "", details)

    def flush(self, *, everything: bool = False) -> int:
        """Write the summary of every burst that ended (all of them with ``everything``);
        return how many summaries were written."""
        now = self._clock()
        ended: list[_Burst] = []
        with self._lock:
            for slot, burst in list(self._bursts.items()):
                quiet = now - burst.touched >= BURST_QUIET_S
                long = now - burst.started >= BURST_MAX_S
                if everything or quiet or long:
                    del self._bursts[slot]
                    ended.append(burst)
        written = 0
        for burst in ended:
            rest = burst.failed + burst.refused - burst.reported
            if rest <= 0:
                continue
            action = burst.failed_action if burst.failed else burst.refused_action
            details: dict[str, Any] = {
                "client": burst.client,
                "count": rest,
                "burst": "end",
                "failed": burst.failed,
                "refused": burst.refused,
                "reasons": dict(sorted(burst.reasons.items())),
                "first_at": round(burst.first_at, 3),
                "last_at": round(burst.last_at, 3),
            }
            self._record(burst.actor, action, "", details)
            written += 1
        return written
