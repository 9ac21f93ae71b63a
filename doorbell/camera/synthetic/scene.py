"""The painted doorstep the mock camera films: static layers and the things that move.

The view is a doorbell's: the house wall and front door on the left, a porch floor at the
bottom, a lawn with a paved path leading to the street band at the top, a hedge beyond it and
a bush on the right. Everything is placed in relative coordinates, so any size works.

Painting the static layers is the slow part; :class:`SceneLayers` does it once per size and
keeps a daylight colour background, a night infrared (grey) background with the porch light
off and on, and the bush patch at every sway offset. Per frame the mock copies one background
and draws people and cars on it with OpenCV primitives, which costs little.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from doorbell.config import Polygon

#: Fixed seed of the static painting: the house looks the same in every run and scenario.
_PAINT_SEED = 20240601
#: Where the bush is (relative x0, y0, x1, y1) and how far it may sway (relative to width).
BUSH_BOX = (0.76, 0.44, 0.98, 0.76)
MAX_SWAY = 0.012
#: Right edge of the house wall (relative): the street passes behind it.
WALL_RIGHT = 0.22
#: The owner's zone an evaluation of this scene uses (bench/motion_eval.py, the motion tests):
#: the path and the porch floor; not the street, not most of the bush.
DOORSTEP_ZONE = Polygon(
    points=(
        (0.40, 0.34),
        (0.60, 0.34),
        (0.78, 0.70),
        (0.78, 1.0),
        (0.0, 1.0),
        (0.0, 0.70),
        (0.30, 0.70),
    ),
    name="doorstep",
)


def _rel(width: int, height: int, x: float, y: float) -> tuple[int, int]:
    return round(x * width), round(y * height)


def _mottle(
    rng: np.random.Generator, height: int, width: int, cells: int, amount: float
) -> np.ndarray:
    """Smooth random texture in -amount..amount (float32), like grass, asphalt or leaves."""
    small = rng.uniform(-amount, amount, (max(2, cells * height // width), cells))
    return cv2.resize(small.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)


def _fill(
    image: np.ndarray,
    rng: np.random.Generator,
    poly: list[tuple[int, int]],
    colour: tuple[int, int, int],
    cells: int,
    amount: float,
) -> None:
    """Fill a polygon with a textured colour."""
    height, width = image.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.array(poly, np.int32)], 255)
    texture = _mottle(rng, height, width, cells, amount)
    layer = np.clip(np.array(colour, np.float32)[None, None, :] + texture[:, :, None], 0, 255)
    np.copyto(image, layer.astype(np.uint8), where=mask[:, :, None] > 0)


def paint_day(width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The daylight scene without the bush, plus the bush as a BGR patch and its mask."""
    rng = np.random.default_rng(_PAINT_SEED)
    w, h = width, height
    img = np.zeros((h, w, 3), np.uint8)

    def p(x: float, y: float) -> tuple[int, int]:
        return _rel(w, h, x, y)

    _fill(img, rng, [p(0, 0), p(1, 0), p(1, 0.17), p(0, 0.17)], (55, 95, 60), 40, 22)  # hedge
    _fill(img, rng, [p(0, 0.17), p(1, 0.17), p(1, 0.30), p(0, 0.30)], (88, 90, 92), 80, 8)
    for x in np.arange(0.02, 1.0, 0.12):  # lane markings
        cv2.rectangle(img, p(x, 0.228), p(x + 0.06, 0.238), (205, 210, 210), -1)
    _fill(img, rng, [p(0, 0.30), p(1, 0.30), p(1, 0.34), p(0, 0.34)], (165, 170, 172), 60, 6)
    for x in np.arange(0.0, 1.0, 0.07):
        cv2.line(img, p(x, 0.30), p(x, 0.34), (120, 125, 128), max(1, w // 640))
    _fill(img, rng, [p(0, 0.34), p(1, 0.34), p(1, 0.70), p(0, 0.70)], (58, 128, 72), 60, 18)
    path = [p(0.44, 0.34), p(0.56, 0.34), p(0.74, 0.70), p(0.30, 0.70)]
    _fill(img, rng, path, (150, 160, 172), 50, 10)
    for i in range(1, 9):  # paving joints, closer together in the distance
        t = (i / 9) ** 1.6
        y = 0.34 + 0.36 * t
        cv2.line(img, p(0.44 - 0.14 * t, y), p(0.56 + 0.18 * t, y), (110, 118, 128), 1)
    _fill(img, rng, [p(0, 0.70), p(1, 0.70), p(1, 1), p(0, 1)], (62, 104, 146), 30, 10)
    for i in range(1, 8):  # porch planks
        y = 0.70 + 0.30 * (i / 8) ** 0.8
        cv2.line(img, p(0, y), p(1, y), (40, 72, 105), max(1, h // 360))
    _fill(img, rng, [p(0, 0), p(0.22, 0), p(0.22, 0.86), p(0, 0.90)], (205, 208, 212), 30, 6)
    for y in np.arange(0.02, 0.86, 0.035):  # siding
        cv2.line(img, p(0, y), p(0.22, y), (160, 165, 170), 1)
    _fill(
        img, rng, [p(0.05, 0.18), p(0.19, 0.18), p(0.19, 0.82), p(0.05, 0.84)], (38, 48, 118), 20, 6
    )
    for y0, y1 in ((0.23, 0.46), (0.52, 0.77)):  # door panels and knob
        cv2.rectangle(img, p(0.07, y0), p(0.17, y1), (28, 36, 92), max(1, w // 400))
    cv2.circle(img, p(0.17, 0.50), max(2, w // 180), (60, 170, 200), -1)
    cv2.rectangle(img, p(0.10, 0.07), p(0.14, 0.13), (40, 40, 40), -1)  # porch light fixture
    cv2.rectangle(img, p(0.70, 0.12), p(0.73, 1.0), (190, 195, 200), -1)  # porch post
    cv2.line(img, p(0.70, 0.12), p(0.70, 1.0), (130, 135, 140), max(1, w // 640))

    x0, y0, x1, y1 = BUSH_BOX
    bx0, by0, bx1, by1 = *p(x0, y0), *p(x1, y1)
    bush = np.zeros((by1 - by0, bx1 - bx0, 3), np.uint8)
    mask = np.zeros(bush.shape[:2], np.uint8)
    bw, bh = bush.shape[1], bush.shape[0]
    for _ in range(90):  # leaf clusters
        cx, cy = rng.uniform(0.15, 0.85) * bw, rng.uniform(0.2, 0.9) * bh
        rx, ry = rng.uniform(0.05, 0.16) * bw, rng.uniform(0.04, 0.12) * bh
        shade = rng.uniform(0.6, 1.3)
        colour = (int(35 * shade), int(95 * shade), int(40 * shade))
        centre, axes = (round(cx), round(cy)), (max(1, round(rx)), max(1, round(ry)))
        angle = rng.uniform(0, 180)
        cv2.ellipse(bush, centre, axes, angle, 0, 360, colour, -1)
        cv2.ellipse(mask, centre, axes, angle, 0, 360, 255, -1)
    return img, bush, mask


def ir_gain(y: np.ndarray | float) -> np.ndarray | float:
    """How strongly the camera's infrared LEDs light a point whose ground contact is at
    relative height ``y``: the porch (near, bottom) much more than the street (far, top)."""
    return 0.16 + 0.34 * np.clip(y, 0.0, 1.0) ** 2


def night_from_day(
    day: np.ndarray, glow: np.ndarray | None, rows: np.ndarray | None = None
) -> np.ndarray:
    """The infrared night view (grey): dark, lit by the IR LEDs, optional porch glow.

    ``rows`` are the relative heights of the image's rows in the frame (default: the whole
    frame), so a patch such as the bush gets the light of where it stands.
    """
    grey = cv2.cvtColor(day, cv2.COLOR_BGR2GRAY).astype(np.float32)
    if rows is None:
        rows = np.linspace(0.0, 1.0, grey.shape[0], dtype=np.float32)
    rows = rows[:, None]
    night = grey * ir_gain(rows) + 10.0
    if glow is not None:
        night = night + grey * glow * 0.9
    return np.clip(night, 0, 255).astype(np.uint8)


def porch_glow(width: int, height: int) -> np.ndarray:
    """How much the porch light adds at each pixel (0..1, float32): strong near the door."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    dx = (xs / width - 0.12) * 1.6
    dy = ys / height - 0.10
    return (1.0 / (1.0 + 6.0 * (dx * dx + dy * dy))).astype(np.float32)


class SceneLayers:
    """Pre-painted layers for one frame size; built once, then shared by every frame."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        day, bush, mask = paint_day(width, height)
        self.bush_origin = _rel(width, height, BUSH_BOX[0], BUSH_BOX[1])
        self.day = day
        glow = porch_glow(width, height)
        self.night_off = night_from_day(day, None)
        self.night_on = night_from_day(day, glow)
        self.glow = glow
        self.bush_day = bush
        bx, by = self.bush_origin
        rows = np.arange(by, by + bush.shape[0], dtype=np.float32) / (height - 1)
        bush_glow = glow[by : by + bush.shape[0], bx : bx + bush.shape[1]]
        self.bush_night = night_from_day(bush, None, rows)
        self.bush_night_lit = night_from_day(bush, bush_glow, rows)
        self.bush_mask = mask > 0
        # backgrounds without the bush (it sways over whatever is behind it) and its patches
        self.base = {"day": day, "night_off": self.night_off, "night_on": self.night_on}
        self.bush = {"day": bush, "night_off": self.bush_night, "night_on": self.bush_night_lit}

    def paste_bush(self, image: np.ndarray, bush: np.ndarray, dx: int) -> None:
        """Draw the bush shifted ``dx`` pixels right (negative: left), clipped to the image."""
        bx, by = self.bush_origin
        bh, bw = self.bush_mask.shape
        x_start = max(0, bx + dx)
        x_end = min(self.width, bx + dx + bw)
        if x_end <= x_start:
            return
        src = slice(x_start - (bx + dx), x_end - (bx + dx))
        region = image[by : by + bh, x_start:x_end]
        where = self.bush_mask[:, src]
        if region.ndim == 3:
            where = where[:, :, None]
        np.copyto(region, bush[:, src], where=where)


def draw_person(
    image: np.ndarray,
    cx: float,
    feet_y: float,
    tall: float,
    phase: float,
    clothes: tuple[int, ...],
    skin: tuple[int, ...],
    carrying: bool,
    flat: bool = False,
) -> None:
    """Draw a walking person, feet at (cx, feet_y) pixels, ``tall`` pixels high.

    ``phase`` (radians) swings the legs and arms; 0 is standing. Colours have 3 values on a BGR
    image and 1 on a grey one. The legs are darker than the clothes unless ``flat``.
    """
    th = max(1, round(tall * 0.085))
    hip_y, shoulder_y = feet_y - 0.47 * tall, feet_y - 0.80 * tall
    swing = 0.10 * tall * math.sin(phase)
    darker = clothes if flat else tuple(max(0, int(c * 0.7)) for c in clothes)
    for sign in (-1, 1):
        foot = (round(cx + sign * swing), round(feet_y))
        cv2.line(image, (round(cx + sign * 0.05 * tall), round(hip_y)), foot, darker, th)
    half = 0.15 * tall
    torso = np.array(
        [
            (cx - half, shoulder_y),
            (cx + half, shoulder_y),
            (cx + half * 0.8, hip_y),
            (cx - half * 0.8, hip_y),
        ],
        np.int32,
    )
    cv2.fillConvexPoly(image, torso, clothes)
    for sign in (-1, 1):
        hand = (
            round(cx + sign * (half + 0.02 * tall) - sign * swing * 0.5),
            round(hip_y + 0.05 * tall),
        )
        cv2.line(
            image,
            (round(cx + sign * half), round(shoulder_y + th)),
            hand,
            clothes,
            max(1, th * 3 // 4),
        )
    head = (round(cx), round(feet_y - 0.905 * tall))
    cv2.ellipse(
        image, head, (max(1, round(0.065 * tall)), max(1, round(0.09 * tall))), 0, 0, 360, skin, -1
    )
    if carrying:  # a parcel held in front
        size = 0.16 * tall
        top_left = (round(cx - size), round(hip_y - 1.1 * size))
        cv2.rectangle(
            image,
            top_left,
            (round(cx + size), round(hip_y + 0.4 * size)),
            tuple(int(c * 0.9) + 10 for c in skin),
            -1,
        )


def person_box(
    cx: float, feet_y: float, tall: float, width: int, height: int
) -> tuple[int, int, int, int] | None:
    """The person's bounding box (x, y, w, h) clipped to the image, or None if outside."""
    half = 0.19 * tall
    x0, x1 = max(0, math.floor(cx - half)), min(width, math.ceil(cx + half))
    y0, y1 = max(0, math.floor(feet_y - tall)), min(height, math.ceil(feet_y + 0.02 * tall))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1 - x0, y1 - y0


def draw_car(
    image: np.ndarray,
    x: float,
    y_bottom: float,
    length: float,
    body: tuple[int, ...],
    glass: tuple[int, ...],
) -> tuple[int, int, int, int] | None:
    """Draw a car from the side with its left end at ``x``; return its clipped box or None."""
    height_px = 0.38 * length
    left, top = x, y_bottom - height_px
    cv2.rectangle(
        image,
        (round(left), round(y_bottom - 0.6 * height_px)),
        (round(left + length), round(y_bottom - 0.12 * height_px)),
        body,
        -1,
    )
    roof = np.array(
        [
            (left + 0.22 * length, y_bottom - 0.6 * height_px),
            (left + 0.32 * length, top),
            (left + 0.70 * length, top),
            (left + 0.82 * length, y_bottom - 0.6 * height_px),
        ],
        np.int32,
    )
    cv2.fillConvexPoly(image, roof, glass)
    radius = max(1, round(0.11 * length))
    for wx in (0.2, 0.8):
        cv2.circle(
            image,
            (round(left + wx * length), round(y_bottom - radius)),
            radius,
            tuple(20 for _ in body),
            -1,
        )
    h_img, w_img = image.shape[:2]
    x0, x1 = max(0, math.floor(left)), min(w_img, math.ceil(left + length))
    y0, y1 = max(0, math.floor(top)), min(h_img, math.ceil(y_bottom))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1 - x0, y1 - y0
