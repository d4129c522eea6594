"""Hourly counters for the console's charts: the milter's actions, complaints and
listing changes per hour, cheap to read for any volume (the message history is a
capped stream and cannot be counted at volume).

Each counter is written by the script that already writes the thing it counts, in
the same round trip: the milter's verdicts by the history script
(:class:`~spamwarden.reputation.history.HistoryRecorder`), complaints by the
complaint store's script (``reputation/lua/complaint_store.lua``), listings by the
listing store's scripts (``listing_put``, ``listing_remove``, ``listing_expire``).
A failed counter write is handled as its writer's failure is (the milter's history
is best effort, so a counter can never change a message's fate).

Redis keys (hash tag ``{sw}``; ``<hour>`` is the Unix time of the hour's start,
UTC, a multiple of 3600 — :func:`hour_of`):

``sw:{sw}:stats:actions:<hour>``
    hash, field = the milter's action (``accept``, ``tag``, ``quarantine``,
    ``reject``, ``tempfail``), value = verdicts that hour; TTL :data:`STATS_TTL`.
``sw:{sw}:stats:complaints:<hour>``
    hash, fields ``matched`` (a spam report matching a delivery here),
    ``unmatched`` (a spam report that matched none) and ``ham`` (a not-spam
    report); only new reports count (not duplicates, not rate-limited ones);
    TTL :data:`STATS_TTL`.
``sw:{sw}:stats:listings:<hour>``
    hash, fields ``listed``, ``extended``, ``delisted``, ``expired``: listing
    changes written that hour (the store's clock); TTL :data:`STATS_TTL`.

The TTL (8 days) is written by the scripts each time they count; it leaves a full
7-day chart plus the hour in progress.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "HOUR",
    "SERIES",
    "STATS_TTL",
    "aread_hours",
    "hour_of",
    "rebin",
    "stats_key",
]

HOUR = 3600
#: seconds a counter lives after its last write (also in the three Lua scripts)
STATS_TTL = 8 * 86400
#: the counted series
SERIES = ("actions", "complaints", "listings")
#: hours one read covers at most
MAX_HOURS = 8 * 24


def hour_of(t: float) -> int:
    """The start of the UTC hour ``t`` (Unix seconds) falls in."""
    return int(t // HOUR) * HOUR


def stats_key(series: str, hour: int) -> str:
    """The counter hash of ``series`` for the hour starting at ``hour``.

    :raises ValueError: ``series`` is not one of :data:`SERIES`.
    """
    if series not in SERIES:
        raise ValueError(f"unknown statistics series {series!r}")
    return f"sw:{{sw}}:stats:{series}:{hour_of(hour)}"


def _counts(raw: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, v in (raw or {}).items():
        name = k.decode() if isinstance(k, bytes) else str(k)
        try:
            n = int(v)
        except (TypeError, ValueError):
            continue
        if n > 0:
            out[name] = n
    return out


async def aread_hours(client: Any, series: str, *, end: float, hours: int
                      ) -> list[tuple[int, dict[str, int]]]:
    """The counts of the ``hours`` hours up to and including the one ``end`` falls in,
    oldest first, read in one pipelined round trip.

    :param client: a ``redis.asyncio.Redis``.
    :param series: one of :data:`SERIES`.
    :param end: Unix seconds; its hour is the last one.
    :param hours: how many hours (1 to :data:`MAX_HOURS`).
    :returns: ``(hour start, {field: count})`` per hour; an hour without counts has ``{}``.
    :raises StoreError: Redis failed.
    :raises ValueError: an unknown series.
    """
    import redis

    from ..redisconn import store_error

    hours = max(1, min(hours, MAX_HOURS))
    last = hour_of(end)
    starts = [last - HOUR * i for i in range(hours - 1, -1, -1)]
    keys = [stats_key(series, h) for h in starts]
    try:
        async with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            raw = await pipe.execute()
    except redis.RedisError as exc:
        raise store_error(exc) from exc
    return [(h, _counts(r)) for h, r in zip(starts, raw, strict=True)]


def rebin(hours: Sequence[tuple[int, dict[str, int]]], size: int
          ) -> list[tuple[int, dict[str, int]]]:
    """Hourly counts summed into bins of ``size`` hours, aligned on multiples of
    ``size`` hours since the epoch (so 24-hour bins are UTC days).

    :param hours: ``(hour start, counts)``, oldest first.
    :param size: hours per bin (at least 1).
    :returns: ``(bin start, counts)`` oldest first, one per bin that any hour falls in.
    """
    width = max(1, size) * HOUR
    out: dict[int, dict[str, int]] = {}
    for start, counts in hours:
        b = out.setdefault(int(start // width) * width, {})
        for k, n in counts.items():
            b[k] = b.get(k, 0) + n
    return sorted(out.items())
