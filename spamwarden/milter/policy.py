"""Scoring: every signal is a named :class:`Symbol` with points; the verdict sums them.

Pure functions over results and configuration, shared by the milter and
``spamwarden check``.  The points of a symbol come from ``[policy.symbols]``
when the operator set them, else from :data:`DEFAULT_POINTS`, else from the
producer (a :class:`~spamwarden.milter.interfaces.MessagePolicy` may bring its
own symbols).

Actions, from mildest to hardest: ``accept`` < ``tag`` < ``quarantine`` <
``tempfail`` < ``reject``.  The score picks one through the thresholds; a
symbol may demand at least a given action (``Symbol.action``), e.g.
``DMARC_REJECT`` demands ``reject`` whatever the score.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import MilterConfig, PolicyConfig
from .interfaces import Symbol

if TYPE_CHECKING:
    from ..training.classifier import SiteCounts

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

ACTIONS: tuple[str, ...] = ("accept", "tag", "quarantine", "tempfail", "reject")
_RANK = {a: i for i, a in enumerate(ACTIONS)}

# Points of the built-in symbols; ``[policy.symbols]`` overrides any of them.
# SpamAssassin's names and scale where it has the same signal, so existing
# rules and habits carry over; thresholds default to tag 5 / quarantine 10 / reject 15.
DEFAULT_POINTS: Mapping[str, float] = types.MappingProxyType(
    {
        # SPF, RFC 7208 results for MAIL FROM (or HELO when MAIL FROM is empty)
        "SPF_PASS": -0.1,
        "SPF_FAIL": 3.0,
        "SPF_SOFTFAIL": 1.0,
        "SPF_NEUTRAL": 0.2,
        "SPF_NONE": 0.2,
        "SPF_TEMPERROR": 0.0,
        "SPF_PERMERROR": 0.5,
        "SPF_HELO_PASS": -0.1,
        "SPF_HELO_FAIL": 2.0,
        "SPF_HELO_SOFTFAIL": 0.7,
        "SPF_HELO_NEUTRAL": 0.1,
        "SPF_HELO_NONE": 0.2,
        "SPF_HELO_TEMPERROR": 0.0,
        "SPF_HELO_PERMERROR": 0.3,
        # DKIM, RFC 6376 / RFC 8601 results, once per result kind
        "DKIM_VALID": -0.1,
        "DKIM_INVALID": 1.0,
        "DKIM_NONE": 0.0,
        "DKIM_NEUTRAL": 0.1,
        "DKIM_POLICY": 0.1,
        "DKIM_TEMPERROR": 0.0,
        "DKIM_PERMERROR": 0.5,
        # DMARC, RFC 7489
        "DMARC_PASS": -0.5,
        "DMARC_REJECT": 15.0,
        "DMARC_QUARANTINE": 5.0,
        "DMARC_FAIL_NONE": 1.0,
        "DMARC_NA": 0.0,
        "DMARC_TEMPERROR": 0.0,
        "DMARC_PERMERROR": 0.5,
        # Content classifier: SpamAssassin's probability buckets
        "BAYES_00": -1.9,
        "BAYES_05": -0.5,
        "BAYES_20": -0.001,
        "BAYES_40": -0.001,
        "BAYES_50": 0.8,
        "BAYES_60": 1.5,
        "BAYES_80": 2.0,
        "BAYES_95": 3.5,
        "BAYES_99": 5.0,
        "BAYES_999": 1.0,
        # Own listings (complaint-fed), per kind of indicator
        "RBL_OWN": 6.0,
        "DBL_OWN": 6.0,
        "URIBL_OWN": 5.0,
        "RBL_LOOKUP_FAILED": 0.0,
        "DBL_LOOKUP_FAILED": 0.0,
        "URIBL_LOOKUP_FAILED": 0.0,
        # Third-party DNSBLs named in rbl.third_party_zones
        "RBL_THIRD_PARTY": 3.0,
        "RBL_THIRD_PARTY_LOOKUP_FAILED": 0.0,
        # SMTP AUTH or milter.trusted_networks: scored and tagged, never refused or held
        "ALL_TRUSTED": 0.0,
        # every recipient is an [intake] address: scored and tagged, never refused or held
        "TO_REPORT_ADDRESS": 0.0,
    }
)

_BAYES_RANGES = {
    "BAYES_00": "0-1", "BAYES_05": "1-5", "BAYES_20": "5-20", "BAYES_40": "20-40",
    "BAYES_50": "40-60", "BAYES_60": "60-80", "BAYES_80": "80-95", "BAYES_95": "95-99",
    "BAYES_99": "99-100", "BAYES_999": "99.9-100",
}
_SPF_WORDS = {
    "PASS": "HELO name authorizes the client", "FAIL": "HELO name does not authorize the client",
    "SOFTFAIL": "HELO name probably does not authorize the client",
    "NEUTRAL": "HELO name makes no assertion", "NONE": "HELO name publishes no SPF record",
    "TEMPERROR": "temporary DNS error on the HELO name",
    "PERMERROR": "the HELO name's SPF record is broken",
}

SYMBOL_DESCRIPTIONS: Mapping[str, str] = types.MappingProxyType(
    {
        **{k: f"classifier: spam probability {v} %" for k, v in _BAYES_RANGES.items()},
        **{f"SPF_HELO_{k}": f"SPF (null sender): {v}" for k, v in _SPF_WORDS.items()},
        "DKIM_NEUTRAL": "DKIM: a signature was not verified (over the size limit)",
        "DKIM_POLICY": "DKIM: a signature is unacceptable to us (expired, weak key)",
        "SPF_PASS": "SPF: sender is authorized for the MAIL FROM domain",
        "SPF_FAIL": "SPF: sender is not authorized for the MAIL FROM domain",
        "SPF_SOFTFAIL": "SPF: MAIL FROM domain says the sender is probably not authorized",
        "SPF_NEUTRAL": "SPF: MAIL FROM domain makes no assertion",
        "SPF_NONE": "SPF: MAIL FROM domain publishes no SPF record",
        "SPF_TEMPERROR": "SPF: temporary DNS error",
        "SPF_PERMERROR": "SPF: the SPF record is broken",
        "DKIM_VALID": "DKIM: a signature verified",
        "DKIM_INVALID": "DKIM: a signature did not verify",
        "DKIM_NONE": "DKIM: message is not signed",
        "DKIM_TEMPERROR": "DKIM: temporary error fetching a key",
        "DKIM_PERMERROR": "DKIM: a signature or key is unusable",
        "DMARC_PASS": "DMARC: aligned SPF or DKIM pass",
        "DMARC_REJECT": "DMARC: fails and the domain asks to reject",
        "DMARC_QUARANTINE": "DMARC: fails and the domain asks to quarantine",
        "DMARC_FAIL_NONE": "DMARC: fails; the domain asks for no action",
        "DMARC_NA": "DMARC: the From domain publishes no policy",
        "DMARC_TEMPERROR": "DMARC: temporary DNS error",
        "DMARC_PERMERROR": "DMARC: the policy record is broken",
        "RBL_OWN": "client IP is on our blocklist",
        "DBL_OWN": "a sender domain is on our blocklist",
        "URIBL_OWN": "a linked domain is on our blocklist",
        "RBL_LOOKUP_FAILED": "client IP blocklist lookup failed",
        "DBL_LOOKUP_FAILED": "sender domain blocklist lookup failed",
        "URIBL_LOOKUP_FAILED": "linked domain blocklist lookup failed",
        "RBL_THIRD_PARTY": "client IP is on a third-party DNSBL",
        "RBL_THIRD_PARTY_LOOKUP_FAILED": "third-party DNSBL lookup failed",
        "ALL_TRUSTED": "sender authenticated or in milter.trusted_networks",
        "TO_REPORT_ADDRESS": "every recipient is an intake address (report, ham, optout)",
    }
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


def action_rank(action: str) -> int:
    """Severity of an action (``accept`` 0 .. ``reject`` 4); unknown names rank 0."""
    return _RANK.get(action, 0)


class SymbolPoints:
    """The points of each symbol: ``[policy.symbols]`` over :data:`DEFAULT_POINTS`.

    Immutable after construction, so one instance is shared by every milter thread.
    """

    def __init__(self, overrides: Mapping[str, float] | None = None) -> None:
        self._points = dict(DEFAULT_POINTS)
        self._overrides = {k.upper(): float(v) for k, v in (overrides or {}).items()}
        self._points.update(self._overrides)

    def points(self, name: str, default: float = 0.0) -> float:
        """Points of ``name``; ``default`` when neither config nor defaults know it."""
        return self._points.get(name, default)

    def make(self, name: str, detail: str = "", *, action: str = "") -> Symbol:
        """A built-in symbol with its configured points."""
        return Symbol(name, self.points(name), detail, action)

    def apply(self, symbol: Symbol) -> Symbol:
        """``symbol`` with the operator's points when ``[policy.symbols]`` names it."""
        override = self._overrides.get(symbol.name)
        if override is None or override == symbol.points:
            return symbol
        return dataclasses.replace(symbol, points=override)

    def table(self) -> dict[str, float]:
        """Every known symbol and its points (for ``spamwarden check --json``)."""
        return dict(sorted(self._points.items()))


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
        ``BAYES_999`` is not awarded and the positive points together are scaled
        down to at most ``tag_threshold × (0.5 + 0.48 × site.progress)`` (and
        0.1 under the threshold), so they grow with the counts.  ``None``: full
        points.
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
        cap = max(0.0, min(tag_threshold * (0.5 + 0.48 * site.progress), tag_threshold - 0.1))
        positive = sum(s.points for s in out if s.points > 0)
        if positive > cap:
            f = cap / positive
            note = (f"{detail}; points x{f:.2f}: learned {site.ham}/{site.min_ham} ham, "
                    f"{site.spam}/{site.min_spam} spam of this site")
            out = [dataclasses.replace(s, points=round(s.points * f, 3), detail=note)
                   if s.points > 0 else s for s in out]
    return out


def _result_word(value: Any) -> str:
    return str(value or "none").strip().lower()


def auth_symbols(auth: Any, points: SymbolPoints, *, reject_spf_fail: bool) -> list[Symbol]:
    """SPF, DKIM and DMARC results → symbols.

    :param auth: an ``AuthResults`` (``spf``, ``dkim``, ``dmarc`` attributes,
        RFC 8601 result words), or ``None`` when authentication did not run.
    :param reject_spf_fail: SPF ``fail`` demands ``reject`` (``milter.reject_spf_fail``).
    :returns: symbols in SPF, DKIM, DMARC order.  DMARC ``fail`` with the
        applied policy ``reject`` demands ``reject`` (RFC 7489 §6.6.4, §10.3);
        ``quarantine`` demands ``quarantine``.
    """
    out: list[Symbol] = []
    if auth is None:
        return out
    spf = getattr(auth, "spf", None)
    if spf is not None:
        result = _result_word(spf.result)
        scope = _result_word(getattr(spf, "scope", "mailfrom"))
        prefix = "SPF_HELO_" if scope == "helo" else "SPF_"
        domain = getattr(spf, "domain", "") or ""
        detail = f"spf={result} for {domain}" if domain else f"spf={result}"
        action = "reject" if result == "fail" and reject_spf_fail else ""
        out.append(points.make(prefix + result.upper(), detail, action=action))
    dkims = tuple(getattr(auth, "dkim", ()) or ())
    if not dkims:
        out.append(points.make("DKIM_NONE", "no DKIM-Signature"))
    seen: dict[str, list[str]] = {}
    for sig in dkims:
        result = _result_word(sig.result)
        name = {"pass": "DKIM_VALID", "fail": "DKIM_INVALID"}.get(result, "DKIM_" + result.upper())
        seen.setdefault(name, []).append(str(getattr(sig, "domain", "") or "?"))
    for name, domains in seen.items():
        out.append(points.make(name, "d=" + ",".join(domains[:5])))
    dmarc = getattr(auth, "dmarc", None)
    if dmarc is not None:
        result = _result_word(dmarc.result)
        domain = getattr(dmarc, "from_domain", "") or ""
        applied = _result_word(getattr(dmarc, "applied_policy", None))
        published = _result_word(getattr(dmarc, "policy", None))
        if result == "pass":
            out.append(points.make("DMARC_PASS", f"aligned pass for {domain}"))
        elif result == "fail":
            if applied == "reject":
                out.append(points.make(
                    "DMARC_REJECT",
                    f"DMARC policy of {domain} is reject and the message fails it",
                    action="reject",
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
        elif result in ("temperror", "permerror"):
            out.append(points.make("DMARC_" + result.upper(), f"{domain}"))
        else:
            out.append(points.make("DMARC_NA", f"no DMARC policy for {domain or 'From'}"))
    return out


@dataclass(frozen=True, slots=True)
class Decision:
    """The action the symbols lead to.

    :ivar score: the sum of points, rounded to one decimal (the figure shown in
        ``X-Spam-Status`` is the figure compared with the thresholds).
    :ivar reason: one line saying why, for reject texts and logs.
    :ivar main: the symbol behind the action, or ``None`` for ``accept``.
    """

    action: str
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
    action = by_score
    main: Symbol | None = None
    if forced is not None and action_rank(forced.action) >= action_rank(by_score):
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
