"""Where the Locust master listens for its workers: ``--master-bind ADDRESS[:PORT]``.

bench.config.options checks it when the run is resolved; bench.run.loadgen turns it into Locust's flags.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from bench.errors import UsageError

# Locust's own default, which a worker dials when it is given no --master-port: workers on other hosts must know
# the port before the run, so a run that expects them listens here unless told otherwise.
LOCUST_MASTER_PORT = 5557
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "::": "::1"}  # every interface: dialled on loopback here


@dataclass(frozen=True)
class MasterBind:
    host: str  # an IP address of this machine, or a wildcard (every interface)
    port: int | None  # None: a free port, or Locust's default when workers on other hosts are expected

    @classmethod
    def parse(cls, text: str, source: str = "--master-bind") -> MasterBind:
        """``10.0.0.5``, ``10.0.0.5:5557``, ``0.0.0.0``, ``[fd00::5]:5557``, ``::``; anything else is a UsageError."""
        text = text.strip()
        host, port = text, None
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port = _port(rest.removeprefix(":"), text, source) if rest else None
        elif text.count(":") == 1:
            host, _, rest = text.partition(":")
            port = _port(rest, text, source)
        if host != "*":
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise UsageError(
                    f"{source} {text!r}: give an IP address of this machine (or 0.0.0.0 for every "
                    "interface), optionally with :PORT"
                ) from None
        return cls(host=host, port=port)

    @property
    def loopback(self) -> bool:
        return self.host != "*" and ipaddress.ip_address(self.host).is_loopback

    @property
    def local_host(self) -> str:
        """The address the workers on this machine dial (a wildcard is reached on loopback)."""
        return _WILDCARDS.get(self.host, self.host)

    def shown(self, port: int) -> str:
        """The address other hosts dial, as a worker's --master-host and --master-port say it."""
        host = "<this host's address>" if self.host in _WILDCARDS else self.host
        return f"--master-host {host} --master-port {port}"


def _port(text: str, whole: str, source: str) -> int:
    if text.isdigit() and 1 <= int(text) <= 65535:
        return int(text)
    raise UsageError(f"{source} {whole!r}: the port must be a number from 1 to 65535")


def check_remote_workers(master_bind: str, remote_workers: int, target: str | None) -> None:
    """``--master-bind`` is read; workers on other hosts need an address they can dial, and an app they can reach."""
    bind = MasterBind.parse(master_bind)
    if not remote_workers:
        return
    if not target:
        raise UsageError(
            "--remote-workers needs --target URL at an address the workers reach: the paired apps and "
            "--serve listen on 127.0.0.1 only"
        )
    if bind.loopback:
        raise UsageError(
            f"--remote-workers needs --master-bind on an address the workers reach (this machine's "
            f"address on their network, or 0.0.0.0), not {master_bind}"
        )
