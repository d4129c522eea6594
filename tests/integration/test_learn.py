"""Mailbox moves teach the filter: ``spamwarden learn`` and ``POST /v1/learn`` on a real
Redis store what intake stores for a report@ / ham@ report by the user, under the same
rules (local user, delivery match for spam, training examples capped per reporter)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from aiohttp import test_utils

from spamwarden.api.app import build_app
from spamwarden.api.learn import learn_module
from spamwarden.config import config_from_mapping
from spamwarden.mail import parse_message
from spamwarden.reputation.complaints import COMPLAINTS_KEY, UNMATCHED_KEY
from spamwarden.reputation.deliveries import RedisDeliveryLedger, delivery_of
from spamwarden.reputation.intake import example_index_key, example_key
from spamwarden.reputation.reports import delivered_fingerprint
from spamwarden.reputation.store import AsyncListingStore
from tests.conftest import DATA

pytestmark = pytest.mark.integration

TOKEN = "learn-test-token-0123456789"
ORIGINAL = DATA / "reports" / "original-signed.eml"
RAW = ORIGINAL.read_bytes()
FP = delivered_fingerprint(parse_message(RAW))


def _other(n: int) -> bytes:
    """A different message (another fingerprint) of the same shape."""
    return (b"From: Shop Deals <deals@promo-shop.example>\r\nTo: alice@example.vn\r\n"
            b"Subject: offer %d\r\nMessage-ID: <offer-%d@promo-shop.example>\r\n"
            b"Date: Sun, 03 Nov 2024 21:01:07 +0700\r\n\r\n"
            b"Number %d: buy now at https://promo-shop.example/deal/%d\r\n" % (n, n, n, n))


def _settings(redis_url: str, tmp_path: Path) -> dict[str, Any]:
    return {
        "service": {"state_dir": str(tmp_path / "state"), "log_format": "kv"},
        "redis": {"url": redis_url, "timeout": "5s"},
        "intake": {"local_domains": ["example.vn"], "max_message_bytes": 200_000},
        "training": {"max_examples_per_reporter": 2},
        "api": {"operator_tokens": [TOKEN]},
    }


def _toml(settings: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, str):
            return f'"{v}"'
        return str(v)

    return "".join(f"[{section}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in opts.items())
                   for section, opts in settings.items())


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    ledger = RedisDeliveryLedger(client, ttl=600)
    d = delivery_of(parse_message(RAW), fingerprint=FP, client_ip="192.0.2.77",
                    mail_from="bounce-8812@mailer.promo-shop.example",
                    rcpts=["alice@example.vn"], auth=None, at=time.time(), queue_id="4XmQ",
                    delimiters="+")
    assert d is not None
    ledger.record_many([d])  # the milter delivered RAW to alice (not to bob)
    assert ledger.failed == 0
    yield client
    client.close()


@pytest.fixture
def config(redis_url: str, tmp_path: Path) -> Path:
    p = tmp_path / "spamwarden.toml"
    p.write_text(_toml(_settings(redis_url, tmp_path)))
    return p


def learn(config: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("SPAMWARDEN_REDIS_URL", "SPAMWARDEN_CONFIG")}
    res = subprocess.run([sys.executable, "-m", "spamwarden", "learn", *args, "--config",
                          str(config)], input=stdin, capture_output=True, timeout=120, env=env)
    return subprocess.CompletedProcess(res.args, res.returncode, res.stdout.decode(),
                                       res.stderr.decode())


def entries(r: redis.Redis, key: str) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in fields.items()}
            for _, fields in r.xrange(key)]


def test_spam_learn_of_a_delivered_message_matches_and_trains(config: Path,
                                                             r: redis.Redis) -> None:
    res = learn(config, "--spam", "--user", "Alice+junk@Example.VN", str(ORIGINAL))
    assert res.returncode == 0, res.stderr
    assert "matched=yes" in res.stdout and "spam added id=" in res.stdout
    [c] = entries(r, COMPLAINTS_KEY)
    assert c["kind"] == "spam" and c["reporter"] == "alice@example.vn"
    assert c["match"] == "matched" and c["source"] == "bare"
    # what the delivery proved, not what the copy's Received fields say (198.51.100.23)
    assert json.loads(c["indicators"])["source_ip"] == "192.0.2.77"
    assert c["reporter_verified"] == "True"
    assert r.get(example_key("spam", c["fingerprint"])) == RAW
    assert r.zcard(example_index_key("spam")) == 1
    assert entries(r, UNMATCHED_KEY) == []
    again = learn(config, "--spam", "--user", "alice@example.vn", "-", stdin=RAW)
    assert again.returncode == 0 and "spam duplicate" in again.stdout
    assert len(entries(r, COMPLAINTS_KEY)) == 1


def test_spam_learn_of_a_message_not_delivered_to_the_user_is_kept_unmatched(
        config: Path, r: redis.Redis) -> None:
    res = learn(config, "--spam", "--user", "bob@example.vn", stdin=RAW)
    assert res.returncode == 0, res.stderr
    assert "matched=no (not-a-recipient)" in res.stdout
    assert entries(r, COMPLAINTS_KEY) == []
    [c] = entries(r, UNMATCHED_KEY)
    assert c["reporter"] == "bob@example.vn" and c["match"] == "not-a-recipient"
    assert r.zcard(example_index_key("spam")) == 0  # never delivered here: teaches nothing


@pytest.mark.parametrize("user", ["", "   ", "mallory@elsewhere.example", "alice"])
def test_learn_for_an_unknown_user_is_refused(config: Path, r: redis.Redis, user: str) -> None:
    res = learn(config, "--ham", "--user", user, stdin=RAW)
    assert res.returncode == 65, (res.stdout, res.stderr)
    assert "intake.local_domains" in res.stderr
    assert entries(r, COMPLAINTS_KEY) == [] and r.zcard(example_index_key("ham")) == 0


@pytest.mark.parametrize("stdin", [b"", b"\r\n\r\n", b"just some words, no header\n",
                                   b"X" * 200_001])
def test_unusable_input_is_refused(config: Path, r: redis.Redis, stdin: bytes) -> None:
    res = learn(config, "--ham", "--user", "alice@example.vn", stdin=stdin)
    assert res.returncode == 65, (res.stdout, res.stderr)
    assert "not stored" in res.stderr or "no message" in res.stderr
    assert entries(r, COMPLAINTS_KEY) == []


def test_missing_file_is_refused(config: Path, tmp_path: Path) -> None:
    res = learn(config, "--ham", "--user", "alice@example.vn", str(tmp_path / "nope.eml"))
    assert res.returncode == 65 and "cannot read" in res.stderr


def test_redis_trouble_is_a_temporary_failure(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = tmp_path / "down.toml"
    settings = _settings(f"redis://127.0.0.1:{port}/0", tmp_path)
    settings["redis"]["timeout"] = "1s"
    p.write_text(_toml(settings))
    res = learn(p, "--ham", "--user", "alice@example.vn", stdin=RAW)
    assert res.returncode == 75, (res.stdout, res.stderr)
    assert "try again later" in res.stderr


def _deliver(r: redis.Redis, raw: bytes, rcpt: str = "alice@example.vn") -> None:
    view = parse_message(raw)
    d = delivery_of(view, fingerprint=delivered_fingerprint(view), client_ip="192.0.2.77",
                    mail_from="bounce@mailer.promo-shop.example", rcpts=[rcpt], auth=None,
                    at=time.time(), queue_id="4XmR", delimiters="+")
    assert d is not None
    RedisDeliveryLedger(r, ttl=600).record_many([d])


def test_ham_learns_are_capped_per_reporter(config: Path, r: redis.Redis) -> None:
    for n in range(3):
        _deliver(r, _other(n))
        res = learn(config, "--ham", "--user", "alice@example.vn", stdin=_other(n))
        assert res.returncode == 0, res.stderr
        assert "ham added" in res.stdout and "matched=yes" in res.stdout
    assert [c["kind"] for c in entries(r, COMPLAINTS_KEY)] == ["ham"] * 3
    assert r.zcard(example_index_key("ham")) == 2  # training.max_examples_per_reporter


def test_ham_learn_of_a_message_not_delivered_to_the_user_teaches_nothing(
        config: Path, r: redis.Redis) -> None:
    _deliver(r, _other(1), rcpt="bob@example.vn")
    for n in (0, 1):  # never delivered here; delivered to someone else
        res = learn(config, "--ham", "--user", "alice@example.vn", stdin=_other(n))
        assert res.returncode == 0, res.stderr
        assert "ham unmatched" in res.stdout and "nothing is learned" in res.stdout
    assert entries(r, COMPLAINTS_KEY) == []
    assert [c["kind"] for c in entries(r, UNMATCHED_KEY)] == ["ham"] * 2
    assert r.zcard(example_index_key("ham")) == 0


def test_api_learn(redis_url: str, tmp_path: Path, r: redis.Redis) -> None:
    cfg = config_from_mapping(_settings(redis_url, tmp_path))
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def main() -> None:
        store = AsyncListingStore(redis.asyncio.Redis.from_url(redis_url))
        app = build_app(cfg, store, modules=[learn_module])
        client = test_utils.TestClient(test_utils.TestServer(app))
        await client.start_server()
        try:
            resp = await client.post("/v1/learn?kind=spam&user=alice@example.vn", data=RAW)
            assert resp.status == 401  # no token: nobody files mail for alice
            resp = await client.post("/v1/learn?kind=spam&user=alice@example.vn", data=RAW,
                                     headers={"Authorization": "Bearer alice-guess"})
            assert resp.status == 401
            resp = await client.post("/v1/learn", data=RAW, headers={
                **auth, "X-Learn-Kind": "spam", "X-Learn-User": "alice@example.vn"})
            assert resp.status == 201, await resp.text()
            body = await resp.json()
            assert body["matched"] is True and body["status"] == "added"
            assert body["reporter"] == "alice@example.vn"
            resp = await client.post("/v1/learn?kind=spam&user=bob@example.vn", data=RAW,
                                     headers=auth)
            body = await resp.json()
            assert resp.status == 201 and body["status"] == "unmatched"
            assert body["matched"] is False
            resp = await client.post("/v1/learn?kind=ham&user=eve@elsewhere.example",
                                     data=RAW, headers=auth)
            assert resp.status == 403
            resp = await client.post("/v1/learn?kind=junk&user=alice@example.vn", data=RAW,
                                     headers=auth)
            assert resp.status == 400
            resp = await client.post("/v1/learn?kind=ham&user=alice@example.vn",
                                     data=b"Y" * 200_001, headers=auth)
            assert resp.status == 413
            doc = await (await client.get("/v1/openapi.json")).json()
            assert "post" in doc["paths"]["/v1/learn"]
        finally:
            await client.close()
            await store.aclose()

    asyncio.run(main())
    assert len(entries(r, COMPLAINTS_KEY)) == 1 and len(entries(r, UNMATCHED_KEY)) == 1


def test_api_learn_with_a_users_own_token(config: Path, redis_url: str, tmp_path: Path,
                                          r: redis.Redis) -> None:
    """`spamwarden learn-token ADDR` prints the token with which that user's own client may
    call POST /v1/learn for them, and for nobody else."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SPAMWARDEN_REDIS_URL", "SPAMWARDEN_CONFIG")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "spamwarden", "learn-token", *args,
                               "--config", str(config)], capture_output=True, text=True,
                              timeout=60, env=env)

    made = cli("Alice+imap@Example.VN")
    assert made.returncode == 0, made.stderr
    alice = made.stdout.strip()
    assert alice.startswith("lt1.") and alice == cli("alice@example.vn").stdout.strip()
    bob = cli("bob@example.vn").stdout.strip()
    assert bob.startswith("lt1.") and bob != alice
    bad = cli("not-an-address")
    assert bad.returncode == 2 and "not an address" in bad.stderr
    cfg = config_from_mapping(_settings(redis_url, tmp_path))

    async def main() -> None:
        store = AsyncListingStore(redis.asyncio.Redis.from_url(redis_url))
        app = build_app(cfg, store, modules=[learn_module])
        client = test_utils.TestClient(test_utils.TestServer(app))
        await client.start_server()
        try:
            def auth(token: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {token}"}

            # alice's token files for bob: refused, nothing stored
            resp = await client.post("/v1/learn?kind=spam&user=bob@example.vn", data=RAW,
                                     headers=auth(alice))
            assert resp.status == 401 and "WWW-Authenticate" in resp.headers
            # a made-up token of the right shape, and bob's own token for alice
            for token in ("lt1." + "A" * 43, alice[:-1] + ("B" if alice[-1] != "B" else "C"),
                          bob):
                resp = await client.post("/v1/learn?kind=spam&user=alice@example.vn",
                                         data=RAW, headers=auth(token))
                assert resp.status == 401, token
            # alice's token, for alice however her address is written
            resp = await client.post("/v1/learn?kind=spam&user=ALICE%2Bjunk@example.vn",
                                     data=RAW, headers=auth(alice))
            assert resp.status == 201, await resp.text()
            body = await resp.json()
            assert body["reporter"] == "alice@example.vn" and body["matched"] is True
        finally:
            await client.close()
            await store.aclose()

    asyncio.run(main())
    assert len(entries(r, COMPLAINTS_KEY)) == 1
