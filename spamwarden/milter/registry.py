"""The check registry: every milter check is one module of :mod:`spamwarden.milter.checks`.

A check module defines ``CHECK``, a :class:`CheckDecl` saying the check's name,
its place in the pipeline (``order``), the symbols it may produce
(:class:`~spamwarden.milter.symbols.SymbolSpec`, names spelled out so they can
be grepped for), the phases it runs in and how to build it from the scanner's
components (:class:`Components`).  :func:`discover` imports every module of the
package and returns their declarations sorted by ``(order, name)``; the
scanner builds each check once, at wiring time, and keeps a tuple of bound
methods per phase.  Adding a check is one new module (and its test).

Phases, in the order of a message's life:

* :attr:`Phase.ENVELOPE` - at MAIL FROM, on the lookup threads, while the
  client sends the message (``at_envelope`` returns a running job);
* :attr:`Phase.MESSAGE` - at end of message: every check's ``begin`` (send
  lookups, read later), then every check's ``at_message`` in order (returns
  symbols), then every check's ``finish`` (free what ``begin`` took);
* :attr:`Phase.DELIVERED` - after the message was accepted, off the SMTP path
  (``delivered`` with a batch of messages).
"""

from __future__ import annotations

import contextvars
import dataclasses
import enum
import functools
import importlib
import logging
import pkgutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from ..config import Config
from ..errors import SpamwardenError
from ..logs import event
from ..mail import MessageView
from ..resolver import Resolver
from .interfaces import (
    Action,
    ContentClassifier,
    Envelope,
    MessagePolicy,
    RecordsDeliveries,
    SettingsSource,
    Symbol,
)
from .symbols import SymbolSpec

if TYPE_CHECKING:
    from ..reputation.lookup import ListingLookup
    from .auth import AuthResults
    from .verdict import Authenticator, EnvelopeChecks, Verdict

__all__ = [
    "Check",
    "CheckBase",
    "CheckDecl",
    "Components",
    "Delivered",
    "LookupPool",
    "MessageContext",
    "Phase",
    "SymbolPoints",
    "declared_symbols",
    "default_points",
    "discover",
    "known_symbols",
    "symbol_table",
    "symbols_markdown",
]

log = logging.getLogger("spamwarden.milter")

T = TypeVar("T")


class Phase(enum.Enum):
    """When a check runs (see the module documentation)."""

    ENVELOPE = "envelope"
    MESSAGE = "message"
    DELIVERED = "delivered"


class LookupPool:
    """The lookup threads shared by the checks: jobs that overlap authentication and
    the checks started at MAIL FROM.  Threads start on first use.

    :param threads: 0 runs every job in the calling thread (:attr:`threaded` false:
        nothing starts at MAIL FROM).
    :param budget: seconds :meth:`result` waits for a job (the lookups behind it have
        their own timeouts; this only guards against a stuck store).
    """

    def __init__(self, threads: int, *, budget: float) -> None:
        self.budget = budget
        self._pool = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="spamwarden-lookup")
            if threads > 0 else None
        )

    @property
    def threaded(self) -> bool:
        """Jobs run on lookup threads (else in the caller's thread)."""
        return self._pool is not None

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``fn(*args)`` on a lookup thread (in this thread when there is none), in
        the caller's context: what it logs names the message being scored
        (:func:`~spamwarden.logs.for_message`)."""
        if self._pool is None:
            done: Future[T] = Future()
            try:
                done.set_result(fn(*args))
            except Exception as exc:  # noqa: BLE001 - re-raised by result()
                done.set_exception(exc)
            return done
        return self._pool.submit(contextvars.copy_context().run, fn, *args)

    def result(self, job: Future[T] | None, *, default: T) -> T:
        """The job's result; ``default`` when it raised or outlived :attr:`budget`."""
        if job is None:
            return default
        try:
            return job.result(timeout=self.budget)
        except FutureTimeout:
            event(log, "lookup_timeout", logging.WARNING, budget=self.budget)
            return default
        except Exception as exc:  # noqa: BLE001 - lookups promise not to raise; if one does,
            # its answer is "failed" (never listed, never clean), not a tempfail of the mail.
            event(log, "lookup_error", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            return default

    def close(self) -> None:
        """Stop the threads; jobs not yet started never run."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class Components:
    """What the checks are built from, once, at wiring time.

    :ivar authenticate: SPF/DKIM/DMARC, or ``None`` (unavailable).
    :ivar spf: SPF alone (``auth.check_spf``) when ``authenticate`` is ours and can
        take an SPF result computed at MAIL FROM; else ``None``.
    :ivar classifier: the content classifier, or ``None`` (unavailable).
    :ivar listings: the own-listing lookup, or ``None`` (unavailable).
    :ivar policies: extra rules (advertising consent), consulted in order.
    :ivar deliveries: the delivery ledger, or ``None`` (not recorded).
    :ivar points: ``[policy.symbols]`` over the declared defaults.
    :ivar lookups: the shared lookup threads.
    :ivar settings: recipient settings and sender lists, or ``None`` (not configured).
    """

    cfg: Config
    resolver: Resolver
    authenticate: Authenticator | None
    spf: Callable[..., Any] | None
    classifier: ContentClassifier | None
    listings: ListingLookup | None
    policies: tuple[MessagePolicy, ...]
    deliveries: RecordsDeliveries | None
    points: SymbolPoints
    lookups: LookupPool
    settings: SettingsSource | None = None


class MessageContext:
    """One message at end of message, as the checks see it.

    :ivar raw: header section + blank line + body.
    :ivar env: the SMTP envelope.
    :ivar view: the bounded parsed view.
    :ivar early: the checks started at MAIL FROM for this envelope, or ``None``.
    :ivar auth: SPF/DKIM/DMARC results, set by the ``auth`` check (``None``
        until then, or when authentication is unavailable).
    :ivar unavailable: checks that could not be made for this message, with why.
    :ivar jobs: work a check's ``begin`` started, by check name, for its ``at_message``.
    :ivar action: the verdict's action, for the checks' ``finish``; ``None`` when no
        verdict was reached (a check failed).
    """

    __slots__ = ("action", "auth", "early", "env", "jobs", "raw", "unavailable", "view")

    def __init__(self, raw: bytes, env: Envelope, view: MessageView,
                 early: EnvelopeChecks | None, unavailable: list[str]) -> None:
        self.raw = raw
        self.env = env
        self.view = view
        self.early = early
        self.auth: AuthResults | None = None
        self.unavailable = unavailable
        self.jobs: dict[str, Any] = {}
        self.action: str | None = None


@dataclass(frozen=True, slots=True)
class Delivered:
    """One accepted message, for the checks' ``delivered`` phase."""

    view: MessageView
    env: Envelope
    verdict: Verdict


class Check(Protocol):
    """One built check.  Only the methods of the phases its declaration names are
    called (:class:`CheckBase` gives no-op defaults for the others)."""

    def at_envelope(self, env: Envelope) -> Future[Any] | None:
        """:attr:`Phase.ENVELOPE`: start work that needs only the envelope (client
        IP, HELO, MAIL FROM); ``None`` when there is nothing to start."""
        ...

    def begin(self, msg: MessageContext) -> None:
        """:attr:`Phase.MESSAGE`, before any check's :meth:`at_message`: send lookups
        whose answers :meth:`at_message` reads (``msg.jobs[name]``)."""
        ...

    def at_message(self, msg: MessageContext) -> Sequence[Symbol]:
        """:attr:`Phase.MESSAGE`: this check's symbols for the message."""
        ...

    def finish(self, msg: MessageContext) -> None:
        """:attr:`Phase.MESSAGE`, always, after the verdict (or an error): free what
        :meth:`begin` took."""
        ...

    def delivered(self, batch: Sequence[Delivered]) -> None:
        """:attr:`Phase.DELIVERED`: count accepted messages.  Best effort."""
        ...


class CheckBase:
    """No-op defaults for every :class:`Check` method."""

    def at_envelope(self, env: Envelope) -> Future[Any] | None:
        return None

    def begin(self, msg: MessageContext) -> None:
        return None

    def at_message(self, msg: MessageContext) -> Sequence[Symbol]:
        return ()

    def finish(self, msg: MessageContext) -> None:
        return None

    def delivered(self, batch: Sequence[Delivered]) -> None:
        return None


@dataclass(frozen=True)
class CheckDecl:
    """A check module's ``CHECK``.

    :ivar name: short name (``auth``, ``listings``); the key of its jobs.
    :ivar order: place in the pipeline, lowest first; symbols appear in the headers
        in this order.  Ties are broken by name.
    :ivar symbols: every symbol the check may produce.
    :ivar phases: the phases whose methods the scanner calls.
    :ivar build: makes the check from the scanner's components; ``None`` when the
        check has nothing to do with them (its component is missing or not configured).
    :ivar configured_symbols: symbols only the configuration knows (e.g. rules read
        from operator files), declared the same way; they join :attr:`symbols` wherever
        a configuration is at hand (:func:`known_symbols`).
    :ivar configured_points: default points of some of :attr:`symbols` that depend on
        the configuration (name → points); ``[policy.symbols]`` still overrides them.
    """

    name: str
    order: int
    symbols: tuple[SymbolSpec, ...]
    phases: frozenset[Phase] = field(default_factory=lambda: frozenset({Phase.MESSAGE}))
    build: Callable[[Components], Check | None] | None = None
    configured_symbols: Callable[[Config], Sequence[SymbolSpec]] | None = None
    configured_points: Callable[[Config], Mapping[str, float]] | None = None


def discover(package: str | ModuleType = "spamwarden.milter.checks") -> tuple[CheckDecl, ...]:
    """Every ``CHECK`` of the modules in ``package`` (not its subpackages), sorted by
    ``(order, name)``.  Modules whose names start with ``_`` are skipped.

    :raises SpamwardenError: two checks share a name, or two declare the same symbol.
    """
    pkg = importlib.import_module(package) if isinstance(package, str) else package
    found: list[CheckDecl] = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        decl = getattr(module, "CHECK", None)
        if isinstance(decl, CheckDecl):
            found.append(decl)
    found.sort(key=lambda d: (d.order, d.name))
    names: set[str] = set()
    symbols: set[str] = set()
    for decl in found:
        if decl.name in names:
            raise SpamwardenError(f"two milter checks are named {decl.name!r}")
        names.add(decl.name)
        for spec in decl.symbols:
            if spec.name in symbols:
                raise SpamwardenError(f"symbol {spec.name} is declared twice")
            symbols.add(spec.name)
    return tuple(found)


@functools.cache
def _builtin() -> tuple[CheckDecl, ...]:
    return discover()


def builtin_checks() -> tuple[CheckDecl, ...]:
    """:func:`discover` of :mod:`spamwarden.milter.checks`, imported once."""
    return _builtin()


def declared_symbols(checks: Iterable[CheckDecl] | None = None) -> tuple[SymbolSpec, ...]:
    """Every symbol the checks declare, in pipeline order."""
    return tuple(s for d in (builtin_checks() if checks is None else checks) for s in d.symbols)


def known_symbols(cfg: Config, checks: Iterable[CheckDecl] | None = None
                  ) -> tuple[SymbolSpec, ...]:
    """:func:`declared_symbols` plus each check's ``configured_symbols`` for ``cfg``,
    with the default points its ``configured_points`` gives for ``cfg``.

    :raises SpamwardenError: a configured symbol repeats a declared one.
    """
    decls = tuple(builtin_checks() if checks is None else checks)
    specs = list(declared_symbols(decls))
    adjusted: dict[str, float] = {}
    for decl in decls:
        if decl.configured_points is not None:
            own = {s.name for s in decl.symbols}
            adjusted.update({k: float(v) for k, v in decl.configured_points(cfg).items()
                             if k in own})
    if adjusted:
        specs = [dataclasses.replace(s, points=adjusted[s.name]) if s.name in adjusted else s
                 for s in specs]
    seen = {s.name for s in specs}
    for decl in decls:
        if decl.configured_symbols is None:
            continue
        for spec in decl.configured_symbols(cfg):
            if spec.name in seen:
                raise SpamwardenError(f"symbol {spec.name} is declared twice")
            seen.add(spec.name)
            specs.append(spec)
    return tuple(specs)


def default_points(checks: Iterable[CheckDecl] | None = None) -> Mapping[str, float]:
    """Symbol name → default points of every declared symbol."""
    return {s.name: s.points for s in declared_symbols(checks)}


class SymbolPoints:
    """The points of each symbol: ``[policy.symbols]`` over the declared defaults.

    Immutable after construction, so one instance is shared by every milter thread.

    :param overrides: ``[policy.symbols]`` (names case-insensitive).
    :param defaults: name → default points; default every declared symbol
        (:func:`default_points`).
    """

    def __init__(
        self,
        overrides: Mapping[str, float] | None = None,
        *,
        defaults: Mapping[str, float] | None = None,
    ) -> None:
        if defaults is None:
            defaults = default_points()
        self._points = dict(defaults)
        self._overrides = {k.upper(): float(v) for k, v in (overrides or {}).items()}
        self._points.update(self._overrides)

    def points(self, name: str, default: float = 0.0) -> float:
        """Points of ``name``; ``default`` when neither config nor defaults know it."""
        return self._points.get(name, default)

    def make(self, name: str, detail: str = "", *, action: Action | Literal[""] = "",
             key: str = "") -> Symbol:
        """A built-in symbol with its configured points.

        :param key: the listed IP or domain behind a listing symbol (see :attr:`Symbol.key`).
        """
        return Symbol(name, self._points.get(name, 0.0), detail, action, key)

    def apply(self, symbol: Symbol) -> Symbol:
        """``symbol`` with the operator's points when ``[policy.symbols]`` names it."""
        override = self._overrides.get(symbol.name)
        if override is None or override == symbol.points:
            return symbol
        return dataclasses.replace(symbol, points=override)

    def table(self) -> dict[str, float]:
        """Every known symbol and its points (for ``spamwarden check --json``)."""
        return dict(sorted(self._points.items()))


def symbols_markdown(checks: Iterable[CheckDecl] | None = None) -> str:
    """``docs/symbols.md``: every declared symbol by check, with points and description
    (``spamwarden symbols --markdown``)."""
    lines = [
        "# Scoring symbols",
        "",
        "Generated from the checks' declarations (`spamwarden/milter/checks/`) by",
        "`spamwarden symbols --markdown > docs/symbols.md`; a test fails when it is",
        "out of date.  `[policy.symbols]` overrides the default points.",
        "",
    ]
    for decl in builtin_checks() if checks is None else checks:
        if not decl.symbols and decl.configured_symbols is None:
            continue
        phases = ", ".join(p.value for p in Phase if p in decl.phases)
        runs = (f"Runs at: {phases}." if phases else
                "Declared here, produced by a message policy (the `policies` check).")
        lines += [f"## {decl.name}", "", runs, "",
                  "| Symbol | Default points | Description |", "|---|---:|---|"]
        for s in decl.symbols:
            note = f" Never refused or held: {s.never_refuse}." if s.never_refuse else ""
            lines.append(f"| `{s.name}` | {s.points:g} | {s.description}{note} |")
        if decl.configured_symbols is not None:
            lines += ["", ("Further symbols come from its configuration "
                           "(`spamwarden symbols` lists them).")]
        lines.append("")
    return "\n".join(lines)


def symbol_table(overrides: Mapping[str, float],
                 specs: Iterable[SymbolSpec] | None = None) -> list[dict[str, Any]]:
    """Every declared symbol: name, points in effect, default points, description,
    group (``spamwarden symbols``), with ``overrides`` (``[policy.symbols]``) applied.

    A name only ``overrides`` knows is listed too (``default`` ``None``), said to be
    unknown: the milter refuses such a configuration.
    """
    known = {s.name: s for s in (declared_symbols() if specs is None else specs)}
    given = {k.upper(): float(v) for k, v in overrides.items()}
    rows: list[dict[str, Any]] = []
    for name in sorted(set(known) | set(given)):
        spec = known.get(name)
        rows.append({
            "name": name,
            "points": given.get(name, spec.points if spec is not None else 0.0),
            "default": spec.points if spec is not None else None,
            "description": spec.description if spec is not None else "",
            "group": spec.group if spec is not None else "",
        })
    return rows
