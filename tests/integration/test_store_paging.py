"""Paged reads of the listing store against a real Redis: the key index of listings and the
per-status indexes of delisting requests, kept by the scripts that write what they index,
under changes between pages, and the one-time indexing of data written before them."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import pytest
import redis

from spamwarden.errors import DelistQueueFull, StoreError
from spamwarden.reputation.listings import LISTINGS_KEY
from spamwarden.reputation.store import (
    BATCH,
    DELIST_REQUEST_RETENTION,
    DELIST_REQUESTS_INDEX_KEY,
    DELIST_REQUESTS_INDEXED_KEY,
    DELIST_REQUESTS_KEY,
    LISTING_KEYS_BUILT_KEY,
    LISTING_KEYS_KEY,
    PAGE_ROUNDS,
    REQUEST_STATUSES,
    DelistRequest,
    ListingStore,
    request_status_key,
)

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0
DAY = 86400.0


@pytest.fixture
def store(redis_url: str) -> Iterator[ListingStore]:
    s = ListingStore(redis.Redis.from_url(redis_url), listing_ttl=DAY, max_listing_ttl=8 * DAY,
                     window=7 * DAY)
    yield s
    s.redis.close()


def _ip(n: int) -> str:
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def _members(r: redis.Redis, key: str) -> set[str]:
    return {m.decode() for m in r.zrange(key, 0, -1)}


def test_listing_pages_answer_each_untouched_listing_once_while_others_come_and_go(
        store: ListingStore) -> None:
    rng = random.Random(7)
    start = [_ip(n) for n in range(0, 5000, 2)]  # 2500 listings, even hosts
    store.add_many(start, reason="manual", now=T0)
    removed: set[str] = set()
    added: set[str] = set()
    removed_unseen: set[str] = set()
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = store.listing_page(after=cursor, limit=300, now=T0 + 1)
        keys = [x.key for x in page]
        assert keys == sorted(keys) and all(k > (seen[-1] if seen else "") for k in keys)
        seen += keys
        pages += 1
        if cursor is None:
            break
        # between pages: delist some listings (seen and not yet seen), list new ones on
        # both sides of the cursor, extend others (a new expiry must not move them)
        gone = rng.sample(sorted(set(start) - removed), 40)
        for k in gone:
            store.delist(k, note="test", now=T0 + 1)
        removed.update(gone)
        removed_unseen.update(set(gone) - set(seen))
        new = [_ip(rng.randrange(1, 5000, 2)) for _ in range(40)]  # odd hosts: never in start
        store.add_many(new, reason="manual", now=T0 + 1)
        added.update(new)
        store.add_many(rng.sample(sorted(set(start) - removed), 40), reason="manual",
                       ttl=5 * DAY, now=T0 + 1)
    assert pages >= 9
    assert len(seen) == len(set(seen)), "a listing was answered twice"
    untouched = set(start) - removed
    assert untouched <= set(seen), sorted(untouched - set(seen))[:5]
    assert set(seen) <= set(start) | added, "answered a listing that never existed"
    assert not (removed_unseen & set(seen)), "answered a listing delisted before its page"
    assert store.listing_page(after=None, limit=10_000, now=T0 + 1)[1] is None
    assert store.active_count(now=T0 + 1) == len(untouched | added)
    assert _members(store.redis, LISTING_KEYS_KEY) == {
        k.decode() for k in store.redis.hkeys(LISTINGS_KEY)}


def test_expired_listings_the_worker_has_not_removed_are_skipped_with_a_cursor(
        store: ListingStore) -> None:
    limit = 5
    stale = [f"stale{n:03}.example" for n in range(limit * PAGE_ROUNDS + 3)]
    store.add_many(stale, reason="domain-manual", ttl=60, now=T0)
    store.add_many(["zz1.example", "zz2.example"], reason="domain-manual", now=T0)
    now = T0 + 120  # the stale ones ran out; nothing removed them
    page, cursor = store.listing_page(after=None, limit=limit, now=now)
    assert page == [] and cursor is not None  # short (empty) page, more to read
    keys: list[str] = []
    while cursor is not None:
        page, cursor = store.listing_page(after=cursor, limit=limit, now=now)
        keys += [x.key for x in page]
    assert keys == ["zz1.example", "zz2.example"]
    assert store.active_count(now=now) == 2
    # the worker's expiry takes them out of the index as well
    while store.expire_due(now, limit=1000):
        pass
    assert _members(store.redis, LISTING_KEYS_KEY) == {"zz1.example", "zz2.example"}
    assert [x.key for x in store.listing_page(after=None, limit=limit, now=now)[0]] == [
        "zz1.example", "zz2.example"]


def test_listings_written_before_the_index_are_indexed_once(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    old = ListingStore(r)
    keys = [_ip(n) for n in range(BATCH * 2 + 500)]  # several HSCAN pages
    old.add_many(keys, reason="manual", now=T0)
    # what an older version left: listings and no index
    r.delete(LISTING_KEYS_KEY, LISTING_KEYS_BUILT_KEY)
    old.delist(keys[0], note="gone before the upgrade", now=T0)
    store = ListingStore(r)
    got: list[str] = []
    cursor = None
    while True:
        page, cursor = store.listing_page(after=cursor, limit=1000, now=T0 + 1)
        got += [x.key for x in page]
        if cursor is None:
            break
    assert got == sorted(keys[1:])
    assert r.get(LISTING_KEYS_BUILT_KEY) == b"1" and r.ttl(LISTING_KEYS_BUILT_KEY) == -1
    assert r.zcard(LISTING_KEYS_KEY) == len(keys) - 1
    # once built, a removed index entry is not rebuilt behind the operator's back
    r.zrem(LISTING_KEYS_KEY, keys[5])
    assert keys[5] not in [x.key for x in ListingStore(r).listing_page(
        after=None, limit=10, now=T0 + 1)[0]]
    r.close()


def test_offset_skips_index_entries_for_older_clients(store: ListingStore) -> None:
    store.add_many([f"d{n:02}.example" for n in range(20)], reason="domain-manual", now=T0)
    page, cursor = store.listing_page(after=None, limit=5, now=T0, offset=10)
    assert [x.key for x in page] == [f"d{n:02}.example" for n in range(10, 15)]
    assert cursor == "d14.example"


# -- delisting requests -------------------------------------------------------------------


def _statuses(store: ListingStore) -> dict[str, set[str]]:
    return {s: _members(store.redis, request_status_key(s)) for s in REQUEST_STATUSES}


def _all_pages(store: ListingStore, *, status: str | None, limit: int, now: float,
               newest_first: bool = False) -> list[DelistRequest]:
    out: list[DelistRequest] = []
    after = None
    while True:
        page, after = store.delist_request_page(now=now, status=status, after=after,
                                                limit=limit, newest_first=newest_first)
        out += page
        if after is None:
            return out


def test_status_indexes_follow_filing_approval_rejection_and_the_90_day_prune(
        store: ListingStore) -> None:
    keys = [_ip(n) for n in range(6)]
    store.add_many(keys, reason="manual", now=T0)
    reqs = [store.file_delist_request(k, reason="fixed", contact="", client="192.0.2.1",
                                      now=T0 + i) for i, k in enumerate(keys)]
    ids = [q.id for q in reqs]
    assert _statuses(store) == {"pending": set(ids), "approved": set(), "rejected": set()}
    res = store.decide_delist_request(ids[0], approve=True, note="ok", now=T0 + 100)
    assert res is not None and res[1] is not None and res[1].op == "delisted"
    store.decide_delist_request(ids[1], approve=False, note="no", now=T0 + 101)
    assert _statuses(store) == {"pending": set(ids[2:]), "approved": {ids[0]},
                                "rejected": {ids[1]}}
    assert store.count_delist_requests(status="pending") == 4
    # a second decision of a decided request changes nothing, and delists nothing
    store.add(keys[1], reason="manual", now=T0 + 102)
    again = store.decide_delist_request(ids[1], approve=True, note="late", now=T0 + 103)
    assert again is not None and again[0].status == "rejected" and again[1] is None
    assert store.find(keys[1], now=T0 + 104) is not None
    assert _statuses(store)["approved"] == {ids[0]}
    # decided lists by time decided; pending by time filed
    assert [q.id for q in _all_pages(store, status="pending", limit=2, now=T0 + 200)] == ids[2:]
    assert [q.id for q in _all_pages(store, status=None, limit=4, now=T0 + 200)] == ids
    # 90 days after filing, requests go from the records and from every index
    later = T0 + 3.5 + DELIST_REQUEST_RETENTION
    store.decide_delist_request(ids[2], approve=False, note="", now=T0 + 300)
    assert [q.id for q in _all_pages(store, status=None, limit=10, now=later)] == ids[4:]
    assert _statuses(store) == {"pending": set(ids[4:]), "approved": set(), "rejected": set()}
    assert store.redis.hlen(DELIST_REQUESTS_KEY) == 2
    assert store.redis.zcard(DELIST_REQUESTS_INDEX_KEY) == 2


def test_request_pages_answer_each_untouched_request_once_while_others_are_decided(
        store: ListingStore) -> None:
    rng = random.Random(3)
    store.add("192.0.2.0/24", reason="manual", now=T0)
    # many requests in the same millisecond: a page boundary falls inside runs of ties
    ids = [store.file_delist_request("192.0.2.1", reason="fixed", contact="", client="c",
                                     now=T0 + i // 7, max_pending_per_key=1000).id
           for i in range(150)]
    decided: set[str] = set()
    seen: list[str] = []
    after = None
    while True:
        page, after = store.delist_request_page(now=T0 + 60, status="pending", after=after,
                                                limit=11)
        assert all(q.status == "pending" for q in page)
        seen += [q.id for q in page]
        if after is None:
            break
        for rid in rng.sample(sorted(set(ids) - decided), 3):
            store.decide_delist_request(rid, approve=False, note="", now=T0 + 60)
            decided.add(rid)
        ids.append(store.file_delist_request("192.0.2.1", reason="again", contact="",
                                             client="c", now=T0 + 30,
                                             max_pending_per_key=1000).id)
    assert len(seen) == len(set(seen))
    untouched = set(ids[:150]) - decided
    assert untouched <= set(seen)
    newest = _all_pages(store, status="rejected", limit=4, now=T0 + 60, newest_first=True)
    assert {q.id for q in newest} == decided and len(newest) == len(decided)


def test_requests_filed_before_the_status_indexes_are_indexed_once(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    # records as an older version wrote them: the hash and the by-time index only
    recs = []
    for i in range(BATCH + 300):
        status = REQUEST_STATUSES[i % 3]
        q = DelistRequest(id=f"{i:032x}", key="192.0.2.1", reason="r", contact="", client="c",
                          filed_at=T0 + i, status=status,
                          decided_at=0.0 if status == "pending" else T0 + 5000 - i)
        recs.append(q)
        r.hset(DELIST_REQUESTS_KEY, q.id, q.to_json())
        r.zadd(DELIST_REQUESTS_INDEX_KEY, {q.id: q.filed_at})
    r.hset(DELIST_REQUESTS_KEY, "f" * 32, "not json")  # an unreadable record is left out
    r.zadd(DELIST_REQUESTS_INDEX_KEY, {"f" * 32: T0})
    store = ListingStore(r)
    for status in REQUEST_STATUSES:
        want = [q for q in recs if q.status == status]
        want.sort(key=lambda q: q.filed_at if status == "pending" else q.decided_at)
        got = _all_pages(store, status=status, limit=250, now=T0 + 6000)
        assert [q.id for q in got] == [q.id for q in want], status
    assert r.get(DELIST_REQUESTS_INDEXED_KEY) == b"1"
    assert store.count_delist_requests(status="approved") == len(recs[1::3])
    r.close()


def test_a_request_record_is_json_with_its_status(store: ListingStore) -> None:
    store.add("192.0.2.1", reason="manual", now=T0)
    q = store.file_delist_request("192.0.2.1", reason="x", contact="", client="c", now=T0)
    assert json.loads(store.redis.hget(DELIST_REQUESTS_KEY, q.id))["status"] == "pending"
    with pytest.raises(ValueError):
        store.delist_request_page(now=T0, status="lost", after=None, limit=1)


def test_only_pending_requests_count_toward_the_caps(store: ListingStore) -> None:
    """Decided requests stay on record for 90 days but never fill the queue: once full of
    decided requests it would refuse every sender for that long."""
    keys = [_ip(n) for n in range(4)]
    store.add_many(keys, reason="manual", now=T0)
    ids = [store.file_delist_request(k, reason="fixed", contact="", client="c", now=T0,
                                     max_pending=2).id for k in keys[:2]]
    with pytest.raises(DelistQueueFull) as full:
        store.file_delist_request(keys[2], reason="fixed", contact="", client="c", now=T0,
                                  max_pending=2)
    assert full.value.key == "" and not isinstance(full.value, StoreError)
    for rid in ids:
        store.decide_delist_request(rid, approve=False, note="no", now=T0 + 1)
    for k in keys[2:]:
        store.file_delist_request(k, reason="fixed", contact="", client="c", now=T0 + 2,
                                  max_pending=2)
    assert store.count_delist_requests(status="pending") == 2
    assert store.redis.hlen(DELIST_REQUESTS_KEY) == 4


def test_pending_requests_are_bounded_per_listed_key(store: ListingStore) -> None:
    store.add_many(["192.0.2.1", "192.0.2.2"], reason="manual", now=T0)
    ids = [store.file_delist_request("192.0.2.1", reason=f"fix {i}", contact="", client="c",
                                     now=T0 + i).id for i in range(3)]
    with pytest.raises(DelistQueueFull) as full:
        store.file_delist_request("192.0.2.1", reason="more", contact="", client="c",
                                  now=T0 + 5)
    assert full.value.key == "192.0.2.1"
    # another key is not held up, and a custom bound is kept
    store.file_delist_request("192.0.2.2", reason="fix", contact="", client="c", now=T0 + 5)
    with pytest.raises(DelistQueueFull):
        store.file_delist_request("192.0.2.2", reason="fix", contact="", client="c",
                                  now=T0 + 5, max_pending_per_key=1)
    # a decision frees a place, a second decision of the same request frees no other
    store.decide_delist_request(ids[0], approve=False, note="no", now=T0 + 10)
    store.decide_delist_request(ids[0], approve=True, note="late", now=T0 + 11)
    store.file_delist_request("192.0.2.1", reason="again", contact="", client="c", now=T0 + 12)
    with pytest.raises(DelistQueueFull):
        store.file_delist_request("192.0.2.1", reason="more", contact="", client="c",
                                  now=T0 + 13)
    # requests pruned after 90 days (filing prunes too) free their places
    later = T0 + 20 + DELIST_REQUEST_RETENTION
    for i in range(3):
        store.file_delist_request("192.0.2.1", reason=f"new {i}", contact="", client="c",
                                  now=later + i)
    assert store.count_delist_requests(status="pending") == 3
