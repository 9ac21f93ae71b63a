"""Strict configuration: defaults, every kind of bad input, several problems at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from doorbell.config import (
    MAX_CONFIG_BYTES,
    Config,
    Polygon,
    describe_keys,
    load_config,
    parse_config,
)
from doorbell.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "doorbell.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_empty_file_gives_every_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config == Config()
    assert config.camera.backend == "mock"
    assert config.camera.realtime is True
    assert config.storage.data_dir == "/var/lib/doorbell"
    assert config.source == tmp_path / "doorbell.toml"


def test_values_are_read_and_ints_widen_to_floats(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
[camera]
backend = "file"
path = "/srv/door.mp4"
realtime = false
loop = true
width = 640
height = 480
fps = 10
[recording]
pre_roll_s = 4
[storage]
data_dir = "/tmp/x"
[web]
bind = "0.0.0.0"
port = 9443
[[privacy.masks]]
name = "neighbour window"
points = [[0.7, 0.1], [0.95, 0.1], [0.95, 0.4]]
[[motion.zones]]
points = [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]
""",
        )
    )
    assert config.camera.path == "/srv/door.mp4"
    assert config.camera.realtime is False and config.camera.loop is True
    assert config.recording.pre_roll_s == 4.0 and isinstance(config.recording.pre_roll_s, float)
    assert config.web.port == 9443
    assert config.privacy.masks == (
        Polygon(points=((0.7, 0.1), (0.95, 0.1), (0.95, 0.4)), name="neighbour window"),
    )
    assert config.motion.zones[0].name == ""
    assert config.data_dir == Path("/tmp/x")


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(AttributeError):
        config.camera.fps = 3  # type: ignore[misc]


def test_with_data_dir_overrides_only_the_data_dir() -> None:
    config = Config().with_data_dir("/srv/doorbell")
    assert config.storage.data_dir == "/srv/doorbell"
    assert config.storage.retention_days == Config().storage.retention_days


# Each bad config, and a fragment the message must contain (file, dotted key, given, allowed).
BAD_CONFIGS = [
    ("[recording]\npre_roll_s = -3\n", "doorbell.toml: recording.pre_roll_s: -3 is below 0"),
    ("[recording]\npost_roll_s = 1e9\n", "recording.post_roll_s: 1e+09 is above 300"),
    ('[camera]\nbackend = "webcam"\n', "camera.backend: 'webcam' is not one of 'mock', 'file'"),
    ('[camera]\nfps = "fast"\n', "camera.fps: 'fast' is not an integer"),
    ("[camera]\nfps = 12.5\n", "camera.fps: 12.5 is not an integer"),
    ("[camera]\nrealtime = 1\n", "camera.realtime: 1 is not true or false"),
    ("[camera]\nwidht = 640\n", "camera.widht: unknown key (allowed: backend"),
    ('[camera]\nbackend = "file"\n', 'camera.path: required when camera.backend = "file"'),
    ("[storage]\nretention_days = true\n", "storage.retention_days: true is not an integer"),
    ("[storage]\ndata_dir = 3\n", "storage.data_dir: 3 is not a string"),
    ("[web]\nport = 70000\n", "web.port: 70000 is above 65535"),
    ("[web]\nidle_lock_s = 0\n", "web.idle_lock_s: 0 is below 30"),
    ("[webui]\nport = 1\n", "webui: unknown key (allowed: camera"),
    ("camera = 3\n", "camera: 3 is not a table"),
    ('[gpio]\nchime_kind = "bell"\n', "gpio.chime_kind: 'bell' is not one of 'relay', 'buzzer'"),
    ("[gpio]\nbutton_pin = 40\n", "gpio.button_pin: 40 is above 27"),
    ("[[privacy.masks]]\npoints = [[0, 0], [1, 0]]\n", "privacy.masks[0].points: an array of 2"),
    ("[[privacy.masks]]\npoints = [[0, 0], [1.5, 0], [1, 1]]\n", "privacy.masks[0].points[1]"),
    ('[[motion.zones]]\nname = "porch"\n', "motion.zones[0].points: missing"),
    ("[[motion.masks]]\npoints = [[0,0],[1,0],[1,1]]\ncolour = 1\n", "motion.masks[0].colour"),
    ('[privacy]\nmasks = "all"\n', "privacy.masks: 'all' is not an array of tables"),
    ("[motion]\nthreshold = 0\n", "motion.threshold: 0 is below 1"),
    ("[recording]\npre_roll_s = nan\n", "recording.pre_roll_s: nan is not a finite number"),
    ("[recording]\nmax_clip_s = 3\n", "recording.max_clip_s: 3 is below 5"),
    ("[recording]\npre_roll_s = 20\nmax_clip_s = 15\n", "recording.pre_roll_s: 20 must be below"),
    ("[camera]\nwidth = 641\n", "camera.width/height: 641x720 must be even"),
    ("[camera]\nwidth = 320\nheight = 240\nlores_width = 640\n", "larger than the main stream"),
    ("[camera\nbackend = 1\n", "doorbell.toml: not valid TOML"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_bad_config_is_rejected_naming_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert expected in str(caught.value)
    assert str(caught.value).startswith(str(tmp_path / "doorbell.toml"))


def test_several_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = '[camera]\nfps = 0\nbackend = "tv"\n[web]\nport = -1\n[nope]\n'
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    problems = caught.value.problems
    assert len(problems) == 4
    assert any("camera.fps" in p for p in problems)
    assert any("camera.backend" in p for p in problems)
    assert any("web.port" in p for p in problems)
    assert any(
        p.endswith(
            "nope: unknown key (allowed: camera, motion, recording, storage, web, "
            "live, gpio, privacy, audit, exports, replicate, notify, mqtt, ntfy, email)"
        )
        for p in problems
    )


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'pre_roll_s'"):
        load_config(write(tmp_path, "[recording]\npreroll_s = 2\n"))


def test_config_error_is_also_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_config({"camera": {"fps": -1}})


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")


def test_missing_default_file_may_fall_back_to_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path / "absent.toml", required=False) == Config()


def test_directory_binary_and_huge_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than"):
        load_config(huge)


def test_polygon_to_pixels_stays_inside_the_image() -> None:
    polygon = Polygon(points=((0.0, 0.0), (1.0, 0.0), (1.0, 1.0)))
    assert polygon.to_pixels(320, 240) == [(0, 0), (319, 0), (319, 239)]


def test_every_key_is_documented() -> None:
    rows = describe_keys()
    names = [name for name, _default, _doc in rows]
    assert "camera.backend" in names and "storage.data_dir" in names and "web.port" in names
    assert "privacy.masks" in names and "motion.zones" in names and "motion.masks" in names
    assert all(doc for _name, _default, doc in rows), "every config key needs a doc line"
