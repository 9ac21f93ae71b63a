"""Export requests as data: the fields, their strict validation, statuses and tokens.

Everything a requester types is untrusted. :func:`validate_request` turns raw strings (a web
form, CLI options) into a :class:`RequestFields` or raises :class:`RequestInvalid` listing
every problem at once (``problems``), each naming the field. Text is NFC-normalised and
stripped; control and format characters (including bidirectional overrides) are refused,
and every field has a length limit, so what the owner reads is what was sent.

Tokens (the requester's status/download token, invitation tokens) are 256-bit random
strings handed out once; only their SHA-256 is stored, so a copy of the database does not
let anyone download a bundle.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

from doorbell.errors import RequestError

#: Who asks. ``household``: someone living here; ``other``: anything else.
KINDS = ("police", "insurer", "neighbour", "household", "other")
#: On what basis. Anything but ``voluntary`` needs a reference (warrant or case number).
LEGAL_BASES = ("voluntary", "warrant", "subpoena", "court_order")
#: How the bundle is encrypted: to the requester's age recipient, or to a passphrase the
#: owner sets at approval and hands over out of band.
DELIVERIES = ("recipient", "passphrase")
#: Where a request came from.
SOURCES = ("invitation", "open_form", "owner", "self")

#: Lifecycle (see :mod:`doorbell.exports`): pending -> approved | denied | expired;
#: approved -> delivered (first download) -> closed (bundle expired, used up or deleted).
STATUSES = ("pending", "approved", "denied", "expired", "delivered", "closed")
#: Bundle file state of an approved request.
BUNDLE_STATES = ("none", "building", "ready", "failed", "deleted", "revoked")

LIMITS = {
    "requester": 120,
    "organisation": 120,
    "contact": 200,
    "legal_reference": 64,
    "reason": 2000,
    "recipient": 100,
    "deny_reason": 1000,
    "label": 120,
}
MIN_REASON_CHARS = 10
_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ./#:_()-]*")
_REQUEST_ID = re.compile(r"req-[0-9a-f]{12}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
_TIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")


class RequestInvalid(RequestError):
    """A request's fields do not validate; ``problems`` has one line per bad field."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = list(problems)


def new_request_id() -> str:
    """A fresh request id: ``req-`` and 12 random hex digits."""
    return f"req-{secrets.token_hex(6)}"


def is_request_id(text: str) -> bool:
    return bool(_REQUEST_ID.fullmatch(text or ""))


def new_token() -> str:
    """A fresh 256-bit URL-safe token (43 characters). Hand it out once; store its hash."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str | None:
    """SHA-256 (hex) of a well-formed token; None for anything that cannot be a token."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        return None
    return hashlib.sha256(token.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class RequestFields:
    """A validated request, as the requester (or the owner, for paper) stated it.

    ``window_start``/``window_end`` are UTC epoch seconds, start inclusive, end exclusive.
    ``recipient`` is the ``age1...`` string when ``delivery == "recipient"``, else None.
    """

    requester: str
    organisation: str
    contact: str
    kind: str
    legal_basis: str
    legal_reference: str
    window_start: float
    window_end: float
    reason: str
    delivery: str
    recipient: str | None


def clean_text(
    value: object,
    field: str,
    problems: list[str],
    *,
    required: bool = True,
    multiline: bool = False,
    minimum: int = 1,
) -> str:
    """One text field: NFC, stripped, no control/format characters, within its limit."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        problems.append(f"{field}: must be text")
        return ""
    text = unicodedata.normalize("NFC", value).strip()
    if multiline:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    limit = LIMITS[field]
    if len(text) > limit:
        problems.append(f"{field}: at most {limit} characters (got {len(text)})")
        return ""
    allowed = "\n\t" if multiline else ""
    for char in text:
        if char in allowed:
            continue
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            problems.append(
                f"{field}: contains a control or invisible character (U+{ord(char):04X})"
            )
            return ""
    if required and len(text) < minimum:
        problems.append(
            f"{field}: required" if minimum <= 1 else f"{field}: at least {minimum} characters"
        )
    return text


def parse_time(value: object, field: str, problems: list[str]) -> float | None:
    """A UTC time: epoch seconds (number), ISO 8601 with ``Z``/offset, or a naive
    ``YYYY-MM-DDTHH:MM[:SS]`` (as a browser's datetime-local sends), taken as UTC."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{field}: required (UTC, like 2026-01-02T15:04)")
        return None
    text = value.strip()
    if len(text) > 40:
        problems.append(f"{field}: not a time")
        return None
    for pattern in _TIME_FORMATS:
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        problems.append(f"{field}: {text!r} is not a time (want UTC, like 2026-01-02T15:04)")
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def check_recipient(text: str, problems: list[str]) -> str | None:
    """An ``age1...`` X25519 recipient, re-encoded canonically; appends a problem if not."""
    from doorbell.age.recipients import parse_recipient
    from doorbell.errors import AgeError

    try:
        return str(parse_recipient(text))
    except AgeError as exc:
        problems.append(f"recipient: not an age public key ({exc})")
    return None


def validate_request(
    raw: dict[str, object],
    *,
    now: float,
    max_window_s: float,
    delivery_choices: tuple[str, ...] = DELIVERIES,
) -> RequestFields:
    """Validate raw request fields; raise :class:`RequestInvalid` (``problems``) if any is bad.

    Keys: requester, organisation (optional), contact, kind, legal_basis, legal_reference
    (required unless voluntary), window_start, window_end, reason, delivery, recipient
    (required for delivery "recipient"). ``now`` (UTC epoch seconds) bounds the window: it
    must start in the past and span at most ``max_window_s`` seconds.
    """
    problems: list[str] = []
    unknown = sorted(
        set(raw)
        - {
            "requester",
            "organisation",
            "contact",
            "kind",
            "legal_basis",
            "legal_reference",
            "window_start",
            "window_end",
            "reason",
            "delivery",
            "recipient",
        }
    )
    if unknown:
        problems.append(f"unknown fields: {', '.join(unknown)[:200]}")
    requester = clean_text(raw.get("requester"), "requester", problems)
    organisation = clean_text(raw.get("organisation"), "organisation", problems, required=False)
    contact = clean_text(raw.get("contact"), "contact", problems, minimum=3)
    kind = raw.get("kind")
    if kind not in KINDS:
        problems.append(f"kind: one of {', '.join(KINDS)}")
    basis = raw.get("legal_basis")
    if basis not in LEGAL_BASES:
        problems.append(f"legal_basis: one of {', '.join(LEGAL_BASES)}")
    reference = clean_text(
        raw.get("legal_reference"),
        "legal_reference",
        problems,
        required=basis not in (None, "voluntary"),
    )
    if basis == "voluntary":
        reference = ""
    elif reference and not _REFERENCE.fullmatch(reference):
        problems.append("legal_reference: letters, digits, spaces and . / # : _ ( ) - only")
    start = parse_time(raw.get("window_start"), "window_start", problems)
    end = parse_time(raw.get("window_end"), "window_end", problems)
    if start is not None and end is not None:
        if end <= start:
            problems.append("window_end: must be after window_start")
        elif end - start > max_window_s:
            problems.append(f"window: at most {max_window_s / 86400:g} days long")
        if start >= now:
            problems.append("window_start: must be in the past")
    reason = clean_text(
        raw.get("reason"), "reason", problems, multiline=True, minimum=MIN_REASON_CHARS
    )
    delivery = raw.get("delivery")
    recipient: str | None = None
    if delivery not in delivery_choices:
        problems.append(f"delivery: one of {', '.join(delivery_choices)}")
    elif delivery == "recipient":
        text = clean_text(raw.get("recipient"), "recipient", problems)
        if text:
            recipient = check_recipient(text, problems)
    if problems:
        raise RequestInvalid("the request is not valid: " + "; ".join(problems), problems)
    return RequestFields(
        requester=requester,
        organisation=organisation,
        contact=contact,
        kind=str(kind),
        legal_basis=str(basis),
        legal_reference=reference,
        window_start=float(start),  # type: ignore[arg-type]
        window_end=float(end),  # type: ignore[arg-type]
        reason=reason,
        delivery=str(delivery),
        recipient=recipient,
    )


def format_time(timestamp: float | None) -> str:
    """UTC time for people: ``2026-01-02 15:04:05Z`` ('' for None)."""
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
