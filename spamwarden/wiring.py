"""The composition root: the one module (with :mod:`spamwarden.cli`) that knows every
package and builds each service from its parts.

Components receive what they use through their constructors or ``run_*`` arguments
and never import each other sideways to find it: the milter gets its scanner (with
the consent policy, the listing lookup and the classifier) and its background
companions (feedback follower, listing change watcher) from here; the worker gets its
complaint hooks (the consent registry turning complaints about ads into refusals);
intake gets its address hooks (``optout@``) and DKIM verifier; the API gets its route
modules. ``docs/architecture.md`` draws the arrows.

Imports of the components happen inside the functions, so importing this module (as
``spamwarden --help`` does) loads none of them, and each service loads only its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from .config import Config
from .errors import SpamwardenError
from .logs import event

if TYPE_CHECKING:
    import redis

    from .api import ApiContext, ApiModule
    from .milter.interfaces import MessagePolicy
    from .milter.scanner import Scanner
    from .reputation.deliveries import LedgerRecorder
    from .reputation.engine import ComplaintHook
    from .reputation.history import HistoryRecorder
    from .reputation.intake import AddressHook, ComplaintIntake
    from .reputation.lookup import ListingLookup
    from .resolver import Resolver
    from .training.classifier import ContentClassifier

__all__ = [
    "Stoppable",
    "build_scanner",
    "milter_companions",
    "symbol_table",
    "run_milter",
    "complaint_hooks",
    "run_worker",
    "address_hooks",
    "run_intake",
    "learner",
    "api_modules",
    "run_api",
]

log = logging.getLogger("spamwarden")

_UNSET: Any = object()


class Stoppable(Protocol):
    """A background helper running beside a service (a thread), stopped with it."""

    def stop(self) -> None:
        """Stop it and wait for it to end."""


# -- milter -----------------------------------------------------------------------------------


def _header_safe(text: str) -> str:
    from .milter.headers import header_safe

    return header_safe(text, limit=160)


def _load_classifier(cfg: Config) -> tuple[ContentClassifier | None, str]:
    try:
        from .training.classifier import load_classifier
    except ImportError as exc:
        return None, f"not installed: {exc}"
    try:
        return load_classifier(cfg), ""
    except (SpamwardenError, OSError) as exc:
        return None, _header_safe(str(exc))


def build_scanner(
    cfg: Config,
    *,
    resolver: Resolver | None = None,
    redis_client: redis.Redis | None = None,
    classifier: ContentClassifier | None = _UNSET,
    probe_redis: bool = False,
) -> Scanner:
    """The milter's scanner for ``cfg`` with every component that is installed and loads.

    * resolver: from ``[dns]`` (every SPF, DKIM, DMARC and DNSBL lookup);
    * classifier: ``training.model`` or the shipped model; a model that does
      not load is reported unavailable (``X-Spam-Unavailable``), never guessed;
    * recipient settings and sender lists (:mod:`spamwarden.settings.store`, ``[settings]``),
      polled from Redis every ``settings.refresh``;
    * listing lookups (:mod:`spamwarden.reputation.lookup`) and the consent policy
      (:mod:`spamwarden.consent.policy`): over one Redis client from ``[redis]``; the
      client connects lazily, so Redis being down at start gives ``*_LOOKUP_FAILED`` /
      ``AD_REGISTRY_FAIL`` symbols per message and recovers by itself when Redis is back.

    :param cfg: the configuration.
    :param resolver: a resolver to use instead of one from ``[dns]``.
    :param redis_client: a ``redis.Redis`` to use instead of one from ``[redis]``.
    :param classifier: a ``ContentClassifier`` (or ``None``) instead of loading one.
    :param probe_redis: ping Redis once and leave the Redis-backed checks out
        (reported unavailable) when it does not answer: right for a one-off
        ``check``, wrong for the long-running milter, which waits for Redis to return.
    :returns: the scanner; what could not be built is named in its ``unavailable`` notes.
    """
    from .milter.scanner import Scanner
    from .resolver import resolver_from_config

    notes: dict[str, str] = {}
    if classifier is _UNSET:
        classifier, note = _load_classifier(cfg)
        if classifier is None:
            notes["classifier"] = note
    elif classifier is None:
        notes["classifier"] = "not configured"
    listings: ListingLookup | None = None
    policies: list[MessagePolicy] = []
    deliveries: LedgerRecorder | None = None
    history: HistoryRecorder | None = None
    try:
        from .redisconn import sync_client

        client = redis_client if redis_client is not None else sync_client(cfg)
    except (ImportError, SpamwardenError, ValueError) as exc:
        client = None
        notes["listings"] = notes["consent"] = _header_safe(f"redis: {exc}")
    if client is not None and probe_redis:
        try:
            client.ping()
        except Exception as exc:  # noqa: BLE001 - any client error means "not reachable"
            client = None
            notes["listings"] = notes["consent"] = _header_safe(f"redis not reachable: {exc}")
    if client is not None:
        try:
            from .reputation.lookup import RedisListingLookup
            from .reputation.store import ListingStore

            listings = RedisListingLookup(ListingStore.from_config(cfg, client))
        except (ImportError, SpamwardenError) as exc:
            notes["listings"] = _header_safe(str(exc))
        from .reputation.deliveries import LedgerRecorder, RedisDeliveryLedger

        deliveries = LedgerRecorder(RedisDeliveryLedger(client, ttl=cfg.reputation.window),
                                    delimiters=cfg.intake.recipient_delimiter)
        from .reputation.history import HistoryRecorder

        history = HistoryRecorder(client, max_entries=cfg.history.max_entries,
                                  ttl=cfg.history.ttl, subjects=cfg.history.subjects)
        if cfg.consent.enabled:
            try:
                from .consent.policy import policy_from_config

                policies.append(policy_from_config(cfg, client))
            except (ImportError, SpamwardenError) as exc:
                notes["consent"] = _header_safe(str(exc))
    settings = None
    if cfg.settings.enabled:
        from .settings.store import SettingsCache

        # Without Redis the static settings.allow / settings.deny entries still apply.
        settings = SettingsCache.from_config(cfg, client)
    return Scanner(
        cfg,
        resolver=resolver if resolver is not None else resolver_from_config(cfg.dns),
        classifier=classifier,
        listings=listings,
        policies=policies,
        unavailable=notes,
        deliveries=deliveries,
        history=history,
        settings=settings,
    )


def _start_feedback(cfg: Config, scanner: Scanner) -> Stoppable | None:
    """Keep the classifier learning from reported spam and ``ham@`` mail between
    training runs (``training.feedback.FeedbackFollower``), when the model can learn."""
    try:
        from .redisconn import sync_client
        from .training.feedback import FeedbackFollower, Learner, RedisFeedbackSource
    except ImportError as exc:
        event(log, "feedback_unavailable", logging.WARNING, error=str(exc))
        return None
    if not isinstance(scanner.classifier, Learner):  # checked once: can this model learn?
        return None
    try:
        follower = FeedbackFollower(scanner.classifier, RedisFeedbackSource(sync_client(cfg)))
        started: Stoppable = follower.start()
        return started
    except (SpamwardenError, ValueError) as exc:
        event(log, "feedback_unavailable", logging.WARNING, error=str(exc))
        return None


def _start_change_watcher(cfg: Config, scanner: Scanner) -> Stoppable | None:
    """Follow the listing change stream so that the listing lookup can keep answers
    until a listing changes (``reputation.lookup.ChangeWatcher``)."""
    try:
        from .redisconn import sync_client, with_min_timeout
        from .reputation.lookup import ChangeWatcher, RedisListingLookup
        from .reputation.store import ListingStore
    except ImportError:
        return None
    if not isinstance(scanner.listings, RedisListingLookup):
        return None
    try:
        client = sync_client(with_min_timeout(cfg, 3.0))
        watcher: Stoppable = ChangeWatcher(
            scanner.listings, ListingStore.from_config(cfg, client)).start()
        return watcher
    except (SpamwardenError, ValueError) as exc:
        event(log, "listing_changes_unavailable", logging.WARNING, error=str(exc))
        return None


def milter_companions(cfg: Config, scanner: Scanner) -> list[Stoppable]:
    """The background helpers of one milter process, started: the feedback follower
    (the classifier learns from reports between training runs, when it can learn) and
    the listing change watcher (the listing lookup keeps answers until a listing
    changes). What cannot start is logged and left out; the milter runs without it.

    :param cfg: the configuration.
    :param scanner: the process's scanner (its classifier and listing lookup).
    :returns: the running helpers, to stop when the milter stops.
    """
    out = [_start_feedback(cfg, scanner), _start_change_watcher(cfg, scanner)]
    return [c for c in out if c is not None]


def symbol_table(cfg: Config) -> list[dict[str, Any]]:
    """Every symbol the milter's checks declare (:mod:`spamwarden.milter.checks`, the
    consent rules' included) with ``[policy.symbols]`` applied; names only the
    configuration knows are listed too
    (:func:`spamwarden.milter.registry.symbol_table`).

    :param cfg: the configuration.
    :returns: one dict per symbol: ``name``, ``points``, ``default`` (``None`` for a
        name only the configuration knows), ``description``, ``group``; sorted by name.
    """
    from .milter.registry import known_symbols
    from .milter.registry import symbol_table as table

    return table(cfg.policy.symbols, known_symbols(cfg))


def run_milter(cfg: Config) -> int:
    """``spamwarden milter``: serve Postfix with a scanner from :func:`build_scanner`
    (one per worker process, built after the fork) and :func:`milter_companions`.

    :returns: see :func:`spamwarden.milter.runtime.run_milter`.
    :raises ConfigError: ``milter.listen`` is not a milter address.
    :raises ServiceError: the socket cannot be opened.
    """
    from .milter import runtime

    return runtime.run_milter(cfg, build=functools.partial(build_scanner, cfg),
                              companions=functools.partial(milter_companions, cfg))


# -- worker -----------------------------------------------------------------------------------


def complaint_hooks(cfg: Config) -> list[ComplaintHook]:
    """The worker's complaint hooks: with ``consent.enabled``, the consent registry's
    hook that records a complaint about a registered advertiser's ad as the reporter's
    refusal (:func:`spamwarden.consent.optout.ad_complaint_hook_from_config`).

    :param cfg: the configuration.
    :returns: the hooks, run for every complaint before it is acknowledged.
    :raises ConfigError: the consent configuration is unusable.
    """
    hooks: list[ComplaintHook] = []
    if cfg.consent.enabled:
        from .consent.optout import ad_complaint_hook_from_config

        hooks.append(ad_complaint_hook_from_config(cfg))
    return hooks


def run_worker(cfg: Config, *, consumer: str | None = None) -> int:
    """``spamwarden worker``: the listing engine with :func:`complaint_hooks`.

    :param cfg: the configuration.
    :param consumer: the name in the consumer group (default: the host name).
    :returns: 0 after SIGTERM / SIGINT.
    """
    from .reputation.engine import run_worker as run

    return asyncio.run(run(cfg, consumer=consumer, hooks=complaint_hooks(cfg)))


# -- intake -----------------------------------------------------------------------------------


def address_hooks(cfg: Config) -> dict[str, AddressHook]:
    """Intake's hooks for addresses other than ``report@`` / ``ham@``: with
    ``consent.enabled``, ``optout`` (:func:`spamwarden.consent.optout.optout_hook_from_config`).

    :param cfg: the configuration.
    :returns: local part -> hook.
    :raises ConfigError: the token key is unusable.
    """
    hooks: dict[str, AddressHook] = {}
    if cfg.consent.enabled:
        from .consent.optout import optout_hook_from_config

        hooks["optout"] = optout_hook_from_config(cfg)
    return hooks


def _dkim_verifier(cfg: Config) -> Callable[..., Any] | None:
    """The milter's DKIM verification for intake's re-check of reported messages, or
    ``None`` when dkimpy is missing (then no ``d=`` of a report counts as verified)."""
    try:
        from .milter.auth import verify_dkim
    except ImportError:
        logging.getLogger("spamwarden.intake").warning(
            "DKIM re-verification unavailable: no d= of a report counts as verified")
        return None
    return functools.partial(verify_dkim, max_signatures=cfg.milter.max_dkim_signatures,
                             timeout=cfg.dns.timeout * 2)


def run_intake(cfg: Config, *, listen: str | None = None) -> int:
    """``spamwarden intake``: the complaint intake with :func:`address_hooks`, the
    milter's DKIM verifier and the ``[dns]`` resolver.

    :param cfg: the configuration.
    :param listen: overrides ``intake.listen``.
    :returns: 0 after SIGTERM / SIGINT.
    :raises ServiceError: the listen address is unusable or cannot be bound.
    """
    from .reputation.intake import run_intake as run
    from .resolver import resolver_from_config

    if listen:
        cfg = dataclasses.replace(cfg, intake=dataclasses.replace(cfg.intake, listen=listen))
    asyncio.run(run(cfg, dkim_verifier=_dkim_verifier(cfg), resolver=resolver_from_config(cfg.dns),
                    hooks=address_hooks(cfg)))
    return 0


def learner(cfg: Config, client: Any) -> ComplaintIntake:
    """The complaint intake's policy over Redis ``client`` without its SMTP server: what
    ``spamwarden learn`` and ``POST /v1/learn`` store a mailbox move through
    (:meth:`~spamwarden.reputation.intake.ComplaintIntake.learn`), with the milter's DKIM
    verifier and the ``[dns]`` resolver, as :func:`run_intake` has.

    :param cfg: the configuration.
    :param client: a ``redis.asyncio`` client (``redisconn.async_client``).
    :returns: the policy object; close ``client`` when done.
    """
    from .reputation.deliveries import RedisDeliveryLookup
    from .reputation.intake import ComplaintIntake, RedisComplaintStore
    from .resolver import resolver_from_config

    store = RedisComplaintStore(client, seen_ttl=cfg.reputation.window,
                                training_ttl=cfg.reputation.training_ttl)
    return ComplaintIntake(cfg, store, dkim_verifier=_dkim_verifier(cfg),
                           resolver=resolver_from_config(cfg.dns),
                           deliveries=RedisDeliveryLookup(client))


# -- API --------------------------------------------------------------------------------------


def api_modules() -> list[Callable[[ApiContext], ApiModule]]:
    """The route modules ``spamwarden api`` serves: listings, lookup pages, consent, history,
    the operator console, metrics, learn (mailbox moves), recipient settings and sender lists.

    To add routes, write a factory ``factory(ctx: ApiContext) -> ApiModule`` in
    :mod:`spamwarden.api` and name it here (``docs/architecture.md``).

    :returns: module factories, in the order their routes are added.
    """
    from .api.consent import consent_module
    from .api.console import console_module
    from .api.history import history_module
    from .api.learn import learn_module
    from .api.listings import listings_module
    from .api.lookup import lookup_module
    from .api.metrics import metrics_module
    from .api.settings import settings_module

    return [listings_module, lookup_module, consent_module, history_module,
            # the quarantine's release-and-learn stores as learn does
            functools.update_wrapper(functools.partial(console_module, make_intake=learner),
                                     console_module),
            metrics_module,
            # learn stores through the intake policy (DKIM verifier, resolver) built here
            functools.update_wrapper(functools.partial(learn_module, make_intake=learner),
                                     learn_module),
            settings_module]


def run_api(cfg: Config, *, listen: str | None = None,
            modules: Sequence[Callable[[ApiContext], ApiModule]] | None = None) -> int:
    """``spamwarden api``: serve :func:`api_modules` on ``api.listen``.

    :param cfg: the configuration.
    :param listen: overrides ``api.listen`` (port 0: any free port).
    :param modules: instead of :func:`api_modules`.
    :returns: 0 after SIGTERM / SIGINT.
    """
    from .api.app import run_api as run

    return asyncio.run(run(cfg, modules=modules if modules is not None else api_modules(),
                           listen=listen))


class _NoRedis:
    """A Redis client that is never reachable: ``build_scanner(probe_redis=True)`` then
    leaves the Redis-backed checks out."""

    def ping(self) -> bool:
        raise ConnectionError("offline evaluation: no Redis")


def offline_scanner(cfg: Config, model_path: str = "") -> Scanner:
    """The ``check`` scanner with no DNS (every lookup fails at once), no Redis and no
    third-party DNSBLs: what ``spamwarden eval --pipeline`` scores with.

    :param model_path: a model file; ``""``: ``training.model`` or the shipped model.
    :raises ModelError: the model does not load.
    """

    from .training.classifier import load_classifier
    from .training.pipeline_eval import OfflineResolver

    cfg = dataclasses.replace(cfg, rbl=dataclasses.replace(cfg.rbl, third_party_zones=()))
    classifier = load_classifier(model_path or cfg.training.model or None, reload=False)
    no_redis = cast("redis.Redis", _NoRedis())  # only ping() is called, and it fails
    return build_scanner(cfg, resolver=OfflineResolver(), redis_client=no_redis,
                         classifier=classifier, probe_redis=True)


def offline_scorer(cfg: Config, model_path: str = "") -> Callable[[bytes], tuple[float, float]]:
    """``spamwarden eval --pipeline``'s scorer: one raw message in, ``(total points of
    its symbols, score as decided)`` out, from :func:`offline_scanner`.

    :param model_path: a model file; ``""``: ``training.model`` or the shipped model.
    :raises ModelError: the model does not load.
    """
    from .milter.check import scan_file

    scanner = offline_scanner(cfg, model_path)

    def score(raw: bytes) -> tuple[float, float]:
        verdict, _, _ = scan_file(scanner, raw, rcpts=("user@example.org",))
        return float(sum(s.points for s in verdict.symbols)), float(verdict.score)

    return score
