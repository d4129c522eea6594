"""`spamwarden rbl` as a real process on a loopback port, and small DNS client helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from .net import LOOPBACK, free_port, terminate

__all__ = ["ZONE", "RblProcess", "ip_name"]


ZONE = "bl.example.net"


class RblProcess:
    """One `spamwarden rbl` child process.

    Args:
        directory: where its config and log go.
        redis_url: the Redis it follows (SPAMWARDEN_REDIS_URL).
        rbl: extra `[rbl]` settings (TOML values, already quoted).
    """

    def __init__(self, directory: Path, redis_url: str, **rbl: str) -> None:
        self.directory = directory
        self.redis_url = redis_url
        self.port = free_port(udp_too=True)
        self.rbl = {"zone": f'"{ZONE}"', "listen": f'["{LOOPBACK}:{self.port}"]',
                    "transfer_allow": '["127.0.0.1"]', "ttl": "300", "negative_ttl": "60",
                    "lookup_url": '"https://bl.example.net/lookup/"'}
        self.rbl.update(rbl)
        self.config = directory / "spamwarden.toml"
        self.log = directory / "rbl.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 20.0) -> None:
        """Start and wait until the RFC 5782 test point answers over UDP.

        Raises:
            RuntimeError: the process exits or does not answer in time (with its log).
        """
        lines = ["[service]", f'state_dir = "{self.directory}/state"', "[redis]", "timeout = 0.5",
                 "[rbl]"] + [f"{k} = {v}" for k, v in self.rbl.items()]
        self.config.write_text("\n".join(lines) + "\n")
        env = dict(os.environ, SPAMWARDEN_REDIS_URL=self.redis_url)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "spamwarden", "rbl", "--config", str(self.config)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"spamwarden rbl exited:\n{self.log.read_text()}")
            try:
                r = self.query(f"2.0.0.127.ip.{ZONE}", "A", timeout=0.5)
                if r.rcode() == dns.rcode.NOERROR and r.answer:
                    return
            except (dns.exception.Timeout, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"spamwarden rbl did not answer in {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        terminate(self.proc)

    def query(self, name: str, rdtype: str = "A", *, tcp: bool = False, timeout: float = 2.0,
              **make: Any) -> dns.message.Message:
        """One dnspython query (UDP, or TCP) to the server."""
        q = dns.message.make_query(name, rdtype, **make)
        if tcp:
            return dns.query.tcp(q, LOOPBACK, port=self.port, timeout=timeout)
        return dns.query.udp(q, LOOPBACK, port=self.port, timeout=timeout, ignore_trailing=False)

    def dig(self, *args: str, timeout: float = 10.0) -> str:
        """`dig -p PORT @127.0.0.1 ARGS...` output."""
        r = subprocess.run(["dig", "-p", str(self.port), f"@{LOOPBACK}", "+time=2", "+tries=1", *args],
                           capture_output=True, text=True, timeout=timeout)
        return r.stdout

    def dig_short(self, name: str, rdtype: str = "A", *extra: str) -> list[str]:
        """`dig +short` lines."""
        return [ln for ln in self.dig("+short", name, rdtype, *extra).splitlines() if ln]


def ip_name(address: str) -> str:
    """The ip.<zone> name of an address (RFC 5782 §2.1, §2.4)."""
    import ipaddress

    ptr = ipaddress.ip_address(address).reverse_pointer
    return ptr.replace(".in-addr.arpa", f".ip.{ZONE}").replace(".ip6.arpa", f".ip.{ZONE}")
