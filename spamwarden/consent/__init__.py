"""spamwarden.consent: the advertising-consent registry (Decree 91/2020/ND-CP rules as
defaults).

Modules: :mod:`.registry` (advertisers, consents, refusals, the daily cap; Redis keys
``sw:{sw}:adv*``, ``consent:*``, ``refusal:*``, ``dne``, ``sent:*``, ``rcpt-adv:*``,
``consent-log``), :mod:`.policy` (the milter's consent rules), :mod:`.unsubscribe`
(signed one-click tokens, RFC 8058), :mod:`.optout` (``optout@`` and the worker's
ad-complaint hook), :mod:`.confirmations` (the single confirmation mail),
:mod:`.texts` (page, reply and SMTP texts), :mod:`.records` (times and exports shared
by the CLI and the API), :mod:`.cli` (the consent commands).

The package re-exports the registry's record types; import other modules directly.
It never imports :mod:`spamwarden.api` (the HTTP routes live there and import this).
"""

from .registry import (
    GLOBAL,
    METHODS,
    Advertiser,
    ConsentError,
    ConsentRecord,
    RedisConsentRegistry,
    RefusalRecord,
)

__all__ = [
    "GLOBAL",
    "METHODS",
    "Advertiser",
    "ConsentError",
    "ConsentRecord",
    "RedisConsentRegistry",
    "RefusalRecord",
]
