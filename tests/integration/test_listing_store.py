"""The listing store against a real Redis: listings, change stream, expiry, escalation, windows."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis

from spamwarden.reputation.listings import CHANGES_KEY, LISTINGS_KEY, SERIAL_KEY, Listing
from spamwarden.reputation.store import AsyncListingStore, ListingStore, candidate_keys

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0
DAY = 86400.0


@pytest.fixture
def store(redis_url: str) -> Iterator[ListingStore]:
    s = ListingStore(redis.Redis.from_url(redis_url), listing_ttl=DAY, max_listing_ttl=8 * DAY,
                     window=7 * DAY)
    yield s
    s.redis.close()


def test_add_writes_listing_change_and_serial_together(store: ListingStore) -> None:
    w = store.add("Spam.Example.COM.", reason="domain-manual", note="seen in traps", now=T0)
    assert w.op == "listed"
    assert w.listing == Listing("spam.example.com", "domain", "domain-manual", T0, T0 + DAY, 1,
                                "seen in traps")
    raw = store.redis.hget(LISTINGS_KEY, "spam.example.com")
    assert Listing.from_json(raw) == w.listing
    changes = store.changes()
    assert [(c.op, c.key, c.kind, c.reason, c.code, c.listed_at, c.expires_at, c.serial)
            for c in changes] == [
        ("listed", "spam.example.com", "domain", "domain-manual", "127.0.1.5", T0, T0 + DAY, 1)]
    assert int(store.redis.get(SERIAL_KEY)) == 1
    fields = store.redis.xrange(CHANGES_KEY)[0][1]
    assert set(fields) >= {b"op", b"key", b"kind", b"reason", b"code", b"listed_at",
                           b"expires_at", b"serial"}


def test_manual_add_of_active_listing_extends_and_keeps_listed_at(store: ListingStore) -> None:
    store.add("192.0.2.7", reason="manual", now=T0)
    w = store.add("192.0.2.7", reason="manual", ttl=3600, now=T0 + 100)
    assert w.op == "extended"
    assert w.listing is not None
    assert (w.listing.listed_at, w.listing.expires_at, w.listing.offences) == (T0, T0 + 3700, 1)
    assert store.serial() == 2


def test_engine_mode_leaves_active_listing_alone(store: ListingStore) -> None:
    store.add("192.0.2.7", reason="complaints", now=T0)
    w = store.add("192.0.2.7", reason="complaints", now=T0 + 5, only_if_unlisted=True)
    assert w.op == "unchanged"
    assert store.serial() == 1


def test_escalation_doubles_ttl_up_to_the_cap(store: ListingStore) -> None:
    now = T0
    ttls = []
    for _ in range(6):
        w = store.add("bad.example", reason="domain-complaints", now=now, only_if_unlisted=True)
        assert w.op == "listed" and w.listing is not None
        ttls.append(w.listing.expires_at - w.listing.listed_at)
        now = w.listing.expires_at + 1
    assert ttls == [DAY, 2 * DAY, 4 * DAY, 8 * DAY, 8 * DAY, 8 * DAY]
    assert store.offences("bad.example") == 6


def test_expiry_readers_ignore_and_expire_due_writes_change(store: ListingStore) -> None:
    store.add("10.1.0.0/16", reason="manual", ttl=60, now=T0)
    store.add("10.2.0.1", reason="manual", ttl=600, now=T0)
    assert store.find("10.1.2.3", now=T0 + 59) is not None
    assert store.find("10.1.2.3", now=T0 + 60) is None  # expired, though not reaped yet
    assert store.get("10.1.0.0/16", now=T0 + 61) is None
    expired = store.expire_due(T0 + 61)
    assert [x.key for x in expired] == ["10.1.0.0/16"]
    assert store.expire_due(T0 + 62) == []
    assert [c.op for c in store.changes()] == ["listed", "listed", "expired"]
    assert store.changes()[-1].serial == 3
    assert [x.key for x in store.all()] == ["10.2.0.1"]


def test_delist_writes_change_and_absent_is_reported(store: ListingStore) -> None:
    store.add("example.net", reason="domain-manual", now=T0)
    w = store.delist("example.net", note="false positive", now=T0 + 1)
    assert w.op == "delisted"
    assert store.get("example.net") is None
    assert store.delist("example.net", now=T0 + 2).op == "absent"
    last = store.changes()[-1]
    assert (last.op, last.key, last.note, last.code) == ("delisted", "example.net",
                                                         "false positive", "127.0.1.5")


def test_active_keys_and_get_many_read_only_active_listings(store: ListingStore) -> None:
    store.import_many([(f"10.0.{i // 256}.{i % 256}", "ip") for i in range(2345)], ttl=600,
                      now=T0)
    store.add("old.example", reason="domain-manual", ttl=60, now=T0)  # expired, not reaped
    store.add("b.example", reason="domain-manual", ttl=600, now=T0)
    store.delist("10.0.0.7", now=T0)
    keys = store.active_keys(now=T0 + 61)
    assert keys == sorted(x.key for x in store.all(now=T0 + 61))
    assert len(keys) == 2345 and "old.example" not in keys and "10.0.0.7" not in keys
    assert "old.example" in store.active_keys(now=T0 + 59)
    got = store.get_many(["b.example", "old.example", "nope.example", *keys[:1500]],
                         now=T0 + 61)
    assert [x.key for x in got] == ["b.example", *keys[:1500]]
    assert got[0] == store.get("b.example")
    assert store.get_many([], now=T0) == [] and store.active_keys(now=T0 + 601) == []


def test_candidate_keys_cover_networks_and_parents() -> None:
    c = candidate_keys("10.1.2.3")
    assert c[0] == "10.1.2.3" and "10.1.2.0/24" in c and "10.0.0.0/8" in c and len(c) == 25
    assert candidate_keys("a.b.example.co.uk")[:3] == ["a.b.example.co.uk", "b.example.co.uk",
                                                       "example.co.uk"]
    assert candidate_keys("Bob@Mail.Example.com") == ["bob@mail.example.com", "mail.example.com",
                                                      "example.com"]
    assert candidate_keys("not a key") == []


def test_snapshot_and_follow(store: ListingStore) -> None:
    store.add("a.example", reason="domain-manual", now=T0)
    snap = store.snapshot()
    assert set(snap.listings) == {"a.example"} and snap.serial == 1
    store.add("b.example", reason="domain-manual", now=T0)
    after = store.changes(snap.stream_id)
    assert [c.key for c in after] == ["b.example"]


def test_bulk_add_many_keys(store: ListingStore) -> None:
    keys = [f"198.51.{i // 256}.{i % 256}" for i in range(5000)]
    writes = store.add_many(keys, reason="imported", now=T0)
    assert len(writes) == 5000 and all(w.op == "listed" for w in writes)
    assert store.redis.hlen(LISTINGS_KEY) == 5000
    assert store.serial() == 5000
    assert store.redis.xlen(CHANGES_KEY) == 5000


def test_count_complaint_is_idempotent_and_windowed(store: ListingStore) -> None:
    keys = ["spam.example", "192.0.2.1"]
    a = store.count_complaint("c1", reporter="u1@isp.example", at=T0, keys=keys, now=T0)
    assert a.fresh and [(c.complaints, c.reporters) for c in a.counts] == [(1, 1), (1, 1)]
    again = store.count_complaint("c1", reporter="u1@isp.example", at=T0, keys=keys, now=T0)
    assert not again.fresh and [(c.complaints, c.reporters) for c in again.counts] == [(1, 1)] * 2
    store.count_complaint("c2", reporter="u1@isp.example", at=T0 + 1, keys=keys, now=T0 + 1)
    b = store.count_complaint("c3", reporter="u2@isp.example", at=T0 + 2, keys=keys[:1], now=T0 + 2)
    assert (b.counts[0].complaints, b.counts[0].reporters) == (3, 2)
    late = store.count_complaint("c4", reporter="u3@isp.example", at=T0 + 7 * DAY + 1.5,
                                 keys=keys[:1], now=T0 + 7 * DAY + 1.5)
    assert (late.counts[0].complaints, late.counts[0].reporters) == (2, 2)  # c1 and u1's c1 left


def test_volume_buckets_slide(store: ListingStore) -> None:
    store.record_volume(["192.0.2.1", "spam.example"], now=T0)
    store.record_volume(["192.0.2.1"], now=T0 + DAY, count=4)
    assert store.volumes(["192.0.2.1", "spam.example", "x.example"], now=T0 + DAY) == {
        "192.0.2.1": 5, "spam.example": 1, "x.example": 0}
    assert store.volumes(["192.0.2.1"], now=T0 + 7 * DAY + 8 * 3600)["192.0.2.1"] == 4


def test_async_store_same_behaviour(redis_url: str) -> None:
    async def run() -> None:
        s = AsyncListingStore(redis.asyncio.Redis.from_url(redis_url), listing_ttl=DAY,
                              max_listing_ttl=8 * DAY, window=7 * DAY)
        try:
            w = await s.add("192.0.2.0/24", reason="manual", now=T0)
            assert w.op == "listed"
            found = await s.find("192.0.2.55", now=T0)
            assert found is not None and found.key == "192.0.2.0/24"
            assert [x.key for x in await s.all(now=T0)] == ["192.0.2.0/24"]
            assert await s.active_keys(now=T0) == ["192.0.2.0/24"]
            assert [x.key for x in await s.get_many(["192.0.2.0/24"], now=T0)] == ["192.0.2.0/24"]
            assert (await s.delist("192.0.2.0/24", now=T0)).op == "delisted"
            assert [c.op for c in await s.changes()] == ["listed", "delisted"]
        finally:
            await s.aclose()

    asyncio.run(run())
