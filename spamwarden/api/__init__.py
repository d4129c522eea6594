"""spamwarden.api: the HTTP API (aiohttp).

Modules: :mod:`.app` (the application, the OpenAPI document, ``spamwarden api``),
:mod:`._http` (what every route module shares: :class:`ApiModule`, JSON errors,
operator bearer-token auth, body parsing), :mod:`.listings` (listing lookup and
delisting), :mod:`.consent` (the consent registry's routes and one-click unsubscribe).

Dependencies go one way: this package imports :mod:`spamwarden.reputation` and
:mod:`spamwarden.consent`, never the reverse. The package re-exports the names a
route module needs; importing it loads aiohttp.
"""

from ._http import ApiContext, ApiModule, json_error, operator_only

__all__ = ["ApiContext", "ApiModule", "json_error", "operator_only"]
