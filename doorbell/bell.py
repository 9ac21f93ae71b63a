"""The doorbell's hardware: button, chime and recording LED, through gpiozero.

Wiring (BCM numbers from ``[gpio]`` in the config): the button connects ``button_pin`` to
ground (internal pull-up); ``chime_pin`` drives a relay module (``chime_kind = "relay"``) or
an active piezo buzzer (``"buzzer"``) for ``chime_s`` seconds; ``led_pin`` lights the
recording LED, which is on exactly while the camera is recording, a privacy signal anyone
at the door can see.

``pin_factory`` is injected (gpiozero's ``MockFactory`` in tests, ``None`` for gpiozero's
default on a Pi). With ``gpio.enabled = false`` the bell touches no hardware at all but
still rings through :meth:`Bell.ring`, which is how the demo and the web UI simulate a press.
During the chime's quiet hours (``gpio.quiet_hours``) a press rings without the chime: it is
still recorded, and still alerts on the notifier's channels that are not quiet.

A press rings once: edges closer than ``max(bounce_s, chime_s)`` to the last ring (measured
with the injected ``clock``) are contact bounce or impatient repeats of the same visit.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from doorbell.errors import GPIOError

if TYPE_CHECKING:
    from doorbell.config import GpioConfig

log = logging.getLogger(__name__)

#: Called with the ring's time (seconds on the bell's clock). On real hardware it runs on
#: gpiozero's event thread: keep it short and thread-safe (put the ring on a queue).
RingCallback = Callable[[float], None]


class Bell:
    """Button + chime + recording LED, with gpiozero-style vocabulary.

    ``when_rung`` is called once per press (or :meth:`ring`); :attr:`is_recording` /
    :meth:`set_recording` drive the LED; :meth:`close` releases the pins (also on ``with``
    exit). Raises :class:`GPIOError` if a pin is busy, invalid, or no pin factory works here.
    """

    def __init__(
        self,
        gpio: GpioConfig,
        *,
        pin_factory: Any = None,
        clock: Callable[[], float] = time.monotonic,
        when_rung: RingCallback | None = None,
        local_now: Callable[[], datetime] = datetime.now,
        quiet_hours: Callable[[], tuple[str, ...]] | None = None,
    ) -> None:
        self.config = gpio
        self._local_now = local_now
        # the owner may change quiet hours while the recorder runs: ask each time
        self.quiet_hours: Callable[[], tuple[str, ...]] = quiet_hours or (
            lambda: self.config.quiet_hours
        )
        self.when_rung = when_rung
        self._clock = clock
        self._holdoff_s = max(gpio.bounce_s, gpio.chime_s)
        self._lock = threading.Lock()
        self._last_ring: float | None = None
        self._recording = False
        self._rang = threading.Condition(self._lock)
        self.ring_count = 0
        self._button: Any = None
        self._chime: Any = None
        self._led: Any = None
        self._closed = False
        if gpio.enabled:
            self._open_devices(pin_factory)

    @property
    def enabled(self) -> bool:
        """True when real (or mock) GPIO devices are attached."""
        return self._button is not None

    @property
    def is_recording(self) -> bool:
        """Whether the recording LED is lit (the recorder's state, as last set)."""
        return self._recording

    @property
    def is_chiming(self) -> bool:
        """Whether the chime output is on right now (False without GPIO)."""
        return bool(self._chime is not None and self._chime.is_active)

    def set_recording(self, recording: bool) -> None:
        """Light the LED while recording, turn it off when not."""
        self._recording = bool(recording)
        if self._led is not None:
            self._drive(self._led.on if recording else self._led.off, "recording LED")

    def ring(self) -> bool:
        """A press of the button (also called by the button itself).

        Returns True if it rang (chime, ``when_rung``), False if it fell within the hold-off
        of the previous ring.
        """
        now = self._clock()
        with self._lock:
            if self._closed:
                return False
            if self._last_ring is not None and now - self._last_ring < self._holdoff_s:
                return False
            self._last_ring = now
            self.ring_count += 1
            self._rang.notify_all()
        self._sound_chime()
        callback = self.when_rung
        if callback is not None:
            callback(now)
        return True

    def wait_for_ring(self, timeout: float | None = None) -> bool:
        """Block until the next ring; False if ``timeout`` seconds pass first."""
        with self._lock:
            count = self.ring_count
            return self._rang.wait_for(lambda: self.ring_count != count, timeout)

    def close(self) -> None:
        """Turn chime and LED off and release the pins. Safe to call twice."""
        with self._lock:
            self._closed = True
        for device in (self._button, self._chime, self._led):
            if device is not None:
                try:
                    device.close()
                except Exception as error:  # release the others regardless
                    log.warning("closing %r failed: %s", device, error)
        self._button = self._chime = self._led = None

    def __enter__(self) -> Bell:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------

    def _open_devices(self, pin_factory: Any) -> None:
        from gpiozero import LED, Button, Buzzer, DigitalOutputDevice
        from gpiozero.exc import BadPinFactory, GPIOZeroError

        gpio = self.config
        try:
            with warnings.catch_warnings(record=True) as caught:
                # gpiozero warns once per pin library it cannot load before giving up
                warnings.simplefilter("always")
                self._button = Button(
                    gpio.button_pin,
                    pull_up=True,
                    bounce_time=gpio.bounce_s or None,
                    pin_factory=pin_factory,
                )
                chime_class = DigitalOutputDevice if gpio.chime_kind == "relay" else Buzzer
                self._chime = chime_class(gpio.chime_pin, pin_factory=pin_factory)
                self._led = LED(gpio.led_pin, pin_factory=pin_factory)
            for warning in caught:
                log.info("gpiozero: %s", warning.message)
        except BadPinFactory as error:
            self.close()
            raise GPIOError(
                "no GPIO pin factory works on this machine (not a Raspberry Pi, or python3-lgpio "
                "is missing); install it, or set gpio.enabled = false to run without a button"
            ) from error
        except GPIOZeroError as error:
            self.close()
            raise GPIOError(
                f"cannot set up GPIO pins (button {gpio.button_pin}, chime {gpio.chime_pin}, "
                f"LED {gpio.led_pin}): {error}; is another program using them?"
            ) from error
        self._closed = False
        self._button.when_pressed = self._on_press

    def _on_press(self) -> None:
        self.ring()

    @property
    def is_quiet(self) -> bool:
        """Whether the chime's quiet hours (``gpio.quiet_hours``, local time) are now."""
        from doorbell.notify.schedule import QuietHours

        return QuietHours(self.quiet_hours()).is_quiet(self._local_now())

    def _sound_chime(self) -> None:
        chime = self._chime
        if chime is None:
            return
        if self.is_quiet:
            log.info("ring during the chime's quiet hours: not chiming (still recording)")
            return
        seconds = self.config.chime_s
        # one on/off cycle, timed on gpiozero's own background thread (Buzzer is a
        # DigitalOutputDevice too)
        self._drive(lambda: chime.blink(on_time=seconds, off_time=0, n=1, background=True), "chime")

    def _drive(self, action: Callable[[], object], what: str) -> None:
        from gpiozero.exc import GPIOZeroError

        try:
            action()
        except GPIOZeroError as error:
            raise GPIOError(f"cannot drive the {what}: {error}") from error
