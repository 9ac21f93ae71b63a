"""Injected through PYTHONPATH into every doorbell process of the no-phoning-home test.

Logs every outbound socket operation (connect, sendto, DNS lookups) to the file named by
$DOORBELL_CONNECT_LOG, one JSON line each, through a PEP 578 audit hook. Does nothing else.
"""

import json
import os
import socket
import sys

_LOG = os.environ.get("DOORBELL_CONNECT_LOG")
_WATCHED = {
    "socket.connect",
    "socket.sendto",
    "socket.sendmsg",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyaddr",
}


def _hook(event, args):
    if event not in _WATCHED:
        return
    if event.startswith("socket.send") or event == "socket.connect":
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
    record["pid"] = os.getpid()
    _write(record)


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
