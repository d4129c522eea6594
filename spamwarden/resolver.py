"""The one DNS resolver behind every lookup the service makes.

SPF, DKIM, DMARC and blocklist code never talk to the network themselves: they
take a :class:`Resolver` (a ``Protocol``) and get back a :class:`DnsAnswer`
whose ``status`` is one of three outcomes that must never be confused:

* ``"ok"``       - records were found (``records`` is non-empty);
* ``"nxdomain"`` / ``"nodata"`` - the name or the type does not exist (a
  *permanent*, cacheable "no");
* ``"error"``    - the lookup failed (timeout, SERVFAIL, REFUSED, network):
  a *temporary* failure, which callers turn into ``temperror`` / "failed",
  never into "not listed" or "no key".

Record forms in ``DnsAnswer.records``: A / AAAA -> address text; TXT -> the
character-strings of one record joined, as ``bytes``; MX -> ``(preference,
exchange)``; PTR, CNAME, NS -> target name without the trailing dot.

:class:`StaticResolver` serves a dict and is what unit tests inject.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping, Protocol, runtime_checkable

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from .config import DnsConfig, parse_hostport

__all__ = [
    "DnsAnswer",
    "Resolver",
    "DnsPythonResolver",
    "StaticResolver",
    "resolver_from_config",
    "question_key",
]

Status = Literal["ok", "nxdomain", "nodata", "error"]


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """The outcome of one lookup; ``reason`` explains an ``"error"``."""

    status: Status
    records: tuple[Any, ...] = ()
    reason: str = ""

    @property
    def failed(self) -> bool:
        """True for a temporary failure (not a "no")."""
        return self.status == "error"

    @property
    def found(self) -> bool:
        return self.status == "ok"


@runtime_checkable
class Resolver(Protocol):
    """What every lookup in spamwarden needs from DNS."""

    def query(self, name: str, rdtype: str, *, timeout: float | None = None) -> DnsAnswer:
        """Look up ``rdtype`` records of ``name``; never raises for DNS trouble."""
        ...


def _rdata_value(rdtype: str, rdata: Any) -> Any:
    if rdtype in ("A", "AAAA"):
        return rdata.address
    if rdtype in ("TXT", "SPF"):
        return b"".join(rdata.strings)
    if rdtype == "MX":
        return (int(rdata.preference), rdata.exchange.to_text(omit_final_dot=True))
    if rdtype in ("PTR", "CNAME", "NS"):
        return rdata.target.to_text(omit_final_dot=True)
    return rdata.to_text()


class DnsPythonResolver:
    """A :class:`Resolver` over dnspython's stub resolver.

    :param nameservers: ``"ip"`` or ``"ip:port"`` strings; empty uses
        ``/etc/resolv.conf``.
    :param timeout: the whole budget of one lookup, retries included (seconds).
    :param cache: keep answers for their TTL (thread-safe LRU).
    """

    def __init__(
        self, nameservers: Iterable[str] = (), *, timeout: float = 2.0, cache: bool = True
    ) -> None:
        servers = list(nameservers)
        self._resolver = dns.resolver.Resolver(configure=not servers)
        if servers:
            ns: list[str] = []
            ports: dict[str, int] = {}
            for item in servers:
                host, port = parse_hostport(item, default_port=53)
                ns.append(host)
                ports[host] = port
            self._resolver.nameservers = ns
            self._resolver.nameserver_ports = ports
        self._resolver.lifetime = timeout
        self._resolver.timeout = max(timeout / 2, 0.05)
        # EDNS0 so large TXT (DKIM 2048-bit keys) fit in UDP; TCP fallback on TC.
        self._resolver.use_edns(0, 0, 1232)
        if cache:
            self._resolver.cache = dns.resolver.LRUCache(20000)
        self.timeout = timeout

    def query(self, name: str, rdtype: str, *, timeout: float | None = None) -> DnsAnswer:
        """See :meth:`Resolver.query`."""
        lifetime = self.timeout if timeout is None else timeout
        try:
            answer = self._resolver.resolve(
                name, rdtype, lifetime=lifetime, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN:
            return DnsAnswer("nxdomain")
        except dns.resolver.NoNameservers as exc:
            return DnsAnswer("error", reason=f"no server answered: {_short(exc)}")
        except dns.exception.Timeout:
            return DnsAnswer("error", reason=f"timeout after {lifetime:g}s")
        except (dns.name.NameTooLong, dns.name.EmptyLabel, dns.name.LabelTooLong) as exc:
            # A name that cannot exist in DNS does not exist: a permanent "no".
            return DnsAnswer("nxdomain", reason=str(exc))
        except dns.exception.DNSException as exc:
            return DnsAnswer("error", reason=_short(exc))
        except (OSError, ValueError) as exc:
            return DnsAnswer("error", reason=f"{type(exc).__name__}: {exc}")
        if answer.rrset is None:
            return DnsAnswer("nodata")
        want = dns.rdatatype.from_text(rdtype)
        records = tuple(_rdata_value(rdtype, r) for r in answer.rrset if r.rdtype == want)
        return DnsAnswer("ok", records) if records else DnsAnswer("nodata")


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:197] + "..."


def question_key(name: str, rdtype: str) -> tuple[str, str]:
    """The form a question is looked up under in answer tables: the name in lower case
    without its trailing dot (DNS names compare case-insensitively, RFC 4343), the
    type in upper case.

    :returns: ``(name, rdtype)``, e.g. ``("sel._domainkey.example.com", "TXT")``.
    """
    return name.lower().rstrip("."), rdtype.upper()


class StaticResolver:
    """A :class:`Resolver` answering from a dict, for tests and offline checks.

    ``zone`` maps ``(name, rdtype)`` (name lower-case, no trailing dot) to a list
    of records in :class:`DnsAnswer` form, or to the string ``"error"`` to
    simulate a temporary failure.  A name present under another type gives
    ``"nodata"``; an absent name ``"nxdomain"``.  ``queries`` records every call.
    """

    def __init__(self, zone: Mapping[tuple[str, str], Any] | None = None) -> None:
        self.zone: dict[tuple[str, str], Any] = {
            question_key(n, t): v for (n, t), v in (zone or {}).items()
        }
        self.queries: list[tuple[str, str]] = []

    def add(self, name: str, rdtype: str, *records: Any) -> None:
        key = question_key(name, rdtype)
        self.zone.setdefault(key, [])
        self.zone[key].extend(records)

    def query(self, name: str, rdtype: str, *, timeout: float | None = None) -> DnsAnswer:
        key = question_key(name, rdtype)
        self.queries.append(key)
        value = self.zone.get(key)
        if value == "error":
            return DnsAnswer("error", reason="simulated failure")
        if value:
            return DnsAnswer("ok", tuple(value))
        if any(n == key[0] for n, _ in self.zone):
            return DnsAnswer("nodata")
        return DnsAnswer("nxdomain")


def resolver_from_config(cfg: DnsConfig) -> DnsPythonResolver:
    """The service's resolver, built from ``[dns]``."""
    return DnsPythonResolver(cfg.nameservers, timeout=cfg.timeout)
