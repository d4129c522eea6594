"""The listing engine against a real Redis: thresholds, floods, shared platforms, expiry,
escalation, volume, and replay after a crash between counting and acknowledging."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis
import redis.asyncio

from spamwarden.reputation.complaints import COMPLAINTS_KEY, Complaint, Indicators
from spamwarden.reputation.engine import ListingEngine, ListingPolicy
from spamwarden.reputation.listings import CHANGES_KEY
from spamwarden.reputation.store import AsyncListingStore, ListingStore, window_keys

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0
DAY = 86400.0


class ManualClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def complaint(n: int, reporter: str, *, kind: str = "spam", at: float = T0,
              delivered_to: str = "", **ind: Any) -> Complaint:
    ind.setdefault("source_ip", "203.0.113.9")
    ind.setdefault("from_domain", "mail.spam-shop.example")
    ind.setdefault("mail_from_domain", "bounce.spam-shop.example")
    for k in ("dkim_verified", "url_domains", "dkim_domains"):
        if k in ind:
            ind[k] = tuple(ind[k])
    return Complaint(id=f"c{n}", kind=kind, reporter=reporter, received_at=at,  # type: ignore[arg-type]
                     fingerprint=f"fp{n}", indicators=Indicators(**ind), source="attached",
                     match="matched", delivered_to=delivered_to)


def push(url: str, complaints: list[Complaint]) -> None:
    r = redis.Redis.from_url(url)
    pipe = r.pipeline(transaction=False)
    for c in complaints:
        pipe.xadd(COMPLAINTS_KEY, c.to_fields())
    pipe.execute()
    r.close()


Run = Callable[[Callable[[ListingEngine, ListingStore], Awaitable[None]]], None]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def run(redis_url: str, clock: ManualClock) -> Run:
    """Run an async scenario with an engine (min_reporters 3) and a sync store to inspect."""

    def go(scenario: Callable[[ListingEngine, ListingStore], Awaitable[None]], **kw: Any) -> None:
        async def main() -> None:
            astore = AsyncListingStore(redis.asyncio.Redis.from_url(redis_url), listing_ttl=DAY,
                                       max_listing_ttl=8 * DAY, window=7 * DAY)
            policy = ListingPolicy(allow=["partner.example", "198.51.100.0/24"],
                                   local_domains=["isp.example"],
                                   shared_domains=["gmail.com", "yahoo.com"])
            engine = ListingEngine(astore, policy, min_reporters=3, min_complaint_rate=0.001,
                                   clock=clock, consumer="w1", **kw)
            await engine.setup()
            sync = ListingStore(redis.Redis.from_url(redis_url), listing_ttl=DAY,
                                max_listing_ttl=8 * DAY, window=7 * DAY)
            try:
                await scenario(engine, sync)
            finally:
                await astore.aclose()
                sync.redis.close()

        asyncio.run(main())

    return go


async def drain(engine: ListingEngine) -> int:
    total = 0
    for _ in range(1000):
        n = await engine.run_once(block_ms=1)
        total += n
        if n == 0 and not engine._replaying:
            return total
    raise AssertionError("stream not drained")


def listed_keys(store: ListingStore) -> set[str]:
    return {x.key for x in store.all(now=T0)}


def test_n_distinct_reporters_list_and_n_minus_one_do_not(redis_url: str, run: Run) -> None:
    async def scenario(engine: ListingEngine, store: ListingStore) -> None:
        push(redis_url, [complaint(i, f"user{i}@isp.example") for i in range(2)])
        assert await drain(engine) == 2
        assert listed_keys(store) == set()
        push(redis_url, [complaint(2, "user2@isp.example")])
        await drain(engine)
        assert listed_keys(store) == {"203.0.113.9", "spam-shop.example"}
        x = store.get("spam-shop.example")
        assert x is not None and x.reason == "domain-complaints" and x.code == "127.0.1.2"
        assert x.expires_at == T0 + DAY
        assert "3 reporters" in x.note
        ops = [(c.op, c.key) for c in store.changes()]
        assert sorted(ops) == [("listed", "203.0.113.9"), ("listed", "spam-shop.example")]
        assert [c.serial for c in store.changes()] == [1, 2]

    run(scenario)


def test_a_login_without_a_domain_and_its_mailbox_are_one_reporter(redis_url: str,
                                                                    run: Run) -> None:
    """report@ names a SASL login without a domain ("mallory"), an IMAP move names the
    mailbox (mallory@isp.example): the same person, counted once."""
    async def scenario(engine: ListingEngine, store: ListingStore) -> None:
        push(redis_url, [
            complaint(0, "mallory", delivered_to="mallory@isp.example"),
            complaint(1, "mallory@isp.example", delivered_to="mallory@isp.example"),
            complaint(2, "trudy", delivered_to="trudy+x@isp.example"),
            complaint(3, "trudy@isp.example", delivered_to="trudy@isp.example"),
        ])
        await drain(engine)
        assert listed_keys(store) == set()
        assert store.redis.zcard(window_keys("spam-shop.example")[1]) == 2
        push(redis_url, [complaint(4, "oscar", delivered_to="oscar@isp.example")])
        await drain(engine)
        assert "spam-shop.example" in listed_keys(store)

    run(scenario)


def test_one_reporter_flooding_lists_nothing(redis_url: str, run: Run) -> None:
    async def scenario(engine: ListingEngine, store: ListingStore) -> None:
        push(redis_url, [complaint(i, "angry@isp.example") for i in range(1000)])
        assert await drain(engine) == 1000
        assert listed_keys(store) == set()
        c_key, r_key = window_keys("spam-shop.example")
        assert (store.redis.zcard(c_key), store.redis.zcard(r_key)) == (1000, 1)
        # two more people are enough: the flood counted as one reporter, not as a thousand
        push(redis_url, [complaint(2000, "b@isp.example"), complaint(2001, "c@isp.example")])
        await drain(engine)
        assert "spam-shop.example" in listed_keys(store)

    run(scenario)


def test_shared_allowed_and_local_domains_are_never_listed_whole(redis_url: str, run: Run) -> None:
    async def scenario(engine: ListingEngine, store: ListingStore) -> None:
        push(redis_url, [
            complaint(i, f"u{i}@isp.example", source_ip="198.51.100.7", from_domain="gmail.com",
                      from_address="Spammer.Joe@GMAIL.com", mail_from_domain="gmail.com",
                      dkim_verified=["gmail.com", "partner.example"],
                      url_domains=["www.partner.example", "isp.example", "shop.blogspot.com",
                                   "blogspot.com", "cheap-pills.example"])
            for i in range(3)
        ])
        await drain(engine)
        assert listed_keys(store) == {"spammer.joe@gmail.com", "shop.blogspot.com",
                                      "cheap-pills.example"}
        x = store.get("spammer.joe@gmail.com")
        assert x is not None and (x.kind, x.reason) == ("address", "address-complaints")
        for never in ("gmail.com", "partner.example", "isp.example", "blogspot.com",
                      "198.51.100.7"):
            assert store.find(never, now=T0) is None

    run(scenario)


def test_ham_reports_count_for_nothing(redis_url: str, run: Run) -> None:
    async def scenario(engine: ListingEngine, store: ListingStore) -> None:
        push(redis_url, [complaint(i, f"u{i}@isp.example", kind="ham") for i in range(5)])
        await drain(engine)
        assert listed_keys(store) == set()
        assert store.redis.zcard(window_keys("spam-shop.example")[0]) == 0

    run(scenario)


def test_volume_keeps_complaint_rate_below_threshold(redis_url: str, run: Run) -> None:
    async def scenario(engine: ListingEngine, store: ListingStore) -> None:
        store.record_volume(["spam-shop.example"], now=T0 - 3600, count=10_000)
        push(redis_url, [complaint(i, f"u{i}@isp.example") for i in range(3)])
        await drain(engine)
        # 3 complaints / 10,000 messages = 0.0003 <= 0.001: the domain stays; the IP,
        # with no volume known, is listed on reporters alone
        assert listed_keys(store) == {"203.0.113.9"}
        push(redis_url, [complaint(i, f"u{i}@isp.example") for i in range(3, 11)])
        await drain(engine)  # 11 / 10,000 > 0.001
        assert "spam-shop.example" in listed_keys(store)

    run(scenario)


def test_expiry_and_escalation_with_injected_clock(redis_url: str, run: Run,
                                                   clock: ManualClock) -> None:
    async def scenario(engine: ListingEngine, store: ListingStore) -> None:
        def wave(start: int, at: float) -> list[Complaint]:
            return [complaint(start + i, f"u{start + i}@isp.example", at=at,
                              source_ip="192.0.2.50", url_domains=[]) for i in range(3)]

        push(redis_url, wave(0, T0))
        await drain(engine)
        x = store.get("192.0.2.50")
        assert x is not None and x.expires_at - x.listed_at == DAY and x.offences == 1
        # complaints while listed change nothing (no extension, no second offence)
        clock.t = T0 + 3600
        push(redis_url, wave(10, clock.t))
        await drain(engine)
        assert store.get("192.0.2.50") == x
        clock.t = T0 + DAY + 1
        assert store.find("192.0.2.50", now=clock.t) is None  # readers ignore it at once
        assert await engine.expire_once() == 2
        assert [c.op for c in store.changes()][-2:] == ["expired", "expired"]
        # one new reporter is not a new offence: the listing used up the earlier complaints
        push(redis_url, [complaint(20, "late@isp.example", at=clock.t, source_ip="192.0.2.50")])
        await drain(engine)
        assert store.find("192.0.2.50", now=clock.t) is None
        push(redis_url, wave(30, clock.t))
        await drain(engine)
        y = store.get("192.0.2.50")
        assert y is not None and y.offences == 2 and y.expires_at - y.listed_at == 2 * DAY
        clock.t = y.expires_at + 1
        await engine.expire_once()
        push(redis_url, wave(40, clock.t))
        await drain(engine)
        z = store.get("192.0.2.50")
        assert z is not None and z.offences == 3 and z.expires_at - z.listed_at == 4 * DAY

    run(scenario)


def test_crash_between_counting_and_ack_replays_without_double_counting(
    redis_url: str, run: Run
) -> None:
    async def scenario(engine: ListingEngine, store: ListingStore) -> None:
        engine.min_reporters = 10**6  # nothing lists: every count stays observable
        push(redis_url, [complaint(i, f"u{i % 7}@isp.example") for i in range(50)])
        # the worker reads a batch, counts every entry, and dies before acknowledging
        engine._replaying = False
        res = await engine.redis.xreadgroup(engine.group, engine.consumer, {COMPLAINTS_KEY: ">"},
                                            count=20)
        for entry_id, fields in res[0][1]:
            await engine.handle(entry_id.decode(), fields)
        info = store.redis.xpending(COMPLAINTS_KEY, engine.group)
        assert info["pending"] == 20
        # a new engine with the same consumer name replays those 20, then reads the rest
        fresh = ListingEngine(engine.store, engine.policy, min_reporters=10**6,
                              min_complaint_rate=0.001, clock=engine.clock, consumer="w1")
        assert await drain(fresh) == 50
        c_key, r_key = window_keys("spam-shop.example")
        assert (store.redis.zcard(c_key), store.redis.zcard(r_key)) == (50, 7)
        assert store.redis.xpending(COMPLAINTS_KEY, engine.group)["pending"] == 0

    run(scenario)


def test_dead_consumer_entries_are_claimed(redis_url: str, run: Run) -> None:
    async def scenario(engine: ListingEngine, store: ListingStore) -> None:
        push(redis_url, [complaint(i, f"u{i}@isp.example", source_ip="192.0.2.77")
                         for i in range(3)])
        await engine.redis.xreadgroup(engine.group, "dead", {COMPLAINTS_KEY: ">"}, count=10)
        other = ListingEngine(engine.store, engine.policy, min_reporters=3,
                              min_complaint_rate=0.001, clock=engine.clock, consumer="w2",
                              claim_idle=0.0)
        await drain(other)
        assert "192.0.2.77" in listed_keys(store)
        assert store.redis.xpending(COMPLAINTS_KEY, engine.group)["pending"] == 0

    run(scenario)


def test_unreadable_entry_is_acknowledged_and_skipped(redis_url: str, run: Run) -> None:
    async def scenario(engine: ListingEngine, store: ListingStore) -> None:
        store.redis.xadd(COMPLAINTS_KEY, {"garbage": "1"})
        push(redis_url, [complaint(1, "u@isp.example")])
        assert await drain(engine) == 2
        assert store.redis.xpending(COMPLAINTS_KEY, engine.group)["pending"] == 0
        assert store.redis.xlen(CHANGES_KEY) == 0

    run(scenario)


def test_hooks_see_every_complaint_and_store_errors_keep_it_pending(redis_url: str,
                                                                    run: Run) -> None:
    from spamwarden.errors import StoreError

    seen: list[str] = []
    fail = {"on": True}

    async def hook(c: Complaint) -> None:
        seen.append(c.id)
        if fail["on"]:
            raise StoreError("registry down")

    async def scenario(engine: ListingEngine, store: ListingStore) -> None:
        engine.hooks = [hook]
        push(redis_url, [complaint(1, "u@isp.example")])
        with pytest.raises(StoreError):
            await engine.run_once(block_ms=1)
        assert store.redis.xpending(COMPLAINTS_KEY, engine.group)["pending"] == 1
        fail["on"] = False
        engine._replaying = True
        await drain(engine)
        assert seen == ["c1", "c1"]
        assert store.redis.xpending(COMPLAINTS_KEY, engine.group)["pending"] == 0

    run(scenario)


def test_run_recovers_when_redis_lost_the_group(redis_url: str, run: Run) -> None:
    async def scenario(engine: ListingEngine, store: ListingStore) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(engine.run(stop, block_ms=20))
        try:
            for _ in range(200):
                await asyncio.sleep(0.01)
                if store.redis.xinfo_groups(COMPLAINTS_KEY):
                    break
            store.redis.flushall()  # a Redis restarted without its data: no stream, no group
            push(redis_url, [complaint(i, f"u{i}@isp.example", source_ip="192.0.2.80")
                             for i in range(3)])
            for _ in range(500):
                await asyncio.sleep(0.01)
                if store.get("192.0.2.80") is not None:
                    break
            assert store.get("192.0.2.80") is not None
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    run(scenario)
