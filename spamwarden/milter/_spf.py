"""SPF (RFC 7208) over pyspf, with every DNS lookup going through our :class:`Resolver`.

pyspf resolves through a module-global ``spf.DNSLookup`` function.  Replacing
that global would be shared by every milter thread, so instead each check runs
a private :class:`_ResolverQuery` (a ``spf.query`` subclass) whose ``dns``
method asks the injected resolver.  Nothing global is touched: concurrent
checks with different resolvers do not see each other.

A temporary DNS failure (``DnsAnswer.status == "error"``) becomes pyspf's
``TempError`` and so the ``temperror`` result, never ``fail`` or ``pass``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import spf

from ..logs import event
from ..resolver import Resolver

__all__ = ["SPF_RESULTS", "SpfResult", "check_spf"]

log = logging.getLogger("spamwarden.milter.auth")

#: The results of RFC 7208 §2.6.
SPF_RESULTS = ("pass", "fail", "softfail", "neutral", "none", "permerror", "temperror")

# pyspf's pre-RFC 7208 names, should an old code path still produce them.
_OLD_RESULT_NAMES = {"unknown": "permerror", "error": "temperror"}

# RFC 7208 §4.6.4: "at least 20 seconds" is a SHOULD for the whole evaluation.
DEFAULT_SPF_TIMEOUT = 20.0

#: The longest explanation kept in an :class:`SpfResult` (characters).  pyspf expands
#: the sender's ``exp=`` text in full: a 64 KB TXT record of ``%{h}`` macros with a
#: 250-character HELO name is 4 MB, and results are remembered (SpfMemory keeps up to
#: 10,000).  Only the first 200 characters ever reach a header field.
MAX_EXPLANATION = 512


@dataclass(frozen=True, slots=True)
class SpfResult:
    """The outcome of one SPF check (RFC 7208 §2.6).

    :ivar result: ``pass``, ``fail``, ``softfail``, ``neutral``, ``none``,
        ``permerror`` or ``temperror``.
    :ivar scope: ``mailfrom``, or ``helo`` when MAIL FROM was null (``<>``).
    :ivar domain: the domain checked (lower-case): of MAIL FROM, or the HELO name.
    :ivar mail_from: the envelope address checked (``postmaster@<helo>`` for a
        null sender, RFC 7208 §2.4).
    :ivar explanation: pyspf's explanation (the ``exp=`` text on ``fail``), at most
        :data:`MAX_EXPLANATION` characters.

    Nothing else is larger than what the SMTP client sent: ``domain`` and
    ``mail_from`` are parts of the envelope, ``result`` and ``scope`` fixed words.
    """

    result: str
    scope: str
    domain: str
    mail_from: str
    explanation: str = ""


class _ResolverQuery(spf.query):  # type: ignore[misc]
    """A pyspf query that resolves through a :class:`Resolver`, within a deadline.

    Overrides ``spf.query.dns`` (the one place pyspf calls its global
    ``DNSLookup``) and keeps its contract: a list of values (TXT values are
    tuples of ``bytes`` character-strings), a per-query cache, the RFC 7208
    §4.6.4 void-lookup limit.  CNAMEs are followed by the resolver.
    """

    def __init__(
        self,
        *,
        resolver: Resolver,
        deadline: float,
        lookup_timeout: float | None,
        **kwargs: Any,
    ) -> None:
        self._resolver = resolver
        self._deadline = deadline
        self._lookup_timeout = lookup_timeout
        super().__init__(**kwargs)

    def dns(
        self,
        name: str,
        qtype: str,
        cnames: dict[str, str] | None = None,
        ignore_void: bool = False,
    ) -> list[Any]:
        if not name:
            raise spf.PermError("empty domain name in DNS query")
        name = str(name).rstrip(".").lower()
        # An empty or over-long label cannot exist (RFC 7208 §4.3): no data,
        # and like pyspf not counted as a void lookup.
        if not all(0 < len(label) < 64 for label in name.split(".")):
            return []
        key = (name, qtype)
        cached: list[Any] = self.cache.get(key, [])
        if cached:
            return cached
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise spf.TempError("DNS time budget for SPF exhausted")
        timeout = remaining if self._lookup_timeout is None else min(self._lookup_timeout,
                                                                     remaining)
        answer = self._resolver.query(name, qtype, timeout=timeout)
        if answer.status == "error":
            raise spf.TempError(f"DNS {qtype} lookup of {name} failed: {answer.reason or 'error'}")
        result: list[Any] = []
        if answer.status == "ok":
            for value in answer.records:
                if qtype in ("TXT", "SPF"):
                    # pyspf joins the character-strings of one record itself.
                    data = value if isinstance(value, bytes) else str(value).encode("utf-8")
                    result.append((data,))
                else:
                    result.append(value)
        if result:
            self.cache[key] = result
        elif not ignore_void:
            # Like pyspf, an empty answer is not cached and counts each time.
            self.void_lookups += 1
            if self.void_lookups > spf.MAX_VOID_LOOKUPS:
                raise spf.PermError(f"Void lookup limit of {spf.MAX_VOID_LOOKUPS} exceeded")
        return result


def _strip_address(addr: str) -> str:
    addr = addr.strip()
    if addr.startswith("<") and addr.endswith(">"):
        addr = addr[1:-1].strip()
    return addr


def check_spf(
    resolver: Resolver,
    *,
    ip: str,
    mail_from: str,
    helo: str,
    timeout: float = DEFAULT_SPF_TIMEOUT,
    lookup_timeout: float | None = None,
    receiver: str | None = None,
    default_explanation: str | None = None,
) -> SpfResult:
    """Evaluate SPF for the SMTP client ``ip`` (RFC 7208 §4).

    The MAIL FROM identity is checked; when MAIL FROM is null (``""`` or
    ``"<>"``) the HELO identity is checked instead, as ``postmaster@<helo>``
    (RFC 7208 §2.3, §2.4).  The processing limits of §4.6.4 apply (10 DNS
    mechanisms, 2 void lookups) and the whole evaluation gets ``timeout``
    seconds of DNS time.

    :param resolver: every lookup goes through it.
    :param ip: the client address (IPv4, IPv6, or IPv4-mapped IPv6).
    :param mail_from: the envelope sender, with or without angle brackets.
    :param helo: the HELO/EHLO name.
    :param timeout: budget for all lookups of this evaluation (seconds).
    :param lookup_timeout: cap for one lookup; ``None`` uses the resolver's
        own ``timeout`` attribute when it has one.
    :param receiver: the ``%{r}`` macro (our host name); pyspf's ``unknown``
        when ``None``.
    :param default_explanation: replaces pyspf's default explanation text.
    :returns: the :class:`SpfResult`; a temporary DNS failure anywhere gives
        ``temperror``, an address that is not an IP gives ``permerror``.
    :raises: nothing for bad input or DNS trouble.
    """
    sender = _strip_address(mail_from)
    helo = helo.strip()
    if lookup_timeout is None:
        hint = getattr(resolver, "timeout", None)
        lookup_timeout = float(hint) if isinstance(hint, (int, float)) and hint > 0 else None
    try:
        q = _ResolverQuery(
            resolver=resolver,
            deadline=time.monotonic() + timeout,
            lookup_timeout=lookup_timeout,
            i=ip,
            s=sender,
            h=helo,
            receiver=receiver,
            strict=True,
        )
    except spf.PermError as exc:
        # Not an IP address: nothing can be evaluated (RFC 7208 §4.1).
        scope = "mailfrom" if sender else "helo"
        return SpfResult("permerror", scope, _domain_of(sender, helo).lower(), sender,
                         str(exc)[:MAX_EXPLANATION])
    if default_explanation is not None:
        q.set_default_explanation(default_explanation)
    scope = "helo" if q.ident == "helo" else "mailfrom"
    try:
        res, _code, explanation = q.check()
    except (spf.TempError, spf.PermError) as exc:  # defensive: check() catches these
        res, explanation = ("temperror" if isinstance(exc, spf.TempError) else "permerror",
                            str(exc))
    except (AssertionError, RecursionError) as exc:
        # pyspf asserts on a recursion depth its own limits should prevent: a
        # record set that defeats the limits is the domain's error.
        res, explanation = "permerror", f"SPF evaluation aborted: {exc}"
    res = _OLD_RESULT_NAMES.get(res, res)
    if res not in SPF_RESULTS:
        event(log, "spf_unexpected_result", result=res, domain=q.o)
        res = "permerror"
    return SpfResult(res, scope, str(q.o or "").lower(), str(q.s or ""),
                     str(explanation or "")[:MAX_EXPLANATION])



def _domain_of(sender: str, helo: str) -> str:
    if not sender:
        return helo
    return sender.rsplit("@", 1)[1] if "@" in sender else sender
