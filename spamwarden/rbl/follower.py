"""Keeps the DNS index in step with Redis: one full load, then the change stream.

Start-up (and any full reload): remember the newest change stream ID, read the
serial, scan the listings hash in batches (HSCAN, so memory stays bounded),
then replay the stream from the remembered ID.  Replaying a change twice is
harmless (``listed``/``extended`` set, ``delisted``/``expired`` remove), so
changes written during the scan are never lost.

Afterwards ``XREAD BLOCK`` delivers each change as it is written; nothing
re-reads the whole hash.  Every entry carries the serial (+1 per change); a
jump in it means the stream was trimmed past our position (we were away too
long), and the index is reloaded in full.  When Redis cannot be reached the
server keeps answering from the index it has, logs it once, counts it in
``spamwarden_redis_errors_total{component="rbl"}``, retries with back-off and
catches up when Redis is back.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..logs import event
from ..reputation.listings import CHANGES_KEY, LISTINGS_KEY, SERIAL_KEY
from .responder import DnsblResponder
from .transfer import listing_records, section_of
from .zone import DnsblZone

__all__ = ["ListingFollower"]

log = logging.getLogger("spamwarden.rbl")

_KINDS = ("ip", "cidr", "domain")


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _parse_listings(values: Any, now: float) -> Iterator[tuple[str, Any, str, float]]:
    for raw in values:
        try:
            d = json.loads(raw)
            kind = d["kind"]
            expires_at = float(d["expires_at"])
            if kind in _KINDS and expires_at > now:
                yield str(d["key"]), kind, str(d["reason"]), expires_at
        except (ValueError, KeyError, TypeError):
            continue


class ListingFollower:
    """Loads the listings into a :class:`DnsblResponder`'s zone and follows the changes.

    :param responder: whose zone is replaced on full loads and updated on changes.
    :param client: a ``redis.asyncio.Redis`` (decode_responses off) whose socket
        timeout exceeds ``block_ms``.
    :param block_ms: how long one XREAD waits for changes.
    :param batch: HSCAN and XREAD batch size.
    :param clock: Unix time in seconds.
    """

    def __init__(self, responder: DnsblResponder, client: Any, *, block_ms: int = 1000,
                 batch: int = 5000, retry_max: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.responder = responder
        self.redis = client
        self.block_ms = block_ms
        self.batch = batch
        self.retry_max = retry_max
        self.clock = clock
        self.last_id: bytes = b"0-0"
        self.loaded = False
        self.redis_up = False
        self.loads = 0
        self.applied = 0
        self._reload = asyncio.Event()

    def request_reload(self) -> None:
        """Reload everything at the next opportunity (SIGHUP)."""
        self._reload.set()

    async def load(self) -> None:
        """Read every listing into a fresh index and switch the responder to it.

        :raises redis.RedisError: Redis failed (the old index stays in use).
        """
        started = time.monotonic()
        r = self.redis
        newest = await r.xrevrange(CHANGES_KEY, count=1)
        start_id = newest[0][0] if newest else b"0-0"
        serial = int(await r.get(SERIAL_KEY) or 0)
        zone = DnsblZone()
        zone.begin_load()
        cursor: int = 0
        now = self.clock()
        skipped = 0
        while True:
            cursor, chunk = await self._hscan(cursor)
            skipped += zone.load_batch(_parse_listings(chunk.values(), now))
            if not cursor:
                break
        zone.finish_load()
        zone.serial = serial
        # The index lives as long as the process: keep it out of the collector's scans.
        gc.collect()
        gc.freeze()
        self.last_id = start_id if isinstance(start_id, bytes) else str(start_id).encode()
        self.responder.use_zone(zone)
        self.responder.ready = True
        self.loaded = True
        self.loads += 1
        self._reload.clear()
        event(log, "rbl_index_loaded", listings=len(zone), serial=serial, skipped=skipped or None,
              seconds=round(time.monotonic() - started, 3))
        self._gauge(zone)

    async def _hscan(self, cursor: int) -> tuple[int, dict[Any, Any]]:
        """One HSCAN batch, retried twice: one slow reply should not restart a long load."""
        import redis

        for attempt in range(3):
            try:
                result: tuple[int, dict[Any, Any]] = await self.redis.hscan(
                    LISTINGS_KEY, cursor, count=self.batch)
                return result
            except (TimeoutError, redis.TimeoutError):
                if attempt == 2:
                    raise
                await asyncio.sleep(0.2)
        raise AssertionError("unreachable")

    def apply(self, stream_id: bytes, fields: dict[Any, Any]) -> bool:
        """Apply one change stream entry.

        :returns: False when the entry's serial shows changes were lost (reload needed).
        """
        f = {_s(k): _s(v) for k, v in fields.items()}
        zone = self.responder.zone
        try:
            serial = int(f.get("serial", "0"))
        except ValueError:
            serial = 0
        if serial and serial > zone.serial + 1 and self.loaded:
            return False
        op, key, kind = f.get("op", ""), f.get("key", ""), f.get("kind", "")
        # IXFR journal: only a change that moves the serial by one is a new version
        journaled = bool(serial) and serial == zone.serial + 1
        if journaled:
            now_ms = int(self.clock() * 1000)
            before = listing_records(zone, self.responder.settings, self.responder, key=key,
                                     kind=kind, now_ms=now_ms)
        try:
            if op in ("listed", "extended"):
                zone.put(key, kind, f.get("reason", ""), float(f.get("expires_at", "0")))  # type: ignore[arg-type]
            elif op in ("delisted", "expired"):
                zone.remove(key, kind)  # type: ignore[arg-type]
        except (ValueError, UnicodeError, OverflowError) as exc:
            event(log, "rbl_change_skipped", level=logging.WARNING, stream_id=_s(stream_id),
                  key=key, error=str(exc))
        if journaled:
            after = listing_records(zone, self.responder.settings, self.responder, key=key,
                                    kind=kind, now_ms=now_ms)
            self.responder.journal.record(section_of(key, kind), serial, before, after)
        elif serial > zone.serial or not serial:
            self.responder.journal.reset(max(serial, zone.serial))
        if serial > zone.serial:
            zone.serial = serial
        self.last_id = stream_id
        self.applied += 1
        return True

    async def _position_valid(self) -> bool:
        """After a reconnect: can the stream still bring us up to date from ``last_id``?"""
        r = self.redis
        ours = self.responder.zone.serial
        theirs = int(await r.get(SERIAL_KEY) or 0)
        if theirs < ours:
            return False  # Redis lost data or was reset: our index is ahead of the truth
        if theirs == ours:
            return True
        nxt = await r.xrange(CHANGES_KEY, min=b"(" + self.last_id, max=b"+", count=1)
        if not nxt:
            return False
        f = {_s(k): _s(v) for k, v in nxt[0][1].items()}
        return int(f.get("serial", "0") or 0) == ours + 1

    async def run(self) -> None:
        """Load, then follow changes until cancelled.  Never raises but CancelledError."""
        import redis

        backoff = 0.2
        need_load = not self.loaded
        reconnected = False
        while True:
            try:
                if reconnected and not need_load and not await self._position_valid():
                    event(log, "rbl_stream_position_lost", level=logging.WARNING)
                    need_load = True
                if need_load or self._reload.is_set():
                    await self.load()
                    need_load = False
                if not self.redis_up:
                    if reconnected:
                        event(log, "rbl_redis_back", serial=self.responder.zone.serial)
                    self.redis_up = True
                reconnected = False
                backoff = 0.2
                while not self._reload.is_set():
                    reply = await self.redis.xread({CHANGES_KEY: self.last_id}, count=self.batch,
                                                   block=self.block_ms)
                    lost = False
                    for _stream, entries in reply or ():
                        for stream_id, fields in entries:
                            if not self.apply(stream_id, fields):
                                lost = True
                                break
                        if lost:
                            break
                    if lost:
                        event(log, "rbl_changes_missing",
                              level=logging.WARNING)
                        need_load = True
                        break
            except asyncio.CancelledError:
                raise
            except (TimeoutError, redis.RedisError, OSError) as exc:
                if self.redis_up or not reconnected:
                    event(log, "rbl_redis_unavailable",
                          level=logging.WARNING, error=str(exc) or type(exc).__name__,
                          listings=len(self.responder.zone), serial=self.responder.zone.serial)
                self.redis_up = False
                self._count_error()
                reconnected = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.retry_max)

    @staticmethod
    def _count_error() -> None:
        try:
            from ..metrics import REDIS_ERRORS

            REDIS_ERRORS.labels("rbl").inc()
        except Exception:  # noqa: BLE001 - metrics never stop the server
            pass

    @staticmethod
    def _gauge(zone: DnsblZone) -> None:
        try:
            from ..metrics import LISTINGS

            counts = {"ip": 0, "cidr": 0, "domain": 0}
            counts["ip"] = len(zone._v4_keys) + len(zone._v6)
            counts["cidr"] = len(zone._v4_nets) + len(zone._v6_nets)
            counts["domain"] = len(zone._domains)
            for kind, n in counts.items():
                LISTINGS.labels(kind).set(n)
        except Exception:  # noqa: BLE001
            pass
