"""Scoring: every signal is a named :class:`Symbol` with points; the verdict sums them.

Pure functions over results and configuration, shared by the milter and
``spamwarden check``.  The points of a symbol come from ``[policy.symbols]``
when the operator set them, else from :data:`DEFAULT_POINTS` (the defaults the
checks declare, :mod:`spamwarden.milter.checks`), else from the producer (a :class:`~spamwarden.milter.interfaces.MessagePolicy` may bring its
own symbols).

Actions, from mildest to hardest: ``accept`` < ``tag`` < ``quarantine`` <
``tempfail`` < ``reject``.  The score picks one through the thresholds; a
symbol may demand at least a given action (``Symbol.action``), e.g.
``DMARC_REJECT`` demands ``reject`` whatever the score.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..config import MilterConfig, PolicyConfig
from .checks.auth import auth_symbols
from .checks.classifier import bayes_symbols
from .interfaces import Action, Symbol
from .registry import SymbolPoints, declared_symbols, default_points

__all__ = [
    "ACTIONS",
    "DEFAULT_POINTS",
    "SYMBOL_DESCRIPTIONS",
    "Decision",
    "SymbolPoints",
    "action_rank",
    "auth_symbols",
    "bayes_symbols",
    "decide",
]

ACTIONS: tuple[Action, ...] = ("accept", "tag", "quarantine", "tempfail", "reject")
_RANK: dict[str, int] = {a: i for i, a in enumerate(ACTIONS)}

# Points and descriptions of every declared symbol (the checks' SymbolSpec); ``[policy.symbols]``
# overrides the points.  SpamAssassin's names and scale where it has the same signal, so
# existing rules and habits carry over; thresholds default to tag 5 / quarantine 10 / reject 15.
DEFAULT_POINTS: Mapping[str, float] = types.MappingProxyType(dict(default_points()))
SYMBOL_DESCRIPTIONS: Mapping[str, str] = types.MappingProxyType(
    {s.name: s.description for s in declared_symbols()}
)


def action_rank(action: str) -> int:
    """Severity of an action (``accept`` 0 .. ``reject`` 4); unknown names rank 0."""
    return _RANK.get(action, 0)


@dataclass(frozen=True, slots=True)
class Decision:
    """The action the symbols lead to.

    :ivar score: the sum of points, rounded to one decimal (the figure shown in
        ``X-Spam-Status`` is the figure compared with the thresholds).
    :ivar reason: one line saying why, for reject texts and logs.
    :ivar main: the symbol behind the action, or ``None`` for ``accept``.
    """

    action: Action
    score: float
    reason: str
    main: Symbol | None


def decide(
    symbols: Sequence[Symbol], policy: PolicyConfig, milter: MilterConfig
) -> Decision:
    """Sum ``symbols`` and pick the action.

    Score ≥ ``reject_threshold`` → reject; ≥ ``quarantine_threshold`` →
    quarantine (``tag`` instead when ``milter.quarantine = "tag"``); ≥
    ``tag_threshold`` → tag; else accept.  A symbol's own ``action`` raises
    the result to at least that action.
    """
    score = round(sum(s.points for s in symbols) + 0.0, 1) + 0.0
    by_score: Action
    if score >= policy.reject_threshold:
        by_score = "reject"
    elif score >= policy.quarantine_threshold:
        by_score = "quarantine"
    elif score >= policy.tag_threshold:
        by_score = "tag"
    else:
        by_score = "accept"
    forced: Symbol | None = None
    for s in symbols:
        if s.action and (forced is None or action_rank(s.action) > action_rank(forced.action)):
            forced = s
    action: Action = by_score
    main: Symbol | None = None
    if forced is not None and forced.action and (
            action_rank(forced.action) >= action_rank(by_score)):
        action = forced.action
        main = forced
        reason = forced.detail or SYMBOL_DESCRIPTIONS.get(forced.name, forced.name)
        reason = f"{reason} ({forced.name})"
    else:
        top = _top(symbols)
        main = top[0] if top and action != "accept" else None
        names = ",".join(s.name for s in top[:3])
        threshold = {
            "reject": policy.reject_threshold,
            "quarantine": policy.quarantine_threshold,
            "tag": policy.tag_threshold,
        }.get(action)
        if threshold is None:
            reason = f"score {score:.1f} below {policy.tag_threshold:.1f}"
        else:
            reason = f"spam score {score:.1f} >= {threshold:.1f} ({names or 'no symbols'})"
    if action == "quarantine" and milter.quarantine == "tag":
        action = "tag"
    return Decision(action, score, reason, main)


def _top(symbols: Iterable[Symbol]) -> list[Symbol]:
    return sorted((s for s in symbols if s.points > 0), key=lambda s: (-s.points, s.name))
