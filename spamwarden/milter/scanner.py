"""The scoring pipeline: one pure implementation used by the milter and ``spamwarden check``.

:class:`Scanner` takes the raw message (headers and body as Postfix delivers
them), its :class:`~spamwarden.mail.MessageView` and the
:class:`~spamwarden.milter.interfaces.Envelope`, and runs, in order:

1. authentication (SPF, DKIM per signature, DMARC) through the injected
   :data:`Authenticator` and resolver;
2. the content classifier (``BAYES_xx`` symbols);
3. own-listing lookups (client IP → ``RBL_OWN``; envelope / From / verified
   DKIM ``d=`` registrable domains → ``DBL_OWN``; URL domains → ``URIBL_OWN``;
   a failed lookup → ``*_LOOKUP_FAILED``, never clean and never listed) and the
   third-party DNSBLs of ``rbl.third_party_zones``;
4. every :class:`~spamwarden.milter.interfaces.MessagePolicy`;

then sums the symbols into a :class:`Verdict` with the header edits.

A scanner holds no per-message state and is never mutated after
construction: libmilter's threads share one instance.  A missing component
(``None``) is listed in ``Verdict.unavailable`` and in the headers, never
treated as a clean result.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import __version__
from ..config import Config
from ..errors import SpamwardenError
from ..logs import event
from ..mail import MessageView, ParseLimits, domain_of_address, parse_message, registrable_domain
from ..metrics import timed
from ..resolver import Resolver
from .headers import (
    AUTH_RESULTS,
    forged_header_removals,
    render_authentication_results,
    spam_headers,
)
from .interfaces import Envelope, MessagePolicy, RcptDecision, Symbol
from .policy import SymbolPoints, auth_symbols, bayes_symbols, decide

__all__ = [
    "VERSION_TAG", "Authenticator", "DeliveryRecorder", "EnvelopeChecks", "Scanner", "Verdict",
]

log = logging.getLogger("spamwarden.milter")

VERSION_TAG = f"spamwarden-{__version__}"

_INTERNAL_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7",
))

# URL domains looked up per message (the view holds up to ParseLimits.max_urls).
MAX_URL_DOMAINS = 20


class Authenticator(Protocol):
    """``spamwarden.milter.auth.authenticate``: SPF, DKIM and DMARC of one message."""

    def __call__(
        self,
        raw: bytes,
        view: MessageView,
        resolver: Resolver,
        *,
        client_ip: str | None,
        helo: str,
        mail_from: str,
        max_signatures: int = 5,
        timeout: float = 5.0,
    ) -> Any:
        """An ``AuthResults(spf, dkim, dmarc)``."""
        ...


class _Classifier(Protocol):
    def spam_probability(self, view: MessageView) -> float: ...


class _Listings(Protocol):
    def lookup_many(self, keys: Sequence[str]) -> Mapping[str, Any]: ...

    def record_volume(self, keys: Sequence[str]) -> None: ...


@dataclass(frozen=True)
class Verdict:
    """What the pipeline decided about one message.

    :ivar action: ``accept``, ``tag``, ``quarantine``, ``reject`` or ``tempfail``.
    :ivar score: sum of the symbols' points, one decimal.
    :ivar required: the tag threshold (SpamAssassin's ``required=``).
    :ivar reason: the main reason in one line (reject text, quarantine reason, log).
    :ivar add_headers: headers to add, ``(name, value)`` in order; the
        ``Authentication-Results`` header comes first and goes on top.
    :ivar remove_headers: incoming headers to remove, ``(name, 1-based index)``.
    :ivar unavailable: checks that could not be made, e.g. ``classifier (no model)``.
    :ivar scored: ``False`` when the message was not scored (over the size limit).
    """

    action: str
    score: float
    required: float
    symbols: tuple[Symbol, ...]
    reason: str
    add_headers: tuple[tuple[str, str], ...]
    remove_headers: tuple[tuple[str, int], ...]
    unavailable: tuple[str, ...] = ()
    auth: Any = None
    scored: bool = True
    elapsed_ms: float = 0.0
    #: the symbol behind the action ("" for accept), e.g. ``DMARC_REJECT``, ``RBL_OWN``
    main_symbol: str = ""
    #: for a listing symbol: the listed IP or domain, to look up or ask delisting for
    listed_key: str = ""
    view: MessageView | None = field(default=None, repr=False, compare=False)

    @property
    def flagged(self) -> bool:
        """Over the tag threshold (``X-Spam-Flag: YES``)."""
        return self.scored and (
            self.score >= self.required or self.action in ("tag", "quarantine", "reject")
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (``spamwarden check --json``)."""
        return {
            "action": self.action,
            "score": self.score,
            "required": self.required,
            "scored": self.scored,
            "reason": self.reason,
            "main_symbol": self.main_symbol,
            "listed_key": self.listed_key,
            "symbols": [
                {"name": s.name, "points": s.points, "detail": s.detail,
                 **({"action": s.action} if s.action else {})}
                for s in self.symbols
            ],
            "auth": _auth_dict(self.auth),
            "unavailable": list(self.unavailable),
            "add_headers": [[n, v] for n, v in self.add_headers],
            "remove_headers": [[n, i] for n, i in self.remove_headers],
        }


def _auth_dict(auth: Any) -> dict[str, Any] | None:
    if auth is None:
        return None

    def obj(o: Any) -> dict[str, Any] | None:
        if o is None:
            return None
        fields = getattr(o, "__dataclass_fields__", None)
        names = list(fields) if fields else [n for n in dir(o) if not n.startswith("_")]
        out: dict[str, Any] = {}
        for n in names:
            v = getattr(o, n, None)
            if callable(v):
                continue
            out[n] = list(v) if isinstance(v, tuple) else v
        return out

    return {
        "spf": obj(getattr(auth, "spf", None)),
        "dkim": [obj(d) for d in (getattr(auth, "dkim", ()) or ())],
        "dmarc": obj(getattr(auth, "dmarc", None)),
    }


@dataclass(frozen=True)
class EnvelopeChecks:
    """Checks started at MAIL FROM, running while the client sends the message.

    Everything here depends only on the envelope (client IP, HELO, MAIL FROM), so
    its answer is the one the end of message would compute: SPF (RFC 7208 checks
    the envelope, not the content), the third-party DNSBLs of the client IP, and
    the DMARC policy record of the envelope domain fetched into the resolver's
    cache (the From domain is usually the same; its own lookup at the end of
    message then answers from the cache, within the record's TTL).

    :ivar client_ip: ``helo``, ``mail_from``: the envelope the checks ran for; a
        message whose envelope differs at the end of message does not use them.
    :ivar spf: the future :class:`~spamwarden.milter.auth.SpfResult`, or ``None``.
    :ivar dnsbl: the future third-party DNSBL symbols, or ``None``.
    """

    client_ip: str | None
    helo: str
    mail_from: str
    spf: Future[Any] | None = None
    dnsbl: Future[Any] | None = None

    def matches(self, env: Envelope) -> bool:
        """True when ``env`` is the envelope these checks ran for."""
        return (self.client_ip, self.helo, self.mail_from) == (
            env.client_ip, env.helo, env.mail_from)

    def cancel(self) -> None:
        """Drop the checks (RSET, abort, a new MAIL FROM): jobs not yet started never run."""
        for job in (self.spf, self.dnsbl):
            if job is not None:
                job.cancel()


def _default_authenticator() -> Authenticator | None:
    try:
        from . import auth as auth_module
    except ImportError:
        return None
    fn: Authenticator | None = getattr(auth_module, "authenticate", None)
    return fn


_AUTO: Any = object()


class Scanner:
    """The whole pipeline for one configuration; thread-safe, no per-message state.

    :param cfg: the configuration (``[policy]``, ``[milter]``, ``[dns]``, ``[rbl]``).
    :param resolver: every DNS lookup goes through it.
    :param authenticate: SPF/DKIM/DMARC; default ``spamwarden.milter.auth.authenticate``;
        ``None``: authentication unavailable (said in the headers).
    :param classifier: a ``ContentClassifier`` or ``None`` (unavailable).
    :param listings: a ``ListingLookup`` or ``None`` (unavailable).
    :param policies: ``MessagePolicy`` implementations, consulted in order.
    :param unavailable: why a component is ``None``, e.g. ``{"classifier": "no model"}``.
    :param clock: monotonic seconds, injectable for tests.
    :param lookup_threads: threads running listing and DNSBL lookups alongside
        authentication, and the checks started at MAIL FROM
        (:meth:`start_envelope_checks`); 0 runs lookups in the calling thread and
        starts nothing at MAIL FROM.  Threads start on first use.
    """

    def __init__(
        self,
        cfg: Config,
        *,
        resolver: Resolver,
        authenticate: Authenticator | None = _AUTO,
        classifier: _Classifier | None = None,
        listings: _Listings | None = None,
        policies: Sequence[MessagePolicy] = (),
        unavailable: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        lookup_threads: int = 32,
    ) -> None:
        self.cfg = cfg
        self.resolver = resolver
        self.authenticate = _default_authenticator() if authenticate is _AUTO else authenticate
        # SPF can run at MAIL FROM only with our own authenticator (it takes the result back).
        self._check_spf: Callable[..., Any] | None = None
        if self.authenticate is not None:
            from . import auth as auth_module

            if self.authenticate is getattr(auth_module, "authenticate", None):
                self._check_spf = auth_module.check_spf
        self.classifier = classifier
        self.listings = listings
        self.policies = tuple(policies)
        self.points = SymbolPoints(cfg.policy.symbols)
        self.authserv_id = cfg.milter.effective_authserv_id()
        self.limits = ParseLimits(
            max_bytes=cfg.milter.max_message_bytes,
            max_header_bytes=cfg.milter.max_header_bytes,
        )
        self._clock = clock
        # Lookups that overlap authentication; threads start on first use.
        self._pool = (
            ThreadPoolExecutor(max_workers=lookup_threads, thread_name_prefix="spamwarden-lookup")
            if lookup_threads > 0 and (listings is not None or cfg.rbl.third_party_zones
                                       or self._check_spf is not None)
            else None
        )
        # Only a caching resolver gains from fetching the DMARC record early.
        self._prefetch_dmarc = getattr(getattr(resolver, "_resolver", None), "cache", None) is not None
        self._lookup_budget = max(2.0, 4 * cfg.redis.timeout, 2 * cfg.dns.timeout)
        self._trusted_networks = tuple(
            ipaddress.ip_network(n, strict=False) for n in cfg.milter.trusted_networks
        )
        self._intake_addresses = cfg.intake.addresses()
        self._spf_memo: dict[tuple[str, str, str], tuple[float, Any]] = {}
        notes = dict(unavailable or {})
        if self.authenticate is None:
            notes.setdefault("auth", "not installed")
        if self.classifier is None:
            notes.setdefault("classifier", "not configured")
        if self.listings is None:
            notes.setdefault("listings", "not configured")
        self._static_unavailable = tuple(f"{k} ({v})" for k, v in sorted(notes.items()))

    def _site_counts(self) -> Any:
        """What the classifier learned of this site's mail (``None``: it does not say)."""
        from ..training.classifier import site_counts

        t = self.cfg.training
        return site_counts(self.classifier, t.min_site_ham, t.min_site_spam)

    @property
    def unavailable_checks(self) -> tuple[str, ...]:
        """Checks missing for every message, with why: ``("classifier (no model)",)``."""
        return self._static_unavailable

    def close(self) -> None:
        """Stop the lookup threads (after the last scan)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # -- RCPT time ---------------------------------------------------------------------------

    def check_rcpt(self, env: Envelope, rcpt: str) -> RcptDecision | None:
        """Ask every policy about one recipient; the first refusal wins.

        :returns: ``None`` to let ``rcpt`` through, or the refusal for just
            this recipient (``550 5.7.1`` or ``450 4.7.1`` when temporary).
        """
        for policy in self.policies:
            decision = policy.check_rcpt(env, rcpt)
            if decision is not None:
                return decision
        return None

    # -- MAIL FROM time ---------------------------------------------------------------------

    def start_envelope_checks(self, env: Envelope) -> EnvelopeChecks | None:
        """Start what depends only on the envelope, on the lookup threads, so its DNS
        waits overlap the DATA phase instead of adding to the end of message.

        :param env: the envelope after MAIL FROM (client IP, HELO, sender).
        :returns: the running checks for :meth:`scan`, or ``None`` when nothing runs
            early (no lookup threads, no client IP); ``scan`` then does it all.
        """
        if self._pool is None or not env.client_ip:
            return None
        ip, helo, mail_from = env.client_ip, env.helo, env.mail_from
        spf: Future[Any] | None = None
        dnsbl = None
        if self._check_spf is not None:
            spf = self._spf_from_memory(ip, helo, mail_from)
            if spf is None:
                spf = self._pool.submit(self._early_spf, ip, helo, mail_from)
        if self.cfg.rbl.third_party_zones:
            dnsbl = self._pool.submit(self._third_party_symbols, ip)
        return EnvelopeChecks(ip, helo, mail_from, spf=spf, dnsbl=dnsbl)

    #: SPF results remembered (per client IP, HELO and sender) at most
    SPF_MEMO_SIZE = 10_000

    def _spf_from_memory(self, ip: str, helo: str, mail_from: str) -> Future[Any] | None:
        """SPF evaluated here and now when every answer it needs is in the resolver's
        memory (a sender seen within its records' TTLs): no thread hand-off for the
        common case.  ``None`` when one is missing; the lookup threads then do it.

        The result is remembered for the same client IP, HELO and sender until the
        first of the answers it was computed from expires: evaluating again could not
        give anything else before then.  The DMARC record is fetched on a lookup thread
        only when it is not kept."""
        kept = getattr(self.resolver, "kept", None)
        if kept is None or self._check_spf is None:
            return None
        now = time.monotonic()
        key = (ip, helo, mail_from)
        memo = self._spf_memo.get(key)
        if memo is not None and memo[0] > now:
            result = memo[1]
        else:
            memory = _MemoryOnly(kept, until=now + 3600.0)
            try:
                result = self._check_spf(memory, ip=ip, mail_from=mail_from, helo=helo,
                                         timeout=self.cfg.dns.timeout)
            except _NotKept:
                return None
            if memory.missed:  # pyspf swallowed the miss somewhere (explanations, ptr)
                return None
            if len(self._spf_memo) >= self.SPF_MEMO_SIZE:
                self._spf_memo = {}
            self._spf_memo[key] = (memory.until, result)
        if self._prefetch_dmarc and mail_from and self._pool is not None:
            domain = domain_of_address(mail_from)
            if domain and kept(f"_dmarc.{domain.lower().rstrip('.')}", "TXT") is None:
                self._pool.submit(self._warm_dmarc, domain)
        done: Future[Any] = Future()
        done.set_result(result)
        return done

    def _early_spf(self, ip: str, helo: str, mail_from: str) -> Any:
        """SPF at MAIL FROM (the same call ``authenticate`` makes), then the DMARC
        record of the envelope domain into the resolver's cache."""
        assert self._check_spf is not None
        result = self._check_spf(self.resolver, ip=ip, mail_from=mail_from, helo=helo,
                                 timeout=self.cfg.dns.timeout)
        if self._prefetch_dmarc and mail_from:
            self._warm_dmarc(domain_of_address(mail_from))
        return result

    def _warm_dmarc(self, domain: str | None) -> None:
        """Fetch ``_dmarc.<domain>`` (then the organizational domain's, as RFC 7489
        §6.6.3 would) so the end of message finds it in the resolver's cache."""
        from ..mail import normalize_domain

        name = normalize_domain(domain) if domain else None
        if not name:
            return
        try:
            answer = self.resolver.query(f"_dmarc.{name}", "TXT", timeout=self.cfg.dns.timeout)
            org = registrable_domain(name)
            if answer.status in ("nxdomain", "nodata") and org and org != name:
                self.resolver.query(f"_dmarc.{org}", "TXT", timeout=self.cfg.dns.timeout)
        except Exception as exc:  # noqa: BLE001 - a cache warm-up never fails a message
            log.debug("DMARC prefetch for %s failed: %s", name, exc)

    # -- end of message ---------------------------------------------------------------------

    def parse(self, raw: bytes) -> MessageView:
        """The bounded view of ``raw`` with this configuration's limits."""
        return parse_message(raw, limits=self.limits)

    def scan(
        self,
        raw: bytes,
        env: Envelope,
        *,
        view: MessageView | None = None,
        incoming_headers: Sequence[tuple[str, str]] | None = None,
        early: EnvelopeChecks | None = None,
    ) -> Verdict:
        """Score one message.

        :param raw: header section + blank line + body, CRLF or LF line ends.
        :param env: what the SMTP dialogue said (client IP, HELO, MAIL FROM, RCPTs).
        :param view: the parsed view when the caller already has it.
        :param incoming_headers: every header as received (for forged-header
            removal); default the view's headers.
        :param early: checks started at MAIL FROM (:meth:`start_envelope_checks`)
            for this envelope; used when they finished within the lookup budget
            and the envelope is unchanged, else done here.
        :returns: the verdict with symbols, action and header edits.
        :raises SpamwardenError: only for errors of our own making; store and DNS
            trouble become symbols, never exceptions.
        """
        started = self._clock()
        if view is None:
            view = self.parse(raw)
        headers = view.headers if incoming_headers is None else incoming_headers

        # The listing lookup (one Redis HMGET) is sent now and read after authentication
        # and the classifier; third-party DNSBLs (DNS) run on the lookup pool, started
        # at MAIL FROM when possible: the waits overlap the work instead of adding up.
        listing_keys = self._listing_keys(view, env) if self.listings is not None else None
        listing_job = self._start_lookup(listing_keys) if listing_keys else None
        try:
            return self._scan(raw, env, view, headers, early, listing_keys, listing_job,
                              started=started)
        finally:
            if isinstance(listing_job, _Pending):
                listing_job.discard()  # no-op once the answer was read

    def _scan(
        self,
        raw: bytes,
        env: Envelope,
        view: MessageView,
        headers: Sequence[tuple[str, str]],
        early: EnvelopeChecks | None,
        listing_keys: list[str] | None,
        listing_job: Any,
        *,
        started: float,
    ) -> Verdict:
        """:meth:`scan` once the listing lookup is under way."""
        unavailable = list(self._static_unavailable)
        symbols: list[Symbol] = []
        if early is not None and not early.matches(env):
            early.cancel()
            early = None
        dnsbl_job = early.dnsbl if early is not None else None
        if dnsbl_job is None and self.cfg.rbl.third_party_zones and env.client_ip:
            dnsbl_job = self._submit(self._third_party_symbols, env.client_ip)

        auth = None
        if self.authenticate is not None:
            extra: dict[str, Any] = {}
            if early is not None and early.spf is not None:
                spf = self._result(early.spf, default=None)
                if spf is not None:
                    extra["spf_result"] = spf  # else authenticate evaluates SPF itself
            auth = self.authenticate(
                raw,
                view,
                self.resolver,
                client_ip=env.client_ip,
                helo=env.helo,
                mail_from=env.mail_from,
                max_signatures=self.cfg.milter.max_dkim_signatures,
                timeout=self.cfg.dns.timeout,
                **extra,
            )
            symbols.extend(
                auth_symbols(auth, self.points, reject_spf_fail=self.cfg.milter.reject_spf_fail)
            )

        if self.classifier is not None:
            try:
                probability = float(self.classifier.spam_probability(view))
            except SpamwardenError as exc:
                unavailable.append(f"classifier ({exc})")
            except Exception as exc:  # noqa: BLE001 - an optional signal must not stop mail
                # A model bug would otherwise tempfail every message; score without it,
                # say so in the headers, and log it loudly.
                event(log, "classifier_error", logging.ERROR, queue_id=env.queue_id or None,
                      error=f"{type(exc).__name__}: {exc}")
                unavailable.append(f"classifier (error: {type(exc).__name__})")
            else:
                symbols.extend(bayes_symbols(
                    probability, self.points, site=self._site_counts(),
                    tag_threshold=self.cfg.policy.tag_threshold))

        if listing_keys is not None:
            outcomes = self._lookup_result(listing_job)
            symbols.extend(self._listing_symbols(view, env, auth, outcomes))
        if dnsbl_job is not None:
            symbols.extend(self._result(dnsbl_job, default=[]))

        for policy in self.policies:
            symbols.extend(self.points.apply(s) for s in policy.check_message(view, env, auth))

        trusted = self.trusted_reason(env)
        if trusted:
            symbols.append(self.points.make("ALL_TRUSTED", trusted))
        if self.only_intake_recipients(env):
            symbols.append(self.points.make("TO_REPORT_ADDRESS", "every recipient is an "
                                            "[intake] address"))
        return self._verdict(
            symbols, auth, env, headers, unavailable, view=view, started=started
        )

    def not_scored(
        self, env: Envelope, incoming_headers: Sequence[tuple[str, str]], note: str
    ) -> Verdict:
        """The verdict for a message that is not scored (over the size limits):
        accepted, forged headers removed, one ``X-Spam-Note`` saying why."""
        from .headers import header_safe

        return Verdict(
            action="accept",
            score=0.0,
            required=self.cfg.policy.tag_threshold,
            symbols=(),
            reason=note,
            add_headers=(("X-Spam-Note", header_safe(f"not scored: {note}")),),
            remove_headers=tuple(forged_header_removals(incoming_headers, self.authserv_id)),
            scored=False,
        )

    def delivered(self, verdict: Verdict, env: Envelope) -> None:
        """The message was accepted for ``env.rcpts``: count volume, tell the policies.

        Best effort: listing stores and policies do not raise for store trouble.
        """
        self.delivered_many([(verdict, env)])

    def delivered_many(self, items: Sequence[tuple[Verdict, Envelope]]) -> None:
        """:meth:`delivered` for several messages; their volume goes to the listing
        store in one round trip when it can take several (``record_volume_many``)."""
        record_many = getattr(self.listings, "record_volume_many", None)
        volume: list[list[str]] = []
        for verdict, env in items:
            view = verdict.view
            if view is None:
                continue
            try:
                if self.listings is not None:
                    keys = self._source_keys(view, env, verdict.auth)
                    if keys and record_many is not None:
                        volume.append(keys)
                    elif keys:
                        self.listings.record_volume(keys)
                for policy in self.policies:
                    policy.delivered(view, env, verdict.auth)
            except Exception as exc:  # noqa: BLE001 - one message's count must not stop the rest
                event(log, "delivery_count_failed", logging.ERROR, queue_id=env.queue_id or None,
                      error=f"{type(exc).__name__}: {exc}")
        if volume and record_many is not None:
            record_many(volume)

    def trusted_reason(self, env: Envelope) -> str:
        """Why the sender is trusted (SMTP AUTH, ``milter.trusted_networks``), or ``""``.

        Mail from a trusted sender is scored and tagged like any other, but never
        refused, held or tempfailed: locally submitted mail would otherwise bounce
        on its own domain's SPF.
        """
        if env.authenticated:
            return "SMTP AUTH"
        if env.client_ip and self._trusted_networks:
            try:
                ip = ipaddress.ip_address(env.client_ip)
            except ValueError:
                return ""
            for net in self._trusted_networks:
                if ip.version == net.version and ip in net:
                    return f"client in {net}"
        return ""

    def only_intake_recipients(self, env: Envelope) -> bool:
        """Every recipient is a complaint-intake address (``intake.report_address``,
        ``ham_address``, ``optout_address``; :meth:`IntakeConfig.addresses`).

        Such mail is forwarded spam, there to be reported: scored and tagged like any
        other, but never refused, held or tempfailed.  One other recipient and it is
        treated like any other message.
        """
        if not env.rcpts or not self._intake_addresses:
            return False
        return all(r.strip().strip("<>").strip().lower() in self._intake_addresses
                   for r in env.rcpts)

    # -- pieces ------------------------------------------------------------------------------

    def _sender_domains(self, view: MessageView, env: Envelope, auth: Any) -> list[str]:
        found: dict[str, None] = {}
        candidates: list[str | None] = [
            domain_of_address(env.mail_from) if env.mail_from else None,
            view.from_domain,
        ]
        for sig in tuple(getattr(auth, "dkim", ()) or ()) if auth is not None else ():
            if str(getattr(sig, "result", "")).lower() == "pass":
                candidates.append(getattr(sig, "domain", None))
        for d in candidates:
            reg = registrable_domain(d) if d else None
            if reg:
                found[reg] = None
        return list(found)

    def _source_keys(self, view: MessageView, env: Envelope, auth: Any) -> list[str]:
        keys = [env.client_ip] if env.client_ip else []
        return keys + self._sender_domains(view, env, auth)

    def _submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn`` on the lookup pool (in this thread when there is none)."""
        if self._pool is None:
            done: Future[Any] = Future()
            try:
                done.set_result(fn(*args))
            except Exception as exc:  # noqa: BLE001 - re-raised by _result
                done.set_exception(exc)
            return done
        return self._pool.submit(fn, *args)

    def _result(self, job: Future[Any] | None, *, default: Any) -> Any:
        """The job's result; ``default`` when it outlived its budget (the lookups
        behind it have their own timeouts, so this only guards against a stuck store)."""
        if job is None:
            return default
        try:
            return job.result(timeout=self._lookup_budget)
        except FutureTimeout:
            event(log, "lookup_timeout", logging.WARNING, budget=self._lookup_budget)
            return default
        except Exception as exc:  # noqa: BLE001 - lookups promise not to raise; if one does,
            # its answer is "failed" (never listed, never clean), not a tempfail of the mail.
            event(log, "lookup_error", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            return default

    def _listing_keys(self, view: MessageView, env: Envelope) -> list[str]:
        """Every key the listing lookups may need, known before authentication:
        client IP, envelope and From registrable domains, the ``d=`` of every
        DKIM signature (only verified ones count later) and URL domains."""
        keys: dict[str, None] = {}
        if env.client_ip:
            keys[env.client_ip] = None
        for d in self._sender_domains(view, env, None):
            keys[d] = None
        for d in view.dkim_domains[: self.cfg.milter.max_dkim_signatures]:
            reg = registrable_domain(d)
            if reg:
                keys[reg] = None
        for d in view.url_domains[:MAX_URL_DOMAINS]:
            keys[d] = None
        return list(keys)

    def _start_lookup(self, keys: Sequence[str]) -> Any:
        """Send the listing lookup of ``keys`` (``begin_lookup`` of a listing store
        that has it), else run it on the lookup pool; read by :meth:`_lookup_result`."""
        assert self.listings is not None
        begin = getattr(self.listings, "begin_lookup", None)
        if begin is None:
            return self._submit(self._lookup, keys)
        try:
            return _Pending(begin(keys))
        except Exception as exc:  # noqa: BLE001 - it promises not to raise; see _lookup
            event(log, "lookup_error", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            return None

    def _lookup_result(self, job: Any) -> Mapping[str, Any]:
        """The outcomes of :meth:`_start_lookup`'s job; ``{}`` (every key failed) when
        it raised or outlived its budget."""
        if not isinstance(job, _Pending):
            outcomes: Mapping[str, Any] = self._result(job, default={})
            return outcomes
        try:
            with timed("listing"):
                outcomes = job.pending.result()
            return outcomes
        except Exception as exc:  # noqa: BLE001 - see _lookup
            event(log, "lookup_error", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            return {}

    def _lookup(self, keys: Sequence[str]) -> Mapping[str, Any]:
        """Outcomes of ``keys``; ``{}`` (every key failed) if the store raises, which
        it promises not to: a failed lookup is never listed and never clean."""
        assert self.listings is not None
        try:
            with timed("listing"):
                return self.listings.lookup_many(keys)
        except Exception as exc:  # noqa: BLE001 - see above
            event(log, "lookup_error", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            return {}

    def _listing_symbols(
        self, view: MessageView, env: Envelope, auth: Any, outcomes: Mapping[str, Any]
    ) -> list[Symbol]:
        """``RBL_OWN`` / ``DBL_OWN`` / ``URIBL_OWN`` and ``*_LOOKUP_FAILED`` from the
        outcomes; a DKIM ``d=`` counts only when its signature verified."""
        assert self.listings is not None
        senders = self._sender_domains(view, env, auth)
        missing = [d for d in senders if d not in outcomes]
        if missing:  # a verified d= the header scan did not see: look it up now
            outcomes = {**outcomes, **self._lookup(missing)}
        groups: list[tuple[str, list[str]]] = []
        if env.client_ip:
            groups.append(("RBL", [env.client_ip]))
        groups.append(("DBL", senders))
        sender_set = set(senders)
        groups.append(
            ("URIBL", [d for d in view.url_domains[:MAX_URL_DOMAINS] if d not in sender_set])
        )
        out: list[Symbol] = []
        for prefix, ks in groups:
            listed = [o for k in ks if (o := outcomes.get(k)) is not None and o.status == "listed"]
            failed = [
                k for k in ks
                if (o := outcomes.get(k)) is None or o.status not in ("listed", "not_listed")
            ]
            if listed:
                detail = ", ".join(
                    f"{o.key}" + (f" ({o.reason})" if getattr(o, "reason", "") else "")
                    for o in listed[:5]
                )
                out.append(self.points.make(f"{prefix}_OWN", detail))
            if failed:
                out.append(self.points.make(f"{prefix}_LOOKUP_FAILED", ", ".join(failed[:5])))
        return out

    def _third_party_symbols(self, client_ip: str) -> list[Symbol]:
        try:
            ip = ipaddress.ip_address(client_ip)
        except ValueError:
            return []
        if ip.is_loopback or ip.is_link_local or ip.is_unspecified or any(
            ip in net for net in _INTERNAL_NETWORKS if net.version == ip.version
        ):
            return []  # an internal hop: third-party lists know nothing of it
        if ip.version == 4:
            rev = ".".join(reversed(str(ip).split(".")))
        else:
            rev = ".".join(reversed(ip.exploded.replace(":", "")))
        listed: list[str] = []
        failed: list[str] = []
        for zone in self.cfg.rbl.third_party_zones[:10]:
            with timed("dnsbl"):
                answer = self.resolver.query(f"{rev}.{zone.strip('.')}", "A",
                                             timeout=self.cfg.dns.timeout)
            if answer.failed:
                failed.append(zone)
            elif answer.found:
                codes = [str(r) for r in answer.records]
                # RFC 5782 §2.1: answers are 127.0.0.0/8; anything else is a
                # resolver's doing (wildcards, blocked queries), not a listing.
                if any(c.startswith("127.") for c in codes):
                    listed.append(f"{zone} {','.join(codes[:3])}")
                else:
                    event(log, "dnsbl_unexpected_answer", logging.WARNING,
                          zone=zone, answer=",".join(codes[:3]))
        out: list[Symbol] = []
        if listed:
            out.append(self.points.make("RBL_THIRD_PARTY", "; ".join(listed)))
        if failed:
            out.append(self.points.make("RBL_THIRD_PARTY_LOOKUP_FAILED", ",".join(failed)))
        return out

    def _verdict(
        self,
        symbols: list[Symbol],
        auth: Any,
        env: Envelope,
        headers: Sequence[tuple[str, str]],
        unavailable: list[str],
        *,
        view: MessageView,
        started: float,
    ) -> Verdict:
        decision = decide(symbols, self.cfg.policy, self.cfg.milter)
        never_refused = {s.name for s in symbols} & {"ALL_TRUSTED", "TO_REPORT_ADDRESS"}
        if never_refused and decision.action not in ("accept", "tag"):
            why = "trusted sender" if "ALL_TRUSTED" in never_refused else "report address"
            decision = dataclasses.replace(
                decision, action="tag",
                reason=f"{why}, tagged instead of {decision.action}: {decision.reason}")
        required = self.cfg.policy.tag_threshold
        flagged = decision.score >= required or decision.action in ("tag", "quarantine", "reject")
        auth_note = next((u for u in unavailable if u.startswith("auth ")), "")
        add: list[tuple[str, str]] = [
            (AUTH_RESULTS, render_authentication_results(
                self.authserv_id, auth, env,
                unavailable=("authentication unavailable: " + auth_note) if auth_note else "",
            ))
        ]
        add.extend(spam_headers(
            score=decision.score,
            required=required,
            flagged=flagged,
            symbols=symbols,
            reason=decision.reason,
            action=decision.action,
            unavailable=unavailable,
            version=VERSION_TAG,
        ))
        return Verdict(
            action=decision.action,
            score=decision.score,
            required=required,
            symbols=tuple(symbols),
            reason=decision.reason,
            add_headers=tuple(add),
            remove_headers=tuple(forged_header_removals(headers, self.authserv_id)),
            unavailable=tuple(unavailable),
            auth=auth,
            elapsed_ms=round((self._clock() - started) * 1000, 2),
            main_symbol=decision.main.name if decision.main else "",
            listed_key=(
                decision.main.detail.split(" ", 1)[0].rstrip(",")
                if decision.main and decision.main.name.endswith("_OWN") else ""
            ),
            view=view,
        )


class _NotKept(BaseException):
    """A question the resolver's memory cannot answer (:class:`_MemoryOnly`).

    A BaseException so that no ``except Exception`` in pyspf turns it into a result."""


class _MemoryOnly:
    """A :class:`~spamwarden.resolver.Resolver` answering from another's memory only
    (its ``kept``); :attr:`until` ends up the first expiry of the answers given."""

    def __init__(self, kept: Callable[[str, str], Any], *, until: float) -> None:
        self._kept = kept
        self.missed = False
        self.until = until

    def query(self, name: str, rdtype: str, *, timeout: float | None = None) -> Any:
        found = self._kept(name, rdtype)
        if found is None:
            self.missed = True
            raise _NotKept(name)
        answer, expires = found
        self.until = min(self.until, expires)
        return answer


@dataclass
class _Pending:
    """A listing lookup sent by the store's ``begin_lookup``, answer not yet read."""

    pending: Any

    def discard(self) -> None:
        try:
            self.pending.discard()
        except Exception as exc:  # noqa: BLE001 - only frees a connection
            log.debug("discarding a listing lookup failed: %s", exc)


class DeliveryRecorder:
    """Runs :meth:`Scanner.delivered` off the SMTP path, in one background thread.

    Counting volume and ad sends is the "after" stage: the client need not wait for
    it.  The thread takes what arrived within ``batch_window`` seconds of the first
    waiting message (at most ``max_batch``) and counts it with one
    :meth:`Scanner.delivered_many`: under load, one store round trip and one thread
    wake-up serve many messages.  The queue is bounded; when it is full (the store
    far slower than the mail) the count is dropped, logged and counted in
    :attr:`dropped`, never the mail.

    :param scanner: whose ``delivered_many`` to call.
    :param max_pending: messages waiting at most.
    :param batch_window: seconds a count may wait for others to share its round trip.
    :param max_batch: messages counted together at most.
    """

    def __init__(self, scanner: Scanner, *, max_pending: int = 10_000,
                 batch_window: float = 0.05, max_batch: int = 256) -> None:
        self.scanner = scanner
        self.batch_window = batch_window
        self.max_batch = max_batch
        self.dropped = 0
        self._queue: queue.Queue[tuple[Verdict, Envelope] | None] = queue.Queue(max_pending)
        self._last_drop_log = 0.0
        self._thread = threading.Thread(
            target=self._run, name="spamwarden-delivered", daemon=True
        )
        self._thread.start()

    def submit(self, verdict: Verdict, env: Envelope) -> bool:
        """Queue one accepted message; ``False`` when the queue is full (dropped)."""
        item = (verdict, dataclasses.replace(env, rcpts=list(env.rcpts)))
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log > 10:
                self._last_drop_log = now
                event(log, "delivery_count_dropped", logging.WARNING, dropped=self.dropped,
                      queue_id=env.queue_id or None)
            return False

    def _run(self) -> None:
        while True:
            batch, stop = self._take()
            try:
                if batch:
                    self.scanner.delivered_many(batch)
            except Exception as exc:  # noqa: BLE001 - a count must not kill the thread
                event(log, "delivery_count_failed", logging.ERROR, messages=len(batch),
                      error=f"{type(exc).__name__}: {exc}")
            finally:
                for _ in range(len(batch) + stop):
                    self._queue.task_done()
            if stop:
                return

    def _take(self) -> tuple[list[tuple[Verdict, Envelope]], bool]:
        """The next batch, and whether the stop mark came with it."""
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        if self.batch_window > 0:
            time.sleep(self.batch_window)  # one wake-up for all that arrive meanwhile
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def flush(self) -> None:
        """Wait until every queued message was counted (tests, shutdown)."""
        self._queue.join()

    def close(self, *, timeout: float = 5.0) -> None:
        """Count what is queued, then stop the thread (at most ``timeout`` seconds)."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
