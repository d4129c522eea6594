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

The listing engine's own keys (expiry index, offences, complaint windows,
volume counters) are documented in :mod:`spamwarden.reputation.store`.

Kinds: ``ip`` (one address), ``cidr`` (a network), ``domain`` (a registrable
domain, or a customer's name under a PSL private suffix such as
``shop.blogspot.com``) and ``address`` (one mailbox, ``local@domain`` in lower
case, domain in IDNA form).  ``address`` listings exist because a shared
platform (freemail, PSL private suffixes, ``reputation.shared_domains``) is
never listed whole: the offending mailbox is listed instead.  The DNS zones
publish ``ip``, ``cidr`` and ``domain``; ``address`` listings are for the
milter and the API only.

The change stream entry fields are ``op`` (``listed``, ``extended``,
``delisted``, ``expired``), ``key``, ``kind``, ``reason``, ``code``,
``listed_at``, ``expires_at`` and ``serial``; a follower applies them in stream
order.  Expiry is exact even when nobody writes an ``expired`` entry yet:
readers ignore a listing whose ``expires_at`` has passed.
"""

from __future__ import annotations

import ipaddress
import json
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..i18n import Message
from ..mail import normalize_domain

__all__ = [
    "Listing",
    "ListingChange",
    "KeyKind",
    "REASONS",
    "LISTINGS_KEY",
    "CHANGES_KEY",
    "SERIAL_KEY",
    "normalize_key",
    "normalize_address",
    "reason_code",
    "operator_reason",
    "utc_iso",
    "listing_json",
]

#: What a listing key is: an IP address, a CIDR range, a domain or an e-mail address.
KeyKind = Literal["ip", "cidr", "domain", "address"]

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
    "domain-imported": ("127.0.1.6", "domain imported from an operator list"),
    "address-complaints": ("127.0.2.2", "mailbox on a shared platform reported as spam"),
    "address-manual": ("127.0.2.3", "mailbox listed by the operator"),
}


def reason_code(reason: str, kind: KeyKind) -> str:
    """The A record for a reason; unknown reasons get the generic code of the kind."""
    if reason in REASONS:
        return REASONS[reason][0]
    if kind == "domain":
        return "127.0.1.5"
    if kind == "address":
        return "127.0.2.3"
    return "127.0.0.3"


def operator_reason(kind: KeyKind, *, imported: bool = False) -> str:
    """The reason code of a listing made by the operator (CLI, API, import)."""
    if kind == "address":
        return "address-manual"
    if kind == "domain":
        return "domain-imported" if imported else "domain-manual"
    return "imported" if imported else "manual"


def normalize_address(text: str) -> str | None:
    """``local@domain`` in lower case with an IDNA domain, or ``None``.

    Angle brackets are dropped; the local part must be 1..64 printable ASCII
    characters without spaces, ``@`` or ``<>`` (RFC 5321 §4.5.3.1.1).
    """
    t = text.strip().strip("<>").strip()
    if t.count("@") != 1:
        return None
    local, domain = t.split("@")
    d = normalize_domain(domain)
    if d is None or not 0 < len(local) <= 64:
        return None
    if not local.isascii() or any(c.isspace() or c in "<>@,;\\" for c in local):
        return None
    return f"{local.lower()}@{d}"


def normalize_key(text: str) -> tuple[str, KeyKind]:
    """Canonical listing key and kind for an IP, a CIDR, a domain or an address.

    IPv6 is compressed, networks are made strict (host bits cleared), domains
    are lower-case IDNA without a trailing dot.  A /32 (or /128) is an ``ip``.
    ``local@domain`` is an ``address`` (see :func:`normalize_address`).

    :raises ValueError: the text is none of these.
    """
    t = text.strip()
    if "@" in t:
        a = normalize_address(t)
        if a is None:
            raise ValueError(Message("listings.not_address", {"value": repr(text)}))
        return a, "address"
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
        raise ValueError(Message("listings.not_key", {"value": repr(text)}))
    return d, "domain"


@dataclass(frozen=True, slots=True)
class Listing:
    """One listed source.  Times are Unix seconds (floats)."""

    key: str
    kind: KeyKind
    reason: str
    listed_at: float
    expires_at: float
    offences: int = 1
    note: str = ""

    @property
    def code(self) -> str:
        """The A record answered for this listing (see :data:`REASONS`)."""
        return reason_code(self.reason, self.kind)

    def active(self, now: float) -> bool:
        """Whether the listing still holds at Unix time ``now``."""
        return self.expires_at > now

    def to_json(self) -> str:
        """The compact JSON stored in the listings hash (:meth:`from_json` reads it)."""
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Listing:
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


def utc_iso(t: float) -> str:
    """ISO 8601 UTC form of a Unix time, to the second (``2026-01-31T12:00:00Z``).

    :param t: Unix seconds.
    :returns: the timestamp text.
    """
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def listing_json(x: Listing, *, with_times: bool = False) -> dict[str, Any]:
    """The JSON object of one listing, as the CLI's ``--json`` and the HTTP API print it.

    :param x: the listing.
    :param with_times: also give ``since`` and ``until`` (the API's form), the listing
        and expiry times as ISO 8601 UTC text, placed after ``expires_at``.
    :returns: a dict of JSON-ready values; the field names are a public interface.
    """
    out: dict[str, Any] = {
        "key": x.key,
        "kind": x.kind,
        "reason": x.reason,
        "reason_text": REASONS.get(x.reason, ("", x.reason))[1],
        "code": x.code,
        "listed_at": x.listed_at,
        "expires_at": x.expires_at,
    }
    if with_times:
        out["since"] = utc_iso(x.listed_at)
        out["until"] = utc_iso(x.expires_at)
    out["offences"] = x.offences
    out["note"] = x.note
    return out


@dataclass(frozen=True, slots=True)
class ListingChange:
    """One entry of the change stream."""

    op: Literal["listed", "extended", "delisted", "expired"]
    key: str
    kind: KeyKind
    reason: str
    code: str
    listed_at: float
    expires_at: float
    serial: int
    stream_id: str = ""
    note: str = ""

    def to_fields(self) -> dict[str, str]:
        """The change stream entry's fields (``stream_id`` is the entry id, not a field)."""
        return {
            "op": self.op,
            "key": self.key,
            "kind": self.kind,
            "reason": self.reason,
            "code": self.code,
            "listed_at": repr(self.listed_at),
            "expires_at": repr(self.expires_at),
            "serial": str(self.serial),
            "note": self.note,
        }

    @classmethod
    def from_fields(
        cls, stream_id: str | bytes, fields: dict[bytes, bytes] | dict[str, str]
    ) -> ListingChange:
        """Parse one change stream entry.

        :raises ValueError: the entry is not a listing change.
        """
        f = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
             for k, v in fields.items()}
        try:
            op = f["op"]
            if op not in ("listed", "extended", "delisted", "expired"):
                raise ValueError(f"unknown change op {op!r}")
            return cls(
                op=op,  # type: ignore[arg-type]
                key=f["key"],
                kind=f["kind"],  # type: ignore[arg-type]
                reason=f["reason"],
                code=f["code"],
                listed_at=float(f["listed_at"]),
                expires_at=float(f["expires_at"]),
                serial=int(f["serial"]),
                stream_id=stream_id.decode() if isinstance(stream_id, bytes) else stream_id,
                note=f.get("note", ""),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a listing change: {exc}") from exc
