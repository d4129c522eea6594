"""The texts of the milter's end-of-message replies, in ``i18n.language``.

Pure functions over a :class:`~spamwarden.milter.verdict.Verdict`: the adapter
(:mod:`spamwarden.milter.app`) picks the code and the enhanced status code (RFC 3463),
which never change with the language, and sends the text these return.

English is the verdict's own reason, as it always was. Another language cannot
translate a check's free-text detail, so the reason is rebuilt from the verdict's
parts: the score against the threshold and the top symbols, or the symbol that forced
the action (with a sentence of its own where :mod:`spamwarden.i18n` has one, else
"fails the check NAME"). Symbol names, the listed key and the lookup URL are machine
parts and stay as they are. Every text is ASCII (:func:`spamwarden.i18n.smtp_text`).
"""

from __future__ import annotations

from ..config import Config
from ..i18n import MESSAGES, smtp_text
from .verdict import Verdict

__all__ = ["error_text", "overflow_text", "reason_text", "reject_text", "tempfail_text"]


def reason_text(language: str, verdict: Verdict, cfg: Config) -> str:
    """Why ``verdict`` refuses or defers the message, in ``language`` (ASCII).

    :param language: ``en`` gives ``verdict.reason`` unchanged; another language
        rebuilds it (see the module docstring).
    :param verdict: a ``reject`` or ``tempfail`` verdict.
    :param cfg: ``[policy]``'s thresholds, for a verdict that does not carry its own.
    :returns: one line (the caller's reply sanitising makes the English one ASCII).
    """
    if language == "en":
        return verdict.reason
    main = next((s for s in verdict.symbols if s.name == verdict.main_symbol), None)
    if main is not None and main.action and main.action == verdict.action:
        msg_id = f"milter.reason.{main.name}"
        if msg_id in MESSAGES:
            domain = verdict.view.from_domain if verdict.view is not None else ""
            return smtp_text(language, msg_id, domain=domain or "?")
        return smtp_text(language, "milter.reason.rule", symbol=main.name)
    # the recipient's settings when they applied, else [policy]
    limits = verdict.thresholds or cfg.policy
    threshold = {"reject": limits.reject_threshold,
                 "quarantine": limits.quarantine_threshold}.get(verdict.action,
                                                               limits.tag_threshold)
    top = sorted((s for s in verdict.symbols if s.points > 0), key=lambda s: (-s.points, s.name))
    return smtp_text(language, "milter.reason.score", score=f"{verdict.score:.1f}",
                     threshold=f"{threshold:.1f}",
                     symbols=",".join(s.name for s in top[:3]) or "-")


def reject_text(language: str, verdict: Verdict, cfg: Config) -> str:
    """``message rejected as spam: <reason>; see <lookup URL>`` in ``language`` (ASCII).

    The URL is ``milter.lookup_url``; for a listing it names the listed key
    (``https://bl.example.net/lookup/192.0.2.7``), falling back to ``rbl.lookup_url``
    so a listed sender always learns where to ask for delisting.
    """
    reason = reason_text(language, verdict, cfg)
    url = cfg.milter.lookup_url
    if verdict.listed_key:
        url = url or cfg.rbl.lookup_url
        if url.endswith(("/", "=")):
            url += verdict.listed_key
    if url:
        return smtp_text(language, "milter.reject_see", reason=reason, url=url)
    return smtp_text(language, "milter.reject", reason=reason)


def tempfail_text(language: str, verdict: Verdict, cfg: Config) -> str:
    """``try again later: <reason>`` in ``language`` (ASCII)."""
    return smtp_text(language, "milter.tempfail", reason=reason_text(language, verdict, cfg))


def error_text(language: str, action: str) -> str:
    """The text of the ``milter.on_error`` reply (``reject`` or ``tempfail``), ASCII."""
    return smtp_text(language, "milter.error_reject" if action == "reject"
                     else "milter.error_tempfail")


def busy_text(language: str) -> str:
    """The text of ``451 4.3.2``: no room under ``milter.max_scan_bytes_in_flight``."""
    return smtp_text(language, "milter.busy")


def overflow_text(language: str, limit: int) -> str:
    """The text refusing a message with more than ``limit`` watched header fields."""
    return smtp_text(language, "milter.too_many_fields", limit=limit)
