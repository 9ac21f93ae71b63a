"""The camera layer and the mock backend: determinism, truth, pacing, privacy masks."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

from doorbell.camera import Camera, Frame, open_camera
from doorbell.camera.synthetic.episodes import SCENARIOS
from doorbell.config import CameraConfig, Polygon, load_config
from doorbell.errors import ConfigError

SMALL = CameraConfig(width=160, height=96, lores_width=80, lores_height=48, fps=10, realtime=False)
LEFT_QUARTER = Polygon(points=((0.0, 0.0), (0.25, 0.0), (0.25, 1.0), (0.0, 1.0)))


def frames(config: CameraConfig, count: int, **kwargs) -> list[Frame]:
    with open_camera(config, clock=lambda: 100.0, **kwargs) as camera:
        return [camera.read() for _ in range(count)]


def test_importing_the_package_loads_no_backend():
    import importlib

    for name in ("doorbell.camera.picam", "doorbell.camera.file"):
        sys.modules.pop(name, None)
    importlib.reload(sys.modules["doorbell.camera"])
    assert "doorbell.camera.picam" not in sys.modules
    assert "picamera2" not in sys.modules


def test_mock_frames_follow_the_contract():
    shot = frames(SMALL, 3)
    assert [f.index for f in shot] == [0, 1, 2]
    assert [f.timestamp for f in shot] == pytest.approx([100.0, 100.1, 100.2])
    first = shot[0]
    assert first.main.shape == (96, 160, 3) and first.main.dtype == np.uint8
    assert first.lores.shape == (48, 80) and first.lores.dtype == np.uint8
    assert first.truth is not None
    with open_camera(SMALL) as camera:
        assert isinstance(camera, Camera)
        assert (camera.width, camera.height, camera.fps) == (160, 96, 10)


def test_same_seed_same_frames_and_truth_other_seed_differs():
    config = dataclasses.replace(SMALL, scenario="doorstep", seed=7)
    a, b = frames(config, 120), frames(config, 120)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.main, y.main) and np.array_equal(x.lores, y.lores)
        assert x.truth == y.truth
    c = frames(dataclasses.replace(config, seed=8), 120)
    assert any(not np.array_equal(x.main, z.main) for x, z in zip(a, c, strict=True))


@pytest.mark.parametrize("scenario", ["person", "person_close", "delivery"])
def test_person_scenarios_have_a_person_event_with_boxes(scenario):
    config = dataclasses.replace(SMALL, scenario=scenario, seed=3)
    shot = frames(config, 400)
    active = [f for f in shot if f.truth.event_active]
    assert active, "a person should call within 40 s"
    assert all("person" in f.truth.labels for f in active)
    assert not shot[0].truth.event_active  # quiet lead-in first
    biggest = max(
        w * h
        for f in active
        for (_, _, w, h), lab in zip(f.truth.boxes, f.truth.labels, strict=True)
        if lab == "person"
    )
    assert biggest > 0.1 * 160 * 96  # they come close


@pytest.mark.parametrize(
    ("scenario", "condition"),
    [
        ("porch_light", "porch_light"),
        ("cloud", "cloud"),
        ("rain", "rain"),
        ("exposure", "exposure"),
    ],
)
def test_nuisance_scenarios_have_no_event_but_their_condition(scenario, condition):
    config = dataclasses.replace(SMALL, scenario=scenario, seed=2)
    shot = frames(config, 300)
    assert not any(f.truth.event_active for f in shot)
    assert any(condition in f.truth.conditions for f in shot)


def test_config_scenario_choices_match_the_mock():
    field = {f.name: f for f in dataclasses.fields(CameraConfig)}["scenario"]
    assert set(field.metadata["choices"]) == set(SCENARIOS)


def test_unknown_scenario_is_a_config_error(tmp_path):
    path = tmp_path / "d.toml"
    path.write_text('[camera]\nscenario = "zombies"\n')
    with pytest.raises(ConfigError, match=r"camera\.scenario"):
        load_config(path)


def test_realtime_paces_with_the_injected_clock_and_sleep():
    now = [50.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    config = dataclasses.replace(SMALL, realtime=True)
    with open_camera(config, clock=lambda: now[0], sleep=sleep) as camera:
        stamps = [camera.read().timestamp for _ in range(4)]
    assert stamps == pytest.approx([50.0, 50.1, 50.2, 50.3])
    assert sum(sleeps) == pytest.approx(0.3)


def test_privacy_masks_black_on_main_and_lores():
    shot = frames(SMALL, 2, privacy_masks=[LEFT_QUARTER])
    for frame in shot:
        assert not frame.main[:, :40].any()
        assert not frame.lores[:, :20].any()
        assert frame.main[:, 42:].any() and frame.lores[:, 21:].any()


def test_closed_camera_refuses_reads():
    camera = open_camera(SMALL)
    camera.close()
    camera.close()  # idempotent
    with pytest.raises(Exception, match="closed"):
        camera.read()


def test_mock_renders_720p_well_within_the_frame_interval():
    import time

    config = dataclasses.replace(SMALL, width=1280, height=720, lores_width=320, lores_height=240)
    with open_camera(config) as camera:
        camera.read()
        started = time.perf_counter()
        for _ in range(20):
            camera.read()
        per_frame = (time.perf_counter() - started) / 20
    assert per_frame < 1 / 15 / 2  # under half the 15 fps interval, even on a busy machine


@pytest.mark.parametrize("scenario", ["person_low", "person_dusk"])
def test_low_contrast_callers_are_10_to_20_grey_levels_from_the_paving(scenario):
    # as the camera sees them: after the dusk dimming, at the scene's own grain
    from doorbell.camera.mock import MockScene

    darker = lighter = 0
    for seed in range(1, 13):
        episode = MockScene(scenario, seed, 320, 240, 10, (320, 240)).episode_at(0.0)
        (walker,) = episode.walkers
        assert walker.flat and not episode.night
        contrast = (walker.clothes[0] - 162.0) * episode.dusk
        assert 9.5 <= abs(contrast) <= 20.5, (seed, walker.clothes, episode.dusk)
        assert len(set(walker.clothes)) == 1  # grey: the same contrast in every channel
        darker, lighter = darker + (contrast < 0), lighter + (contrast > 0)
        if scenario == "person_low":
            assert episode.dusk == 1.0 and 2.0 <= episode.day_noise <= 3.0
        else:
            assert 0.35 <= episode.dusk <= 0.55 and 2.5 <= episode.day_noise <= 4.0
    assert darker and lighter  # dark and light clothing


def test_waiting_caller_stands_20_to_40_s_at_the_door():
    from doorbell.camera.mock import MockScene

    for seed in range(1, 6):
        (walker,) = MockScene("person_wait", seed, 320, 240, 10, (320, 240)).episode_at(0).walkers
        assert 20.0 <= walker.pause_s <= 40.0
