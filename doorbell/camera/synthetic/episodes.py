"""The mock camera's scripts: episodes of a scenario, and where everything is at time t.

An :class:`Episode` is a stretch of scenario time (typically 25-45 s) with its cast: people
walking up to the door, cars, the porch light's schedule, cloud shadows, exposure jumps,
wind, rain, snow, sensor noise. :func:`make_episode` draws one from a seeded generator; all
positions are relative (0..1 of width or height), sizes of people relative to the height.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from doorbell.camera.synthetic.scene import ir_gain

PERSON_SCENARIOS = (
    "person",
    "person_night",
    "person_light",
    "person_close",
    "delivery",
    "person_low",
    "person_dusk",
    "person_wait",
)
NUISANCE_SCENARIOS = (
    "car",
    "porch_light",
    "cloud",
    "wind",
    "night_noise",
    "rain",
    "snow",
    "exposure",
)
SCENARIOS = ("doorstep", *PERSON_SCENARIOS, *NUISANCE_SCENARIOS)
#: What the ``doorstep`` demo mixes (the low-contrast and waiting callers are bench scenarios).
_DOORSTEP_KINDS = (
    "person",
    "person_night",
    "person_light",
    "person_close",
    "delivery",
    *NUISANCE_SCENARIOS,
)
#: The grey level of the path's paving (BGR 150, 160, 172; mottled +-10), which a
#: low-contrast visitor's clothes are matched to: a light background by day, a dark one at dusk.
_PAVING_GREY = 162.0

_PATH_COLOUR = (150, 160, 172)
_LIGHT_RAMP_S = 0.12
_SIDEWALK_Y = 0.335


def _ir_grey(colour: tuple[int, int, int], glow: float, light: float, ir: float) -> int:
    grey = 0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2]
    return int(min(255, grey * ir + 10 + grey * glow * 0.9 * light))


@dataclass
class Walker:
    """A person: along the sidewalk, up the path (growing), optionally right up to the lens,
    a pause at the door, and back the way they came or out the other side."""

    start_s: float
    enter_x: float  # -0.06 (from the left) or 1.06
    exit_x: float
    side_speed: float  # widths per second along the sidewalk
    approach_s: float
    close_s: float  # 0: they stop at the door; > 0: they step up to the lens
    pause_s: float
    door_x: float
    clothes: tuple[int, int, int]
    skin: tuple[int, int, int]
    carrying: bool = False
    flat: bool = False  # legs in the clothes' colour (not darker): a low-contrast visitor

    def _legs(self) -> list[tuple[str, float]]:
        walk_in = abs(0.5 - self.enter_x) / self.side_speed
        walk_out = abs(self.exit_x - 0.5) / self.side_speed
        legs = [("in", walk_in), ("up", self.approach_s)]
        if self.close_s:
            legs.append(("close", self.close_s))
        legs.append(("pause", self.pause_s))
        if self.close_s:
            legs.append(("back", self.close_s))
        legs += [("down", self.approach_s * 0.9), ("out", walk_out)]
        return legs

    @property
    def end_s(self) -> float:
        return self.start_s + sum(d for _, d in self._legs())

    def arrival_s(self, progress: float) -> float:
        """Scenario time when the walker is ``progress`` (0..1) of the way up the path."""
        return self.start_s + self._legs()[0][1] + progress * self.approach_s

    def at(self, t: float) -> tuple[float, float, float, float] | None:
        """(centre x, feet y, height, gait phase) at episode time ``t``; None when absent."""
        elapsed = t - self.start_s
        if elapsed < 0:
            return None
        phase = elapsed * 2 * math.pi * (1.6 if self.carrying else 1.0)
        for name, duration in self._legs():
            if elapsed <= duration:
                f = elapsed / duration if duration > 0 else 1.0
                return self._pose(name, f, phase)
            elapsed -= duration
        return None

    def _pose(self, leg: str, f: float, phase: float) -> tuple[float, float, float, float]:
        def path(p: float) -> tuple[float, float, float]:
            return 0.5 + (self.door_x - 0.5) * p, 0.34 + 0.62 * p, 0.105 / (1 - 0.885 * p)

        def close(q: float) -> tuple[float, float, float]:
            return self.door_x + (0.45 - self.door_x) * q, 0.96 + 1.24 * q, 0.913 + 1.49 * q

        if leg == "in":
            return self.enter_x + (0.5 - self.enter_x) * f, _SIDEWALK_Y, 0.10, phase
        if leg == "out":
            return 0.5 + (self.exit_x - 0.5) * f, _SIDEWALK_Y, 0.10, phase
        if leg in ("up", "down"):
            return (*path(f if leg == "up" else 1 - f), phase)
        if leg in ("close", "back"):
            return (*close(f if leg == "close" else 1 - f), phase)
        x, feet, tall = close(1.0) if self.close_s else path(1.0)
        return x, feet, tall, 0.15 * math.sin(phase * 0.3)

    def colours(
        self, night: bool, light: float, glow: np.ndarray, x: float, y: float, feet: float
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Clothes and skin colours as the camera sees them (BGR by day, infrared grey by night)."""
        if not night:
            return self.clothes, self.skin
        gy = min(glow.shape[0] - 1, max(0, int(y * glow.shape[0])))
        gx = min(glow.shape[1] - 1, max(0, int(x * glow.shape[1])))
        level = float(glow[gy, gx])
        ir = float(ir_gain(feet))
        return (_ir_grey(self.clothes, level, light, ir),), (_ir_grey(self.skin, level, light, ir),)


@dataclass
class Car:
    start_s: float
    direction: int
    speed: float  # widths per second
    length: float  # of the width
    y_bottom: float
    body: tuple[int, int, int]
    glass: tuple[int, int, int]
    ir: int

    def at(self, t: float) -> tuple[float, float, float] | None:
        x0 = -self.length if self.direction > 0 else 1.0
        x = x0 + self.direction * self.speed * (t - self.start_s)
        if t < self.start_s or x < -self.length or x > 1.0:
            return None
        return x, self.y_bottom, self.length


@dataclass
class Cloud:
    start_s: float
    direction: int
    speed: float
    width: float
    darkness: float  # brightness factor in the full shadow

    def profile(self, t: float, image_width: int) -> tuple[int, int, np.ndarray] | None:
        """Columns x0..x1 under the shadow and their brightness (x256, uint16), or None."""
        start = -self.width / 2 if self.direction > 0 else 1 + self.width / 2
        centre = start + self.direction * self.speed * (t - self.start_s)
        if t < self.start_s:
            return None
        x0 = max(0, math.floor((centre - self.width / 2) * image_width))
        x1 = min(image_width, math.ceil((centre + self.width / 2) * image_width))
        if x1 <= x0:
            return None
        xs = (np.arange(x0, x1, dtype=np.float32) / image_width - centre) / (self.width / 2)
        edge = np.clip((1 - np.abs(xs)) / 0.45, 0, 1)  # soft shadow edges
        shade = 1 - (1 - self.darkness) * (0.5 - 0.5 * np.cos(np.pi * edge))
        return x0, x1, (shade * 256).astype(np.uint16)


@dataclass
class Episode:
    kind: str
    start_s: float
    duration_s: float
    night: bool = False
    ir_switch_s: float | None = None  # day -> infrared night at this time
    walkers: list[Walker] = field(default_factory=list)
    cars: list[Car] = field(default_factory=list)
    clouds: list[Cloud] = field(default_factory=list)
    lights: list[tuple[float, float]] = field(default_factory=list)
    jumps: list[tuple[float, float, float, float]] = field(default_factory=list)
    wind: float = 0.0
    wind_hz: float = 0.5
    rain: int = 0
    snow: np.ndarray | None = None
    noise: float = 1.0
    day_noise: float = 1.0  # sensor noise sigma by day (grey levels)
    dusk: float = 1.0  # brightness of the whole picture (dusk: well under 1, not yet infrared)

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def is_night(self, t: float) -> bool:
        return self.night or (self.ir_switch_s is not None and t >= self.ir_switch_s)

    def light_level(self, t: float) -> float:
        level = 0.0
        for on, off in self.lights:
            up = min(1.0, max(0.0, (t - on) / _LIGHT_RAMP_S))
            down = min(1.0, max(0.0, (off - t) / _LIGHT_RAMP_S))
            level = max(level, min(up, down))
        return level

    def sway(self, t: float) -> float:
        gust = 0.6 + 0.4 * math.sin(2 * math.pi * 0.07 * t + self.start_s)
        return self.wind * gust * math.sin(2 * math.pi * self.wind_hz * t)

    def exposure_gain(self, t: float) -> float:
        gain = 1.0
        for at, amplitude, tau, period in self.jumps:
            age = t - at
            if 0 <= age < 6 * tau:
                gain *= 1 + amplitude * math.exp(-age / tau) * math.cos(2 * math.pi * age / period)
        return gain

    def noise_sigma(self, t: float) -> float:
        return self.noise if self.is_night(t) else self.day_noise


# --- drawing episodes ------------------------------------------------------------------------


def _colour(rng: np.random.Generator, low_contrast: bool) -> tuple[int, int, int]:
    if low_contrast:  # clothes close to the paving and porch colours
        return tuple(int(np.clip(c + rng.uniform(-35, 35), 0, 255)) for c in _PATH_COLOUR)  # type: ignore[return-value]
    palette = [
        (30, 30, 30),
        (200, 200, 205),
        (140, 60, 30),
        (40, 40, 160),
        (60, 120, 200),
        (90, 70, 60),
    ]
    base = palette[int(rng.integers(len(palette)))]
    return tuple(int(np.clip(c + rng.uniform(-20, 20), 0, 255)) for c in base)  # type: ignore[return-value]


def _walker(
    rng: np.random.Generator, start: float, *, fast: bool = False, close: bool = False
) -> Walker:
    enter = -0.06 if rng.random() < 0.5 else 1.06
    exit_x = enter if rng.random() < 0.5 else 1.0 - enter
    skin_base = [(60, 90, 140), (110, 150, 200), (150, 185, 225)][int(rng.integers(3))]
    return Walker(
        start_s=start,
        enter_x=enter,
        exit_x=exit_x,
        side_speed=rng.uniform(0.25, 0.4) if fast else rng.uniform(0.12, 0.22),
        approach_s=rng.uniform(1.8, 2.6) if fast else rng.uniform(3.0, 7.0),
        close_s=rng.uniform(1.2, 2.2) if close else 0.0,
        pause_s=rng.uniform(0.8, 1.5) if fast else rng.uniform(1.5, 5.0),
        door_x=rng.uniform(0.3, 0.45),
        clothes=_colour(rng, low_contrast=rng.random() < 0.35),
        skin=tuple(int(np.clip(c + rng.uniform(-15, 15), 0, 255)) for c in skin_base),  # type: ignore[arg-type]
        carrying=fast,
    )


def _car(rng: np.random.Generator, start: float) -> Car:
    red, green, blue = (int(v) for v in rng.integers(20, 230, 3))
    return Car(
        start,
        1 if rng.random() < 0.5 else -1,
        rng.uniform(0.35, 0.8),
        rng.uniform(0.16, 0.24),
        0.27 if rng.random() < 0.5 else 0.295,
        (red, green, blue),
        (70, 60, 50),
        int(rng.integers(20, 90)),
    )


def _low_contrast(rng: np.random.Generator, ep: Episode, walker: Walker, *, dusk: bool) -> None:
    """Dress ``walker`` 10-20 grey levels (as the camera sees them) darker or lighter than the
    paving, in clean daylight noise (sigma 2-3: a light background) or at dusk (the whole
    picture at 35-55 % brightness, sigma 2.5-4: a dark background)."""
    if dusk:
        ep.dusk = float(rng.uniform(0.35, 0.55))
        ep.day_noise = float(rng.uniform(2.5, 4.0))
    else:
        ep.day_noise = float(rng.uniform(2.0, 3.0))
    sign = 1 if rng.random() < 0.5 else -1
    # the contrast the camera sees is after the dusk dimming: paint it that much stronger
    clothes = _PAVING_GREY + sign * rng.uniform(10.0, 20.0) / ep.dusk
    head = _PAVING_GREY + sign * rng.uniform(10.0, 20.0) / ep.dusk  # a hood, a hat, hair
    walker.clothes = _grey(clothes)
    walker.skin = _grey(head)
    walker.flat = True


def _grey(level: float) -> tuple[int, int, int]:
    value = int(np.clip(round(level), 0, 255))
    return value, value, value


def _waiting(rng: np.random.Generator, ep: Episode, walker: Walker) -> None:
    """The caller waits 20-40 s at the door (nobody answers), then leaves; by day or at night
    (half of the nights with the porch light on), a third of the time in the rain."""
    walker.pause_s = float(rng.uniform(20.0, 40.0))
    ep.night = bool(rng.random() < 0.5)
    ep.noise = float(rng.uniform(3.0, 6.0)) if ep.night else 1.0
    if ep.night and rng.random() < 0.5:
        ep.lights.append((0.0, 1e9))
    if rng.random() < 0.33:
        ep.rain = int(rng.integers(60, 200))


def make_episode(
    scenario: str, rng: np.random.Generator, start_s: float, previous: Episode | None
) -> Episode:
    """The next episode of ``scenario`` starting at ``start_s`` (scenario seconds)."""
    kind = scenario
    if scenario == "doorstep":
        if previous is not None and previous.kind != "quiet" and rng.random() < 0.35:
            kind = "quiet"
        else:
            kinds = list(_DOORSTEP_KINDS)
            weights = np.array([5, 2, 2, 1, 2, 3, 1, 2, 2, 1, 1, 1, 2], float)
            kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    night_prev = previous.is_night(previous.duration_s) if previous else False
    lead = rng.uniform(5.0, 9.0)
    ep = Episode(kind=kind, start_s=start_s, duration_s=0.0)
    ep.night = {
        "person_night": True,
        "person_light": True,
        "porch_light": True,
        "cloud": False,
        "exposure": False,
        "person": False,
        "person_low": False,
        "person_dusk": False,
        "night_noise": False,
    }.get(kind, bool(rng.random() < (0.8 if night_prev else 0.25)))
    if scenario == "doorstep" and kind in ("person", "cloud", "exposure") and night_prev:
        ep.night = False  # daybreak
    ep.noise = rng.uniform(3.0, 6.0) if ep.night else 1.0
    busy = lead
    if kind in PERSON_SCENARIOS:
        walker = _walker(rng, lead, fast=kind == "delivery", close=kind == "person_close")
        ep.walkers.append(walker)
        busy = walker.end_s
        if kind == "person_light":
            on = walker.arrival_s(rng.uniform(0.1, 0.6))
            ep.lights.append((on, walker.end_s + rng.uniform(2.0, 6.0)))
            busy = ep.lights[-1][1]
        elif kind == "person_night" and rng.random() < 0.3:
            ep.lights.append((0.0, 1e9))
        elif kind in ("person_low", "person_dusk"):
            _low_contrast(rng, ep, walker, dusk=kind == "person_dusk")
        elif kind == "person_wait":
            _waiting(rng, ep, walker)
            busy = walker.end_s
    elif kind == "car":
        for _ in range(int(rng.integers(2, 6))):
            ep.cars.append(_car(rng, busy))
            busy += rng.uniform(2.0, 8.0)
    elif kind == "porch_light":
        for _ in range(int(rng.integers(2, 4))):
            on = busy + rng.uniform(0.0, 3.0)
            ep.lights.append((on, on + rng.uniform(4.0, 10.0)))
            busy = ep.lights[-1][1] + 1.0
    elif kind == "cloud":
        for _ in range(int(rng.integers(1, 3))):
            cloud = Cloud(
                busy,
                1 if rng.random() < 0.5 else -1,
                rng.uniform(0.07, 0.18),
                rng.uniform(0.5, 1.0),
                rng.uniform(0.55, 0.75),
            )
            ep.clouds.append(cloud)
            busy += (1 + cloud.width) / cloud.speed * rng.uniform(0.4, 1.0)
        busy = max(busy, max(c.start_s + (1 + c.width) / c.speed for c in ep.clouds))
    elif kind == "wind":
        ep.wind, ep.wind_hz = rng.uniform(0.6, 1.0), rng.uniform(0.3, 0.9)
        busy += 25.0
    elif kind == "night_noise":
        ep.noise = rng.uniform(6.0, 9.0)
        if not ep.night:
            ep.ir_switch_s = lead + rng.uniform(0.0, 10.0)
        busy += 25.0
    elif kind == "rain":
        ep.rain = int(rng.integers(60, 200))
        busy += 25.0
    elif kind == "snow":
        count = int(rng.integers(80, 250))
        ep.snow = np.column_stack(
            [
                rng.uniform(0, 1, count),
                rng.uniform(0, 1, count),
                rng.uniform(0.05, 0.15, count),
                rng.uniform(0, 6.3, count),
            ]
        )
        busy += 25.0
    elif kind == "exposure":
        for _ in range(int(rng.integers(2, 4))):
            ep.jumps.append(
                (
                    busy,
                    rng.choice([-1, 1]) * rng.uniform(0.3, 0.6),
                    rng.uniform(0.5, 1.5),
                    rng.uniform(1.5, 3.0),
                )
            )
            busy += rng.uniform(5.0, 10.0)
    else:  # quiet: nothing but a little breeze
        ep.wind = rng.uniform(0.0, 0.3)
        busy += rng.uniform(15.0, 45.0)
    if scenario == "doorstep" and kind != "wind":
        ep.wind = max(ep.wind, rng.uniform(0.0, 0.3))
    ep.duration_s = busy + rng.uniform(5.0, 8.0)
    return ep
