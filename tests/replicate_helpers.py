"""A real OpenSSH server on loopback for the replication tests, and a tiny file system to fill.

:class:`SshServer` runs ``/usr/sbin/sshd -D -e -f CONFIG`` on 127.0.0.1 and a free port, with a
temporary Ed25519 host key, an ``authorized_keys`` holding one throwaway client key, and the
chroot-free ``internal-sftp`` subsystem. ``kill()`` is SIGKILL (mid-write), ``start()`` brings
it back on the same port with the same keys.

:func:`small_filesystem` mounts a tmpfs of a few hundred KiB (we are root in the test
machine; it is unmounted afterwards) to run an SFTP destination out of space.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from conftest import missing, require_tool
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def _write_key(path: Path) -> str:
    """A new Ed25519 key in OpenSSH format at ``path`` (0600); returns its public line."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return public.decode()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SshServer:
    """sshd on 127.0.0.1:<port>, serving SFTP to root with a throwaway key."""

    def __init__(self, directory: Path) -> None:
        self.sshd = require_tool("sshd")
        if os.geteuid() != 0:
            missing("the sshd tests log in as root on loopback; run them as root")
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.host_key_line = _write_key(directory / "host_ed25519")
        self.client_key = directory / "client_ed25519"
        client_public = _write_key(self.client_key)
        (directory / "authorized_keys").write_text(client_public + "\n")
        self.port = free_port()
        self.config = directory / "sshd_config"
        self.config.write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {directory / 'host_ed25519'}\n"
            f"PidFile {directory / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {directory / 'authorized_keys'}\n"
            "StrictModes no\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\n"
            "UsePAM no\n"
            "UseDNS no\n"
            "Subsystem sftp internal-sftp\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, path: Path) -> str:
        return f"sftp://root@127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        with open(self.directory / "sshd.log", "ab") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [self.sshd, "-D", "-e", "-f", str(self.config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = (self.directory / "sshd.log").read_text(errors="replace")
                raise AssertionError(f"sshd exited at start:\n{output}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock,
            ):
                sock.settimeout(2)
                if sock.recv(4).startswith(b"SSH-"):
                    return
            time.sleep(0.05)
        raise AssertionError("sshd did not start listening within 10 s")

    def sessions(self) -> list[int]:
        """Pids of the per-connection sshd processes (children of the listener), from /proc."""
        if self.process is None:
            return []
        found = []
        for stat_file in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat_file.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.process.pid:
                    found.append(int(stat_file.parent.name))
        return found

    def kill(self) -> None:
        """SIGKILL the listener and every session it forked (mid-write if one is busy)."""
        if self.process is None:
            return
        for child in self.sessions():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        self.kill()


@contextlib.contextmanager
def small_filesystem(path: Path, size_kib: int) -> Iterator[Path]:
    """A tmpfs of ``size_kib`` mounted at ``path`` for the block; unmounted afterwards."""
    if os.geteuid() != 0:
        missing("mounting a small tmpfs needs root")
    mount = require_tool("mount")
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        missing(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
