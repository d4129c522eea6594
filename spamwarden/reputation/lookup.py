"""Listing lookups as the milter sees them: listed, not listed, or failed.

:class:`ListingLookup` is the Protocol the milter depends on; the Redis-backed
implementation with a bounded in-process cache lives here too (``RedisListingLookup``).
A failed lookup is never "not listed" and never "listed".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, Sequence, runtime_checkable

__all__ = ["ListingOutcome", "ListingLookup"]


@dataclass(frozen=True, slots=True)
class ListingOutcome:
    """The answer for one key (an IP or a registrable domain)."""

    status: Literal["listed", "not_listed", "failed"]
    key: str
    reason: str = ""
    code: str = ""
    expires_at: float = 0.0
    detail: str = ""


@runtime_checkable
class ListingLookup(Protocol):
    """What the milter needs from the listing store."""

    def lookup_many(self, keys: Sequence[str]) -> dict[str, ListingOutcome]:
        """Outcome for each key (IPs match CIDR listings too). Never raises:
        store trouble gives ``failed`` outcomes."""
        ...

    def record_volume(self, keys: Sequence[str]) -> None:
        """Count one accepted message for each source key (sending IP, domains);
        the complaint rate is complaints over this volume. Best effort, never raises."""
        ...
