"""Injected through PYTHONPATH into every doorbell process of the no-phoning-home test.

Logs every outbound socket operation (connect, sendto, DNS lookups) to the file named by
$DOORBELL_CONNECT_LOG, one JSON line each, through a PEP 578 audit hook. Binds are logged
too, and a connect to a listening socket the process itself holds (paho-mqtt's wake-up
socket pair on 127.0.0.1) is marked ``own_listener`` (from /proc). Does nothing else.
"""

import json
import os
import socket
import sys

_LOG = os.environ.get("DOORBELL_CONNECT_LOG")
_WATCHED = {
    "socket.connect",
    "socket.bind",
    "socket.sendto",
    "socket.sendmsg",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyaddr",
}


def _hook(event, args):
    if event not in _WATCHED:
        return
    if event.startswith("socket.send") or event in ("socket.connect", "socket.bind"):
        sock, address = args[0], args[1]
        record = {
            "event": event,
            "family": int(getattr(sock, "family", -1)),
            "address": address if isinstance(address, str) else repr(address),
        }
        if isinstance(address, tuple):
            record["host"] = str(address[0])
        elif isinstance(address, bytes):
            record["address"] = address.decode("latin-1")
    else:
        record = {"event": event, "host": str(args[0])}
    if event == "socket.connect" and isinstance(address, tuple) and len(address) >= 2:
        record["own_listener"] = _own_listener(address[1])
    record["pid"] = os.getpid()
    _write(record)


def _own_listener(port):
    """Whether this process holds a TCP socket listening on ``port`` (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{inode}]")
    if not inodes:
        return False
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") in inodes:
                return True
        except OSError:
            continue
    return False


def _write(record):
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


if _LOG:
    sys.addaudithook(_hook)
    _write({"event": "hook.installed", "pid": os.getpid(), "family": int(socket.AF_UNIX)})
