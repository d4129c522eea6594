"""Sender authentication for the milter: SPF, DKIM, DMARC and ARC.

Public API (other components import from here):

* :func:`check_spf` -> :class:`SpfResult` (RFC 7208, pyspf)
* :func:`verify_dkim` -> tuple of :class:`DkimResult` (RFC 6376, RFC 8463, dkimpy)
* :func:`check_dmarc` -> :class:`DmarcResult` (RFC 7489)
* :func:`verify_arc` -> :class:`ArcResult` (RFC 8617, dkimpy)
* :func:`authenticate` -> :class:`AuthResults`, all of them for one message

Every DNS lookup goes through the injected :class:`~spamwarden.resolver.Resolver`;
a temporary DNS failure gives ``temperror``, never ``pass`` and never ``fail``.
Nothing here keeps global state: the functions are safe to call from every
milter thread at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from ..mail import MessageView, domain_of_address, parse_tag_list
from ..resolver import Resolver
from ._arc import (
    ARC_RESULTS,
    NO_ARC,
    ArcResult,
    ArcSealer,
    aar_dmarc_pass,
    load_signing_key,
    verify_arc,
)
from ._dkim import DKIM_RESULTS, DkimResult, verify_dkim
from ._dmarc import (
    DMARC_RESULTS,
    DmarcRecord,
    DmarcResult,
    check_dmarc,
    identifiers_aligned,
    parse_dmarc_record,
)
from ._spf import SPF_RESULTS, SpfResult, check_spf

__all__ = [
    "ARC_RESULTS",
    "DKIM_RESULTS",
    "DMARC_RESULTS",
    "SPF_RESULTS",
    "ArcResult",
    "ArcSealer",
    "AuthResults",
    "DkimResult",
    "DmarcRecord",
    "DmarcResult",
    "SpfResult",
    "aar_dmarc_pass",
    "authenticate",
    "check_dmarc",
    "check_spf",
    "identifiers_aligned",
    "load_signing_key",
    "message_key",
    "parse_dmarc_record",
    "verify_arc",
    "verify_dkim",
]


@dataclass(frozen=True, slots=True)
class AuthResults:
    """SPF, DKIM and DMARC for one message.

    :ivar spf: ``None`` when the client address is unknown (nothing to check).
    :ivar dkim: one result per DKIM-Signature (up to ``max_signatures``), ``()``
        for an unsigned message.
    :ivar dmarc: ``None`` only when it was not evaluated at all.
    :ivar arc: the ARC chain (RFC 8617); ``None`` when it was not evaluated.
    """

    spf: SpfResult | None
    dkim: tuple[DkimResult, ...]
    dmarc: DmarcResult | None
    arc: ArcResult | None = None


def _unverified_signatures(view: MessageView, *, max_signatures: int,
                           reason: str) -> tuple[DkimResult, ...]:
    """``neutral`` results naming each signature of a message we cannot verify."""
    out = []
    for value in view.header_all("DKIM-Signature")[: max(0, max_signatures)]:
        tags = parse_tag_list(value)
        d = tags.get("d", "").lower()
        out.append(DkimResult(
            "neutral", d, tags.get("s", ""), tags.get("a", "").lower(), tags.get("b", "")[:8],
            reason=reason,
            covered_headers=tuple(h.strip().lower() for h in tags.get("h", "").split(":")
                                  if h.strip()),
            identity=tags.get("i", f"@{d}" if d else ""),
        ))
    return tuple(out)


def message_key(raw: bytes, view: MessageView) -> str:
    """What DMARC ``pct=`` sampling hashes: the Message-ID, else the header bytes."""
    if view.message_id:
        return view.message_id.strip()
    head = raw[:65536].split(b"\n\n", 1)[0]
    return hashlib.sha256(head).hexdigest()


def authenticate(
    raw: bytes,
    view: MessageView,
    resolver: Resolver,
    *,
    client_ip: str | None,
    helo: str,
    mail_from: str,
    max_signatures: int = 5,
    timeout: float = 5.0,
    spf_result: SpfResult | None = None,
    spf_timeout: float | None = None,
    min_rsa_bits: int = 1024,
    max_arc_sets: int = 10,
) -> AuthResults:
    """Run SPF, DKIM, DMARC and ARC for one message.

    :param raw: the whole message as received.
    :param view: ``parse_message(raw)``; supplies the From domain(s), the
        Message-ID (``pct=`` sampling) and ``truncated``.  A truncated message
        is not DKIM-verified (its body is incomplete): each signature is
        reported ``neutral``.
    :param resolver: every lookup goes through it.
    :param client_ip: the SMTP client; ``None`` skips SPF (``spf`` is ``None``).
    :param helo: the HELO/EHLO name (SPF's identity for a null MAIL FROM).
    :param mail_from: the envelope sender (``""`` or ``"<>"`` when null).
    :param max_signatures: DKIM signatures verified at most.
    :param timeout: DNS budget of each phase run here: SPF (unless
        ``spf_timeout``), all DKIM keys, the DMARC policy.  Each single lookup
        is further capped by the resolver's own timeout.
    :param spf_result: an SPF result already computed (e.g. at MAIL FROM);
        when given, SPF is not evaluated again.
    :param spf_timeout: SPF's DNS budget when it runs here (default ``timeout``).
    :param min_rsa_bits: see :func:`verify_dkim`.
    :param max_arc_sets: see :func:`verify_arc`; the ARC chain is verified only
        when the header section holds ``ARC-Seal`` (else ``none`` at once), with
        its own DNS budget of ``timeout``.
    :returns: :class:`AuthResults`.
    :raises: nothing for DNS trouble or malformed input.
    """
    spf = spf_result
    if spf is None and client_ip:
        spf = check_spf(resolver, ip=client_ip, mail_from=mail_from, helo=helo,
                        timeout=timeout if spf_timeout is None else spf_timeout)
    if view.truncated:
        dkim = _unverified_signatures(view, max_signatures=max_signatures,
                                      reason="message over the size limit, not verified")
        arc = ArcResult("none", reason="message over the size limit, not verified")
    else:
        dkim = verify_dkim(raw, resolver, max_signatures=max_signatures, timeout=timeout,
                           min_rsa_bits=min_rsa_bits)
        arc = (verify_arc(raw, resolver, max_sets=max_arc_sets, timeout=timeout,
                          min_rsa_bits=min_rsa_bits)
               if view.header_all("ARC-Seal") else NO_ARC)
    domains = author_domains(view)
    if len(domains) > 1:
        # RFC 7489 §6.6.1: several author domains; each one's policy is applied and the
        # strictest wins (a mail program may show any of them as the sender)
        results = [check_dmarc(resolver, from_domain=d, spf=spf, dkim=dkim,
                               message_key=message_key(raw, view), timeout=timeout)
                   for d in domains]
        dmarc = max(results, key=_strictness)
        why = f"the strictest of {len(domains)} From domains"
        dmarc = replace(dmarc, reason=f"{why}: {dmarc.reason}" if dmarc.reason else why)
    else:
        dmarc = check_dmarc(resolver, from_domain=domains[0] if domains else view.from_domain,
                            spf=spf, dkim=dkim, message_key=message_key(raw, view),
                            timeout=timeout)
    return AuthResults(spf=spf, dkim=dkim, dmarc=dmarc, arc=arc)


#: From domains of one message DMARC evaluates (each asks DNS for up to two records)
MAX_AUTHOR_DOMAINS = 5


def author_domains(view: MessageView) -> list[str]:
    """The distinct domains of the message's From addresses, as DMARC evaluates them: in
    field order, at most :data:`MAX_AUTHOR_DOMAINS`, the last field's always among them
    (a mail program shows the first or the last)."""
    found = [d for d in (domain_of_address(_addr(v)) for v in view.header_all("From")) if d]
    out = list(dict.fromkeys(found))[:MAX_AUTHOR_DOMAINS]
    if found and found[-1] not in out:
        out[-1] = found[-1]
    return out


_FAILED = {"reject": 6, "quarantine": 5, "none": 4, "": 4}
_OTHERS = {"temperror": 3, "permerror": 2, "none": 1, "pass": 0}


def _strictness(r: DmarcResult) -> int:
    """How strongly a DMARC result speaks against a message: a failure under its
    applied policy first, then an error (which may hide one), then no policy, then a
    pass."""
    if r.result == "fail":
        return _FAILED.get(r.applied_policy, 4)
    return _OTHERS.get(r.result, 2)


def _addr(value: str) -> str:
    """The address inside a From value (``Name <a@b>`` -> ``a@b``), leniently."""
    if "<" in value and ">" in value:
        return value[value.rfind("<") + 1: value.rfind(">")]
    return value.strip()
