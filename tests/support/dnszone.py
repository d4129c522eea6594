"""A real DNS server for tests: unbound on a loopback port answering from `local-data` only.

The server is authoritative-only for what it is given (`local-zone: "." static`): every name
not in the zone data gets NXDOMAIN at once, nothing is ever sent to the internet, and no
lookup waits out a timeout. DKIM keys are generated here and published as TXT records.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from .net import LOOPBACK, free_port, live_pid, read_pidfile, wait_exit_or_kill, wait_until

__all__ = ["DnsServerError", "DkimKey", "generate_dkim_key", "DnsZone", "UnboundServer"]


class DnsServerError(RuntimeError):
    """The DNS server could not be configured, started or stopped."""


@dataclass(frozen=True)
class DkimKey:
    """A DKIM signing key and the TXT record that publishes it (RFC 6376 §3.6.1, RFC 8463).

    Attributes:
        domain: the signing domain (d=).
        selector: the selector (s=).
        algorithm: "rsa" or "ed25519".
        private_key: what dkimpy's `dkim.sign(..., privkey=...)` takes: PEM (PKCS#1) for RSA,
            the base64 of the 32-byte seed for Ed25519.
        record: the TXT record text, "v=DKIM1; k=...; p=...".
    """

    domain: str
    selector: str
    algorithm: str
    private_key: bytes
    record: str

    @property
    def name(self) -> str:
        """The owner name of the key record: <selector>._domainkey.<domain>."""
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def signature_algorithm(self) -> bytes:
        """dkimpy's `signature_algorithm` argument for this key."""
        return b"ed25519-sha256" if self.algorithm == "ed25519" else b"rsa-sha256"

    def sign(self, message: bytes, *, headers: tuple[bytes, ...] = (b"from", b"to", b"subject",
                                                                     b"date", b"message-id")
             ) -> bytes:
        """The message with a DKIM-Signature header prepended (relaxed/relaxed).

        Raises:
            dkim.DKIMException: when dkimpy refuses the key or message.
        """
        import dkim

        sig = dkim.sign(message, self.selector.encode(), self.domain.encode(), self.private_key,
                        canonicalize=(b"relaxed", b"relaxed"), include_headers=list(headers),
                        signature_algorithm=self.signature_algorithm)
        return bytes(sig) + message


def generate_dkim_key(domain: str, selector: str, *, algorithm: str = "rsa",
                      bits: int = 1024) -> DkimKey:
    """A fresh DKIM key pair for domain/selector.

    Args:
        algorithm: "rsa" (RSA-SHA256, `bits` long) or "ed25519" (RFC 8463).
        bits: RSA modulus size; 1024 keeps the TXT record in one string, 2048 is split
            into several strings by the zone writer.
    """
    if algorithm == "ed25519":
        ed_key = ed25519.Ed25519PrivateKey.generate()
        seed = ed_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
        public = ed_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                  serialization.PublicFormat.Raw)
        return DkimKey(domain, selector, "ed25519", base64.b64encode(seed),
                       f"v=DKIM1; k=ed25519; p={base64.b64encode(public).decode()}")
    if algorithm != "rsa":
        raise ValueError(f"unknown DKIM key algorithm {algorithm!r}")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = rsa_key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    spki = rsa_key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    return DkimKey(domain, selector, "rsa", pem,
                   f"v=DKIM1; k=rsa; p={base64.b64encode(spki).decode()}")


def _txt_rdata(text: str) -> str:
    """TXT rdata in zone-file syntax: quoted strings of at most 255 bytes (RFC 1035 §3.3.14)."""
    raw = text.encode()
    chunks = [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
    quoted = []
    for chunk in chunks:
        s = chunk.decode("utf-8", errors="strict").replace("\\", "\\\\").replace('"', '\\"')
        quoted.append(f'"{s}"')
    return " ".join(quoted)


@dataclass
class DnsZone:
    """Resource records to serve: (owner name, type, rdata in zone-file syntax)."""

    records: list[tuple[str, str, str]] = field(default_factory=list)
    dkim_keys: dict[tuple[str, str], DkimKey] = field(default_factory=dict)
    #: (zone, unbound local-zone type): "always_refuse" answers REFUSED, "deny" drops
    #: every query (the client times out)
    local_zones: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, rtype: str, rdata: str) -> None:
        """Add one record; `rdata` is in zone-file syntax (TXT already quoted)."""
        self.records.append((name.rstrip(".").lower() + ".", rtype.upper(), rdata))

    def add_a(self, name: str, address: str) -> None:
        self.add(name, "A", address)

    def add_mx(self, name: str, host: str, preference: int = 10) -> None:
        self.add(name, "MX", f"{preference} {host.rstrip('.')}.")

    def add_txt(self, name: str, text: str) -> None:
        """Add a TXT record; text longer than 255 bytes is split into several strings."""
        self.add(name, "TXT", _txt_rdata(text))

    def add_spf(self, domain: str, policy: str) -> None:
        """Publish an SPF policy such as "v=spf1 ip4:127.0.0.1 -all" (RFC 7208 §3)."""
        self.add_txt(domain, policy)

    def add_dmarc(self, domain: str, policy: str) -> None:
        """Publish a DMARC record at _dmarc.<domain> (RFC 7489 §6.1)."""
        self.add_txt(f"_dmarc.{domain}", policy)

    def add_dkim_key(self, domain: str, selector: str, *, algorithm: str = "rsa",
                     bits: int = 1024) -> DkimKey:
        """Generate a DKIM key, publish it, and return it for signing."""
        key = generate_dkim_key(domain, selector, algorithm=algorithm, bits=bits)
        self.add_txt(key.name, key.record)
        self.dkim_keys[(domain, selector)] = key
        return key

    def add_local_zone(self, zone: str, kind: str) -> None:
        """Answer every name under ``zone`` by unbound's local-zone ``kind``
        (``always_refuse``: REFUSED; ``deny``: no answer at all)."""
        self.local_zones.append((zone.rstrip(".").lower() + ".", kind))

    def unbound_lines(self) -> list[str]:
        return [f'    local-zone: "{zone}" {kind}\n' for zone, kind in self.local_zones] + [
            f'    local-data: \'{name} 60 IN {rtype} {rdata}\'\n'
            for name, rtype, rdata in self.records]


@dataclass
class UnboundServer:
    """unbound on 127.0.0.1:<port> answering only the zone; `start()`, then always `stop()`.

    Args:
        base_dir: a directory for unbound.conf, the pidfile and the log.
        zone: the records to serve; after changing it, `reload()` applies the change.
    """

    base_dir: Path
    zone: DnsZone = field(default_factory=DnsZone)
    port: int = 0

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir)
        self.conf_path = self.base_dir / "unbound.conf"
        self.pid_path = self.base_dir / "unbound.pid"
        self.log_path = self.base_dir / "unbound.log"
        if not self.port:
            self.port = free_port(udp_too=True)
        self._started_pid: int | None = None

    @property
    def address(self) -> str:
        """"127.0.0.1:PORT", the form `dns.nameservers` takes."""
        return f"{LOOPBACK}:{self.port}"

    def write_config(self) -> None:
        conf = (
            "server:\n"
            f"    interface: {LOOPBACK}@{self.port}\n"
            f"    port: {self.port}\n"
            "    do-ip6: no\n"
            "    do-daemonize: yes\n"
            "    username: \"\"\n"
            "    chroot: \"\"\n"
            f"    directory: \"{self.base_dir}\"\n"
            f"    pidfile: \"{self.pid_path}\"\n"
            f"    logfile: \"{self.log_path}\"\n"
            "    use-syslog: no\n"
            "    verbosity: 1\n"
            "    num-threads: 1\n"
            "    module-config: \"iterator\"\n"
            "    access-control: 127.0.0.0/8 allow\n"
            "    local-zone: \".\" static\n"
            "    msg-cache-size: 4m\n"
            "    rrset-cache-size: 4m\n"
            + "".join(self.zone.unbound_lines())
            + "remote-control:\n    control-enable: no\n"
        )
        self.conf_path.write_text(conf)
        check = subprocess.run(["unbound-checkconf", str(self.conf_path)], capture_output=True,
                               text=True, timeout=30, check=False)
        if check.returncode != 0:
            raise DnsServerError(f"unbound-checkconf: {check.stdout}{check.stderr}")

    @property
    def pid(self) -> int | None:
        """unbound's pid while it runs (remembered at start, so a removed pidfile does not
        leave it running)."""
        return live_pid(self._started_pid, self.pid_path)

    def start(self, *, timeout: float = 10) -> None:
        """Write the config, start unbound and wait until it answers over UDP.

        Raises:
            DnsServerError: with unbound's words and log when it does not come up.
        """
        self.write_config()
        done = subprocess.run(["unbound", "-c", str(self.conf_path)], capture_output=True,
                              text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise DnsServerError(f"unbound failed ({done.returncode}): {done.stderr}"
                                 f"{self._log_tail()}")
        self._started_pid = read_pidfile(self.pid_path)
        self._wait_answering(timeout)

    def _wait_answering(self, timeout: float) -> None:
        probe = self.zone.records[0] if self.zone.records else None

        def answers() -> bool:
            if probe is None:
                return self.dig("localhost.", "A", short=False) != ""
            return self.dig(probe[0], probe[1]) != ""

        try:
            wait_until(answers, timeout=timeout, interval=0.1, what=f"unbound on {self.port}")
        except TimeoutError as exc:
            self.stop()
            raise DnsServerError(f"{exc}{self._log_tail()}") from exc

    def reload(self, *, timeout: float = 10) -> None:
        """Re-read the zone (SIGHUP) after records were added, and wait until it answers."""
        self.write_config()
        pid = self.pid
        if pid is None:
            raise DnsServerError("unbound is not running")
        os.kill(pid, signal.SIGHUP)
        last = self.zone.records[-1] if self.zone.records else None
        if last is not None:
            try:
                wait_until(lambda: self.dig(last[0], last[1]) != "", timeout=timeout,
                           interval=0.1, what=f"{last[0]} served after reload")
            except TimeoutError as exc:
                raise DnsServerError(f"{exc}{self._log_tail()}") from exc

    def stop(self, *, timeout: float = 10) -> None:
        """Stop unbound and wait for it to exit (killed after `timeout`); idempotent."""
        pid = self.pid
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        wait_exit_or_kill(pid, timeout=timeout, what="unbound exit")

    def dig(self, name: str, rtype: str = "A", *, short: bool = True) -> str:
        """Ask the server with dig (UDP, one try, 1 s); the answer text, '' when none."""
        args = ["dig", f"@{LOOPBACK}", "-p", str(self.port), "+time=1", "+tries=1", name, rtype]
        if short:
            args.insert(1, "+short")
        done = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
        if done.returncode != 0:
            return ""
        return done.stdout.strip()

    def _log_tail(self) -> str:
        try:
            return "\nunbound log:\n" + self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""
