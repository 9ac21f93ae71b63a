"""The bell with gpiozero's MockFactory: rings, chime, debounce, LED, errors, disabled mode."""

from __future__ import annotations

import time

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from doorbell.bell import Bell
from doorbell.config import GpioConfig
from doorbell.errors import GPIOError

GPIO = GpioConfig(enabled=True, chime_s=0.05, bounce_s=0.05)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def factory():
    factory = MockFactory()
    yield factory
    factory.reset()


def press(factory: MockFactory, pin: int = GPIO.button_pin) -> None:
    factory.pin(pin).drive_low()
    factory.pin(pin).drive_high()


def wait_until(condition, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def test_press_rings_once_and_chimes(factory):
    rings: list[float] = []
    clock = FakeClock()
    with Bell(GPIO, pin_factory=factory, clock=clock, when_rung=rings.append) as bell:
        chime = factory.pin(GPIO.chime_pin)
        press(factory)
        assert rings == [100.0]
        # on for chime_s, then off again (timed on gpiozero's thread)
        assert wait_until(lambda: len(chime.states) >= 3 and chime.state == 0)
        assert [s.state for s in chime.states[:3]] == [False, True, False]
        assert 0.8 * GPIO.chime_s <= chime.states[2].timestamp < 1.0
        assert bell.ring_count == 1


def test_bouncing_button_makes_one_ring(factory):
    rings: list[float] = []
    clock = FakeClock()
    with Bell(GPIO, pin_factory=factory, clock=clock, when_rung=rings.append):
        for _ in range(6):  # contact bounce: many edges within a few milliseconds
            press(factory)
            clock.now += 0.004
        assert len(rings) == 1
        clock.now += 1.0
        press(factory)
        assert len(rings) == 2, "a later press is a new ring"


def test_buzzer_chime(factory):
    config = GpioConfig(enabled=True, chime_kind="buzzer", chime_s=0.05)
    with Bell(config, pin_factory=factory, clock=FakeClock()) as bell:
        assert bell.ring()
        chime = factory.pin(config.chime_pin)
        assert wait_until(lambda: len(chime.states) >= 3 and chime.state == 0)
        assert [s.state for s in chime.states[:3]] == [False, True, False]


def test_led_follows_recording_state(factory):
    with Bell(GPIO, pin_factory=factory) as bell:
        led = factory.pin(GPIO.led_pin)
        assert not bell.is_recording and led.state == 0
        bell.set_recording(True)
        assert bell.is_recording and led.state == 1
        bell.set_recording(False)
        assert not bell.is_recording and led.state == 0


def test_disabled_bell_touches_no_pins_but_rings():
    rings: list[float] = []
    clock = FakeClock()
    bell = Bell(GpioConfig(enabled=False), clock=clock, when_rung=rings.append)
    assert not bell.enabled
    assert bell.ring()
    assert not bell.ring(), "same hold-off as the real button"
    bell.set_recording(True)
    assert bell.is_recording and not bell.is_chiming
    assert rings == [100.0]
    bell.close()
    assert not bell.ring(), "a closed bell does not ring"


def test_wait_for_ring():
    bell = Bell(GpioConfig(enabled=False))
    assert not bell.wait_for_ring(timeout=0.01)
    bell.ring()
    assert bell.ring_count == 1


def test_busy_pin_raises_gpio_error(factory):
    from gpiozero import LED

    squatter = LED(GPIO.led_pin, pin_factory=factory)
    try:
        with pytest.raises(GPIOError, match="LED 22"):
            Bell(GPIO, pin_factory=factory)
        # the pins it did get were released again
        Bell(GpioConfig(enabled=True, led_pin=23), pin_factory=factory).close()
    finally:
        squatter.close()


def test_pwm_only_factory_still_works():
    factory = MockFactory(pin_class=MockPWMPin)
    try:
        with Bell(GPIO, pin_factory=factory, clock=FakeClock()) as bell:
            assert bell.ring()
            bell.set_recording(True)
            assert factory.pin(GPIO.led_pin).state == 1
    finally:
        factory.reset()


def test_no_pin_factory_raises_gpio_error(monkeypatch):
    from gpiozero import Device
    from gpiozero.exc import BadPinFactory

    def no_factory():
        raise BadPinFactory("Unable to load any default pin factory!")

    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setattr(Device, "_default_pin_factory", staticmethod(no_factory))
    with pytest.raises(GPIOError, match=r"gpio\.enabled = false"):
        Bell(GPIO)


def test_quiet_hours_silence_the_chime_but_not_the_ring(factory):
    import dataclasses
    from datetime import datetime

    quiet = dataclasses.replace(GPIO, quiet_hours=("22:00-07:00",))
    rings: list[float] = []
    clock = FakeClock()
    local = {"now": datetime(2026, 1, 1, 23, 30)}
    with Bell(
        quiet,
        pin_factory=factory,
        clock=clock,
        when_rung=rings.append,
        local_now=lambda: local["now"],
    ) as bell:
        chime = factory.pin(GPIO.chime_pin)
        press(factory)
        assert rings == [100.0], "a ring at night still records"
        time.sleep(0.2)
        assert not any(s.state for s in chime.states), "but the chime stays silent"
        local["now"] = datetime(2026, 1, 2, 7, 0)
        clock.now += 10
        press(factory)
        assert len(rings) == 2
        assert wait_until(lambda: any(s.state for s in chime.states))
        assert bell.ring_count == 2
