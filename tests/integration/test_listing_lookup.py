"""The milter's listing lookup against a real Redis: CIDR and parent matching, the bounded
TTL cache with an injected clock, failed (never "not listed") outcomes when Redis is down,
and volume counted under the keys the engine reads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from spamwarden.reputation.lookup import ListingLookup, RedisListingLookup
from spamwarden.reputation.store import ListingStore

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0


class ManualClock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> float:
        return self.t


@pytest.fixture
def store(redis_url: str) -> Iterator[ListingStore]:
    s = ListingStore(redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1))
    yield s
    s.redis.close()


def test_lookup_matches_ips_networks_domains_and_addresses(store: ListingStore) -> None:
    clock = ManualClock()
    lookup = RedisListingLookup(store, clock=clock)
    assert isinstance(lookup, ListingLookup)
    store.add("198.51.100.0/22", reason="complaints", now=T0)
    store.add("2001:db8::/48", reason="manual", now=T0)
    store.add("spam-shop.example", reason="domain-complaints", now=T0)
    store.add("joe@gmail.com", reason="address-complaints", now=T0)
    out = lookup.lookup_many(["198.51.101.7", "198.51.104.1", "2001:db8:0:1::5",
                              "mail.spam-shop.example", "spam-shop.example", "gmail.com",
                              "JOE@gmail.com", "ann@gmail.com", "no key"])
    assert {k: (o.status, o.detail) for k, o in out.items()} == {
        "198.51.101.7": ("listed", "198.51.100.0/22"),
        "198.51.104.1": ("not_listed", ""),
        "2001:db8:0:1::5": ("listed", "2001:db8::/48"),
        "mail.spam-shop.example": ("listed", "spam-shop.example"),
        "spam-shop.example": ("listed", "spam-shop.example"),
        "gmail.com": ("not_listed", ""),
        "JOE@gmail.com": ("listed", "joe@gmail.com"),
        "ann@gmail.com": ("not_listed", ""),
        "no key": ("not_listed", "not an IP, domain or address"),
    }
    o = out["198.51.101.7"]
    assert (o.reason, o.code, o.expires_at) == ("complaints", "127.0.0.2", T0 + 86400)


def test_cache_serves_until_ttl_and_never_past_the_listing(store: ListingStore) -> None:
    clock = ManualClock()
    lookup = RedisListingLookup(store, clock=clock, cache_ttl=5.0, cache_size=2)
    assert lookup.lookup_many(["192.0.2.1"])["192.0.2.1"].status == "not_listed"
    store.add("192.0.2.1", reason="manual", ttl=100, now=T0)
    clock.t = T0 + 4.9
    assert lookup.lookup_many(["192.0.2.1"])["192.0.2.1"].status == "not_listed"  # cached
    clock.t = T0 + 5
    assert lookup.lookup_many(["192.0.2.1"])["192.0.2.1"].status == "listed"  # cache ran out
    store.add("192.0.2.2", reason="manual", ttl=2, now=clock.t)
    assert lookup.lookup_many(["192.0.2.2"])["192.0.2.2"].status == "listed"
    clock.t = T0 + 7.01  # that listing ended: its cached answer must not outlive it
    assert lookup.lookup_many(["192.0.2.2"])["192.0.2.2"].status == "not_listed"
    lookup.lookup_many(["a.example", "b.example", "c.example"])
    assert len(lookup._cache) == 2  # bounded


def test_redis_down_gives_failed_outcomes(store: ListingStore, redis_server: Any) -> None:
    lookup = RedisListingLookup(store, clock=ManualClock())
    redis_server.stop()
    out = lookup.lookup_many(["192.0.2.1", "spam.example"])
    assert {o.status for o in out.values()} == {"failed"}
    lookup.record_volume(["192.0.2.1"])  # best effort: no exception


def test_record_volume_counts_under_engine_keys(store: ListingStore) -> None:
    clock = ManualClock()
    lookup = RedisListingLookup(store, clock=clock)
    for _ in range(3):
        lookup.record_volume(["192.0.2.1", "Mail.Spam-Shop.example", "joe@gmail.com", "bogus!"])
    assert store.volumes(["192.0.2.1", "spam-shop.example", "joe@gmail.com"], now=T0) == {
        "192.0.2.1": 3, "spam-shop.example": 3, "joe@gmail.com": 3}


def test_volume_of_many_messages_is_counted_per_message_in_one_call(store: ListingStore) -> None:
    lookup = RedisListingLookup(store, clock=ManualClock())
    lookup.record_volume_many([
        ["192.0.2.1", "spam-shop.example", "Mail.Spam-Shop.example"],  # one message: once each
        ["192.0.2.1", "other.example"],
        ["192.0.2.2", "spam-shop.example", "bogus!"],
    ])
    assert store.volumes(["192.0.2.1", "192.0.2.2", "spam-shop.example", "other.example"],
                         now=T0) == {"192.0.2.1": 2, "192.0.2.2": 1, "spam-shop.example": 2,
                                     "other.example": 1}


def _watched(store: ListingStore, redis_url: str, **kwargs: Any) -> tuple[Any, Any]:
    from spamwarden.reputation.lookup import ChangeWatcher
    from tests.support.net import wait_until

    lookup = RedisListingLookup(store, **kwargs)
    blocking = ListingStore(redis.Redis.from_url(redis_url, socket_timeout=3,
                                                 socket_connect_timeout=1))
    watcher = ChangeWatcher(lookup, blocking, block_ms=200).start()
    wait_until(lambda: lookup.following, timeout=10, what="the change stream followed")
    return lookup, watcher


def test_followed_changes_keep_answers_until_a_listing_changes(store: ListingStore,
                                                               redis_url: str) -> None:
    from tests.support.net import wait_until

    clock = ManualClock()
    lookup, watcher = _watched(store, redis_url, clock=clock, cache_ttl=0.5, followed_ttl=60)
    try:
        assert lookup.lookup_many(["192.0.2.1"])["192.0.2.1"].status == "not_listed"
        clock.t = T0 + 30  # past cache_ttl, inside followed_ttl: still kept
        assert ("192.0.2.1" in lookup._cache
                and lookup.lookup_many(["192.0.2.1"])["192.0.2.1"].status == "not_listed")
        store.add("192.0.2.0/24", reason="manual", ttl=3600, now=clock.t)  # a covering network
        wait_until(lambda: lookup.lookup_many(["192.0.2.1"])["192.0.2.1"].status == "listed",
                   timeout=5, what="the new listing seen through the cache")
        assert watcher.changes_seen >= 1
        clock.t = T0 + 100  # past followed_ttl: asked again even without a change
        assert lookup.lookup_many(["192.0.2.1"])["192.0.2.1"].status == "listed"
    finally:
        watcher.stop()
    assert not lookup.following


def test_an_answer_read_before_a_change_is_not_kept(store: ListingStore, redis_url: str) -> None:
    clock = ManualClock()
    lookup, watcher = _watched(store, redis_url, clock=clock)
    try:
        pending = lookup.begin_lookup(["spam-shop.example"])
        lookup.changed()  # a change arrives while the HMGET answer is on its way
        assert pending.result()["spam-shop.example"].status == "not_listed"
        assert "spam-shop.example" not in lookup._cache
        assert lookup.lookup_many(["spam-shop.example"])["spam-shop.example"].status == "not_listed"
        assert "spam-shop.example" in lookup._cache  # no change meanwhile: kept
    finally:
        watcher.stop()


def test_losing_the_change_stream_falls_back_to_the_short_cache(
        store: ListingStore, redis_url: str, redis_server: Any) -> None:
    from tests.support.net import wait_until

    clock = ManualClock()
    lookup, watcher = _watched(store, redis_url, clock=clock, cache_ttl=0.5, followed_ttl=60)
    try:
        assert lookup.lookup_many(["192.0.2.1"])["192.0.2.1"].status == "not_listed"
        redis_server.stop()
        wait_until(lambda: not lookup.following, timeout=10, what="the stream lost")
        clock.t = T0 + 1  # older than cache_ttl: not used while Redis is away
        assert lookup.lookup_many(["192.0.2.1"])["192.0.2.1"].status == "failed"
        redis_server.start()
        wait_until(lambda: lookup.following, timeout=20, what="the stream followed again")
        assert lookup.lookup_many(["192.0.2.1"])["192.0.2.1"].status == "not_listed"
    finally:
        watcher.stop()
