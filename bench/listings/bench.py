"""Operator reads at ISP scale: how long one page of each operator list takes over HTTP.

One private redis-server (unix socket, as ``spamwarden serve`` runs it) holding
``--listings`` listings (200,000) and ``--requests`` delisting requests (20,000: one in
ten pending, the others rejected), the API application of ``spamwarden api`` on
aiohttp's test server, one client. Each route is asked ``--rounds`` times, interleaved;
printed: the median and the slowest answer in milliseconds, and the answer's size.

Routes: ``GET /v1/listings`` (no parameters: what an older client asks), ``GET
/v1/listings?limit=100``, ``GET /v1/delisting-requests?status=pending&limit=100``,
``GET /ui/requests`` (signed in), ``GET /ui/`` (the console home: the pending count).

The script only uses what every version has (``import_many``, ``file_delist_request``,
``decide_delist_request``, the application), so the same script measures an older
checkout: ``SPAMWARDEN_CODE=/path/to/old/checkout bench/listings/run``.

Usage: bench/listings/run [--listings N] [--requests N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import redis
import redis.asyncio
from aiohttp import test_utils

import spamwarden
from spamwarden.api.app import build_app
from spamwarden.config import config_from_mapping
from spamwarden.redisconn import EmbeddedRedis
from spamwarden.reputation.store import AsyncListingStore, ListingStore
from spamwarden.wiring import api_modules

TOKEN = "bench-operator-token-0123456789"
ROUTES = ("/v1/listings", "/v1/listings?limit=100",
          "/v1/delisting-requests?status=pending&limit=100", "/ui/requests", "/ui/")


def _ip(n: int) -> str:
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def populate(url: str, listings: int, requests: int, now: float) -> None:
    store = ListingStore(redis.Redis.from_url(url))
    store.import_many(((_ip(n), "ip") for n in range(listings)), now=now, ttl=30 * 86400)
    for i in range(requests):
        req = store.file_delist_request(_ip(i % listings), reason="we fixed it",
                                        contact="ops@example.org", client="192.0.2.1",
                                        now=now - requests + i)
        if i % 10:
            store.decide_delist_request(req.id, approve=False, note="not yet", now=now)
    store.redis.close()


def one_time_indexing(url: str, now: float) -> tuple[float, float] | None:
    """How long the first paged reads take on data an older version wrote (the indexes
    dropped): the one-time indexing. ``None`` for a version without the indexes."""
    store = ListingStore(redis.Redis.from_url(url))
    if not hasattr(store, "listing_page"):
        return None
    from spamwarden.reputation import store as mod

    store.redis.delete(mod.LISTING_KEYS_KEY, mod.LISTING_KEYS_BUILT_KEY,
                       mod.DELIST_REQUESTS_INDEXED_KEY,
                       *(mod.request_status_key(s) for s in mod.REQUEST_STATUSES))
    t = time.perf_counter()
    store.listing_page(after=None, limit=1, now=now)
    listings = time.perf_counter() - t
    t = time.perf_counter()
    store.delist_request_page(now=now, status="pending", after=None, limit=1)
    requests = time.perf_counter() - t
    store.redis.close()
    return listings, requests


async def measure(url: str, state: Path, rounds: int) -> dict[str, list[tuple[float, int]]]:
    os.environ["SPAMWARDEN_REDIS_URL"] = url
    cfg = config_from_mapping({"service": {"state_dir": str(state)},
                               "api": {"operator_tokens": [TOKEN],
                                       "public_url": "http://bl.example.net"}})
    store = AsyncListingStore(redis.asyncio.Redis.from_url(url))
    app = build_app(cfg, store, modules=api_modules())
    client = test_utils.TestClient(test_utils.TestServer(app))
    await client.start_server()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    out: dict[str, list[tuple[float, int]]] = {r: [] for r in ROUTES}
    try:
        r = await client.post("/ui/login", data={"token": TOKEN}, allow_redirects=False)
        assert r.status == 303, r.status
        for n in range(rounds + 1):  # the first round warms up (and indexes, once)
            for route in ROUTES:
                t = time.perf_counter()
                resp = await client.get(route, headers=auth, allow_redirects=False)
                body = await resp.read()
                dt = time.perf_counter() - t
                assert resp.status == 200, (route, resp.status, body[:200])
                if n:
                    out[route].append((dt, len(body)))
    finally:
        await client.close()
        await store.aclose()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listings", type=int, default=200_000)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="sw-listings-bench-"))
    server = EmbeddedRedis(d / "redis")
    server.start()
    try:
        now = time.time()
        t = time.perf_counter()
        populate(server.url, args.listings, args.requests, now)
        print(f"code: {Path(spamwarden.__file__).parent}")
        print(f"{args.listings} listings, {args.requests} requests "
              f"(populated in {time.perf_counter() - t:.1f} s); {args.rounds} rounds")
        reindex = one_time_indexing(server.url, now)
        res = asyncio.run(measure(server.url, d / "state", args.rounds))
        print(f"{'route':<52} {'median ms':>10} {'max ms':>10} {'bytes':>10}")
        for route, samples in res.items():
            times = [s[0] * 1000 for s in samples]
            print(f"{route:<52} {statistics.median(times):>10.1f} {max(times):>10.1f} "
                  f"{samples[-1][1]:>10}")
        if reindex is not None:
            print(f"one-time indexing of data written before the indexes: listings "
                  f"{reindex[0] * 1000:.0f} ms, requests {reindex[1] * 1000:.0f} ms")
    finally:
        server.stop()
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
