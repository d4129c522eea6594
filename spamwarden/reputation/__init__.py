"""spamwarden.reputation: the Redis store and key scheme, complaint intake and report
parsing, the listing engine, the consent and advertiser registry, and the HTTP API.

Import the submodule you need (``spamwarden.reputation.store``, ``.engine``, ...);
the package itself re-exports nothing, so importing it stays cheap for the milter.
"""

__all__: list[str] = []
