"""Cursor paging of the operator's list routes over HTTP with a real Redis: every record once
across pages while records change between them, bounded limits, refused cursors, the OpenAPI
description, and the console's request queue reading pages."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock

import pytest
from aiohttp import test_utils

from spamwarden.api.console.requests import PENDING_SHOWN
from spamwarden.api.listings import listings_module
from spamwarden.api.lookup import lookup_module
from spamwarden.api.paging import key_cursor, request_cursor
from spamwarden.config import Config
from spamwarden.reputation.store import AsyncListingStore
from tests.integration.test_api_listings import AUTH, T0, ManualClock, run_api
from tests.integration.test_lookup_pages import TOKEN as PAGES_TOKEN
from tests.integration.test_lookup_pages import run_pages

pytestmark = pytest.mark.integration

BAD_LIMITS = ("0", "-1", "10001", "99999999999999999999", "ten", "1.5", " ")
BAD_CURSORS = ("garbage", "k.", "k.!!!!", "r.AAAA", "k." + "A" * 700, "k.IA",
               "r." + "MTIz")  # "123": a score without an id


async def _error(r: Any) -> tuple[int, str, str]:
    body = await r.json()
    return r.status, body["code"], body["error"]


def test_listing_pages_answer_every_listing_once_while_listings_change(redis_url: str) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore,
                       clock: ManualClock) -> None:
        keys = [f"host{n:04}.example" for n in range(0, 1200, 2)]
        await store.add_many(keys, reason="domain-manual", now=T0)
        clock.t = T0 + 1
        # a client that knows nothing of cursors gets the first page and where to go on
        r = await c.get("/v1/listings", headers=AUTH)
        body = await r.json()
        assert r.status == 200 and body["total"] == 600 and len(body["listings"]) == 600
        assert body["next_cursor"] is None
        seen: list[str] = []
        removed: set[str] = set()
        url = "/v1/listings?limit=70"
        while True:
            body = await (await c.get(url, headers=AUTH)).json()
            seen += [x["key"] for x in body["listings"]]
            if body["next_cursor"] is None:
                break
            url = f"/v1/listings?limit=70&cursor={body['next_cursor']}"
            # meanwhile: one listing after the cursor and one before it go, two come
            mine = [k for k in keys if k not in removed]
            after = next(k for k in mine if k > seen[-1] and k != seen[-1])
            for k in (after, mine[0]):
                assert (await c.delete(f"/v1/listings/{k}?reason=test", headers=AUTH)).status == 200
                removed.add(k)
            for k in (f"host{len(seen) * 2 + 1:04}.example", "aaa.example"):
                await store.add(k, reason="domain-manual", now=clock.t)
        assert len(seen) == len(set(seen))
        assert set(keys) - removed <= set(seen)
        assert seen == sorted(seen)

    run_api(redis_url, scenario)


def test_listing_page_limits_and_cursors_are_checked(redis_url: str) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore,
                       clock: ManualClock) -> None:
        await store.add_many([f"d{n}.example" for n in range(30)], reason="domain-manual",
                             now=T0)
        for bad in BAD_LIMITS:
            status, code, text = await _error(await c.get("/v1/listings", headers=AUTH,
                                                          params={"limit": bad}))
            assert (status, code) == (400, "page_limit"), bad
            assert text == "limit must be a whole number from 1 to 10000"
        for bad in (*BAD_CURSORS, request_cursor((T0, "ab"))):
            status, code, text = await _error(await c.get("/v1/listings", headers=AUTH,
                                                          params={"cursor": bad}))
            assert (status, code) == (400, "page_cursor"), bad
            assert "next_cursor of the previous page" in text
        body = await (await c.get("/v1/listings?limit=10000", headers=AUTH)).json()
        assert len(body["listings"]) == 30
        body = await (await c.get("/v1/listings?limit=1", headers=AUTH)).json()
        assert [x["key"] for x in body["listings"]] == ["d0.example"]
        assert body["next_cursor"] == key_cursor("d0.example") and body["total"] == 30
        # a cursor past every key: an empty last page
        body = await (await c.get("/v1/listings", headers=AUTH,
                                  params={"cursor": key_cursor("zzz")})).json()
        assert body["listings"] == [] and body["next_cursor"] is None
        # the deprecated offset still works without a cursor
        body = await (await c.get("/v1/listings?offset=28", headers=AUTH)).json()
        assert [x["key"] for x in body["listings"]] == ["d8.example", "d9.example"]
        assert (await c.get("/v1/listings?offset=x", headers=AUTH)).status == 400
        assert (await c.get("/v1/listings?limit=1")).status == 401

    run_api(redis_url, scenario)


def test_request_lists_page_by_status_with_cursors(redis_url: str) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore,
                       clock: ManualClock) -> None:
        await store.add("192.0.2.0/24", reason="manual", now=T0)
        ids = [(await store.file_delist_request("192.0.2.1", reason="fixed", contact="",
                                                client="c", now=T0 + i,
                                                max_pending_per_key=100)).id
               for i in range(25)]
        await store.decide_delist_request(ids[3], approve=False, note="", now=T0 + 100)
        pending = [i for n, i in enumerate(ids) if n != 3]
        # /v1/delisting-requests: an object with next_cursor
        got: list[str] = []
        url = "/v1/delisting-requests?status=pending&limit=10"
        while url:
            body = await (await c.get(url, headers=AUTH)).json()
            got += [q["id"] for q in body["requests"]]
            nxt = body["next_cursor"]
            url = f"/v1/delisting-requests?status=pending&limit=10&cursor={nxt}" if nxt else ""
        assert got == pending
        body = await (await c.get("/v1/delisting-requests?status=rejected",
                                  headers=AUTH)).json()
        assert [q["id"] for q in body["requests"]] == [ids[3]] and body["next_cursor"] is None
        # /v1/delist-requests: still an array; the next page in headers
        r = await c.get("/v1/delist-requests?status=pending&limit=20", headers=AUTH)
        first = await r.json()
        assert [q["id"] for q in first] == pending[:20]
        link = r.headers["Link"]
        m = re.fullmatch(r'<(/v1/delist-requests\?[^>]+)>; rel="next"', link)
        assert m and "status=pending" in link and "limit=20" in link
        rest = await (await c.get(m.group(1), headers=AUTH)).json()
        assert [q["id"] for q in rest] == pending[20:]
        r2 = await c.get(f"/v1/delist-requests?status=pending&cursor={r.headers['Next-Cursor']}",
                         headers=AUTH)
        assert [q["id"] for q in await r2.json()] == pending[20:]
        assert "Link" not in r2.headers and "Next-Cursor" not in r2.headers
        for path in ("/v1/delisting-requests", "/v1/delist-requests"):
            for bad in BAD_LIMITS:
                status, code, _ = await _error(await c.get(path, headers=AUTH,
                                                           params={"limit": bad}))
                assert (status, code) == (400, "page_limit"), (path, bad)
            for bad in (*BAD_CURSORS, key_cursor("192.0.2.1"), "r.aW5mIGFi"):  # "inf ab"
                status, code, _ = await _error(await c.get(path, headers=AUTH,
                                                           params={"cursor": bad}))
                assert (status, code) == (400, "page_cursor"), (path, bad)

    run_api(redis_url, scenario, modules=[listings_module, lookup_module])


def test_openapi_describes_the_paging(redis_url: str) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore,
                       clock: ManualClock) -> None:
        doc = await (await c.get("/v1/openapi.json")).json()
        for path, key in (("/v1/listings", "next_cursor"),
                          ("/v1/delisting-requests", "next_cursor")):
            op = doc["paths"][path]["get"]
            names = {p["name"]: p for p in op["parameters"]}
            assert names["limit"]["schema"]["maximum"] == 10_000, path
            assert "cursor" in names, path
            props = op["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
            assert key in props and "400" in op["responses"], path
        op = doc["paths"]["/v1/delist-requests"]["get"]
        assert {"Next-Cursor", "Link"} <= set(op["responses"]["200"]["headers"])

    run_api(redis_url, scenario, modules=[listings_module, lookup_module])


def test_console_request_queue_pages_through_the_pending_requests(
        redis_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        now = time.time()
        await store.add("192.0.2.0/24", reason="manual", now=now, ttl=3600)
        ids = [(await store.file_delist_request("192.0.2.1", reason=f"fix {i}", contact="",
                                                client="c", now=now - 1000 + i,
                                                max_pending_per_key=1000)).id
               for i in range(PENDING_SHOWN + 5)]
        for rid in ids[:2]:
            await store.decide_delist_request(rid, approve=False, note=f"no {rid}",
                                              now=now)
        r = await c.post("/ui/login", data={"token": PAGES_TOKEN}, allow_redirects=False)
        assert r.status == 303
        page = await (await c.get("/ui/requests")).text()
        assert f"<p>{PENDING_SHOWN + 3} pending request(s).</p>" in page
        shown = re.findall(r'action="/ui/requests/([0-9a-f]+)"', page)
        assert shown == ids[2:PENDING_SHOWN + 2]
        assert f"no {ids[0]}" in page and f"no {ids[1]}" in page  # recently decided
        nxt = re.search(r'<a href="(/ui/requests\?cursor=[^"]+)" rel="next">', page)
        assert nxt
        page2 = await (await c.get(nxt.group(1).replace("&amp;", "&"))).text()
        assert re.findall(r'action="/ui/requests/([0-9a-f]+)"', page2) == ids[PENDING_SHOWN + 2:]
        assert 'rel="next"' not in page2 and 'href="/ui/requests">first page' in page2
        # an edited address shows the first page, not an error
        page3 = await (await c.get("/ui/requests?cursor=nonsense")).text()
        assert re.findall(r'action="/ui/requests/([0-9a-f]+)"', page3) == shown
        home = await (await c.get("/ui/")).text()
        assert f"{PENDING_SHOWN + 3} delisting request(s) waiting" in home

    run_pages(redis_url, tmp_path, monkeypatch, scenario, public_url="http://bl.example.net")


def test_a_request_decided_meanwhile_is_not_decided_again(redis_url: str) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore,
                       clock: ManualClock) -> None:
        await store.add("192.0.2.1", reason="manual", now=T0)
        req = await store.file_delist_request("192.0.2.1", reason="fixed", contact="",
                                              client="c", now=T0)
        # both routes read the request (pending), then another operator rejects it
        store.get_delist_request = AsyncMock(return_value=req)  # type: ignore[method-assign]
        await store.decide_delist_request(req.id, approve=False, note="no", now=T0 + 1)
        r = await c.post(f"/v1/delist-requests/{req.id}/approve", headers=AUTH)
        assert r.status == 409
        r = await c.post(f"/v1/delisting-requests/{req.id}", headers=AUTH,
                         json={"decision": "approve"})
        assert r.status == 409
        assert await store.find("192.0.2.1", now=T0 + 2) is not None  # still listed
        page, _ = await store.delist_request_page(now=T0 + 2, status="rejected", after=None,
                                                  limit=5)
        assert [(q.id, q.decided_note) for q in page] == [(req.id, "no")]

    run_api(redis_url, scenario, modules=[listings_module, lookup_module])
