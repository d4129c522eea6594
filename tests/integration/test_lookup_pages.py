"""The public lookup pages (/lookup/) and the operator's delisting-request queue, against a
real Redis through aiohttp's test server (and the real DNS server where the link starts)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio
from aiohttp import test_utils

from spamwarden.api.app import build_app
from spamwarden.config import Config, config_from_mapping
from spamwarden.reputation.store import AsyncListingStore
from tests.support.rblserver import RblProcess, ip_name

pytestmark = pytest.mark.integration

TOKEN = "op-token-1-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SCRIPT = "<script>alert(1)</script>"

Scenario = Callable[[test_utils.TestClient, AsyncListingStore, Config], Awaitable[None]]


def run_pages(redis_url: str, tmp_path: Path, monkeypatch: Any, scenario: Scenario,
              **api: Any) -> None:
    """Serve what `spamwarden api` serves (wiring.api_modules) and run ``scenario``."""
    from spamwarden.wiring import api_modules

    monkeypatch.setenv("SPAMWARDEN_REDIS_URL", redis_url)
    cfg = config_from_mapping({"service": {"state_dir": str(tmp_path)},
                               "api": {"operator_tokens": [TOKEN], "delist_requests_per_hour": 3,
                                       "public_url": "https://bl.example.net", **api}})

    async def main() -> None:
        store = AsyncListingStore(redis.asyncio.Redis.from_url(redis_url))
        app = build_app(cfg, store, modules=api_modules())
        client = test_utils.TestClient(test_utils.TestServer(app))
        await client.start_server()
        try:
            await scenario(client, store, cfg)
        finally:
            await client.close()
            await store.aclose()

    asyncio.run(main())


async def _file(c: test_utils.TestClient, key: str, reason: str = "we fixed it",
                contact: str = "ops@example.org", **kw: Any) -> Any:
    return await c.post(f"/lookup/{key}", data={"reason": reason, "contact": contact},
                        allow_redirects=False, **kw)


def test_lookup_urls_default_to_the_api_page_and_explicit_ones_stay() -> None:
    cfg = config_from_mapping({"api": {"public_url": "https://bl.example.org/"}})
    assert cfg.rbl.lookup_url == "https://bl.example.org/lookup/"
    assert cfg.milter.lookup_url == "https://bl.example.org/lookup/"
    cfg = config_from_mapping({"rbl": {"lookup_url": "https://x.example/why?k="},
                               "milter": {"lookup_url": "https://y.example/"}})
    assert (cfg.rbl.lookup_url, cfg.milter.lookup_url) == ("https://x.example/why?k=",
                                                           "https://y.example/")


def test_txt_link_of_the_real_dns_server_opens_the_page_with_the_form(
        redis_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    """The TXT answer's URL (rbl.lookup_url left empty: api.public_url + /lookup/) is served:
    it names the key, the reason, the dates and offers the removal form."""
    rbl = RblProcess(tmp_path, redis_url, lookup_url='""')
    rbl_dir = tmp_path / "api"
    rbl_dir.mkdir()

    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        now = time.time()
        await store.add("198.51.100.0/24", reason="complaints", now=now, ttl=3600)
        await store.add("spam-shop.example", reason="domain-manual", now=now, ttl=3600)
        rbl.start()
        try:
            [txt] = await asyncio.to_thread(rbl.dig_short, ip_name("198.51.100.7"), "TXT")
            [dtxt] = await asyncio.to_thread(rbl.dig_short, "spam-shop.example.dbl.bl.example.net",
                                             "TXT")
        finally:
            rbl.stop()
        for answer, key in ((txt, "198.51.100.0/24"), (dtxt, "spam-shop.example")):
            url = re.search(r"(https?://\S+?)\"?$", answer)
            assert url, answer
            parts = urlsplit(url.group(1))
            # the server's own default: api.public_url of its config (http://127.0.0.1:8891)
            assert parts.path.startswith("/lookup/"), answer
            r = await c.get(parts.path)
            assert r.status == 200, await r.text()
            page = await r.text()
            assert f"{key} is listed" in page
            assert '<form method="post"' in page and 'name="reason"' in page
            assert "Listed since" in page and "Listed until" in page
        page = await (await c.get("/lookup/198.51.100.7")).text()
        assert "listing of 198.51.100.0/24" in page and "reported as spam" in page

    run_pages(redis_url, rbl_dir, monkeypatch, scenario)


def test_pages_escape_what_they_echo(redis_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        for path in (f"/lookup/{SCRIPT}", f"/lookup/a{SCRIPT}.example",
                     f"/lookup/?key={SCRIPT}"):
            r = await c.get(path)
            page = await r.text()
            assert r.status in (200, 400), page
            assert "<script" not in page.lower(), page
            assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
        page = await (await c.get("/lookup/x%22onmouseover=%22alert(1)")).text()
        assert 'value="x"onmouseover' not in page and "&quot;onmouseover=&quot;" in page
        now = time.time()
        await store.add("evil.example", reason="domain-manual", note=f"note {SCRIPT}", now=now,
                        ttl=3600)
        page = await (await c.get("/lookup/evil.example")).text()
        assert "evil.example is listed" in page and "<script" not in page
        assert "&lt;script&gt;" in page  # the note is shown, escaped
        # a refused form echoes what was typed, escaped
        r = await _file(c, "evil.example", reason=SCRIPT, contact="x" * 300 + SCRIPT)
        page = await r.text()
        assert r.status == 400 and "<script" not in page and "&lt;script&gt;" in page
        # the status page echoes the key only, escaped
        r = await _file(c, "evil.example")
        page = await (await c.get(r.headers["Location"])).text()
        assert "evil.example" in page and "<script" not in page
        assert "ops@example.org" not in page and "we fixed it" not in page

    run_pages(redis_url, tmp_path, monkeypatch, scenario)


def test_request_form_is_rate_limited_per_client_with_the_api_route(
        redis_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        for key in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
            await store.add(key, reason="manual", now=time.time(), ttl=3600)
        r = await c.post("/v1/delist-requests", json={"key": "192.0.2.1", "reason": "x"})
        assert r.status == 202
        for key in ("192.0.2.2", "192.0.2.3"):  # api.delist_requests_per_hour = 3, shared
            assert (await _file(c, key)).status == 303  # with the JSON route
        r = await _file(c, "192.0.2.1")
        assert r.status == 429 and int(r.headers["Retry-After"]) > 0
        assert "Too many requests" in await r.text()
        assert len(await store.delist_requests(now=time.time())) == 3
        # another client (X-Forwarded-For from a trusted proxy) still may
        r = await _file(c, "192.0.2.1", headers={"X-Forwarded-For": "203.0.113.5"})
        assert r.status == 303

    run_pages(redis_url, tmp_path, monkeypatch, scenario, trusted_proxies=["127.0.0.1/32"],
              max_pending_delist_requests_per_key=10)


def test_request_form_says_when_the_keys_requests_are_already_waiting(
        redis_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        await store.add("192.0.2.1", reason="manual", now=time.time(), ttl=3600)
        for i in range(3):
            r = await _file(c, "192.0.2.1", headers={"X-Forwarded-For": f"203.0.113.{i}"})
            assert r.status == 303
        r = await _file(c, "192.0.2.1", headers={"X-Forwarded-For": "203.0.113.9"})
        page = await r.text()
        assert r.status == 429 and "Retry-After" not in r.headers
        assert "Requests to delist 192.0.2.1 are already waiting for an operator" in page
        assert len(await store.delist_requests(now=time.time())) == 3

    run_pages(redis_url, tmp_path, monkeypatch, scenario, trusted_proxies=["127.0.0.1/32"])


def test_status_page_id_is_unguessable_and_shows_the_state(
        redis_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        await store.add("192.0.2.2", reason="manual", now=time.time(), ttl=3600)
        ids = []
        for client in ("198.51.100.1", "198.51.100.2"):  # (one pending request each)
            r = await _file(c, "192.0.2.2", headers={"X-Forwarded-For": client})
            assert r.status == 303
            m = re.fullmatch(r"/lookup/request/([0-9a-f]+)", r.headers["Location"])
            assert m, r.headers["Location"]
            ids.append(m.group(1))
        assert ids[0] != ids[1] and all(len(i) >= 32 for i in ids)  # 128 random bits
        page = await (await c.get(f"/lookup/request/{ids[0]}")).text()
        assert "pending" in page and "192.0.2.2" in page
        wrong = ids[0][:-1] + ("0" if ids[0][-1] != "0" else "1")
        for rid in (wrong, ids[0][:16], "zz" + ids[0][2:], "..%2F..%2Fv1%2Flistings", "0" * 200):
            r = await c.get(f"/lookup/request/{rid}")
            assert r.status == 404, rid
            assert "192.0.2.2" not in await r.text()
        await store.decide_delist_request(ids[1], approve=False, note="internal note",
                                          now=time.time())
        page = await (await c.get(f"/lookup/request/{ids[1]}")).text()
        assert "rejected" in page and "internal note" not in page
        # Vietnamese by Accept-Language
        r = await c.get(f"/lookup/request/{ids[0]}", headers={"Accept-Language": "vi-VN,vi;q=0.9,en;q=0.5"})
        page = await r.text()
        assert '<html lang="vi">' in page and "đang chờ" in page

    run_pages(redis_url, tmp_path, monkeypatch, scenario, trusted_proxies=["127.0.0.1/32"])


def test_pages_in_vietnamese_and_english(redis_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        await store.add("192.0.2.3", reason="complaints", now=time.time(), ttl=3600)
        vi = await (await c.get("/lookup/192.0.2.3", headers={"Accept-Language": "vi"})).text()
        assert "192.0.2.3 đang bị liệt kê" in vi and "báo là thư rác" in vi
        en = await (await c.get("/lookup/192.0.2.3",
                                headers={"Accept-Language": "fr, en;q=0.5, vi;q=0.4"})).text()
        assert "192.0.2.3 is listed" in en
        assert "không bị liệt kê" in await (await c.get("/lookup/clean.example?lang=vi")).text()
        form = await (await c.get("/lookup/")).text()
        assert 'name="key"' in form
        r = await c.get("/lookup/?key=192.0.2.3", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/lookup/192.0.2.3"

    run_pages(redis_url, tmp_path, monkeypatch, scenario)


def test_operator_queue_refuses_no_token_a_wrong_one_and_an_advertisers(
        redis_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        r = await c.post("/v1/advertisers", json={"id": "shop", "name": "Shop",
                                                  "domains": ["shop.test"]}, headers=AUTH)
        assert r.status == 201, await r.text()
        adv_token = (await r.json())["token"]
        await store.add("192.0.2.4", reason="manual", now=time.time(), ttl=3600)
        rid = (await _file(c, "192.0.2.4")).headers["Location"].rsplit("/", 1)[1]
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                        {"Authorization": f"Bearer {adv_token}"},
                        {"Authorization": f"Basic {TOKEN}"}):
            r = await c.get("/v1/delisting-requests", headers=headers)
            assert r.status == 401, headers
            r = await c.post(f"/v1/delisting-requests/{rid}", json={"decision": "approve"},
                             headers=headers)
            assert r.status == 401, headers
        assert (await store.find("192.0.2.4", now=time.time())) is not None

    run_pages(redis_url, tmp_path, monkeypatch, scenario)


def test_request_filed_on_the_page_approved_by_the_operator_delists_and_dns_follows(
        redis_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    rbl = RblProcess(tmp_path, redis_url)
    api_dir = tmp_path / "api"
    api_dir.mkdir()

    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        now = time.time()
        await store.add("203.0.113.0/24", reason="complaints", now=now, ttl=3600)
        await store.add("203.0.113.99", reason="manual", now=now, ttl=3600)
        rbl.start()
        try:
            name = ip_name("203.0.113.7")
            assert (await asyncio.to_thread(rbl.dig_short, name)) == ["127.0.0.2"]
            # filed for the covering network from the page of one address in it
            r = await _file(c, "203.0.113.7")
            assert r.status == 303
            rid = r.headers["Location"].rsplit("/", 1)[1]
            q = await (await c.get("/v1/delisting-requests?status=pending", headers=AUTH)).json()
            [item] = [x for x in q["requests"] if x["id"] == rid]
            assert item["key"] == "203.0.113.0/24" and item["contact"] == "ops@example.org"
            assert item["status_url"] == f"/lookup/request/{rid}"
            r = await c.post(f"/v1/delisting-requests/{rid}", json={"decision": "maybe"},
                             headers=AUTH)
            assert r.status == 400
            r = await c.post(f"/v1/delisting-requests/{rid}",
                             json={"decision": "approve", "note": "fixed"}, headers=AUTH)
            assert r.status == 200, await r.text()
            body = await r.json()
            assert body["delisting"] == "delisted" and body["request"]["status"] == "approved"
            assert await store.find("203.0.113.7", now=time.time()) is None
            deadline = time.monotonic() + 1.0  # the DNS server follows the change stream
            while True:
                ans = await asyncio.to_thread(rbl.query, name)
                if not ans.answer or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            import dns.rcode

            assert ans.rcode() == dns.rcode.NXDOMAIN, ans
            # other listings stay; deciding twice is a conflict
            assert (await asyncio.to_thread(rbl.dig_short, ip_name("203.0.113.99"))) == ["127.0.0.3"]
            r = await c.post(f"/v1/delisting-requests/{rid}", json={"decision": "reject"},
                             headers=AUTH)
            assert r.status == 409
            r = await c.post("/v1/delisting-requests/" + "0" * 32, json={"decision": "reject"},
                             headers=AUTH)
            assert r.status == 404
            page = await (await c.get(f"/lookup/request/{rid}")).text()
            assert "approved" in page
        finally:
            rbl.stop()

    run_pages(redis_url, api_dir, monkeypatch, scenario)


def test_doctor_fails_when_the_lookup_page_does_not_answer(
        redis_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    from spamwarden.doctor import run_checks

    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        up = config_from_mapping({"api": {"public_url": str(c.make_url("/"))}})
        found = await asyncio.to_thread(run_checks, up, ["lookup"])
        assert [f.level for f in found] == ["ok"], found
        down = config_from_mapping({"api": {"public_url": "http://127.0.0.1:9"}})
        (f,) = await asyncio.to_thread(run_checks, down, ["lookup"])
        assert f.level == "fail" and "http://127.0.0.1:9/lookup/" in f.text
        gone = config_from_mapping({"api": {"public_url": str(c.make_url("/nothing"))}})
        (f,) = await asyncio.to_thread(run_checks, gone, ["lookup"])
        assert f.level == "fail" and "HTTP 404" in f.text

    run_pages(redis_url, tmp_path, monkeypatch, scenario)
