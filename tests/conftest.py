"""Shared fixtures and the CI rule for external tools and shared vectors.

Outside CI a test that needs a tool the machine lacks (the ``age`` CLI, chromium) or the shared
conformance vectors may skip, with the reason. Under ``CI=true`` it fails instead: CI installs
everything through ``scripts/install-test-deps``, so a missing tool there is a broken setup,
not a reason to go green.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VECTORS_DIR = PROJECT_ROOT.parent / "shared" / "vectors"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> NoReturn:
    """Skip outside CI, fail under CI=true."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: scripts/install-test-deps should have provided it)")
    pytest.skip(reason)


def require_tool(name: str) -> str:
    """Path of an external command, or skip/fail per the CI rule."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name!r} is not installed; run scripts/install-test-deps")
    return path


def vectors(*parts: str) -> Path:
    """A path inside ../shared/vectors, or skip/fail per the CI rule."""
    path = VECTORS_DIR.joinpath(*parts)
    if not path.exists():
        missing(f"shared conformance vectors not found at {path}")
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty data directory for one test."""
    path = tmp_path / "data"
    path.mkdir()
    return path


def _leftover_threads() -> list[str]:
    """Non-daemon threads still alive (each keeps the interpreter from exiting), with stacks."""
    import sys
    import threading
    import traceback

    frames = sys._current_frames()
    found = []
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon or not thread.is_alive():
            continue
        frame = frames.get(thread.ident or -1)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(no frame)\n"
        found.append(f"thread {thread.name!r}:\n{stack}")
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A test that leaves a non-daemon thread running hangs the run at exit: name it and fail.

    CI once printed "1042 passed" and then never exited; this turns such a leak into a failure
    that says which thread, instead of a timeout that says nothing.
    """
    import faulthandler
    import sys
    import time

    deadline = time.monotonic() + 10.0
    leftovers = _leftover_threads()
    while leftovers and time.monotonic() < deadline:
        time.sleep(0.2)
        leftovers = _leftover_threads()
    if leftovers:
        sys.stderr.write("\nconftest: non-daemon threads still running after the last test:\n")
        sys.stderr.write("\n".join(leftovers))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    # Whatever else holds the process at exit: dump every stack after 60 s and exit non-zero.
    faulthandler.dump_traceback_later(60.0, exit=True)
