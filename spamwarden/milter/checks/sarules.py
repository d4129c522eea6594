"""SpamAssassin's rules (``spamwarden.rules``): each rule a message hits is a symbol.

Unlike the other checks, this one declares no symbols: its names, scores and
descriptions are data, read from SpamAssassin's rule files (``score`` and
``describe`` lines, a site's ``local.cf`` included) when the milter starts, so
``grep`` finds a name in those files rather than in this module, and a site
changes a score with a ``score`` line in its ``local.cf`` (``[policy.symbols]``
only knows declared symbols).  Hits go into the same ``X-Spam-*`` headers as
every other symbol, as ``NAME=score``, with the rule's description as detail.

The MTA's MAIL FROM is given to the engine as SpamAssassin's EnvelopeFrom (what
HEADER_FROM_DIFFERENT_DOMAINS and the FreeMail tests compare From with); an offline
check, whose sender is guessed from the headers, lets the engine guess it as
SpamAssassin does.

Postfix does not pass a milter the ``Received`` field its smtpd adds for the
connection (a message sent through Postfix reaches the header callbacks with only
the fields the client sent), while SpamAssassin behind Postfix (spamass-milter,
spamc from a content filter) sees it: without it the hop that connected to us is no
relay at all, and RDNS_NONE, the HELO tests and the trust of every relay below
judge the wrong hop.  So the engine is given that field as Postfix writes it, made
from the connection's facts (:func:`connection_received`: the client name as Postfix
verified it, "unknown" without one; its address; the HELO; our host name from the
``j`` macro; the queue id), as the first header of the message it reads; the
message delivered is not changed.

The milter's own SPF and DKIM results (``msg.auth``, set by the ``auth`` check, which
runs first) are given to the engine as :class:`~spamwarden.rules.AuthFacts`
(:func:`auth_facts`), so SpamAssassin's SPF_*, DKIM_* and auth welcome-list rules, and
the metas that spare authenticated mail (``!DKIM_VALID_AU``, ``__DKIM_DEPENDABLE``),
judge live mail as SpamAssassin with network tests would.  The rules of the same name
as the ``auth`` check's own symbols (SPF_PASS, DKIM_VALID, ...) still count in the
metas but are not scored twice.

Enabled by ``[rules] enabled``; the engine is built once per process at wiring
time (compiled databases come from the on-disk cache).
"""

from __future__ import annotations

import email.utils
import logging
import os
import re
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ...logs import event
from ..interfaces import Envelope, Symbol
from ..registry import CheckBase, CheckDecl, Components, MessageContext, Phase, declared_symbols

if TYPE_CHECKING:
    from ...rules import AuthFacts, RuleEngine
    from ...rules.processes import EngineProcesses
    from ..auth import AuthResults

__all__ = ["CHECK", "SpamAssassinRulesCheck", "auth_facts", "connection_received"]

log = logging.getLogger("spamwarden.milter")

#: Threads that run the engine.  Hyperscan is only ever called from these Python-made
#: threads, never from libmilter's: pymilter runs callbacks under a Python thread state
#: of the connection rather than of the OS thread, and Hyperscan's match callbacks
#: re-entering Python from concurrent libmilter threads crashed the process (SIGSEGV).
SCAN_THREADS = max(1, os.cpu_count() or 1)

#: At most this many hits become symbols (highest scores first), so a message built to
#: hit hundreds of rules cannot bloat the headers.
MAX_SYMBOLS = 40


_UNSAFE = re.compile(r"[^\x21-\x7e]")


def connection_received(env: Envelope, now: float) -> str | None:
    """The ``Received`` value Postfix's smtpd writes for this connection (its
    ``smtpd_received`` form), rebuilt from what the milter was told.

    ``from HELO (NAME [IP]) by HOST (Postfix) with ESMTP[S][A] id QID; DATE``: NAME is
    the client name Postfix verified ("unknown" when it has none: Postfix then gives a
    milter ``[IP]`` or nothing), ``IPv6:`` marks an IPv6 address, ``A`` an
    authenticated client and ``S`` TLS, as Postfix writes them.

    :param env: the connection and transaction (``client_ip``, ``client_name``,
        ``helo``, ``receiver``, ``queue_id``, ``authenticated``, ``tls``).
    :param now: the time of receipt (seconds since the epoch) for the date.
    :returns: the value (one line); ``None`` unless an MTA told the client address and
        its own host name (an offline check reads a stored message, which holds the
        receiving MTA's field already).
    """
    if not env.client_ip or not env.receiver:
        return None
    ip = env.client_ip
    addr = f"IPv6:{ip}" if ":" in ip else ip
    name = _UNSAFE.sub("?", env.client_name)[:255]
    if not name or name.startswith("[") or name.lower() == "unknown":
        name = "unknown"
    helo = _UNSAFE.sub("?", env.helo)[:255] or name
    host = _UNSAFE.sub("?", env.receiver)[:255]
    proto = "ESMTP" + ("S" if env.tls else "") + ("A" if env.authenticated else "")
    qid = _UNSAFE.sub("?", env.queue_id)[:64]
    ident = f" id {qid}" if qid else ""
    date = email.utils.formatdate(now, usegmt=False)
    return f"from {helo} ({name} [{addr}]) by {host} (Postfix) with {proto}{ident}; {date}"


def auth_facts(auth: AuthResults | None, env: Envelope, *,
               truncated: bool = False) -> AuthFacts | None:
    """The milter's SPF and DKIM results as the rules read them.

    :param auth: what the ``auth`` check found (``msg.auth``); ``None``: it did not run.
    :param env: the connection: the client address SPF was evaluated for, the HELO.
    :param truncated: the message was cut at the size limit (its DKIM signatures were
        not verified, ``neutral``): SpamAssassin's ``__DKIM_DEPENDABLE`` is then false.
    :returns: the facts, ``None`` without results (also when every lookup failed:
        SPF ``temperror`` or not run, every DKIM signature ``temperror``).  SPF of MAIL
        FROM (RFC 7208 §2.4) is the MAIL FROM identity's result; for a null sender the
        milter evaluates the HELO identity (RFC 7208 §2.3), which is the HELO result and
        leaves MAIL FROM's unknown.  A signature counts as valid only on ``pass`` (RFC 6376 §6.1): the
        milter's ``policy`` results (expired, RSA key under ``min_rsa_bits``,
        ``rsa-sha1``) do not.
    """
    from ...rules import AuthFacts, DkimSignature

    if auth is None:
        return None
    spf = auth.spf
    if ((spf is None or spf.result == "temperror")
            and all(d.result == "temperror" for d in auth.dkim)):
        # no DNS answer at all (an outage, or ``eval --pipeline``'s resolver that
        # answers nothing): no results, as in SpamAssassin when is_dns_available()
        # finds no DNS (it then verifies nothing, not even DKIM_SIGNED)
        return None
    mailfrom = helo = None
    if spf is not None:
        if spf.scope == "helo":
            helo = spf.result
        else:
            mailfrom = spf.result
    sigs = tuple(DkimSignature(d.domain, d.identity, d.selector, d.result == "pass")
                 for d in auth.dkim)
    return AuthFacts(
        client_ip=env.client_ip or "",
        spf_mailfrom=mailfrom,
        mail_from=spf.mail_from if spf is not None and mailfrom is not None else "",
        spf_helo=helo,
        helo=spf.domain if spf is not None and helo is not None else "",
        dkim=sigs,
        dkim_dependable=not (truncated and sigs),
    )


#: :data:`spamwarden.rules.TIME_LIMIT_EXCEEDED` (the rules package is imported only when
#: the rules are on)
_TIME_LIMIT = "TIME_LIMIT_EXCEEDED"


class SpamAssassinRulesCheck(CheckBase):
    """Runs a :class:`~spamwarden.rules.RuleEngine` at end of message.

    :param engine: the built engine.
    :param reserved: symbol names other checks declare; a SpamAssassin rule of the same
        name (SPF_PASS, DKIM_VALID, ... of the ``auth`` check) is left out rather than
        scored twice (the metas still read it).
    :param threads: threads running the engine (and one more for each place in the
        engine's slow lane, so that the messages in it leave these to the others);
        ``processes``: engine processes to run it in instead.
    :param clock: the time of receipt for the connection's Received field.
    """

    def __init__(self, engine: RuleEngine, *, reserved: Collection[str] = (),
                 threads: int = SCAN_THREADS,
                 processes: EngineProcesses | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self.reserved = frozenset(reserved)
        self.processes = processes
        # Threads start on first use (after the milter's workers fork).
        lane = engine.slow_lane
        self._pool = ThreadPoolExecutor(max_workers=threads + (lane.width if lane else 0),
                                        thread_name_prefix="spamwarden-rules")

    def at_message(self, msg: MessageContext) -> Sequence[Symbol]:
        try:
            # the MTA's MAIL FROM is SpamAssassin's EnvelopeFrom (HEADER_FROM_DIFFERENT_
            # DOMAINS, FREEMAIL_FORGED_FROMDOMAIN); offline, it is guessed from headers
            env = msg.env.mail_from if msg.env.mail_from_known else None
            # the hop that connected to us, which Postfix does not show a milter
            received = connection_received(msg.env, self.clock())
            # our SPF and DKIM results: the rules' SPF_*, DKIM_* and auth welcome-lists
            auth = auth_facts(msg.auth, msg.env, truncated=msg.view.truncated)
            if self.processes is not None:  # matched in a process of its own
                hits = self.processes.check(msg.view, msg.raw, envelope_from=env,
                                            received=received, auth=auth)
            else:
                hits = self._pool.submit(self.engine.check, msg.view, msg.raw,
                                         envelope_from=env, received=received,
                                         auth=auth).result()
        except Exception as exc:  # noqa: BLE001 - an optional signal must not stop mail
            event(log, "sarules_error", logging.ERROR, queue_id=msg.env.queue_id or None,
                  error=f"{type(exc).__name__}: {exc}")
            msg.unavailable.append(f"sarules (error: {type(exc).__name__})")
            return ()
        for h in hits:
            if h.name == _TIME_LIMIT:  # (its description names the rules cut short)
                from ...rules import SLOW_LANE_BUSY

                event(log, "sarules_time_limit", logging.WARNING,
                      queue_id=msg.env.queue_id or None, detail=h.description,
                      slow_lane="busy" if SLOW_LANE_BUSY in h.description else None)
        hits = [h for h in hits if h.name not in self.reserved]
        hits = sorted(hits, key=lambda h: (-abs(h.score), h.name))[:MAX_SYMBOLS]
        hits.sort(key=lambda h: h.name)
        return [Symbol(h.name, h.score, h.description) for h in hits]


#: at most this many problems of the site's rule files are logged at start
MAX_LOGGED_PROBLEMS = 20


def _log_site_problems(parts: Components, engine: RuleEngine) -> None:
    """One warning per problem in the site's own rule files (a ``local.cf`` rule that does
    not run, a score line for a misspelt name), so a typo shows in the log at start."""
    from ...rules import site_problems

    problems = site_problems(parts.cfg, engine.ruleset)
    for p in problems[:MAX_LOGGED_PROBLEMS]:
        event(log, "sarules_problem", logging.WARNING, file=p.file, line=p.line,
              rule=p.rule or None, problem=p.message)
    if len(problems) > MAX_LOGGED_PROBLEMS:
        event(log, "sarules_problem", logging.WARNING,
              more=len(problems) - MAX_LOGGED_PROBLEMS, see="spamwarden rules --lint")


def _build(parts: Components) -> SpamAssassinRulesCheck | None:
    if not parts.cfg.rules.enabled:
        return None
    from ...rules import load_engine

    engine = load_engine(parts.cfg)
    if engine is None:  # pragma: no cover - enabled was checked above
        return None
    event(log, "sarules_loaded", logging.INFO, rules=len(engine.ruleset.rules),
          skipped=len(engine.ruleset.skipped), cached=engine.cache_used,
          compiled_groups=len(engine.compiled_groups), reused_groups=len(engine.reused_groups),
          processes=parts.cfg.rules.processes, time_limit=parts.cfg.rules.time_limit,
          slow_after=parts.cfg.rules.slow_after, slow_lanes=parts.cfg.rules.slow_lanes,
          relay_trust="configured" if engine.ruleset.networks.configured else "inferred")
    _log_site_problems(parts, engine)
    processes = None
    if parts.cfg.rules.processes > 0:
        from ...rules.processes import EngineProcesses

        # forked now, while the checks are built and before libmilter starts threads
        processes = EngineProcesses(engine, processes=parts.cfg.rules.processes,
                                    timeout=parts.cfg.rules.timeout)
    return SpamAssassinRulesCheck(engine, reserved={s.name for s in declared_symbols()},
                                  processes=processes)


CHECK = CheckDecl(
    name="sarules",
    order=25,
    symbols=(),
    phases=frozenset({Phase.MESSAGE}),
    build=_build,
)
