"""Free loopback TCP ports, for every server the harness starts: the embedded PostgreSQL, the apps, Locust.

It lives in bench.db, the lowest layer that needs one, so bench.run and bench.db share this one probe.
"""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS just found free on `host`; another process may take it before the caller binds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
