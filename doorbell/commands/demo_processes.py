"""The demo's two child processes: started safely, known to be serving, stopped in time.

* **Ready means ready.** Each child gets its own ``$NOTIFY_SOCKET`` (an abstract unix
  datagram socket the demo listens on), exactly as systemd would give it: the recorder says
  ``READY=1`` after the camera's first frame, the web UI once it listens. Nothing is
  announced as running before both have.
* **A ring cannot kill.** Children start with SIGUSR1 blocked (the mask survives exec), so
  a ring sent before the recorder installed its handler waits instead of taking the default
  action (terminate); the recorder unblocks it once its handler is in place.
* **Ctrl-C is the demo's.** Children run in their own process group with stdin closed: the
  terminal's SIGINT reaches only the demo, which stops both with SIGTERM and a deadline.
* **They never outlive the demo.** Each child asks the kernel for SIGTERM when the demo dies
  (``PR_SET_PDEATHSIG``), so a demo killed outright (SIGKILL, a closed terminal) leaves no
  recorder or web server running behind it.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from doorbell.errors import UsageError

#: Both children must have stopped this long after the stop began (then they are killed).
STOP_TIMEOUT_S = 4.5
#: Longest wait for a child's READY=1 (the first start builds the synthetic scene).
READY_TIMEOUT_S = 120.0


@dataclass
class Child:
    """One child process and the notify socket it reports readiness on."""

    name: str
    process: subprocess.Popen[bytes]
    notify: socket.socket
    ready: bool = False
    status: str = ""
    messages: list[str] = field(default_factory=list)


#: prctl(2) option: the signal this process gets when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the demo dies. Best effort off Linux."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _notify_socket(name: str) -> tuple[socket.socket, str]:
    """A datagram socket in the abstract namespace (no file) and its $NOTIFY_SOCKET value."""
    label = f"doorbell-demo-{os.getpid()}-{name}-{secrets.token_hex(4)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    sock.bind("\0" + label)
    sock.setblocking(False)
    return sock, "@" + label


def start_child(name: str, argv: list[str], env: Mapping[str, str] | None = None) -> Child:
    """Start ``argv`` with its own notify socket, SIGUSR1 blocked, its own process group,
    and SIGTERM when the demo dies."""
    sock, address = _notify_socket(name)
    child_env = dict(os.environ if env is None else env)
    child_env["NOTIFY_SOCKET"] = address
    for inherited in ("WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_PID", "LISTEN_FDS"):
        child_env.pop(inherited, None)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        process = subprocess.Popen(
            argv,
            env=child_env,
            stdin=subprocess.DEVNULL,
            process_group=0,
            preexec_fn=_die_with_parent,  # only prctl between fork and exec: no locks
        )
    except OSError:
        sock.close()
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return Child(name, process, sock)


def read_notifications(children: list[Child], timeout_s: float) -> None:
    """Wait up to ``timeout_s`` for notify datagrams and record READY=1 / STATUS=."""
    sockets = {child.notify: child for child in children}
    readable, _w, _x = select.select(list(sockets), [], [], max(0.0, timeout_s))
    for sock in readable:
        child = sockets[sock]
        while True:
            try:
                datagram = sock.recv(4096)
            except BlockingIOError:
                break
            for line in datagram.decode("utf-8", "replace").splitlines():
                child.messages.append(line)
                if line == "READY=1":
                    child.ready = True
                elif line.startswith("STATUS="):
                    child.status = line.removeprefix("STATUS=")


def wait_until_ready(
    children: list[Child],
    *,
    timeout_s: float = READY_TIMEOUT_S,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Return once every child said READY=1.

    Raises :class:`UsageError` naming the child that exited first (its own error message
    is already on the terminal) or that did not get ready in ``timeout_s``.
    """
    deadline = clock() + timeout_s
    while not all(child.ready for child in children):
        read_notifications(children, 0.2)
        for child in children:
            code = child.process.poll()
            if code is not None and not child.ready:
                raise UsageError(
                    f"the {child.name} stopped while starting (exit code {code}; "
                    "its message is above)"
                )
        if clock() > deadline:
            waiting = ", ".join(child.name for child in children if not child.ready)
            raise UsageError(f"{waiting} not ready after {timeout_s:.0f} s; stopping the demo")


def stop_children(children: list[Child], *, timeout_s: float = STOP_TIMEOUT_S) -> list[str]:
    """SIGTERM every child, wait up to ``timeout_s`` in all, kill what is left.

    Returns the names of the children that had to be killed. Closes the notify sockets.
    """
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    killed = []
    for child in children:
        try:
            child.process.wait(timeout=max(0.05, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            killed.append(child.name)
            child.process.kill()
            child.process.wait()
    for child in children:
        child.notify.close()
    return killed
