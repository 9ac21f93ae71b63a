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
