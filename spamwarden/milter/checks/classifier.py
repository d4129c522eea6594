"""The content classifier: its spam probability in SpamAssassin's ``BAYES_xx`` buckets."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence

from ...config import Config
from ...errors import SpamwardenError
from ...logs import event
from ..interfaces import SiteCounts, Symbol
from ..registry import CheckBase, CheckDecl, Components, MessageContext, Phase, SymbolPoints
from ..symbols import SymbolSpec

__all__ = ["CHECK", "SYMBOLS", "ClassifierCheck", "bayes_symbols"]

log = logging.getLogger("spamwarden.milter")

_G = "classifier"
SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("BAYES_00", -1.9, "classifier: spam probability 0-1 %", _G),
    SymbolSpec("BAYES_05", -0.5, "classifier: spam probability 1-5 %", _G),
    SymbolSpec("BAYES_20", -0.001, "classifier: spam probability 5-20 %", _G),
    SymbolSpec("BAYES_40", -0.001, "classifier: spam probability 20-40 %", _G),
    SymbolSpec("BAYES_50", 0.8, "classifier: spam probability 40-60 %", _G),
    SymbolSpec("BAYES_60", 1.5, "classifier: spam probability 60-80 %", _G),
    SymbolSpec("BAYES_80", 2.0, "classifier: spam probability 80-95 %", _G),
    SymbolSpec("BAYES_95", 3.5, "classifier: spam probability 95-99 %", _G),
    SymbolSpec("BAYES_99", 5.0, "classifier: spam probability 99-100 %", _G),
    SymbolSpec("BAYES_999", 1.0, "classifier: spam probability 99.9-100 %", _G),
)

# (lower bound of probability, symbol), highest first; SpamAssassin's buckets.
_BAYES_BUCKETS: tuple[tuple[float, str], ...] = (
    (0.99, "BAYES_99"),
    (0.95, "BAYES_95"),
    (0.80, "BAYES_80"),
    (0.60, "BAYES_60"),
    (0.40, "BAYES_50"),
    (0.20, "BAYES_40"),
    (0.05, "BAYES_20"),
    (0.01, "BAYES_05"),
    (0.0, "BAYES_00"),
)


def bayes_symbols(
    probability: float,
    points: SymbolPoints,
    *,
    site: SiteCounts | None = None,
    tag_threshold: float = 5.0,
) -> list[Symbol]:
    """Classifier probability → ``BAYES_xx`` symbols (plus ``BAYES_999`` over 0.999).

    :param probability: spam probability in [0, 1]; values outside are clamped,
        NaN counts as 0.5 (no opinion).
    :param site: how much of the site's own mail the classifier has learned; until
        ``site.established`` the classifier alone cannot reach ``tag_threshold``:
        ``BAYES_999`` is not awarded and every positive bucket is scaled by one
        factor that brings the highest (``BAYES_99``) to ``tag_threshold × (0.5 +
        0.48 × site.progress)`` (at most 0.1 under the threshold): half weight at
        first, growing with the counts; the buckets keep their order and negative
        points stay.
        ``None``: full points.
    :param tag_threshold: ``policy.tag_threshold``.
    """
    p = 0.5 if math.isnan(probability) else probability
    p = min(max(p, 0.0), 1.0)
    detail = f"spam probability {p:.3f}"
    out: list[Symbol] = []
    for bound, name in _BAYES_BUCKETS:
        if p >= bound:
            out.append(points.make(name, detail))
            break
    cold = site is not None and not site.established
    if p >= 0.999 and not cold:
        out.append(points.make("BAYES_999", detail))
    if site is not None and cold:
        # one factor for every bucket, so the buckets keep their order (and the total
        # score its ranking): the highest bucket lands on the cap
        cap = max(0.0, min(tag_threshold * (0.5 + 0.48 * site.progress), tag_threshold - 0.1))
        top = max(points.points(name) for _, name in _BAYES_BUCKETS)
        positive = sum(s.points for s in out if s.points > 0)
        if positive > 0 and top > cap:
            f = cap / top
            note = (f"{detail}; points x{f:.2f}: learned {site.ham}/{site.min_ham} ham, "
                    f"{site.spam}/{site.min_spam} spam of this site")
            out = [dataclasses.replace(s, points=round(s.points * f, 3), detail=note)
                   if s.points > 0 else s for s in out]
    return out


class ClassifierCheck(CheckBase):
    """Scores the parsed view; a classifier error makes the check unavailable for
    this message (said in the headers), never a tempfail."""

    def __init__(self, parts: Components) -> None:
        assert parts.classifier is not None
        self.classifier = parts.classifier
        self.points = parts.points
        self.training = parts.cfg.training
        self.tag_threshold = parts.cfg.policy.tag_threshold

    def at_message(self, msg: MessageContext) -> Sequence[Symbol]:
        try:
            probability = float(self.classifier.spam_probability(msg.view))
        except SpamwardenError as exc:
            msg.unavailable.append(f"classifier ({exc})")
        except Exception as exc:  # noqa: BLE001 - an optional signal must not stop mail
            # A model bug would otherwise tempfail every message; score without it,
            # say so in the headers, and log it loudly.
            event(log, "classifier_error", logging.ERROR, queue_id=msg.env.queue_id or None,
                  error=f"{type(exc).__name__}: {exc}")
            msg.unavailable.append(f"classifier (error: {type(exc).__name__})")
        else:
            site = SiteCounts.of(self.classifier, self.training.min_site_ham,
                                 self.training.min_site_spam)
            return bayes_symbols(probability, self.points, site=site,
                                 tag_threshold=self.tag_threshold)
        return ()


def _build(parts: Components) -> ClassifierCheck | None:
    return ClassifierCheck(parts) if parts.classifier is not None else None


def _points(cfg: Config) -> Mapping[str, float]:
    """With SpamAssassin's rules on (``rules.bayes_scores``), the ``BAYES_*`` scores of
    the rule files: the rules' scores were fitted next to those, not next to ours."""
    if not cfg.rules.enabled:  # (the rules package is not even imported then)
        return {}
    from ...rules import classifier_scores  # says whether rules.bayes_scores is on

    return classifier_scores(cfg)


CHECK = CheckDecl(
    name="classifier",
    order=20,
    symbols=SYMBOLS,
    phases=frozenset({Phase.MESSAGE}),
    build=_build,
    configured_points=_points,
)
