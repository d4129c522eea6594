"""The advertising-consent rules' symbols (Decree 91/2020/ND-CP).

The rules run as a :class:`~spamwarden.milter.interfaces.MessagePolicy` (at RCPT
time and at end of message, through the ``policies`` check); their symbols are
declared here, so ``[policy.symbols]``, ``spamwarden symbols`` and the docs know
them whether or not the consent registry is enabled.  The decree's hard rules get
20 points: over the default reject threshold (15) even after the negative points a
well-authenticated sender earns (DMARC_PASS, DKIM_VALID, SPF_PASS, BAYES_00
together -2.6).
"""

from __future__ import annotations

from ..registry import CheckDecl
from ..symbols import SymbolSpec

__all__ = ["CHECK", "SYMBOLS"]

_G = "consent"
SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("AD_LABELLED", 0.0, "advertising label at the start of the subject", _G),
    SymbolSpec("AD_UNLABELLED", 20.0, "advertiser's mail without the advertising label", _G),
    SymbolSpec("AD_NO_UNSUBSCRIBE", 20.0,
               "advertising without an RFC 8058 one-click unsubscribe", _G),
    SymbolSpec("AD_UNSIGNED_UNSUBSCRIBE", 3.0,
               "List-Unsubscribe not covered by a valid DKIM signature", _G),
    SymbolSpec("AD_NO_CONSENT", 20.0, "advertising without the recipient's prior consent", _G),
    SymbolSpec("AD_REFUSED", 20.0, "advertising to a recipient who refused it", _G),
    SymbolSpec("AD_OVER_CAP", 20.0, "more ads than the daily cap to one recipient", _G),
    SymbolSpec("AD_UNKNOWN_ADVERTISER", 5.0,
               "labelled advertising from no registered advertiser", _G),
    SymbolSpec("AD_REGISTRY_FAIL", 0.0, "consent registry unreachable", _G),
    SymbolSpec("AD_UNVERIFIED_HELD", 0.0,
               "ad in a registered advertiser's name, not authenticated as it, to a recipient "
               "whose consent does not allow it: held, not refused (keep it at 0 points: "
               "the reply must not depend on the recipient's choice)", _G),
)

CHECK = CheckDecl(name="consent", order=55, symbols=SYMBOLS, phases=frozenset())
