"""What sender authentication found, as the SPF and DKIM rules read it.

The rules do not verify anything themselves: a caller that checked SPF and DKIM (the
milter's ``auth`` check) gives its findings as an :class:`AuthFacts`, and SpamAssassin's
SPF_*, DKIM_* and auth-welcomelist evals (:mod:`spamwarden.rules._auth`) read them.
Without one (an offline check of a stored message) those evals hit nothing, as in
SpamAssassin with network tests off.  Plain frozen data: it is pickled to the engine's
own processes (:mod:`spamwarden.rules.processes`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SPF_RESULTS", "AuthFacts", "DkimSignature"]

#: RFC 7208 §2.6 results the SPF evals know (anything else is read as no result)
SPF_RESULTS = frozenset({"pass", "fail", "softfail", "neutral", "none", "permerror",
                         "temperror"})


@dataclass(frozen=True, slots=True)
class DkimSignature:
    """One DKIM-Signature field (RFC 6376 §3.5) and whether it verified.

    :ivar domain: the signing domain ``d=``, lower case ("" when unreadable).
    :ivar identity: the AUID ``i=``, ``@`` and ``d=`` when absent ("" when unreadable):
        SpamAssassin's DKIM plugin compares the domain of this with the author's.
    :ivar selector: ``s=`` (a signature without one is ignored, as Mail::DKIM's).
    :ivar valid: the signature verified (RFC 6376 §6.1: ``pass``), within its ``x=``
        and with a key the verifier accepts.
    """

    domain: str
    identity: str
    selector: str
    valid: bool


@dataclass(frozen=True, slots=True)
class AuthFacts:
    """SPF and DKIM results for one message, from the receiving MTA's connection.

    :ivar client_ip: the SMTP client's address, the one SPF was evaluated for; the SPF
        results count only when it is the first external relay the rules see (as
        SpamAssassin evaluates SPF for that relay).
    :ivar spf_mailfrom: RFC 7208 result for the MAIL FROM identity; ``None``: not
        evaluated (a null sender, or no client address).
    :ivar mail_from: the address ``spf_mailfrom`` is about.
    :ivar spf_helo: result for the HELO identity (RFC 7208 §2.3); ``None``: not
        evaluated.
    :ivar helo: the HELO name ``spf_helo`` is about.
    :ivar dkim: every DKIM-Signature verified, top first; ``()`` when unsigned.
    :ivar dkim_dependable: the signatures were verified over the whole message (not a
        message cut at a size limit): SpamAssassin's ``__DKIM_DEPENDABLE``.
    """

    client_ip: str = ""
    spf_mailfrom: str | None = None
    mail_from: str = ""
    spf_helo: str | None = None
    helo: str = ""
    dkim: tuple[DkimSignature, ...] = ()
    dkim_dependable: bool = True
