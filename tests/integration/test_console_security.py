"""The console's and the public pages' defences, route by route, against a real Redis.

Every route under ``/ui/`` is taken from the application's router, so a page added later is
covered without editing this file:

- without a session, a GET is sent to ``/ui/login`` (303) and a POST too, changing nothing;
- with a valid session, a POST whose CSRF token is missing or forged is refused (403) and
  changes nothing; every form a signed-in page shows carries the token;
- an advertiser's token (consent API) signs into nothing and reaches no operator route;
- a session ends when its operator token is removed from ``api.operator_tokens``;
- the public pages escape the key, the form fields and Accept-Language they echo.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp import test_utils, web

from spamwarden.config import Config
from spamwarden.reputation.store import AsyncListingStore
from tests.integration.test_lookup_pages import AUTH, TOKEN, _file, run_pages

pytestmark = pytest.mark.integration

#: the one route meant to be reached without a session (the sign-in form and its target)
PUBLIC_UI = {"/ui/login"}
LISTED = "192.0.2.9"
#: what a forged POST carries besides the CSRF token: enough for any console form to act
FORM = {"decision": "approve", "action": "delist", "note": "forged", "key": LISTED,
        "ttl": "1d", "reason": "manual", "queue_id": "ABC123", "token": TOKEN}
PAYLOADS = ("<script>alert(1)</script>", '"onmouseover="alert(1)', "'onfocus='alert(1)")


def ui_routes(app: web.Application) -> list[tuple[str, Any]]:
    """(method, resource) of every route under /ui/ (HEAD and OPTIONS left out)."""
    out = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        where = info.get("path") or info.get("formatter") or ""
        if where.startswith("/ui/") and route.method in ("GET", "POST"):
            out.append((route.method, route.resource))
    assert out, "no /ui/ route found in the router"
    return out


def concrete(resource: Any, candidates: list[str]) -> str:
    """A path of ``resource``: each ``{param}`` replaced by the first candidate its pattern
    accepts (a real request id or listed key first, so that an unchecked handler would act)."""
    info = resource.get_info()
    if "path" in info:
        return str(info["path"])
    formatter, pattern = info["formatter"], info["pattern"]
    names = re.findall(r"\{(\w+)\}", formatter)
    for values in _product(candidates, len(names)):
        path = formatter.format(**dict(zip(names, values, strict=True)))
        if pattern.fullmatch(path):
            return str(path)
    pytest.fail(f"no sample value fits {formatter} ({pattern.pattern}); add one to the list")


def _product(candidates: list[str], n: int) -> Iterator[tuple[str, ...]]:
    if n == 0:
        yield ()
        return
    for c in candidates:
        for rest in _product(candidates, n - 1):
            yield (c, *rest)


def snapshot(url: str) -> dict[bytes, bytes | None]:
    """Every key of the Redis and its serialized value: what a request may have changed."""
    r = redis.Redis.from_url(url)
    try:
        return {k: r.dump(k) for k in sorted(r.scan_iter(count=1000))}
    finally:
        r.close()


class Forms(HTMLParser):
    """The POST forms of a page and the names of the fields each one carries."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, list[tuple[str, str]]]] = []
        self._in_post = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._in_post = a.get("method", "get").lower() == "post"
            if self._in_post:
                self.forms.append((a.get("action", ""), []))
        elif tag in ("input", "button", "select", "textarea") and self._in_post:
            self.forms[-1][1].append((a.get("name", ""), a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_post = False


async def seed(c: test_utils.TestClient, store: AsyncListingStore) -> list[str]:
    """A listing and a pending request for it; the sample path values, best first."""
    await store.add(LISTED, reason="manual", now=time.time(), ttl=3600)
    r = await _file(c, LISTED, headers={"X-Forwarded-For": "203.0.113.77"})
    assert r.status == 303, await r.text()
    rid = r.headers["Location"].rsplit("/", 1)[1]
    return [rid, LISTED, "0" * 32, "1", "a", "default"]


async def sign_in(c: test_utils.TestClient, token: str = TOKEN) -> tuple[str, str]:
    """Sign in; the session cookie's value and the page's CSRF token."""
    r = await c.post("/ui/login", data={"token": token}, allow_redirects=False)
    assert r.status == 303, await r.text()
    sid = r.cookies["sw_ui"].value
    c.session.cookie_jar.clear()  # each request names its session itself
    page = await (await c.get("/ui/", headers={"Cookie": f"sw_ui={sid}"})).text()
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m, page
    return sid, m.group(1)


def test_every_ui_route_wants_a_session(redis_url: str, tmp_path: Path,
                                        monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        samples = await seed(c, store)
        routes = [(m, res) for m, res in ui_routes(c.server.app)
                  if concrete(res, samples) not in PUBLIC_UI]
        assert {m for m, _ in routes} == {"GET", "POST"}, routes
        before = snapshot(redis_url)
        for method, res in routes:
            path = concrete(res, samples)
            for cookie in ({}, {"Cookie": "sw_ui=" + "A" * 43}):
                r = await c.request(method, path, data=FORM if method == "POST" else None,
                                    headers=cookie, allow_redirects=False)
                assert r.status == 303, (method, path, r.status, await r.text())
                assert r.headers["Location"] == "/ui/login", (method, path)
        assert snapshot(redis_url) == before  # nothing listed, delisted, decided or released
        assert await store.find(LISTED, now=time.time()) is not None

    run_pages(redis_url, tmp_path, monkeypatch, scenario, public_url="http://bl.example.net",
              trusted_proxies=["127.0.0.1/32"])


def test_every_ui_post_wants_the_sessions_csrf_token(redis_url: str, tmp_path: Path,
                                                     monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        samples = await seed(c, store)
        sid, csrf = await sign_in(c)
        _, other_csrf = await sign_in(c)  # a real token, of another session
        jar = {"Cookie": f"sw_ui={sid}"}
        posts = [concrete(res, samples) for m, res in ui_routes(c.server.app) if m == "POST"]
        posts = [p for p in posts if p not in PUBLIC_UI]
        assert "/ui/logout" in posts and len(posts) >= 2, posts
        before = snapshot(redis_url)
        for path in posts:
            for forged in ({}, {"csrf": ""}, {"csrf": "x" * len(csrf)}, {"csrf": other_csrf},
                           {"csrf": csrf[:-1]}, {"csrf": csrf + "x"}):
                r = await c.post(path, data={**FORM, **forged}, headers=jar,
                                 allow_redirects=False)
                assert r.status == 403, (path, forged, r.status, await r.text())
            # the token in the query string instead of the body is not taken either
            r = await c.post(f"{path}?csrf={csrf}", data=FORM, headers=jar,
                             allow_redirects=False)
            assert r.status == 403, (path, "query", r.status)
        assert snapshot(redis_url) == before
        # the session still works: the refusals above were the CSRF check, not a lost cookie
        assert (await c.get("/ui/", headers=jar, allow_redirects=False)).status == 200

    run_pages(redis_url, tmp_path, monkeypatch, scenario, public_url="http://bl.example.net",
              trusted_proxies=["127.0.0.1/32"])


def test_every_form_on_a_signed_in_page_carries_the_csrf_token(
        redis_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        samples = await seed(c, store)
        sid, csrf = await sign_in(c)
        jar = {"Cookie": f"sw_ui={sid}"}
        pages = [concrete(res, samples) for m, res in ui_routes(c.server.app) if m == "GET"]
        seen = 0
        for path in pages:
            r = await c.get(path, headers=jar, allow_redirects=False)
            if r.status != 200:
                # 502/503: a page over a service this test does not run (Postfix's queue)
                assert r.status in (303, 400, 404, 502, 503), (path, r.status)
                continue
            parser = Forms()
            parser.feed(await r.text())
            for action, fields in parser.forms:
                seen += 1
                if action == "/ui/login":
                    continue
                assert ("csrf", csrf) in fields, (path, action, fields)
        assert seen >= 2, "no POST form found on any signed-in page"

    run_pages(redis_url, tmp_path, monkeypatch, scenario, public_url="http://bl.example.net",
              trusted_proxies=["127.0.0.1/32"])


def test_an_advertisers_token_reaches_no_operator_route(redis_url: str, tmp_path: Path,
                                                        monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        samples = await seed(c, store)
        r = await c.post("/v1/advertisers", json={"id": "shop", "name": "Shop",
                                                  "domains": ["shop.test"]}, headers=AUTH)
        assert r.status == 201, await r.text()
        adv = (await r.json())["token"]
        bearer = {"Authorization": f"Bearer {adv}"}
        # it is a working token where it belongs ...
        r = await c.get("/v1/advertisers/shop/counts", headers=bearer)
        r_ok = r.status
        # ... but it signs into nothing
        r = await c.post("/ui/login", data={"token": adv}, allow_redirects=False)
        assert r.status == 401 and "Set-Cookie" not in r.headers
        for path in ("/v1/listings", "/v1/history", "/metrics", "/v1/delisting-requests",
                     "/v1/advertisers"):
            r = await c.get(path, headers=bearer)
            assert r.status == 401, (path, r.status)
        r = await c.post(f"/v1/delisting-requests/{samples[0]}", json={"decision": "approve"},
                         headers=bearer)
        assert r.status == 401
        for method, res in ui_routes(c.server.app):
            path = concrete(res, samples)
            if path in PUBLIC_UI:
                continue
            r = await c.request(method, path, headers=bearer, allow_redirects=False,
                                data=FORM if method == "POST" else None)
            assert r.status == 303 and r.headers["Location"] == "/ui/login", (method, path)
        assert await store.find(LISTED, now=time.time()) is not None
        assert r_ok == 200, r_ok  # the consent API takes the token for its own advertiser

    run_pages(redis_url, tmp_path, monkeypatch, scenario, public_url="http://bl.example.net",
              trusted_proxies=["127.0.0.1/32"])


def test_a_session_ends_when_its_operator_token_is_removed(redis_url: str, tmp_path: Path,
                                                          monkeypatch: Any) -> None:
    other = "op-token-2-0123456789"
    sessions: dict[str, str] = {}

    async def both(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        sessions["first"], _ = await sign_in(c, TOKEN)
        sessions["second"], _ = await sign_in(c, other)
        for sid in sessions.values():
            r = await c.get("/ui/listings", headers={"Cookie": f"sw_ui={sid}"},
                            allow_redirects=False)
            assert r.status == 200

    run_pages(redis_url, tmp_path, monkeypatch, both, public_url="http://bl.example.net",
              operator_tokens=[TOKEN, other])

    async def rotated(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        assert cfg.api.operator_tokens == (other,)
        for path in ("/ui/", "/ui/listings", "/ui/history"):
            r = await c.get(path, headers={"Cookie": f"sw_ui={sessions['first']}"},
                            allow_redirects=False)
            assert r.status == 303 and r.headers["Location"] == "/ui/login", path
            r = await c.get(path, headers={"Cookie": f"sw_ui={sessions['second']}"},
                            allow_redirects=False)
            assert r.status == 200, path
        r = await c.post("/ui/login", data={"token": TOKEN}, allow_redirects=False)
        assert r.status == 401

    run_pages(redis_url, tmp_path, monkeypatch, rotated, public_url="http://bl.example.net",
              operator_tokens=[other])


def _no_raw_payload(page: str, payload: str, where: str) -> None:
    assert payload not in page, (where, payload)
    assert "<script" not in page.lower(), where
    # an attribute broken out of would read: value="x" onmouseover=... or value='x' onfocus=
    assert not re.search(r"""["']\s*on(mouseover|focus)=""", page), where


@pytest.mark.parametrize("payload", PAYLOADS)
def test_public_pages_escape_key_form_fields_and_accept_language(
        redis_url: str, tmp_path: Path, monkeypatch: Any, payload: str) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        now = time.time()
        await store.add("evil.example", reason="domain-manual", note=f"n {payload}", now=now,
                        ttl=3600)
        from urllib.parse import quote

        q = quote(payload, safe="")
        for path in (f"/lookup/{q}", f"/lookup/a{q}.example", f"/lookup/?key={q}",
                     f"/lookup/evil.example?lang={q}", f"/lookup/request/{q}",
                     "/lookup/evil.example"):
            for lang in (payload, f"vi;q=0.9, {payload}", "en"):
                r = await c.get(path, headers={"Accept-Language": lang},
                                allow_redirects=False)
                page = await r.text()
                assert r.status in (200, 303, 400, 404), (path, r.status)
                _no_raw_payload(page, payload, f"GET {path} lang={lang!r}")
                assert re.search(r'<html lang="(en|vi)">', page) or r.status == 303, path
                if r.status == 303:  # to the key's own page on this site, not elsewhere
                    loc = r.headers["Location"]
                    assert loc.startswith("/lookup/") and not loc.startswith("//"), loc
        # the form echoes what was typed when it refuses it
        r = await _file(c, "evil.example", reason=payload, contact="x" * 300 + payload,
                        headers={"Accept-Language": payload})
        assert r.status == 400
        _no_raw_payload(await r.text(), payload, "refused form")
        r = await _file(c, "evil.example", reason="", contact=payload)
        _no_raw_payload(await r.text(), payload, "refused form, bad contact")
        r = await c.post(f"/lookup/{q}", data={"reason": payload, "contact": payload},
                         allow_redirects=False)
        _no_raw_payload(await r.text(), payload, "form for a bad key")
        # an accepted request: its status page shows the key, escaped, and not the fields
        r = await _file(c, "evil.example", reason=payload)
        assert r.status == 303
        page = await (await c.get(r.headers["Location"],
                                  headers={"Accept-Language": payload})).text()
        _no_raw_payload(page, payload, "status page")
        assert "evil.example" in page

    run_pages(redis_url, tmp_path, monkeypatch, scenario, delist_requests_per_hour=100)
