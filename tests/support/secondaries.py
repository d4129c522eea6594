"""Real secondary name servers (BIND, NSD, Knot) transferring the blocklist zones.

Each runs in the foreground from a private directory on a loopback port, as a
secondary of ``ip.<zone>`` and ``dbl.<zone>`` with our server as primary, and
accepts NOTIFY from 127.0.0.1.  The configurations are the ones docs/dnsbl.md shows.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode

from .net import LOOPBACK, free_port, terminate

__all__ = ["Secondary", "BindSecondary", "NsdSecondary", "KnotSecondary", "SECONDARIES"]


class Secondary:
    """One secondary server process.

    Args:
        directory: private directory (config, zone files, log).
        zones: the zone names it mirrors.
        primary_port: the port of our server on 127.0.0.1.
    """

    name = "secondary"
    binary = ""

    def __init__(self, directory: Path, zones: list[str], primary_port: int) -> None:
        self.directory = directory
        self.zones = zones
        self.primary_port = primary_port
        self.port = free_port(udp_too=True)
        self.log = directory / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, *, timeout: float = 20.0) -> None:
        """Start and wait until every zone answers its SOA.

        Raises:
            RuntimeError: it exits or does not load the zones in time (with its log).
        """
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         cwd=self.directory, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log.read_text(errors='replace')}")
            if all(self.serial(z) is not None for z in self.zones):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not load in {timeout}s:\n"
                           f"{self.log.read_text(errors='replace')[-4000:]}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        terminate(self.proc)

    def query(self, name: str, rdtype: str = "A", *, timeout: float = 1.0) -> dns.message.Message:
        """One UDP query to this secondary."""
        return dns.query.udp(dns.message.make_query(name, rdtype), LOOPBACK, port=self.port,
                             timeout=timeout)

    def serial(self, zone: str) -> int | None:
        """The SOA serial it serves for ``zone``, or None (not loaded, not answering)."""
        try:
            r = self.query(zone, "SOA", timeout=0.5)
        except (dns.exception.Timeout, OSError):
            return None
        if r.rcode() != dns.rcode.NOERROR or not r.answer:
            return None
        return int(r.answer[0][0].serial)


class BindSecondary(Secondary):
    """BIND 9 (``named -g``: logs each transfer to stderr)."""

    name = "bind"
    binary = "named"

    def command(self) -> list[str]:
        d = self.directory
        zones = "".join(
            f'zone "{z}" {{ type secondary; primaries port {self.primary_port} {{ {LOOPBACK}; }}; '
            f'file "{d}/{z}.db"; }};\n' for z in self.zones)
        conf = d / "named.conf"
        conf.write_text(
            f'options {{ directory "{d}"; listen-on port {self.port} {{ {LOOPBACK}; }}; '
            f'listen-on-v6 {{ none; }}; pid-file "{d}/named.pid"; recursion no; '
            f'dnssec-validation no; notify no; allow-notify {{ {LOOPBACK}; }}; }};\n'
            f'controls {{ }};\n{zones}')
        return ["named", "-g", "-c", str(conf), "-u", "root"]


class NsdSecondary(Secondary):
    """NSD 4 (``nsd -d``)."""

    name = "nsd"
    binary = "nsd"

    def command(self) -> list[str]:
        d = self.directory
        zones = "".join(
            f"zone:\n  name: {z}\n  zonefile: {z}.zone\n  allow-notify: {LOOPBACK} NOKEY\n"
            f"  request-xfr: {LOOPBACK}@{self.primary_port} NOKEY\n" for z in self.zones)
        conf = d / "nsd.conf"
        conf.write_text(
            f'server:\n  ip-address: {LOOPBACK}@{self.port}\n  zonesdir: "{d}"\n'
            f'  pidfile: "{d}/nsd.pid"\n  xfrdfile: "{d}/xfrd.state"\n'
            f'  zonelistfile: "{d}/zone.list"\n  database: ""\n  username: ""\n'
            f'  chroot: ""\n  verbosity: 2\n  xfrdir: "{d}"\n  xfrd-reload-timeout: 0\n'
            f"remote-control:\n  control-enable: no\n{zones}")
        return ["nsd", "-d", "-c", str(conf)]


class KnotSecondary(Secondary):
    """Knot DNS 3 (``knotd``, foreground)."""

    name = "knot"
    binary = "knotd"

    def command(self) -> list[str]:
        d = self.directory
        zones = "".join(f"  - domain: {z}\n    master: primary\n    acl: notify_from_primary\n"
                        for z in self.zones)
        conf = d / "knot.conf"
        conf.write_text(
            f"server:\n  listen: {LOOPBACK}@{self.port}\n  rundir: {d}\n  user: root\n"
            f"log:\n  - target: stderr\n    any: info\n"
            f"database:\n  storage: {d}\n"
            f"control:\n  listen: {d}/knot.sock\n"
            f"remote:\n  - id: primary\n    address: {LOOPBACK}@{self.primary_port}\n"
            f"acl:\n  - id: notify_from_primary\n    address: {LOOPBACK}\n    action: notify\n"
            f"template:\n  - id: default\n    storage: {d}\n    file: \"%s.zone\"\n"
            f"zone:\n{zones}")
        return ["knotd", "-c", str(conf)]


SECONDARIES: dict[str, type[Secondary]] = {
    "bind": BindSecondary, "nsd": NsdSecondary, "knot": KnotSecondary}
