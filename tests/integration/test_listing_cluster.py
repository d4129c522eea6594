"""The listing store's scripts and pipelines on a real three-node Redis Cluster: every key
carries the {sw} hash tag, so each script's keys live in one slot."""

from __future__ import annotations

import asyncio

import pytest

from spamwarden.config import config_from_mapping
from spamwarden.redisconn import async_client, sync_client
from spamwarden.reputation.complaints import COMPLAINTS_KEY, Complaint, Indicators
from spamwarden.reputation.engine import ListingEngine, ListingPolicy
from spamwarden.reputation.store import AsyncListingStore, ListingStore
from tests.integration.redis_cluster import LocalCluster

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0


def test_store_operations_on_a_cluster(redis_cluster: LocalCluster) -> None:
    cfg = config_from_mapping({"redis": {"url": redis_cluster.url}})
    store = ListingStore.from_config(cfg, sync_client(cfg))
    store.redis.flushall()
    assert store.add("192.0.2.1", reason="manual", ttl=10, now=T0).op == "listed"
    assert [w.op for w in store.add_many(["a.example", "b.example"], reason="domain-manual",
                                         now=T0)] == ["listed", "listed"]
    ops = store.import_many([(f"198.51.100.{i}", "ip") for i in range(2500)], now=T0)
    assert ops == {"listed": 2500}
    assert store.find("192.0.2.1", now=T0) is not None
    assert [x.key for x in store.expire_due(T0 + 11)] == ["192.0.2.1"]
    assert store.delist("a.example", now=T0).op == "delisted"
    counts = store.count_complaint("c1", reporter="u@isp.example", at=T0, keys=["spam.example"],
                                   now=T0)
    assert counts.fresh and counts.counts[0].reporters == 1
    store.record_volume(["spam.example"], now=T0)
    assert store.volumes(["spam.example"], now=T0) == {"spam.example": 1}
    store.clear_windows(["spam.example"])
    assert "b.example" in store.active_keys(now=T0) and len(store.active_keys(now=T0)) == 2501
    assert [x.key for x in store.get_many(["b.example"], now=T0)] == ["b.example"]
    snap = store.snapshot()
    assert len(snap.listings) == 2501 and snap.serial == 2505
    assert [c.op for c in store.changes(count=10_000)][-2:] == ["expired", "delisted"]
    store.redis.close()


def test_engine_on_a_cluster(redis_cluster: LocalCluster) -> None:
    cfg = config_from_mapping({"redis": {"url": redis_cluster.url}})
    sync = sync_client(cfg)
    sync.flushall()
    for i in range(3):
        c = Complaint(id=f"c{i}", kind="spam", reporter=f"u{i}@isp.example", received_at=T0,
                      fingerprint=f"f{i}", indicators=Indicators(from_domain="spam.example"),
                      match="matched")
        sync.xadd(COMPLAINTS_KEY, c.to_fields())

    class Clock:
        def now(self) -> float:
            return T0

    async def main() -> None:
        store = AsyncListingStore.from_config(cfg, async_client(cfg))
        engine = ListingEngine(store, ListingPolicy(), min_reporters=3, min_complaint_rate=0.001,
                               clock=Clock(), consumer="w1")
        await engine.setup()
        try:
            for _ in range(10):
                if await engine.run_once(block_ms=10) == 0 and not engine._replaying:
                    break
            assert await store.find("spam.example", now=T0) is not None
        finally:
            await store.aclose()

    asyncio.run(main())
    sync.close()


def test_delist_requests_and_rate_limit_on_a_cluster(redis_cluster: LocalCluster) -> None:
    cfg = config_from_mapping({"redis": {"url": redis_cluster.url}})
    store = ListingStore.from_config(cfg, sync_client(cfg))
    store.redis.flushall()
    store.add("spam.example", reason="domain-manual", now=T0)
    assert store.rate_allow("delist", "192.0.2.9", limit=1, now=T0)
    assert not store.rate_allow("delist", "192.0.2.9", limit=1, now=T0)
    req = store.file_delist_request("spam.example", reason="fixed", contact="", client="x",
                                    now=T0)
    res = store.decide_delist_request(req.id, approve=True, note="ok", now=T0)
    assert res is not None and res[1] is not None and res[1].op == "delisted"
    assert [r.status for r in store.delist_requests(now=T0)] == ["approved"]
    page, after = store.delist_request_page(now=T0, status="approved", after=None, limit=5)
    assert [r.id for r in page] == [req.id] and after is None
    assert store.count_delist_requests(status="pending") == 0
    store.redis.close()


def test_listing_pages_on_a_cluster(redis_cluster: LocalCluster) -> None:
    cfg = config_from_mapping({"redis": {"url": redis_cluster.url}})
    store = ListingStore.from_config(cfg, sync_client(cfg))
    store.redis.flushall()
    keys = [f"d{n:03}.example" for n in range(25)]
    store.add_many(keys, reason="domain-manual", now=T0)
    store.delist(keys[3], note="x", now=T0)
    got: list[str] = []
    after = None
    while True:
        page, after = store.listing_page(after=after, limit=10, now=T0)
        got += [x.key for x in page]
        if after is None:
            break
    assert got == keys[:3] + keys[4:]
    assert store.active_count(now=T0) == 24
    store.redis.close()
