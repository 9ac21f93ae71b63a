"""firmware_config/: the cloud-init user-data and the config.txt fragment.

`cloud-init schema` (Debian package cloud-init) validates the user-data against cloud-init's
own schema; a deliberately broken copy checks that the harness can fail. The rest checks the
promises the install guide makes about what first boot does and does not do.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from conftest import PROJECT_ROOT, require_tool

FIRMWARE = PROJECT_ROOT / "firmware_config"
USER_DATA = FIRMWARE / "user-data"


def _schema(path: Path) -> subprocess.CompletedProcess[str]:
    tool = require_tool("cloud-init")
    return subprocess.run(
        [tool, "schema", "--config-file", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_user_data_is_valid_cloud_config() -> None:
    assert USER_DATA.read_text().startswith("#cloud-config\n")
    result = _schema(USER_DATA)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


def test_schema_harness_rejects_a_broken_user_data(tmp_path: Path) -> None:
    broken = tmp_path / "user-data"
    broken.write_text(USER_DATA.read_text().replace("ssh_pwauth: false", "ssh_pwauth: [no]"))
    result = _schema(broken)
    assert result.returncode != 0
    assert "ssh_pwauth" in result.stdout + result.stderr


def test_user_data_installs_what_the_guide_promises() -> None:
    text = USER_DATA.read_text()
    for package in ("python3-picamera2", "age", "python3-venv", "nftables", "systemd-timesyncd"):
        assert re.search(rf"^\s+- {re.escape(package)}\b", text, re.MULTILINE), package
    assert "venv, --system-site-packages, /opt/doorbell/venv]" in text
    for installed in (
        "/etc/sysusers.d/doorbell.conf",
        "/etc/tmpfiles.d/doorbell.conf",
        "/etc/systemd/system/doorbell-recorder.service",
        "/etc/systemd/system/doorbell-web.service",
    ):
        assert installed in text
    # every file the user-data installs from the source tree exists in it
    for relative in re.findall(r"/opt/doorbell/src/([\w./-]+)", text):
        assert (PROJECT_ROOT / relative).exists(), relative


def test_user_data_never_runs_doorbell_init() -> None:
    """Only the owner may choose the passphrase: init appears in instructions, never in runcmd."""
    text = USER_DATA.read_text()
    runcmd = text.split("\nruncmd:\n", 1)[1].split("\nfinal_message:", 1)[0]
    commands = [line for line in runcmd.splitlines() if line.strip().startswith("- ")]
    assert commands, "no runcmd entries found"
    for command in commands:
        assert not re.search(r"doorbell\b.*\binit\b", command), command
    assert "doorbell init --config /etc/doorbell/doorbell.toml" in text  # the motd says how


def test_firewall_opens_the_ui_port_to_the_local_network_only() -> None:
    text = USER_DATA.read_text()
    assert "policy drop;" in text
    accepts = [line.strip() for line in text.splitlines() if "dport" in line and "accept" in line]
    ui_rules = [line for line in accepts if "8443" in line and not line.startswith("#")]
    assert ui_rules, "no rule admits the UI port"
    for rule in ui_rules:
        assert rule.startswith(("ip saddr $LOCAL_V4", "ip6 saddr $LOCAL_V6")), rule
    assert 'meta skuid { "doorbell-rec", "doorbell-web" } ct state new counter drop' in text


def test_config_txt_fragment() -> None:
    lines = (FIRMWARE / "config.txt").read_text().splitlines()
    settings = [line for line in lines if line and not line.startswith("#")]
    assert "camera_auto_detect=1" in settings
    assert "#disable_camera_led=1" in lines  # optional, explained beside it
    # the user-data appends it only once, keyed on its first line
    assert lines[0].startswith("# doorbell:")
