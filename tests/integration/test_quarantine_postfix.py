"""The quarantine end to end: a real Postfix with `spamwarden milter` whose policy holds
every message (quarantine_threshold below any score), a real Redis and DNS server, and the
console's /ui/quarantine page served in-process over that Postfix's config directory.

A held message is listed with a link to its history entry; release delivers it to the
Maildir; delete removes it; release-and-learn-ham stores it as a not-spam report by the
operator's address and delivers it; a bad queue id is refused before Postfix is asked."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from aiohttp import test_utils

from spamwarden.api.app import build_app
from spamwarden.config import Config, config_from_mapping
from spamwarden.reputation.complaints import COMPLAINTS_KEY
from spamwarden.reputation.history import HistoryFilter, read_history
from spamwarden.reputation.stats import hour_of, stats_key
from spamwarden.reputation.store import AsyncListingStore
from tests.integration.test_milter_postfix import find_delivered, wait_delivered
from tests.support.messages import make_message
from tests.support.net import wait_until
from tests.support.postfix import PostfixInstance
from tests.support.smtpclient import swaks

pytestmark = pytest.mark.integration

RCPT = "user@test.local"
TOKEN = "op-token-quarantine-0123456789"
#: every message scores above these, so the milter holds it (policy.quarantine = "hold")
HOLD_ALL = {"tag_threshold": -1000.0, "quarantine_threshold": -1000.0,
            "reject_threshold": 1000.0}


def _csrf(page: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m, page
    return m.group(1)


def _held(pf: PostfixInstance) -> list[str]:
    return [str(e["queue_id"]) for e in pf.queue() if e.get("queue_name") == "hold"]


def _send_held(pf: PostfixInstance, subject: str) -> tuple[str, str]:
    """Send one message; return its queue id and Message-ID once Postfix holds it."""
    msg, msgid = make_message(from_addr="Alice <alice@good.test>", subject=subject)
    result = swaks(pf.port, mail_from="alice@good.test", rcpt_to=RCPT, data=msg)
    assert result.returncode == 0, result.transcript
    qid = result.queue_id
    assert qid
    wait_until(lambda: qid in _held(pf), timeout=10, what=f"{qid} on hold")
    return qid, msgid


Scenario = Callable[[test_utils.TestClient, PostfixInstance, redis.Redis], Awaitable[None]]


@pytest.fixture
def quarantining(dns_server: Any, auth_zone: Any, redis_url: str, spamwarden_milter: Any,
                 postfix_instance: Any, tmp_path: Path, monkeypatch: Any
                 ) -> Callable[[Scenario], None]:
    milter = spamwarden_milter(nameservers=[dns_server.address], redis_url=redis_url,
                               overrides={"policy": HOLD_ALL})
    pf = postfix_instance(listeners={"smtp": milter.postfix_socket})
    monkeypatch.setenv("SPAMWARDEN_REDIS_URL", redis_url)

    def run(scenario: Scenario, *, learn_user: str = "") -> None:
        from spamwarden.wiring import api_modules

        cfg: Config = config_from_mapping({
            "service": {"state_dir": str(tmp_path)},
            "dns": {"nameservers": [dns_server.address], "timeout": "1s"},
            "api": {"operator_tokens": [TOKEN], "public_url": "http://127.0.0.1"},
            "intake": {"local_domains": ["test.local"]},
            "quarantine": {"postfix_config_dir": str(pf.config_dir), "timeout": "20s",
                           "learn_user": learn_user}})

        async def main() -> None:
            store = AsyncListingStore(redis.asyncio.Redis.from_url(redis_url))
            c = test_utils.TestClient(test_utils.TestServer(
                build_app(cfg, store, modules=api_modules())))
            await c.start_server()
            try:
                r = await c.post("/ui/login", data={"token": TOKEN}, allow_redirects=False)
                assert r.status == 303
                await scenario(c, pf, redis.Redis.from_url(redis_url))
            finally:
                await c.close()
                await store.aclose()

        asyncio.run(main())

    return run


async def _page(c: test_utils.TestClient) -> str:
    r = await c.get("/ui/quarantine")
    text = await r.text()
    assert r.status == 200, text
    return text


def test_held_message_is_listed_and_release_delivers_it(quarantining: Any) -> None:
    async def scenario(c: test_utils.TestClient, pf: PostfixInstance, raw: redis.Redis) -> None:
        qid, msgid = _send_held(pf, "held then released")
        assert find_delivered(pf, msgid) == []
        page = await _page(c)
        row = re.search(rf'<tr data-queue-id="{qid}">.*?</tr>', page)
        assert row, page
        assert f'href="/ui/history?queue_id={qid}"' in row.group(0)
        assert "alice@good.test" in row.group(0) and RCPT in row.group(0)
        # the milter recorded the verdict: the history link finds it, the hour counts it
        wait_until(lambda: read_history(raw, want=HistoryFilter(queue_id=qid)) != [],
                   timeout=10, what="history entry")
        entry = read_history(raw, want=HistoryFilter(queue_id=qid))[0]
        assert entry["action"] == "quarantine"
        assert raw.hget(stats_key("actions", hour_of(entry["time"])), "quarantine") == b"1"
        r = await c.post("/ui/quarantine/release", data={"csrf": _csrf(page), "queue_id": qid},
                         allow_redirects=False)
        assert r.status == 303, await r.text()
        assert r.headers["Location"] == f"/ui/quarantine?done=released&queue_id={qid}"
        delivered = wait_delivered(pf, msgid)
        assert delivered["Subject"] == "held then released"
        assert qid not in _held(pf)
        page = await (await c.get(r.headers["Location"])).text()
        assert f"{qid}: Released" in page and f'data-queue-id="{qid}"' not in page
        # releasing it again: Postfix has nothing on hold by that id
        r = await c.post("/ui/quarantine/release", data={"csrf": _csrf(page), "queue_id": qid},
                         allow_redirects=False)
        assert r.status == 502 and "not in the hold queue" in await r.text()

    quarantining(scenario)


def test_delete_removes_a_held_message_and_bad_ids_never_reach_postfix(
        quarantining: Any) -> None:
    async def scenario(c: test_utils.TestClient, pf: PostfixInstance, raw: redis.Redis) -> None:
        qid, msgid = _send_held(pf, "held then deleted")
        keep, _ = _send_held(pf, "stays held")
        page = await _page(c)
        csrf = _csrf(page)
        for bad in ("ALL", "-d ALL", "../x", f"{qid} ALL", ""):
            for action in ("release", "delete", "release-ham"):
                r = await c.post(f"/ui/quarantine/{action}",
                                 data={"csrf": csrf, "queue_id": bad}, allow_redirects=False)
                assert r.status == 400, (bad, action)
        # without the CSRF token nothing happens
        r = await c.post("/ui/quarantine/delete", data={"queue_id": qid}, allow_redirects=False)
        assert r.status == 403
        assert sorted(_held(pf)) == sorted([qid, keep])
        r = await c.post("/ui/quarantine/delete", data={"csrf": csrf, "queue_id": qid},
                         allow_redirects=False)
        assert r.status == 303 and "done=deleted" in r.headers["Location"]
        assert _held(pf) == [keep]
        assert qid in pf.wait_for_log(f"{qid}: removed")
        time.sleep(0.5)  # a deleted message must not turn up later either
        assert find_delivered(pf, msgid) == []
        page = await _page(c)
        assert f'data-queue-id="{keep}"' in page and f'data-queue-id="{qid}"' not in page

    quarantining(scenario)


def test_release_and_learn_ham_stores_it_and_delivers_it(quarantining: Any) -> None:
    async def scenario(c: test_utils.TestClient, pf: PostfixInstance, raw: redis.Redis) -> None:
        qid, msgid = _send_held(pf, "wrongly held")
        page = await _page(c)
        r = await c.post("/ui/quarantine/release-ham",
                         data={"csrf": _csrf(page), "queue_id": qid}, allow_redirects=False)
        assert r.status == 303, await r.text()
        assert r.headers["Location"] == f"/ui/quarantine?done=learned&queue_id={qid}"
        wait_delivered(pf, msgid)
        entries = raw.xrange(COMPLAINTS_KEY)
        assert len(entries) == 1
        fields = {k.decode(): v.decode() for k, v in entries[0][1].items()}
        assert fields["kind"] == "ham" and fields["reporter"] == "postmaster@test.local"
        assert raw.zcard("sw:{sw}:training:ham") == 1  # kept as a training example
        hour = hour_of(float(fields["received_at"]))
        assert raw.hget(stats_key("complaints", hour), "ham") == b"1"

    quarantining(scenario)


def test_nothing_is_released_when_learning_is_refused(quarantining: Any) -> None:
    async def scenario(c: test_utils.TestClient, pf: PostfixInstance, raw: redis.Redis) -> None:
        qid, msgid = _send_held(pf, "learn refused")
        page = await _page(c)
        r = await c.post("/ui/quarantine/release-ham",
                         data={"csrf": _csrf(page), "queue_id": qid}, allow_redirects=False)
        text = await r.text()
        assert r.status == 422 and "not learned, not released" in text, text
        assert "not an address at test.local" in text
        assert _held(pf) == [qid] and raw.xlen(COMPLAINTS_KEY) == 0
        assert find_delivered(pf, msgid) == []

    # a reporter outside intake.local_domains: learn refuses it, as `spamwarden learn` does
    quarantining(scenario, learn_user="someone@elsewhere.example")


def test_page_says_when_postfix_is_not_configured(
        redis_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    from spamwarden.wiring import api_modules

    monkeypatch.setenv("SPAMWARDEN_REDIS_URL", redis_url)
    cfg = config_from_mapping({
        "service": {"state_dir": str(tmp_path)},
        "api": {"operator_tokens": [TOKEN], "public_url": "http://127.0.0.1"},
        "quarantine": {"postfix_config_dir": str(tmp_path / "no-postfix")}})

    async def main() -> None:
        store = AsyncListingStore(redis.asyncio.Redis.from_url(redis_url))
        c = test_utils.TestClient(test_utils.TestServer(build_app(cfg, store,
                                                                  modules=api_modules())))
        await c.start_server()
        try:
            assert (await c.get("/ui/quarantine", allow_redirects=False)).status == 303
            await c.post("/ui/login", data={"token": TOKEN}, allow_redirects=False)
            page = await _page(c)
            assert 'id="not-configured"' in page and "not configured" in page
            r = await c.post("/ui/quarantine/release",
                             data={"csrf": _csrf(page), "queue_id": "C488A20CDED"},
                             allow_redirects=False)
            assert r.status == 503 and "not configured" in await r.text()
        finally:
            await c.close()
            await store.aclose()

    asyncio.run(main())
