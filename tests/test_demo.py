"""`doorbell demo` from nothing: keys, config, recorder on the mock doorstep, clean stop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from recorder_helpers import plaintext_hits

from doorbell.store import Store


def test_demo_records_encrypted_events_within_a_minute_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from doorbell.cli import main; sys.exit(main())",
            "demo",
            "--data-dir",
            str(data_dir),
            "--seconds",
            "30",
            "--no-web",
            "--width",
            "320",
            "--height",
            "240",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert "demo passphrase: " in result.stdout
    assert "demo: stopped cleanly" in result.stdout
    with Store.open(data_dir) as store:
        clips = store.clips()
        events = store.events()
    assert events and clips, "the doorstep scene shows someone within the first half minute"
    assert all(c.sealed and not c.interrupted for c in clips)
    assert plaintext_hits(data_dir) == []
    verify = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from doorbell.cli import main; sys.exit(main())",
            "audit",
            "verify",
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("OK")
