"""The operator console (/ui/): sign-in with an operator token only, a HttpOnly SameSite=Strict
session cookie, CSRF on every form that changes something, escaped pages."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp import test_utils

from spamwarden.api.console import session_key
from spamwarden.api.console._base import token_hash
from spamwarden.config import Config
from spamwarden.reputation.history import HistoryRecorder
from spamwarden.reputation.store import AsyncListingStore
from tests.integration.test_history_redis import env, verdict
from tests.integration.test_lookup_pages import SCRIPT, TOKEN, _file, run_pages


async def _login(c: test_utils.TestClient, token: str = TOKEN) -> Any:
    return await c.post("/ui/login", data={"token": token}, allow_redirects=False)


def _csrf(page: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m, page
    return m.group(1)


def test_sign_in_only_with_an_operator_token_and_a_strict_cookie(
        redis_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        for path in ("/ui/", "/ui/history", "/ui/listings", "/ui/requests"):
            r = await c.get(path, allow_redirects=False)
            assert r.status == 303 and r.headers["Location"] == "/ui/login", path
        r = await c.post("/v1/advertisers", json={"id": "shop", "name": "Shop",
                                                  "domains": ["shop.test"]},
                         headers={"Authorization": f"Bearer {TOKEN}"})
        adv_token = (await r.json())["token"]
        for bad in ("", "wrong-token-0123456789", adv_token):
            r = await _login(c, bad)
            assert r.status == 401 and "Set-Cookie" not in r.headers, bad
        r = await _login(c)
        assert r.status == 303 and r.headers["Location"] == "/ui/"
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui/" in cookie
        assert "Secure" in cookie  # api.public_url is https
        sid = re.match(r"sw_ui=([^;]+)", cookie).group(1)  # type: ignore[union-attr]
        raw = redis.Redis.from_url(redis_url)
        assert raw.get(session_key(sid)) is not None and raw.get(f"sw:{{sw}}:ui:session:{sid}") is None
        assert 0 < raw.ttl(session_key(sid)) <= 8 * 3600
        c.session.cookie_jar.clear()  # a Secure cookie is not sent over http: send it by hand
        jar = {"Cookie": f"sw_ui={sid}"}
        page = await (await c.get("/ui/", allow_redirects=False, headers=jar)).text()
        assert "spamwarden console" in page
        assert (await c.get("/ui/", allow_redirects=False,
                            headers={"Cookie": f"sw_ui={sid[:-2]}xx"})).status == 303
        # signing out needs the CSRF token, then ends the session
        r = await c.post("/ui/logout", data={}, allow_redirects=False, headers=jar)
        assert r.status == 403
        r = await c.post("/ui/logout", data={"csrf": _csrf(page)}, allow_redirects=False,
                         headers=jar)
        assert r.status == 303 and raw.get(session_key(sid)) is None
        assert (await c.get("/ui/", allow_redirects=False, headers=jar)).status == 303

    run_pages(redis_url, tmp_path, monkeypatch, scenario)


def test_sign_in_attempts_are_rate_limited(redis_url: str, tmp_path: Path,
                                           monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        statuses = [(await _login(c, "wrong-token-0123456789")).status for _ in range(21)]
        assert statuses[:20] == [401] * 20 and statuses[20] == 429
        assert (await _login(c)).status == 429  # even the right token, from that client

    run_pages(redis_url, tmp_path, monkeypatch, scenario)


def test_the_sign_in_limit_is_the_operators_setting(redis_url: str, tmp_path: Path,
                                                    monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        assert cfg.api.login_attempts_per_hour == 3
        statuses = [(await _login(c, "wrong-token-0123456789")).status for _ in range(4)]
        assert statuses == [401, 401, 401, 429]

    run_pages(redis_url, tmp_path, monkeypatch, scenario, login_attempts_per_hour=3)


def test_requests_are_decided_only_with_the_csrf_token(redis_url: str, tmp_path: Path,
                                                      monkeypatch: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        await store.add("192.0.2.9", reason="manual", now=time.time(), ttl=3600)
        r = await _file(c, "192.0.2.9", reason=SCRIPT)
        rid = r.headers["Location"].rsplit("/", 1)[1]
        assert (await _login(c)).status == 303
        page = await (await c.get("/ui/requests")).text()
        assert "192.0.2.9" in page and "<script" not in page and "&lt;script&gt;" in page
        for data in ({"decision": "approve"}, {"decision": "approve", "csrf": "x" * 43}):
            r = await c.post(f"/ui/requests/{rid}", data=data, allow_redirects=False)
            assert r.status == 403
        assert await store.find("192.0.2.9", now=time.time()) is not None
        r = await c.post(f"/ui/requests/{rid}", data={"decision": "approve",
                                                      "csrf": _csrf(page)},
                         allow_redirects=False)
        assert r.status == 303
        assert await store.find("192.0.2.9", now=time.time()) is None
        assert (await store.get_delist_request(rid)).status == "approved"  # type: ignore[union-attr]

    run_pages(redis_url, tmp_path, monkeypatch, scenario, public_url="http://bl.example.net")


def test_the_console_refuses_to_approve_a_request_of_an_ended_listing(
        redis_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    """Filed during a listing that expired; the key is listed again for a new offence:
    approving the old request in the console says why it cannot, and delists nothing."""
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        now = time.time()
        await store.add("192.0.2.9", reason="manual", now=now - 7200, ttl=3600)
        req = await store.file_delist_request("192.0.2.9", reason="fixed", contact="",
                                              client="c", now=now - 5000)
        await store.delist("192.0.2.9", note="expired", now=now - 3600)
        await store.add("192.0.2.9", reason="complaints", now=now - 60, ttl=86400)
        assert (await _login(c)).status == 303
        page = await (await c.get("/ui/requests")).text()
        r = await c.post(f"/ui/requests/{req.id}", data={"decision": "approve",
                                                         "csrf": _csrf(page)},
                         allow_redirects=False)
        assert r.status == 409
        assert "earlier listing of 192.0.2.9" in await r.text()
        assert await store.find("192.0.2.9", now=time.time()) is not None
        assert (await store.get_delist_request(req.id)).status == "pending"  # type: ignore[union-attr]

    run_pages(redis_url, tmp_path, monkeypatch, scenario, public_url="http://bl.example.net")


def test_a_console_decision_is_logged_with_the_operator(
        redis_url: str, tmp_path: Path, monkeypatch: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    """Every console write is logged; a decision of a delisting request (an approval
    delists) too, as the JSON API logs it, with via=console and which operator token
    signed in (a prefix of its hash, never the token)."""
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        ids = []
        for key in ("192.0.2.9", "192.0.2.10"):
            await store.add(key, reason="manual", now=time.time(), ttl=3600)
            r = await _file(c, key, reason="fixed")
            ids.append(r.headers["Location"].rsplit("/", 1)[1])
        assert (await _login(c)).status == 303
        csrf = _csrf(await (await c.get("/ui/requests")).text())
        with caplog.at_level(logging.INFO, logger="spamwarden.api"):
            for rid, decision in zip(ids, ("approve", "reject"), strict=True):
                r = await c.post(f"/ui/requests/{rid}", allow_redirects=False,
                                 data={"csrf": csrf, "decision": decision, "note": "ok"})
                assert r.status == 303
            # deciding a decided request again changes nothing and logs nothing
            await c.post(f"/ui/requests/{ids[0]}", allow_redirects=False,
                         data={"csrf": csrf, "decision": "reject"})
        logged = [r.fields for r in caplog.records  # type: ignore[attr-defined]
                  if r.getMessage() == "delist_request_decided"]
        operator = token_hash(TOKEN)[:12]
        assert logged == [
            {"id": ids[0], "key": "192.0.2.9", "status": "approved", "delisting": "delisted",
             "via": "console", "operator": operator},
            {"id": ids[1], "key": "192.0.2.10", "status": "rejected", "delisting": None,
             "via": "console", "operator": operator},
        ]

    run_pages(redis_url, tmp_path, monkeypatch, scenario, public_url="http://bl.example.net")


def test_history_search_and_detail_escape_what_mail_carries(
        redis_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    raw = redis.Redis.from_url(redis_url)
    rec = HistoryRecorder(raw, max_entries=1000, ttl=3600)
    rec.record([(verdict("reject", 9.0), env("QSCRIPT", f"x{SCRIPT}@example.net")),
                (verdict(), env("QOTHER"))])

    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, cfg: Config) -> None:
        assert (await _login(c)).status == 303
        page = await (await c.get("/ui/history")).text()
        assert "QSCRIPT" in page and "QOTHER" in page and "<script" not in page
        page = await (await c.get("/ui/history?queue_id=QSCRIPT")).text()
        assert "Message QSCRIPT" in page and "BAYES_50" in page and "<script" not in page
        assert "secret plans" in page and "reject" in page
        page = await (await c.get("/ui/history?action=accept")).text()
        assert "QOTHER" in page and "QSCRIPT" not in page

    run_pages(redis_url, tmp_path, monkeypatch, scenario, public_url="http://bl.example.net")
