"""SPF evaluated from the resolver's memory alone, remembered until its answers expire.

At MAIL FROM the milter would hand SPF to a lookup thread; for a sender seen within
its records' TTLs every answer SPF needs is already kept by the resolver, and the
thread hand-off costs more than the evaluation.  :class:`SpfMemory` evaluates SPF
then and there against a resolver that answers from memory only, and gives up (the
lookup threads then do it) at the first question it cannot answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..resolver import DnsAnswer, KeptAnswers

__all__ = ["SpfMemory"]


class _NotKept(BaseException):
    """A question the resolver's memory cannot answer (:class:`_MemoryOnly`).

    A BaseException so that no ``except Exception`` in pyspf turns it into a result."""


class _MemoryOnly:
    """A :class:`~spamwarden.resolver.Resolver` answering from another's memory only
    (its ``kept``); :attr:`until` ends up the first expiry of the answers given."""

    def __init__(self, kept: Callable[[str, str], tuple[DnsAnswer, float] | None], *,
                 until: float) -> None:
        self._kept = kept
        self.missed = False
        self.until = until

    def query(self, name: str, rdtype: str, *, timeout: float | None = None) -> DnsAnswer:
        found = self._kept(name, rdtype)
        if found is None:
            self.missed = True
            raise _NotKept(name)
        answer, expires = found
        self.until = min(self.until, expires)
        return answer


class SpfMemory:
    """SPF results from the resolver's memory, remembered per (client IP, HELO, sender).

    :param resolver: the resolver whose kept answers are used.
    :param check_spf: ``spamwarden.milter.auth.check_spf``.
    :param timeout: SPF's DNS budget (never reached: no lookup leaves the process).
    """

    #: SPF results remembered (per client IP, HELO and sender) at most
    SIZE = 10_000

    def __init__(self, resolver: KeptAnswers, check_spf: Callable[..., Any], *,
                 timeout: float) -> None:
        self.kept = resolver.kept
        self._check_spf = check_spf
        self._timeout = timeout
        self._memo: dict[tuple[str, str, str], tuple[float, Any]] = {}

    def result(self, ip: str, helo: str, mail_from: str) -> Any | None:
        """The SPF result when every answer it needs is kept, else ``None``.

        The result is remembered for the same client IP, HELO and sender until the
        first of the answers it was computed from expires: evaluating again could not
        give anything else before then."""
        now = time.monotonic()
        key = (ip, helo, mail_from)
        memo = self._memo.get(key)
        if memo is not None and memo[0] > now:
            return memo[1]
        memory = _MemoryOnly(self.kept, until=now + 3600.0)
        try:
            result = self._check_spf(memory, ip=ip, mail_from=mail_from, helo=helo,
                                     timeout=self._timeout)
        except _NotKept:
            return None
        if memory.missed:  # pyspf swallowed the miss somewhere (explanations, ptr)
            return None
        if len(self._memo) >= self.SIZE:
            self._memo = {}
        self._memo[key] = (memory.until, result)
        return result
