"""Every check of the owner passphrase in the web UI goes through :func:`check_passphrase`.

Unlock, the step-up before approving an export, the old passphrase on the change form and
accepting the audit log as it is all run scrypt (64 MiB, about 2 s on a Pi Zero 2 W). So:

- **One at a time.** A process-wide semaphore admits one passphrase check; a second one
  arriving meanwhile is refused at once with 429 (never queued: queued checks would each
  still cost 64 MiB when their turn came, and 24 server threads of them exhaust a Pi).
- **Throttled before, not after.** :meth:`UnlockThrottle.begin` counts the attempt as a
  failure *before* scrypt runs (a success clears it), so parallel requests from one address
  cannot all slip in under the same delay.
- **Rate-limited and audited.** A flat flask-limiter limit per address (shared by all
  paths, scope ``passphrase``); every refusal (busy, throttled, rate limit) and every wrong
  passphrase is an audit entry with the client address.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app
from flask_limiter.errors import RateLimitExceeded

from doorbell.errors import AgeError, KeyFileError, PassphraseError

if TYPE_CHECKING:
    from doorbell.ui import WebState
    from doorbell.ui.vault import OwnerKeys

#: Longest passphrase accepted (longer is refused without running scrypt).
MAX_PASSPHRASE_CHARS = 1024


class PassphraseRefused(PassphraseError):
    """The check did not run: ``reason`` is "busy" or "throttled"; retry after ``retry_s``."""

    def __init__(self, message: str, reason: str, retry_s: float) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_s = retry_s


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

    Raises :class:`PassphraseRefused` (busy or throttled: nothing was checked),
    :class:`PassphraseError` (wrong passphrase, counted and audited as ``failed_action``),
    or flask-limiter's :class:`RateLimitExceeded`; refusals are audited as
    ``refused_action``.
    """
    rate = current_app.config.get("DOORBELL_UNLOCK_RATE", "10 per minute")
    try:
        with state.limiter.limit(rate, scope="passphrase"):
            return _check(state, passphrase, client, actor, failed_action, refused_action)
    except RateLimitExceeded:
        state.record(actor, refused_action, "", {"client": client, "reason": "rate-limit"})
        raise


def _check(
    state: WebState,
    passphrase: str,
    client: str,
    actor: str,
    failed_action: str,
    refused_action: str,
) -> OwnerKeys:
    if not state.passphrase_gate.acquire(blocking=False):
        state.record(actor, refused_action, "", {"client": client, "reason": "busy"})
        raise PassphraseRefused("Another passphrase check is running. Try again.", "busy", 2.0)
    try:
        wait = state.throttle.begin(client)
        if wait > 0:
            state.record(actor, refused_action, "", {"client": client, "reason": "throttled"})
            message = f"Too many wrong passphrases. Wait {int(wait) + 1} s and try again."
            raise PassphraseRefused(message, "throttled", wait)
        try:
            if not passphrase or len(passphrase) > MAX_PASSPHRASE_CHARS:
                raise PassphraseError("empty or overlong passphrase")
            keys = state.vault.unlock(passphrase)
        except (PassphraseError, AgeError, KeyFileError) as exc:
            failures = state.throttle.failures(client)
            state.record(actor, failed_action, "", {"client": client, "failures": failures})
            raise PassphraseError("That passphrase did not unlock the owner key.") from exc
        state.throttle.succeeded(client)
        return keys
    finally:
        state.passphrase_gate.release()
