"""Configuration: TOML in, frozen dataclasses out, every problem reported at once.

The file is ``/etc/doorbell/doorbell.toml`` by default. An empty file is valid: every key has
a default. Unknown keys, wrong types and out-of-range values are rejected with a message that
names the file, the dotted key, what was given and what is allowed, for example::

    doorbell.toml: recording.pre_roll_s: -3 is below 0

Units are part of key names (``pre_roll_s``, ``quota_gb``, ``min_area_px``). Polygons (zones,
masks) use relative coordinates: 0..1 on both axes, origin at the top-left corner, so they
survive a change of resolution.

Nothing here touches hardware or imports camera or web code.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doorbell.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/doorbell/doorbell.toml")
DEFAULT_DATA_DIR = "/var/lib/doorbell"
#: A configuration file larger than this is refused before parsing (hostile or broken input).
MAX_CONFIG_BYTES = 1 << 20
#: At most this many points per polygon, and this many polygons per list.
MAX_POLYGON_POINTS = 256
MAX_POLYGONS = 64
#: At most this many strings in a list of strings (event kinds, quiet hours, addresses).
MAX_STRINGS = 32

#: What the notifier can tell the owner about (``doorbell notify``; docs/notifications.md).
NOTIFY_EVENT_KINDS = (
    "ring",
    "motion_start",
    "motion_stop",
    "storage_full",
    "storage_ok",
    "camera_lost",
    "camera_back",
    "camera_down",
    "export_request",
    "export_expiring",
    "unlock_failures",
)
#: A quiet-hours span, local time: "22:00-07:00" (across midnight) or "12:30-14:00".
QUIET_HOURS_PATTERN = r"([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]"
_QUIET_DOC = 'spans of local time when this stays silent, like ["22:00-07:00"]'


def _key(
    default: Any,
    doc: str,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[Any, ...] | None = None,
    pattern: str | None = None,
) -> Any:
    """A config field with its documentation and the values it allows.

    ``choices`` and ``pattern`` (a regular expression each string must match in full) also
    apply to every item of a list of strings.
    """
    meta = {"doc": doc, "min": min, "max": max, "choices": choices, "pattern": pattern}
    if isinstance(default, list | tuple):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Polygon:
    """A closed polygon in relative coordinates (0..1, origin top-left)."""

    points: tuple[tuple[float, float], ...]
    name: str = ""

    def to_pixels(self, width: int, height: int) -> list[tuple[int, int]]:
        """The vertices scaled to an image of ``width`` x ``height`` pixels."""
        return [
            (min(width - 1, round(x * width)), min(height - 1, round(y * height)))
            for x, y in self.points
        ]


#: a host name or an IP address, as `web.hosts` takes them
_HOST_NAME_PATTERN = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|[0-9A-Fa-f:.]{2,45}"


@dataclass(frozen=True)
class CameraConfig:
    backend: str = _key(
        "mock",
        "where frames come from: the synthetic mock scene, a video file, or the Pi camera",
        choices=("mock", "file", "picamera2"),
    )
    path: str = _key("", 'video file to play as the camera (backend = "file")')
    realtime: bool = _key(
        True, "mock and file backends: pace frames in real time (false: as fast as possible)"
    )
    loop: bool = _key(False, "file backend: start again at the end instead of ending")
    width: int = _key(1280, "main stream width in pixels (recorded video)", min=64, max=4096)
    height: int = _key(720, "main stream height in pixels", min=48, max=4096)
    fps: int = _key(15, "frames per second", min=1, max=120)
    lores_width: int = _key(
        320, "low-resolution analysis stream width (motion detection)", min=32, max=1920
    )
    lores_height: int = _key(240, "low-resolution analysis stream height", min=24, max=1080)
    scenario: str = _key(
        "doorstep",
        "mock backend: which scripted scene to play (doorstep mixes them all, for the demo)",
        choices=(
            "doorstep",
            "person",
            "person_night",
            "person_light",
            "person_close",
            "delivery",
            "person_low",
            "person_dusk",
            "person_wait",
            "car",
            "porch_light",
            "cloud",
            "wind",
            "night_noise",
            "rain",
            "snow",
            "exposure",
        ),
    )
    seed: int = _key(0, "mock backend: random seed (same seed, same frames)", min=0, max=2**31 - 1)
    hardware_encoder: bool = _key(
        True,
        "picamera2 backend: H.264 from the camera's hardware encoder where the Pi has "
        "one (not the Pi 5); false: libx264 in software",
    )


@dataclass(frozen=True)
class MotionConfig:
    enabled: bool = _key(True, "detect motion (the doorbell button records regardless)")
    threshold: int = _key(
        25,
        "the most grey-level difference from the background a change needs to count; a "
        "clean picture needs less (10 x its measured noise, at least 8)",
        min=1,
        max=255,
    )
    dark_threshold: int = _key(
        10,
        "threshold in a dark (night, infrared) picture; in between it scales with brightness",
        min=1,
        max=255,
    )
    min_area_px: int = _key(
        120, "smallest moving blob, in pixels of the low-resolution stream", min=1, max=2_000_000
    )
    background_alpha: float = _key(
        0.05, "how fast the background model learns (0..1 per frame)", min=0.001, max=1.0
    )
    trigger_frames: int = _key(
        2, "consecutive frames with motion needed to start an event (debounce)", min=1, max=100
    )
    cooldown_s: float = _key(
        2.0, "seconds without motion before an event is declared over", min=0.0, max=600.0
    )
    global_change_ratio: float = _key(
        0.6,
        "share of the frame changing at once that is treated as a light or exposure change",
        min=0.05,
        max=1.0,
    )
    denoise_px: int = _key(
        5,
        "Gaussian blur kernel before comparing, in lores pixels (even values round up)",
        min=1,
        max=15,
    )
    light_change_similarity: float = _key(
        0.8,
        "a changed region whose pixels correlate this much with the background is a "
        "light or exposure change, not an object (0..1)",
        min=0.1,
        max=1.0,
    )
    persist_frames: int = _key(
        2,
        "frames in a row a pixel must keep changing to count as part of an object (rain, "
        "snow and sensor grain do not stay put)",
        min=1,
        max=20,
    )
    persist_share: float = _key(
        0.5,
        "share of min_area_px a region must hold in persisting pixels to be an object",
        min=0.0,
        max=1.0,
    )
    zones: tuple[Polygon, ...] = _key((), "where motion counts; empty means the whole frame")
    masks: tuple[Polygon, ...] = _key((), "areas where motion is ignored (street, tree)")


@dataclass(frozen=True)
class RecordingConfig:
    pre_roll_s: float = _key(3.0, "seconds kept before the trigger", min=0.0, max=30.0)
    post_roll_s: float = _key(5.0, "seconds kept after motion ends", min=0.0, max=300.0)
    max_clip_s: float = _key(
        120.0, "longest single clip; longer events continue in a new clip", min=5.0, max=3600.0
    )
    keyframe_interval_s: float = _key(
        1.0, "seconds between H.264 keyframes (pre-roll granularity)", min=0.1, max=10.0
    )
    fsync_interval_s: float = _key(
        2.0, "at most this many seconds of a clip are lost to a power cut", min=0.2, max=60.0
    )
    bitrate_kbps: int = _key(2000, "H.264 target bitrate", min=100, max=50_000)
    thumbnail_width: int = _key(320, "thumbnail width in pixels", min=64, max=1920)


@dataclass(frozen=True)
class StorageConfig:
    data_dir: str = _key(DEFAULT_DATA_DIR, "where keys, the index, clips and the audit log live")
    retention_days: int = _key(
        30, "delete clips older than this; 0 keeps them until the quota", min=0, max=36_500
    )
    quota_gb: float = _key(
        0.0, "most space clips may use; 0 means no quota", min=0.0, max=1_000_000.0
    )
    min_free_gb: float = _key(
        1.0, "delete oldest clips to keep at least this much free", min=0.0, max=1_000_000.0
    )


@dataclass(frozen=True)
class WebConfig:
    bind: str = _key("127.0.0.1", "address the web UI listens on (0.0.0.0 for the home network)")
    port: int = _key(8443, "TCP port of the web UI", min=1, max=65535)
    tls: bool = _key(True, "serve HTTPS with the certificate made at `doorbell init`")
    idle_lock_s: int = _key(
        600, "lock the UI after this many seconds without activity", min=30, max=86_400
    )
    timezone: str = _key(
        "", 'time zone of the pages (IANA name like "Europe/Berlin"); empty: the system zone'
    )
    hosts: tuple[str, ...] = _key(
        (),
        "Host names the UI answers to besides this device's own (its hostname, hostname.local, "
        "localhost and its addresses); the first also names the device in invitation links",
        pattern=_HOST_NAME_PATTERN,
    )


@dataclass(frozen=True)
class LiveConfig:
    socket_path: str = _key(
        "/run/doorbell/live.sock",
        "unix socket between recorder and web UI; the default, without /run/doorbell, moves to "
        "$RUNTIME_DIRECTORY, $XDG_RUNTIME_DIR/doorbell or <data_dir>/run (`doorbell doctor`)",
    )
    socket_group: str = _key(
        "", "group allowed to connect to the live socket (the web user's); empty: the recorder's"
    )
    fps: float = _key(4.0, "live view frames per second", min=0.2, max=30.0)
    width: int = _key(640, "live view width in pixels", min=64, max=1920)
    jpeg_quality: int = _key(70, "live view JPEG quality", min=10, max=95)


@dataclass(frozen=True)
class GpioConfig:
    enabled: bool = _key(False, "use the doorbell button, chime and LED on GPIO pins")
    button_pin: int = _key(17, "BCM number of the doorbell button pin (to ground)", min=0, max=27)
    chime_pin: int = _key(27, "BCM number of the chime pin", min=0, max=27)
    led_pin: int = _key(22, "BCM number of the recording LED pin", min=0, max=27)
    chime_kind: str = _key(
        "relay", "chime wiring: a relay module, or a piezo buzzer", choices=("relay", "buzzer")
    )
    chime_s: float = _key(1.0, "how long the chime sounds", min=0.05, max=10.0)
    bounce_s: float = _key(0.05, "button debounce time", min=0.0, max=1.0)
    quiet_hours: tuple[str, ...] = _key(
        (),
        "chime: " + _QUIET_DOC + " (a ring still records and alerts)",
        pattern=QUIET_HOURS_PATTERN,
    )


@dataclass(frozen=True)
class PrivacyConfig:
    masks: tuple[Polygon, ...] = _key(
        (), "regions blacked out in every recorded, live and thumbnail image"
    )


@dataclass(frozen=True)
class AuditConfig:
    checkpoint_interval_s: float = _key(
        5.0,
        "longest delay between an audit entry and a signed checkpoint covering it",
        min=0.1,
        max=3600.0,
    )


@dataclass(frozen=True)
class ExportsConfig:
    request_expiry_days: float = _key(
        14.0,
        "undecided export requests expire (as a denial) after this many days",
        min=0.01,
        max=365.0,
    )
    bundle_expiry_days: float = _key(
        3.0, "default lifetime of an approved bundle before it is deleted", min=0.01, max=90.0
    )
    download_limit: int = _key(3, "default number of downloads allowed per bundle", min=1, max=100)
    invitation_expiry_days: float = _key(
        7.0, "how long a requester invitation link stays usable", min=0.01, max=90.0
    )
    max_window_days: float = _key(
        31.0, "longest time window one request may ask for", min=0.01, max=366.0
    )
    passphrase_work_factor: int = _key(
        18, "scrypt work factor (log2 N) of passphrase-delivered bundles", min=10, max=22
    )
    checkpoint_wait_s: float = _key(
        60.0, "how long a bundle waits for the recorder to sign a checkpoint", min=1.0, max=3600.0
    )


@dataclass(frozen=True)
class ReplicateConfig:
    destination: str = _key(
        "",
        "off-site copy of the ciphertext and the log: a mounted directory (absolute path) or "
        "sftp://user@host[:port]/absolute/path; empty: no copy",
    )
    host_key: str = _key(
        "", "sftp: the server's pinned host key, 'ssh-ed25519 AAAA...' (as ssh-keyscan prints)"
    )
    identity_file: str = _key(
        "/etc/doorbell/replicate_ed25519",
        "sftp: this device's private key (OpenSSH format, no passphrase)",
    )
    interval_s: float = _key(1.0, "seconds between passes over new data", min=0.1, max=3600.0)
    retry_s: float = _key(
        10.0, "seconds between attempts while the copy is unreachable", min=1.0, max=3600.0
    )
    timeout_s: float = _key(
        15.0, "connect and per-request timeout for the destination", min=1.0, max=300.0
    )
    delete_delay_days: float = _key(
        7.0,
        "days a clip deleted on the device stays in the copy (a thief cannot erase it)",
        min=0.0,
        max=3650.0,
    )


@dataclass(frozen=True)
class NotifyConfig:
    ui_url: str = _key(
        "", "address of the web UI that alerts link to, like https://<doorbell host>:8443/"
    )
    max_age_s: float = _key(
        600.0,
        "an alert not delivered within this many seconds (broker down, notifier restarting) "
        "is dropped instead of arriving late",
        min=5.0,
        max=86_400.0,
    )
    dedupe_s: float = _key(
        30.0,
        "rings closer than this to the last ring alert are one burst, one alert",
        min=0.0,
        max=3600.0,
    )
    rate_limit_per_hour: int = _key(
        60, "most alerts one channel sends per hour (the rest are dropped)", min=1, max=10_000
    )
    camera_down_min: float = _key(
        10.0, "camera_down: the camera has been lost for this many minutes", min=1.0, max=1440.0
    )
    expiring_within_h: float = _key(
        24.0,
        "export_expiring: an undecided request expires within this many hours",
        min=1.0,
        max=336.0,
    )
    unlock_failures: int = _key(
        3, "unlock_failures: this many failed unlocks within unlock_window_s", min=1, max=1000
    )
    unlock_window_s: float = _key(
        600.0, "window of the failed-unlock count", min=10.0, max=86_400.0
    )
    poll_s: float = _key(
        1.0, "how often the audit log and the export requests are checked", min=0.1, max=60.0
    )


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = _key(False, "send alerts and states to an MQTT broker (Home Assistant)")
    host: str = _key("", "the owner's broker: host name or address")
    port: int = _key(8883, "broker port (8883: MQTT over TLS)", min=1, max=65535)
    tls: bool = _key(True, "TLS to the broker (false is allowed only for a loopback broker)")
    ca_file: str = _key(
        "", "CA certificate (PEM) the broker's certificate must chain to; empty: the system's"
    )
    cert_file: str = _key("", "client certificate (PEM) for certificate authentication")
    key_file: str = _key("", "its private key (PEM); readable by the notifier only")
    username: str = _key("", "user name for password authentication")
    password_file: str = _key("", "file holding the password; readable by the notifier only")
    client_id: str = _key(
        "doorbell",
        "MQTT client id (also the Home Assistant device id)",
        pattern=r"[A-Za-z0-9_-]{1,64}",
    )
    topic_prefix: str = _key(
        "doorbell",
        "topics: <prefix>/ring, <prefix>/motion, <prefix>/status ...",
        pattern=r"[A-Za-z0-9_/-]{1,100}",
    )
    discovery_prefix: str = _key(
        "homeassistant", "Home Assistant MQTT discovery prefix", pattern=r"[A-Za-z0-9_/-]{1,100}"
    )
    keepalive_s: int = _key(30, "MQTT keep-alive interval", min=5, max=3600)
    events: tuple[str, ...] = _key(
        (
            "ring",
            "motion_start",
            "motion_stop",
            "storage_full",
            "storage_ok",
            "camera_lost",
            "camera_back",
        ),
        "which events are published",
        choices=NOTIFY_EVENT_KINDS,
    )
    quiet_hours: tuple[str, ...] = _key((), _QUIET_DOC, pattern=QUIET_HOURS_PATTERN)


@dataclass(frozen=True)
class NtfyConfig:
    enabled: bool = _key(False, "push alerts to the owner's own ntfy server (the ntfy app)")
    url: str = _key("", "topic URL on the owner's ntfy server, like https://<ntfy host>/doorbell")
    token_file: str = _key("", "file holding the ntfy access token; readable by the notifier only")
    ca_file: str = _key("", "CA certificate (PEM) of the ntfy server; empty: the system's")
    events: tuple[str, ...] = _key(
        ("ring", "storage_full", "camera_down", "export_request", "unlock_failures"),
        "which events are pushed",
        choices=NOTIFY_EVENT_KINDS,
    )
    quiet_hours: tuple[str, ...] = _key((), _QUIET_DOC, pattern=QUIET_HOURS_PATTERN)


@dataclass(frozen=True)
class EmailConfig:
    enabled: bool = _key(False, "e-mail slower news through the owner's SMTP server")
    host: str = _key("", "SMTP server host name or address")
    port: int = _key(587, "SMTP port (587: STARTTLS, 465: TLS)", min=1, max=65535)
    security: str = _key(
        "starttls",
        "STARTTLS on a plain connection, or TLS from the start",
        choices=("starttls", "tls"),
    )
    ca_file: str = _key("", "CA certificate (PEM) of the SMTP server; empty: the system's")
    username: str = _key("", "SMTP user name (empty: no login)")
    password_file: str = _key("", "file holding the SMTP password; readable by the notifier only")
    sender: str = _key("", "From: address")
    to: tuple[str, ...] = _key((), "To: addresses", pattern=r"[^@\s<>,]+@[^@\s<>,]+")
    events: tuple[str, ...] = _key(
        ("export_request", "export_expiring", "storage_full", "camera_down"),
        "which events are e-mailed",
        choices=NOTIFY_EVENT_KINDS,
    )
    quiet_hours: tuple[str, ...] = _key((), _QUIET_DOC, pattern=QUIET_HOURS_PATTERN)


@dataclass(frozen=True)
class Config:
    camera: CameraConfig = field(default_factory=CameraConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    web: WebConfig = field(default_factory=WebConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    gpio: GpioConfig = field(default_factory=GpioConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    exports: ExportsConfig = field(default_factory=ExportsConfig)
    replicate: ReplicateConfig = field(default_factory=ReplicateConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    ntfy: NtfyConfig = field(default_factory=NtfyConfig)
    email: EmailConfig = field(default_factory=EmailConfig)
    #: the file this configuration was read from (None: built-in defaults)
    source: Path | None = field(default=None, compare=False)

    @property
    def data_dir(self) -> Path:
        return Path(self.storage.data_dir)

    def with_data_dir(self, data_dir: str | Path) -> Config:
        """A copy with ``storage.data_dir`` replaced (the ``--data-dir`` flag)."""
        storage = dataclasses.replace(self.storage, data_dir=str(data_dir))
        return dataclasses.replace(self, storage=storage)


SECTIONS: dict[str, type] = {
    f.name: typing.get_type_hints(Config)[f.name]
    for f in dataclasses.fields(Config)
    if f.name != "source"
}


# --- parsing -------------------------------------------------------------------------------


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return f"an array of {len(value)}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


#: A DNS name or an IPv4/IPv6 address as it may appear in a Host header (no port).


def _unknown(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key (allowed: {', '.join(allowed)}){hint}"


def _number(value: Any, kind: type, meta: dict[str, Any], where: str, problems: list[str]) -> Any:
    wanted = "an integer" if kind is int else "a number"
    ok_types = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        problems.append(f"{where}: {_describe(value)} is not {wanted}")
        return None
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(f"{where}: {_describe(value)} is not a finite number")
        return None
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and value < lo:
        problems.append(f"{where}: {_describe(value)} is below {_describe(lo)}")
        return None
    if hi is not None and value > hi:
        problems.append(f"{where}: {_describe(value)} is above {_describe(hi)}")
        return None
    return float(value) if kind is float else value


def _polygons(value: Any, where: str, problems: list[str]) -> tuple[Polygon, ...] | None:
    shape = "an array of tables like [[privacy.masks]] with points = [[x, y], ...]"
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        problems.append(f"{where}: {_describe(value)} is not {shape}")
        return None
    if len(value) > MAX_POLYGONS:
        problems.append(f"{where}: {len(value)} polygons is above {MAX_POLYGONS}")
        return None
    result = []
    before = len(problems)
    for index, table in enumerate(value):
        here = f"{where}[{index}]"
        for key in table:
            if key not in ("points", "name"):
                problems.append(f"{here}.{key}: {_unknown(key, ['name', 'points'])}")
        name = table.get("name", "")
        if not isinstance(name, str):
            problems.append(f"{here}.name: {_describe(name)} is not a string")
        points = table.get("points")
        if points is None:
            problems.append(f"{here}.points: missing; give at least 3 points [[x, y], ...]")
            continue
        if not isinstance(points, list) or not 3 <= len(points) <= MAX_POLYGON_POINTS:
            problems.append(
                f"{here}.points: {_describe(points)} is not an array of 3 to "
                f"{MAX_POLYGON_POINTS} points [x, y]"
            )
            continue
        parsed = []
        for p_index, point in enumerate(points):
            spot = f"{here}.points[{p_index}]"
            if (
                not isinstance(point, list)
                or len(point) != 2
                or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in point)
            ):
                problems.append(f"{spot}: {_describe(point)} is not a point [x, y] of two numbers")
                continue
            if not all(0.0 <= c <= 1.0 for c in point):
                problems.append(
                    f"{spot}: {point} is outside 0..1 (coordinates are relative to the frame)"
                )
                continue
            parsed.append((float(point[0]), float(point[1])))
        if isinstance(name, str) and len(parsed) == len(points):
            result.append(Polygon(points=tuple(parsed), name=name))
    if len(problems) != before:
        return None
    return tuple(result)


def _form(pattern: str) -> str:
    return "HH:MM-HH:MM, like 22:00-07:00" if pattern == QUIET_HOURS_PATTERN else pattern


def _strings(
    value: Any, meta: dict[str, Any], where: str, problems: list[str]
) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        problems.append(f"{where}: {_describe(value)} is not an array of strings")
        return None
    if len(value) > MAX_STRINGS:
        problems.append(f"{where}: {len(value)} strings is above {MAX_STRINGS}")
        return None
    choices, pattern = meta.get("choices"), meta.get("pattern")
    before = len(problems)
    for index, item in enumerate(value):
        if choices and item not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            problems.append(f"{where}[{index}]: {_describe(item)} is not one of {allowed}")
        elif pattern and not re.fullmatch(pattern, item):
            problems.append(
                f"{where}[{index}]: {_describe(item)} is not in the form {_form(pattern)}"
            )
    return tuple(value) if len(problems) == before else None


def _section(name: str, cls: type, table: Any, problems: list[str]) -> Any:
    if not isinstance(table, dict):
        problems.append(f"{name}: {_describe(table)} is not a table; write it as [{name}]")
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        where = f"{name}.{key}"
        if key not in fields:
            problems.append(f"{where}: {_unknown(key, list(fields))}")
            continue
        kind = hints[key]
        meta = dict(fields[key].metadata)
        if kind is bool:
            if not isinstance(value, bool):
                problems.append(f"{where}: {_describe(value)} is not true or false")
                continue
            parsed: Any = value
        elif kind in (int, float):
            parsed = _number(value, kind, meta, where, problems)
            if parsed is None:
                continue
        elif kind is str:
            if not isinstance(value, str):
                problems.append(f"{where}: {_describe(value)} is not a string")
                continue
            choices = meta.get("choices")
            if choices and value not in choices:
                allowed = ", ".join(repr(c) for c in choices)
                problems.append(f"{where}: {_describe(value)} is not one of {allowed}")
                continue
            if "\x00" in value or len(value) > 4096:
                problems.append(f"{where}: {_describe(value)} is not a usable string")
                continue
            pattern = meta.get("pattern")
            if pattern and not re.fullmatch(pattern, value):
                problems.append(f"{where}: {_describe(value)} is not in the form {_form(pattern)}")
                continue
            parsed = value
        elif kind == tuple[str, ...]:
            parsed = _strings(value, meta, where, problems)
            if parsed is None:
                continue
        elif kind == tuple[Polygon, ...]:
            parsed = _polygons(value, where, problems)
            if parsed is None:
                continue
        else:  # pragma: no cover - a field type this parser does not know is a programming error
            raise TypeError(f"config field {where} has unsupported type {kind}")
        values[key] = parsed
    return cls(**values)


def _cross_checks(config: Config, problems: list[str]) -> None:
    camera, recording = config.camera, config.recording
    if camera.backend == "file" and not camera.path:
        problems.append('camera.path: required when camera.backend = "file"')
    if camera.lores_width > camera.width or camera.lores_height > camera.height:
        problems.append(
            f"camera.lores_width/lores_height: {camera.lores_width}x{camera.lores_height} is "
            f"larger than the main stream {camera.width}x{camera.height}"
        )
    if camera.width % 2 or camera.height % 2:
        problems.append(
            f"camera.width/height: {camera.width}x{camera.height} must be even (H.264 needs it)"
        )
    if recording.pre_roll_s >= recording.max_clip_s:
        problems.append(
            f"recording.pre_roll_s: {_describe(recording.pre_roll_s)} must be below "
            f"recording.max_clip_s ({_describe(recording.max_clip_s)})"
        )
    if not config.storage.data_dir:
        problems.append("storage.data_dir: must not be empty")
    _check_replicate(config.replicate, problems)
    _notify_checks(config, problems)
    if config.web.timezone:
        from doorbell.localtime import zone_by_name

        try:
            zone_by_name(config.web.timezone)
        except ConfigError as exc:
            problems.append(str(exc))


def _check_replicate(replicate: ReplicateConfig, problems: list[str]) -> None:
    """The destination must be usable as written (parsed here, never contacted)."""
    destination = replicate.destination
    if not destination:
        return
    if destination.startswith("sftp://"):
        from doorbell.errors import ReplicationError
        from doorbell.replicate.destination import parse_host_key, parse_sftp_url

        try:
            parse_sftp_url(destination)
        except ReplicationError as exc:
            problems.append(f"replicate.destination: {exc}")
        if not replicate.host_key:
            problems.append(
                "replicate.host_key: required for an sftp destination (the server's key, "
                "from `ssh-keyscan HOST` on a network you trust)"
            )
        else:
            try:
                parse_host_key(replicate.host_key)
            except ReplicationError as exc:
                problems.append(f"replicate.host_key: {exc}")
        if not replicate.identity_file.startswith("/"):
            problems.append("replicate.identity_file: give an absolute path")
    elif "://" in destination or not destination.startswith("/"):
        problems.append(
            f"replicate.destination: {_describe(destination)} is neither an absolute "
            "directory nor sftp://user@host/path"
        )


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _notify_checks(config: Config, problems: list[str]) -> None:
    """A channel that is enabled must say where it goes, and never in plain text off-device."""
    from urllib.parse import urlsplit

    mqtt, ntfy, email = config.mqtt, config.ntfy, config.email
    if mqtt.enabled:
        if not mqtt.host:
            problems.append("mqtt.host: required when mqtt.enabled = true")
        elif not mqtt.tls and not _is_loopback_host(mqtt.host):
            problems.append(
                f"mqtt.tls: false sends the password and alerts in plain text to {mqtt.host!r}; "
                "only a loopback broker may go without TLS"
            )
        if bool(mqtt.cert_file) != bool(mqtt.key_file):
            problems.append("mqtt.cert_file/key_file: give both for certificate authentication")
        if mqtt.password_file and not mqtt.username:
            problems.append("mqtt.username: required with mqtt.password_file")
    if ntfy.enabled or ntfy.url:
        parts = urlsplit(ntfy.url)
        if ntfy.enabled and not ntfy.url:
            problems.append("ntfy.url: required when ntfy.enabled = true")
        elif parts.scheme not in ("https", "http") or not parts.hostname or len(parts.path) < 2:
            problems.append(
                f"ntfy.url: {_describe(ntfy.url)} is not a topic URL like "
                "https://<ntfy host>/doorbell"
            )
        elif parts.scheme == "http" and not _is_loopback_host(parts.hostname):
            problems.append(
                f"ntfy.url: {_describe(ntfy.url)} is plain http to another host; use https"
            )
        elif parts.username or parts.password or parts.query or parts.fragment:
            problems.append("ntfy.url: no user, password, query or fragment (use ntfy.token_file)")
    if email.enabled:
        for key in ("host", "sender"):
            if not getattr(email, key):
                problems.append(f"email.{key}: required when email.enabled = true")
        if not email.to:
            problems.append("email.to: required when email.enabled = true (at least one address)")
        if email.password_file and not email.username:
            problems.append("email.username: required with email.password_file")
    ui_url = config.notify.ui_url
    if ui_url and urlsplit(ui_url).scheme not in ("https", "http"):
        problems.append(f"notify.ui_url: {_describe(ui_url)} is not an http(s) address")


def parse_config(document: dict[str, Any], *, source: Path | None = None) -> Config:
    """Build a :class:`Config` from an already-parsed TOML document.

    Raises :class:`ConfigError` listing every problem, each prefixed with the file name.
    """
    problems: list[str] = []
    sections: dict[str, Any] = {}
    for name, table in document.items():
        if name not in SECTIONS:
            problems.append(f"{name}: {_unknown(name, list(SECTIONS))}")
            continue
        sections[name] = _section(name, SECTIONS[name], table, problems)
    config = Config(**sections, source=source)
    if not problems:
        _cross_checks(config, problems)
    if problems:
        label = str(source) if source is not None else "config"
        lines = [f"{label}: {problem}" for problem in problems]
        raise ConfigError("\n".join(lines), lines)
    return config


def load_config(path: str | Path | None = None, *, required: bool = True) -> Config:
    """Read and validate a configuration file.

    ``path`` None means :data:`DEFAULT_CONFIG_PATH`. When the file does not exist and
    ``required`` is False, the built-in defaults are returned (``source`` stays None).
    Raises :class:`ConfigError` for a missing (when required), unreadable, oversized or
    invalid file.
    """
    config_path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        with config_path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        if not required:
            return Config()
        raise ConfigError(
            f"{config_path}: no such file; create it (an empty file uses every default) "
            "or pass --config PATH"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{config_path}: is a directory, not a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"{config_path}: cannot be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{config_path}: larger than {MAX_CONFIG_BYTES} bytes; not a config file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{config_path}: not UTF-8 text (byte {exc.start})") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: not valid TOML: {exc}") from None
    except (RecursionError, ValueError) as exc:  # arrays nested too deep, a 5000-digit number
        raise ConfigError(f"{config_path}: not a usable TOML file: {exc}") from None
    return parse_config(document, source=config_path)


def describe_keys() -> list[tuple[str, Any, str]]:
    """Every key as (dotted name, default, documentation): for docs and tests of examples."""
    rows = []
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                default: Any = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:  # pragma: no cover - every key has a default
                default = None
            rows.append((f"{section}.{f.name}", default, f.metadata.get("doc", "")))
    return rows
