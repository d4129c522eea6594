"""Sender authentication for the milter: SPF, DKIM and DMARC.

Public API (other components import from here):

* :func:`check_spf` -> :class:`SpfResult` (RFC 7208, pyspf)
* :func:`verify_dkim` -> tuple of :class:`DkimResult` (RFC 6376, RFC 8463, dkimpy)
* :func:`check_dmarc` -> :class:`DmarcResult` (RFC 7489)
* :func:`authenticate` -> :class:`AuthResults`, all three for one message

Every DNS lookup goes through the injected :class:`~spamwarden.resolver.Resolver`;
a temporary DNS failure gives ``temperror``, never ``pass`` and never ``fail``.
All functions are safe to call from many threads at once.
"""

from __future__ import annotations

from ._spf import SPF_RESULTS, SpfResult, check_spf

__all__ = [
    "SPF_RESULTS",
    "SpfResult",
    "check_spf",
]
