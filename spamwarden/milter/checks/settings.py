"""The operator's sender lists: ``ALLOWLIST`` and ``DENYLIST``.

Entries come from ``spamwarden allow`` / ``deny``, the API and ``settings.allow`` /
``settings.deny`` (:mod:`spamwarden.settings.model` says what each kind matches).
An allow entry by domain or address counts only when the From domain is
authenticated - SPF passed for an aligned MAIL FROM domain, or a DKIM signature
verified for an aligned ``d=`` (relaxed, RFC 7489 §3.1) - so a forged From of an
allow-listed partner is scored like any other mail.  A deny entry applies on any
match and demands a reject.  Both are symbols, shown in ``X-Spam-Status`` with the
entry that matched.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...mail import canonical_address, normalize_domain
from ...settings.model import Identity
from .._dmarc import identifiers_aligned
from ..interfaces import SettingsSource, Symbol
from ..registry import CheckBase, CheckDecl, Components, MessageContext, Phase
from ..symbols import SymbolSpec

__all__ = ["CHECK", "SYMBOLS", "SenderListsCheck", "identity"]

_G = "settings"
SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("ALLOWLIST", -20.0,
               "the sender matches an allow entry (client network, verified DKIM d=, or an "
               "authenticated From domain or address)", _G),
    SymbolSpec("DENYLIST", 20.0,
               "the sender matches a deny entry (client network, verified DKIM d=, From or "
               "MAIL FROM domain or address); the message is rejected", _G),
)


def identity(msg: MessageContext, *, max_dkim: int = 5) -> Identity:
    """What the lists match for one message: client IP, MAIL FROM, From, whether From is
    authenticated (SPF or DKIM aligned with it) and the verified DKIM ``d=``."""
    view, env, auth = msg.view, msg.env, msg.auth
    from_domain = view.from_domain or ""
    dkim: list[str] = []
    spf_ok = False
    if auth is not None:
        # d= as the signature wrote it (a U-label, a trailing dot): entries are A-labels
        dkim = [n for n in (normalize_domain(d.domain) for d in auth.dkim[:max_dkim]
                            if str(d.result).lower() == "pass" and d.domain) if n]
        spf = auth.spf
        spf_ok = (spf is not None and str(spf.result).lower() == "pass"
                  and spf.scope == "mailfrom" and bool(spf.domain) and bool(from_domain)
                  and identifiers_aligned(spf.domain, from_domain, "r"))
    authenticated = bool(from_domain) and (
        spf_ok or any(identifiers_aligned(d, from_domain, "r") for d in dkim))
    return Identity(
        client_ip=env.client_ip,
        mail_from=canonical_address(env.mail_from[:512])[:254] if env.mail_from else "",
        from_address=canonical_address(view.from_address[:512])[:254]
        if view.from_address else "",
        from_domain=from_domain,
        from_authenticated=authenticated,
        dkim_domains=tuple(dkim),
    )


class SenderListsCheck(CheckBase):
    """``ALLOWLIST`` / ``DENYLIST`` from the current settings snapshot."""

    def __init__(self, settings: SettingsSource, parts: Components) -> None:
        self.settings = settings
        self.make = parts.points.make
        self._max_dkim = parts.cfg.milter.max_dkim_signatures

    def at_message(self, msg: MessageContext) -> Sequence[Symbol]:
        snap = self.settings.current()
        if snap.empty:
            return ()
        who = identity(msg, max_dkim=self._max_dkim)
        out: list[Symbol] = []
        allowed = snap.allowed(who)
        if allowed:
            out.append(self.make("ALLOWLIST", f"allow-listed {allowed}"))
        denied = snap.denied(who)
        if denied:
            out.append(self.make("DENYLIST", f"deny-listed {denied}", action="reject"))
        return out


def _build(parts: Components) -> SenderListsCheck | None:
    if parts.settings is None:
        return None
    return SenderListsCheck(parts.settings, parts)


CHECK = CheckDecl(
    name="settings",
    order=85,
    symbols=SYMBOLS,
    phases=frozenset({Phase.MESSAGE}),
    build=_build,
)
