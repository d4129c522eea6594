"""Recipient settings and sender lists in a real Redis: the store and its bounds, the
milter's cache seeing a change, `spamwarden settings|allow|deny` as subprocesses and the
API routes (operator token, clear 400s for bad input)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from aiohttp import test_utils

from spamwarden.api.app import build_app
from spamwarden.api.settings import settings_module
from spamwarden.config import config_from_mapping
from spamwarden.reputation.store import AsyncListingStore
from spamwarden.settings.model import Overrides, SettingsError, Thresholds
from spamwarden.settings.store import (
    ALLOW_KEY,
    POLICIES_KEY,
    VERSION_KEY,
    SettingsCache,
    SettingsStore,
)

pytestmark = pytest.mark.integration

TOKEN = "settings-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = Thresholds(5.0, 10.0, 15.0)


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_store_writes_bounds_and_versions(r: redis.Redis) -> None:
    store = SettingsStore(r, max_targets=2, max_entries=2)
    assert store.version() == 0
    assert store.put_setting("Example.ORG", Overrides(tag_threshold=3.0)) is True
    assert store.put_setting("example.org", Overrides(reject_threshold=9.0)) is False
    assert store.settings() == {"example.org": Overrides(reject_threshold=9.0)}
    store.put_setting("ceo@example.org", Overrides(tag_threshold=1.0))
    with pytest.raises(SettingsError, match="already 2 recipient settings"):
        store.put_setting("third.example", Overrides(tag_threshold=1.0))
    assert store.put_entry("allow", "192.0.2.7/24", note="office", now=1.0) == (
        "cidr:192.0.2.0/24")
    store.put_entry("allow", "dkim:partner.example", now=2.0)
    store.put_entry("allow", "dkim:partner.example", note="again", now=3.0)  # a replace fits
    with pytest.raises(SettingsError, match="already holds 2 entries"):
        store.put_entry("allow", "other.example")
    assert [e.to_json() for e in store.entries("allow")] == [
        {"entry": "cidr:192.0.2.0/24", "kind": "cidr", "value": "192.0.2.0/24",
         "note": "office", "added": 1.0},
        {"entry": "dkim:partner.example", "kind": "dkim", "value": "partner.example",
         "note": "again", "added": 3.0}]
    assert store.remove_entry("allow", "192.0.2.0/24") is True
    assert store.remove_entry("allow", "192.0.2.0/24") is False
    assert store.version() == 7  # every write counted, the refused and idle ones not
    # the keys are the documented ones, and none expires (operator configuration)
    for key in (POLICIES_KEY, ALLOW_KEY, VERSION_KEY):
        assert r.exists(key) and r.ttl(key) == -1
    with pytest.raises(SettingsError, match="allow or deny"):
        store.put_entry("maybe", "x.example")


def test_milter_cache_sees_a_change_after_refresh(r: redis.Redis) -> None:
    now = [0.0]
    store = SettingsStore(r)
    cache = SettingsCache(store, refresh=5.0, clock=lambda: now[0])
    assert cache.current().thresholds("a@example.org", BASE, delimiters="+") == BASE
    store.put_setting("example.org", Overrides(tag_threshold=2.0))
    store.put_entry("deny", "dkim:bulk.example")
    # not yet polled
    assert cache.current().thresholds("a@example.org", BASE, delimiters="+") == BASE
    now[0] = 5.0
    snap = cache.current()
    assert snap.thresholds("a@example.org", BASE, delimiters="+").tag_threshold == 2.0
    assert snap.entries("deny") == ("dkim:bulk.example",)


def test_milter_cache_survives_redis_going_away(redis_server: Any) -> None:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=1, socket_connect_timeout=1)
    now = [0.0]
    store = SettingsStore(client)
    store.put_setting("example.org", Overrides(tag_threshold=2.0))
    cache = SettingsCache(store, refresh=1.0, clock=lambda: now[0])
    assert cache.current().thresholds("a@example.org", BASE, delimiters="+").tag_threshold == 2.0
    redis_server.stop()
    now[0] = 2.0
    assert cache.current().thresholds("a@example.org", BASE, delimiters="+").tag_threshold == 2.0
    client.close()


# -- the commands ------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path, redis_url: str) -> Path:
    p = tmp_path / "spamwarden.toml"
    p.write_text(f"""
[service]
state_dir = "{tmp_path / 'state'}"
log_format = "kv"
[redis]
url = "{redis_url}"
timeout = "5s"
[settings]
max_entries = 3
allow = ["10.1.0.0/16"]
""")
    return p


def sw(config: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("SPAMWARDEN_REDIS_URL", "SPAMWARDEN_CONFIG")}
    res = subprocess.run([sys.executable, "-m", "spamwarden", *args, "--config", str(config)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    return res


def test_cli_sets_shows_and_lists(config: Path, r: redis.Redis) -> None:
    sw(config, "settings", "set", "example.org", "--reject-threshold", "12")
    out = sw(config, "settings", "set", "CEO@example.org", "--tag-threshold", "2").stdout
    assert "added ceo@example.org: tag_threshold = 2" in out
    shown = json.loads(sw(config, "settings", "show", "ceo+x@example.org", "--json").stdout)
    assert (shown["tag_threshold"], shown["quarantine_threshold"],
            shown["reject_threshold"]) == (2.0, 10.0, 12.0)
    assert shown["sources"] == ["example.org", "ceo@example.org"]
    assert json.loads(sw(config, "settings", "list", "--json").stdout) == [
        {"target": "ceo@example.org", "tag_threshold": 2.0},
        {"target": "example.org", "reject_threshold": 12.0}]
    sw(config, "settings", "remove", "ceo@example.org")
    assert "has no settings" in sw(config, "settings", "remove", "ceo@example.org",
                                   code=1).stderr

    assert "allow: added dkim:partner.example" in sw(
        config, "allow", "add", "dkim:Partner.Example", "--note", "invoices").stdout
    sw(config, "deny", "add", "198.51.100.0/24")
    listed = json.loads(sw(config, "allow", "list", "--json").stdout)
    assert [e["entry"] for e in listed["entries"]] == ["dkim:partner.example"]
    assert listed["static"] == ["10.1.0.0/16"]
    sw(config, "deny", "remove", "cidr:198.51.100.0/24")
    assert r.hlen("sw:{sw}:settings:deny") == 0


def test_cli_refuses_bad_input_with_a_clear_error(config: Path, r: redis.Redis) -> None:
    for args, why in [
        (("allow", "add", "cidr:10.0.0.0/33"), "is not an IP address or network"),
        (("deny", "add", "a" * 70 + "@example.org"), "longer than 64"),
        (("allow", "add", "x" * 300 + "@example.org"), "longer than 254"),
        (("allow", "add", "ftp:example.org"), "unknown entry kind 'ftp'"),
        (("settings", "set", "example.org"), "set at least one of"),
        (("settings", "set", "not a domain", "--tag-threshold", "3"), "not a domain"),
        (("settings", "set", "example.org", "--tag-threshold", "1e9"), "from -1000 to 1000"),
        (("settings", "set", "example.org", "--tag-threshold", "12"),
         "tag_threshold <= quarantine_threshold <= reject_threshold"),
    ]:
        res = sw(config, *args, code=2)
        assert why in res.stderr, (args, res.stderr)
    for entry in ("a.example", "b.example", "c.example"):
        sw(config, "deny", "add", entry)
    assert "already holds 3 entries" in sw(config, "deny", "add", "d.example", code=2).stderr
    assert r.hlen("sw:{sw}:settings:deny") == 3
    assert r.hlen("sw:{sw}:settings:policies") == 0


# -- the API -------------------------------------------------------------------------------------


def run_api(redis_url: str, scenario: Any) -> None:
    cfg = config_from_mapping({"api": {"operator_tokens": [TOKEN]},
                               "settings": {"max_entries": 2}})

    async def main() -> None:
        store = AsyncListingStore(redis.asyncio.Redis.from_url(redis_url))
        app = build_app(cfg, store, modules=[settings_module])
        client = test_utils.TestClient(test_utils.TestServer(app))
        await client.start_server()
        try:
            await scenario(client)
        finally:
            await client.close()
            await store.aclose()

    asyncio.run(main())


def test_api_settings_and_lists(redis_url: str) -> None:
    async def scenario(c: test_utils.TestClient) -> None:
        assert (await c.get("/v1/settings")).status == 401
        assert (await c.put("/v1/settings/example.org", json={"tag_threshold": 3})).status == 401
        res = await c.put("/v1/settings/Example.org", json={"tag_threshold": 3}, headers=AUTH)
        assert res.status == 201, await res.text()
        assert await res.json() == {"target": "example.org", "tag_threshold": 3.0}
        res = await c.get("/v1/settings/bob@example.org", headers=AUTH)
        body = await res.json()
        assert body["own"] is None and body["effective"]["tag_threshold"] == 3.0
        assert body["effective"]["sources"] == ["example.org"]
        listed = await (await c.get("/v1/settings", headers=AUTH)).json()
        assert listed["settings"] == [{"target": "example.org", "tag_threshold": 3.0}]
        for body_in, why in (({"tag_threshold": "high"}, "must be a number"),
                             ({"tag_threshold": 11}, "tag_threshold <= quarantine"),
                             ({"tagthreshold": 1}, "unknown setting"), ({}, "at least one")):
            res = await c.put("/v1/settings/example.org", json=body_in, headers=AUTH)
            assert res.status == 400 and why in (await res.json())["error"], body_in
        res = await c.put("/v1/settings/" + "a" * 80 + "@example.org",
                          json={"tag_threshold": 1}, headers=AUTH)
        assert res.status == 400 and "longer than 64" in (await res.json())["error"]
        assert (await c.delete("/v1/settings/example.org", headers=AUTH)).status == 200
        assert (await c.delete("/v1/settings/example.org", headers=AUTH)).status == 404

        res = await c.post("/v1/allow", json={"entry": "dkim:partner.example"}, headers=AUTH)
        assert res.status == 201 and (await res.json())["entry"] == "dkim:partner.example"
        res = await c.post("/v1/deny", json={"entry": "2001:db8::/129"}, headers=AUTH)
        assert res.status == 400
        assert "not an IP address or network" in (await res.json())["error"]
        res = await c.post("/v1/deny", json={"entry": "x" * 301}, headers=AUTH)
        assert res.status == 400 and "longer than 300" in (await res.json())["error"]
        await c.post("/v1/allow", json={"entry": "192.0.2.0/24", "note": "office"},
                     headers=AUTH)
        res = await c.post("/v1/allow", json={"entry": "other.example"}, headers=AUTH)
        assert res.status == 400 and "already holds 2" in (await res.json())["error"]
        got = await (await c.get("/v1/allow", headers=AUTH)).json()
        assert [e["entry"] for e in got["entries"]] == ["cidr:192.0.2.0/24",
                                                        "dkim:partner.example"]
        res = await c.delete("/v1/allow/cidr:192.0.2.0/24", headers=AUTH)
        assert res.status == 200
        assert (await c.delete("/v1/allow/cidr:192.0.2.0/24", headers=AUTH)).status == 404
        assert (await c.delete("/v1/deny/dkim:partner.example")).status == 401

    run_api(redis_url, scenario)
