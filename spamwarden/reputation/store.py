"""The listing store: listings, their change stream, complaint windows and volume.

Every read-modify-write runs as one server-side Lua script, so concurrent
workers, the CLI and the API never lose an update, and a listing and its change
entry are written together or not at all.  Every key carries the hash tag
``{sw}``, so the scripts (which name all their keys in ``KEYS``) run on Redis
Cluster too.  The scripts are files in ``spamwarden/reputation/lua/``
(``listing_put``, ``listing_remove``, ``listing_expire``, ``complaint_count``,
``rate_count``), each opening with its KEYS, ARGV and result.

Redis key scheme
================

=============================================  ======================================================
key                                            what
=============================================  ======================================================
``sw:{sw}:listings``                           hash: listing key -> :class:`Listing` JSON (listings.py)
``sw:{sw}:listing-changes``                    stream of :class:`ListingChange` fields, ~1,000,000 kept
``sw:{sw}:listing-serial``                     integer, +1 per change (the zone's SOA serial)
``sw:{sw}:listing-expiry``                     zset: listing key -> expires_at (finds due expiries)
``sw:{sw}:listing-keys``                       zset: listing key -> 0, so ordered by key (ZRANGEBYLEX
                                               pages ``GET /v1/listings``); written with the listing
``sw:{sw}:listing-keys-built``                 "1" once listings written before ``listing-keys``
                                               existed are indexed (no TTL; see below)
``sw:{sw}:offences``                           hash: listing key -> times listed (escalating TTL);
                                               kept on purpose without a TTL: offences are remembered
``sw:{sw}:win:c:<key>``                        zset: complaint id -> time, complaints in the window
                                               (TTL ``reputation.window``)
``sw:{sw}:win:r:<key>``                        zset: reporter -> last complaint time, distinct reporters
                                               in the window (TTL ``reputation.window``)
``sw:{sw}:vol:<key>:<bucket>``                 integer: messages accepted from the source in one bucket
                                               of ``window / 24`` seconds (TTL window + one bucket)
``sw:{sw}:done:<complaint id>``                "1" once a complaint was counted (TTL 2 x window)
``sw:{sw}:delist-requests``                    hash: request id -> JSON of a public delisting request
``sw:{sw}:delist-requests-by-time``            zset: request id -> time filed (pruned after 90 days)
``sw:{sw}:delist-requests:<status>``           zset per status (pending, approved, rejected): request
                                               id -> time filed (pending) or decided; moved in the
                                               script that writes the status, pruned with the request
``sw:{sw}:delist-requests-indexed``            "1" once requests filed before the status indexes
                                               existed are indexed (no TTL)
``sw:{sw}:delist-requests-pending-keys``       hash: listed key (and "<key>TAB<client bucket>")
                                               -> its pending requests; moved by the scripts
                                               that file, decide and prune requests
                                               (pending requests filed before it existed are not
                                               counted; a count never goes below 0)
``sw:{sw}:rate:<what>:<client>:<slot>``        integer: requests per client per hour (TTL 1 h)
``sw:{sw}:stats:listings:<hour>``              hash: listing changes (listed, extended, delisted,
                                               expired) in one hour (stats.py; TTL 8 days)
=============================================  ======================================================

``<key>`` is a listing key as :func:`~spamwarden.reputation.listings.normalize_key`
gives it: an IP, a registrable domain or a ``local@domain`` address.

Both indexes (``listing-keys``, ``delist-requests:<status>``) are kept by the scripts that
write what they index.  Data written by an older version has no index entries: the first
paged read finds the ``-built`` / ``-indexed`` marker missing and indexes what is stored,
one HSCAN page (:data:`BATCH`) per script call, then sets the marker; that happens once.
(All services must run the new scripts before that: an old process's writes are not
indexed.)  A store checks the marker once and then trusts the index for its lifetime.

Times are Unix seconds from an injected :class:`Clock` and are rounded to
milliseconds, so the JSON numbers Lua writes (14 significant digits) are exact.

Use :class:`ListingStore` (redis-py sync client: the CLI, the milter's lookup)
or :class:`AsyncListingStore` (``redis.asyncio``: worker, API, DNS follower).
They have the same methods, and each method of both runs one operation written
once in :class:`_StoreBase` as a generator that yields its Redis steps (commands,
script calls, pipelines) and receives their results: the sync store runs the
steps, the async store awaits them, and both map Redis errors the same way.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import secrets
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import (
    Any,
    Protocol,
    TypeVar,
)

import redis
import redis.asyncio
import redis.cluster

from .._lua import lua_script
from ..config import Config
from ..errors import DelistQueueFull, DelistRequestStale
from ..redisconn import store_error
from .listings import (
    CHANGES_KEY,
    LISTINGS_KEY,
    SERIAL_KEY,
    KeyKind,
    Listing,
    ListingChange,
    normalize_key,
    reason_code,
    utc_iso,
)
from .stats import hour_of, stats_key

__all__ = [
    "Clock",
    "SystemClock",
    "ListingStore",
    "AsyncListingStore",
    "ListingWrite",
    "WindowCounts",
    "IndicatorCount",
    "DelistRequest",
    "Snapshot",
    "EXPIRY_KEY",
    "OFFENCES_KEY",
    "DELIST_REQUESTS_KEY",
    "DELIST_REQUESTS_INDEX_KEY",
    "DELIST_REQUESTS_INDEXED_KEY",
    "DELIST_REQUESTS_PENDING_KEYS_KEY",
    "MAX_DELIST_REQUESTS",
    "MAX_PENDING_PER_KEY",
    "LISTING_KEYS_KEY",
    "LISTING_KEYS_BUILT_KEY",
    "REQUEST_STATUSES",
    "decided_here",
    "request_status_key",
    "VOLUME_BUCKETS",
    "CHANGES_MAXLEN",
    "candidate_keys",
    "window_keys",
    "volume_keys",
    "done_key",
    "store_error",
    "iter_lines",
]

EXPIRY_KEY = "sw:{sw}:listing-expiry"
OFFENCES_KEY = "sw:{sw}:offences"
DELIST_REQUESTS_KEY = "sw:{sw}:delist-requests"
DELIST_REQUESTS_INDEX_KEY = "sw:{sw}:delist-requests-by-time"
DELIST_REQUEST_RETENTION = 90 * 86400.0
LISTING_KEYS_KEY = "sw:{sw}:listing-keys"
LISTING_KEYS_BUILT_KEY = "sw:{sw}:listing-keys-built"
#: the statuses of a delisting request, each with its index
REQUEST_STATUSES = ("pending", "approved", "rejected")
DELIST_REQUESTS_INDEXED_KEY = "sw:{sw}:delist-requests-indexed"
DELIST_REQUESTS_PENDING_KEYS_KEY = "sw:{sw}:delist-requests-pending-keys"


def request_status_key(status: str) -> str:
    """The index (zset) of the delisting requests with ``status``."""
    return f"sw:{{sw}}:delist-requests:{status}"


#: the keys the request scripts touch, in their order
_REQUEST_KEYS = [DELIST_REQUESTS_KEY, "sw:{sw}:delist-requests-by-time",
                 *(request_status_key(s) for s in REQUEST_STATUSES),
                 DELIST_REQUESTS_PENDING_KEYS_KEY]
#: pending requests at most, by default (``api.max_pending_delist_requests``; every client
#: is rate-limited too, this bounds many clients)
MAX_DELIST_REQUESTS = 100_000
#: pending requests of one listed key at most, by default
#: (``api.max_pending_delist_requests_per_key``)
MAX_PENDING_PER_KEY = 3
#: the volume window is kept as this many buckets
VOLUME_BUCKETS = 24
#: approximate length the change stream is trimmed to (XADD MAXLEN ~)
CHANGES_MAXLEN = 1_000_000
#: complaints remembered per indicator window; beyond it the oldest are dropped
WINDOW_CAP = 100_000
#: keys per Lua call in bulk writes (bounds the time one script blocks Redis)
BATCH = 1000
#: index reads of one listing page at most (each skips expired listings not yet removed)
PAGE_ROUNDS = 8
#: the keys every listing script touches, in the order the scripts expect
_LISTING_KEYS = [LISTINGS_KEY, CHANGES_KEY, SERIAL_KEY, EXPIRY_KEY, OFFENCES_KEY]


def _put_keys(args: Sequence[Any]) -> list[str]:
    """The listing script's keys for one argument list: the fixed ones and the counters
    of the hour of its ``now`` (``args[0]``)."""
    return [*_LISTING_KEYS, stats_key("listings", hour_of(float(args[0]))), LISTING_KEYS_KEY]


def _remove_keys(now: float) -> list[str]:
    """The remove and expire scripts' keys: the first four, the hour's counters and the
    key index."""
    return [*_LISTING_KEYS[:4], stats_key("listings", hour_of(now)), LISTING_KEYS_KEY]


class Clock(Protocol):
    """Where time comes from; tests pass a clock they move by hand."""

    def now(self) -> float:
        """Unix seconds."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        """Unix time in seconds."""
        return time.time()


def _ms(t: float) -> float:
    return round(t, 3)


def done_key(complaint_id: str) -> str:
    """The marker (TTL 2 x window) of a counted complaint: a replay is not counted twice."""
    return f"sw:{{sw}}:done:{complaint_id}"


def window_keys(key: str) -> tuple[str, str]:
    """(complaints zset, reporters zset) of one indicator."""
    return f"sw:{{sw}}:win:c:{key}", f"sw:{{sw}}:win:r:{key}"


def _bucket_size(window: float) -> float:
    return max(1.0, window / VOLUME_BUCKETS)


def volume_keys(key: str, now: float, window: float) -> list[str]:
    """The bucket counters of one source that cover ``(now - window, now]``."""
    size = _bucket_size(window)
    cur = math.floor(now / size)
    first = math.floor((now - window) / size) + 1
    return [f"sw:{{sw}}:vol:{key}:{b}" for b in range(first, cur + 1)]


def candidate_keys(text: str) -> list[str]:
    """Every listing key that would cover ``text``, most specific first.

    An IP is covered by itself and by each network containing it (IPv4 /8../31,
    IPv6 /16../127); a domain by itself and its parents (two labels at least);
    an address by itself and its domain's chain.  Unusable text gives ``[]``.
    """
    return list(_candidate_keys(text))


@functools.lru_cache(maxsize=8192)
def _candidate_keys(text: str) -> tuple[str, ...]:
    """:func:`candidate_keys`, remembered: the milter asks about the same client IPs and
    sender domains again and again, and an IPv6 address has 112 networks."""
    try:
        key, kind = normalize_key(text)
    except ValueError:
        return ()
    if kind == "ip":
        ip = ipaddress.ip_address(key)
        if ip.version == 4:
            n = int(ip)
            nets = []
            for p in range(31, 7, -1):
                net = n & (0xFFFFFFFF << (32 - p)) & 0xFFFFFFFF
                nets.append(f"{net >> 24}.{(net >> 16) & 255}.{(net >> 8) & 255}.{net & 255}/{p}")
            return (key, *nets)
        return (key, *(str(ipaddress.ip_network(f"{key}/{p}", strict=False))
                       for p in range(127, 15, -1)))
    if kind == "cidr":
        return (key,)
    out = [key]
    domain = key.rsplit("@", 1)[1] if kind == "address" else key
    labels = domain.split(".")
    start = 0 if kind == "address" else 1
    out += [".".join(labels[i:]) for i in range(start, len(labels) - 1)]
    return tuple(out[:12])


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListingWrite:
    """What one listing write did.

    ``op`` is ``listed``, ``extended``, ``unchanged`` (the engine found an active
    listing), ``delisted``, ``expired`` or ``absent`` (nothing to delist).
    """

    op: str
    key: str
    listing: Listing | None


@dataclass(frozen=True, slots=True)
class IndicatorCount:
    """Complaints and distinct reporters of one indicator inside the window."""

    key: str
    complaints: int
    reporters: int
    listed: bool = False  # listed right now (this complaint was not counted for it)


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """Result of counting one complaint; ``fresh`` is False for a replay."""

    fresh: bool
    counts: tuple[IndicatorCount, ...]


@dataclass(frozen=True, slots=True)
class DelistRequest:
    """A public request to delist a key, waiting for an operator."""

    id: str
    key: str
    reason: str
    contact: str
    client: str
    filed_at: float
    status: str = "pending"  # pending | approved | rejected
    decided_at: float = 0.0
    decided_note: str = ""
    #: the requester's rate-limit bucket (its IPv4 address, or its IPv6 network): one
    #: pending request per key each; "" for requests filed before it was kept
    client_bucket: str = ""

    def to_json(self) -> str:
        """The compact JSON stored for this request (:meth:`from_json` reads it)."""
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> DelistRequest:
        """:raises ValueError: not a request record."""
        try:
            d = json.loads(text)
            return cls(**d)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a delist request: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Snapshot:
    """All listings plus the change stream position to follow from.

    Changes after ``stream_id`` may already be in ``listings``; applying them
    again is harmless (listed/extended replace, delisted/expired remove).
    """

    listings: dict[str, Listing]
    serial: int
    stream_id: str = field(default="0-0")


# -- Lua: files in lua/, each opening with its KEYS, ARGV and result ----------------------------

_PUT_LUA = lua_script("spamwarden.reputation", "listing_put")
_REMOVE_LUA = lua_script("spamwarden.reputation", "listing_remove")
_EXPIRE_LUA = lua_script("spamwarden.reputation", "listing_expire")
_COUNT_LUA = lua_script("spamwarden.reputation", "complaint_count")
_RATE_LUA = lua_script("spamwarden.reputation", "rate_count")
_KEYS_INDEX_LUA = lua_script("spamwarden.reputation", "listing_keys_index")
_REQUEST_WRITE_LUA = lua_script("spamwarden.reputation", "delist_request_write")
_REQUEST_FILE_LUA = lua_script("spamwarden.reputation", "delist_request_file")
_REQUEST_PRUNE_LUA = lua_script("spamwarden.reputation", "delist_request_prune")
_REQUEST_INDEX_LUA = lua_script("spamwarden.reputation", "delist_request_index")


# -- shared argument building and parsing -------------------------------------------------------


def _counted(ops: Iterable[str]) -> None:
    """Count listing changes in ``spamwarden_listing_changes_total{op}``."""
    from ..metrics import LISTING_CHANGES

    for op in ops:
        if op in ("listed", "extended", "delisted", "expired"):
            LISTING_CHANGES.labels(op).inc()


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _writes(raw: Sequence[Any], keys: Sequence[str]) -> list[ListingWrite]:
    out = []
    for i, key in enumerate(keys):
        op = _s(raw[2 * i])
        text = raw[2 * i + 1]
        out.append(ListingWrite(op, key, Listing.from_json(text) if text else None))
    _counted(w.op for w in out)
    return out


def _normalized(items: Iterable[tuple[str, KeyKind] | str]) -> list[tuple[str, KeyKind]]:
    out: list[tuple[str, KeyKind]] = []
    for it in items:
        out.append(normalize_key(it) if isinstance(it, str) else it)
    return out


@dataclass(frozen=True)
class _Settings:
    listing_ttl: float
    max_listing_ttl: float
    window: float
    changes_maxlen: int


# -- one logic, two drivers ---------------------------------------------------------------------
#
# Each store operation is written once, as a generator method of _StoreBase (``_op_*``)
# that yields the Redis work it needs as a step below and is sent the step's result.
# ListingStore runs it with the sync client, AsyncListingStore awaits each step (the way
# dnspython's sync and async resolvers drive one _Resolution).  The drivers map Redis
# errors to StoreError / StoreUnavailable; nothing else is caught.

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Cmd:
    """One Redis command: the client method ``name`` called with ``args`` and ``kwargs``."""

    name: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]


def _cmd(name: str, *args: Any, **kwargs: Any) -> _Cmd:
    return _Cmd(name, args, kwargs)


@dataclass(frozen=True, slots=True)
class _Script:
    """One call of a store script (a name of :data:`_SCRIPTS`)."""

    script: str
    keys: Sequence[str]
    args: Sequence[Any]


@dataclass(frozen=True, slots=True)
class _Scripts:
    """Script calls sent together where the client allows it: pipelined in one round trip
    by the sync store, one after another on Redis Cluster (its pipelines refuse scripts)
    and by the async store.  The result is the list of their results."""

    calls: tuple[_Script, ...]


@dataclass(frozen=True, slots=True)
class _Pipeline:
    """Commands that ``fill`` queues on a non-transactional pipeline, sent in one round
    trip; the result is the list of their results."""

    fill: Callable[[Any], None]


@dataclass(frozen=True, slots=True)
class _HashScan:
    """Every field of the hash ``key`` (read with HSCAN), as a dict."""

    key: str


_Step = _Cmd | _Script | _Scripts | _Pipeline | _HashScan
#: an operation: yields steps, is sent their results, returns the method's result
_Op = Generator[_Step, Any, _T]

_SCRIPTS = {
    "put": _PUT_LUA,
    "remove": _REMOVE_LUA,
    "expire": _EXPIRE_LUA,
    "count": _COUNT_LUA,
    "rate": _RATE_LUA,
    "keys_index": _KEYS_INDEX_LUA,
    "request_write": _REQUEST_WRITE_LUA,
    "request_file": _REQUEST_FILE_LUA,
    "request_prune": _REQUEST_PRUNE_LUA,
    "request_index": _REQUEST_INDEX_LUA,
}


class _StoreBase:
    """Argument building shared by the sync and async stores."""

    def __init__(
        self,
        *,
        listing_ttl: float = 86400.0,
        max_listing_ttl: float = 2592000.0,
        window: float = 604800.0,
        changes_maxlen: int = CHANGES_MAXLEN,
    ) -> None:
        self.settings = _Settings(listing_ttl, max_listing_ttl, window, changes_maxlen)
        # set once this store saw the indexes' markers (the one-time indexing is done)
        self._keys_indexed = False
        self._requests_indexed = False

    def _put_args(
        self,
        items: Sequence[tuple[str, KeyKind]],
        *,
        reason: str,
        note: str,
        ttl: float | None,
        now: float,
        mode: str,
        quiet: bool = False,
    ) -> list[Any]:
        s = self.settings
        args: list[Any] = [
            repr(_ms(now)), mode, repr(s.listing_ttl), repr(s.max_listing_ttl),
            "" if ttl is None else repr(float(ttl)), s.changes_maxlen, reason, note,
            "1" if quiet else "0",
        ]
        for key, kind in items:
            args += [key, kind, reason_code(reason, kind)]
        return args

    def _count_call(
        self, complaint_id: str, reporter: str, at: float, keys: Sequence[str], now: float
    ) -> tuple[list[str], list[Any]]:
        w = self.settings.window
        ks = [done_key(complaint_id), LISTINGS_KEY]
        for k in keys:
            ks += list(window_keys(k))
        ttl = max(1, math.ceil(w))
        args = [complaint_id, repr(_ms(min(at, now))), repr(_ms(now - w)), ttl, reporter,
                2 * ttl, WINDOW_CAP, repr(_ms(now)), *keys]
        return ks, args

    @staticmethod
    def _counts(raw: Sequence[Any], keys: Sequence[str]) -> WindowCounts:
        counts = tuple(
            IndicatorCount(k, int(raw[1 + 3 * i]), int(raw[2 + 3 * i]), bool(int(raw[3 + 3 * i])))
            for i, k in enumerate(keys)
        )
        return WindowCounts(bool(int(raw[0])), counts)

    def _volume_plan(self, keys: Sequence[str], now: float) -> list[list[str]]:
        return [volume_keys(k, now, self.settings.window) for k in keys]

    @staticmethod
    def _volume_sums(keys: Sequence[str], plan: Sequence[Sequence[str]],
                     vals: Sequence[Any]) -> dict[str, int]:
        """Split one MGET (all keys share the {sw} slot) back into per-source sums."""
        out: dict[str, int] = {}
        i = 0
        for k, vks in zip(keys, plan):
            out[k] = sum(int(v) for v in vals[i : i + len(vks)] if v is not None)
            i += len(vks)
        return out

    @staticmethod
    def _new_request(key: str, *, reason: str, contact: str, client: str, now: float,
                     client_bucket: str = "") -> DelistRequest:
        return DelistRequest(
            # 128 random bits: the id is also the requester's status page address
            id=secrets.token_hex(16), key=key, reason=reason, contact=contact, client=client,
            filed_at=_ms(now), client_bucket=client_bucket,
        )

    @staticmethod
    def _decided(req: DelistRequest, *, approve: bool, note: str, now: float) -> DelistRequest:
        return replace(req, status="approved" if approve else "rejected", decided_at=_ms(now),
                       decided_note=note)

    @staticmethod
    def _requests(raw: Sequence[Any], *, status: str | None, limit: int) -> list[DelistRequest]:
        """Decode an HMGET of request records, keep ``status`` ones, at most ``limit``."""
        reqs = [DelistRequest.from_json(t) for t in raw if t is not None]
        return [r for r in reqs if status is None or r.status == status][:limit]

    @staticmethod
    def _rate_key(what: str, client: str, now: float) -> str:
        return f"sw:{{sw}}:rate:{what}:{client}:{int(now // 3600)}"

    def _queue_volume(self, pipe: Any, keys: Sequence[str], *, now: float, count: int) -> None:
        """Queue on ``pipe`` the INCRBY and EXPIRE of each key's current volume bucket."""
        size = _bucket_size(self.settings.window)
        ttl = math.ceil(self.settings.window + size)
        bucket = math.floor(now / size)
        for k in keys:
            vk = f"sw:{{sw}}:vol:{k}:{bucket}"
            pipe.incrby(vk, count)
            pipe.expire(vk, ttl)


    # the operations (see "one logic, two drivers")

    def _op_add(self, key: str, *, reason: str, now: float, ttl: float | None, note: str,
                kind: KeyKind | None, only_if_unlisted: bool) -> _Op[ListingWrite]:
        writes = yield from self._op_add_many([(key, kind) if kind else key], reason=reason,
                                              now=now, ttl=ttl, note=note,
                                              only_if_unlisted=only_if_unlisted)
        return writes[0]

    def _op_add_many(self, keys: Iterable[str | tuple[str, KeyKind]], *, reason: str,
                     now: float, ttl: float | None, note: str,
                     only_if_unlisted: bool) -> _Op[list[ListingWrite]]:
        items = _normalized(keys)
        mode = "auto" if only_if_unlisted else "manual"
        out: list[ListingWrite] = []
        for start in range(0, len(items), BATCH * 20):
            chunk = items[start : start + BATCH * 20]
            parts = [chunk[i : i + BATCH] for i in range(0, len(chunk), BATCH)]
            results = yield _Scripts(tuple(
                _Script("put", _put_keys(args), args)
                for args in (self._put_args(part, reason=reason, note=note, ttl=ttl, now=now,
                                            mode=mode) for part in parts)))
            for part, raw in zip(parts, results):
                out += _writes(raw, [k for k, _ in part])
        return out

    def _op_list_offender(self, key: str, *, kind: KeyKind, reason: str, note: str,
                          now: float) -> _Op[ListingWrite]:
        args = self._put_args([(key, kind)], reason=reason, note=note, ttl=None, now=now,
                              mode="auto")
        raw = yield _Script("put", [*_put_keys(args), *window_keys(key)], args)
        return _writes(raw, [key])[0]

    def _op_delist(self, key: str, *, note: str, now: float) -> _Op[ListingWrite]:
        k, _ = normalize_key(key)
        raw = yield _Script("remove", _remove_keys(now),
                            [repr(_ms(now)), self.settings.changes_maxlen, note, k])
        return _writes(raw, [k])[0]

    def _op_expire_due(self, now: float, *, limit: int) -> _Op[list[Listing]]:
        raw = yield _Script("expire", _remove_keys(now),
                            [repr(_ms(now)), limit, self.settings.changes_maxlen])
        _counted("expired" for _ in raw)
        return [Listing.from_json(t) for t in raw]

    def _op_get(self, key: str, *, now: float | None) -> _Op[Listing | None]:
        k, _ = normalize_key(key)
        raw = yield _cmd("hget", LISTINGS_KEY, k)
        if raw is None:
            return None
        listing = Listing.from_json(raw)
        return listing if now is None or listing.active(now) else None

    def _op_find(self, key: str, *, now: float) -> _Op[Listing | None]:
        cands = candidate_keys(key)
        if not cands:
            return None
        raw = yield _cmd("hmget", LISTINGS_KEY, cands)
        for text in raw:
            if text is not None:
                listing = Listing.from_json(text)
                if listing.active(now):
                    return listing
        return None

    def _op_all(self, *, now: float | None) -> _Op[list[Listing]]:
        raw = yield _HashScan(LISTINGS_KEY)
        ls = _listings_from_hash(raw).values()
        return sorted((x for x in ls if now is None or x.active(now)), key=lambda x: x.key)

    def _op_active_keys(self, *, now: float) -> _Op[list[str]]:
        # ZSCAN of the expiry index: many short commands instead of one long one that
        # would stall the lookups, and no listing decoded
        cursor: Any = 0
        keys: set[str] = set()  # ZSCAN may return a member twice
        while True:
            cursor, page = yield _cmd("zscan", EXPIRY_KEY, cursor, count=BATCH)
            keys.update(_s(k) for k, expires_at in page if float(expires_at) > now)
            if not int(cursor):
                return sorted(keys)

    def _op_get_many(self, keys: Sequence[str], *, now: float) -> _Op[list[Listing]]:
        out: list[Listing] = []
        for i in range(0, len(keys), BATCH):
            raw = yield _cmd("hmget", LISTINGS_KEY, list(keys[i : i + BATCH]))
            out += [x for x in (Listing.from_json(t) for t in raw if t is not None)
                    if x.active(now)]
        return out

    def _op_offences(self, key: str) -> _Op[int]:
        v = yield _cmd("hget", OFFENCES_KEY, normalize_key(key)[0])
        return int(v or 0)

    def _op_serial(self) -> _Op[int]:
        v = yield _cmd("get", SERIAL_KEY)
        return int(v or 0)

    def _op_latest_change_id(self) -> _Op[str]:
        last = yield _cmd("xrevrange", CHANGES_KEY, count=1)
        return _s(last[0][0]) if last else "0-0"

    def _op_snapshot(self) -> _Op[Snapshot]:
        sid = yield from self._op_latest_change_id()
        serial = yield from self._op_serial()
        raw = yield _HashScan(LISTINGS_KEY)
        return Snapshot(_listings_from_hash(raw), serial, sid)

    def _op_changes(self, after: str, *, count: int,
                    block_ms: int | None) -> _Op[list[ListingChange]]:
        if block_ms is None:
            raw = yield _cmd("xrange", CHANGES_KEY, min=f"({after}" if after != "0-0" else "-",
                             count=count)
        else:
            res = yield _cmd("xread", {CHANGES_KEY: after}, count=count, block=block_ms)
            raw = res[0][1] if res else []
        return [ListingChange.from_fields(sid, f) for sid, f in raw]

    def _op_count_complaint(self, complaint_id: str, *, reporter: str, at: float,
                            keys: Sequence[str], now: float) -> _Op[WindowCounts]:
        ks, args = self._count_call(complaint_id, reporter, at, keys, now)
        raw = yield _Script("count", ks, args)
        return self._counts(raw, keys)

    def _op_clear_windows(self, keys: Sequence[str]) -> _Op[None]:
        if keys:
            yield _cmd("delete", *[k for key in keys for k in window_keys(key)])

    def _op_record_volume(self, keys: Sequence[str], *, now: float, count: int) -> _Op[None]:
        yield _Pipeline(lambda pipe: self._queue_volume(pipe, keys, now=now, count=count))

    def _op_volumes(self, keys: Sequence[str], *, now: float) -> _Op[dict[str, int]]:
        plan = self._volume_plan(keys, now)
        flat = [k for vks in plan for k in vks]
        vals = (yield _cmd("mget", flat)) if flat else []
        return self._volume_sums(keys, plan, vals)

    def _op_rate_allow(self, what: str, client: str, *, limit: int, now: float) -> _Op[bool]:
        n = yield _Script("rate", [self._rate_key(what, client, now)], [limit, 3600])
        return int(n) >= 0

    def _op_file_delist_request(self, key: str, *, reason: str, contact: str, client: str,
                                now: float, max_pending: int, max_pending_per_key: int,
                                client_bucket: str = "") -> _Op[DelistRequest]:
        req = self._new_request(normalize_key(key)[0], reason=reason, contact=contact,
                                client=client, now=now, client_bucket=client_bucket)
        # requests past the retention and requests of an older version's format must not
        # count: prune them and index them first
        yield from self._op_prune_requests(now=now)
        yield from self._op_ensure_request_index()
        res = int((yield _Script("request_file", _REQUEST_KEYS,
                                 [req.id, req.to_json(), repr(req.filed_at), req.key,
                                  max_pending, max_pending_per_key, client_bucket])))
        if res == -1:
            raise DelistQueueFull(f"{max_pending} delisting requests are waiting for an "
                                  "operator; try again later")
        if res == -2:
            raise DelistQueueFull(f"{max_pending_per_key} delisting requests of {req.key} "
                                  "are waiting for an operator", key=req.key)
        if res == -3:
            raise DelistQueueFull(f"a request of {req.key} from {client_bucket} is waiting "
                                  "for an operator already", key=req.key, mine=True)
        return req

    @staticmethod
    def _request_args(req: DelistRequest, *, only_if: str) -> list[Any]:
        return [req.id, req.to_json(), repr(req.filed_at), req.status, repr(req.decided_at),
                only_if]

    def _op_prune_requests(self, *, now: float) -> _Op[None]:
        # bounded: a backlog larger than this is dropped by the following reads
        for _ in range(10):
            n = yield _Script("request_prune", _REQUEST_KEYS,
                              [repr(now - DELIST_REQUEST_RETENTION), BATCH])
            if int(n) < BATCH:
                return

    def _op_ensure_request_index(self) -> _Op[None]:
        if self._requests_indexed:
            return
        if not (yield _cmd("exists", DELIST_REQUESTS_INDEXED_KEY)):
            keys = [DELIST_REQUESTS_KEY, *map(request_status_key, REQUEST_STATUSES),
                    DELIST_REQUESTS_INDEXED_KEY]
            cursor = "0"
            while True:
                cursor = _s((yield _Script("request_index", keys, [cursor, BATCH])))
                if cursor == "0":
                    break
        self._requests_indexed = True

    def _op_delist_requests(self, *, now: float, status: str | None,
                            limit: int) -> _Op[list[DelistRequest]]:
        reqs, _ = yield from self._op_delist_request_page(now=now, status=status, after=None,
                                                          limit=limit, newest_first=False)
        return reqs

    def _op_delist_request_page(
        self, *, now: float, status: str | None, after: tuple[float, str] | None, limit: int,
        newest_first: bool,
    ) -> _Op[tuple[list[DelistRequest], tuple[float, str] | None]]:
        if status is not None and status not in REQUEST_STATUSES:
            raise ValueError(f"not a request status: {status!r}")
        yield from self._op_prune_requests(now=now)
        if status is None:
            key = DELIST_REQUESTS_INDEX_KEY
        else:
            yield from self._op_ensure_request_index()
            key = request_status_key(status)
        entries, more = yield from _op_zpage(key, after=after, limit=limit,
                                             newest_first=newest_first)
        ids = [m for m, _ in entries]
        raw = (yield _cmd("hmget", DELIST_REQUESTS_KEY, ids)) if ids else []
        reqs = self._requests(raw, status=status, limit=limit)
        return reqs, ((entries[-1][1], entries[-1][0]) if more and entries else None)

    def _op_count_delist_requests(self, *, status: str) -> _Op[int]:
        yield from self._op_ensure_request_index()
        n = yield _cmd("zcard", request_status_key(status))
        return int(n)

    def _op_get_delist_request(self, request_id: str) -> _Op[DelistRequest | None]:
        raw = yield _cmd("hget", DELIST_REQUESTS_KEY, request_id)
        return DelistRequest.from_json(raw) if raw else None

    def _op_decide_delist_request(
        self, request_id: str, *, approve: bool, note: str, now: float
    ) -> _Op[tuple[DelistRequest, ListingWrite | None] | None]:
        req = yield from self._op_get_delist_request(request_id)
        if req is None:
            return None
        if approve and req.status == "pending":
            listing = yield from self._op_get(req.key, now=now)
            if listing is not None and listing.listed_at > req.filed_at:
                # the listing it asked about ended; approving it now would end a later
                # offence's listing on the word of a request that never spoke of it
                raise DelistRequestStale(
                    f"request {req.id} was filed against an earlier listing of {req.key}, "
                    f"which ended; {req.key} is listed again since "
                    f"{utc_iso(listing.listed_at)}: reject the request, or delist the key "
                    "yourself", key=req.key, listed_at=listing.listed_at)
        new = self._decided(req, approve=approve, note=note, now=now)
        # the decision first, only while the request is pending: of two operators deciding
        # at once, one decides (and delists); the other gets the request as decided
        done = yield _Script("request_write", _REQUEST_KEYS,
                             self._request_args(new, only_if="pending"))
        if not int(done):
            current = yield from self._op_get_delist_request(request_id)
            return (current, None) if current is not None else None
        write = ((yield from self._op_delist(req.key, note=note or f"delist request {req.id}",
                                             now=now))
                 if approve else None)
        return new, write

    # paged listings

    def _op_ensure_listing_index(self) -> _Op[None]:
        if self._keys_indexed:
            return
        if not (yield _cmd("exists", LISTING_KEYS_BUILT_KEY)):
            keys = [LISTINGS_KEY, LISTING_KEYS_KEY, LISTING_KEYS_BUILT_KEY]
            cursor = "0"
            while True:
                cursor = _s((yield _Script("keys_index", keys, [cursor, BATCH])))
                if cursor == "0":
                    break
        self._keys_indexed = True

    def _op_listing_page(self, *, after: str | None, limit: int, now: float,
                         offset: int = 0) -> _Op[tuple[list[Listing], str | None]]:
        yield from self._op_ensure_listing_index()
        out: list[Listing] = []
        last = after
        more = False
        # an index entry may be an expired listing the worker has not removed yet: read on,
        # a bounded number of times (a short page still carries the cursor)
        for _ in range(PAGE_ROUNDS):
            want = limit - len(out)
            found = yield _cmd("zrangebylex", LISTING_KEYS_KEY,
                               "-" if last is None else "(" + last, "+",
                               start=offset, num=want + 1)
            offset = 0
            keys = [_s(k) for k in found]
            more = len(keys) > want
            keys = keys[:want]
            if not keys:
                break
            for i in range(0, len(keys), BATCH):
                raw = yield _cmd("hmget", LISTINGS_KEY, keys[i : i + BATCH])
                for text in raw:
                    if text is not None:
                        x = Listing.from_json(text)
                        if x.active(now):
                            out.append(x)
            last = keys[-1]
            if not more or len(out) >= limit:
                break
        return out, (last if more else None)

    def _op_active_count(self, *, now: float) -> _Op[int]:
        n = yield _cmd("zcount", EXPIRY_KEY, f"({now!r}", "+inf")
        return int(n)


def _strictly_after(score: float, member: str, after: tuple[float, str], newest_first: bool) -> bool:
    if newest_first:
        return (score, member) < after
    return (score, member) > after


def _op_zpage(key: str, *, after: tuple[float, str] | None, limit: int,
              newest_first: bool) -> _Op[tuple[list[tuple[str, float]], bool]]:
    """The ``limit`` members of the zset ``key`` after ``after`` (a (score, member) pair)
    in (score, member) order, or its reverse, and whether more follow.  Members that
    share the cursor's score are skipped up to the cursor's member, so a page boundary
    inside a run of equal scores neither repeats nor drops a member."""
    out: list[tuple[str, float]] = []
    start = 0
    bound: Any = ("+inf" if newest_first else "-inf") if after is None else repr(after[0])
    while True:
        n = limit + 1 - len(out)
        if newest_first:
            page = yield _cmd("zrevrangebyscore", key, bound, "-inf", start=start, num=n,
                              withscores=True)
        else:
            page = yield _cmd("zrangebyscore", key, bound, "+inf", start=start, num=n,
                              withscores=True)
        start += len(page)
        for m, s in page:
            member, score = _s(m), float(s)
            if after is None or _strictly_after(score, member, after, newest_first):
                out.append((member, score))
        if len(out) > limit:
            return out[:limit], True
        if len(page) < n:
            return out, False


def _listings_from_hash(raw: dict[bytes, bytes]) -> dict[str, Listing]:
    out = {}
    for k, v in raw.items():
        try:
            out[_s(k)] = Listing.from_json(v)
        except ValueError:
            continue
    return out


# -- the sync store -----------------------------------------------------------------------------


class ListingStore(_StoreBase):
    """Listings and complaint counters in Redis, through a sync ``redis.Redis``.

    :param client: a ``redis.Redis`` (decode_responses off or on).
    :param listing_ttl: first listing's lifetime (``reputation.listing_ttl``).
    :param max_listing_ttl: cap of the doubling TTL (``reputation.max_listing_ttl``).
    :param window: complaint and volume window (``reputation.window``).

    Every method raises :class:`~spamwarden.errors.StoreUnavailable` when Redis
    cannot be reached and :class:`~spamwarden.errors.StoreError` on other Redis errors.
    """

    def __init__(self, client: redis.Redis, **settings: Any) -> None:
        super().__init__(**settings)
        self.redis = client
        self._cluster = isinstance(client, redis.cluster.RedisCluster)
        self._scripts: dict[str, Any] = {
            name: client.register_script(text) for name, text in _SCRIPTS.items()}

    @classmethod
    def from_config(cls, cfg: Config, client: redis.Redis | None = None) -> ListingStore:
        """A store with the settings of ``cfg.reputation`` and a client from ``cfg.redis``."""
        from ..redisconn import sync_client

        r = cfg.reputation
        return cls(
            client if client is not None else sync_client(cfg),
            listing_ttl=r.listing_ttl, max_listing_ttl=r.max_listing_ttl, window=r.window,
        )

    # the driver

    def _run(self, op: _Op[_T]) -> _T:
        """Run an operation to its end with the sync client.

        :raises StoreUnavailable: Redis cannot be reached.
        :raises StoreError: another Redis error.
        """
        try:
            step = next(op)
            while True:
                try:
                    result = self._step(step)
                except BaseException:
                    op.close()
                    raise
                step = op.send(result)
        except StopIteration as stop:
            value: _T = stop.value
            return value
        except redis.RedisError as exc:
            raise store_error(exc) from exc

    def _step(self, step: _Step) -> Any:
        """Do one step of an operation (raises redis-py's errors)."""
        if isinstance(step, _Cmd):
            return getattr(self.redis, step.name)(*step.args, **step.kwargs)
        if isinstance(step, _Script):
            return self._scripts[step.script](keys=step.keys, args=step.args)
        if isinstance(step, _Scripts):
            if self._cluster:
                return [self._scripts[c.script](keys=c.keys, args=c.args) for c in step.calls]
            pipe = self.redis.pipeline(transaction=False)
            for c in step.calls:
                self._scripts[c.script](keys=c.keys, args=c.args, client=pipe)
            return pipe.execute()
        if isinstance(step, _Pipeline):
            pipe = self.redis.pipeline(transaction=False)
            step.fill(pipe)
            return pipe.execute()
        return dict(self.redis.hscan_iter(step.key, count=1000))

    def _put_calls(self, calls: Sequence[list[Any]]) -> list[Any]:
        """Run the listing script once per argument list (see :class:`_Scripts`)."""
        result: list[Any] = self._step(
            _Scripts(tuple(_Script("put", _put_keys(args), args) for args in calls)))
        return result

    # listings

    def add(
        self,
        key: str,
        *,
        reason: str,
        now: float,
        ttl: float | None = None,
        note: str = "",
        kind: KeyKind | None = None,
        only_if_unlisted: bool = False,
    ) -> ListingWrite:
        """List ``key`` (an IP, CIDR, domain or address), or extend its listing.

        :param reason: a code of :data:`~spamwarden.reputation.listings.REASONS`
            (others get the kind's generic return code).
        :param ttl: seconds; ``None`` escalates: ``listing_ttl`` doubled per earlier
            offence, up to ``max_listing_ttl``.
        :param only_if_unlisted: the engine's mode: an active listing is left alone
            (``op == "unchanged"``).
        :raises ValueError: ``key`` is not listable.
        """
        return self._run(self._op_add(key, reason=reason, now=now, ttl=ttl, note=note,
                                      kind=kind, only_if_unlisted=only_if_unlisted))

    def add_many(
        self,
        keys: Iterable[str | tuple[str, KeyKind]],
        *,
        reason: str,
        now: float,
        ttl: float | None = None,
        note: str = "",
        only_if_unlisted: bool = False,
    ) -> list[ListingWrite]:
        """:meth:`add` for many keys, :data:`BATCH` per script call, pipelined.

        Keys given as ``(key, kind)`` must already be normalised.
        :raises ValueError: a key is not listable (nothing is written then).
        """
        return self._run(self._op_add_many(keys, reason=reason, now=now, ttl=ttl, note=note,
                                           only_if_unlisted=only_if_unlisted))

    def list_offender(self, key: str, *, kind: KeyKind, reason: str, note: str,
                      now: float) -> ListingWrite:
        """The engine's listing: list ``key`` (normalised) unless it is listed already,
        with the escalating TTL, and clear its complaint window in the same script."""
        return self._run(self._op_list_offender(key, kind=kind, reason=reason, note=note,
                                                now=now))

    def import_many(
        self,
        items: Iterable[tuple[str, KeyKind]],
        *,
        reason: str | None = None,
        now: float,
        ttl: float | None = None,
        note: str = "",
    ) -> dict[str, int]:
        """Bulk :meth:`add` of normalised ``(key, kind)`` pairs for ``list import``.

        :data:`BATCH` keys per script call, 20 calls per pipeline round trip, and
        only the operations come back (no listing records).
        :param reason: one reason for all; ``None``: ``imported`` / ``domain-imported`` /
            ``address-manual`` by kind.
        :returns: how many keys were ``listed`` and ``extended``.
        """
        from .listings import operator_reason

        ops: dict[str, int] = {}
        calls: list[list[Any]] = []

        def flush() -> None:
            for raw in self._put_calls(calls):
                for op in raw:
                    o = _s(op)
                    ops[o] = ops.get(o, 0) + 1
            calls.clear()

        groups: dict[str, list[tuple[str, KeyKind]]] = {}
        try:
            for key, kind in items:
                r = reason or operator_reason(kind, imported=True)
                g = groups.setdefault(r, [])
                g.append((key, kind))
                if len(g) >= BATCH:
                    calls.append(self._put_args(g, reason=r, note=note, ttl=ttl, now=now,
                                                mode="manual", quiet=True))
                    groups[r] = []
                    if len(calls) >= 20:
                        flush()
            for r, g in groups.items():
                if g:
                    calls.append(self._put_args(g, reason=r, note=note, ttl=ttl, now=now,
                                                mode="manual", quiet=True))
            if calls:
                flush()
        except redis.RedisError as exc:
            raise store_error(exc) from exc
        finally:
            from ..metrics import LISTING_CHANGES

            for op, n in ops.items():
                if op in ("listed", "extended"):
                    LISTING_CHANGES.labels(op).inc(n)
        return ops

    def delist(self, key: str, *, note: str = "", now: float) -> ListingWrite:
        """Remove a listing, writing a ``delisted`` change (``expired`` if it had run out).

        :returns: ``op == "absent"`` when nothing was listed under that key.
        :raises ValueError: ``key`` is not a listing key.
        """
        return self._run(self._op_delist(key, note=note, now=now))

    def expire_due(self, now: float, *, limit: int = 1000) -> list[Listing]:
        """Remove listings whose time has come, writing an ``expired`` change for each.

        :returns: the expired listings (at most ``limit``; call again for more).
        """
        return self._run(self._op_expire_due(now, limit=limit))

    def get(self, key: str, *, now: float | None = None) -> Listing | None:
        """The listing stored under exactly ``key``; with ``now``, ``None`` when expired.

        :raises ValueError: ``key`` is not a listing key.
        """
        return self._run(self._op_get(key, now=now))

    def find(self, key: str, *, now: float) -> Listing | None:
        """The active listing covering ``key`` (IPs by networks, names by parents)."""
        return self._run(self._op_find(key, now=now))

    def all(self, *, now: float | None = None) -> list[Listing]:
        """Every listing (with ``now``: only active ones), by key; read with HSCAN."""
        return self._run(self._op_all(now=now))

    def active_keys(self, *, now: float) -> list[str]:
        """The keys of every listing active at ``now``, sorted, read from the expiry
        index with ZSCAN (no listing is decoded: cheaper than :meth:`all` for a search).

        :raises StoreError: Redis failed.
        """
        return self._run(self._op_active_keys(now=now))

    def get_many(self, keys: Sequence[str], *, now: float) -> list[Listing]:
        """The listings stored under exactly ``keys`` and active at ``now``, in the order
        of ``keys`` (HMGET, :data:`BATCH` keys at a time); missing ones are left out.

        :raises StoreError: Redis failed.
        """
        return self._run(self._op_get_many(keys, now=now))

    def listing_page(self, *, after: str | None, limit: int, now: float,
                     offset: int = 0) -> tuple[list[Listing], str | None]:
        """One page of the listings active at ``now``, by key: those after the key
        ``after`` (``None``: from the first), at most ``limit``.

        Reads the key index (ZRANGEBYLEX) and only the page's listings (HMGET), so the cost
        is the page's, not the store's.  Pages never repeat a listing that stayed listed
        and never miss one: the order is the key's, which a listing keeps.  A page can be
        shorter than ``limit`` (expired listings not yet removed are skipped, a bounded
        number of times) and still have a next page.  The first call may index listings
        written before the index existed (once; see the module's notes).

        :param after: the last key of the previous page (the cursor).
        :param offset: index entries to skip first (older clients' ``offset``; O(offset)).
        :returns: the listings and the cursor of the next page (``None``: no more).
        :raises StoreError: Redis failed.
        """
        return self._run(self._op_listing_page(after=after, limit=limit, now=now,
                                               offset=offset))

    def active_count(self, *, now: float) -> int:
        """How many listings are active at ``now`` (ZCOUNT of the expiry index).

        :raises StoreError: Redis failed.
        """
        return self._run(self._op_active_count(now=now))

    def offences(self, key: str) -> int:
        """How many times ``key`` has been listed."""
        return self._run(self._op_offences(key))

    def serial(self) -> int:
        """The current SOA serial (0 before the first change).

        :raises StoreError: Redis failed.
        """
        return self._run(self._op_serial())

    def snapshot(self) -> Snapshot:
        """All listings and the change stream id to follow from (see :class:`Snapshot`)."""
        return self._run(self._op_snapshot())

    def latest_change_id(self) -> str:
        """The id of the newest change stream entry (``"0-0"`` when there is none): where
        to follow the changes from."""
        return self._run(self._op_latest_change_id())

    def changes(self, after: str = "0-0", *, count: int = 1000, block_ms: int | None = None) -> list[ListingChange]:
        """Change stream entries after the stream id ``after`` (bounded by ``count``)."""
        return self._run(self._op_changes(after, count=count, block_ms=block_ms))

    # complaint windows and volume

    def count_complaint(
        self, complaint_id: str, *, reporter: str, at: float, keys: Sequence[str], now: float
    ) -> WindowCounts:
        """Count one complaint against each indicator key and mark it processed, atomically.

        A complaint already counted (a replay) changes nothing; the current counts
        are returned with ``fresh=False``.
        """
        return self._run(self._op_count_complaint(complaint_id, reporter=reporter, at=at,
                                                  keys=keys, now=now))

    def clear_windows(self, keys: Sequence[str]) -> None:
        """Forget the complaints and reporters counted for ``keys`` (a listing used them up)."""
        self._run(self._op_clear_windows(keys))

    def record_volume(self, keys: Sequence[str], *, now: float, count: int = 1) -> None:
        """Add ``count`` accepted messages to each source key's current bucket (pipelined)."""
        self._run(self._op_record_volume(keys, now=now, count=count))

    def record_volume_counts(self, counts: Mapping[str, int], *, now: float) -> None:
        """Add ``counts[key]`` accepted messages to each key's current bucket, in one
        pipeline (the milter counts many messages at once this way).

        Written directly against the sync client, not as an operation: the milter
        calls it for every batch of messages and there is no async twin to share with.
        """
        by_count: dict[int, list[str]] = {}
        for key, n in counts.items():
            if n > 0:
                by_count.setdefault(n, []).append(key)
        if not by_count:
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            for n, keys in by_count.items():
                self._queue_volume(pipe, keys, now=now, count=n)
            pipe.execute()
        except redis.RedisError as exc:
            raise store_error(exc) from exc

    def volumes(self, keys: Sequence[str], *, now: float) -> dict[str, int]:
        """Messages accepted from each source inside the window."""
        return self._run(self._op_volumes(keys, now=now))

    def recent_complaints(self, count: int = 50, *, unmatched: bool = False
                          ) -> list[tuple[str, dict[str, str]]]:
        """The newest complaint stream entries, newest first: (entry id, fields).

        :param unmatched: read the stream of reports that matched no delivery here
            (kept for the operator, never counted) instead.
        """
        from .complaints import COMPLAINTS_KEY, UNMATCHED_KEY

        try:
            raw: Any = self.redis.xrevrange(UNMATCHED_KEY if unmatched else COMPLAINTS_KEY,
                                            count=count)
        except redis.RedisError as exc:
            raise store_error(exc) from exc
        return [(_s(i), {_s(k): _s(v) for k, v in f.items()}) for i, f in raw]

    # delisting requests and rate limits

    def rate_allow(self, what: str, client: str, *, limit: int, now: float) -> bool:
        """Count one request of ``client`` this hour; False once over ``limit``."""
        return self._run(self._op_rate_allow(what, client, limit=limit, now=now))

    def file_delist_request(self, key: str, *, reason: str, contact: str, client: str,
                            now: float, max_pending: int = MAX_DELIST_REQUESTS,
                            max_pending_per_key: int = MAX_PENDING_PER_KEY,
                            client_bucket: str = "") -> DelistRequest:
        """Store a public delisting request, pending, for an operator to decide.

        Only pending requests count toward the bounds; requests past the 90-day retention
        are dropped first.

        :param key: the listed key (normalised here).
        :param client: the requester's address, kept with the request.
        :param client_bucket: the requester's rate-limit bucket: each has one pending
            request of a key at most, so that one client cannot take all of a key's
            places (and keep the listed party's own request out); "" for no such bound.
        :param max_pending: pending requests at most (``api.max_pending_delist_requests``).
        :param max_pending_per_key: pending requests of ``key`` at most
            (``api.max_pending_delist_requests_per_key``).
        :returns: the stored request.
        :raises DelistQueueFull: a bound is reached (``key`` set when it is ``key``'s own);
            nothing is stored.
        :raises ValueError: not a listing key.
        :raises StoreError: Redis failed.
        """
        return self._run(self._op_file_delist_request(
            key, reason=reason, contact=contact, client=client, now=now,
            max_pending=max_pending, max_pending_per_key=max_pending_per_key,
            client_bucket=client_bucket))

    def delist_requests(self, *, now: float, status: str | None = None,
                        limit: int = 1000) -> list[DelistRequest]:
        """Requests, oldest first (``status`` filters); requests older than 90 days are dropped."""
        return self._run(self._op_delist_requests(now=now, status=status, limit=limit))

    def delist_request_page(
        self, *, now: float, status: str | None, after: tuple[float, str] | None, limit: int,
        newest_first: bool = False,
    ) -> tuple[list[DelistRequest], tuple[float, str] | None]:
        """One page of requests from an index: ``status``'s (by time filed for pending,
        by time decided otherwise), or every request's by time filed (``status=None``);
        oldest first unless ``newest_first``.  Requests older than 90 days are dropped
        first (a bounded number per call).

        :param after: the (score, id) cursor the previous page returned.
        :returns: the requests and the next page's cursor (``None``: no more).
        :raises ValueError: ``status`` is not a request status.
        :raises StoreError: Redis failed.
        """
        return self._run(self._op_delist_request_page(now=now, status=status, after=after,
                                                      limit=limit, newest_first=newest_first))

    def count_delist_requests(self, *, status: str) -> int:
        """How many requests have ``status`` (ZCARD of its index).

        :raises StoreError: Redis failed.
        """
        return self._run(self._op_count_delist_requests(status=status))

    def get_delist_request(self, request_id: str) -> DelistRequest | None:
        """The request with ``request_id``, or ``None``.

        :raises StoreError: Redis failed.
        """
        return self._run(self._op_get_delist_request(request_id))

    def decide_delist_request(self, request_id: str, *, approve: bool, note: str,
                              now: float) -> tuple[DelistRequest, ListingWrite | None] | None:
        """Approve (delist the key) or reject a pending request.

        The decision is written only while the request is pending, in the script that
        moves it between the status indexes; then an approval delists the key.  A request
        filed before the key's listing in force began (the listing it asked about ended
        and the key was listed again) is not approved: :class:`DelistRequestStale`, and
        it stays pending for the operator to reject.

        :returns: the updated request and the delisting (``None`` when rejected),
            or ``None`` when there is no such request. A request that was no longer
            pending comes back as it is stored, with ``None``: nothing was changed.
        :raises StoreError: Redis failed.
        """
        return self._run(self._op_decide_delist_request(request_id, approve=approve, note=note,
                                                        now=now))


# -- the async store ----------------------------------------------------------------------------


class AsyncListingStore(_StoreBase):
    """:class:`ListingStore` over ``redis.asyncio.Redis``: the same methods, awaitable.

    Each method runs the same operation as its :class:`ListingStore` twin, awaiting
    each Redis step; see that class for what the methods do and raise.
    """

    def __init__(self, client: redis.asyncio.Redis, **settings: Any) -> None:
        super().__init__(**settings)
        self.redis = client
        self._scripts: dict[str, Any] = {
            name: client.register_script(text) for name, text in _SCRIPTS.items()}

    @classmethod
    def from_config(cls, cfg: Config, client: redis.asyncio.Redis | None = None) -> AsyncListingStore:
        """See :meth:`ListingStore.from_config`."""

        from ..redisconn import async_client

        r = cfg.reputation
        return cls(
            client if client is not None else async_client(cfg),
            listing_ttl=r.listing_ttl, max_listing_ttl=r.max_listing_ttl, window=r.window,
        )

    # the driver

    async def _run(self, op: _Op[_T]) -> _T:
        """Run an operation to its end, awaiting each step (see :meth:`ListingStore._run`)."""
        try:
            step = next(op)
            while True:
                try:
                    result = await self._step(step)
                except BaseException:
                    op.close()
                    raise
                step = op.send(result)
        except StopIteration as stop:
            value: _T = stop.value
            return value
        except redis.RedisError as exc:
            raise store_error(exc) from exc

    async def _step(self, step: _Step) -> Any:
        """Do one step of an operation (raises redis-py's errors).  Script calls go one
        after another (the asyncio pipeline is not used for scripts)."""
        if isinstance(step, _Cmd):
            return await getattr(self.redis, step.name)(*step.args, **step.kwargs)
        if isinstance(step, _Script):
            return await self._scripts[step.script](keys=step.keys, args=step.args)
        if isinstance(step, _Scripts):
            return [await self._scripts[c.script](keys=c.keys, args=c.args) for c in step.calls]
        if isinstance(step, _Pipeline):
            pipe = self.redis.pipeline(transaction=False)
            step.fill(pipe)
            return await pipe.execute()
        return {k: v async for k, v in self.redis.hscan_iter(step.key, count=1000)}

    async def add(self, key: str, *, reason: str, now: float, ttl: float | None = None,
                  note: str = "", kind: KeyKind | None = None,
                  only_if_unlisted: bool = False) -> ListingWrite:
        """See :meth:`ListingStore.add`."""
        return await self._run(self._op_add(key, reason=reason, now=now, ttl=ttl, note=note,
                                            kind=kind, only_if_unlisted=only_if_unlisted))

    async def add_many(self, keys: Iterable[str | tuple[str, KeyKind]], *, reason: str, now: float,
                       ttl: float | None = None, note: str = "",
                       only_if_unlisted: bool = False) -> list[ListingWrite]:
        """See :meth:`ListingStore.add_many`."""
        return await self._run(self._op_add_many(keys, reason=reason, now=now, ttl=ttl,
                                                 note=note, only_if_unlisted=only_if_unlisted))

    async def list_offender(self, key: str, *, kind: KeyKind, reason: str, note: str,
                            now: float) -> ListingWrite:
        """See :meth:`ListingStore.list_offender`."""
        return await self._run(self._op_list_offender(key, kind=kind, reason=reason, note=note,
                                                      now=now))

    async def delist(self, key: str, *, note: str = "", now: float) -> ListingWrite:
        """See :meth:`ListingStore.delist`."""
        return await self._run(self._op_delist(key, note=note, now=now))

    async def expire_due(self, now: float, *, limit: int = 1000) -> list[Listing]:
        """See :meth:`ListingStore.expire_due`."""
        return await self._run(self._op_expire_due(now, limit=limit))

    async def get(self, key: str, *, now: float | None = None) -> Listing | None:
        """See :meth:`ListingStore.get`."""
        return await self._run(self._op_get(key, now=now))

    async def find(self, key: str, *, now: float) -> Listing | None:
        """See :meth:`ListingStore.find`."""
        return await self._run(self._op_find(key, now=now))

    async def all(self, *, now: float | None = None) -> list[Listing]:
        """See :meth:`ListingStore.all`."""
        return await self._run(self._op_all(now=now))

    async def active_keys(self, *, now: float) -> list[str]:
        """See :meth:`ListingStore.active_keys`."""
        return await self._run(self._op_active_keys(now=now))

    async def get_many(self, keys: Sequence[str], *, now: float) -> list[Listing]:
        """See :meth:`ListingStore.get_many`."""
        return await self._run(self._op_get_many(keys, now=now))

    async def listing_page(self, *, after: str | None, limit: int, now: float,
                           offset: int = 0) -> tuple[list[Listing], str | None]:
        """See :meth:`ListingStore.listing_page`."""
        return await self._run(self._op_listing_page(after=after, limit=limit, now=now,
                                                     offset=offset))

    async def active_count(self, *, now: float) -> int:
        """See :meth:`ListingStore.active_count`."""
        return await self._run(self._op_active_count(now=now))

    async def offences(self, key: str) -> int:
        """See :meth:`ListingStore.offences`."""
        return await self._run(self._op_offences(key))

    async def serial(self) -> int:
        """See :meth:`ListingStore.serial`."""
        return await self._run(self._op_serial())

    async def snapshot(self) -> Snapshot:
        """See :meth:`ListingStore.snapshot`."""
        return await self._run(self._op_snapshot())

    async def changes(self, after: str = "0-0", *, count: int = 1000,
                      block_ms: int | None = None) -> list[ListingChange]:
        """See :meth:`ListingStore.changes`."""
        return await self._run(self._op_changes(after, count=count, block_ms=block_ms))

    async def count_complaint(self, complaint_id: str, *, reporter: str, at: float,
                              keys: Sequence[str], now: float) -> WindowCounts:
        """See :meth:`ListingStore.count_complaint`."""
        return await self._run(self._op_count_complaint(complaint_id, reporter=reporter, at=at,
                                                        keys=keys, now=now))

    async def clear_windows(self, keys: Sequence[str]) -> None:
        """See :meth:`ListingStore.clear_windows`."""
        await self._run(self._op_clear_windows(keys))

    async def record_volume(self, keys: Sequence[str], *, now: float, count: int = 1) -> None:
        """See :meth:`ListingStore.record_volume`."""
        await self._run(self._op_record_volume(keys, now=now, count=count))

    async def volumes(self, keys: Sequence[str], *, now: float) -> dict[str, int]:
        """See :meth:`ListingStore.volumes`."""
        return await self._run(self._op_volumes(keys, now=now))

    async def rate_allow(self, what: str, client: str, *, limit: int, now: float) -> bool:
        """See :meth:`ListingStore.rate_allow`."""
        return await self._run(self._op_rate_allow(what, client, limit=limit, now=now))

    async def file_delist_request(
        self, key: str, *, reason: str, contact: str, client: str, now: float,
        max_pending: int = MAX_DELIST_REQUESTS, max_pending_per_key: int = MAX_PENDING_PER_KEY,
        client_bucket: str = "",
    ) -> DelistRequest:
        """See :meth:`ListingStore.file_delist_request`."""
        return await self._run(self._op_file_delist_request(
            key, reason=reason, contact=contact, client=client, now=now,
            max_pending=max_pending, max_pending_per_key=max_pending_per_key,
            client_bucket=client_bucket))

    async def delist_requests(self, *, now: float, status: str | None = None,
                              limit: int = 1000) -> list[DelistRequest]:
        """See :meth:`ListingStore.delist_requests`."""
        return await self._run(self._op_delist_requests(now=now, status=status, limit=limit))

    async def delist_request_page(
        self, *, now: float, status: str | None, after: tuple[float, str] | None, limit: int,
        newest_first: bool = False,
    ) -> tuple[list[DelistRequest], tuple[float, str] | None]:
        """See :meth:`ListingStore.delist_request_page`."""
        return await self._run(self._op_delist_request_page(
            now=now, status=status, after=after, limit=limit, newest_first=newest_first))

    async def count_delist_requests(self, *, status: str) -> int:
        """See :meth:`ListingStore.count_delist_requests`."""
        return await self._run(self._op_count_delist_requests(status=status))

    async def get_delist_request(self, request_id: str) -> DelistRequest | None:
        """See :meth:`ListingStore.get_delist_request`."""
        return await self._run(self._op_get_delist_request(request_id))

    async def decide_delist_request(self, request_id: str, *, approve: bool, note: str,
                                    now: float) -> tuple[DelistRequest, ListingWrite | None] | None:
        """See :meth:`ListingStore.decide_delist_request`."""
        return await self._run(self._op_decide_delist_request(
            request_id, approve=approve, note=note, now=now))

    async def aclose(self) -> None:
        """Close the Redis connections."""
        await self.redis.aclose()


def decided_here(result: tuple[DelistRequest, ListingWrite | None] | None, *,
                 approve: bool) -> bool:
    """Whether a :meth:`ListingStore.decide_delist_request` result is this call's own
    decision, not one another operator made meanwhile: the request has the status asked
    for and, for an approval, this call delisted the key."""
    if result is None:
        return False
    new, write = result
    return new.status == ("approved" if approve else "rejected") and (
        not approve or write is not None)


def iter_lines(lines: Iterable[str]) -> Iterator[str]:
    """Keys of an import file: one per line; blanks and ``#`` comments skipped,
    anything after the first whitespace ignored (rbldnsd-style ``key :code:text``)."""
    for line in lines:
        t = line.split("#", 1)[0].strip()
        if t:
            yield t.split(None, 1)[0]
