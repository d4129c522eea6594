"""Declared scoring symbols and the points table derived from them.

Every symbol the milter can produce is declared once, by the check that
produces it (``spamwarden/milter/checks/``), as a :class:`SymbolSpec`: its
name, default points, one-line description and group.  Everything else is
derived from those declarations: the points in effect (:class:`SymbolPoints`,
``[policy.symbols]`` over the defaults), ``spamwarden symbols``, the metric
labels and ``docs/symbols.md``.

This module imports no check: the checks import it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError
from .interfaces import Action, Symbol

__all__ = ["SymbolPoints", "SymbolSpec", "check_overrides"]


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One symbol as its check declares it.

    :ivar name: the symbol, as it appears in ``X-Spam-Status`` (``DBL_OWN``).
    :ivar points: default points; ``[policy.symbols]`` overrides them.
    :ivar description: one line for ``spamwarden symbols``, reject texts and docs.
    :ivar group: the check family (``auth``, ``classifier``, ``listings``...).
    :ivar never_refuse: when non-empty the message carrying the symbol is scored
        and tagged but never refused or held; the text says why
        (``trusted sender``).
    :ivar lookup_failure: when non-empty the symbol says a lookup failed, and is
        counted in ``spamwarden_lookup_failures_total`` under this kind.
    """

    name: str
    points: float
    description: str
    group: str
    never_refuse: str = ""
    lookup_failure: str = ""


class SymbolPoints:
    """The points of each symbol: ``[policy.symbols]`` over the declared defaults.

    Immutable after construction, so one instance is shared by every milter thread.

    :param overrides: ``[policy.symbols]`` (names case-insensitive).
    :param defaults: name → default points; default every declared symbol
        (:func:`spamwarden.milter.registry.default_points`).
    """

    def __init__(
        self,
        overrides: Mapping[str, float] | None = None,
        *,
        defaults: Mapping[str, float] | None = None,
    ) -> None:
        if defaults is None:
            from .registry import default_points

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


def check_overrides(overrides: Mapping[str, float], known: Iterable[str]) -> None:
    """Refuse ``[policy.symbols]`` entries that no check declares (a typo would
    otherwise silently score nothing).

    :param overrides: ``[policy.symbols]``.
    :param known: every declared symbol name.
    :raises ConfigError: naming each unknown symbol.
    """
    names = set(known)
    unknown = sorted(k for k in (n.upper() for n in overrides) if k not in names)
    if unknown:
        raise ConfigError(
            "policy.symbols: unknown symbol" + ("s " if len(unknown) > 1 else " ")
            + ", ".join(unknown) + " (`spamwarden symbols` lists the known ones)"
        )
