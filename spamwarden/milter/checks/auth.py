"""Sender authentication: SPF (RFC 7208), DKIM (RFC 6376), DMARC (RFC 7489), ARC (RFC 8617).

SPF needs only the envelope, so it starts at MAIL FROM on a lookup thread (or
at once from the resolver's memory, :mod:`spamwarden.milter.spf_memory`), with
the DMARC record of the envelope domain fetched into the resolver's cache; the
end of message takes that result and adds DKIM and DMARC.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Literal

from ...logs import event
from ...mail import domain_key, domain_of_address, normalize_domain, registrable_domain
from ...resolver import CachingResolver, KeptAnswers
from ..interfaces import Envelope, Symbol
from ..registry import CheckBase, CheckDecl, Components, MessageContext, Phase, SymbolPoints
from ..spf_memory import SpfMemory
from ..symbols import SymbolSpec

if TYPE_CHECKING:
    from ..auth import AuthResults

__all__ = ["CHECK", "SYMBOLS", "AuthCheck", "arc_override", "auth_symbols", "trusted_sealer_names"]

log = logging.getLogger("spamwarden.milter")

_G = "auth"
SYMBOLS: tuple[SymbolSpec, ...] = (
    # SPF, RFC 7208 results for MAIL FROM
    SymbolSpec("SPF_PASS", -0.1, "SPF: sender is authorized for the MAIL FROM domain", _G),
    SymbolSpec("SPF_FAIL", 3.0, "SPF: sender is not authorized for the MAIL FROM domain", _G),
    SymbolSpec("SPF_SOFTFAIL", 1.0,
               "SPF: MAIL FROM domain says the sender is probably not authorized", _G),
    SymbolSpec("SPF_NEUTRAL", 0.2, "SPF: MAIL FROM domain makes no assertion", _G),
    SymbolSpec("SPF_NONE", 0.2, "SPF: MAIL FROM domain publishes no SPF record", _G),
    SymbolSpec("SPF_TEMPERROR", 0.0, "SPF: temporary DNS error", _G),
    SymbolSpec("SPF_PERMERROR", 0.5, "SPF: the SPF record is broken", _G),
    # SPF of the HELO name (RFC 7208 §2.3), for a null MAIL FROM
    SymbolSpec("SPF_HELO_PASS", -0.1, "SPF (null sender): HELO name authorizes the client", _G),
    SymbolSpec("SPF_HELO_FAIL", 2.0,
               "SPF (null sender): HELO name does not authorize the client", _G),
    SymbolSpec("SPF_HELO_SOFTFAIL", 0.7,
               "SPF (null sender): HELO name probably does not authorize the client", _G),
    SymbolSpec("SPF_HELO_NEUTRAL", 0.1, "SPF (null sender): HELO name makes no assertion", _G),
    SymbolSpec("SPF_HELO_NONE", 0.2, "SPF (null sender): HELO name publishes no SPF record", _G),
    SymbolSpec("SPF_HELO_TEMPERROR", 0.0,
               "SPF (null sender): temporary DNS error on the HELO name", _G),
    SymbolSpec("SPF_HELO_PERMERROR", 0.3,
               "SPF (null sender): the HELO name's SPF record is broken", _G),
    # DKIM, RFC 6376 / RFC 8601 results, once per result kind
    SymbolSpec("DKIM_VALID", -0.1, "DKIM: a signature verified", _G),
    SymbolSpec("DKIM_INVALID", 1.0, "DKIM: a signature did not verify", _G),
    SymbolSpec("DKIM_NONE", 0.0, "DKIM: message is not signed", _G),
    SymbolSpec("DKIM_NEUTRAL", 0.1, "DKIM: a signature was not verified (over the size limit)",
               _G),
    SymbolSpec("DKIM_POLICY", 0.1, "DKIM: a signature is unacceptable to us (expired, weak key)",
               _G),
    SymbolSpec("DKIM_TEMPERROR", 0.0, "DKIM: temporary error fetching a key", _G),
    SymbolSpec("DKIM_PERMERROR", 0.5, "DKIM: a signature or key is unusable", _G),
    # DMARC, RFC 7489
    SymbolSpec("DMARC_PASS", -0.5, "DMARC: aligned SPF or DKIM pass", _G),
    SymbolSpec("DMARC_REJECT", 15.0, "DMARC: fails and the domain asks to reject", _G),
    SymbolSpec("DMARC_QUARANTINE", 5.0, "DMARC: fails and the domain asks to quarantine", _G),
    SymbolSpec("DMARC_FAIL_NONE", 1.0, "DMARC: fails; the domain asks for no action", _G),
    SymbolSpec("DMARC_NA", 0.0, "DMARC: the From domain publishes no policy", _G),
    SymbolSpec("DMARC_TEMPERROR", 0.0, "DMARC: temporary DNS error", _G),
    SymbolSpec("DMARC_PERMERROR", 0.5, "DMARC: the policy record is broken", _G),
    SymbolSpec("DMARC_ARC_OVERRIDE", 0.5,
               "DMARC: fails and the domain asks to reject or quarantine, but a valid ARC "
               "chain from a trusted sealer (milter.arc_trusted_sealers) recorded a DMARC "
               "pass before the message was modified: not refused", _G),
    SymbolSpec("DMARC_ARC_TEMPFAIL", 0.0,
               "DMARC: fails and the domain asks to reject or quarantine; the ARC chain "
               "sealed by a trusted sealer could not be verified now (DNS): try again later",
               _G),
    # ARC, RFC 8617 chain validation (only for messages carrying an ARC-Seal)
    SymbolSpec("ARC_PASS", -0.1, "ARC: the chain of custody verifies", _G),
    SymbolSpec("ARC_FAIL", 0.5, "ARC: the chain is broken, incomplete or says it failed", _G),
    SymbolSpec("ARC_TEMPERROR", 0.0, "ARC: temporary DNS error fetching a sealer's key", _G),
)

# RFC 8601 result word → symbol, per identity; any other word is not a result.
_SPF = {"pass": "SPF_PASS", "fail": "SPF_FAIL", "softfail": "SPF_SOFTFAIL",
        "neutral": "SPF_NEUTRAL", "none": "SPF_NONE", "temperror": "SPF_TEMPERROR",
        "permerror": "SPF_PERMERROR"}
_SPF_HELO = {"pass": "SPF_HELO_PASS", "fail": "SPF_HELO_FAIL", "softfail": "SPF_HELO_SOFTFAIL",
             "neutral": "SPF_HELO_NEUTRAL", "none": "SPF_HELO_NONE",
             "temperror": "SPF_HELO_TEMPERROR", "permerror": "SPF_HELO_PERMERROR"}
# No symbol for a message without ARC (most mail): ``arc=none`` is said in the
# Authentication-Results only.
_ARC = {"pass": "ARC_PASS", "fail": "ARC_FAIL", "temperror": "ARC_TEMPERROR"}
_DKIM = {"pass": "DKIM_VALID", "fail": "DKIM_INVALID", "none": "DKIM_NONE",
         "neutral": "DKIM_NEUTRAL", "policy": "DKIM_POLICY", "temperror": "DKIM_TEMPERROR",
         "permerror": "DKIM_PERMERROR"}


def _result_word(value: Any) -> str:
    return str(value or "none").strip().lower()


def auth_symbols(auth: AuthResults | None, points: SymbolPoints, *,
                 reject_spf_fail: bool, dmarc_reject_action: str = "reject",
                 trusted_sealers: Collection[str] = ()) -> list[Symbol]:
    """SPF, DKIM, DMARC and ARC results → symbols.

    :param auth: the results, or ``None`` when authentication did not run.
    :param reject_spf_fail: SPF ``fail`` demands ``reject`` (``milter.reject_spf_fail``).
    :param dmarc_reject_action: what a DMARC failure under ``p=reject`` demands
        (``milter.dmarc_reject_action``): ``reject`` (``DMARC_REJECT``),
        ``quarantine`` (``DMARC_QUARANTINE``, as a ``p=quarantine`` failure), or
        ``score`` (only ``DMARC_REJECT``'s points).
    :param trusted_sealers: ARC sealer domains (``milter.arc_trusted_sealers``, as
        :func:`trusted_sealer_names` writes them).
    :returns: symbols in SPF, DKIM, DMARC, ARC order.  DMARC ``fail`` with the
        applied policy ``reject`` demands ``dmarc_reject_action`` (RFC 7489 §6.6.4,
        §10.3); ``quarantine`` demands ``quarantine``; either becomes
        ``DMARC_ARC_OVERRIDE`` (no action) when :func:`arc_override` vouches, or
        ``DMARC_ARC_TEMPFAIL`` (``tempfail``) when a trusted sealer's chain could
        not be verified for a DNS error (the override might apply on a retry).
    """
    out: list[Symbol] = []
    if auth is None:
        return out
    spf = auth.spf
    if spf is not None:
        result = _result_word(spf.result)
        helo = _result_word(spf.scope) == "helo"
        domain = spf.domain or ""
        detail = f"spf={result} for {domain}" if domain else f"spf={result}"
        action: Literal["reject", ""] = "reject" if result == "fail" and reject_spf_fail else ""
        name = (_SPF_HELO if helo else _SPF).get(result)
        if name is None:  # not an RFC 7208 result: said as it came
            name = ("SPF_HELO_" if helo else "SPF_") + result.upper()
        out.append(points.make(name, detail, action=action))
    dkims = auth.dkim
    if not dkims:
        out.append(points.make("DKIM_NONE", "no DKIM-Signature"))
    seen: dict[str, list[str]] = {}
    for sig in dkims:
        result = _result_word(sig.result)
        name = _DKIM.get(result) or "DKIM_" + result.upper()
        seen.setdefault(name, []).append(str(sig.domain or "?"))
    for name, domains in seen.items():
        out.append(points.make(name, "d=" + ",".join(domains[:5])))
    dmarc = auth.dmarc
    if dmarc is not None:
        result = _result_word(dmarc.result)
        domain = dmarc.from_domain or ""
        applied = _result_word(dmarc.applied_policy)
        published = _result_word(dmarc.policy)
        if result == "pass":
            out.append(points.make("DMARC_PASS", f"aligned pass for {domain}"))
        elif result == "fail":
            sealer = (arc_override(auth, trusted_sealers)
                      if applied in ("reject", "quarantine") else "")
            arc = auth.arc
            if sealer:
                out.append(points.make(
                    "DMARC_ARC_OVERRIDE",
                    f"DMARC policy of {domain} is {applied} and the message fails it; "
                    f"trusted ARC sealer {sealer} recorded dmarc=pass",
                ))
            elif (applied in ("reject", "quarantine") and arc is not None
                  and _result_word(arc.result) == "temperror" and arc.sealer
                  and arc.sealer in trusted_sealers):
                # The override might apply once DNS answers: never refuse for our DNS.
                out.append(points.make(
                    "DMARC_ARC_TEMPFAIL",
                    f"DMARC policy of {domain} is {applied} and the message fails it; the "
                    f"ARC chain of trusted sealer {arc.sealer} could not be verified now",
                    action="tempfail",
                ))
            elif applied == "reject" and dmarc_reject_action == "quarantine":
                # Held as a p=quarantine failure is: DMARC_REJECT's points alone would
                # reach the reject threshold and refuse it anyway.
                out.append(points.make(
                    "DMARC_QUARANTINE",
                    f"DMARC policy of {domain} is reject and the message fails it "
                    "(held: milter.dmarc_reject_action)",
                    action="quarantine",
                ))
            elif applied == "reject":
                out.append(points.make(
                    "DMARC_REJECT",
                    f"DMARC policy of {domain} is reject and the message fails it",
                    action="" if dmarc_reject_action == "score" else "reject",
                ))
            elif applied == "quarantine":
                out.append(points.make(
                    "DMARC_QUARANTINE",
                    f"DMARC policy of {domain} is quarantine and the message fails it",
                    action="quarantine",
                ))
            else:
                out.append(points.make(
                    "DMARC_FAIL_NONE", f"fails DMARC of {domain} (p={published}, applied none)"
                ))
        elif result == "temperror":
            out.append(points.make("DMARC_TEMPERROR", f"{domain}"))
        elif result == "permerror":
            out.append(points.make("DMARC_PERMERROR", f"{domain}"))
        else:
            out.append(points.make("DMARC_NA", f"no DMARC policy for {domain or 'From'}"))
    arc = auth.arc
    if arc is not None and _result_word(arc.result) != "none":
        result = _result_word(arc.result)
        name = _ARC.get(result, "ARC_FAIL")
        if result == "pass":
            detail = f"{arc.sets} set{'s' if arc.sets != 1 else ''}, sealer {arc.sealer}"
        else:
            detail = arc.reason
        out.append(points.make(name, detail))
    return out


def trusted_sealer_names(entries: Sequence[str]) -> frozenset[str]:
    """``milter.arc_trusted_sealers`` in the form an ARC-Seal's ``d=`` is compared in
    (:func:`~spamwarden.mail.domain_key`: a U-label entry trusts the A-label seal)."""
    return frozenset(domain_key(d) for d in entries if d.strip())


def arc_override(auth: AuthResults, trusted_sealers: Collection[str]) -> str:
    """The trusted sealer vouching for a message that fails DMARC, or ``""``.

    It vouches when the ARC chain passes (``cv=pass`` throughout, RFC 8617 §5.2),
    the newest ARC-Seal's ``d=`` is one of ``trusted_sealers`` (exactly: a
    subdomain is not trusted by its parent's entry), and that hop's
    ARC-Authentication-Results recorded ``dmarc=pass`` for the message's From
    domain (RFC 8617 §7.2).  A broken chain, an untrusted sealer, or a sealer
    that recorded no DMARC pass never vouches.
    """
    from ..auth import aar_dmarc_pass

    arc = auth.arc
    dmarc = auth.dmarc
    if arc is None or dmarc is None or not trusted_sealers:
        return ""
    if _result_word(arc.result) != "pass" or not arc.sealer:
        return ""
    if arc.sealer not in trusted_sealers:
        return ""
    if not aar_dmarc_pass(arc.aar, dmarc.from_domain or ""):
        return ""
    return arc.sealer


class AuthCheck(CheckBase):
    """SPF at MAIL FROM (when the authenticator is ours), everything at end of message.

    :param parts: ``authenticate`` must be set; ``spf`` enables the MAIL FROM start.
    """

    def __init__(self, parts: Components) -> None:
        assert parts.authenticate is not None
        self.authenticate = parts.authenticate
        self.resolver = parts.resolver
        self.lookups = parts.lookups
        self.points = parts.points
        self._check_spf: Callable[..., Any] | None = parts.spf
        cfg = parts.cfg
        self._timeout = cfg.dns.timeout
        self._max_signatures = cfg.milter.max_dkim_signatures
        self._reject_spf_fail = cfg.milter.reject_spf_fail
        self._dmarc_reject_action = cfg.milter.dmarc_reject_action
        self._trusted_sealers = trusted_sealer_names(cfg.milter.arc_trusted_sealers)
        resolver = parts.resolver
        # Checked once here: SPF from memory needs a resolver that keeps answers, and
        # only a caching resolver gains from fetching the DMARC record early.
        self.memory = (
            SpfMemory(resolver, parts.spf, timeout=self._timeout)
            if parts.spf is not None and isinstance(resolver, KeptAnswers) else None
        )
        self._prefetch_dmarc = isinstance(resolver, CachingResolver) and resolver.caches

    # -- MAIL FROM --------------------------------------------------------------------------

    def at_envelope(self, env: Envelope) -> Future[Any] | None:
        if self._check_spf is None or not env.client_ip:
            return None
        ip, helo, mail_from = env.client_ip, env.helo, env.mail_from
        done = self.spf_from_memory(ip, helo, mail_from)
        if done is not None:
            return done
        return self.lookups.submit(self._early_spf, ip, helo, mail_from)

    def spf_from_memory(self, ip: str, helo: str, mail_from: str) -> Future[Any] | None:
        """SPF evaluated here and now when every answer it needs is in the resolver's
        memory (no thread hand-off for a sender seen within its records' TTLs), as a
        finished future; ``None`` when one is missing.  The DMARC record is fetched on
        a lookup thread only when it is not kept."""
        memory = self.memory
        if memory is None:
            return None
        result = memory.result(ip, helo, mail_from)
        if result is None:
            return None
        if self._prefetch_dmarc and mail_from and self.lookups.threaded:
            domain = domain_of_address(mail_from)
            if domain and memory.kept(f"_dmarc.{domain.lower().rstrip('.')}", "TXT") is None:
                self.lookups.submit(self._warm_dmarc, domain)
        done: Future[Any] = Future()
        done.set_result(result)
        return done

    def spf_now(self, env: Envelope) -> Any:
        """SPF for ``env`` evaluated in this thread (a policy needs it at RCPT and no
        check started at MAIL FROM holds it): the result, or ``None`` when SPF is not
        evaluated here or failed."""
        if self._check_spf is None or not env.client_ip:
            return None
        done = self.spf_from_memory(env.client_ip, env.helo, env.mail_from)
        if done is not None:
            return done.result()
        try:
            return self._check_spf(self.resolver, ip=env.client_ip, mail_from=env.mail_from,
                                   helo=env.helo, timeout=self._timeout)
        except Exception as exc:  # noqa: BLE001 - no answer is "not verified", never a failure
            event(log, "spf_error", logging.WARNING, queue_id=env.queue_id or None,
                  error=f"{type(exc).__name__}: {exc}")
            return None

    def _early_spf(self, ip: str, helo: str, mail_from: str) -> Any:
        """SPF at MAIL FROM (the same call ``authenticate`` makes), then the DMARC
        record of the envelope domain into the resolver's cache."""
        assert self._check_spf is not None
        result = self._check_spf(self.resolver, ip=ip, mail_from=mail_from, helo=helo,
                                 timeout=self._timeout)
        if self._prefetch_dmarc and mail_from:
            self._warm_dmarc(domain_of_address(mail_from))
        return result

    def _warm_dmarc(self, domain: str | None) -> None:
        """Fetch ``_dmarc.<domain>`` (then the organizational domain's, as RFC 7489
        §6.6.3 would) so the end of message finds it in the resolver's cache."""
        name = normalize_domain(domain) if domain else None
        if not name:
            return
        try:
            answer = self.resolver.query(f"_dmarc.{name}", "TXT", timeout=self._timeout)
            org = registrable_domain(name)
            if answer.status in ("nxdomain", "nodata") and org and org != name:
                self.resolver.query(f"_dmarc.{org}", "TXT", timeout=self._timeout)
        except Exception as exc:  # noqa: BLE001 - a cache warm-up never fails a message
            log.debug("DMARC prefetch for %s failed: %s", name, exc)

    # -- end of message ---------------------------------------------------------------------

    def at_message(self, msg: MessageContext) -> Sequence[Symbol]:
        env = msg.env
        early = msg.early
        spf = None
        if early is not None:
            job = early.jobs.get("auth")
            if job is not None:
                spf = self.lookups.result(job, default=None)
        if spf is not None:  # else authenticate evaluates SPF itself
            auth = self.authenticate(
                msg.raw, msg.view, self.resolver, client_ip=env.client_ip, helo=env.helo,
                mail_from=env.mail_from, max_signatures=self._max_signatures,
                timeout=self._timeout, spf_result=spf)
        else:
            auth = self.authenticate(
                msg.raw, msg.view, self.resolver, client_ip=env.client_ip, helo=env.helo,
                mail_from=env.mail_from, max_signatures=self._max_signatures,
                timeout=self._timeout)
        msg.auth = auth
        return auth_symbols(auth, self.points, reject_spf_fail=self._reject_spf_fail,
                            dmarc_reject_action=self._dmarc_reject_action,
                            trusted_sealers=self._trusted_sealers)


def _build(parts: Components) -> AuthCheck | None:
    return AuthCheck(parts) if parts.authenticate is not None else None


CHECK = CheckDecl(
    name="auth",
    order=10,
    symbols=SYMBOLS,
    phases=frozenset({Phase.ENVELOPE, Phase.MESSAGE}),
    build=_build,
)
