"""Where the live socket goes when the configuration keeps the default path.

The default ``live.socket_path`` is ``/run/doorbell/live.sock``: on an installed Pi,
tmpfiles.d creates ``/run/doorbell`` for both service users. A hobbyist running
``doorbell recorder --config my.toml`` by hand has no ``/run/doorbell``; instead of failing,
the socket then goes to the first of:

1. ``$RUNTIME_DIRECTORY`` (a systemd unit's own ``RuntimeDirectory=``),
2. ``$XDG_RUNTIME_DIR/doorbell`` (the logged-in user's private runtime directory),
3. ``<data_dir>/run`` (always there to be made).

A path set explicitly in the configuration is used as written. The recorder and the web UI
resolve the same way, so two processes of one user started the same way meet at the same
socket; ``doorbell doctor`` says which place was chosen and why.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from doorbell.config import Config, LiveConfig

#: The configured default, and the directory tmpfiles.d makes for it.
DEFAULT_SOCKET_PATH = Path(LiveConfig().socket_path)
SOCKET_NAME = DEFAULT_SOCKET_PATH.name


@dataclass(frozen=True)
class LiveSocketPlace:
    """The live socket's path and a short reason a person can read (``doctor``)."""

    path: Path
    reason: str
    #: True when the directory is ours to create (a fallback), False when it must exist.
    fallback: bool = False


def resolve_live_socket(
    config: Config,
    *,
    env: Mapping[str, str] | None = None,
    system_dir: Path = DEFAULT_SOCKET_PATH.parent,
) -> LiveSocketPlace:
    """Where the live socket of ``config`` is (see the module docstring for the order).

    ``env`` defaults to ``os.environ``; ``system_dir`` is ``/run/doorbell`` (injectable for
    tests). Reads the environment and checks one directory; creates nothing.
    """
    env = os.environ if env is None else env
    configured = Path(config.live.socket_path)
    if configured != DEFAULT_SOCKET_PATH:
        return LiveSocketPlace(configured, "live.socket_path in the configuration")
    if system_dir.is_dir():
        return LiveSocketPlace(
            system_dir / SOCKET_NAME, f"{system_dir} exists (made by tmpfiles.d)"
        )
    runtime = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime and Path(runtime).is_absolute():
        return LiveSocketPlace(
            Path(runtime) / SOCKET_NAME, f"$RUNTIME_DIRECTORY; {system_dir} is not there"
        )
    xdg = env.get("XDG_RUNTIME_DIR", "")
    if xdg and Path(xdg).is_absolute() and Path(xdg).is_dir():
        return LiveSocketPlace(
            Path(xdg) / "doorbell" / SOCKET_NAME,
            f"$XDG_RUNTIME_DIR/doorbell; {system_dir} is not there",
            fallback=True,
        )
    return LiveSocketPlace(
        config.data_dir / "run" / SOCKET_NAME,
        f"under the data dir; {system_dir} is not there, nor $XDG_RUNTIME_DIR",
        fallback=True,
    )


def prepare_live_socket_dir(place: LiveSocketPlace) -> None:
    """Create the directory of a fallback place (mode 0750), so the recorder can bind.

    The system directory and an explicitly configured one are left alone: if they are
    missing, :class:`doorbell.live.LivePublisher` says so.
    """
    if place.fallback:
        place.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
