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

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast, runtime_checkable

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from ._dnswire import udp_query
from .config import DnsConfig, parse_hostport

__all__ = [
    "DnsAnswer",
    "Resolver",
    "KeptAnswers",
    "CachingResolver",
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


@runtime_checkable
class KeptAnswers(Protocol):
    """A resolver that can answer from its memory alone (no network)."""

    def kept(self, name: str, rdtype: str) -> tuple[DnsAnswer, float] | None:
        """The kept answer and until when (``time.monotonic``) it is kept, or ``None``."""
        ...


@runtime_checkable
class CachingResolver(Protocol):
    """A resolver that may keep answers for their TTL (:attr:`caches` says if it does):
    fetching a record early pays off only with one."""

    @property
    def caches(self) -> bool:
        """Answers are kept for their TTL."""
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
        self, nameservers: Iterable[str] = (), *, timeout: float = 2.0, cache: bool = True,
        fast_udp: bool = True,
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
        # Finished answers by question, kept for their TTL: a repeated question costs a
        # dict lookup instead of dnspython's resolution and record conversion.
        self._answers: dict[tuple[str, str], tuple[float, DnsAnswer]] | None = (
            {} if cache else None)
        # The first server, for the lean UDP path (spamwarden._dnswire); dnspython does
        # everything that path leaves (other types, TCP, errors, the other servers).
        self._fast_server: tuple[str, int] | None = None
        first = self._resolver.nameservers[0] if self._resolver.nameservers else None
        if fast_udp and isinstance(first, str):
            ports = getattr(self._resolver, "nameserver_ports", {}) or {}
            self._fast_server = (first, int(ports.get(first, self._resolver.port)))

    @property
    def caches(self) -> bool:
        """Answers are kept for their TTL (``cache=True``)."""
        return self._answers is not None

    #: questions whose answers are kept at most (the memory starts over when full)
    MAX_ANSWERS = 20000
    #: the longest a kept answer is used, whatever its TTL (seconds)
    MAX_TTL = 86400.0

    def query(self, name: str, rdtype: str, *, timeout: float | None = None) -> DnsAnswer:
        """See :meth:`Resolver.query`.  Answers (positive, NXDOMAIN and no-data alike)
        are kept for their TTL when the resolver caches; failures never are."""
        answers = self._answers
        if answers is None:
            return self._query(name, rdtype, timeout)[0]
        key = (name.lower().rstrip("."), rdtype.upper())
        kept = answers.get(key)
        now = time.monotonic()
        if kept is not None and kept[0] > now:
            return kept[1]
        answer, ttl = self._query(name, rdtype, timeout)
        if ttl > 0 and not answer.failed:
            if len(answers) >= self.MAX_ANSWERS:
                self._answers = answers = {}
            answers[key] = (now + min(ttl, self.MAX_TTL), answer)
        return answer

    def kept(self, name: str, rdtype: str) -> tuple[DnsAnswer, float] | None:
        """The kept answer to this question and until when (``time.monotonic``) it is
        kept, or ``None`` when a lookup would be needed (nothing kept, or it expired).
        Never touches the network."""
        if self._answers is None:
            return None
        kept = self._answers.get((name.lower().rstrip("."), rdtype.upper()))
        if kept is not None and kept[0] > time.monotonic():
            return kept[1], kept[0]
        return None

    def _query(self, name: str, rdtype: str, timeout: float | None) -> tuple[DnsAnswer, float]:
        """One lookup: the answer and how long it may be kept.  The lean UDP path first
        (one try at the first server); dnspython for whatever it does not read, within
        what is left of the time."""
        rdtype = rdtype.upper()
        lifetime = self.timeout if timeout is None else timeout
        if self._fast_server is not None:
            started = time.monotonic()
            fast = udp_query(self._fast_server, name, rdtype,
                             min(float(self._resolver.timeout), lifetime),
                             errors_final=len(self._resolver.nameservers) == 1)
            if fast is not None:
                status, records, ttl, reason = fast
                return DnsAnswer(cast(Status, status), records, reason=reason), ttl
            left = lifetime - (time.monotonic() - started)
            if left <= 0.01:
                return DnsAnswer("error", reason=f"timeout after {lifetime:g}s"), 0.0
            lifetime = left
        try:
            answer = self._resolver.resolve(
                name, rdtype, lifetime=lifetime, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN as exc:
            return DnsAnswer("nxdomain"), _negative_ttl(exc)
        except dns.resolver.NoNameservers as exc:
            return DnsAnswer("error", reason=f"no server answered: {_short(exc)}"), 0.0
        except dns.exception.Timeout:
            return DnsAnswer("error", reason=f"timeout after {lifetime:g}s"), 0.0
        except (dns.name.NameTooLong, dns.name.EmptyLabel, dns.name.LabelTooLong) as exc:
            # A name that cannot exist in DNS does not exist: a permanent "no".
            return DnsAnswer("nxdomain", reason=str(exc)), 0.0
        except dns.exception.DNSException as exc:
            return DnsAnswer("error", reason=_short(exc)), 0.0
        except (OSError, ValueError) as exc:
            return DnsAnswer("error", reason=f"{type(exc).__name__}: {exc}"), 0.0
        ttl = max(0.0, float(answer.expiration) - time.time())
        if answer.rrset is None:
            return DnsAnswer("nodata"), ttl
        want = dns.rdatatype.from_text(rdtype)
        records = tuple(_rdata_value(rdtype, r) for r in answer.rrset if r.rdtype == want)
        return (DnsAnswer("ok", records) if records else DnsAnswer("nodata")), ttl


def _negative_ttl(exc: dns.resolver.NXDOMAIN) -> float:
    """How long an NXDOMAIN may be kept (RFC 2308 §5: the SOA's TTL, at most its
    MINIMUM field); 0 when the answer carried no SOA."""
    try:
        for response in exc.responses().values():  # type: ignore[no-untyped-call]
            for rrset in getattr(response, "authority", ()):
                if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
                    return float(min(rrset.ttl, rrset[0].minimum))
    except Exception:  # noqa: BLE001, S110 - no TTL known: not kept
        pass
    return 0.0


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
