"""The listing lookup sent at the start of a scan and read after it (``begin_lookup``),
against a real Redis: the same outcomes as ``lookup_many``, the connection given back,
and a fallback through the client when the sent request's connection breaks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from spamwarden.reputation.lookup import RedisListingLookup
from spamwarden.reputation.store import ListingStore

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0

KEYS = ["198.51.101.7", "198.51.104.1", "mail.spam-shop.example", "gmail.com",
        "JOE@gmail.com", "no key"]


class ManualClock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> float:
        return self.t


@pytest.fixture
def store(redis_url: str) -> Iterator[ListingStore]:
    s = ListingStore(redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1))
    s.add("198.51.100.0/22", reason="complaints", now=T0)
    s.add("spam-shop.example", reason="domain-complaints", now=T0)
    s.add("joe@gmail.com", reason="address-complaints", now=T0)
    yield s
    s.redis.close()


def _pool_idle(store: ListingStore) -> bool:
    pool = store.redis.connection_pool
    return not pool._in_use_connections  # what "given back" means


def test_pending_lookup_gives_what_lookup_many_gives(store: ListingStore) -> None:
    sync = RedisListingLookup(store, clock=ManualClock()).lookup_many(KEYS)
    lookup = RedisListingLookup(store, clock=ManualClock())
    pending = lookup.begin_lookup(KEYS)
    assert pending.sent is not None  # really sent before the answer was asked for
    assert pending.result() == sync
    assert pending.result() == sync  # read once, answered again
    assert _pool_idle(store)
    assert sync["198.51.101.7"].status == "listed" and sync["198.51.104.1"].status == "not_listed"


def test_pending_lookup_uses_and_fills_the_cache(store: ListingStore) -> None:
    clock = ManualClock()
    lookup = RedisListingLookup(store, clock=clock, cache_ttl=5.0)
    first = lookup.begin_lookup(["198.51.104.1"]).result()
    store.add("198.51.104.1", reason="manual", now=T0)
    cached = lookup.begin_lookup(["198.51.104.1"])
    assert cached.sent is None  # answered from the cache: nothing sent
    assert cached.result() == first
    clock.t += 5.0
    assert lookup.begin_lookup(["198.51.104.1"]).result()["198.51.104.1"].status == "listed"


def test_discarded_lookup_gives_the_connection_back(store: ListingStore) -> None:
    lookup = RedisListingLookup(store, clock=ManualClock())
    pending = lookup.begin_lookup(KEYS)
    assert not _pool_idle(store)
    pending.discard()
    assert _pool_idle(store)
    assert lookup.lookup_many(KEYS)["198.51.101.7"].status == "listed"  # pool still usable


def test_broken_connection_falls_back_to_the_client(store: ListingStore) -> None:
    lookup = RedisListingLookup(store, clock=ManualClock())
    pending = lookup.begin_lookup(KEYS)
    assert pending.sent is not None
    pending.sent[1].disconnect()  # the answer can no longer be read on this connection
    out = pending.result()
    assert out == RedisListingLookup(store, clock=ManualClock()).lookup_many(KEYS)
    assert _pool_idle(store)


def test_redis_down_gives_failed_outcomes(store: ListingStore) -> None:
    dead = ListingStore(redis.Redis(host="127.0.0.1", port=1, socket_timeout=0.2,
                                    socket_connect_timeout=0.2))
    lookup = RedisListingLookup(dead, clock=ManualClock())
    out = lookup.begin_lookup(["198.51.101.7", "no key"]).result()
    assert out["198.51.101.7"].status == "failed"
    assert out["no key"].status == "not_listed"
