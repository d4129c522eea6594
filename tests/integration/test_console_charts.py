"""Hourly counters on a real Redis and the /ui/charts page that draws them: a verdict,
a complaint and a listing change each count in the hour they happened."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from aiohttp import test_utils

from spamwarden.api.app import build_app
from spamwarden.config import config_from_mapping
from spamwarden.mail import parse_message
from spamwarden.reputation.deliveries import RedisDeliveryLedger, delivery_of
from spamwarden.reputation.history import HistoryRecorder
from spamwarden.reputation.reports import delivered_fingerprint
from spamwarden.reputation.stats import STATS_TTL, hour_of, stats_key
from spamwarden.reputation.store import AsyncListingStore, ListingStore
from tests.integration.test_history_redis import RAW, Clock, env, verdict
from tests.integration.test_lookup_pages import TOKEN

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _counts(client: redis.Redis, series: str, t: float) -> dict[str, int]:
    raw = client.hgetall(stats_key(series, hour_of(t)))
    return {k.decode(): int(v) for k, v in raw.items()}


def test_verdicts_count_in_the_hour_they_were_recorded(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    t = 1_800_000_000.0 + 3599  # the last second of an hour
    clock = Clock(t)
    rec = HistoryRecorder(client, max_entries=3, ttl=3600, clock=clock)
    rec.record([(verdict(), env("A1")), (verdict("reject", 9.0), env("R1")),
                (verdict(), env("A2")), (verdict("quarantine", 7.0), env("H1"))])
    clock.t = t + 1  # the next hour
    rec.record([(verdict("tempfail", 0.0), env("T1"))])
    assert _counts(client, "actions", t) == {"accept": 2, "reject": 1, "quarantine": 1}
    assert _counts(client, "actions", t + 1) == {"tempfail": 1}
    # the history stream is capped (max_entries); the counters are not
    rec.record([(verdict(), env(f"X{i}")) for i in range(50)])
    assert _counts(client, "actions", t + 1) == {"tempfail": 1, "accept": 50}
    assert STATS_TTL - 60 < client.ttl(stats_key("actions", hour_of(t))) <= STATS_TTL


def test_a_counter_that_cannot_be_written_loses_nothing_but_the_record(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    t = 1_800_000_000.0
    client.set(stats_key("actions", hour_of(t)), "not a hash")  # HINCRBY will fail
    rec = HistoryRecorder(client, max_entries=100, ttl=3600, clock=Clock(t))
    assert rec.record([(verdict(), env("A1"))]) == 0  # logged, never raised


def test_listing_changes_count_per_hour(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = ListingStore(client)
    t = 1_800_000_000.0
    store.add("192.0.2.1", reason="manual", now=t)
    store.add("192.0.2.1", reason="manual", now=t + 1)  # extended
    store.add_many(["192.0.2.2", "example.com"], reason="manual", now=t + 2)
    store.delist("192.0.2.2", now=t + 3)
    store.delist("192.0.2.99", now=t + 3)  # absent: not counted
    assert len(store.expire_due(t + 10 * 86400)) == 2
    assert _counts(client, "listings", t) == {"listed": 3, "extended": 1, "delisted": 1}
    assert _counts(client, "listings", t + 10 * 86400) == {"expired": 2}
    # the scripts' own TTL is reputation.stats.STATS_TTL
    for when in (t, t + 10 * 86400):
        assert STATS_TTL - 60 < client.ttl(stats_key("listings", hour_of(when))) <= STATS_TTL


def test_charts_page_shows_verdicts_complaints_and_listings(
        redis_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    from spamwarden.wiring import api_modules

    raw = redis.Redis.from_url(redis_url)
    HistoryRecorder(raw, max_entries=1000, ttl=3600).record(
        [(verdict(), env(f"A{i}")) for i in range(7)] + [(verdict("reject", 9.0), env("R"))])
    monkeypatch.setenv("SPAMWARDEN_REDIS_URL", redis_url)
    cfg = config_from_mapping({
        "service": {"state_dir": str(tmp_path)},
        "api": {"operator_tokens": [TOKEN], "public_url": "http://bl.example.net"},
        "intake": {"local_domains": ["example.net"]},
        "reputation": {"require_delivered": True}})

    async def main() -> None:
        store = AsyncListingStore(redis.asyncio.Redis.from_url(redis_url))
        await store.add("198.51.100.7", reason="manual", now=time.time())
        c = test_utils.TestClient(test_utils.TestServer(build_app(cfg, store,
                                                                  modules=api_modules())))
        await c.start_server()
        try:
            assert (await c.get("/ui/charts", allow_redirects=False)).status == 303
            # a ham learn of a delivered message and an unmatched spam learn: the complaint
            # store counts both
            view = parse_message(RAW)
            d = delivery_of(view, fingerprint=delivered_fingerprint(view),
                            client_ip="192.0.2.77", mail_from="x@example.org",
                            rcpts=["bob@example.net"], auth=None, at=time.time(),
                            queue_id="4XmT", delimiters="+")
            assert d is not None
            RedisDeliveryLedger(raw, ttl=600).record_many([d])
            for kind, body in (("ham", RAW), ("spam", RAW.replace(b"m1@", b"m2@"))):
                r = await c.post(f"/v1/learn?kind={kind}&user=bob@example.net", data=body,
                                 headers=AUTH)
                assert r.status == 201, await r.text()
            r = await c.post("/ui/login", data={"token": TOKEN}, allow_redirects=False)
            assert r.status == 303
            r = await c.get("/ui/charts")
            page = await r.text()
            assert r.status == 200
            for ident in ("chart-actions-24h", "chart-actions-7d", "chart-complaints",
                          "chart-listings"):
                assert f'<svg xmlns="http://www.w3.org/2000/svg" id="{ident}"' in page
            day = page.split('id="chart-actions-24h"')[1].split("</section>")[0]
            assert 'data-series="accept" data-count="7"' in day
            assert 'data-series="reject" data-count="1"' in day
            # the table fallback carries the same numbers: 7 accept, 0 tag, 0 quarantine,
            # 1 reject, 0 tempfail, 8 in all
            assert re.search(r"<td>7</td><td>0</td><td>0</td><td>1</td><td>0</td><td>8</td>",
                             day)
            comp = page.split('id="chart-complaints"')[1].split("</section>")[0]
            assert 'data-series="unmatched" data-count="1"' in comp
            assert 'data-series="ham" data-count="1"' in comp
            hour = hour_of(float(raw.xrange("sw:{sw}:complaints")[0][1][b"received_at"]))
            assert STATS_TTL - 60 < raw.ttl(stats_key("complaints", hour)) <= STATS_TTL
            lst = page.split('id="chart-listings"')[1].split("</section>")[0]
            assert 'data-series="listed" data-count="1"' in lst
        finally:
            await c.close()
            await store.aclose()

    asyncio.run(main())
