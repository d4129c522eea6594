"""SpamAssassin's WLBLEval evals that read no address list, from ``Plugin/WLBLEval.pm``.

``check_uri_host_listed`` (the rule files' ``enlist_uri_host`` lists) and
``check_mailfrom_matches_rcvd`` (__RP_MATCHES_RCVD).  The address lists (a site's
welcome and block lists, ``enlist_addrlist``'s ``check_*_in_list``) are ``_wlbl``'s.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ._evalbase import (
    HEADER,
    EvalData,
    EvalEntry,
    base_domain,
    header_addr,
    nargs,
)
from ._uris import uri_host

if TYPE_CHECKING:
    from ._prepare import PreparedMessage

__all__ = ["WLBLEVAL_EVALS"]


@functools.lru_cache(maxsize=64)
def _host_sets(listed: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
    """(listed hosts, hosts excluded with ``!``) of one ``enlist_uri_host`` list."""
    return (frozenset(x for x in listed if not x.startswith("!")),
            frozenset(x[1:] for x in listed if x.startswith("!")))


@functools.lru_cache(maxsize=2048)
def _host_candidates(host: str) -> frozenset[str]:
    """A host name and each domain above it, lower case (``a.b.c``: itself, ``b.c``, ``c``):
    the text after each dot, sliced rather than joined again label by label.  Kept for
    hosts seen before (bounded): the same hosts come back message after message."""
    name = host.lower().rstrip(".")
    found = [name]
    dot = name.find(".")
    while dot >= 0:
        found.append(name[dot + 1:])
        dot = name.find(".", dot + 1)
    return frozenset(found)


def _uri_host_candidates(msg: PreparedMessage) -> list[frozenset[str]]:
    """:func:`_host_candidates` of each distinct host of the message's URIs (found
    once per message; not to be changed): the hosts WLBLEval's ``check_uri_host_listed``
    reads, valid host names and IP addresses of the URIs that are not ``mailto:``."""
    found = msg.uri_host_candidates
    if found is None:
        hosts: dict[str, None] = {}
        for u in msg.uris:
            host = uri_host(u, tlds=msg.tlds) if u[:7].lower() != b"mailto:" else None
            if host is not None:
                hosts[host] = None
        found = msg.uri_host_candidates = list(dict.fromkeys(
            _host_candidates(h) for h in hosts))
    return found


def _uri_host_listed(msg: PreparedMessage, d: EvalData, a: Sequence[str]) -> bool:
    hosts, negated = _host_sets(tuple(d.uri_hosts.get(a[0], [])))
    return any(not (c & negated) and bool(c & hosts) for c in _uri_host_candidates(msg))


def _mailfrom_matches_rcvd(msg: PreparedMessage, d: EvalData, _a: Sequence[str]) -> bool:
    """WLBLEval's check_mailfrom_matches_rcvd (__RP_MATCHES_RCVD): the envelope
    sender's registered domain is that of the first untrusted relay's reverse DNS name
    (with no untrusted relay, of any trusted one's)."""
    m = re.search(r"@([^@]+\.[^@]+)\Z", header_addr(msg, "EnvelopeFrom"))
    if m is None:
        return False
    domain = base_domain(m.group(1).lower(), d)
    return any(rdns and base_domain(rdns, d) == domain for rdns in msg.relay_info().match_rdns)


WLBLEVAL_EVALS: Mapping[str, EvalEntry] = {
    "check_uri_host_listed": (
        frozenset({"header", "body", "uri"}), nargs(1), _uri_host_listed),
    "check_mailfrom_matches_rcvd": (HEADER, nargs(0), _mailfrom_matches_rcvd),
}
