"""The scoring pipeline: one pure implementation used by the milter and ``spamwarden check``.

:class:`Scanner` takes the raw message (headers and body as Postfix delivers
them), its :class:`~spamwarden.mail.MessageView` and the
:class:`~spamwarden.milter.interfaces.Envelope`, and runs every registered check
(:mod:`spamwarden.milter.checks`, found by :func:`~spamwarden.milter.registry.discover`)
in their order: authentication (SPF, DKIM per signature, DMARC), the content
classifier (``BAYES_xx``), the own listings (``RBL_OWN``, ``DBL_OWN``,
``URIBL_OWN``, ``*_LOOKUP_FAILED``), third-party DNSBLs, the message policies
(advertising consent) and trust (``ALL_TRUSTED``, ``TO_REPORT_ADDRESS``); then it
sums the symbols into a :class:`Verdict` with the header edits.

Waits overlap: checks that need only the envelope start at MAIL FROM
(:meth:`Scanner.start_envelope_checks`), and at end of message every check's
``begin`` sends its lookups before any check's ``at_message`` reads them.

A scanner holds no per-message state and is never mutated after
construction: libmilter's threads share one instance.  A missing component
(``None``) is listed in ``Verdict.unavailable`` and in the headers, never
treated as a clean result.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol

from .. import __version__
from ..config import Config
from ..i18n import smtp_text
from ..mail import MessageView, ParseLimits, parse_message
from ..resolver import Resolver
from ..settings.model import Thresholds
from .delivery import DeliveryRecorder
from .headers import (
    AUTH_RESULTS,
    forged_header_removals,
    render_authentication_results,
    spam_headers,
)
from .interfaces import (
    ContentClassifier,
    Envelope,
    MessagePolicy,
    RcptDecision,
    RecordsDeliveries,
    SettingsSource,
    Symbol,
)
from .policy import decide
from .registry import (
    Check,
    CheckBase,
    CheckDecl,
    Components,
    Delivered,
    LookupPool,
    MessageContext,
    Phase,
    SymbolPoints,
    builtin_checks,
    known_symbols,
)
from .symbols import check_overrides
from .verdict import Authenticator, EnvelopeChecks, Verdict

if TYPE_CHECKING:
    from ..reputation.lookup import ListingLookup
    from .auth import ArcSealer, AuthResults
    from .checks.auth import AuthCheck

__all__ = [
    "VERSION_TAG", "Authenticator", "DeliveryRecorder", "EnvelopeChecks", "Scanner", "Verdict",
]

log = logging.getLogger("spamwarden.milter")

VERSION_TAG = f"spamwarden-{__version__}"


class _History(Protocol):
    """Records every verdict (the message history, ``reputation.history.HistoryRecorder``)."""

    def record(self, items: Sequence[tuple[Verdict, Envelope]]) -> int: ...


def _default_authenticator() -> tuple[Authenticator | None, Callable[..., Any] | None]:
    """``auth.authenticate`` and ``auth.check_spf``, or ``(None, None)`` when the
    authentication libraries are not installed."""
    try:
        from . import auth as auth_module
    except ImportError:
        return None, None
    return auth_module.authenticate, auth_module.check_spf


def _sealer(cfg: Config, authserv_id: str) -> ArcSealer | None:
    """The :class:`~spamwarden.milter.auth.ArcSealer` of ``[arc]``, or ``None`` when
    sealing is off.

    :raises ConfigError: ``arc.key`` cannot be read or parsed.
    """
    if not cfg.arc.sign:
        return None
    from .auth import ArcSealer, load_signing_key

    return ArcSealer(selector=cfg.arc.selector, domain=cfg.arc.domain,
                     key=load_signing_key(cfg.arc.key), authserv_id=authserv_id)


def _overrides(cls: type, name: str) -> bool:
    """The check class has its own ``name`` method (not :class:`CheckBase`'s no-op)."""
    return getattr(cls, name) is not getattr(CheckBase, name, None)


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
    :param deliveries: the delivery ledger (``reputation.deliveries.LedgerRecorder``):
        what a later complaint must match; recorded by the ``ledger`` check.
    :param unavailable: why a component is ``None``, e.g. ``{"classifier": "no model"}``.
    :param clock: monotonic seconds, injectable for tests.
    :param lookup_threads: threads running listing and DNSBL lookups alongside
        authentication, and the checks started at MAIL FROM
        (:meth:`start_envelope_checks`); 0 runs lookups in the calling thread and
        starts nothing at MAIL FROM.  Threads start on first use.
    :param checks: the check declarations; default every module of
        :mod:`spamwarden.milter.checks`.
    :param history: the message history (``reputation.history.HistoryRecorder``): every
        verdict, refused ones included, recorded after the reply (:meth:`record_history`).
    :param settings: the operator's recipient settings and sender lists
        (``settings.store.SettingsCache``), or ``None``: ``[policy]`` for everyone.
    :param spf: SPF's evaluation (:func:`spamwarden.milter.auth.check_spf`'s
        signature), run at MAIL FROM and when a policy asks at RCPT; its answer is given
        to ``authenticate`` as ``spf_result``.  Default: ours with our own authenticator,
        none with another.
    :raises ConfigError: ``[policy.symbols]`` names a symbol no check declares.
    """

    def __init__(
        self,
        cfg: Config,
        *,
        resolver: Resolver,
        authenticate: Authenticator | None = _AUTO,
        classifier: ContentClassifier | None = None,
        listings: ListingLookup | None = None,
        policies: Sequence[MessagePolicy] = (),
        unavailable: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        lookup_threads: int = 32,
        checks: Sequence[CheckDecl] | None = None,
        deliveries: RecordsDeliveries | None = None,
        history: _History | None = None,
        settings: SettingsSource | None = None,
        spf: Callable[..., Any] | None = _AUTO,
    ) -> None:
        self.cfg = cfg
        #: per-recipient thresholds and sender lists, or ``None``
        self.settings = settings
        p = cfg.policy
        self._base_thresholds = Thresholds(p.tag_threshold, p.quarantine_threshold,
                                           p.reject_threshold)
        self._delimiters = cfg.intake.recipient_delimiter
        self.deliveries = deliveries
        # the message history (reputation.history.HistoryRecorder): every verdict, for operators
        self.history = history
        self.resolver = resolver
        ours, check_spf = _default_authenticator()
        self.authenticate: Authenticator | None = ours if authenticate is _AUTO else authenticate
        # SPF can run at MAIL FROM only with our own authenticator (it takes the result back).
        if self.authenticate is None or self.authenticate is not ours:
            check_spf = None
        if spf is not _AUTO:
            check_spf = spf
        self.classifier = classifier
        self.listings = listings
        self.policies = tuple(policies)
        decls = tuple(builtin_checks() if checks is None else checks)
        specs = known_symbols(cfg, decls)
        check_overrides(cfg.policy.symbols, (s.name for s in specs))
        self.points = SymbolPoints(cfg.policy.symbols,
                                   defaults={s.name: s.points for s in specs})
        self.authserv_id = cfg.milter.effective_authserv_id()
        #: seals what we let through (``[arc] sign``), or ``None``
        self.sealer = _sealer(cfg, self.authserv_id)
        self.limits = ParseLimits(
            max_bytes=cfg.milter.max_message_bytes,
            max_header_bytes=cfg.milter.max_header_bytes,
        )
        self._clock = clock
        # Lookups that overlap authentication; threads start on first use.
        self.lookups = LookupPool(
            lookup_threads, budget=max(2.0, 4 * cfg.redis.timeout, 2 * cfg.dns.timeout))
        parts = Components(
            cfg=cfg, resolver=resolver, authenticate=self.authenticate, spf=check_spf,
            classifier=classifier, listings=listings, policies=self.policies,
            deliveries=deliveries, points=self.points, lookups=self.lookups,
            settings=settings,
        )
        built: list[tuple[CheckDecl, Check]] = []
        for decl in decls:
            check = decl.build(parts) if decl.build is not None else None
            if check is not None:
                built.append((decl, check))
        #: the built checks, in pipeline order, with their declarations
        self.checks: tuple[tuple[CheckDecl, Check], ...] = tuple(built)
        # One tuple of bound methods per phase: the per-message loops do nothing else.
        self._at_envelope = tuple(
            (d.name, c.at_envelope) for d, c in built
            if Phase.ENVELOPE in d.phases and _overrides(type(c), "at_envelope"))
        message = [(d, c) for d, c in built if Phase.MESSAGE in d.phases]
        self._begin = tuple(c.begin for d, c in message if _overrides(type(c), "begin"))
        self._at_message = tuple(c.at_message for d, c in message)
        self._finish = tuple(c.finish for d, c in message if _overrides(type(c), "finish"))
        self._delivered = tuple(
            c.delivered for d, c in built
            if Phase.DELIVERED in d.phases and _overrides(type(c), "delivered"))
        #: symbol name → why a message carrying it is never refused or held
        self.never_refuse: Mapping[str, str] = {
            s.name: s.never_refuse for s in specs if s.never_refuse}
        #: symbol name → the lookup kind its firing counts as failed (metrics)
        self.lookup_failures: Mapping[str, str] = {
            s.name: s.lookup_failure for s in specs if s.lookup_failure}
        from .checks.trust import TrustCheck

        self._trust = TrustCheck(cfg)  # for trusted_reason and only_intake_recipients
        notes = dict(unavailable or {})
        if self.authenticate is None:
            notes.setdefault("auth", "not installed")
        if self.classifier is None:
            notes.setdefault("classifier", "not configured")
        if self.listings is None:
            notes.setdefault("listings", "not configured")
        self._static_unavailable = tuple(f"{k} ({v})" for k, v in sorted(notes.items()))

    @property
    def unavailable_checks(self) -> tuple[str, ...]:
        """Checks missing for every message, with why: ``("classifier (no model)",)``."""
        return self._static_unavailable

    def close(self) -> None:
        """Stop the lookup threads (after the last scan)."""
        self.lookups.close()

    # -- RCPT time ---------------------------------------------------------------------------

    def check_rcpt(self, env: Envelope, rcpt: str, *,
                   sender_spf: Callable[[], Any] | None = None) -> RcptDecision | None:
        """Ask every policy about one recipient; the first refusal wins.

        :param sender_spf: SPF's answer for the envelope sender, asked by a policy
            only when it needs it (:meth:`sender_spf` behind a per-transaction memo).
        :returns: ``None`` to let ``rcpt`` through, or the refusal for just
            this recipient (``550 5.7.1`` or ``450 4.7.1`` when temporary).
        """
        for policy in self.policies:
            decision = policy.check_rcpt(env, rcpt, sender_spf=sender_spf)
            if decision is not None:
                return decision
        return self._split(env, rcpt)

    def _split(self, env: Envelope, rcpt: str) -> RcptDecision | None:
        """``452 4.5.3`` for a recipient whose thresholds differ from those of the
        transaction's first accepted recipient (RFC 5321 §4.5.3.1.10: the client sends
        it again in another transaction), so one verdict fits every recipient of a
        message.  ``None`` when they are the same or there are no settings, and for a
        trusted sender (SMTP AUTH, ``milter.trusted_networks``): a mail client submitting
        rarely retries a 452, and trusted mail is never refused or held anyway."""
        if self.settings is None or not env.rcpts or self.trusted_reason(env):
            return None
        snap = self.settings.current()
        if not snap.policies:
            return None
        first = snap.thresholds(env.rcpts[0], self._base_thresholds, delimiters=self._delimiters)
        this = snap.thresholds(rcpt, self._base_thresholds, delimiters=self._delimiters)
        if first == this:
            return None
        return RcptDecision(smtp_text(self.cfg.i18n.language, "milter.rcpt_split"), temporary=True,
                            code="452", status="4.5.3")

    def thresholds_for(self, env: Envelope) -> Thresholds:
        """The thresholds of this message: those of its first recipient (every recipient
        shares them, :meth:`check_rcpt` made sure), ``[policy]``'s without recipients or
        settings."""
        if self.settings is None or not env.rcpts:
            return self._base_thresholds
        return self.settings.current().thresholds(env.rcpts[0], self._base_thresholds,
                                                  delimiters=self._delimiters)

    # -- MAIL FROM time ---------------------------------------------------------------------

    def start_envelope_checks(self, env: Envelope) -> EnvelopeChecks | None:
        """Start what depends only on the envelope, on the lookup threads, so its DNS
        waits overlap the DATA phase instead of adding to the end of message.

        :param env: the envelope after MAIL FROM (client IP, HELO, sender).
        :returns: the running checks for :meth:`scan`, or ``None`` when nothing runs
            early (no lookup threads, no client IP, no check started anything);
            ``scan`` then does it all.
        """
        if not self.lookups.threaded or not env.client_ip:
            return None
        jobs: dict[str, Future[Any]] = {}
        for name, start in self._at_envelope:
            job = start(env)
            if job is not None:
                jobs[name] = job
        if not jobs:
            return None
        return EnvelopeChecks(env.client_ip, env.helo, env.mail_from, jobs)

    def sender_spf(self, env: Envelope, early: EnvelopeChecks | None
                   ) -> tuple[Any, EnvelopeChecks | None]:
        """SPF's answer for the envelope sender at RCPT time, and the checks of the
        envelope that now hold it.

        The answer of the check started at MAIL FROM when there is one (waited for
        within the lookup budget), else SPF evaluated here, once, and kept in the
        returned checks so that the end of message does not evaluate it again.

        :returns: ``(SpfResult or None, checks)``: ``None`` when SPF is not evaluated
            here (another authenticator, no client IP) or gave no answer in time.
        """
        if early is not None and early.matches(env) and early.spf is not None:
            return self.lookups.result(early.spf, default=None), early
        check = self._auth_check()
        result = check.spf_now(env) if check is not None else None
        if result is None:
            return None, early
        done: Future[Any] = Future()
        done.set_result(result)
        jobs = dict(early.jobs) if early is not None and early.matches(env) else {}
        jobs["auth"] = done
        return result, EnvelopeChecks(env.client_ip, env.helo, env.mail_from, jobs)

    def _auth_check(self) -> AuthCheck | None:
        """The built ``auth`` check (SPF, DKIM, DMARC), or ``None``."""
        from .checks.auth import AuthCheck

        return next((c for _, c in self.checks if isinstance(c, AuthCheck)), None)

    def _spf_from_memory(self, ip: str, helo: str, mail_from: str) -> Future[Any] | None:
        """The ``auth`` check's SPF from the resolver's memory (tests and benchmarks):
        a finished future, or ``None`` when an answer is not kept."""
        check = self._auth_check()
        return check.spf_from_memory(ip, helo, mail_from) if check is not None else None

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
        if early is not None and not early.matches(env):
            early.cancel()
            early = None
        msg = MessageContext(raw, env, view, early, list(self._static_unavailable))
        # Every check's lookups are sent first (the listing HMGET, the DNSBL queries when
        # they did not start at MAIL FROM) and read in at_message, after authentication
        # and the classifier: the waits overlap the work instead of adding up.
        try:
            for begin in self._begin:
                begin(msg)
            symbols: list[Symbol] = []
            for step in self._at_message:
                symbols.extend(step(msg))
            verdict = self._verdict(symbols, msg.auth, env, headers, msg.unavailable,
                                    view=view, started=started, raw=raw)
            msg.action = verdict.action
            return verdict
        finally:
            for finish in self._finish:
                finish(msg)

    def not_scored(
        self, env: Envelope, incoming_headers: Sequence[tuple[str, str]], note: str
    ) -> Verdict:
        """The verdict for a message that is not scored (over the size limits):
        accepted, forged headers removed, one ``X-Spam-Note`` saying why."""
        from .headers import header_safe

        return Verdict(
            action="accept",
            score=0.0,
            required=self.thresholds_for(env).tag_threshold,
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
        """:meth:`delivered` for several messages: each check's after-delivery phase
        gets the whole batch (volume goes to the listing store in one round trip when
        it can take several)."""
        batch = [Delivered(verdict.view, env, verdict) for verdict, env in items
                 if verdict.view is not None]
        if not batch:
            return
        for delivered in self._delivered:
            delivered(batch)

    def record_history(self, items: Sequence[tuple[Verdict, Envelope]]) -> None:
        """Record the verdicts of messages already answered (accepted or not) in the
        message history, when one is configured; best effort, off the SMTP path."""
        if self.history is not None and items:
            self.history.record(items)

    def trusted_reason(self, env: Envelope) -> str:
        """Why the sender is trusted (SMTP AUTH, ``milter.trusted_networks``), or ``""``
        (see :class:`~spamwarden.milter.checks.trust.TrustCheck`)."""
        return self._trust.trusted_reason(env)

    def only_intake_recipients(self, env: Envelope) -> bool:
        """Every recipient is a complaint-intake address (see
        :class:`~spamwarden.milter.checks.trust.TrustCheck`)."""
        return self._trust.only_intake_recipients(env)

    # -- pieces ------------------------------------------------------------------------------

    def _seal(self, raw: bytes, auth: AuthResults | None,
              auth_results: str) -> list[tuple[str, str]]:
        """Our ARC set for a message we let through (RFC 8617 §5.1), in the order
        the milter puts them on top (ARC-Seal last, so topmost); none when
        authentication did not run or the chain's state is unknown (``temperror``
        is no chain validation status)."""
        arc = auth.arc if auth is not None else None
        if arc is None or str(arc.result).lower() not in ("pass", "fail", "none"):
            return []
        sealer = self.sealer
        if sealer is None:
            return []
        return list(reversed(sealer.seal(raw, auth_results)))

    def _verdict(
        self,
        symbols: list[Symbol],
        auth: AuthResults | None,
        env: Envelope,
        headers: Sequence[tuple[str, str]],
        unavailable: list[str],
        *,
        view: MessageView,
        started: float,
        raw: bytes = b"",
    ) -> Verdict:
        limits = self.thresholds_for(env)
        policy = self.cfg.policy
        if limits != self._base_thresholds:
            policy = dataclasses.replace(
                policy, tag_threshold=limits.tag_threshold,
                quarantine_threshold=limits.quarantine_threshold,
                reject_threshold=limits.reject_threshold)
        decision = decide(symbols, policy, self.cfg.milter)
        why = ""
        shield = self.never_refuse
        for s in symbols:
            if s.name in shield:
                why = shield[s.name]
                break
        if why and decision.action not in ("accept", "tag"):
            decision = dataclasses.replace(
                decision, action="tag",
                reason=f"{why}, tagged instead of {decision.action}: {decision.reason}")
        required = policy.tag_threshold
        flagged = decision.score >= required or decision.action in ("tag", "quarantine", "reject")
        auth_note = next((u for u in unavailable if u.startswith("auth ")), "")
        add: list[tuple[str, str]] = [
            (AUTH_RESULTS, render_authentication_results(
                self.authserv_id, auth, env,
                unavailable=("authentication unavailable: " + auth_note) if auth_note else "",
            ))
        ]
        if self.sealer is not None and raw and decision.action in ("accept", "tag", "quarantine"):
            add.extend(self._seal(raw, auth, add[0][1]))
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
            listed_key=decision.main.key if decision.main else "",
            thresholds=limits,
            view=view,
        )
