"""Third-party DNSBL clients: ``[[rbl.external]]`` lists and the deprecated
``rbl.third_party_zones``.

RFC 5782: an IP is asked as its octets (nibbles for IPv6) reversed under the zone
(§2.1), a domain as itself under the zone (§2.2); an ``A`` query.  A lookup has
three outcomes: listed, not listed (NXDOMAIN, no data), failed (timeout,
SERVFAIL, REFUSED) - a failed lookup is never taken for either answer.

What an answer is worth:

* ``[[rbl.external]]``: only the codes the entry lists score; when several
  answers match, the highest points win (lists such as Spamhaus ZEN answer one
  address per sub-list that lists the IP, e.g. 127.0.0.2 and 127.0.0.4).
* ``rbl.third_party_zones`` (deprecated): any 127.0.0.0/8 answer is a listing.

Either way, answers in 127.255.255.0/24 are the list refusing the query, not a
listing: Spamhaus and others answer 127.255.255.254 to queries through public or
open resolvers, 127.255.255.255 to excessive queries and 127.255.255.252 to a
malformed query.  Such a lookup is a failed one.  Answers that score nothing
(refusals, codes not configured, addresses outside 127.0.0.0/8, which are a
resolver's doing: wildcards, blocked-query pages) are counted in
``spamwarden_dnsbl_unscored_answers_total{zone,code}`` and logged at most once a
minute per zone, never once per message.  Internal client addresses are never
asked about.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ..config import ExternalList
from ..logs import event
from ..metrics import DNSBL_UNSCORED, timed
from ..resolver import DnsAnswer, Resolver

__all__ = [
    "MAX_ZONES",
    "REFUSAL_NETWORK",
    "DnsblAnswer",
    "ExternalDnsbl",
    "ExternalOutcome",
    "ThirdPartyDnsbl",
    "UnscoredAnswers",
    "is_refusal",
    "query_name",
    "score_answer",
]

log = logging.getLogger("spamwarden.milter")

#: zones asked per message at most (``rbl.third_party_zones``)
MAX_ZONES = 10

#: answers that are the list refusing to answer, not a listing
REFUSAL_NETWORK = ipaddress.ip_network("127.255.255.0/24")

#: seconds between two log lines about one zone's unscored answers
REFUSAL_LOG_INTERVAL = 60.0

#: distinct ``code`` label values per zone (besides ``other``); further codes count as ``other``
MAX_CODE_LABELS = 32

_LOOPBACK_NET = ipaddress.ip_network("127.0.0.0/8")

_INTERNAL_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7",
))


def is_refusal(code: str) -> bool:
    """``code`` (an ``A`` answer) is in 127.255.255.0/24: the list refused the
    query (public resolver, rate limit), it says nothing of the name asked about."""
    try:
        return ipaddress.ip_address(code) in REFUSAL_NETWORK
    except ValueError:
        return False


def _in_loopback(code: str) -> bool:
    try:
        return ipaddress.ip_address(code) in _LOOPBACK_NET
    except ValueError:
        return False


def query_name(kind: str, key: str, zone: str) -> str | None:
    """The name to ask ``zone`` about ``key`` (RFC 5782 §2.1 for ``ip``, §2.2 for
    ``sender`` / ``url`` domains); ``None`` when ``key`` is never asked about (an
    internal, loopback or malformed address; an empty domain).

    :param kind: ``ip``, ``sender`` or ``url``.
    :param key: the client IP, or a domain.
    :param zone: the zone (with a DQS key already in front when there is one).
    """
    zone = zone.strip(".")
    if kind != "ip":
        domain = key.strip(".").lower()
        return f"{domain}.{zone}" if domain and "." in domain else None
    try:
        ip = ipaddress.ip_address(key)
    except ValueError:
        return None
    if ip.is_loopback or ip.is_link_local or ip.is_unspecified or any(
        ip in net for net in _INTERNAL_NETWORKS if net.version == ip.version
    ):
        return None  # an internal hop: third-party lists know nothing of it
    if ip.version == 4:
        rev = ".".join(reversed(str(ip).split(".")))
    else:
        rev = ".".join(reversed(ip.exploded.replace(":", "")))
    return f"{rev}.{zone}"


class UnscoredAnswers:
    """Counts answers that scored nothing, per zone and code, and logs them at most
    once per :data:`REFUSAL_LOG_INTERVAL` per zone.  Thread-safe.

    :param clock: monotonic seconds (injected for tests).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._logged: dict[str, float] = {}
        self._labels: dict[str, set[str]] = {}

    def record(self, zone: str, codes: Sequence[str]) -> None:
        """Count ``codes`` (answers ``zone`` gave that scored nothing) and warn about
        the zone unless it was warned about less than a minute ago."""
        if not codes:
            return
        with self._lock:
            seen = self._labels.setdefault(zone, set())
            labels = []
            for code in codes:
                label = code if _in_loopback(code) else "other"
                if label not in seen and len(seen) >= MAX_CODE_LABELS:
                    label = "other"
                seen.add(label)
                labels.append(label)
            now = self._clock()
            last = self._logged.get(zone)
            warn = last is None or now - last >= REFUSAL_LOG_INTERVAL
            if warn:
                self._logged[zone] = now
        try:
            for label in labels:
                DNSBL_UNSCORED.labels(zone, label).inc()
        except Exception:  # noqa: BLE001, S110 - metrics never fail a message
            pass
        if not warn:
            return
        if any(is_refusal(c) for c in codes):
            event(log, "dnsbl_refused", logging.WARNING, zone=zone, answer=",".join(codes[:3]),
                  hint="127.255.255.x: the list refuses this resolver (public or open "
                       "resolver, or too many queries); lookups count as failed")
        else:
            event(log, "dnsbl_unscored_answer", logging.WARNING, zone=zone,
                  answer=",".join(codes[:3]),
                  hint="an answer the configuration does not score (see "
                       "spamwarden_dnsbl_unscored_answers_total)")


#: shared by every client of the process: the once-a-minute log is per zone
UNSCORED = UnscoredAnswers()


@dataclass(frozen=True, slots=True)
class ExternalOutcome:
    """What one ``[[rbl.external]]`` list said about one IP or domain.

    :ivar status: ``listed`` (a configured code answered), ``not_listed`` (no
        answer, or only answers that score nothing), ``failed`` (no answer to be had:
        timeout, SERVFAIL, REFUSED, or a 127.255.255.x refusal).
    :ivar points: the highest points among the matching codes (0 unless listed).
    :ivar codes: the answers that matched a configured code.
    :ivar reason: why a lookup failed.
    """

    status: Literal["listed", "not_listed", "failed"]
    points: float = 0.0
    codes: tuple[str, ...] = ()
    reason: str = ""


def score_answer(answer: DnsAnswer, codes: Mapping[str, float]
                 ) -> tuple[ExternalOutcome, tuple[str, ...]]:
    """The outcome of one answer under an entry's ``codes``, and the answers that
    scored nothing (for :class:`UnscoredAnswers`).  Pure.

    :param answer: the ``A`` lookup's answer.
    :param codes: answer address or network → points (``ExternalList.codes``).
    :returns: ``(outcome, unscored answers)``.
    """
    if answer.failed:
        return ExternalOutcome("failed", reason=answer.reason or "lookup failed"), ()
    if not answer.found:
        return ExternalOutcome("not_listed"), ()
    got = [str(r) for r in answer.records][:8]
    refused = tuple(c for c in got if is_refusal(c))
    if refused:
        # The list did not answer about the name: a failure, whatever else came back.
        return ExternalOutcome("failed", reason=f"refused ({','.join(refused)})"), tuple(got)
    tables = [(ipaddress.ip_network(k), v) for k, v in codes.items()]
    matched: list[tuple[str, float]] = []
    unscored: list[str] = []
    for code in got:
        try:
            addr = ipaddress.ip_address(code)
        except ValueError:
            unscored.append(code)
            continue
        points = [v for net, v in tables if addr in net]
        if points:
            matched.append((code, max(points)))
        else:
            unscored.append(code)
    if not matched:
        return ExternalOutcome("not_listed"), tuple(unscored)
    best = max(v for _, v in matched)
    return ExternalOutcome("listed", best, tuple(c for c, _ in matched)), tuple(unscored)


class ExternalDnsbl:
    """Asks one ``[[rbl.external]]`` list about IPs or domains.

    :param resolver: every query goes through it.
    :param entry: the list.
    :param timeout: each query's budget (seconds, ``dns.timeout``).
    :param unscored: where unscored answers are counted (default: the process's).
    """

    def __init__(self, resolver: Resolver, entry: ExternalList, *, timeout: float,
                 unscored: UnscoredAnswers | None = None) -> None:
        self.resolver = resolver
        self.entry = entry
        self.timeout = timeout
        self.unscored = UNSCORED if unscored is None else unscored
        self._zone = entry.query_zone()

    def name_for(self, key: str) -> str | None:
        """The query name for ``key``; ``None`` when it is never asked about."""
        return query_name(self.entry.kind, key, self._zone)

    def lookup(self, key: str) -> ExternalOutcome:
        """The list's answer about ``key``.  Never raises for DNS trouble.

        RFC 5782 §2.1 (IP) / §2.2 (domain).
        """
        name = self.name_for(key)
        if name is None:
            return ExternalOutcome("not_listed")
        with timed("dnsbl"):
            answer = self.resolver.query(name, "A", timeout=self.timeout)
        outcome, unscored = score_answer(answer, self.entry.codes)
        self.unscored.record(self.entry.zone, unscored)
        key_ = self.entry.dqs_key
        if key_ and key_ in outcome.reason:
            # The reason lands in X-Spam-Reasons of delivered mail: never the DQS key.
            outcome = ExternalOutcome(outcome.status, outcome.points, outcome.codes,
                                      outcome.reason.replace(key_, "<dqs_key>"))
        return outcome


@dataclass(frozen=True, slots=True)
class DnsblAnswer:
    """What the ``rbl.third_party_zones`` said about one IP.

    :ivar listed: ``"zone code,code"`` per zone that lists it.
    :ivar failed: zones whose lookup failed (neither listed nor clean).
    """

    listed: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()


class ThirdPartyDnsbl:
    """Asks each of ``rbl.third_party_zones`` about a client IP (deprecated: any
    127.0.0.0/8 answer outside 127.255.255.0/24 is a listing).

    :param resolver: every query goes through it.
    :param zones: the DNSBL zones (the first :data:`MAX_ZONES`).
    :param timeout: each query's budget (seconds).
    :param unscored: where unscored answers are counted (default: the process's).
    """

    def __init__(self, resolver: Resolver, zones: Sequence[str], *, timeout: float,
                 unscored: UnscoredAnswers | None = None) -> None:
        self.resolver = resolver
        self.zones = tuple(zones[:MAX_ZONES])
        self.timeout = timeout
        self.unscored = UNSCORED if unscored is None else unscored

    def lookup(self, client_ip: str) -> DnsblAnswer:
        """The zones' answers for ``client_ip``; empty for an internal or bad address.
        Never raises for DNS trouble (a failed query lists the zone in ``failed``)."""
        if query_name("ip", client_ip, "x") is None:
            return DnsblAnswer()
        listed: list[str] = []
        failed: list[str] = []
        for zone in self.zones:
            name = query_name("ip", client_ip, zone)
            assert name is not None
            with timed("dnsbl"):
                answer = self.resolver.query(name, "A", timeout=self.timeout)
            if answer.failed:
                failed.append(zone)
            elif answer.found:
                codes = [str(r) for r in answer.records][:8]
                if any(is_refusal(c) for c in codes):
                    self.unscored.record(zone, codes)
                    failed.append(zone)
                    continue
                # RFC 5782 §2.1: answers are 127.0.0.0/8; anything else is a
                # resolver's doing (wildcards, blocked queries), not a listing.
                if any(_in_loopback(c) for c in codes):
                    listed.append(f"{zone} {','.join(codes[:3])}")
                else:
                    self.unscored.record(zone, codes)
        return DnsblAnswer(tuple(listed), tuple(failed))
