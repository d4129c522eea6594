"""DMARC (RFC 7489): policy discovery, identifier alignment, the policy that applies.

Decisions beyond the RFC's letter, on purpose:

* A DNS failure while discovering the policy is ``temperror`` (§6.6.3 lets the
  receiver defer; we never guess "no policy").
* When neither identifier aligns with a pass but an *aligned* SPF or DKIM check
  ended in ``temperror``, the result is ``temperror``, not ``fail``: the
  message might well pass once DNS answers, and a temporary error must never
  turn into a rejection.
* ``applied_policy`` is what a receiver should do: ``none`` on ``pass``; on
  ``fail`` the record's policy, or the next milder one for messages outside
  the ``pct=`` sample (§6.6.4); ``""`` when there is no policy or on errors.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..mail import normalize_domain, parse_tag_list, registrable_domain
from ..resolver import Resolver
from ._dkim import DkimResult
from ._spf import SpfResult

__all__ = [
    "DMARC_RESULTS",
    "DmarcRecord",
    "DmarcResult",
    "check_dmarc",
    "identifiers_aligned",
    "parse_dmarc_record",
]

DMARC_RESULTS = ("pass", "fail", "none", "temperror", "permerror")
_POLICIES = ("none", "quarantine", "reject")
_MILDER = {"reject": "quarantine", "quarantine": "none", "none": "none"}
_DMARC1 = re.compile(r"^\s*v\s*=\s*DMARC1\s*(;|$)")


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    """The tags of one DMARC record that decide a message's fate (RFC 7489 §6.3).

    ``p`` is ``""`` when the record has no valid ``p=`` (and no ``rua=`` that
    would make it ``none``); such a record gives no DMARC processing.
    """

    p: str
    sp: str
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100


@dataclass(frozen=True, slots=True)
class DmarcResult:
    """The DMARC outcome for one message.

    :ivar result: ``pass``, ``fail``, ``none`` (no policy), ``temperror`` or
        ``permerror`` (the message cannot be evaluated).
    :ivar from_domain: the RFC 5322.From domain evaluated.
    :ivar org_domain: its organizational domain (Public Suffix List).
    :ivar policy: the record's ``p=``, or ``sp=`` when the record was found at
        the organizational domain of a subdomain; ``""`` without a record.
    :ivar applied_policy: see the module docstring.
    :ivar spf_aligned: SPF passed for a domain aligned with the From domain.
    :ivar dkim_aligned: a DKIM signature passed for an aligned ``d=``.
    :ivar reason: a few words on how the result came about.
    :ivar record_domain: where the record was found (``""`` when none).
    :ivar pct: the record's ``pct=`` (100 without a record).
    """

    result: str
    from_domain: str
    org_domain: str
    policy: str
    applied_policy: str
    spf_aligned: bool
    dkim_aligned: bool
    reason: str = ""
    record_domain: str = ""
    pct: int = 100


def parse_dmarc_record(text: str) -> DmarcRecord:
    """Parse the tags of a ``v=DMARC1`` record (RFC 7489 §6.3, §6.6.3 step 6).

    Unknown tags are ignored; a bad ``adkim``/``aspf``/``pct`` falls back to its
    default; a bad ``sp`` to ``p``.  A missing or bad ``p`` with a ``rua`` tag
    reads as ``p=none``, without one as no policy (``p == ""``).
    """
    tags = parse_tag_list(text)
    p = tags.get("p", "").lower()
    if p not in _POLICIES:
        p = "none" if tags.get("rua") else ""
    sp = tags.get("sp", "").lower()
    if sp not in _POLICIES:
        sp = p
    adkim = tags.get("adkim", "r").lower()
    aspf = tags.get("aspf", "r").lower()
    try:
        pct = int(tags.get("pct", "100"))
    except ValueError:
        pct = 100
    if not 0 <= pct <= 100:
        pct = 100
    return DmarcRecord(p=p, sp=sp, adkim=adkim if adkim in ("r", "s") else "r",
                       aspf=aspf if aspf in ("r", "s") else "r", pct=pct)


def identifiers_aligned(domain: str, from_domain: str, mode: str) -> bool:
    """RFC 7489 §3.1: strict mode needs the same name, relaxed the same
    organizational domain."""
    a, b = normalize_domain(domain), normalize_domain(from_domain)
    if a is None or b is None:
        return False
    if a == b:
        return True
    if mode == "s":
        return False
    org_a, org_b = registrable_domain(a), registrable_domain(b)
    return org_a is not None and org_a == org_b


def _sampled(message_key: str, pct: int) -> bool:
    """Deterministic ``pct=`` sampling: the same message always lands the same way."""
    if pct >= 100:
        return True
    if pct <= 0:
        return False
    digest = hashlib.sha256(message_key.encode("utf-8", "replace")).digest()
    return int.from_bytes(digest[:4], "big") % 100 < pct


def _discover(
    resolver: Resolver, name: str, *, deadline: float
) -> tuple[str, list[str], str]:
    """(status, DMARC1 records, reason) for ``_dmarc.<name>``; status is
    ``ok``, ``absent`` or ``error``."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return "error", [], "DNS time budget for DMARC exhausted"
    answer = resolver.query(f"_dmarc.{name}", "TXT", timeout=remaining)
    if answer.status == "error":
        return "error", [], f"policy lookup at _dmarc.{name} failed: {answer.reason or 'DNS error'}"
    if answer.status != "ok":
        return "absent", [], ""
    texts = []
    for rec in answer.records:
        text = rec.decode("utf-8", "replace") if isinstance(rec, bytes) else str(rec)
        if _DMARC1.match(text):
            texts.append(text)
    return ("ok" if texts else "absent"), texts, ""


def check_dmarc(
    resolver: Resolver,
    *,
    from_domain: str | None,
    spf: SpfResult | None,
    dkim: Sequence[DkimResult],
    message_key: str = "",
    timeout: float = 5.0,
) -> DmarcResult:
    """Evaluate DMARC for a message (RFC 7489 §6.6).

    :param resolver: the ``_dmarc`` TXT lookups go through it (at most two:
        the From domain, then its organizational domain, §6.6.3).
    :param from_domain: the RFC 5322.From domain; ``None`` gives ``none``.
    :param spf: the SPF result; its ``domain`` is the SPF-authenticated
        identifier (MAIL FROM domain, or HELO for a null sender).
    :param dkim: every DKIM result of the message.
    :param message_key: what ``pct=`` sampling hashes (the Message-ID).
    :param timeout: DNS budget for the policy lookups (seconds).
    :returns: the :class:`DmarcResult`.
    :raises: nothing for DNS trouble or bad records.
    """
    fd = normalize_domain(from_domain) if from_domain else None
    if fd is None:
        return DmarcResult("none", from_domain or "", "", "", "", False, False,
                           reason="no usable From domain")
    org = registrable_domain(fd) or fd
    deadline = time.monotonic() + timeout
    status, records, reason = _discover(resolver, fd, deadline=deadline)
    record_domain = fd
    if status == "absent" and org != fd:
        status, records, reason = _discover(resolver, org, deadline=deadline)
        record_domain = org
    if status == "error":
        return DmarcResult("temperror", fd, org, "", "", False, False, reason=reason)
    if status == "absent":
        return DmarcResult("none", fd, org, "", "", False, False, reason="no DMARC record")
    if len(records) > 1:
        return DmarcResult("none", fd, org, "", "", False, False, record_domain=record_domain,
                           reason=f"{len(records)} DMARC records at _dmarc.{record_domain}")
    record = parse_dmarc_record(records[0])
    if not record.p:
        return DmarcResult("none", fd, org, "", "", False, False, record_domain=record_domain,
                           reason="DMARC record without a valid p=")
    policy = record.sp if record_domain != fd else record.p

    spf_aligned = bool(spf and spf.result == "pass"
                       and identifiers_aligned(spf.domain, fd, record.aspf))
    dkim_aligned = any(r.result == "pass" and identifiers_aligned(r.domain, fd, record.adkim)
                       for r in dkim)

    def outcome(result: str, applied: str, why: str) -> DmarcResult:
        return DmarcResult(result, fd, org, policy, applied, spf_aligned, dkim_aligned,
                           reason=why, record_domain=record_domain, pct=record.pct)

    if spf_aligned or dkim_aligned:
        return outcome("pass", "none", "aligned " + ("SPF" if spf_aligned else "DKIM") + " pass")
    temp = []
    if spf and spf.result == "temperror" and identifiers_aligned(spf.domain, fd, record.aspf):
        temp.append("SPF")
    if any(r.result == "temperror" and identifiers_aligned(r.domain, fd, record.adkim)
           for r in dkim):
        temp.append("DKIM")
    if temp:
        return outcome("temperror", "", f"aligned {' and '.join(temp)} check failed temporarily")
    if _sampled(message_key, record.pct):
        applied, why = policy, "no aligned SPF or DKIM pass"
    else:
        applied, why = _MILDER[policy], f"no aligned pass; outside the pct={record.pct} sample"
    return outcome("fail", applied, why)
