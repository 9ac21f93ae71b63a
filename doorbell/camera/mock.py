"""The mock camera: a deterministic, scripted doorstep with ground truth in every frame.

A scenario is an endless sequence of *episodes* (a person calling, a car passing, the porch
light switching, a cloud's shadow, ...) drawn from a random generator seeded by
``camera.seed``. Frame ``n`` depends only on (scenario, seed, size, fps, n): same seed, same
frames and same truth. Frames carry :class:`~doorbell.camera.FrameTruth` (boxes in main
pixels, whether a person is in view, which nuisances are present) so the motion detector can
be measured, not guessed at (``bench/motion_eval.py``).

Person scenarios: ``person`` (day; speed, contrast and side vary), ``person_night`` (infrared,
grainy), ``person_light`` (the porch light switches on as they arrive), ``person_close`` (they
step right up to the lens and fill much of the frame), ``delivery`` (fast in and out),
``person_low`` and ``person_dusk`` (clothes 10-20 grey levels from the paving or the lawn, in
clean daylight or at dusk), ``person_wait`` (they wait 20-40 s at the door, then leave).
Nuisances, with nobody calling: ``car``, ``porch_light``, ``cloud``, ``wind`` (bush sway),
``night_noise`` (with the day/infrared switch), ``rain``, ``snow``, ``exposure`` (auto-exposure
settling after a jump). ``doorstep`` (the default, for the demo) mixes quiet spells, callers
and nuisances, day and night, forever.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from doorbell.camera import BaseCamera, FrameTruth, Pacer
from doorbell.camera.synthetic.episodes import (
    PERSON_SCENARIOS,
    SCENARIOS,
    Episode,
    make_episode,
)
from doorbell.camera.synthetic.scene import (
    MAX_SWAY,
    WALL_RIGHT,
    SceneLayers,
    draw_car,
    draw_person,
    person_box,
)
from doorbell.errors import ConfigError

if TYPE_CHECKING:
    from doorbell.config import CameraConfig
    from doorbell.masks import PolygonLike

__all__ = ["PERSON_SCENARIOS", "SCENARIOS", "MockCamera", "MockScene"]

_NOISE_SCALE = 16.0  # the noise bank holds N(0, 1) * this, as int8
_NOISE_PAD = 64


@dataclass
class _Cursor:
    episodes: list[Episode] = field(default_factory=list)
    position: int = 0


class MockScene:
    """Renders frame ``n`` of a scenario at a given size. Sequential access is cheapest."""

    def __init__(
        self,
        scenario: str,
        seed: int,
        width: int,
        height: int,
        fps: float,
        lores_size: tuple[int, int],
    ) -> None:
        if scenario not in SCENARIOS:
            raise ConfigError(
                f"camera.scenario: {scenario!r} is not one of {', '.join(sorted(SCENARIOS))}"
            )
        self.scenario, self.seed, self.fps = scenario, seed, fps
        self.width, self.height = width, height
        self.lores_size = lores_size
        self.layers = SceneLayers(width, height)
        self._rng = np.random.default_rng([seed, 7])
        self._cursor = _Cursor()
        # noise is computed for the lores stream: downscaling averages it, so the main image
        # gets proportionally more and both sizes show the scene's intended grain
        self._noise_gain = math.sqrt(max(1.0, (width * height) / (lores_size[0] * lores_size[1])))
        bank_rng = np.random.default_rng(seed ^ 0x5EED)
        bank = bank_rng.standard_normal((height + _NOISE_PAD, width + _NOISE_PAD), np.float32)
        self._noise = np.clip(bank * _NOISE_SCALE, -127, 127).astype(np.int8)

    # --- timeline --------------------------------------------------------------------------

    def episode_at(self, t: float) -> Episode:
        """The episode playing at scenario time ``t`` (seconds from the first frame)."""
        cursor = self._cursor
        if not cursor.episodes:
            cursor.episodes.append(make_episode(self.scenario, self._rng, 0.0, None))
        while cursor.position > 0 and t < cursor.episodes[cursor.position].start_s:
            cursor.position -= 1
        while t >= cursor.episodes[cursor.position].end_s:
            if cursor.position + 1 == len(cursor.episodes):
                last = cursor.episodes[-1]
                cursor.episodes.append(make_episode(self.scenario, self._rng, last.end_s, last))
            cursor.position += 1
        return cursor.episodes[cursor.position]

    # --- rendering -------------------------------------------------------------------------

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray, FrameTruth]:
        """Main (BGR), lores (grey) and ground truth of frame ``index``."""
        t_abs = index / self.fps
        episode = self.episode_at(t_abs)
        t = t_abs - episode.start_s
        w, h = self.width, self.height
        night = episode.is_night(t)
        light = episode.light_level(t) if night else 0.0
        conditions: list[str] = []
        if night:
            conditions.append("night")
            if light > 0:
                conditions.append("porch_light")
            off, on = self.layers.base["night_off"], self.layers.base["night_on"]
            image = on.copy() if light >= 1 else off.copy()
            if 0 < light < 1:
                image = cv2.addWeighted(off, 1 - light, on, light, 0)
            bush_key = "night_on" if light >= 0.5 else "night_off"
        else:
            image = self.layers.base["day"].copy()
            bush_key = "day"
        sway = episode.sway(t)
        if episode.wind > 0:
            conditions.append("wind")
        self.layers.paste_bush(image, self.layers.bush[bush_key], round(sway * MAX_SWAY * w))

        boxes: list[tuple[int, int, int, int]] = []
        labels: list[str] = []
        # the street and sidewalk pass behind the house wall: draw them right of it only
        wall = round(WALL_RIGHT * w)
        behind = image[:, wall:]
        for car in episode.cars:
            where = car.at(t)
            if where is None:
                continue
            x, y_bottom, length = where
            body, glass = (car.body, car.glass) if not night else ((car.ir,), (car.ir // 2,))
            box = draw_car(behind, x * w - wall, y_bottom * h, length * w, body, glass)
            if box is not None:
                boxes.append((box[0] + wall, *box[1:]))
                labels.append("car")
        event_active = False
        for walker in episode.walkers:
            pose = walker.at(t)
            if pose is None:
                continue
            cx, feet, tall, phase = pose
            clothes, skin = walker.colours(
                night, light, self.layers.glow, cx, feet - 0.5 * tall, feet
            )
            on_sidewalk = feet < 0.36
            canvas, shift = (behind, wall) if on_sidewalk else (image, 0)
            draw_person(
                canvas,
                cx * w - shift,
                feet * h,
                tall * h,
                phase,
                clothes,
                skin,
                walker.carrying,
                walker.flat,
            )
            box = person_box(cx * w - shift, feet * h, tall * h, w - shift, h)
            if box is not None:
                box = (box[0] + shift, *box[1:])
                boxes.append(box)
                labels.append("person")
                event_active = True

        if not night:
            for cloud in episode.clouds:
                profile_span = cloud.profile(t, w)
                if profile_span is not None:
                    conditions.append("cloud")
                    x0, x1, profile = profile_span
                    band = image[:, x0:x1].astype(np.uint16) * profile[None, :, None]
                    image[:, x0:x1] = (band >> 8).astype(np.uint8)
        gain = episode.exposure_gain(t)
        if gain != 1.0:
            conditions.append("exposure")
        if episode.dusk != 1.0:
            conditions.append("dusk")
            gain *= episode.dusk
        if gain != 1.0:
            image = cv2.convertScaleAbs(image, alpha=gain)
        self._weather(image, episode, t, index, night, conditions)
        sigma = episode.noise_sigma(t) * self._noise_gain
        if sigma > 0:
            frame_rng = np.random.default_rng([self.seed, index, 3])
            ox, oy = (int(v) for v in frame_rng.integers(0, _NOISE_PAD, 2))
            window = self._noise[oy : oy + h, ox : ox + w]
            if image.ndim == 3:
                window = cv2.merge([window, window, window])
            image = cv2.addWeighted(image, 1.0, window, sigma / _NOISE_SCALE, 0, dtype=cv2.CV_8U)

        if image.ndim == 2:
            lores = (
                image
                if (w, h) == self.lores_size
                else cv2.resize(image, self.lores_size, interpolation=cv2.INTER_AREA)
            )
            main = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        else:
            main = image
            small = (
                main
                if (w, h) == self.lores_size
                else cv2.resize(main, self.lores_size, interpolation=cv2.INTER_AREA)
            )
            lores = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        if lores is image:
            lores = lores.copy()
        truth = FrameTruth(tuple(boxes), event_active, tuple(labels), tuple(conditions))
        return main, lores, truth

    def _weather(
        self,
        image: np.ndarray,
        episode: Episode,
        t: float,
        index: int,
        night: bool,
        conditions: list[str],
    ) -> None:
        w, h = self.width, self.height
        bright = (200, 200, 200) if image.ndim == 3 else (150 if night else 200,)
        thickness = max(1, w // 640)
        if episode.rain > 0:
            conditions.append("rain")
            rng = np.random.default_rng([self.seed, index, 5])
            count = episode.rain
            xs = rng.uniform(-0.05, 1.0, count) * w
            ys = rng.uniform(-0.05, 1.0, count) * h
            length = 0.035 * h
            for x, y in zip(xs, ys, strict=True):
                cv2.line(
                    image,
                    (round(x), round(y)),
                    (round(x + 0.25 * length), round(y + length)),
                    bright,
                    thickness,
                )
        if episode.snow is not None:
            conditions.append("snow")
            flakes = episode.snow
            ys = np.mod(flakes[:, 1] + flakes[:, 2] * t, 1.0) * h
            xs = (flakes[:, 0] + 0.01 * np.sin(t * 1.3 + flakes[:, 3])) * w
            radius = max(1, round(w / 400))
            for x, y in zip(xs, ys, strict=True):
                cv2.circle(image, (round(x), round(y)), radius, bright, -1)


class MockCamera(BaseCamera):
    """A :class:`~doorbell.camera.Camera` playing a :class:`MockScene` (``camera.scenario``).

    Timestamps are the first clock reading plus ``n / fps``. With ``camera.realtime`` the
    camera sleeps to deliver frames at ``fps``; otherwise it runs as fast as it can render.
    It never ends by itself.
    """

    def __init__(
        self,
        config: CameraConfig,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        privacy_masks: Iterable[PolygonLike] = (),
    ) -> None:
        super().__init__(
            width=config.width, height=config.height, fps=config.fps, privacy_masks=privacy_masks
        )
        self.scene = MockScene(
            config.scenario,
            config.seed,
            config.width,
            config.height,
            config.fps,
            (config.lores_width, config.lores_height),
        )
        self._pacer = Pacer(config.fps, realtime=config.realtime, clock=clock, sleep=sleep)
        self._frame = 0

    def _capture(self) -> tuple[float, np.ndarray, np.ndarray, FrameTruth | None]:
        timestamp = self._pacer.wait(self._frame / self.fps)
        main, lores, truth = self.scene.render(self._frame)
        self._frame += 1
        return timestamp, main, lores, truth
