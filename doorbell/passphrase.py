"""Owner passphrases: judge strength, generate one, read one safely.

Strength is judged by zxcvbn (Dropbox's estimator, the ``zxcvbn`` package): it models
what guessers actually try (common passwords and words, l33t substitutions, keyboard
walks such as ``1qaz2wsx``, dates and years, repeats and sequences) and returns the
number of guesses a smart attacker needs. A passphrase must be at least 12 characters and
need at least 2**:data:`MIN_BITS` guesses; the owner is told why when it does not (zxcvbn's
warning and suggestions). Issue 17 listed ``P@ssw0rd12345``, ``Qwerty123456!``,
``Doorb3ll2024!``, ``1qaz2wsx3edc4rfv`` and ``Summer2024!Summer`` as accepted by the
character-class estimate used before; zxcvbn puts each below 2**34.

The generated passphrases are pronounceable pseudo-words (consonant-vowel syllables) from
the OS CSPRNG with an exact entropy, by default 5 words, about 83 bits. Passphrases never
travel in argv or the environment: they come from the terminal or from a file only its
owner can read.
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
#: zxcvbn guesses needed, log2. zxcvbn rates a random string at ~3.3 bits per character (it
#: cannot know it is random), so 44 admits 14 random characters; every issue-17 example
#: is below 34. At scrypt 2**18 (0.56 s per guess per x86 core) 2**44 guesses take ~300,000
#: core-years.
MIN_BITS = 44
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


#: Words zxcvbn treats as known to the attacker (the product is no secret).
_CONTEXT_WORDS = ["doorbell", "door", "bell", "camera", "raspberry", "pi", "password"]


def assess_passphrase(passphrase: str) -> Strength:
    """Estimate the strength of ``passphrase`` with zxcvbn (see the module doc)."""
    from zxcvbn import zxcvbn

    reasons: list[str] = []
    # zxcvbn's cost grows with length; past 100 characters the estimate only grows.
    result = zxcvbn(passphrase[:100], user_inputs=_CONTEXT_WORDS)
    bits = math.log2(max(float(result["guesses"]), 1.0))
    if len(passphrase) < MIN_LENGTH:
        reasons.append(f"shorter than {MIN_LENGTH} characters")
    squashed = re.sub(r"[^a-z0-9]", "", passphrase.lower())
    if squashed in _COMMON:
        reasons.append("a common password")
        bits = min(bits, 10)
    if bits < MIN_BITS:
        feedback = result.get("feedback") or {}
        warning = str(feedback.get("warning") or "").rstrip(".")
        if warning:
            reasons.append(warning[0].lower() + warning[1:])
        suggestions = [str(s).rstrip(".") for s in feedback.get("suggestions") or []]
        if suggestions:
            reasons.append("; ".join(s[0].lower() + s[1:] for s in suggestions if s))
        if not warning and not suggestions:
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
