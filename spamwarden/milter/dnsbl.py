"""The third-party DNSBL client (``rbl.third_party_zones``): is the client IP listed?

RFC 5782: the IP's octets (nibbles for IPv6) reversed under each zone, an ``A``
query; an answer in 127.0.0.0/8 means listed (§2.1), anything else is a
resolver's doing (wildcards, blocked queries) and is logged, not scored.
Answers in 127.255.255.0/24 are the list's refusal, not a listing: Spamhaus
and others answer 127.255.255.254 to queries through public resolvers and
127.255.255.255 to excessive queries (also 127.255.255.252: typing error in
the query).  They are logged at most once a minute per zone, never scored.
Internal addresses are never asked about.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..logs import event
from ..metrics import timed
from ..resolver import Resolver

__all__ = ["MAX_ZONES", "REFUSAL_NETWORK", "DnsblAnswer", "ThirdPartyDnsbl", "is_refusal"]

log = logging.getLogger("spamwarden.milter")

#: zones asked per message at most
MAX_ZONES = 10

#: answers that are the list refusing to answer, not a listing
REFUSAL_NETWORK = ipaddress.ip_network("127.255.255.0/24")

#: seconds between two warnings about one zone's refusals
REFUSAL_LOG_INTERVAL = 60.0

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


@dataclass(frozen=True, slots=True)
class DnsblAnswer:
    """What the zones said about one IP.

    :ivar listed: ``"zone code,code"`` per zone that lists it.
    :ivar failed: zones whose lookup failed (neither listed nor clean).
    """

    listed: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()


class ThirdPartyDnsbl:
    """Asks each zone about a client IP.

    :param resolver: every query goes through it.
    :param zones: the DNSBL zones (the first :data:`MAX_ZONES`).
    :param timeout: each query's budget (seconds).
    """

    def __init__(self, resolver: Resolver, zones: Sequence[str], *, timeout: float) -> None:
        self.resolver = resolver
        self.zones = tuple(zones[:MAX_ZONES])
        self.timeout = timeout
        self._refusal_logged: dict[str, float] = {}

    def lookup(self, client_ip: str) -> DnsblAnswer:
        """The zones' answers for ``client_ip``; empty for an internal or bad address.
        Never raises for DNS trouble (a failed query lists the zone in ``failed``)."""
        try:
            ip = ipaddress.ip_address(client_ip)
        except ValueError:
            return DnsblAnswer()
        if ip.is_loopback or ip.is_link_local or ip.is_unspecified or any(
            ip in net for net in _INTERNAL_NETWORKS if net.version == ip.version
        ):
            return DnsblAnswer()  # an internal hop: third-party lists know nothing of it
        if ip.version == 4:
            rev = ".".join(reversed(str(ip).split(".")))
        else:
            rev = ".".join(reversed(ip.exploded.replace(":", "")))
        listed: list[str] = []
        failed: list[str] = []
        for zone in self.zones:
            with timed("dnsbl"):
                answer = self.resolver.query(f"{rev}.{zone.strip('.')}", "A",
                                             timeout=self.timeout)
            if answer.failed:
                failed.append(zone)
            elif answer.found:
                codes = [str(r) for r in answer.records]
                refused = [c for c in codes if is_refusal(c)]
                codes = [c for c in codes if not is_refusal(c)]
                if refused:
                    self._log_refusal(zone, refused)
                # RFC 5782 §2.1: answers are 127.0.0.0/8; anything else is a
                # resolver's doing (wildcards, blocked queries), not a listing.
                if any(c.startswith("127.") for c in codes):
                    listed.append(f"{zone} {','.join(codes[:3])}")
                elif codes:
                    event(log, "dnsbl_unexpected_answer", logging.WARNING,
                          zone=zone, answer=",".join(codes[:3]))
        return DnsblAnswer(tuple(listed), tuple(failed))

    def _log_refusal(self, zone: str, codes: Sequence[str]) -> None:
        """Warn that ``zone`` refuses our queries, at most once a minute (a refusing
        list refuses every message's query)."""
        now = time.monotonic()
        last = self._refusal_logged.get(zone)
        if last is not None and now - last < REFUSAL_LOG_INTERVAL:
            return
        self._refusal_logged[zone] = now
        event(log, "dnsbl_refused", logging.WARNING, zone=zone, answer=",".join(codes[:3]),
              hint="127.255.255.x: the list refuses this resolver (public/open resolver, "
                   "or too many queries); not scored")
