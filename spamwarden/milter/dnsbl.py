"""The third-party DNSBL client (``rbl.third_party_zones``): is the client IP listed?

RFC 5782: the IP's octets (nibbles for IPv6) reversed under each zone, an ``A``
query; an answer in 127.0.0.0/8 means listed (§2.1), anything else is a
resolver's doing (wildcards, blocked queries) and is logged, not scored.
Internal addresses are never asked about.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..logs import event
from ..metrics import timed
from ..resolver import Resolver

__all__ = ["MAX_ZONES", "DnsblAnswer", "ThirdPartyDnsbl"]

log = logging.getLogger("spamwarden.milter")

#: zones asked per message at most
MAX_ZONES = 10

_INTERNAL_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7",
))


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
                # RFC 5782 §2.1: answers are 127.0.0.0/8; anything else is a
                # resolver's doing (wildcards, blocked queries), not a listing.
                if any(c.startswith("127.") for c in codes):
                    listed.append(f"{zone} {','.join(codes[:3])}")
                else:
                    event(log, "dnsbl_unexpected_answer", logging.WARNING,
                          zone=zone, answer=",".join(codes[:3]))
        return DnsblAnswer(tuple(listed), tuple(failed))
