"""`spamwarden serve`: embedded Redis, supervised children, clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests.conftest import need_binary

pytestmark = pytest.mark.integration


def _config(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "sw.toml"
    cfg.write_text(f'[service]\nstate_dir = "{tmp_path / "state"}"\n{extra}')
    return cfg


def _wait(pred, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def _ping(sock: Path) -> bool:
    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=0.5).ping())
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
        return False


def test_serve_starts_embedded_redis_with_aof_and_stops_cleanly(tmp_path: Path) -> None:
    need_binary("redis-server")
    cfg = _config(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "spamwarden", "serve", "--config", str(cfg)],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "SPAMWARDEN_REDIS_URL": ""},
    )
    sock = tmp_path / "state" / "redis" / "redis.sock"
    try:
        assert _wait(lambda: _ping(sock)), "embedded redis did not come up"
        r = redis.Redis(unix_socket_path=str(sock))
        assert r.config_get("appendonly")["appendonly"] == "yes"
        r.set("probe", "1")
        assert (tmp_path / "state" / "serve.pid").read_text().strip() == str(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode(errors="replace")
    assert b"spamwarden is starting" in err
    assert not _ping(sock)
    assert not (tmp_path / "state" / "serve.pid").exists()
    # The AOF survived the stop: a new server on the same directory has the key.
    from spamwarden.redisconn import EmbeddedRedis

    again = EmbeddedRedis(tmp_path / "state" / "redis")
    again.start()
    try:
        assert redis.Redis(unix_socket_path=str(again.socket)).get("probe") == b"1"
    finally:
        again.stop()


def test_serve_without_redis_server_says_how_to_fix(tmp_path: Path) -> None:
    cfg = _config(tmp_path, '[redis]\nserver_binary = "/nonexistent/redis-server"\n')
    res = subprocess.run(
        [sys.executable, "-m", "spamwarden", "serve", "--config", str(cfg)],
        capture_output=True, timeout=60, env={**os.environ, "SPAMWARDEN_REDIS_URL": ""},
    )
    assert res.returncode == 1
    assert b"apt-get install redis-server" in res.stderr
    assert b"redis.url" in res.stderr


def test_bad_config_exits_2_with_the_key(tmp_path: Path) -> None:
    cfg = _config(tmp_path, '[milter]\nlisten = "nowhere"\n')
    res = subprocess.run(
        [sys.executable, "-m", "spamwarden", "serve", "--config", str(cfg)],
        capture_output=True, timeout=60,
    )
    assert res.returncode == 2
    assert b"milter.listen" in res.stderr
