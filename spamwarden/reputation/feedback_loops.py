"""Feedback loops: ARF reports (RFC 5965) from mailbox providers the operator trusts.

An ARF report's ``Source-IP`` and its copy of the message are written by whoever
sends the report.  Only a report from a configured feedback loop
(``intake.feedback_loops``) is believed about a message that was *not* delivered
here, and only when it proves where it comes from:

* it carries a DKIM signature of the loop's domain (or a subdomain) that verifies
  (RFC 6376 §6.1), or
* it arrived at our MTA from one of the networks listed for the loop: the client
  address Postfix recorded in its own clause of the topmost ``Received`` field
  (past ``intake.reinjection_hops``), read like :func:`~spamwarden.mail.submission`
  reads it.  A HELO address literal is client text, and a field further down was
  written by someone else: neither is ever read.  A hop without a client address
  (local pickup) did not come from the loop.

Each entry of ``intake.feedback_loops`` is the loop's sending domain, optionally
followed by networks: ``"fbl.provider.example"`` or
``"fbl.provider.example 192.0.2.0/24 2001:db8::/32"``.  The envelope sender of
the report must be at that domain (or a subdomain).

What such a report proves (:func:`feedback_indicators`): the ARF ``Source-IP``
(the provider vouches for its own MTA's view), the ``d=`` of the copy's DKIM
signatures that re-verify here, the From domain only when one of those is aligned
with it (RFC 7489 §3.1.1, relaxed), and the copy's link domains.  Never the copy's
``Received`` fields or its MAIL FROM.  Any other ARF report is treated like any
other report: it counts only when it matches a delivery here.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..mail import (
    Network,
    domain_of_address,
    normalize_domain,
    registrable_domain,
    submission,
)
from .complaints import Indicators
from .reports import ArfFields

__all__ = [
    "FeedbackLoop",
    "arrived_from",
    "feedback_indicators",
    "feedback_reporter",
    "loop_for_sender",
    "parse_feedback_loop",
    "parse_feedback_loops",
    "signed_by",
]


@dataclass(frozen=True, slots=True)
class FeedbackLoop:
    """One configured feedback loop: its sending domain and, optionally, networks."""

    domain: str
    networks: tuple[Network, ...] = ()


def parse_feedback_loop(text: str) -> FeedbackLoop:
    """One ``intake.feedback_loops`` entry.

    :raises ValueError: no domain, or a network that does not parse.
    """
    words = text.split()
    domain = normalize_domain(words[0]) if words else None
    if domain is None or "." not in domain:
        raise ValueError(f"not a domain: {text!r}")
    nets = tuple(ipaddress.ip_network(w, strict=False) for w in words[1:])
    return FeedbackLoop(domain, nets)


def parse_feedback_loops(items: Iterable[str]) -> tuple[FeedbackLoop, ...]:
    """Every entry of ``intake.feedback_loops``.

    :raises ValueError: an entry does not parse.
    """
    return tuple(parse_feedback_loop(x) for x in items)


def _under(domain: str, parent: str) -> bool:
    return domain == parent or domain.endswith("." + parent)


def loop_for_sender(loops: Sequence[FeedbackLoop], sender: str) -> FeedbackLoop | None:
    """The loop whose domain the envelope sender is at, or ``None``."""
    dom = domain_of_address(sender.strip().strip("<>")) if "@" in sender else None
    norm = normalize_domain(dom) if dom else None
    if norm is None:
        return None
    return next((lp for lp in loops if _under(norm, lp.domain)), None)


def arrived_from(loop: FeedbackLoop, headers: Sequence[tuple[str, str]], *,
                 own_hops: int = 0) -> bool:
    """The report reached our MTA from one of the loop's networks.

    :param headers: the report's header fields, in order
        (:func:`~spamwarden.mail.header_fields`).
    :param own_hops: topmost ``Received`` fields our own content filter adds
        (``intake.reinjection_hops``).
    """
    if not loop.networks:
        return False
    ip = submission(headers, own_hops=own_hops).client_ip
    if ip is None:
        return False
    addr = ipaddress.ip_address(ip)
    return any(addr.version == n.version and addr in n for n in loop.networks)


def signed_by(loop: FeedbackLoop, verified: Sequence[str]) -> bool:
    """One of the report's verified DKIM ``d=`` is the loop's domain or under it."""
    return any(_under(d, loop.domain) for d in (normalize_domain(x) for x in verified) if d)


def feedback_indicators(ind: Indicators, arf: ArfFields | None) -> Indicators:
    """What a report from a verified feedback loop proves (see the module docstring).

    :param ind: the indicators extracted from the report (DKIM re-verified here).
    :param arf: the report's ARF fields.
    """
    verified = tuple(ind.dkim_verified)
    aligned = bool(ind.from_domain) and any(
        registrable_domain(d) == ind.from_domain for d in verified)
    return Indicators(
        source_ip=arf.source_ip if arf is not None else None,
        from_domain=ind.from_domain if aligned else None,
        from_address=ind.from_address if aligned else None,
        dkim_domains=verified,
        dkim_verified=verified,
        url_domains=ind.url_domains,
        ad_label=ind.ad_label,
        subject=ind.subject,
    )


def feedback_reporter(loop: FeedbackLoop, arf: ArfFields | None, report_id: str) -> str:
    """The reporter a feedback-loop complaint counts as: one per complaining user of
    the provider (``Original-Rcpt-To``, often redacted; else the report itself).

    :param report_id: the report's Message-ID (or another stable identity of it).
    """
    rcpt = arf.original_rcpt_to[0].strip().lower() if arf and arf.original_rcpt_to else ""
    who = rcpt or hashlib.sha256(report_id.encode("utf-8", "replace")).hexdigest()[:16]
    return f"fbl:{loop.domain}:{who}"[:320]
