"""Motion detection on the low-resolution grey stream: pure numpy/OpenCV, no I/O.

Per frame (:meth:`MotionDetector.update`):

1. **Shrink and denoise**: the lores image is shrunk by a whole factor to about 160x120 (a
   pixel average; sizes in the config and the boxes stay in lores pixels), then a 3x3
   grey-level opening (bright specks: rain, snow, insects) and a small Gaussian blur that,
   with the shrink's averaging, is as wide as ``denoise_px`` (sensor grain).
2. **Compare with a running-average background** (not the previous frame: a slow walker
   still stands out, and a pause at the door does not vanish at once; the first frames are
   simply averaged). ``cv2.absdiff`` on uint8 saturates, so there is no wrap-around. The
   threshold is **contrast against the measured noise**: 10 x the median of a per-pixel
   **noise model** (each pixel's usual difference, learned where nothing changed), at least
   8 grey levels, at most ``threshold`` (lowered in the dark towards ``dark_threshold``); a
   clean picture sees a visitor 10-20 grey levels from the paving. Per pixel it is raised to
   4 x the highest usual difference around it (a swaying bush raises its own threshold; the
   path keeps the low one).
3. When much of the picture changed at once, or its mean level moved, **compensate
   lighting first**: a smooth gain field (block medians of frame / background) explains a
   porch light, the infrared switch, auto-exposure or a cloud's shadow, but not a person.
   (A person filling most of the frame bends the field too; what remains of them still
   fails the structure test below, so they are kept, though ``score`` then underestimates
   how much of the zone they cover.)
4. **Threshold with hysteresis** (regions drawn at half the threshold must hold a quarter of
   ``min_area_px`` over the full one); **ghosts** dropped (changed pixels where the picture
   matches a *clean* background that never takes in what stood in front of it: a visitor
   who waited at the door and left); **morphology** (open, then dilate), **contours** of at
   least ``min_area_px`` whose pixels mostly **persist** from the frame before; each region
   is an object unless it *looks like the background*, only brighter or darker (its pixels
   correlate with the background's at ``light_change_similarity`` or more). That is the
   **global-change guard**, judged region by region and on structure, never on size: a
   person close to the lens who fills most of the frame replaces the background's texture
   and so is kept, while a light switching on keeps every edge where it was. And motion is
   something that **moves**: an event starts only from a region where the picture changed
   since the previous frame (else the background is what is out of date), and during one a
   region where the picture has not moved for ``_STILL_S`` seconds no longer counts.
5. Regions with pixels inside the owner's **zones** (minus motion **masks**) make the
   frame's raw motion, and the result names the zones they touched. **Debounce**:
   ``trigger_frames`` frames in a row start an event (``is_active``); **cool-down**:
   ``cooldown_s`` of frame timestamps without motion end it.

Privacy masks are a different thing and live in :mod:`doorbell.masks`: the camera applies
them before this module sees a frame.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from doorbell.errors import DoorbellError
from doorbell.masks import rasterise_polygons, zone_name

if TYPE_CHECKING:
    from doorbell.camera import Frame
    from doorbell.config import MotionConfig

#: A box in lores pixels: (x, y, width, height).
Box = tuple[int, int, int, int]

_MIN_BLUR_SIGMA = 0.3  # a blur narrower than this (analysis pixels) is left out
_GAIN_GRID = (8, 6)  # blocks across, down for the lighting gain field
_LIGHT_CHECK_RATIO = 0.02  # share of the picture changed before lighting is compensated
_MIN_TEXTURE = 3.0  # grey levels of background spread needed to judge a region's structure
_OBJECT_ALPHA_FACTOR = 1 / 8  # objects melt into the background 8x slower than the rest
_BRIGHT_REFERENCE = 100.0  # mean grey level at which the full threshold applies
_FINE_WINDOW_PX = 7  # local mean removed before comparing fine structure, lores pixels
_ANALYSIS_SIZE = (160, 120)  # lores images are shrunk by whole factors to about this size
_PERSIST_REACH_PX = 2  # how far a changed pixel may move between frames and keep its age
_WEAK_RATIO = 0.5  # regions are drawn at this share of the threshold ...
_STRONG_SHARE = 0.25  # ... and need this share of min_area_px over the full threshold
_LEVEL_SHIFT = 0.05  # change of the mean grey level that counts as new light
_RELIGHT_RESET_RATIO = 0.15  # share of the picture changed by a switch that restarts the model
_NOISE_FACTOR = 4.0  # a pixel's threshold is at least this many times its usual difference
_NOISE_ALPHA = 0.02  # how fast the usual difference is learned (per frame; 5 s at 10 fps;
# applied as twice that every other frame)
_NOISE_REFRESH_FRAMES = 4  # the per-pixel thresholds follow the noise model this often
_NOISE_SETTLED_FRAMES = 20  # ... and every frame until the model has seen this many
_SCENE_NOISE_FACTOR = 10.0  # a settled picture's threshold: this x its median usual difference
_SCENE_NOISE_REFRESH_FRAMES = 16  # the median moves slowly: recomputed this often
_CONTRAST_FLOOR = 8  # ... but never under this many grey levels (the weak one: half)
_STILL_RATIO = 0.5  # an event starts only where pixels moved this share of the threshold ...
_STILL_SHARE = 0.05  # ... in more than this share of the region since the previous frame
_STILL_S = 3.0  # during an event, a region where the picture did not move for this long is not
# motion any more (a visitor standing perfectly still melts into the background about as soon)
_HISTORY_STEP_S = 0.5  # ... judged against a frame kept this often (so 3 to 3.5 s back)


class MotionError(DoorbellError, ValueError):
    """A frame does not fit the detector (wrong size or type)."""


class _HasLores(Protocol):
    """A frame as the detector reads it (a :class:`~doorbell.camera.Frame` is one)."""

    @property
    def lores(self) -> np.ndarray: ...

    @property
    def timestamp(self) -> float: ...


@dataclass(frozen=True)
class MotionResult:
    """What one frame showed.

    ``boxes`` are moving objects in lores pixels; ``score`` the share of the zone they cover
    (0..1); ``in_zone`` whether any touched a zone this frame; ``global_change`` whether the
    frame was judged a lighting/exposure change; ``motion`` the raw, undebounced verdict;
    ``is_active`` the event state after this frame, ``started``/``stopped`` its edges;
    ``zones`` the names of the owner's zones the moving objects touched this frame, sorted
    (:func:`doorbell.masks.zone_name`; none configured: always empty).
    """

    timestamp: float
    score: float
    boxes: tuple[Box, ...]
    in_zone: bool
    global_change: bool
    motion: bool
    is_active: bool
    started: bool = False
    stopped: bool = False
    zones: tuple[str, ...] = ()


class MotionSource(Protocol):
    """What the recorder needs of a motion detector: one :class:`MotionResult` per frame.

    :class:`MotionDetector` is one; test fakes implement the same protocol, so a type checker
    sees a fake (or a detector) that returns anything else.
    """

    def update(self, frame: Frame) -> MotionResult: ...


class MotionDetector:
    """Running-average motion detector for one lores frame size.

    ``frame_size`` is (width, height) of the lores images. Callbacks ``when_motion_started``
    and ``when_motion_stopped`` (or None) receive the :class:`MotionResult` of the frame where
    the event began or ended. Not thread-safe: one thread feeds it.
    """

    def __init__(self, config: MotionConfig, frame_size: tuple[int, int]) -> None:
        width, height = (int(v) for v in frame_size)
        if width < 8 or height < 8:
            raise MotionError(f"lores frame {width}x{height} is too small for motion detection")
        self.config = config
        self.width, self.height = width, height
        # analysis runs on the lores image shrunk by a whole factor to at most about 160x120
        # (a pixel average, which also halves the grain): a quarter of the per-frame cost at
        # 320x240; pixel sizes (min_area_px, denoise_px) are in lores pixels and scaled here
        step = max(1, min(width // _ANALYSIS_SIZE[0], height // _ANALYSIS_SIZE[1]))
        self._step = step
        width, height = width // step, height // step
        self._analysis_size = (width, height)
        self._min_area = max(1.0, config.min_area_px / (step * step))
        masks = rasterise_polygons(config.masks, width, height)
        self._valid = cv2.bitwise_not(masks)
        zone = rasterise_polygons(config.zones, width, height) if config.zones else None
        self._zone = self._valid if zone is None else cv2.bitwise_and(zone, self._valid)
        self._zone_area = max(1, cv2.countNonZero(self._zone))
        self._named_zones = _named_zone_masks(config, width, height, self._valid)
        self._valid_area = max(1, cv2.countNonZero(self._valid))
        # no motion masks: skip masking the full frame (a third of the per-frame cost is
        # full-frame passes; a mask that keeps everything changes nothing)
        self._masked = self._valid_area < width * height
        self._blur, self._blur_sigma = _analysis_blur(config.denoise_px, step)
        # the blur as one separable kernel: OpenCV's GaussianBlur with a sigma of its own
        # takes half again as long on a 160x120 picture (15 vs 10 microseconds)
        self._blur_kernel = cv2.getGaussianKernel(self._blur, self._blur_sigma)
        fine = max(3, round(_FINE_WINDOW_PX / step) | 1)
        self._fine_window = (fine, fine)
        self._kernel = np.ones((3, 3), np.uint8)
        self._kernel5 = np.ones((5, 5), np.uint8)
        self._background: np.ndarray | None = None
        self._previous: np.ndarray | None = None  # the previous frame, shrunk and denoised
        # a frame every _HISTORY_STEP_S over the last _STILL_S seconds, and one older than that
        self._history: deque[tuple[float, np.ndarray]] = deque()
        # the background as it is without anything that stood in front of it (ghosts)
        self._clean: np.ndarray | None = None
        self._matches: np.ndarray | None = None  # pixels where the frame matches the clean one
        self._age: np.ndarray = np.zeros((height, width), np.uint8)
        self._nothing = np.zeros((height, width), np.uint8)  # an empty mask, never written
        self._nothing.setflags(write=False)
        reach = 2 * max(1, round(_PERSIST_REACH_PX / step)) + 1
        self._reach = np.ones((reach, reach), np.uint8)
        self._threshold = config.threshold
        self._difference: np.ndarray = np.zeros((height, width), np.uint8)
        # the noise model: each pixel's usual difference from the background (a swaying
        # bush, water, a flag: high; the path: low), and the thresholds it sets
        self._noise = np.zeros((height, width), np.float32)
        self._noise_seen = 0  # frames the noise model learned since it (re)started
        self._scene_noise_level = 0.0
        self._scene_noise_for = -1
        self._limits: tuple[np.ndarray, np.ndarray] | None = None  # (full, weak) per pixel
        self._limits_for = (-1, -1)  # (threshold, frame) the limits were computed for
        self._frames = 0  # frames analysed
        self._seen = 0  # frames learned since the detector started (background warm-up)
        self._run = 0
        self._active = False
        self._last_motion_s: float | None = None
        self._started_s: float | None = None
        self.when_motion_started: Callable[[MotionResult], None] | None = None
        self.when_motion_stopped: Callable[[MotionResult], None] | None = None

    # --- state -----------------------------------------------------------------------------

    @property
    def is_active(self) -> bool:
        """True from the frame an event starts until the cool-down after the last motion."""
        return self._active

    @property
    def started_at(self) -> float | None:
        """Timestamp of the frame that started the current event (None when idle)."""
        return self._started_s

    def reset(self) -> None:
        """Forget the background and any event (the next frame seeds a new background)."""
        self._background = None
        self._previous = None
        self._history.clear()
        self._clean = self._matches = None
        self._seen = 0
        self._noise_seen = 0
        self._noise.fill(0)
        self._limits = None
        self._age = self._nothing
        self._run = 0
        self._active = False
        self._last_motion_s = None
        self._started_s = None

    # --- per frame -------------------------------------------------------------------------

    def update(self, frame: _HasLores) -> MotionResult:
        """Analyse a :class:`~doorbell.camera.Frame` (its ``lores`` and ``timestamp``)."""
        return self.update_image(frame.lores, frame.timestamp)

    def update_image(self, grey: np.ndarray, timestamp: float) -> MotionResult:
        """Analyse one lores grey image taken at ``timestamp`` (monotonic seconds).

        Raises :class:`MotionError` for an image of the wrong size or type.
        """
        if grey.dtype != np.uint8 or grey.shape != (self.height, self.width):
            raise MotionError(
                f"expected a {self.width}x{self.height} uint8 grey image, "
                f"got {grey.dtype} {grey.shape}"
            )
        step = self._step
        if step > 1:
            width, height = self._analysis_size
            grey = cv2.resize(
                grey[: height * step, : width * step], (width, height), interpolation=cv2.INTER_AREA
            )
        # a grey-level opening erases bright specks and streaks under 3 pixels across
        # (raindrops and snowflakes lit by the infrared LEDs, insects, hot pixels) and keeps
        # dark lines (siding, paving joints), which the lighting guard needs as structure
        smooth = cv2.morphologyEx(grey, cv2.MORPH_OPEN, self._kernel)
        if self._blur > 1:
            smooth = cv2.sepFilter2D(smooth, -1, self._blur_kernel, self._blur_kernel)
        self._frames += 1
        previous, self._previous = self._previous, smooth
        history = self._history
        # a frame every _HISTORY_STEP_S is enough to look _STILL_S back
        if not history or timestamp - history[-1][0] >= _HISTORY_STEP_S:
            history.append((timestamp, smooth))
        while len(history) > 1 and timestamp - history[1][0] >= _STILL_S:
            history.popleft()
        older = history[0][1] if timestamp - history[0][0] >= _STILL_S else None
        if self._background is None:
            self._background = smooth.astype(np.float32)
            self._clean = self._background.copy()
            return self._debounce(timestamp, 0.0, (), False, False)
        background = self._background
        reference = cv2.convertScaleAbs(background)
        # a person's contrast shrinks with the light (Weber): a dark scene gets a lower
        # threshold, down to dark_threshold, which stays well above the blurred IR grain
        brightness = cv2.mean(reference, mask=self._valid if self._masked else None)[0]
        high, low = self.config.threshold, min(self.config.dark_threshold, self.config.threshold)
        threshold = int(min(high, max(low, round(high * brightness / _BRIGHT_REFERENCE))))
        # ... and in a clean picture contrast against the measured noise decides: a visitor
        # in clothes 10-20 grey levels from the paving is far above the grain of a clear day
        # (the configured thresholds are then only the most a change needs)
        if self._noise_seen >= _NOISE_SETTLED_FRAMES:
            threshold = min(threshold, max(_CONTRAST_FLOOR, round(self._scene_noise())))
        self._threshold = threshold
        full_limit, weak_limit = self._thresholds()
        changed = self._changed(smooth, reference, full_limit)
        global_change = relit = False
        changed_before = cv2.countNonZero(changed)
        # the gain field also runs when the picture as a whole got brighter or darker (an
        # exposure ramp lifts a flat patch over the threshold before much else changes)
        level = cv2.mean(smooth, mask=self._valid if self._masked else None)[0]
        if changed_before >= _LIGHT_CHECK_RATIO * self._valid_area or abs(
            level - brightness
        ) > _LEVEL_SHIFT * max(brightness, 1.0):
            reference = self._relit(smooth, background)
            changed = self._changed(smooth, reference, full_limit)
            changed_after = cv2.countNonZero(changed)
            global_change = changed_after >= self.config.global_change_ratio * (
                self._valid_area
            ) and self._looks_like_background(smooth, reference, changed)
            # the gain field explained most of a big change: a switch (porch light, infrared
            # cut filter, exposure), whose leftovers are compensation errors, not objects
            relit = (
                changed_before >= _RELIGHT_RESET_RATIO * self._valid_area
                and changed_after <= 0.5 * changed_before
            )
        if global_change:
            # the whole picture is the old one under new light: start over from it
            self._restart(smooth)
            return self._debounce(timestamp, 0.0, (), False, True, hold=True)

        # hysteresis: a region is drawn at a lower threshold and must hold enough pixels over
        # the full one (a low-contrast visitor far down the path is only partly over it for
        # the first frames); the noise model keeps a swaying bush from growing into the zone
        strong = changed
        changed = cv2.compare(self._difference, weak_limit, cv2.CMP_GE)
        if self._masked:
            changed = cv2.bitwise_and(changed, self._valid)
        self._matches = None
        if cv2.countNonZero(changed) < self._kernel.size:
            # fewer changed pixels than the 3x3 erosion below needs to keep one: nothing is
            # left of them (most frames of a quiet scene; the cheap way to the same result)
            changed = steady = self._nothing
            self._persisting(changed)
        else:
            changed, strong = self._drop_ghosts(smooth, changed, strong, weak_limit)
            # an opening (3x3) then a 3x3 dilation, in two passes: erode 3x3, dilate 5x5
            changed = cv2.dilate(cv2.erode(changed, self._kernel), self._kernel5)
            steady = self._persisting(changed)
        boxes: list[Box] = []
        touched: set[str] = set()
        zone_pixels = 0
        objects = None
        if changed is not self._nothing and cv2.countNonZero(changed):
            contours, _ = cv2.findContours(changed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            min_area = self._min_area
            needed = min_area * self.config.persist_share
            strong_needed = min_area * _STRONG_SHARE
            for contour in contours:
                x, y, w, h = cv2.boundingRect(contour)
                if w * h < min_area:
                    continue
                window = (slice(y, y + h), slice(x, x + w))
                region = changed[window]  # 0/255
                if cv2.countNonZero(region) < min_area:
                    continue
                # rain streaks, snowflakes and sensor grain are somewhere else every frame;
                # an object is (mostly) where it was a moment ago
                if cv2.countNonZero(cv2.bitwise_and(steady[window], region)) < needed:
                    continue
                if cv2.countNonZero(cv2.bitwise_and(strong[window], region)) < strong_needed:
                    continue
                # an event starts from something that moves, and goes on while it moves
                if self._active:
                    if self._still(smooth, older, region, window, threshold):
                        continue
                elif self._still(smooth, previous, region, window, threshold):
                    continue
                if self._is_lighting(smooth, reference, region, (x, y, w, h)):
                    continue
                boxes.append((x * step, y * step, w * step, h * step))
                zone_pixels += cv2.countNonZero(cv2.bitwise_and(region, self._zone[window]))
                touched.update(
                    name
                    for name, mask in self._named_zones
                    if name not in touched
                    and cv2.countNonZero(cv2.bitwise_and(region, mask[window]))
                )
                if objects is None:
                    objects = np.zeros_like(changed)
                cv2.drawContours(objects, [contour], -1, 255, cv2.FILLED)
        in_zone = zone_pixels > 0
        score = min(1.0, zone_pixels / self._zone_area)
        if relit and objects is None:
            self._restart(smooth)
            return self._debounce(timestamp, 0.0, (), False, True, hold=True)
        if relit and objects is not None:
            # take the new light everywhere but under the objects (a person may be standing
            # there as the light switches: they must not melt into the background)
            elsewhere = cv2.bitwise_not(objects)
            cv2.accumulateWeighted(smooth, self._background, 1.0, mask=elsewhere)
            if self._clean is not None:
                cv2.accumulateWeighted(smooth, self._clean, 1.0, mask=elsewhere)
        self._learn(smooth, objects, weak_limit)
        # every other frame once settled (it learns slowly); never on a switch, whose leftovers
        # are compensation errors, not the usual noise
        if not relit and (self._frames % 2 == 0 or self._noise_seen < _NOISE_SETTLED_FRAMES):
            self._learn_noise(changed if objects is None else cv2.bitwise_or(objects, changed))
        return self._debounce(
            timestamp, score, tuple(boxes), in_zone, False, zones=tuple(sorted(touched))
        )

    # --- steps -----------------------------------------------------------------------------

    def _restart(self, smooth: np.ndarray) -> None:
        """Take the current picture as the background and forget how long pixels changed."""
        self._background = smooth.astype(np.float32)
        self._clean = self._background.copy()
        self._age = self._nothing
        self._noise_seen = 0  # new light, new grain (the infrared switch): learn it afresh

    def _drop_ghosts(
        self, smooth: np.ndarray, changed: np.ndarray, strong: np.ndarray, weak: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Drop the ghost a visitor who stood still leaves behind, and mend the background.

        The background slowly takes in whatever stands still (a parcel left at the door stops
        being an object after a while), so a visitor who waited at the door is partly in it
        when they walk away, and the uncovered door would look like a new object. The *clean*
        background learns only where the picture matches it, so it never takes in anything
        that stood in front of it: a changed pixel where the picture matches the clean
        background is uncovered background, not an object. It is taken back into the
        background at once and left out of ``changed`` and ``strong`` (0/255 masks).

        "Matches" means within the scene's weak threshold here, not within each pixel's own
        ``weak`` limit (which the clean background still learns by): the noise model raises a
        pixel's limit with its usual difference, and a passing light change (a cloud's shadow
        moving across the paving) makes that tens of grey levels on many pixels, where any
        value would match. Copied into the background, such pixels leave specks of another
        moment's light that break the structure test of the shadow's next edge: false objects.
        """
        clean = self._clean
        if clean is None:
            return changed, strong
        apart = cv2.absdiff(smooth, cv2.convertScaleAbs(clean))
        # (the clean background's own learning, on the frames it learns, matches within
        # each pixel's limit: computed here once for it)
        self._matches = cv2.compare(apart, weak, cv2.CMP_LT) if self._clean_learns() else None
        # under the scene's weak threshold, which no pixel's limit is under (whole grey
        # levels: at most one less)
        weak_scene = _weak_threshold(self._threshold)
        _, close = cv2.threshold(apart, weak_scene - 1, 255, cv2.THRESH_BINARY_INV)
        ghost = cv2.bitwise_and(changed, close)
        if not cv2.countNonZero(ghost):
            return changed, strong
        if self._background is not None:  # alpha 1 under the mask: a copy, in OpenCV
            cv2.accumulateWeighted(smooth, self._background, 1.0, mask=ghost)
        return cv2.subtract(changed, ghost), cv2.subtract(strong, ghost)

    def _persisting(self, changed: np.ndarray) -> np.ndarray:
        """Pixels changed for ``persist_frames`` frames in a row (nonzero = steady, uint8).

        Each changed pixel's age is one more than the oldest changed pixel within two pixels of
        it in the previous frame, so a walker moving a few pixels per frame keeps their age.
        With two frames (the default) the age is only "changed last frame nearby": one
        dilation of the previous mask, two passes instead of four.
        """
        frames = self.config.persist_frames
        if frames <= 1:
            return changed
        if changed is self._nothing:  # nothing changed: nothing has an age
            self._age = self._nothing
            return changed
        grown = cv2.dilate(self._age, self._reach)
        if frames == 2:
            self._age = changed  # the previous mask (0/255) stands in for the age
            return cv2.bitwise_and(grown, changed)
        self._age = cv2.bitwise_and(cv2.add(grown, 1), changed)  # changed is 0 or 255
        _, steady = cv2.threshold(self._age, frames - 1, 1, cv2.THRESH_BINARY)
        return steady

    def _changed(self, smooth: np.ndarray, reference: np.ndarray, limit: np.ndarray) -> np.ndarray:
        difference = cv2.absdiff(smooth, reference)  # saturating: no uint8 wrap-around
        self._difference = difference
        changed = cv2.compare(difference, limit, cv2.CMP_GE)
        return cv2.bitwise_and(changed, self._valid) if self._masked else changed

    def _thresholds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel (full, weak) thresholds: the scene's threshold, raised where the noise
        model says a pixel usually differs (recomputed every few frames: it moves slowly)."""
        threshold = self._threshold
        key = (threshold, self._frames // _NOISE_REFRESH_FRAMES)
        if (
            self._limits is None
            or key != self._limits_for
            or self._noise_seen < _NOISE_SETTLED_FRAMES
        ):
            # each pixel takes the highest threshold around it: a bush's edge sways further
            # in a gust than the model saw it sway in the calm
            noise = cv2.dilate(cv2.convertScaleAbs(self._noise, alpha=_NOISE_FACTOR), self._kernel)
            weak = _weak_threshold(threshold)
            self._limits = (cv2.max(noise, threshold), cv2.max(noise, weak))
            self._limits_for = key
        return self._limits

    def _scene_noise(self) -> float:
        """The picture's typical grain as a threshold: ``_SCENE_NOISE_FACTOR`` x the median of
        the noise model (every 4th pixel, every ``_SCENE_NOISE_REFRESH_FRAMES`` frames)."""
        key = self._frames // _SCENE_NOISE_REFRESH_FRAMES
        if self._scene_noise_for != key:
            sample = self._noise[::4, ::4]
            middle = sample.size // 2
            median = float(np.partition(sample, middle, axis=None)[middle])
            self._scene_noise_level = _SCENE_NOISE_FACTOR * median
            self._scene_noise_for = key
        return self._scene_noise_level

    def _learn_noise(self, busy: np.ndarray) -> None:
        """Learn each pixel's usual difference where nothing changed this frame (``busy`` is
        0/255): a visitor must not teach the model that the path is noisy. Fast at first,
        then at ``_NOISE_ALPHA``."""
        self._noise_seen += 1
        alpha = max(2 * _NOISE_ALPHA, 1.0 / self._noise_seen)
        keep = None if busy is self._nothing else cv2.bitwise_not(busy)
        cv2.accumulateWeighted(self._difference, self._noise, alpha, mask=keep)

    def _relit(self, smooth: np.ndarray, background: np.ndarray) -> np.ndarray:
        """The background under the frame's lighting: times a smooth, robust gain field."""
        grid = _GAIN_GRID
        now = cv2.resize(smooth, grid, interpolation=cv2.INTER_AREA).astype(np.float32)
        before = cv2.resize(background, grid, interpolation=cv2.INTER_AREA)
        # a median over 5x5 blocks: a person covering a few blocks cannot bend the field
        gain = cv2.medianBlur((now + 4.0) / (before + 4.0), 5)
        field = cv2.resize(gain, self._analysis_size, interpolation=cv2.INTER_LINEAR)
        return cv2.convertScaleAbs(cv2.multiply(background, field))

    def _still(
        self,
        smooth: np.ndarray,
        previous: np.ndarray | None,
        region: np.ndarray,
        window: tuple[slice, slice],
        threshold: int,
    ) -> bool:
        """True when the picture did not move under a changed region since ``previous``.

        With the previous frame (no event on): such a region is the *background* having
        changed there, not the picture: a patch a light change left behind (a cloud's shadow
        is taken in piecemeal, by the running average and by the uncovered-background copies,
        and a pixel or two can stay at another moment's light for a while). A visitor walking
        in changes the picture where they are from one frame to the next, so an event only
        starts from a region where more than ``_STILL_SHARE`` of the pixels moved
        ``_STILL_RATIO`` x the threshold. With the frame ``_STILL_S`` seconds back (during an
        event): what has not moved for that long is no longer motion, such as the patch where a
        visitor stood as the porch light came on (the background there keeps the old light), or
        a parcel; a visitor who stands perfectly still that long melts into the background
        about as soon anyway, and one who shifts a little keeps moving pixels at their edges.
        """
        if previous is None:
            return False
        # at least the limit (whole grey levels: over one less)
        limit = max(1, round(threshold * _STILL_RATIO))
        _, moved = cv2.threshold(
            cv2.absdiff(smooth[window], previous[window]), limit - 1, 255, cv2.THRESH_BINARY
        )
        area = cv2.countNonZero(region)
        return cv2.countNonZero(cv2.bitwise_and(moved, region)) <= _STILL_SHARE * area

    def _is_lighting(
        self, now: np.ndarray, before: np.ndarray, region: np.ndarray, box: Box
    ) -> bool:
        """True when a changed region is the background, brighter or darker, not an object.

        First on the pixels as they are (one gain over the region); failing that, on their
        fine structure alone (each minus its local mean), which a soft shadow's edge or a
        lamp's falloff (a gain that varies across the region) leaves in place and a person,
        who brings their own texture, does not. ``now`` and ``before`` are whole pictures,
        ``box`` the region's bounding box (analysis pixels) and ``region`` its 0/255 mask in
        the box. The local means take in the pixels around the box, so a brightness ramp (a
        shadow's edge, smeared into the running average as it moved) leaves no false
        structure along the box's border.
        """
        x, y, w, h = box
        window = (slice(y, y + h), slice(x, x + w))
        similarity = self.config.light_change_similarity
        if _masked_correlation(now[window], before[window], region) >= similarity:
            return True
        if _fine_correlation(now[window], before[window], self._fine_window, region) >= similarity:
            return True
        pad = self._fine_window[0] // 2
        x0, y0 = max(0, x - pad), max(0, y - pad)
        around = (slice(y0, y + h + pad), slice(x0, x + w + pad))
        inside = (slice(y - y0, y - y0 + h), slice(x - x0, x - x0 + w))
        fine = []
        for picture in (now[around], before[around]):
            local = cv2.blur(picture, self._fine_window)
            fine.append(cv2.subtract(picture, local, dtype=cv2.CV_16S)[inside])
        return _masked_correlation(fine[0], fine[1], region) >= similarity

    def _looks_like_background(
        self, now: np.ndarray, before: np.ndarray, changed: np.ndarray
    ) -> bool:
        # every 4th pixel: plenty for a correlation, 16x cheaper
        return (
            _masked_correlation(now[::4, ::4], before[::4, ::4], changed[::4, ::4])
            >= self.config.light_change_similarity
        )

    def _clean_learns(self) -> bool:
        """Whether the clean background learns this frame (every other one once warmed up)."""
        return self._frames % 2 == 0 or self._seen < _NOISE_SETTLED_FRAMES

    def _learn(self, smooth: np.ndarray, objects: np.ndarray | None, weak: np.ndarray) -> None:
        self._seen += 1
        # warm-up: the plain mean of the first frames, then the running average (a swaying
        # bush settles into a blur in seconds instead of triggering after every restart)
        alpha = max(self.config.background_alpha, 1.0 / (self._seen + 1))
        background = self._background
        if background is None:
            return
        # the clean background learns where the picture matches it, every other frame once
        # warmed up (at twice the rate): it follows the light, never what stands in front
        clean = self._clean
        if clean is not None and self._clean_learns():
            matches = self._matches
            if matches is None:
                difference = cv2.absdiff(smooth, cv2.convertScaleAbs(clean))
                matches = cv2.compare(difference, weak, cv2.CMP_LT)
            rate = alpha if self._seen < _NOISE_SETTLED_FRAMES else min(1.0, 2 * alpha)
            cv2.accumulateWeighted(smooth, clean, rate, mask=matches)
        if objects is None:
            cv2.accumulateWeighted(smooth, background, alpha)
            return
        cv2.accumulateWeighted(smooth, background, alpha, mask=cv2.bitwise_not(objects))
        cv2.accumulateWeighted(smooth, background, alpha * _OBJECT_ALPHA_FACTOR, mask=objects)

    def _debounce(
        self,
        timestamp: float,
        score: float,
        boxes: tuple[Box, ...],
        in_zone: bool,
        global_change: bool,
        *,
        hold: bool = False,
        zones: tuple[str, ...] = (),
    ) -> MotionResult:
        """Debounce and cool-down; ``hold`` leaves both as they were (a frame that says nothing)."""
        motion = in_zone and not (global_change and hold)
        started = stopped = False
        if hold:
            pass
        elif motion:
            self._run += 1
            self._last_motion_s = timestamp
            if not self._active and self._run >= self.config.trigger_frames:
                self._active, started, self._started_s = True, True, timestamp
        else:
            self._run = 0
            last = self._last_motion_s
            if self._active and last is not None and timestamp - last >= self.config.cooldown_s:
                self._active, stopped, self._started_s = False, True, None
        result = MotionResult(
            timestamp,
            score,
            boxes,
            in_zone,
            global_change,
            motion,
            self._active,
            started,
            stopped,
            zones,
        )
        if started and self.when_motion_started is not None:
            self.when_motion_started(result)
        if stopped and self.when_motion_stopped is not None:
            self.when_motion_stopped(result)
        return result


def _weak_threshold(threshold: int) -> int:
    """The scene's weak (hysteresis) threshold for a full ``threshold``."""
    return max(1, round(threshold * _WEAK_RATIO))


def _analysis_blur(denoise_px: int, step: int) -> tuple[int, float]:
    """(kernel size, sigma) of the Gaussian blur at the analysis scale that, with the pixel
    average of shrinking by ``step``, blurs as much as ``denoise_px`` would on the lores image
    (kernel 1: no blur; sigma 0: OpenCV's default for the kernel)."""
    k = denoise_px | 1
    if step == 1 or k == 1:
        return k, 0.0
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8  # OpenCV's default sigma for a k x k kernel
    # shrinking averages step x step pixels: a box of variance (step^2 - 1) / 12 per axis
    left = max(0.0, sigma * sigma - (step * step - 1) / 12.0) ** 0.5 / step
    if left < _MIN_BLUR_SIGMA:
        return 1, 0.0
    return 2 * math.ceil(2 * left) + 1, left  # two sigmas each side


def _named_zone_masks(
    config: MotionConfig, width: int, height: int, valid: np.ndarray
) -> tuple[tuple[str, np.ndarray], ...]:
    """Each zone name with its pixels (0/255, minus motion masks); zones sharing a name are
    one zone. An unnamed zone is ``zone<N>`` (N its 1-based place in ``motion.zones``)."""
    masks: dict[str, np.ndarray] = {}
    for number, polygon in enumerate(config.zones, start=1):
        name = zone_name(polygon, number)
        pixels = cv2.bitwise_and(rasterise_polygons((polygon,), width, height), valid)
        masks[name] = cv2.bitwise_or(masks[name], pixels) if name in masks else pixels
    return tuple(masks.items())


def _fine_correlation(
    now: np.ndarray, before: np.ndarray, window: tuple[int, int], region: np.ndarray
) -> float:
    """:func:`_masked_correlation` of the fine structure of ``now`` and ``before`` (each minus
    its local mean over ``window``, taken inside the pictures given)."""
    now_fine = cv2.subtract(now, cv2.blur(now, window), dtype=cv2.CV_16S)
    before_fine = cv2.subtract(before, cv2.blur(before, window), dtype=cv2.CV_16S)
    return _masked_correlation(now_fine, before_fine, region)


def _masked_correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of the pixels of ``a`` and ``b`` under ``mask`` (nonzero = in).

    0 when the background ``b`` has no texture there: a flat background cannot show that a
    change kept its structure, so such a change counts as an object (fail towards recording).
    Sums are taken by OpenCV in double precision, without copying the pixels out.
    """
    n = cv2.countNonZero(mask)
    if n < 8:
        return 0.0
    mean_b, spread_b = cv2.meanStdDev(b, mask=mask)
    std_b = float(spread_b[0, 0])
    if std_b < _MIN_TEXTURE:
        return 0.0
    mean_a, spread_a = cv2.meanStdDev(a, mask=mask)
    std_a = float(spread_a[0, 0])
    if std_a < 1e-6:
        return 0.0
    product = float(cv2.mean(cv2.multiply(a, b, dtype=cv2.CV_32F), mask=mask)[0])
    covariance = product - float(mean_a[0, 0]) * float(mean_b[0, 0])
    return covariance / (std_a * std_b)
