"""`doorbell doctor`: is this doorbell healthy? A list of checks, each pass, warn or fail.

Checks: configuration, camera delivers a frame, systemd units active, data-dir and key file
modes, where the live socket is (and why there), free space, clock synchronised, TLS
certificate and its fingerprint, audit log verifies, the off-site copy (last copied, bytes
behind, destination reachable), and no outbound connection held by a doorbell process except
to the configured copy. A check that cannot be made here (no systemd, no timedatectl) warns
instead of failing; any fail makes the command exit non-zero. Reads only; changes nothing,
decrypts nothing.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from doorbell.config import Config
from doorbell.datadir import DataDir
from doorbell.errors import DoorbellError

PASS, WARN, FAIL = "pass", "warn", "fail"
UNITS = ("doorbell-recorder.service", "doorbell-web.service")


def key_modes(paths: DataDir) -> dict[Path, int]:
    """Key files and the most permissive mode each may have."""
    return {
        paths.owner_key: 0o600,
        paths.device_key: 0o600,
        paths.tls_key: 0o600,
        paths.owner_recipients: 0o644,
        paths.device_vkey: 0o644,
        paths.tls_cert: 0o644,
    }


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str


def _run(argv: list[str]) -> subprocess.CompletedProcess[str] | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def check_camera(config: Config, *, timeout_s: float = 10.0) -> Check:
    """Open the configured camera and read one frame."""
    from doorbell.camera import open_camera

    camera = config.camera
    if camera.backend == "picamera2":
        # Opening the camera would fail while the recorder holds it, and only camera/picam.py
        # may import picamera2: ask libcamera's own tool instead (unverified on hardware).
        for tool in ("rpicam-hello", "libcamera-hello"):
            listed = _run([tool, "--list-cameras"])
            if listed is not None:
                found = [line for line in listed.stdout.splitlines() if line[:1].isdigit()]
                if found:
                    return Check("camera", PASS, f"{len(found)} camera(s): {found[0].strip()}")
                return Check(
                    "camera", FAIL, "no camera detected (check the ribbon cable, config.txt)"
                )
        return Check("camera", WARN, "rpicam-hello not installed; camera detection not checked")
    started = time.monotonic()
    try:
        with open_camera(camera) as opened:
            frame = opened.read()
    except DoorbellError as error:
        return Check("camera", FAIL, f"{camera.backend}: {error}")
    took = time.monotonic() - started
    if took > timeout_s:
        return Check("camera", WARN, f"first frame took {took:.1f} s")
    height, width = frame.main.shape[:2]
    return Check("camera", PASS, f"{camera.backend} camera delivers {width}x{height} frames")


def check_units() -> Check:
    """Both systemd units active (warns where systemd is not running this machine)."""
    if not Path("/run/systemd/system").is_dir():
        return Check("services", WARN, "systemd is not running here; units not checked")
    result = _run(["systemctl", "is-active", *UNITS])
    if result is None:
        return Check("services", WARN, "systemctl not available; units not checked")
    states = result.stdout.split()
    pairs = ", ".join(
        f"{unit.removesuffix('.service')} {state}"
        for unit, state in zip(UNITS, states, strict=False)
    )
    ok = len(states) == len(UNITS) and all(s == "active" for s in states)
    return Check("services", PASS if ok else FAIL, pairs or result.stderr.strip())


def check_modes(data_dir: Path) -> Check:
    """Key files exist and are no more readable than the design allows; no world access."""
    problems = []
    for path, most in key_modes(DataDir(data_dir)).items():
        relative = path.relative_to(data_dir).as_posix()
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            problems.append(f"{relative} missing (run `doorbell init`)")
            continue
        if mode & ~most:
            problems.append(f"{relative} is {mode:04o}, should be at most {most:04o}")
    try:
        if stat.S_IMODE(data_dir.stat().st_mode) & 0o007:
            problems.append(f"{data_dir} is accessible to everyone (mode o+rwx bits set)")
    except FileNotFoundError:
        problems.append(f"{data_dir} does not exist")
    if problems:
        return Check("file modes", FAIL, "; ".join(problems))
    return Check("file modes", PASS, "keys and data dir have safe modes")


def check_live_socket(config: Config, *, system_dir: Path | None = None) -> Check:
    """Where the live socket between recorder and web UI is, and why there."""
    from doorbell.live.socketpath import resolve_live_socket

    if system_dir is None:
        place = resolve_live_socket(config)
    else:
        place = resolve_live_socket(config, system_dir=system_dir)
    detail = f"{place.path} ({place.reason})"
    if not place.fallback and not place.path.parent.is_dir():
        return Check("live socket", FAIL, f"{detail}: directory {place.path.parent} is missing")
    return Check("live socket", PASS, detail)


def check_free_space(config: Config) -> Check:
    from doorbell.store import free_bytes

    try:
        free = free_bytes(config.data_dir)
    except OSError as error:
        return Check("free space", FAIL, str(error))
    need = config.storage.min_free_gb * (1 << 30)
    detail = f"{free / (1 << 30):.1f} GB free (minimum {config.storage.min_free_gb:g} GB)"
    return Check("free space", PASS if free >= need else FAIL, detail)


def check_time() -> Check:
    """The clock is synchronised (audit timestamps depend on it)."""
    result = _run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    if result is None or result.returncode != 0:
        return Check("clock", WARN, "timedatectl not available; synchronisation not checked")
    if result.stdout.strip() == "yes":
        return Check("clock", PASS, "synchronised")
    return Check(
        "clock", FAIL, "not synchronised: audit times may be wrong (see docs/install-pi.md)"
    )


def check_tls(data_dir: Path) -> Check:
    from doorbell.tls import certificate_fingerprint

    cert = DataDir(data_dir).tls_cert
    if not cert.exists():
        return Check("TLS", FAIL, f"{cert} missing (run `doorbell init`)")
    try:
        return Check("TLS", PASS, f"certificate SHA-256 {certificate_fingerprint(cert)}")
    except (DoorbellError, ValueError) as error:
        return Check("TLS", FAIL, f"{cert}: {error}")


def check_audit(data_dir: Path) -> Check:
    from doorbell.audit.verify import verify_data_dir

    try:
        result = verify_data_dir(data_dir)
    except DoorbellError as error:
        return Check("audit log", FAIL, str(error))
    return Check("audit log", PASS if result.ok else FAIL, result.summary())


def _doorbell_socket_inodes(proc: Path) -> set[int]:
    inodes: set[int] = set()
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            cmdline = (pid_dir / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not any(b"doorbell" in part for part in cmdline[:3]):
            continue
        try:
            for fd in (pid_dir / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
        except OSError:
            continue
    return inodes


def _tcp_connections(proc: Path) -> Iterator[tuple[str, int, str, int, str, int]]:
    """(local ip, port, remote ip, port, state hex, inode) from /proc/net/tcp and tcp6."""
    for name, width in (("tcp", 8), ("tcp6", 32)):
        try:
            lines = (proc / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
            yield (*_address(local, width), *_address(remote, width), state, inode)


def _address(text: str, width: int) -> tuple[str, int]:
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    # /proc prints each 32-bit word in host (little-endian) order
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(raw if width == 32 else raw[:4])), int(port, 16)


def check_outbound(config: Config, proc: Path = Path("/proc")) -> Check:
    """No doorbell process holds a TCP connection it opened to another host, except the
    SFTP destination the owner configured for the off-site copy."""
    allowed = _replication_peers(config)
    inodes = _doorbell_socket_inodes(proc)
    outbound = []
    for local_ip, local_port, remote_ip, remote_port, state, inode in _tcp_connections(proc):
        if inode not in inodes or state == "0A":  # 0A = LISTEN
            continue
        if local_port == config.web.port:  # a browser connected to the UI: inbound
            continue
        if ipaddress.ip_address(remote_ip).is_loopback:
            continue
        if (remote_ip, remote_port) in allowed:  # the owner's off-site copy (replicate)
            continue
        outbound.append(f"{local_ip}:{local_port} -> {remote_ip}:{remote_port}")
    if outbound:
        return Check("no phoning home", FAIL, "outbound connections: " + ", ".join(outbound))
    return Check("no phoning home", PASS, "no outbound connection from doorbell processes")


def _replication_peers(config: Config) -> set[tuple[str, int]]:
    """(address, port) of the configured SFTP destination, resolved; empty without one."""
    import socket

    from doorbell.errors import ReplicationError
    from doorbell.replicate.destination import parse_sftp_url

    destination = config.replicate.destination
    if not destination.startswith("sftp://"):
        return set()
    try:
        address = parse_sftp_url(destination)
        infos = socket.getaddrinfo(address.host, address.port, proto=socket.IPPROTO_TCP)
    except (ReplicationError, OSError):
        return set()
    return {(str(info[4][0]), address.port) for info in infos}


def check_replication(config: Config, *, clock: Callable[[], float] = time.time) -> Check:
    """The off-site copy: configured? reachable now? when did it last copy, how far behind?"""
    from doorbell.errors import ReplicationError
    from doorbell.replicate.destination import open_destination
    from doorbell.replicate.state import read_status

    settings = config.replicate
    name = "off-site copy"
    if not settings.destination:
        return Check(name, PASS, "not configured ([replicate] destination; docs/replicate.md)")
    try:
        open_destination(
            settings.destination,
            host_key=settings.host_key,
            identity_file=settings.identity_file,
            timeout_s=min(settings.timeout_s, 5.0),
        ).close()
        reachable = ""
    except ReplicationError as exc:
        reachable = str(exc)
    status = read_status(config.data_dir)
    if status is None:
        detail = "configured, but the replicator has never run (enable doorbell-replicate)"
        return Check(name, WARN if not reachable else FAIL, f"{detail}; {reachable}".rstrip("; "))
    if status.witness_conflict:
        return Check(name, FAIL, f"the copy disagrees with this device: {status.witness_conflict}")
    if reachable:
        return Check(name, FAIL, f"destination unreachable: {reachable}")
    now = clock()
    copied = (
        "never" if status.last_copied_at is None else f"{now - status.last_copied_at:.0f} s ago"
    )
    detail = (
        f"{settings.destination}: reachable, last copied {copied}, "
        f"{status.bytes_behind} bytes behind"
    )
    if not status.connected:
        return Check(name, WARN, f"{detail}; the replicator reports: {status.last_error}")
    if now - status.updated_at > max(300.0, 10 * settings.retry_s):
        return Check(name, WARN, f"{detail}; but the replicator has not run for a while")
    return Check(name, PASS, detail)


def run_checks(config: Config) -> list[Check]:
    """Every check, in the order a person fixing a doorbell would want them."""
    data_dir = config.data_dir
    checks: list[Callable[[], Check]] = [
        lambda: check_camera(config),
        check_units,
        lambda: check_modes(data_dir),
        lambda: check_live_socket(config),
        lambda: check_free_space(config),
        check_time,
        lambda: check_tls(data_dir),
        lambda: check_audit(data_dir),
        lambda: check_replication(config),
        lambda: check_outbound(config),
    ]
    results = []
    for check in checks:
        try:
            results.append(check())
        except (OSError, DoorbellError) as error:  # one broken check must not hide the others
            results.append(Check(getattr(check, "__name__", "check"), FAIL, str(error)))
    return results
