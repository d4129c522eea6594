"""Declared scoring symbols and the points table derived from them.

Every symbol the milter can produce is declared once, by the check that
produces it (``spamwarden/milter/checks/``), as a :class:`SymbolSpec`: its
name, default points, one-line description and group.  Everything else is
derived from those declarations: the points in effect
(:class:`~spamwarden.milter.registry.SymbolPoints`, ``[policy.symbols]`` over the defaults), ``spamwarden symbols``, the metric
labels and ``docs/symbols.md``.

This module imports no check: the checks import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["SymbolSpec", "check_overrides"]


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
