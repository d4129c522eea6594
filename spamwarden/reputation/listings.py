"""The listing model shared by the listing engine, the milter and the DNS server.

A *listing* says that a source (an IP, a CIDR block or a registrable domain)
is revoked until ``expires_at``, for a reason with a documented return code.

Redis key scheme (all keys share the hash tag ``{sw}`` so the Lua scripts that
touch several of them work on Redis Cluster):

======================================  =========================================================
key                                     what
======================================  =========================================================
``sw:{sw}:listings``                    hash: listing key -> JSON of :class:`Listing`
``sw:{sw}:listing-changes``             stream: one entry per change (:class:`ListingChange`
                                        fields), trimmed to ~1,000,000 entries
``sw:{sw}:listing-serial``              integer, incremented with every change; the SOA serial
======================================  =========================================================

The change stream entry fields are ``op`` (``listed``, ``extended``,
``delisted``, ``expired``), ``key``, ``kind``, ``reason``, ``code``,
``listed_at``, ``expires_at`` and ``serial``; a follower applies them in stream
order.  Expiry is exact even when nobody writes an ``expired`` entry yet:
readers ignore a listing whose ``expires_at`` has passed.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass
from typing import Literal

from ..mail import normalize_domain

__all__ = [
    "Listing",
    "ListingChange",
    "Kind",
    "REASONS",
    "LISTINGS_KEY",
    "CHANGES_KEY",
    "SERIAL_KEY",
    "normalize_key",
    "reason_code",
]

Kind = Literal["ip", "cidr", "domain"]

LISTINGS_KEY = "sw:{sw}:listings"
CHANGES_KEY = "sw:{sw}:listing-changes"
SERIAL_KEY = "sw:{sw}:listing-serial"

#: reason -> (A record answered in the blocklist, human text).  Codes follow
#: common practice: 127.0.0.x for IP sources, 127.0.1.x for domains.
REASONS: dict[str, tuple[str, str]] = {
    "complaints": ("127.0.0.2", "sent mail that recipients reported as spam"),
    "manual": ("127.0.0.3", "listed by the operator"),
    "imported": ("127.0.0.4", "imported from an operator list"),
    "ad-no-consent": ("127.0.0.5", "sent advertising without the recipients' consent"),
    "domain-complaints": ("127.0.1.2", "sending domain revoked after recipients' complaints"),
    "domain-ad-no-consent": ("127.0.1.3", "advertising without consent"),
    "url-complaints": ("127.0.1.4", "domain advertised in mail recipients reported as spam"),
    "domain-manual": ("127.0.1.5", "domain listed by the operator"),
}


def reason_code(reason: str, kind: Kind) -> str:
    """The A record for a reason; unknown reasons get the generic code of the kind."""
    if reason in REASONS:
        return REASONS[reason][0]
    return "127.0.1.5" if kind == "domain" else "127.0.0.3"


def normalize_key(text: str) -> tuple[str, Kind]:
    """Canonical listing key and kind for an IP, a CIDR or a domain.

    IPv6 is compressed, networks are made strict (host bits cleared), domains
    are lower-case IDNA without a trailing dot.  A /32 (or /128) is an ``ip``.

    :raises ValueError: the text is none of these.
    """
    t = text.strip()
    if "/" in t:
        net = ipaddress.ip_network(t, strict=False)
        if net.num_addresses == 1:
            return str(net.network_address), "ip"
        return str(net), "cidr"
    try:
        return str(ipaddress.ip_address(t)), "ip"
    except ValueError:
        pass
    d = normalize_domain(t)
    if d is None:
        raise ValueError(f"{text!r} is not an IP address, a CIDR block or a domain name")
    return d, "domain"


@dataclass(frozen=True, slots=True)
class Listing:
    """One listed source.  Times are Unix seconds (floats)."""

    key: str
    kind: Kind
    reason: str
    listed_at: float
    expires_at: float
    offences: int = 1
    note: str = ""

    @property
    def code(self) -> str:
        return reason_code(self.reason, self.kind)

    def active(self, now: float) -> bool:
        return self.expires_at > now

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Listing":
        """:raises ValueError: not a listing record."""
        try:
            d = json.loads(text)
            return cls(
                key=str(d["key"]),
                kind=d["kind"],
                reason=str(d["reason"]),
                listed_at=float(d["listed_at"]),
                expires_at=float(d["expires_at"]),
                offences=int(d.get("offences", 1)),
                note=str(d.get("note", "")),
            )
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a listing record: {exc}") from exc


@dataclass(frozen=True, slots=True)
class ListingChange:
    """One entry of the change stream."""

    op: Literal["listed", "extended", "delisted", "expired"]
    key: str
    kind: Kind
    reason: str
    code: str
    listed_at: float
    expires_at: float
    serial: int
    stream_id: str = ""
