"""Every check of the owner passphrase in the web UI goes through :func:`check_passphrase`.

Unlock, the step-up before approving an export, the old passphrase on the change form and
accepting the audit log as it is all run scrypt (2**18: 256 MiB, about 8 s on a Pi Zero 2 W). So:

- **One at a time, fairly.** :class:`doorbell.ui.unlockgate.PassphraseGate` runs one check
  at a time and queues the others in arrival order (one per address, a few in all,
  addresses that recently unlocked first), with a global failure budget: many addresses
  with one wrong try each cannot keep the owner's check from running (issue 17).
- **Throttled before, not after.** :meth:`UnlockThrottle.begin` counts the attempt as a
  failure *before* scrypt runs (a success clears it), so parallel requests from one address
  cannot all slip in under the same delay.
- **Rate-limited and audited, in summary.** A flat flask-limiter limit per address (shared
  by all paths, scope ``passphrase``); every refusal (busy, throttled, budget, rate limit)
  and every wrong passphrase goes to :class:`doorbell.ui.unlockgate.FailureLedger`: the
  first of a burst per address is audited at once, the rest as one entry with the count when
  the burst ends. Never one fsynced entry per request (a flood filled the disk).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import current_app
from flask_limiter.errors import RateLimitExceeded

from doorbell.errors import AgeError, KeyFileError, PassphraseError
from doorbell.ui.unlockgate import GateRefused

if TYPE_CHECKING:
    from doorbell.ui import WebState
    from doorbell.ui.vault import OwnerKeys

#: Longest passphrase accepted (longer is refused without running scrypt).
MAX_PASSPHRASE_CHARS = 1024


class PassphraseRefused(PassphraseError):
    """The check did not run: ``reason`` is "busy", "budget" or "throttled"; retry after
    ``retry_s``."""

    def __init__(self, message: str, reason: str, retry_s: float) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_s = retry_s


_REFUSALS = {
    "busy": "Too many passphrase checks are waiting. Try again in a moment.",
    "budget": (
        "Too many wrong passphrases on this network recently; this address must wait "
        "{wait} s. Try from a device that unlocked before."
    ),
}


def check_passphrase(
    state: WebState,
    passphrase: str,
    client: str,
    *,
    actor: str,
    failed_action: str,
    refused_action: str,
) -> OwnerKeys:
    """The owner keys if ``passphrase`` unlocks them.

    Raises :class:`PassphraseRefused` (busy, over the failure budget or throttled: nothing
    was checked), :class:`PassphraseError` (wrong passphrase), or flask-limiter's
    :class:`RateLimitExceeded`; all of them are counted in ``state.failure_ledger``
    (``failed_action`` / ``refused_action``).
    """
    rate = current_app.config.get("DOORBELL_UNLOCK_RATE", "10 per minute")

    def note(reason: str) -> None:
        state.failure_ledger.note(actor, failed_action, refused_action, client, reason)

    try:
        with state.limiter.limit(rate, scope="passphrase"):
            return _check(state, passphrase, client, note)
    except RateLimitExceeded:
        note("rate-limit")
        raise


def _check(state: WebState, passphrase: str, client: str, note: Callable[[str], None]) -> OwnerKeys:
    wait = state.throttle.wait_s(client)
    if wait > 0:  # cheap refusal before queueing
        note("throttled")
        message = f"Too many wrong passphrases. Wait {int(wait) + 1} s and try again."
        raise PassphraseRefused(message, "throttled", wait)
    try:
        key = state.passphrase_gate.acquire(client)
    except GateRefused as exc:
        note(exc.reason)
        message = _REFUSALS[exc.reason].format(wait=int(exc.retry_s) + 1)
        raise PassphraseRefused(message, exc.reason, exc.retry_s) from None
    outcome = "skipped"
    try:
        wait = state.throttle.begin(client)
        if wait > 0:
            note("throttled")
            message = f"Too many wrong passphrases. Wait {int(wait) + 1} s and try again."
            raise PassphraseRefused(message, "throttled", wait)
        try:
            if not passphrase or len(passphrase) > MAX_PASSPHRASE_CHARS:
                raise PassphraseError("empty or overlong passphrase")
            keys = state.vault.unlock(passphrase)
        except (PassphraseError, AgeError, KeyFileError) as exc:
            outcome = "wrong"
            note("wrong")
            raise PassphraseError("That passphrase did not unlock the owner key.") from exc
        state.throttle.succeeded(client)
        outcome = "unlocked"
        return keys
    finally:
        state.passphrase_gate.release(key, outcome)
