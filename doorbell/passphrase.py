"""Owner passphrases: judge strength, generate one, read one safely.

Strength is estimated conservatively, without a dictionary download: the passphrase must be
at least 12 characters and reach :data:`MIN_BITS` by the smaller of two estimates:

- characters: length (runs of one repeated character and ascending/descending runs such as
  ``abcd`` or ``4321`` count as one character) times log2 of the alphabet actually used
  (lowercase 26, uppercase 26, digits 10, other 33);
- words: when it has 3 or more separated words, 11 bits per word (as if each came from a
  2048-word list an attacker knows), plus 3 bits per digit or symbol outside the words.

A short list of the most common passwords and the words "doorbell"/"password" are refused
outright. The generated passphrases are pronounceable pseudo-words (consonant-vowel
syllables) from the OS CSPRNG with an exact entropy, by default 5 words, about 83 bits.
Passphrases never travel in argv or the environment: they come from the terminal or from a
file only its owner can read.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from doorbell.errors import KeyFileError, PassphraseError

MIN_LENGTH = 12
MIN_BITS = 50
_CONSONANTS = "bdfghjklmnprstvz"
_VOWELS = "aeiou"
_COMMON = frozenset(
    {
        "password",
        "passw0rd",
        "123456789012",
        "qwertyuiop",
        "iloveyou",
        "letmein",
        "doorbell",
        "administrator",
        "correcthorsebatterystaple",
        "trustno1",
        "welcome",
    }
)
_WORD_SPLIT = re.compile(r"[\s\-_.,;:]+")


@dataclass(frozen=True)
class Strength:
    """The verdict on a passphrase: estimated bits, accepted or not, and why."""

    bits: float
    ok: bool
    reasons: tuple[str, ...]

    def explain(self) -> str:
        verdict = "strong enough" if self.ok else "too weak"
        detail = "; ".join(self.reasons)
        return f"estimated {self.bits:.0f} bits (need {MIN_BITS}): {verdict}" + (
            f" ({detail})" if detail else ""
        )


def _effective_length(text: str) -> int:
    count = 0
    previous: str | None = None
    step: int | None = None
    for char in text:
        if previous is not None:
            delta = ord(char) - ord(previous)
            if delta == 0 or (abs(delta) == 1 and step in (None, delta)):
                step = delta if delta else step
                previous = char
                continue
        step = None
        count += 1
        previous = char
    return count


def _alphabet(text: str) -> int:
    size = 0
    size += 26 if any(c.islower() for c in text) else 0
    size += 26 if any(c.isupper() for c in text) else 0
    size += 10 if any(c.isdigit() for c in text) else 0
    size += 33 if any(not c.isalnum() for c in text) else 0
    return max(size, 2)


def assess_passphrase(passphrase: str) -> Strength:
    """Estimate the strength of ``passphrase`` (see the module doc for the method)."""
    reasons = []
    char_bits = _effective_length(passphrase) * math.log2(_alphabet(passphrase))
    bits = char_bits
    words = [w for w in _WORD_SPLIT.split(passphrase.strip()) if w]
    if len(words) >= 3:
        extras = sum(1 for c in passphrase if not c.isalpha() and not _WORD_SPLIT.match(c))
        bits = min(bits, 11 * len(words) + 3 * extras)
    if len(passphrase) < MIN_LENGTH:
        reasons.append(f"shorter than {MIN_LENGTH} characters")
    squashed = re.sub(r"[^a-z0-9]", "", passphrase.lower())
    if squashed in _COMMON or any(w in squashed for w in ("doorbell", "password")):
        reasons.append("a common password or contains 'doorbell'/'password'")
        bits = min(bits, 10)
    if bits < MIN_BITS and not reasons:
        reasons.append("too predictable: use more words or more varied characters")
    return Strength(bits=bits, ok=not reasons, reasons=tuple(reasons))


def require_strong(passphrase: str) -> None:
    """Raise :class:`PassphraseError` explaining why ``passphrase`` is too weak."""
    strength = assess_passphrase(passphrase)
    if not strength.ok:
        raise PassphraseError(f"passphrase rejected: {strength.explain()}")


def generate_passphrase(words: int = 5) -> tuple[str, float]:
    """A random pronounceable passphrase and its exact entropy in bits.

    Each word is consonant-vowel + consonant-vowel-consonant (e.g. ``bakun``): 16*5 * 16*5*16
    = 102,400 choices, 16.6 bits per word.
    """

    def word() -> str:
        pick = secrets.choice
        return (
            pick(_CONSONANTS)
            + pick(_VOWELS)
            + pick(_CONSONANTS)
            + pick(_VOWELS)
            + pick(_CONSONANTS)
        )

    per_word = math.log2((len(_CONSONANTS) * len(_VOWELS)) ** 2 * len(_CONSONANTS))
    return "-".join(word() for _ in range(words)), per_word * words


def read_passphrase_file(path: Path) -> str:
    """The passphrase in ``path`` (its first line, without the line ending).

    The file must be a regular file owned by the current user and readable by nobody else
    (mode 0600 or stricter); otherwise :class:`KeyFileError` says how to fix it. An empty
    passphrase raises :class:`PassphraseError`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot open passphrase file: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{path}: passphrase file is not a regular file")
        if info.st_mode & 0o077:
            raise KeyFileError(
                f"{path}: passphrase file has mode {stat.S_IMODE(info.st_mode):04o}; it must be "
                f"readable by you only (run: chmod 600 {path})"
            )
        if info.st_uid != os.geteuid():
            raise KeyFileError(f"{path}: passphrase file belongs to another user")
        data = handle.read(4097)
    if len(data) > 4096:
        raise PassphraseError(f"{path}: passphrase file is larger than 4 KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PassphraseError(f"{path}: passphrase file is not UTF-8 text") from None
    passphrase = text.split("\n", 1)[0].removesuffix("\r")
    if not passphrase:
        raise PassphraseError(f"{path}: passphrase file is empty")
    return passphrase


def prompt_new_passphrase(
    getpass: Callable[[str], str], echo: Callable[[str], None], *, attempts: int = 3
) -> str:
    """Ask for a new passphrase on the terminal, twice, and judge it.

    Offers a generated passphrase first (Enter accepts it). ``getpass`` reads without echo
    (``getpass.getpass``); ``echo`` prints a line. Raises :class:`PassphraseError` after
    ``attempts`` failed tries.
    """
    for _ in range(attempts):
        suggestion, bits = generate_passphrase()
        echo(f"Suggested passphrase ({bits:.0f} bits, random): {suggestion}")
        echo("Press Enter to take it (write it down first), or type your own.")
        first = getpass("New passphrase: ") or suggestion
        strength = assess_passphrase(first)
        if not strength.ok:
            echo(f"Rejected: {strength.explain()}")
            continue
        echo(f"Strength: {strength.explain()}")
        if getpass("Type it again to confirm: ") != first:
            echo("The two entries differ; try again.")
            continue
        return first
    raise PassphraseError(f"no acceptable passphrase after {attempts} attempts")
