"""``doorbell motion-preview``: annotated, unencrypted output only where the owner says."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
from click.testing import CliRunner

from doorbell.cli import cli

CONFIG = """
[camera]
width = 160
height = 96
lores_width = 80
lores_height = 48
fps = 10
scenario = "person"
seed = 3
[[motion.zones]]
points = [[0.3, 0.34], [0.7, 0.34], [0.8, 1.0], [0.0, 1.0]]
[[motion.masks]]
points = [[0.8, 0.4], [1.0, 0.4], [1.0, 0.8], [0.8, 0.8]]
"""


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "doorbell.toml"
    path.write_text(CONFIG)
    return path


def run(*args: str):
    return CliRunner().invoke(cli, ["motion-preview", *args], catch_exceptions=False)


def test_writes_annotated_pngs_and_warns(tmp_path, data_dir):
    out = tmp_path / "preview"
    result = run(
        "--config",
        str(write_config(tmp_path)),
        "--data-dir",
        str(data_dir),
        "--frames",
        "5",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "UNENCRYPTED" in result.output
    files = sorted(out.glob("frame_*.png"))
    assert len(files) == 5
    image = cv2.imread(str(files[-1]))
    assert image.shape == (96, 160, 3)
    green = (image[:, :, 1] == 200) & (image[:, :, 0] == 0) & (image[:, :, 2] == 0)
    assert green.any()  # the zone outline is drawn
    assert not list(data_dir.iterdir())


def test_writes_an_mp4_when_asked(tmp_path, data_dir):
    out = tmp_path / "preview.mp4"
    result = run(
        "--config",
        str(write_config(tmp_path)),
        "--data-dir",
        str(data_dir),
        "--frames",
        "8",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 8
    assert [p.name for p in tmp_path.iterdir() if "tmp" in p.name] == []


def test_refuses_to_write_inside_the_data_dir(tmp_path, data_dir):
    result = run(
        "--config",
        str(write_config(tmp_path)),
        "--data-dir",
        str(data_dir),
        "--out",
        str(data_dir / "clips" / "x"),
    )
    assert result.exit_code == 2
    assert "data directory" in result.output
    assert not list(data_dir.iterdir())


def test_out_is_required(tmp_path):
    result = run("--config", str(write_config(tmp_path)))
    assert result.exit_code == 2
    assert "--out" in result.output
