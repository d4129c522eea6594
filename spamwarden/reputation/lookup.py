"""Listing lookups as the milter sees them: listed, not listed, or failed.

:class:`ListingLookup` is the Protocol the milter depends on; the Redis-backed
implementation with a bounded in-process cache lives here too (``RedisListingLookup``).
A failed lookup is never "not listed" and never "listed".
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from ..config import Config
from ..logs import event
from .listings import LISTINGS_KEY

if TYPE_CHECKING:
    from .store import Clock, ListingStore

__all__ = ["ChangeWatcher", "ListingOutcome", "ListingLookup", "PendingLookup",
           "RedisListingLookup"]

log = logging.getLogger("spamwarden.reputation.lookup")


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


class RedisListingLookup:
    """:class:`ListingLookup` over the listing store, with a bounded TTL cache.

    An IP is matched by the listings of the IP and of every network holding it;
    a domain by its own listing and its parents'; an address by itself and its
    domain's.  Answers are cached for ``cache_ttl`` seconds (a listed answer no
    longer than the listing lasts), at most ``cache_size`` keys, least recently
    used dropped first; failures are never cached.  Safe to share between the
    milter's threads.

    :param store: the sync :class:`~spamwarden.reputation.store.ListingStore`.
    :param clock: time source.
    :param cache_ttl: seconds an answer is reused; a new listing is seen after at
        most this long.
    :param max_keys: keys answered per call; more get ``failed`` outcomes.
    :param followed_ttl: seconds an answer is reused while a :class:`ChangeWatcher`
        follows the change stream (:attr:`following`): every listing change empties
        the cache, so a change is still seen at once, and repeat senders cost no
        round trip.  When the stream is lost the cache falls back to ``cache_ttl``
        (older answers are not used), so Redis trouble still shows within it.
    """

    def __init__(
        self,
        store: ListingStore,
        *,
        clock: Clock | None = None,
        cache_size: int = 10_000,
        cache_ttl: float = 0.5,
        max_keys: int = 64,
        followed_ttl: float = 60.0,
    ) -> None:
        from .store import SystemClock

        self.store = store
        self.clock = clock or SystemClock()
        self.cache_size = cache_size
        self.cache_ttl = cache_ttl
        self.followed_ttl = followed_ttl
        self.max_keys = max_keys
        #: a ChangeWatcher is following the change stream (set by it)
        self.following = False
        # key -> (answered at, valid until at most, outcome)
        self._cache: OrderedDict[str, tuple[float, float, ListingOutcome]] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0  # +1 per change seen: answers read before it are not kept
        self._last_error_log = 0.0

    @classmethod
    def from_config(cls, cfg: Config, **kwargs: Any) -> RedisListingLookup:

        from .store import ListingStore

        return cls(ListingStore.from_config(cfg), **kwargs)

    def _cached(self, key: str, now: float) -> ListingOutcome | None:
        ttl = self.followed_ttl if self.following else self.cache_ttl
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                return None
            answered, until, outcome = hit
            if until <= now or now - answered >= ttl:
                del self._cache[key]
                return None
            self._cache.move_to_end(key)
            return outcome

    def _remember(self, key: str, outcome: ListingOutcome, now: float, until: float,
                  generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return  # a change arrived while this answer was on its way: not kept
            self._cache[key] = (now, until, outcome)
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def changed(self) -> None:
        """A listing changed (or may have): forget every answer, including those
        still on their way from Redis."""
        with self._lock:
            self._generation += 1
            self._cache.clear()

    def lookup_many(self, keys: Sequence[str]) -> dict[str, ListingOutcome]:
        """Outcome for each key; never raises (Redis trouble gives ``failed``)."""
        now = self.clock.now()
        generation = self._generation
        out, todo = self._plan(keys, now)
        if not todo:
            return out
        fields = sorted({c for cands in todo.values() for c in cands})
        return self._fetch_now(out, todo, fields, now, generation)

    def begin_lookup(self, keys: Sequence[str]) -> PendingLookup:
        """Send the lookup of ``keys`` now and read the answer later, so that Redis
        works while the caller does (authentication, the classifier): one round
        trip, no thread hand-off.  :meth:`PendingLookup.result` gives what
        :meth:`lookup_many` would have given at this moment (same cache, same
        ``now`` for expiry); call it, or :meth:`PendingLookup.discard`.

        A client without a plain connection pool, or a failure to send, falls back
        to the client's own HMGET (with its retry) when the result is asked for.
        Never raises.
        """
        now = self.clock.now()
        generation = self._generation
        out, todo = self._plan(keys, now)
        fields = sorted({c for cands in todo.values() for c in cands})
        pending = PendingLookup(self, out, todo, fields, now, generation)
        if not todo:
            return pending
        pool = getattr(self.store.redis, "connection_pool", None)
        if pool is None or not hasattr(pool, "get_connection"):
            return pending
        try:
            conn = pool.get_connection()
        except Exception:  # noqa: BLE001 - the client's own path retries and reports it
            return pending
        try:
            conn.send_command("HMGET", LISTINGS_KEY, *fields)
        except Exception:  # noqa: BLE001 - as above; this connection is not reused
            _drop_connection(pool, conn)
            return pending
        pending.sent = (pool, conn)
        return pending

    def _plan(
        self, keys: Sequence[str], now: float
    ) -> tuple[dict[str, ListingOutcome], dict[str, list[str]]]:
        """Answers from the cache (and for keys that are no IP or domain), and the
        keys still to ask Redis about, with their candidate fields."""
        from .store import candidate_keys

        out: dict[str, ListingOutcome] = {}
        todo: dict[str, list[str]] = {}
        for i, key in enumerate(keys):
            if key in out or key in todo:
                continue
            if i >= self.max_keys:
                out[key] = ListingOutcome("failed", key, detail=f"more than {self.max_keys} keys")
                continue
            hit = self._cached(key, now)
            if hit is not None:
                out[key] = hit
                continue
            cands = candidate_keys(key)
            if not cands:
                out[key] = ListingOutcome("not_listed", key, detail="not an IP, domain or address")
                continue
            todo[key] = cands
        return out, todo

    def _fetch_now(
        self, out: dict[str, ListingOutcome], todo: dict[str, list[str]], fields: list[str],
        now: float, generation: int,
    ) -> dict[str, ListingOutcome]:
        """The HMGET through the client (with its retry); failures give ``failed``."""
        try:
            raw = self.store.redis.hmget(LISTINGS_KEY, fields)
        except Exception as exc:  # noqa: BLE001 - any client failure is a failed lookup
            return self._failed(out, todo, exc, now)
        return self._finish(out, todo, fields, raw, now, generation)

    def _failed(
        self, out: dict[str, ListingOutcome], todo: dict[str, list[str]], exc: BaseException,
        now: float,
    ) -> dict[str, ListingOutcome]:
        """``failed`` outcomes for every key asked about (logged at most every 10 s)."""
        from ..errors import StoreError

        err = exc if isinstance(exc, StoreError) else StoreError(str(exc))
        if now - self._last_error_log > 10:
            self._last_error_log = now
            event(log, "listing_lookup_failed", logging.WARNING, error=str(err))
        for key in todo:
            out[key] = ListingOutcome("failed", key, detail=f"store unavailable: {exc}")
        return out

    def _finish(
        self, out: dict[str, ListingOutcome], todo: dict[str, list[str]], fields: list[str],
        raw: Sequence[Any], now: float, generation: int,
    ) -> dict[str, ListingOutcome]:
        """Outcomes from the HMGET answer ``raw`` (one value per field), cached."""
        from .listings import Listing

        found: dict[str, Listing] = {}
        for name, text in zip(fields, raw):
            if text is None:
                continue
            try:
                listing = Listing.from_json(text)
            except ValueError:
                continue
            if listing.active(now):
                found[name] = listing
        for key, cands in todo.items():
            match = next((found[c] for c in cands if c in found), None)
            if match is None:
                outcome = ListingOutcome("not_listed", key)
                until = float("inf")
            else:
                outcome = ListingOutcome("listed", key, reason=match.reason, code=match.code,
                                         expires_at=match.expires_at, detail=match.key)
                until = match.expires_at
            self._remember(key, outcome, now, until, generation)
            out[key] = outcome
        return out

    def record_volume(self, keys: Sequence[str]) -> None:
        """Count one accepted message for each source: IPs as they are, domains by
        registrable domain (the unit complaints are counted in), addresses as
        ``local@domain``.  Never raises."""
        self.record_volume_many([keys])

    def record_volume_many(self, messages: Sequence[Sequence[str]]) -> None:
        """:meth:`record_volume` for several messages (each its source keys) in one
        store round trip.  Never raises."""
        counts: dict[str, int] = {}
        for keys in messages:
            for k in self._volume_keys(keys):
                counts[k] = counts.get(k, 0) + 1
        if not counts:
            return
        try:
            self.store.record_volume_counts(dict(sorted(counts.items())), now=self.clock.now())
        except Exception as exc:  # noqa: BLE001 - volume is best effort
            now = self.clock.now()
            if now - self._last_error_log > 10:
                self._last_error_log = now
                log.warning("volume not recorded: %s", exc)

    def _volume_keys(self, keys: Sequence[str]) -> set[str]:
        """The distinct keys one message's volume is counted under."""
        from ..mail import registrable_domain
        from .listings import normalize_key

        norm: set[str] = set()
        for key in keys[: self.max_keys]:
            try:
                k, kind = normalize_key(key)
            except ValueError:
                continue
            if kind == "domain":
                reg = registrable_domain(k)
                if reg is None:
                    continue
                k = reg
            if kind != "cidr":
                norm.add(k)
        return norm


class ChangeWatcher:
    """Follows the listing change stream for a :class:`RedisListingLookup` in a daemon
    thread: every change empties the lookup's cache, and while it follows, the lookup
    keeps answers for ``followed_ttl`` instead of ``cache_ttl``.

    When the stream cannot be read (Redis down) the lookup is told at once
    (:attr:`RedisListingLookup.following` off: answers older than ``cache_ttl`` are no
    longer used); the watcher retries with back-off and, back in touch, empties the
    cache once more before following again, so nothing changed meanwhile is missed.

    :param lookup: whose cache to keep honest.
    :param store: a ``ListingStore`` whose client's socket timeout outlasts ``block_ms``.
    :param block_ms: how long one XREAD waits for changes.
    """

    def __init__(self, lookup: RedisListingLookup, store: ListingStore, *,
                 block_ms: int = 1000) -> None:
        self.lookup = lookup
        self.store = store
        self.block_ms = block_ms
        self.changes_seen = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ChangeWatcher:
        self._thread = threading.Thread(target=self._run, name="listing-changes", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop following (waits up to ``timeout`` seconds for the thread)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.lookup.following = False

    def _run(self) -> None:
        from ..logs import event

        backoff = 0.5
        last: str | None = None
        while not self._stop.is_set():
            try:
                if last is None:
                    last = self.store.latest_change_id()
                    self.lookup.changed()  # anything kept before now is suspect
                    self.lookup.following = True
                    event(log, "listing_changes_followed", after=last)
                changes = self.store.changes(last, block_ms=self.block_ms, count=1000)
                if changes:
                    last = changes[-1].stream_id or last
                    self.changes_seen += len(changes)
                    self.lookup.changed()
                backoff = 0.5
            except Exception as exc:  # noqa: BLE001 - any failure: back to the short cache
                if self.lookup.following:
                    event(log, "listing_changes_lost", logging.WARNING, error=str(exc))
                self.lookup.following = False
                last = None
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        self.lookup.following = False


def _drop_connection(pool: Any, conn: Any) -> None:
    """Close a connection in an unknown state and give it back to the pool."""
    try:
        conn.disconnect()
    finally:
        pool.release(conn)


class PendingLookup:
    """A listing lookup sent by :meth:`RedisListingLookup.begin_lookup`.

    :ivar sent: ``(pool, connection)`` while the HMGET answer is unread; ``None``
        when nothing was sent (all answers cached, or sending failed: then
        :meth:`result` asks through the client).
    """

    def __init__(
        self, owner: RedisListingLookup, out: dict[str, ListingOutcome],
        todo: dict[str, list[str]], fields: list[str], now: float, generation: int = 0,
    ) -> None:
        self._owner = owner
        self._out = out
        self._todo = todo
        self._fields = fields
        self._now = now
        self._generation = generation
        self.sent: tuple[Any, Any] | None = None
        self._done: dict[str, ListingOutcome] | None = None

    def result(self) -> dict[str, ListingOutcome]:
        """Outcome for each key, as :meth:`RedisListingLookup.lookup_many` gives it;
        reads the answer (bounded by the client's socket timeout).  Never raises."""
        if self._done is not None:
            return self._done
        owner, out, todo, fields, now = self._owner, self._out, self._todo, self._fields, self._now
        sent, self.sent = self.sent, None
        if not todo:
            self._done = out
        elif sent is None:
            self._done = owner._fetch_now(out, todo, fields, now, self._generation)
        else:
            pool, conn = sent
            try:
                raw = conn.read_response()
            except Exception:  # noqa: BLE001 - e.g. Redis restarted: once more through the client
                _drop_connection(pool, conn)
                self._done = owner._fetch_now(out, todo, fields, now, self._generation)
            else:
                pool.release(conn)
                if isinstance(raw, list) and len(raw) == len(fields):
                    self._done = owner._finish(out, todo, fields, raw, now, self._generation)
                else:
                    self._done = owner._failed(
                        out, todo, ValueError(f"unexpected HMGET answer: {type(raw).__name__}"),
                        now)
        return self._done

    def discard(self) -> None:
        """Give the connection back without reading the answer (the scan failed)."""
        sent, self.sent = self.sent, None
        if sent is not None:
            _drop_connection(*sent)
