"""Where the off-site copy goes: a mounted directory or an SFTP server, behind one interface.

Both destinations offer the few operations the replicator needs, on POSIX paths relative to
the copy's root: the size of a file, writing bytes at an offset (appending a growing clip),
truncating, replacing a small file atomically (temp name, then rename), reading, listing and
removing. Every failure (unreachable, refused, disk full, killed mid-write) is raised as
:class:`doorbell.errors.ReplicationError` with the path and the reason; nothing is retried
here, the replicator decides.

``write_at(..., in_order=True)`` acknowledges each block before sending the next, so a
write that fails (the server was killed, its disk filled) leaves the remote file a *prefix*
of the local one, never a file with a hole. ``in_order=False`` (clip bytes over SFTP)
pipelines the blocks and confirms the result by the file's size; after a failure the caller
must cut the file back to its last confirmed offset (the replicator does, on reconnect).

SFTP uses paramiko with key authentication only and a pinned host key (the ``host_key``
line of ``[replicate]``, as in ``ssh-keyscan`` output): a server that presents any other key
is refused before a byte of authentication is sent. No agent, no ``~/.ssh`` lookups.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import secrets
import socket
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import paramiko

from doorbell.errors import ReplicationError
from doorbell.fsutil import TEMP_MARKER, fsync_dir

#: Bytes per write request (paramiko splits larger writes into 32 KiB SFTP packets anyway).
BLOCK_BYTES = 256 * 1024


class Destination(Protocol):
    """The operations the replicator, the witness check and restore use on a copy."""

    description: str

    def size(self, path: str) -> int | None:
        """Size of the file at ``path`` in bytes, or None when there is none."""
        ...

    def write_at(self, path: str, offset: int, data: bytes, *, in_order: bool = True) -> None:
        """Write ``data`` at ``offset`` (creating the file and its directories at 0).

        ``in_order``: each block is acknowledged before the next is sent, so a failure
        leaves a prefix. False lets SFTP pipeline the blocks (30x faster on a LAN),
        confirmed by the file's size afterwards: a failure may then leave any of them
        written, so the caller must treat everything from ``offset`` on as unconfirmed (the
        replicator cuts it off on reconnect; restore checks every clip's hash).
        """
        ...

    def truncate(self, path: str, size: int) -> None:
        """Cut the file at ``path`` down to ``size`` bytes."""
        ...

    def replace(self, path: str, data: bytes) -> None:
        """Replace the (small) file at ``path`` with ``data`` atomically."""
        ...

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes of ``path`` from ``offset`` (to the end, or ``length`` of them)."""
        ...

    def listdir(self, path: str) -> list[str]:
        """Names in the directory ``path`` (empty when it does not exist)."""
        ...

    def remove(self, path: str) -> None:
        """Remove the file at ``path`` (no error when it is already gone)."""
        ...

    def close(self) -> None:
        """Release the connection; the object is unusable afterwards."""
        ...


def _relative(path: str, *, root_ok: bool = False) -> str:
    """``path`` normalised, refusing anything that would leave the copy's root."""
    clean = posixpath.normpath(path)
    if clean.startswith(("/", "..")) or (clean == "." and not root_ok) or "\x00" in clean:
        raise ReplicationError(f"{path!r}: not a path inside the copy")
    return clean


# --- a mounted directory -------------------------------------------------------------------


class LocalDestination:
    """A directory on a mounted file system (USB disk, NFS or SMB share).

    Files are fsynced after every write so a pulled USB disk keeps what was acknowledged.
    Raises :class:`ReplicationError` when ``root`` is not a directory (an unmounted share
    must not silently fill the SD card's mount point: the directory must already exist).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.description = str(self.root)
        if not self.root.is_dir():
            raise ReplicationError(
                f"{self.root}: the destination directory does not exist (is the disk mounted?)"
            )

    def _path(self, path: str) -> Path:
        return self.root / _relative(path)

    @contextlib.contextmanager
    def _errors(self, what: str, path: str) -> Iterator[None]:
        try:
            yield
        except ReplicationError:
            raise
        except OSError as exc:
            raise ReplicationError(
                f"{self.root}: cannot {what} {path}: {exc.strerror or exc}"
            ) from exc

    def size(self, path: str) -> int | None:
        with self._errors("stat", path):
            try:
                return self._path(path).stat().st_size
            except FileNotFoundError:
                return None

    def write_at(self, path: str, offset: int, data: bytes, *, in_order: bool = True) -> None:
        target = self._path(path)
        with self._errors("write", path):  # sequential pwrite: a prefix either way
            target.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
            fd = os.open(target, flags, 0o640)
            try:
                view = memoryview(data)
                position = offset
                while view:
                    written = os.pwrite(fd, view[:BLOCK_BYTES], position)
                    position += written
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)

    def truncate(self, path: str, size: int) -> None:
        with self._errors("truncate", path):
            os.truncate(self._path(path), size)

    def replace(self, path: str, data: bytes) -> None:
        target = self._path(path)
        with self._errors("write", path):
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(f".{target.name}{TEMP_MARKER}{secrets.token_hex(6)}")
            try:
                with open(temp, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, target)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
            fsync_dir(target.parent)

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        with self._errors("read", path), open(self._path(path), "rb") as handle:
            handle.seek(offset)
            return handle.read() if length is None else handle.read(length)

    def listdir(self, path: str) -> list[str]:
        with self._errors("list", path):
            try:
                return sorted(os.listdir(self.root / _relative(path, root_ok=True)))
            except FileNotFoundError:
                return []

    def remove(self, path: str) -> None:
        with self._errors("remove", path):
            self._path(path).unlink(missing_ok=True)

    def close(self) -> None:
        pass


# --- SFTP ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SftpAddress:
    """``sftp://user@host:port/path`` taken apart."""

    user: str
    host: str
    port: int
    path: str


def parse_sftp_url(url: str) -> SftpAddress:
    """Split an ``sftp://user@host[:port]/absolute/path`` URL; raises ReplicationError."""
    parts = urlsplit(url)
    if parts.scheme != "sftp":
        raise ReplicationError(f"{url!r}: not an sftp:// URL")
    try:
        port = parts.port or 22
    except ValueError:
        raise ReplicationError(f"{url!r}: the port is not a number from 1 to 65535") from None
    if not parts.username or not parts.hostname:
        raise ReplicationError(f"{url!r}: give the user and host, as sftp://user@host/path")
    if parts.password is not None:
        raise ReplicationError(f"{url!r}: no password in the URL; key authentication only")
    path = unquote(parts.path)
    if not path.startswith("/") or parts.query or parts.fragment:
        raise ReplicationError(f"{url!r}: give an absolute directory, as sftp://user@host/path")
    return SftpAddress(unquote(parts.username), parts.hostname, port, path)


def parse_host_key(line: str) -> paramiko.PKey:
    """The pinned host key from a ``type base64`` line (``ssh-keyscan`` output, host omitted
    or not). Raises ReplicationError when it is not one."""
    fields = line.split()
    if fields and not fields[0].startswith(("ssh-", "ecdsa-", "sk-")):
        fields = fields[1:]  # "host ssh-ed25519 AAAA..." as ssh-keyscan prints it
    if len(fields) < 2:
        raise ReplicationError(f"{line!r}: not a host key line like 'ssh-ed25519 AAAA...'")
    try:
        return paramiko.PKey.from_type_string(fields[0], _b64(fields[1]))
    except (
        paramiko.SSHException,
        paramiko.pkey.UnknownKeyType,
        ValueError,
        TypeError,
        IndexError,
        struct.error,
    ) as exc:
        raise ReplicationError(f"{line[:40]!r}...: not a usable host key ({exc})") from None


def _b64(text: str) -> bytes:
    import base64
    import binascii

    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"bad base64: {exc}") from None


class SftpDestination:
    """A directory on an SFTP server, reached with a pinned host key and a private key.

    ``timeout_s`` bounds connecting and every request: a server that stops answering
    raises :class:`ReplicationError` instead of hanging the replicator.
    """

    def __init__(
        self, url: str, *, host_key: str, identity_file: Path, timeout_s: float = 15.0
    ) -> None:
        self.address = parse_sftp_url(url)
        self.description = url
        pinned = parse_host_key(host_key)
        try:
            client_key = paramiko.PKey.from_path(identity_file)
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise ReplicationError(
                f"{identity_file}: cannot load the replication key ({exc}); it must be an "
                "unencrypted OpenSSH private key readable by this user"
            ) from None
        address = (self.address.host, self.address.port)
        try:
            sock = socket.create_connection(address, timeout=timeout_s)
        except OSError as exc:
            raise ReplicationError(f"{url}: cannot connect: {exc.strerror or exc}") from None
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = timeout_s
            transport.auth_timeout = timeout_s
            transport.start_client(timeout=timeout_s)
            offered = transport.get_remote_server_key()
            if (offered.get_name(), offered.asbytes()) != (pinned.get_name(), pinned.asbytes()):
                raise ReplicationError(
                    f"{url}: the server's host key ({offered.get_name()} "
                    f"{offered.fingerprint}) is not the pinned replicate.host_key "
                    f"({pinned.fingerprint}); refusing to connect. If you replaced the "
                    "server, pin its new key."
                )
            transport.auth_publickey(self.address.user, client_key)
            sftp = paramiko.SFTPClient.from_transport(transport)
            if sftp is None:
                raise ReplicationError(f"{url}: the server refused the sftp subsystem")
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(timeout_s)
        except ReplicationError:
            transport.close()
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            transport.close()
            raise ReplicationError(f"{url}: SSH failed: {exc}") from None
        self._transport = transport
        self._sftp = sftp
        self._made_dirs: set[str] = set()

    def _path(self, path: str) -> str:
        return posixpath.join(self.address.path, _relative(path))

    @contextlib.contextmanager
    def _errors(self, what: str, path: str) -> Iterator[None]:
        try:
            yield
        except ReplicationError:
            raise
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise ReplicationError(f"{self.description}: cannot {what} {path}: {exc}") from exc

    def _mkdirs(self, directory: str) -> None:
        if directory in self._made_dirs or directory in ("", "/"):
            return
        try:
            if stat.S_ISDIR(self._sftp.stat(directory).st_mode or 0):
                self._made_dirs.add(directory)
                return
        except FileNotFoundError:
            pass
        self._mkdirs(posixpath.dirname(directory))
        with contextlib.suppress(OSError):  # made meanwhile; the next write tells if not
            self._sftp.mkdir(directory, 0o750)
        self._made_dirs.add(directory)

    def size(self, path: str) -> int | None:
        with self._errors("stat", path):
            try:
                return self._sftp.stat(self._path(path)).st_size
            except FileNotFoundError:
                return None

    def write_at(self, path: str, offset: int, data: bytes, *, in_order: bool = True) -> None:
        target = self._path(path)
        with self._errors("write", path):
            self._mkdirs(posixpath.dirname(target))
            mode = "r+b" if offset else "wb"
            if offset == 0 and self.size(path):
                mode = "r+b"  # never truncate what is there: the caller writes over it
            with self._sftp.open(target, mode) as handle:
                handle.set_pipelined(not in_order)
                handle.seek(offset)
                for start in range(0, len(data), BLOCK_BYTES):
                    handle.write(data[start : start + BLOCK_BYTES])
                    if in_order:
                        handle.flush()
            if not in_order:
                # paramiko drops the status of pipelined writes; the server answers the
                # close only after it has handled every write, so the size tells whether
                # they all landed (what paramiko's own put(confirm=True) checks).
                held = self._sftp.stat(target).st_size or 0
                if held < offset + len(data):
                    raise ReplicationError(
                        f"{self.description}: cannot write {path}: the server holds {held} "
                        f"of {offset + len(data)} bytes (is its disk full?)"
                    )

    def truncate(self, path: str, size: int) -> None:
        with self._errors("truncate", path):
            self._sftp.truncate(self._path(path), size)

    def replace(self, path: str, data: bytes) -> None:
        target = self._path(path)
        directory, name = posixpath.split(target)
        temp = posixpath.join(directory, f".{name}{TEMP_MARKER}{secrets.token_hex(6)}")
        with self._errors("write", path):
            self._mkdirs(directory)
            try:
                with self._sftp.open(temp, "wb") as handle:
                    handle.set_pipelined(False)
                    handle.write(data)
                self._sftp.posix_rename(temp, target)
            except BaseException:
                with contextlib.suppress(OSError, paramiko.SSHException, EOFError):
                    self._sftp.remove(temp)
                raise

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        with self._errors("read", path), self._sftp.open(self._path(path), "rb") as handle:
            handle.seek(offset)
            if length is None:
                return handle.read()
            return handle.read(length)

    def listdir(self, path: str) -> list[str]:
        with self._errors("list", path):
            try:
                target = posixpath.join(self.address.path, _relative(path, root_ok=True))
                return sorted(self._sftp.listdir(target))
            except FileNotFoundError:
                return []

    def remove(self, path: str) -> None:
        with self._errors("remove", path), contextlib.suppress(FileNotFoundError):
            self._sftp.remove(self._path(path))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._sftp.close()
        self._transport.close()


def open_destination(
    destination: str,
    *,
    host_key: str = "",
    identity_file: str | Path = "",
    timeout_s: float = 15.0,
) -> Destination:
    """Connect to ``destination``: an absolute directory path, or an ``sftp://`` URL (which
    needs ``host_key`` and ``identity_file``). Raises :class:`ReplicationError`."""
    if destination.startswith("sftp://"):
        if not host_key or not identity_file:
            raise ReplicationError(
                f"{destination}: an sftp destination needs replicate.host_key (the server's "
                "pinned key) and replicate.identity_file (this device's private key)"
            )
        return SftpDestination(
            destination, host_key=host_key, identity_file=Path(identity_file), timeout_s=timeout_s
        )
    if "://" in destination:
        raise ReplicationError(
            f"{destination!r}: unsupported destination; give a directory or sftp://user@host/path"
        )
    if not destination.startswith("/"):
        raise ReplicationError(
            f"{destination!r}: give the destination directory as an absolute path"
        )
    return LocalDestination(Path(destination))
