"""Run a command on a pseudo-terminal and answer its passphrase prompts (tests only).

The ``age`` CLI reads passphrases from the controlling terminal, never from stdin, so tests
drive it through :func:`pty.fork`. Data goes through files (``-o``), only prompts through
the terminal.
"""

from __future__ import annotations

import os
import pty
import select
import time


def run_with_tty(
    argv: list[str], answers: list[str], *, timeout_s: float = 60.0
) -> tuple[int, str]:
    """Run ``argv`` on a new pty; each time a prompt ending in ':' appears, type the next
    answer. Returns (exit code, everything the terminal showed)."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        try:
            os.execvp(argv[0], argv)  # noqa: S606 - fixed argv from the test
        finally:
            os._exit(127)
    shown = b""
    pending = list(answers)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                if pending and shown.rstrip().endswith(b":"):
                    os.write(fd, pending.pop(0).encode() + b"\n")
                    shown += b"\n"
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            shown += data
        else:
            os.kill(pid, 9)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode("utf-8", "replace")
