"""The console's management pages (/ui/listings, /ui/requests, /ui/unmatched,
/ui/consent) against a real Redis through aiohttp's test server, and the real DNS server
following a console delisting."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import dns.rcode
import pytest
import redis
from aiohttp import test_utils

from spamwarden.config import Config
from spamwarden.consent.registry import ConsentRecord, RedisConsentRegistry
from spamwarden.reputation.complaints import COMPLAINTS_KEY, UNMATCHED_KEY, Complaint, Indicators
from spamwarden.reputation.listings import LISTINGS_KEY
from spamwarden.reputation.store import AsyncListingStore
from tests.integration.test_console import _csrf, _login
from tests.integration.test_lookup_pages import AUTH, SCRIPT, _file, run_pages
from tests.support.net import wait_until
from tests.support.rblserver import RblProcess, ip_name

pytestmark = pytest.mark.integration

HTTP = "http://bl.example.net"  # a Secure cookie is not sent back over the test's http
DAY = 86400.0


async def _signed_in(c: test_utils.TestClient) -> str:
    """Sign in; the CSRF token of the session."""
    assert (await _login(c)).status == 303
    return _csrf(await (await c.get("/ui/listings")).text())


async def _post(c: test_utils.TestClient, path: str, **data: str) -> Any:
    return await c.post(path, data=data, allow_redirects=False)


async def _state(store: AsyncListingStore) -> tuple[dict[bytes, bytes], int]:
    """Everything a listing write changes: the listings hash and the serial."""
    return await store.redis.hgetall(LISTINGS_KEY), await store.serial()


def _rows(page: str) -> list[str]:
    """The listing keys of a listings page's table, in order."""
    return re.findall(r'<tr><td><a href="/lookup/[^"]*">([^<]*)</a>', page)


def test_management_pages_and_forms_need_a_session(redis_url: str, tmp_path: Path,
                                                   monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        await store.add("192.0.2.1", reason="manual", now=time.time(), ttl=3600)
        before = await _state(store)
        for path in ("/ui/listings", "/ui/listings?q=192", "/ui/unmatched", "/ui/consent"):
            r = await c.get(path, allow_redirects=False)
            assert r.status == 303 and r.headers["Location"] == "/ui/login", path
        for path, data in (("/ui/listings", {"key": "192.0.2.2", "reason": "manual"}),
                           ("/ui/listings/delist", {"key": "192.0.2.1", "reason": "x"}),
                           ("/ui/listings/extend", {"key": "192.0.2.1", "ttl": "30d"})):
            r = await _post(c, path, **data)
            assert r.status == 303 and r.headers["Location"] == "/ui/login", path
        assert await _state(store) == before

    run_pages(redis_url, tmp_path, monkeypatch, scenario, public_url=HTTP)


def test_every_form_needs_the_csrf_token(redis_url: str, tmp_path: Path,
                                         monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        await store.add("192.0.2.1", reason="manual", now=time.time(), ttl=3600)
        csrf = await _signed_in(c)
        before = await _state(store)
        forms = (("/ui/listings", {"key": "192.0.2.2", "reason": "manual", "ttl": "1d"}),
                 ("/ui/listings/extend", {"key": "192.0.2.1", "ttl": "30d"}),
                 ("/ui/listings/delist", {"key": "192.0.2.1", "reason": "fixed"}))
        for path, data in forms:
            for forged in ({}, {"csrf": ""}, {"csrf": csrf[:-2] + "xx"}, {"csrf": "x" * 43}):
                r = await _post(c, path, **data, **forged)
                assert r.status == 403, (path, forged)
        assert await _state(store) == before
        # the same forms with the token do change the store
        for path, data in forms:
            r = await _post(c, path, **data, csrf=csrf)
            assert r.status == 303, (path, await r.text())
        assert await _state(store) != before

    run_pages(redis_url, tmp_path, monkeypatch, scenario, public_url=HTTP)


def test_list_extend_delist_change_the_store_as_the_api_does(
        redis_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    """The same three writes, one key through /v1/listings, one through the console:
    the same records (but for the key and times), the same change stream entries."""
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        csrf = await _signed_in(c)
        api_key, ui_key = "2001:db8::/48", "2001:db9::/48"

        def same(a: dict[str, Any], b: dict[str, Any]) -> None:
            assert a["kind"] == b["kind"] == "cidr"
            for f in ("reason", "code", "offences", "note"):
                assert a[f] == b[f], f
            assert (round(a["expires_at"] - a["listed_at"])
                    == round(b["expires_at"] - b["listed_at"]))

        async def record(key: str) -> dict[str, Any]:
            x = await store.get(key)
            assert x is not None, key
            return {**asdict(x), "code": x.code}

        # list: a reason code and a duration
        r = await c.post("/v1/listings", json={"key": "2001:DB8::1/48", "reason": "imported",
                                               "ttl": "7d"}, headers=AUTH)
        assert r.status == 201
        r = await _post(c, "/ui/listings", csrf=csrf, key="2001:DB9::1/48", reason="imported",
                        ttl="7d", note="")
        assert r.status == 303
        assert r.headers["Location"] == "/ui/listings?q=2001%3Adb9%3A%3A%2F48&done=listed"
        a, b = await record(api_key), await record(ui_key)
        same(a, b)
        assert b["reason"] == "imported" and b["expires_at"] - b["listed_at"] == 7 * DAY
        page = await (await c.get(r.headers["Location"])).text()
        assert _rows(page) == [ui_key] and "2001:db9::/48: listed." in page

        # extend: only the end moves
        r = await c.post("/v1/listings", json={"key": api_key, "reason": "imported",
                                               "ttl": "30d"}, headers=AUTH)
        assert r.status == 200 and (await r.json())["op"] == "extended"
        r = await _post(c, "/ui/listings/extend", csrf=csrf, key=ui_key, ttl="30d")
        assert r.status == 303 and r.headers["Location"].endswith("done=extended")
        a2, b2 = await record(api_key), await record(ui_key)
        same(a2, b2)
        assert b2["listed_at"] == b["listed_at"] and b2["reason"] == "imported"
        assert b2["expires_at"] - time.time() > 29 * DAY

        # delist
        r = await c.delete(f"/v1/listings/{api_key}", json={"reason": "fixed"}, headers=AUTH)
        assert r.status == 200
        r = await _post(c, "/ui/listings/delist", csrf=csrf, key=ui_key, reason="fixed")
        assert r.status == 303 and r.headers["Location"].endswith("done=delisted")
        assert await store.get(api_key) is None and await store.get(ui_key) is None
        changes = [(x.op, x.key, x.reason, x.note) for x in await store.changes()]
        api_ops = [(op, reason) for op, key, reason, _ in changes if key == api_key]
        ui_ops = [(op, reason) for op, key, reason, _ in changes if key == ui_key]
        assert ui_ops == [("listed", "imported"), ("extended", "imported"), ("delisted", "imported")]
        assert api_ops[-2:] == ui_ops[-2:]
        assert changes[-1][3] == "console: fixed"  # who delisted it, in the change stream
        # delisting what is not listed says so and changes nothing
        before = await _state(store)
        r = await _post(c, "/ui/listings/delist", csrf=csrf, key=ui_key, reason="again")
        assert r.status == 404 and f"{ui_key} is not listed" in await r.text()
        r = await _post(c, "/ui/listings/extend", csrf=csrf, key=ui_key, ttl="1d")
        assert r.status == 404 and await _state(store) == before

    run_pages(redis_url, tmp_path, monkeypatch, scenario, public_url=HTTP)


def test_bad_input_gives_the_page_again_with_the_error(redis_url: str, tmp_path: Path,
                                                       monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        await store.add("192.0.2.1", reason="manual", now=time.time(), ttl=3600)
        csrf = await _signed_in(c)
        before = await _state(store)
        cases = (
            ("/ui/listings", {"key": "not a key!"}, "is not an IP address, a CIDR block or a "
                                                     "domain name"),
            ("/ui/listings", {"key": "192.0.2.300/33"}, "192.0.2.300/33"),
            ("/ui/listings", {"key": "192.0.2.2", "ttl": "forever"}, "ttl: expected a duration"),
            ("/ui/listings", {"key": "192.0.2.2", "ttl": "0"}, "ttl must be more than 0"),
            ("/ui/listings", {"key": "192.0.2.2", "ttl": "400d"}, "ttl: at most 365 days"),
            ("/ui/listings", {"key": "192.0.2.2", "reason": "bogus"}, "unknown reason"),
            ("/ui/listings/extend", {"key": "192.0.2.1", "ttl": ""}, "a duration is required"),
            ("/ui/listings/extend", {"key": "192.0.2.1", "ttl": "-1d"}, "ttl: expected"),
            ("/ui/listings/delist", {"key": "192.0.2.1", "reason": " "}, "say why"),
            ("/ui/listings/delist", {"key": "", "reason": "x"}, "is not"),
            # too long is refused, never cut down to some other key or note
            ("/ui/listings", {"key": "a" * 300 + ".example"}, "key is longer than 300"),
            ("/ui/listings", {"key": "192.0.2.2", "note": "n" * 2001}, "note is longer than"),
            ("/ui/listings/delist", {"key": "192.0.2.1", "reason": "r" * 2001},
             "reason is longer than"),
        )
        for path, data, message in cases:
            r = await _post(c, path, csrf=csrf, **data)
            page = await r.text()
            assert r.status == 400, (path, data, page)
            assert 'class="err"' in page and message in page.replace("&#x27;", "'"), (data, page)
            assert "<h1>Listings</h1>" in page and 'name="csrf"' in page
        assert await _state(store) == before
        # the refused listing form keeps what was typed
        r = await _post(c, "/ui/listings", csrf=csrf, key="192.0.2.2", ttl="forever",
                        note="keep me")
        page = await r.text()
        assert 'value="keep me"' in page
        assert "ttl: expected" in page.split('<h2 id="add">')[1]  # the error beside the form

    run_pages(redis_url, tmp_path, monkeypatch, scenario, public_url=HTTP)


def test_hostile_text_comes_back_escaped(redis_url: str, tmp_path: Path,
                                         monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        csrf = await _signed_in(c)
        r = await _post(c, "/ui/listings", csrf=csrf, key="evil.example", note=SCRIPT,
                        ttl="1d")
        assert r.status == 303
        x = await store.get("evil.example")
        assert x is not None and x.note == SCRIPT
        page = await (await c.get("/ui/listings?q=evil")).text()
        assert "evil.example" in page and "&lt;script&gt;" in page
        for path, data in (("/ui/listings", {"key": SCRIPT, "note": SCRIPT}),
                           ("/ui/listings", {"key": "a.example", "reason": SCRIPT}),
                           ("/ui/listings", {"key": "a.example", "ttl": SCRIPT}),
                           ("/ui/listings/delist", {"key": SCRIPT, "reason": SCRIPT}),
                           ("/ui/listings/extend", {"key": "evil.example", "ttl": SCRIPT})):
            r = await _post(c, path, csrf=csrf, **data)
            page = await r.text()
            assert r.status == 400 and "<script" not in page and "&lt;script&gt;" in page, data
        # extending keeps the note
        r = await _post(c, "/ui/listings/extend", csrf=csrf, key="evil.example", ttl="2d")
        assert r.status == 303 and (await store.get("evil.example")).note == SCRIPT  # type: ignore[union-attr]
        page = await (await c.get(f"/ui/listings?q={SCRIPT}&kind={SCRIPT}")).text()
        assert "<script" not in page and "&lt;script&gt;" in page

    run_pages(redis_url, tmp_path, monkeypatch, scenario, public_url=HTTP)


def test_search_and_paging_reach_past_the_first_thousand(redis_url: str, tmp_path: Path,
                                                         monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        now = time.time()
        ips = [f"10.{i // 250}.{i % 250}.1" for i in range(1203)]
        await store.add_many(ips, reason="imported", now=now, ttl=3600)
        await store.add_many(["shop.example", "spam.example"], reason="domain-manual", now=now,
                             ttl=3600)
        # run out, though not yet removed: not shown
        await store.add("gone.example", reason="domain-manual", now=now - 7200, ttl=3600)
        await _signed_in(c)
        everything = sorted(ips + ["shop.example", "spam.example"])
        page = await (await c.get("/ui/listings")).text()
        assert _rows(page) == everything[:100] and "of 1205 matching" in page
        assert "page 1 of 13" in page and 'rel="next"' in page and 'rel="prev"' not in page
        page = await (await c.get("/ui/listings?size=500&page=3")).text()
        assert _rows(page) == everything[1000:] and "1001–1205 of 1205" in page
        assert 'href="/ui/listings?size=500&amp;page=2" rel="prev"' in page.replace(
            "page=2&amp;size=500", "size=500&amp;page=2")
        # the page size is bounded; a page past the end shows the last
        page = await (await c.get("/ui/listings?size=100000&page=99")).text()
        assert _rows(page) == everything[1000:]
        page = await (await c.get("/ui/listings?kind=domain")).text()
        assert _rows(page) == ["shop.example", "spam.example"]
        page = await (await c.get("/ui/listings?q=10.4.1&size=500")).text()
        assert _rows(page) == sorted(k for k in ips if "10.4.1" in k)
        page = await (await c.get("/ui/listings?reason=imported&q=SHOP")).text()
        assert _rows(page) == [] and "0–0 of 0 matching" in page
        page = await (await c.get("/ui/listings?reason=domain-manual&q=SHOP")).text()
        assert _rows(page) == ["shop.example"]
        page = await (await c.get("/ui/listings?reason=imported&kind=ip&size=500&page=3")).text()
        assert _rows(page) == sorted(ips)[1000:] and "1001–1203 of 1203" in page
        page = await (await c.get("/ui/listings?q=.example&reason=domain-manual")).text()
        assert _rows(page) == ["shop.example", "spam.example"]

    run_pages(redis_url, tmp_path, monkeypatch, scenario, public_url=HTTP)


def test_a_console_delisting_reaches_the_dns_server(redis_url: str, tmp_path: Path,
                                                    monkeypatch: Any) -> None:
    """The real `spamwarden rbl` follows the change stream: after a console delisting it
    answers NXDOMAIN, like after an API delisting; other listings stay."""
    rbl = RblProcess(tmp_path, redis_url)
    api_dir = tmp_path / "api"
    api_dir.mkdir()

    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        now = time.time()
        for ip in ("203.0.113.7", "203.0.113.8", "203.0.113.99"):
            await store.add(ip, reason="manual", now=now, ttl=3600)
        csrf = await _signed_in(c)
        rbl.start()
        try:
            for ip in ("203.0.113.7", "203.0.113.8"):
                assert await asyncio.to_thread(rbl.dig_short, ip_name(ip)) == ["127.0.0.3"]
            r = await c.delete("/v1/listings/203.0.113.8?reason=fixed", headers=AUTH)
            assert r.status == 200
            r = await _post(c, "/ui/listings/delist", csrf=csrf, key="203.0.113.7",
                            reason="fixed")
            assert r.status == 303
            for ip in ("203.0.113.8", "203.0.113.7"):
                await asyncio.to_thread(
                    wait_until, lambda ip=ip: rbl.query(ip_name(ip)).rcode() == dns.rcode.NXDOMAIN,
                    timeout=15, what=f"NXDOMAIN for {ip}")
            assert await asyncio.to_thread(rbl.dig_short, ip_name("203.0.113.99")) == ["127.0.0.3"]
        finally:
            rbl.stop()

    run_pages(redis_url, api_dir, monkeypatch, scenario, public_url=HTTP)



def test_decided_requests_are_shown_with_their_notes_and_linked_keys(
        redis_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        now = time.time()
        for key in ("192.0.2.9", "bad.example", "2001:db8::/32"):
            await store.add(key, reason="manual", now=now, ttl=3600)
        ids = {}
        for key in ("192.0.2.9", "bad.example", "2001:db8::/32"):
            r = await _file(c, key, reason=f"fixed {key} {SCRIPT}")
            assert r.status == 303, await r.text()
            ids[key] = r.headers["Location"].rsplit("/", 1)[1]
        csrf = await _signed_in(c)
        for key, decision, note in (("192.0.2.9", "approve", f"ok {SCRIPT}"),
                                    ("bad.example", "reject", "still spamming")):
            r = await _post(c, f"/ui/requests/{ids[key]}", csrf=csrf, decision=decision,
                            note=note)
            assert r.status == 303
        page = await (await c.get("/ui/requests")).text()
        pending, decided = page.split("<h2>Recently decided</h2>")
        assert "2001:db8::/32" in pending and "bad.example" not in pending
        assert "1 pending request(s)" in pending
        rows = re.findall(r"<tr><td>[^<]+</td><td>(approved|rejected)</td><td>(.*?)</td>"
                          r"<td>(.*?)</td>", decided)
        assert [(s, n) for s, _, n in rows] == [("rejected", "still spamming"),
                                                ("approved", "ok &lt;script&gt;alert(1)&lt;/script&gt;")]
        assert '<a href="/ui/listings?q=192.0.2.9">192.0.2.9</a>' in rows[1][1]
        assert '<a href="/lookup/192.0.2.9">lookup</a>' in rows[1][1]
        assert '<a href="/ui/listings?q=2001%3Adb8%3A%3A%2F32">' in pending
        assert '<a href="/lookup/2001%3Adb8%3A%3A%2F32">lookup</a>' in pending
        assert "<script" not in page and "The 2 most recent decision(s)" in decided
        # the links lead somewhere: the listing in the console, the lookup page
        assert _rows(await (await c.get("/ui/listings?q=bad.example")).text()) == ["bad.example"]
        assert "192.0.2.9" in await (await c.get("/lookup/192.0.2.9")).text()
        page = await (await c.get("/lookup/2001%3Adb8%3A%3A%2F32")).text()
        assert "2001:db8::/32 is listed" in page

    run_pages(redis_url, tmp_path, monkeypatch, scenario, public_url=HTTP)


def _report(n: int, *, match: str, reporter: str, subject: str, message_id: str,
            sender: str = "promo@shop.example") -> Complaint:
    return Complaint(id=f"{n:032x}", kind="spam", reporter=reporter,
                     received_at=1_800_000_000.0 + n * 60, fingerprint=f"fp{n}",
                     indicators=Indicators(source_ip="198.51.100.7", from_address=sender,
                                           from_domain=sender.rsplit("@", 1)[-1],
                                           subject=subject),
                     source="attached", match=match, message_id=message_id)


def test_unmatched_reports_newest_first_escaped_and_bounded(
        redis_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    raw = redis.Redis.from_url(redis_url)
    reports = [
        _report(1, match="no-delivery", reporter="alice@example.vn", subject="Sale today",
                message_id="<1@shop.example>"),
        _report(2, match="not-a-recipient", reporter=f"bob{SCRIPT}@example.vn",
                subject=f"Hi {SCRIPT}", message_id=f"<{SCRIPT}@shop.example>",
                sender=f"x{SCRIPT}@shop.example"),
        _report(3, match="disagree", reporter="carol@example.vn", subject="Third",
                message_id="<3@shop.example>"),
    ]
    for c in reports:
        raw.xadd(UNMATCHED_KEY, c.to_fields())
    raw.xadd(UNMATCHED_KEY, {"junk": "not a report"})
    raw.xadd(COMPLAINTS_KEY, _report(9, match="matched", reporter="dave@example.vn",
                                     subject="Counted", message_id="<9@x>").to_fields())

    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        await _signed_in(c)
        page = await (await c.get("/ui/unmatched")).text()
        assert "<script" not in page
        whys = re.findall(r"<tr><td>[^<]+</td><td>[^<]*</td><td>([^<]*)</td>", page)
        assert whys == [
            "its Message-ID and its content match different messages delivered here",
            "that message was not delivered here to you",
            "no such message was delivered here recently",
        ]
        assert "&lt;3@shop.example&gt;" in page and "Sale today" in page
        assert f"Hi {SCRIPT}".replace("<", "&lt;").replace(">", "&gt;") in page
        assert "alice@example.vn (unverified)" in page and "198.51.100.7" in page
        assert "Counted" not in page and "1 unreadable entry skipped" in page
        assert "3 report(s), newest first" in page
        # bounded, with a link to the older ones
        page = await (await c.get("/ui/unmatched?limit=2")).text()
        assert page.count("<tr><td>") == 1 and 'rel="next"' in page  # the junk entry is one
        older = re.search(r'href="(/ui/unmatched\?[^"]+)" rel="next"', page)
        assert older
        page = await (await c.get(older.group(1).replace("&amp;", "&"))).text()
        assert "Sale today" in page and "Third" not in page and "Hi " in page
        page = await (await c.get("/ui/unmatched?limit=100000&before=junk")).text()
        assert "3 report(s)" in page

    try:
        run_pages(redis_url, tmp_path, monkeypatch, scenario, public_url=HTTP)
    finally:
        raw.close()


def test_consent_counts_per_advertiser(redis_url: str, tmp_path: Path,
                                       monkeypatch: Any) -> None:
    raw = redis.Redis.from_url(redis_url)
    reg = RedisConsentRegistry(raw, delimiters="+")
    now = time.time()
    reg.register_advertiser("shop", name="Shop", domains=["shop.example"])
    reg.register_advertiser("mall", name="Mall", domains=["mall.example"])
    reg.add_consents([ConsentRecord("shop", f"r{i}@example.vn", "form", now - 10)
                      for i in range(5)])
    reg.refuse("r0@example.vn", adv="shop", channel="reply", now=now)
    reg.refuse("r1@example.vn", adv="mall", channel="reply", now=now)
    reg.refuse("r4@example.vn", channel="mail-link", now=now)
    reg.refuse("r9@example.vn", channel="reply", now=now)
    reg.record_sends("shop", ["r1@example.vn", "r2@example.vn"], now=now - 3 * 86400, ref="a")
    reg.record_sends("shop", ["r3@example.vn"], now=now - 60, ref="b")

    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        await _signed_in(c)
        page = await (await c.get("/ui/consent")).text()
        rows = re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>"
                          r"<td>(\d+)</td></tr>", page)
        assert rows == [("mall", "0", "1", "0", "0"), ("shop", "5", "1", "1", "3")]
        assert "2 advertiser(s)." in page
        assert "2 recipient(s) refuse all advertising" in page

    try:
        run_pages(redis_url, tmp_path, monkeypatch, scenario, public_url=HTTP)
    finally:
        raw.close()
