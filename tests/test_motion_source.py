"""The recorder's MotionSource protocol: the real detector and the test fakes implement it, and
a type checker refuses a detector (or fake) that returns anything but a MotionResult."""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent

CHECKED = '''
from recorder_helpers import ScriptedMotion

from doorbell.camera import Frame
from doorbell.config import MotionConfig
from doorbell.motion import MotionDetector, MotionResult, MotionSource


class WrongResult:
    """What the recorder used to accept: any object, read with getattr."""

    def update(self, frame: Frame) -> object:
        return frame


fake: MotionSource = ScriptedMotion(set())
real: MotionSource = MotionDetector(MotionConfig(), (80, 60))


def first_result(frame: Frame) -> MotionResult:
    return fake.update(frame)


wrong: MotionSource = WrongResult()
'''


def _mypy(source: str, tmp_path: Path) -> tuple[int, str]:
    path = tmp_path / "check_motion_source.py"
    path.write_text(source)
    out, err, status = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            "/dev/null",
            "--follow-imports",
            "silent",
            str(path),
        ]
    )
    return status, out + err


def test_detector_and_fakes_implement_the_protocol_and_a_mismatch_is_caught(
    tmp_path: Path,
) -> None:
    status, output = _mypy(CHECKED, tmp_path)
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert status == 1, output
    # exactly one error: the fake that returns something else; the real detector and the
    # recorder tests' ScriptedMotion are accepted
    assert len(errors) == 1, output
    line = CHECKED.splitlines().index("wrong: MotionSource = WrongResult()") + 1
    assert f":{line}: error:" in errors[0] and "MotionSource" in errors[0], output
