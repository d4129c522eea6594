"""Reading ``Received`` trace fields (RFC 5321 §4.4): client addresses, the first hop
from outside, and what our own Postfix recorded about a submission.

Pure functions over header values: no I/O, no exceptions for bad input.  Everything in
a ``Received`` field below the one our own MTA prepends was written by someone else,
and even in ours the HELO, a client certificate's subject and the ``for <...>``
address are client-chosen text; :func:`submission` reads only Postfix's own clauses.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "Network",
    "Submission",
    "first_untrusted_hop",
    "is_routable",
    "parse_networks",
    "received_client_ip",
    "received_helo_and_ip",
    "submission",
    "submission_authenticated",
    "valid_ip",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NON_ROUTABLE = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8",
    )
)
_BRACKETED = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]")  # "[192.0.2.1:25]" too
_PARENTHESISED = re.compile(r"\((?:[^()]*?\s)?\[?(\d{1,3}(?:\.\d{1,3}){3})\]?\)")
_BARE_FROM = re.compile(r"^\s*from\s+\[?([0-9A-Fa-f:.]+)\]?(?:\s|$)", re.I)
_BY = re.compile(r"\sby\s", re.I)


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    """Networks from config text (``intake.trusted_relays``); bad items are skipped."""
    out: list[Network] = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            continue
    return tuple(out)


def unmapped(ip: ipaddress.IPv4Address | ipaddress.IPv6Address
             ) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``ip``, or the IPv4 address an IPv4-mapped IPv6 address carries
    (``::ffff:192.0.2.5`` is ``192.0.2.5``): one client, one name, whichever socket
    family saw it."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def valid_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address in ``text`` (a ``192.0.2.1:25`` port dropped, an IPv4-mapped IPv6
    address given as IPv4), or ``None`` when it is not one."""
    t = text.strip()
    if t.count(":") == 1 and "." in t:  # "192.0.2.1:25"
        t = t.split(":", 1)[0]
    try:
        return unmapped(ipaddress.ip_address(t))
    except ValueError:
        return None


def received_client_ip(value: str) -> str | None:
    """The client address in the ``from`` clause of one Received field (RFC 5321 §4.4).

    Understands the bracketed forms of Postfix, Exim, sendmail and Microsoft
    (``[192.0.2.1]``, ``[IPv6:2001:db8::1]``, ``[192.0.2.1:25]``) and qmail /
    Yahoo's ``(192.0.2.1)``.  ``None`` for a hop without a client address
    (local submission, ``by ... from userid``).
    """
    text = value.strip()
    if not text[:5].lower().startswith("from"):
        return None
    by = _BY.search(text)
    clause = text[: by.start()] if by else text
    for pattern in (_BRACKETED, _PARENTHESISED, _BARE_FROM):
        for m in pattern.finditer(clause):
            ip = valid_ip(m.group(1))
            if ip is not None:
                return str(ip)
    return None


_RECEIVED_FROM = re.compile(
    r"\bfrom\s+(?P<helo>[^\s(]+)\s*\((?:[^()\[\]]*?)\[(?:ipv6:)?(?P<ip>[0-9a-f:.]+)\]", re.IGNORECASE
)


def received_helo_and_ip(value: str) -> tuple[str, str] | None:
    """The HELO name and the bracketed client address of a ``from HELO (... [IP])``
    clause in one Received field, as written (not validated), or ``None``.

    For an offline re-check of a message file, where the envelope is rebuilt from what
    the message says; never for a trust decision (both are client text below our hop).
    """
    m = _RECEIVED_FROM.search(value)
    return (m.group("helo"), m.group("ip")) if m else None


def is_routable(ip: str, trusted: Sequence[Network] = ()) -> bool:
    """``ip`` is neither in ``trusted`` nor a non-routable address (RFC 1918, loopback,
    link-local, CGNAT, ULA, multicast, reserved; documentation ranges count as routable).

    :raises ValueError: ``ip`` is not an IP address.
    """
    addr = ipaddress.ip_address(ip)
    return not any(addr in n for n in trusted) and not any(
        addr.version == n.version and addr in n for n in _NON_ROUTABLE
    )


def first_untrusted_hop(
    received: Sequence[str], trusted: Sequence[Network], *, max_hops: int = 50
) -> str | None:
    """The client address of the first Received hop (topmost first) outside
    ``trusted`` and not a non-routable address, or ``None``."""
    for value in received[:max_hops]:
        ip = received_client_ip(value)
        if ip is not None and is_routable(ip, trusted):
            return ip
    return None


@dataclass(frozen=True, slots=True)
class Submission:
    """How our own MTA received a message: what its topmost ``Received`` field says.

    :ivar login: the SASL login Postfix recorded as ``(Authenticated sender: LOGIN)``
        (``smtpd_sasl_authenticated_header = yes``), or ``None``.
    :ivar authenticated: the hop was an authenticated submission: a login was
        recorded, or the protocol is an authenticated one (RFC 3848 ``ESMTPA``,
        ``ESMTPSA``, ``LMTPA``...).
    :ivar client_ip: the client address of that hop, or ``None`` (local pickup).
    """

    login: str | None = None
    authenticated: bool = False
    client_ip: str | None = None


# Postfix's own words in its Received field: "from HELO (RDNS [IP])", then optional
# clauses, "(Authenticated sender: LOGIN)" last, then "by HOST (Postfix) with PROTO".  The
# HELO, a client certificate's CN/issuer and (with one recipient) the "for <...>" address
# are client text, so the client address is taken from the parenthesis after the HELO,
# and the login only from the clause right before the last "by HOST ... with" clause.
_POSTFIX_CLIENT = re.compile(
    r"^from\s+\S+\s+\((?:[^()\s\[\]]+\s+)?\[(?:IPv6:)?([0-9A-Fa-f:.]+)\](?::\d+)?\)", re.I)
_AUTH_LOGIN = re.compile(r"\(Authenticated sender:\s*([^()\s]{1,320})\s*\)\s*$", re.I)
_BY_WITH = re.compile(r"\sby\s+\S+(?:\s+\([^()]*\))?\s+with\s+(\S+)", re.I)
_AUTH_PROTOCOL = re.compile(r"^(?:UTF8)?(?:E?SMTPS?A|LMTPS?A)$", re.I)


def submission(headers: Sequence[tuple[str, str]], *, own_hops: int = 0) -> Submission:
    """What our own MTA recorded about the client that submitted a message.

    Only the topmost ``Received`` field is read (past ``own_hops`` fields that our
    own after-queue content filter adds when it re-injects mail, e.g. 2 for amavis):
    our MTA prepends it, so it is the one field a sender cannot write.  Every field
    below it came with the message and is never believed, whatever it says.  In
    that field only Postfix's own clauses count: the client address in the parenthesis
    after the HELO (the HELO itself may be a client-chosen address literal), the login
    in the clause right before the last ``by HOST ... with PROTO`` clause (a client
    certificate's subject, shown earlier, is client text too).

    :param headers: the message's header fields, in order
        (:func:`~spamwarden.mail.header_fields`).
    :param own_hops: topmost ``Received`` fields to pass over (``intake.reinjection_hops``).
    :returns: the submission; an empty one when there is no such field.
    """
    received = [value for name, value in headers if name.lower() == "received"]
    if len(received) <= own_hops:
        return Submission()
    value = " ".join(received[own_hops].split())
    by_clauses = list(_BY_WITH.finditer(value))
    login, authenticated = None, False
    if by_clauses:
        last = by_clauses[-1]
        login_match = _AUTH_LOGIN.search(value[: last.start()])
        login = login_match.group(1) if login_match else None
        authenticated = login is not None or bool(_AUTH_PROTOCOL.match(last.group(1)))
    client = _POSTFIX_CLIENT.match(value)
    ip = valid_ip(client.group(1)) if client else None
    return Submission(login=login, authenticated=authenticated,
                      client_ip=str(ip) if ip is not None else None)


def submission_authenticated(
    headers: Sequence[tuple[str, str]], trusted: Sequence[Network] = (), *, own_hops: int = 0
) -> bool:
    """Did our MTA receive this message from an authenticated client?

    :func:`submission` of the topmost ``Received`` field (past ``own_hops``):
    RFC 3848 ``ESMTPA``/``ESMTPSA``/``LMTPA``... or Postfix's ``(Authenticated
    sender: ...)``.  Fields further down were written by others and are never
    believed, not even below a hop from a trusted relay (``trusted`` is accepted
    for compatibility and not used: a relay on 127.0.0.1 is also every local user).
    """
    del trusted
    return submission(headers, own_hops=own_hops).authenticated
