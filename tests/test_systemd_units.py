"""The hardened units, sysusers and tmpfiles files under systemd/.

What runs here, off the Pi, with the machine's own systemd tools:

- ``systemd-analyze security --offline=true --threshold=20`` on each unit: exposure <= 2.0;
- ``systemd-analyze verify`` in a throw-away root that holds the units, the distribution's
  unit tree and an executable stub at /opt/doorbell/venv/bin/doorbell (the unit files are
  used unchanged; without the stub verify only reports the missing venv);
- ``systemd-sysusers`` and ``systemd-tmpfiles`` applied to a throw-away root, then the modes
  the design needs checked by actually opening files as the service users (needs root).

Each harness is also fed a deliberately broken input, so a harness that stopped failing
would be noticed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, missing, require_tool

SYSTEMD_DIR = PROJECT_ROOT / "systemd"
UNITS = (
    "doorbell-recorder.service",
    "doorbell-web.service",
    "doorbell-replicate.service",
    "doorbell-notify.service",
)
#: the issue's target, in systemd-analyze's own unit for --threshold (tenths of exposure)
MAX_EXPOSURE = 2.0
EXECUTABLE = "opt/doorbell/venv/bin/doorbell"
DISTRIBUTION_UNITS = Path("/usr/lib/systemd/system")


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=cwd, check=False)


def _exposure(unit_path: Path, tmp_path: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    tool = require_tool("systemd-analyze")
    threshold = str(round(MAX_EXPOSURE * 10))
    result = _run(
        [tool, "security", "--offline=true", f"--threshold={threshold}", str(unit_path)],
        cwd=tmp_path,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    if found is None:
        pytest.fail(f"no exposure level in systemd-analyze output:\n{result.stdout}{result.stderr}")
    return float(found.group(1)), result


@pytest.mark.parametrize("unit", UNITS)
def test_unit_exposure_is_at_most_two(unit: str, tmp_path: Path) -> None:
    exposure, result = _exposure(SYSTEMD_DIR / unit, tmp_path)
    assert exposure <= MAX_EXPOSURE, f"{unit}: exposure {exposure}\n{result.stdout}"
    assert result.returncode == 0, f"{unit}: --threshold rejected it\n{result.stdout}"


def test_exposure_harness_rejects_an_unhardened_unit(tmp_path: Path) -> None:
    plain = tmp_path / "plain.service"
    plain.write_text("[Service]\nExecStart=/bin/true\n")
    exposure, result = _exposure(plain, tmp_path)
    assert exposure > MAX_EXPOSURE
    assert result.returncode != 0


def _verify_root(tmp_path: Path, units: dict[str, str]) -> Path:
    """A root holding the distribution's units, ``units`` and an executable doorbell stub."""
    if not DISTRIBUTION_UNITS.is_dir():
        missing(f"{DISTRIBUTION_UNITS} is missing: systemd's unit tree is needed to verify")
    root = tmp_path / "root"
    shutil.copytree(DISTRIBUTION_UNITS, root / DISTRIBUTION_UNITS.relative_to("/"), symlinks=True)
    stub = root / EXECUTABLE
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    unit_dir = root / "etc/systemd/system"
    unit_dir.mkdir(parents=True)
    for name, text in units.items():
        (unit_dir / name).write_text(text)
    return root


def _verify(root: Path, *units: str) -> subprocess.CompletedProcess[str]:
    tool = require_tool("systemd-analyze")
    return _run([tool, "verify", f"--root={root}", *units], cwd=root)


def test_units_verify_clean(tmp_path: Path) -> None:
    root = _verify_root(tmp_path, {u: (SYSTEMD_DIR / u).read_text() for u in UNITS})
    result = _verify(root, *UNITS)
    # verify exits 0 even for a misspelt value; a clean unit prints nothing at all.
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


def test_verify_harness_reports_a_typo(tmp_path: Path) -> None:
    text = (SYSTEMD_DIR / UNITS[0]).read_text().replace("NotifyAccess=main", "NotifyAccess=mian")
    result = _verify(_verify_root(tmp_path, {UNITS[0]: text}), UNITS[0])
    assert "notify access specifier" in result.stdout + result.stderr


def test_units_run_the_documented_commands() -> None:
    for unit, role in zip(UNITS, ("recorder", "web", "replicate", "notify"), strict=True):
        text = (SYSTEMD_DIR / unit).read_text()
        command = f"ExecStart=/opt/doorbell/venv/bin/doorbell {role} --config /etc/doorbell/"
        assert command in text
        assert "Type=notify" in text
        assert "Restart=on-failure" in text
    assert "WatchdogSec=" in (SYSTEMD_DIR / UNITS[0]).read_text()


def test_recorder_has_no_network_and_only_camera_and_gpio_devices() -> None:
    settings = _settings(SYSTEMD_DIR / "doorbell-recorder.service")
    assert settings["PrivateNetwork"] == ["yes"]
    assert settings["RestrictAddressFamilies"] == ["AF_UNIX"]
    assert settings["IPAddressDeny"] == ["any"]
    assert settings["DevicePolicy"] == ["closed"]
    allowed = {line.split()[0] for line in settings["DeviceAllow"]}
    assert allowed == {
        "char-video4linux",
        "char-media",
        "char-dma_heap",
        "char-gpiochip",
        "/dev/udmabuf",
    }
    assert "owner.key.age" in " ".join(settings["InaccessiblePaths"])


def test_web_has_no_devices_and_no_camera_groups() -> None:
    settings = _settings(SYSTEMD_DIR / "doorbell-web.service")
    assert settings["PrivateDevices"] == ["yes"]
    assert "DeviceAllow" not in settings
    assert "SupplementaryGroups" not in settings
    assert settings["IPAddressDeny"] == ["any"]
    assert "any" not in settings["IPAddressAllow"][0].split()


def test_notifier_sees_no_key_and_no_footage() -> None:
    settings = _settings(SYSTEMD_DIR / "doorbell-notify.service")
    hidden = {path.lstrip("-") for path in " ".join(settings["InaccessiblePaths"]).split()}
    data = "/var/lib/doorbell"
    for private in ("keys", "tls", "clips", "thumbs", "exports", "sessions"):
        assert f"{data}/{private}" in hidden, private
    assert settings["User"] == ["doorbell-notify"]
    assert "SupplementaryGroups" not in settings
    assert settings["PrivateDevices"] == ["yes"]
    assert settings["IPAddressDeny"] == ["any"]
    assert "any" not in settings["IPAddressAllow"][0].split()
    assert settings["LimitCORE"] == ["0"]


def _settings(unit_path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in unit_path.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


# --- sysusers.d + tmpfiles.d, applied to a throw-away root --------------------------------

BASE_PASSWD = "root:x:0:0:root:/root:/bin/bash\n"
# video has gid 44 on Debian and Raspberry Pi OS; gpio is made by sysusers where missing.
BASE_GROUP = "root:x:0:\nvideo:x:44:\n"
KEY_FILES = (
    "keys/owner.key.age",
    "keys/owner.recipients",
    "keys/device.key",
    "keys/device.vkey",
    "tls/key.pem",
    "tls/cert.pem",
)


@pytest.fixture
def provisioned_root() -> Iterator[Path]:
    """sysusers + tmpfiles applied to an empty root, after `doorbell init` made keys as root.

    The root lives in a directory the service users may traverse (pytest's own tmp_path is
    inside root's 0700 directory), and is removed afterwards.
    """
    sysusers = require_tool("systemd-sysusers")
    tmpfiles = require_tool("systemd-tmpfiles")
    if os.geteuid() != 0:
        missing("applying tmpfiles.d ownership and probing as the service users needs root")
    base = Path(tempfile.mkdtemp(prefix="doorbell-units-"))
    try:
        base.chmod(0o711)
        yield _provision(base / "root", sysusers, tmpfiles)
    finally:
        shutil.rmtree(base)


def _provision(root: Path, sysusers: str, tmpfiles: str) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text(BASE_PASSWD)
    (root / "etc/group").write_text(BASE_GROUP)
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc/gshadow").write_text("root:*::\nvideo:!::\n")
    result = _run([sysusers, f"--root={root}", str(SYSTEMD_DIR / "sysusers.d/doorbell.conf")])
    assert result.returncode == 0, result.stderr
    data = root / "var/lib/doorbell"
    for relative in KEY_FILES:  # what `sudo doorbell init` leaves: root-owned, loose modes
        path = data / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("secret\n")
        path.chmod(0o644)
    (root / "etc/doorbell").mkdir()
    (root / "etc/doorbell/doorbell.toml").write_text("")
    conf = SYSTEMD_DIR / "tmpfiles.d/doorbell.conf"
    result = _run([tmpfiles, "--create", f"--root={root}", str(conf)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""
    return root


def _account(root: Path, user: str) -> tuple[int, int, list[int]]:
    uid = gid = -1
    for line in (root / "etc/passwd").read_text().splitlines():
        name, _, u, g, *_ = line.split(":")
        if name == user:
            uid, gid = int(u), int(g)
    groups = [
        int(line.split(":")[2])
        for line in (root / "etc/group").read_text().splitlines()
        if user in line.split(":")[3].split(",")
    ]
    assert uid >= 0, f"{user} was not created"
    return uid, gid, groups


def _group_names(root: Path, user: str) -> set[str]:
    return {
        line.split(":")[0]
        for line in (root / "etc/group").read_text().splitlines()
        if user in line.split(":")[3].split(",")
    }


def _can(root: Path, user: str, path: Path, mode: str) -> bool:
    """Whether ``user`` (with its groups from the root's /etc/group) may open ``path``."""
    uid, gid, groups = _account(root, user)
    # The unit runs with Group=doorbell as its primary group; keep the user's own too.
    doorbell_gid = next(
        int(line.split(":")[2])
        for line in (root / "etc/group").read_text().splitlines()
        if line.startswith("doorbell:")
    )
    # access(2) checks the real uid/gids, which are the service user's here; "create" makes
    # and removes a probe file, as writing a new clip or an SQLite -wal file would.
    checks = {
        "read": 'test -r "$1"',
        "write": 'test -w "$1"',
        "create": 'touch "$1/.probe" 2>/dev/null && rm "$1/.probe"',
    }
    result = subprocess.run(
        ["/bin/sh", "-c", f"{checks[mode]} || exit 3", "probe", str(path)],
        user=uid,
        group=doorbell_gid,
        extra_groups=sorted({gid, *groups}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode not in (0, 3):
        pytest.fail(f"probe failed: {result.stderr}")
    return result.returncode == 0


def test_sysusers_groups(provisioned_root: Path) -> None:
    assert _group_names(provisioned_root, "doorbell-rec") == {"doorbell", "video", "gpio"}
    assert _group_names(provisioned_root, "doorbell-web") == {"doorbell"}
    assert _group_names(provisioned_root, "doorbell-repl") == {"doorbell"}
    assert _group_names(provisioned_root, "doorbell-notify") == {"doorbell"}


def test_replicator_reads_ciphertext_and_the_log_but_no_secret_key(
    provisioned_root: Path,
) -> None:
    data = provisioned_root / "var/lib/doorbell"
    repl = "doorbell-repl"
    for secret in ("keys/owner.key.age", "keys/device.key", "tls/key.pem"):
        assert not _can(provisioned_root, repl, data / secret, "read"), secret
    for public in ("keys/owner.recipients", "keys/device.vkey", "index.sqlite3", "audit.sqlite3"):
        assert _can(provisioned_root, repl, data / public, "read"), public
    assert _can(provisioned_root, repl, data / "replicate", "create")
    for directory in ("clips", "thumbs", "keys", "exports", "sessions"):
        assert not _can(provisioned_root, repl, data / directory, "create"), directory


def test_replicate_unit_reaches_only_the_home_network() -> None:
    settings = _settings(SYSTEMD_DIR / "doorbell-replicate.service")
    assert settings["IPAddressDeny"] == ["any"]
    assert settings["PrivateDevices"] == ["yes"]
    assert "0.0.0.0/0" not in " ".join(settings["IPAddressAllow"])
    hidden = " ".join(settings["InaccessiblePaths"])
    for secret in ("keys/owner.key.age", "keys/device.key", "tls/key.pem"):
        assert secret in hidden


def test_notifier_reads_events_writes_the_audit_log_and_owns_its_secrets(
    provisioned_root: Path,
) -> None:
    data = provisioned_root / "var/lib/doorbell"
    notifier = "doorbell-notify"
    assert _can(provisioned_root, notifier, data / "audit.sqlite3", "write")
    assert _can(provisioned_root, notifier, data / "index.sqlite3", "read")
    assert _can(provisioned_root, notifier, data, "create")  # -wal, notify-state.json
    assert _can(provisioned_root, notifier, provisioned_root / "etc/doorbell/notify", "create")
    assert not _can(provisioned_root, notifier, data / "keys/owner.key.age", "read")
    assert not _can(provisioned_root, notifier, data / "keys/device.key", "read")
    assert not _can(provisioned_root, notifier, data / "tls/key.pem", "read")
    for other in ("doorbell-rec", "doorbell-web"):
        assert not _can(provisioned_root, other, provisioned_root / "etc/doorbell/notify", "read")


def test_recorder_can_never_read_the_owner_key(provisioned_root: Path) -> None:
    data = provisioned_root / "var/lib/doorbell"
    assert not _can(provisioned_root, "doorbell-rec", data / "keys/owner.key.age", "read")
    assert not _can(provisioned_root, "doorbell-rec", data / "tls/key.pem", "read")
    assert not _can(provisioned_root, "doorbell-rec", data / "exports", "create")
    assert not _can(provisioned_root, "doorbell-rec", data / "keys", "create")
    assert _can(provisioned_root, "doorbell-web", data / "keys/owner.key.age", "read")
    assert _can(provisioned_root, "doorbell-web", data / "tls/key.pem", "read")


def test_recorder_reads_public_keys_and_writes_footage(provisioned_root: Path) -> None:
    data = provisioned_root / "var/lib/doorbell"
    rec = "doorbell-rec"
    assert _can(provisioned_root, rec, data / "keys/owner.recipients", "read")
    assert _can(provisioned_root, rec, data / "keys/device.key", "read")
    for directory in ("clips", "thumbs", "."):
        assert _can(provisioned_root, rec, data / directory, "create"), directory
    for database in ("index.sqlite3", "audit.sqlite3"):
        assert _can(provisioned_root, rec, data / database, "write"), database
    assert _can(provisioned_root, rec, provisioned_root / "run/doorbell", "create")


def test_recorder_cannot_alter_the_export_registry(provisioned_root: Path) -> None:
    """Issue 16: approval reads exports.sqlite3, so the recorder (which writes the index and
    the audit log) must not be able to change it: file mode, and a read-only mount."""
    data = provisioned_root / "var/lib/doorbell"
    for name in ("exports.sqlite3", "exports.sqlite3-journal"):
        assert not _can(provisioned_root, "doorbell-rec", data / name, "write"), name
        assert _can(provisioned_root, "doorbell-rec", data / name, "read"), name
        assert _can(provisioned_root, "doorbell-web", data / name, "write"), name
    read_only = " ".join(_settings(SYSTEMD_DIR / "doorbell-recorder.service")["ReadOnlyPaths"])
    assert read_only.split() == [
        "-/var/lib/doorbell/exports.sqlite3",
        "-/var/lib/doorbell/exports.sqlite3-journal",
    ]


def test_web_reads_footage_and_writes_only_its_own_state(provisioned_root: Path) -> None:
    data = provisioned_root / "var/lib/doorbell"
    web = "doorbell-web"
    assert not _can(provisioned_root, web, data / "clips", "create")
    assert not _can(provisioned_root, web, data / "thumbs", "create")
    assert not _can(provisioned_root, web, data / "keys/device.key", "read")
    for directory in ("exports", "sessions", "."):
        assert _can(provisioned_root, web, data / directory, "create"), directory
    for database in ("index.sqlite3", "audit.sqlite3"):
        assert _can(provisioned_root, web, data / database, "write"), database
    assert _can(provisioned_root, web, provisioned_root / "etc/doorbell/doorbell.toml", "read")


def test_nobody_else_gets_in(provisioned_root: Path) -> None:
    data = provisioned_root / "var/lib/doorbell"
    for path in [data, *data.rglob("*"), provisioned_root / "run/doorbell"]:
        assert path.stat().st_mode & 0o007 == 0 or path.name in ("device.vkey", "cert.pem"), path


def test_clips_written_0640_by_the_recorder_are_readable_by_the_web(
    provisioned_root: Path,
) -> None:
    clip_dir = provisioned_root / "var/lib/doorbell/clips/2025/01/01"
    clip_dir.mkdir(parents=True, mode=0o750)
    uid, _, _ = _account(provisioned_root, "doorbell-rec")
    clip = clip_dir / "x.mp4.age"
    clip.write_bytes(b"age-encryption.org/v1\n")
    clip.chmod(0o640)
    for path in (clip_dir.parent.parent, clip_dir.parent, clip_dir, clip):
        os.chown(path, uid, -1)  # group comes from the setgid clips/ directory
    assert clip.stat().st_gid == (provisioned_root / "var/lib/doorbell/clips").stat().st_gid
    assert _can(provisioned_root, "doorbell-web", clip, "read")
    assert not _can(provisioned_root, "doorbell-web", clip, "write")


# --- MemoryDenyWriteExecute=yes: does the runtime stack live with it? -------------------

MDWE_PROBE = """
import ctypes, io, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN (Linux >= 6.3)
    sys.exit(77)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("W+X mapping allowed: MDWE is not in force")
except PermissionError:
    pass
import av, cv2, jinja2, numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
frames = [np.random.default_rng(i).integers(0, 255, (96, 128, 3), dtype=np.uint8) for i in range(8)]
grey = cv2.GaussianBlur(cv2.cvtColor(frames[0], cv2.COLOR_BGR2GRAY), (5, 5), 0)
cv2.findContours(cv2.threshold(grey, 25, 255, cv2.THRESH_BINARY)[1], cv2.RETR_EXTERNAL,
                 cv2.CHAIN_APPROX_SIMPLE)
cv2.imencode(".jpg", frames[0])
buffer = io.BytesIO()
with av.open(buffer, "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov"}) as out:
    stream = out.add_stream("libx264", rate=15)
    stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
    for frame in frames:
        out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
    out.mux(stream.encode())
buffer.seek(0)
decoded = sum(1 for _ in av.open(buffer).decode(video=0))
X25519PrivateKey.generate().exchange(X25519PrivateKey.generate().public_key())
ChaCha20Poly1305(bytes(32)).encrypt(bytes(12), b"x" * 65536, None)
Scrypt(salt=bytes(16), length=32, n=2**10, r=8, p=1).derive(b"passphrase")
jinja2.Template("{{ a }}").render(a=1)
print("decoded", decoded)
"""


def test_runtime_stack_needs_no_writable_executable_memory() -> None:
    """MemoryDenyWriteExecute=yes in both units: numpy, OpenCV, PyAV/libx264, cryptography
    and Jinja2 must work with W^X enforced. The kernel's own PR_SET_MDWE stands in for
    systemd's seccomp version here (same rule: no mapping gains PROT_EXEC while writable)."""
    result = subprocess.run(
        [sys.executable, "-c", MDWE_PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode == 77:
        missing("this kernel has no PR_SET_MDWE (Linux >= 6.3 needed for the W^X check)")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "decoded 8" in result.stdout


@pytest.mark.parametrize("unit", UNITS)
def test_no_core_dumps(unit: str) -> None:
    """Review hardening note: a core dump of the web process would hold the owner identity."""
    assert _settings(SYSTEMD_DIR / unit)["LimitCORE"] == ["0"]


@pytest.mark.parametrize("unit", UNITS)
def test_memory_and_tasks_are_bounded(unit: str) -> None:
    """Issue 17, finding 5: one request must not be able to take the Pi's memory."""
    settings = _settings(SYSTEMD_DIR / unit)
    memory = settings.get("MemoryMax", [""])[-1]
    assert memory.endswith("M") and 64 <= int(memory[:-1]) <= 400, memory
    tasks = settings.get("TasksMax", [""])[-1]
    assert tasks.isdigit() and int(tasks) <= 128, tasks


def test_only_the_web_unit_sees_the_owner_directory() -> None:
    """The owner anchor's directory (owner/, the web user's) is hidden from every other unit:
    a unit that could rename it between the web's read and write of the anchor could keep an
    old anchor aside and put it back later (security review of issue 17)."""
    for unit in UNITS:
        if unit == "doorbell-web.service":
            continue
        settings = _settings(SYSTEMD_DIR / unit)
        hidden = {path.lstrip("-") for path in " ".join(settings["InaccessiblePaths"]).split()}
        assert "/var/lib/doorbell/owner" in hidden, unit
