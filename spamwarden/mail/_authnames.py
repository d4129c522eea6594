"""What a message proved about its senders at delivery: the names SPF, DKIM and DMARC
authenticated.  Read by the milter (volume counts) and the complaint loop (delivery
records, what a complaint may count against) alike, from the milter's
``AuthResults`` or anything with the same attributes."""

from __future__ import annotations

from typing import Any

from ._domains import domain_of_address, normalize_domain, registrable_domain

__all__ = ["MAX_DKIM_DOMAINS", "authenticated_domains", "authenticated_names", "spf_passed_domain",
           "spf_vouches"]

#: signing domains of one message kept (a message may carry many signatures)
MAX_DKIM_DOMAINS = 10


def _passed(value: Any) -> bool:
    return str(getattr(value, "result", "")).lower() == "pass"


def spf_passed_domain(spf: Any, mail_from: str) -> str | None:
    """The domain SPF passed for in the "mailfrom" scope (RFC 7208 §2.4), normalised
    (lower-case ASCII: pyspf reports an internationalized name as it was written), or
    ``None``.  ``spf`` is an ``SpfResult`` or anything with the same attributes; the
    envelope sender's domain stands in when it carries none."""
    if not _passed(spf) or getattr(spf, "scope", "mailfrom") != "mailfrom":
        return None
    return normalize_domain(getattr(spf, "domain", "") or "") or (
        domain_of_address(mail_from) if mail_from else None)


def spf_vouches(spf: Any, mail_from: str) -> bool:
    """SPF passed for the envelope sender's own domain: the client is one that domain
    sends from (a null or domainless sender, checked as ``postmaster@<helo>``, never
    vouches for itself)."""
    own = domain_of_address(mail_from) if mail_from else None
    return own is not None and spf_passed_domain(spf, mail_from) == own


def authenticated_names(mail_from: str, auth: Any) -> tuple[str | None, tuple[str, ...],
                                                          str | None]:
    """What a message proved at delivery: ``(MAIL FROM domain, DKIM d=, From domain)``.

    The MAIL FROM domain only when SPF passed for it, the ``d=`` of signatures that
    verified (at most :data:`MAX_DKIM_DOMAINS`), the From domain only when DMARC passed;
    all normalised, not reduced to registrable domains.

    :param mail_from: the envelope sender.
    :param auth: an ``AuthResults`` (``spf``, ``dkim``, ``dmarc``) or ``None``.
    """
    if auth is None:
        return None, (), None
    mail_from_domain = spf_passed_domain(getattr(auth, "spf", None), mail_from)
    dkim: dict[str, None] = {}
    for sig in tuple(getattr(auth, "dkim", ()) or ()):
        d = normalize_domain(getattr(sig, "domain", "") or "") if _passed(sig) else None
        if d and len(dkim) < MAX_DKIM_DOMAINS:
            dkim[d] = None
    dmarc = getattr(auth, "dmarc", None)
    from_domain = normalize_domain(getattr(dmarc, "from_domain", "") or "") if _passed(
        dmarc) else None
    return mail_from_domain, tuple(dkim), from_domain


def authenticated_domains(mail_from: str, auth: Any) -> list[str]:
    """The registrable domains a message authenticated (:func:`authenticated_names`),
    without repeats: the names a complaint about it can count against, and so the
    names its delivery adds volume to."""
    mail_from_domain, dkim, from_domain = authenticated_names(mail_from, auth)
    out: dict[str, None] = {}
    for d in (mail_from_domain, from_domain, *dkim):
        reg = registrable_domain(d) if d else None
        if reg:
            out[reg] = None
    return list(out)
