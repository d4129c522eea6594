"""The operator's commands end to end: real `spamwarden` subprocesses, a generated
configuration and a real Redis. Includes the worker killed with SIGKILL mid-stream."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from spamwarden.reputation.complaints import COMPLAINTS_KEY, Complaint, Indicators
from spamwarden.reputation.engine import GROUP
from spamwarden.reputation.listings import CHANGES_KEY, LISTINGS_KEY
from spamwarden.reputation.store import window_keys
from tests.support.net import wait_until

pytestmark = pytest.mark.integration

TOKEN = "cli-test-token-0123456789"


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
[intake]
local_domains = ["isp.example"]
[reputation]
min_reporters = 3
listing_ttl = "1d"
max_listing_ttl = "8d"
[api]
listen = "127.0.0.1:0"
operator_tokens = ["{TOKEN}"]
""")
    return p


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SPAMWARDEN_REDIS_URL", None)
    env.pop("SPAMWARDEN_CONFIG", None)
    return env


def sw(config: Path, *args: str, ok: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([sys.executable, "-m", "spamwarden", *args, "--config", str(config)],
                         capture_output=True, text=True, timeout=120, env=_env(), input=stdin)
    if ok:
        assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
    return res


def test_add_show_listings_delist(config: Path, r: redis.Redis) -> None:
    assert "listed" in sw(config, "list", "add", "203.0.113.0/24", "--reason", "snowshoe range",
                          "--ttl", "2h").stdout
    sw(config, "list", "add", "Spam-Shop.EXAMPLE", "--reason", "domain-manual")
    out = json.loads(sw(config, "listings", "--json").stdout)
    assert [x["key"] for x in out] == ["203.0.113.0/24", "spam-shop.example"]
    first = out[0]
    assert {"key", "kind", "reason", "listed_at", "expires_at"} <= set(first)
    assert (first["kind"], first["reason"], first["note"]) == ("cidr", "manual", "snowshoe range")
    assert first["expires_at"] - first["listed_at"] == pytest.approx(7200, abs=0.01)
    assert out[1]["kind"] == "domain" and out[1]["reason"] == "domain-manual"

    shown = json.loads(sw(config, "listing", "show", "203.0.113.9", "--json").stdout)
    assert shown["listed"] is True and shown["listing"]["key"] == "203.0.113.0/24"
    text = sw(config, "listing", "show", "203.0.113.9").stdout
    assert "listed (via 203.0.113.0/24)" in text and "snowshoe range" in text
    assert "not listed" in sw(config, "listing", "show", "clean.example").stdout
    via_parent = json.loads(sw(config, "listing", "show", "www.spam-shop.example", "--json").stdout)
    assert via_parent["counted_as"] == "spam-shop.example" and via_parent["offences"] == 1

    assert "delisted" in sw(config, "delist", "203.0.113.0/24", "--reason", "customer fixed").stdout
    res = sw(config, "delist", "203.0.113.0/24", "--reason", "again", ok=False)
    assert res.returncode == 1 and "not listed" in res.stderr
    assert [x["key"] for x in json.loads(sw(config, "listings", "--json").stdout)] == [
        "spam-shop.example"]
    ops = [(f[b"op"], f[b"key"], f[b"note"]) for _, f in r.xrange(CHANGES_KEY)]
    assert ops[-1] == (b"delisted", b"203.0.113.0/24", b"customer fixed")

    bad = sw(config, "list", "add", "not a key!", "--reason", "x", ok=False)
    assert bad.returncode != 0 and "not an IP" in bad.stderr


def test_list_import_100k_lines(config: Path, tmp_path: Path, r: redis.Redis) -> None:
    f = tmp_path / "keys.txt"
    lines = ["# operator list", ""]
    lines += [f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}" for i in range(60_000)]
    lines += [f"host{i}.bad-{i % 997}.example  :127.0.0.2:spam" for i in range(40_000)]
    lines += ["not a key!"]
    f.write_text("\n".join(lines) + "\n")
    res = sw(config, "list", "import", str(f), "--reason", "partner feed", "--ttl", "30d", ok=False)
    assert res.returncode == 1, res.stderr  # one unusable line is reported
    assert "imported 100000 key(s)" in res.stdout and "1 unusable" in res.stdout
    assert "not a key" in res.stderr
    assert r.hlen(LISTINGS_KEY) == 100_000
    assert r.xlen(CHANGES_KEY) == 100_000
    sample = json.loads(r.hget(LISTINGS_KEY, "host5.bad-5.example"))
    assert (sample["kind"], sample["reason"], sample["note"]) == ("domain", "domain-imported",
                                                                  "partner feed")
    assert json.loads(r.hget(LISTINGS_KEY, "10.0.1.4"))["reason"] == "imported"
    m = re.search(r"in ([\d.]+)s", res.stdout)
    assert m is not None
    print(f"list import: 100000 keys in {m.group(1)}s")
    # importing again extends every listing
    again = sw(config, "list", "import", "-", stdin="10.0.1.4\nhost5.bad-5.example\n")
    assert "2 extended" in again.stdout


def _complaint(n: int, reporter: str) -> Complaint:
    return Complaint(id=f"k{n}", kind="spam", reporter=reporter, received_at=time.time(),
                     fingerprint=f"f{n}", source="arf", match="matched",
                     indicators=Indicators(source_ip="198.18.0.9", from_domain="flood.example",
                                           from_address="x@flood.example",
                                           url_domains=("landing.example",), subject=f"s{n}"))


def test_complaints_json_lists_newest_first(config: Path, r: redis.Redis) -> None:
    for i in range(3):
        r.xadd(COMPLAINTS_KEY, _complaint(i, f"u{i}@isp.example").to_fields())
    out = json.loads(sw(config, "complaints", "--json").stdout)
    assert [c["id"] for c in out] == ["k2", "k1", "k0"]
    assert out[0]["indicators"]["source_ip"] == "198.18.0.9"
    assert out[0]["indicators"]["url_domains"] == ["landing.example"]
    assert "u2@isp.example" in sw(config, "complaints").stdout


def _start(config: Path, *args: str) -> subprocess.Popen[str]:
    """A long-running command; its log goes to <config dir>/<command>.log."""
    with open(config.parent / f"{args[0]}.log", "a") as log:
        return subprocess.Popen([sys.executable, "-m", "spamwarden", *args, "--config", str(config)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                text=True, env=_env(), start_new_session=True)


def _wait(pred: Any, what: str, timeout: float = 60.0) -> None:
    wait_until(pred, timeout=timeout, interval=0.01, what=what)


def test_worker_killed_with_sigkill_mid_stream_keeps_counts_exact(config: Path,
                                                                   r: redis.Redis) -> None:
    total, reporters = 2000, 2  # two reporters: nothing gets listed, counts stay observable
    pipe = r.pipeline(transaction=False)
    for i in range(total):
        pipe.xadd(COMPLAINTS_KEY, _complaint(i, f"u{i % reporters}@isp.example").to_fields())
    pipe.execute()
    c_key, r_key = window_keys("flood.example")
    worker = _start(config, "worker", "--consumer", "w1")
    try:
        _wait(lambda: r.zcard(c_key) >= 300, "the worker to start counting")
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    at_kill = r.zcard(c_key)
    assert 300 <= at_kill < total  # killed mid-stream
    worker = _start(config, "worker", "--consumer", "w1")
    try:
        def done() -> bool:
            groups = {g["name"]: g for g in r.xinfo_groups(COMPLAINTS_KEY)}
            g = groups[GROUP.encode()]
            return g["pending"] == 0 and g["last-delivered-id"] == r.xrevrange(
                COMPLAINTS_KEY, count=1)[0][0]
        _wait(done, "the restarted worker to finish the stream")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    for key in ("flood.example", "198.18.0.9", "landing.example"):
        ck, rk = window_keys(key)
        assert (r.zcard(ck), r.zcard(rk)) == (total, reporters), key
    assert r.hlen(LISTINGS_KEY) == 0


def test_worker_lists_after_third_reporter(config: Path, r: redis.Redis) -> None:
    worker = _start(config, "worker", "--consumer", "w1")
    try:
        _wait(lambda: "worker_ready" in (config.parent / "worker.log").read_text(), "the worker")
        worker.send_signal(signal.SIGHUP)  # systemd's ExecReload: keeps working
        _wait(lambda: "reload_ignored" in (config.parent / "worker.log").read_text(), "SIGHUP")
        for i in range(3):
            r.xadd(COMPLAINTS_KEY, _complaint(i, f"u{i}@isp.example").to_fields())
        _wait(lambda: r.hexists(LISTINGS_KEY, "flood.example"), "the listing", timeout=30)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    keys = {x["key"] for x in json.loads(sw(config, "listings", "--json").stdout)}
    assert keys == {"flood.example", "198.18.0.9", "landing.example"}


def test_api_server_on_port_0(config: Path) -> None:
    api = _start(config, "api")
    try:
        log = config.parent / "api.log"
        found: list[int] = []

        def listening() -> bool:
            m = re.search(r"api_listening .*port=(\d+)", log.read_text())
            if m:
                found.append(int(m.group(1)))
            return bool(m) or api.poll() is not None

        _wait(listening, "the API to log its port", timeout=30)
        assert found, log.read_text()
        port = found[0]
        base = f"http://127.0.0.1:{port}"
        body = json.dumps({"key": "192.0.2.99", "reason": "test"}).encode()
        req = urllib.request.Request(f"{base}/v1/listings", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req, timeout=10)
        assert exc.value.code == 401
        req.add_header("Authorization", f"Bearer {TOKEN}")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 201
        with urllib.request.urlopen(f"{base}/v1/listings/192.0.2.99", timeout=10) as resp:
            got = json.load(resp)
        assert got["listed"] is True and got["listing"]["note"] == "test"
        with urllib.request.urlopen(f"{base}/v1/openapi.json", timeout=10) as resp:
            assert "/v1/delist-requests" in json.load(resp)["paths"]
        api.send_signal(signal.SIGHUP)  # systemd's ExecReload: keeps serving
        _wait(lambda: "reload_ignored" in log.read_text(), "SIGHUP")
        with urllib.request.urlopen(f"{base}/v1/health", timeout=10) as resp:
            assert resp.status == 200
        api.send_signal(signal.SIGTERM)
        assert api.wait(30) == 0
    finally:
        if api.poll() is None:
            api.kill()
            api.wait()


def test_idle_worker_with_the_default_redis_timeout_sees_no_outage(
        tmp_path: Path, redis_url: str, r: redis.Redis) -> None:
    """The shipped redis.timeout (0.5 s) is shorter than the worker's blocking read: an
    idle worker must not take its own wait for an unreachable Redis."""
    cfg = tmp_path / "default-timeout.toml"
    cfg.write_text(f'[service]\nstate_dir = "{tmp_path / "state"}"\n[redis]\nurl = "{redis_url}"\n'
                   '[intake]\nlocal_domains = ["isp.example"]\n')
    worker = _start(cfg, "worker", "--consumer", "idle")
    try:
        _wait(lambda: b"worker_ready" in (tmp_path / "worker.log").read_bytes(), "the worker")
        time.sleep(3)  # several blocking reads' worth of idling
        r.xadd(COMPLAINTS_KEY, _complaint(1, "u1@isp.example").to_fields())
        _wait(lambda: r.zcard(window_keys("flood.example")[0]) == 1, "the complaint counted")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    log = (tmp_path / "worker.log").read_text()
    assert "store_error" not in log, log
