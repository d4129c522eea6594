"""`spamwarden serve`: embedded Redis, supervised children, clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.conftest import need_binary
from tests.support.net import free_port, tcp_accepts, wait_until

pytestmark = pytest.mark.integration

METRICS_TOKEN = "metrics-scrape-token-0123456789"


def _config(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "sw.toml"
    cfg.write_text(f'[service]\nstate_dir = "{tmp_path / "state"}"\n{extra}')
    return cfg


def _ping(sock: Path) -> bool:
    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=0.5).ping())
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
        return False


def test_serve_starts_embedded_redis_with_aof_and_stops_cleanly(tmp_path: Path) -> None:
    need_binary("redis-server")
    cfg = _config(tmp_path)
    # Only the worker: it needs nothing but Redis, and binds no port that could clash.
    proc = subprocess.Popen(
        [sys.executable, "-m", "spamwarden", "serve", "--config", str(cfg), "--only", "worker"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "SPAMWARDEN_REDIS_URL": ""},
    )
    sock = tmp_path / "state" / "redis" / "redis.sock"
    try:
        wait_until(lambda: _ping(sock), timeout=15, what="the embedded redis")
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


def _children(pid: int) -> dict[str, int]:
    """Service name -> pid of serve's children, read from /proc."""
    found: dict[str, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != pid:
                continue
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if len(argv) > 3 and argv[1:3] == [b"-m", b"spamwarden"]:
            found[argv[3].decode()] = int(stat.parent.name)
    return found


def test_serve_runs_every_service_restarts_a_killed_one_and_stops_all(tmp_path: Path) -> None:
    import smtplib
    import urllib.request

    import dns.message
    import dns.query
    import dns.rcode

    need_binary("redis-server")
    ports = {name: free_port() for name in ("milter", "intake", "rbl", "api")}
    cfg = _config(
        tmp_path,
        f'[milter]\nlisten = "inet:127.0.0.1:{ports["milter"]}"\n'
        f'[intake]\nlisten = "127.0.0.1:{ports["intake"]}"\nlocal_domains = ["example.test"]\n'
        f'[rbl]\nzone = "bl.test"\nlisten = ["127.0.0.1:{ports["rbl"]}"]\n'
        f'[api]\nlisten = "127.0.0.1:{ports["api"]}"\noperator_tokens = ["{METRICS_TOKEN}"]\n'
        '[dns]\nnameservers = ["127.0.0.1:9"]\ntimeout = "0.5s"\n',
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SPAMWARDEN_REDIS_URL",
                                                             "PROMETHEUS_MULTIPROC_DIR")}
    proc = subprocess.Popen([sys.executable, "-m", "spamwarden", "serve", "--config", str(cfg)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)

    def dns_ok() -> bool:
        q = dns.message.make_query("2.0.0.127.ip.bl.test", "A")
        try:
            r = dns.query.udp(q, "127.0.0.1", port=ports["rbl"], timeout=0.5)
        except (OSError, dns.exception.Timeout):
            return False
        return r.rcode() == dns.rcode.NOERROR and bool(r.answer)

    def api_metrics() -> bytes:
        url = f"http://127.0.0.1:{ports['api']}/metrics"
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        with urllib.request.urlopen(req, timeout=2) as resp:
            return bytes(resp.read())

    try:
        wait_until(lambda: set(_children(proc.pid)) == {"worker", "rbl", "api", "intake", "milter"},
                   timeout=30, what="all five services running")
        wait_until(dns_ok, timeout=30, what="rbl answering the RFC 5782 test point")
        wait_until(lambda: all(tcp_accepts(ports[n]) for n in ("milter", "intake", "api")),
                   timeout=30, what="milter, intake and api listening")
        with smtplib.SMTP("127.0.0.1", ports["intake"], timeout=5) as s:
            assert s.noop()[0] == 250
        # The API reports the DNS server's counters: one metrics directory for the tree.
        wait_until(lambda: b"spamwarden_dns_queries_total" in api_metrics(), timeout=15,
                   what="the DNS counters in the API's /metrics")

        old = _children(proc.pid)["rbl"]
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: _children(proc.pid).get("rbl") not in (None, old), timeout=30,
                   what="a new rbl process")
        wait_until(dns_ok, timeout=30, what="the restarted rbl answering")
        kids = _children(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    assert b"service exited" in err and b"service=rbl" in err
    for name, pid in kids.items():
        assert not Path(f"/proc/{pid}").exists(), f"{name} still running"


def _modes(root: Path) -> dict[str, str]:
    """Every path under ``root`` (itself included) → its permission bits in octal."""
    out = {".": oct(root.stat().st_mode & 0o777)}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = oct(p.lstat().st_mode & 0o777)
    return out


def test_state_dir_and_redis_files_are_private_under_umask_022(tmp_path: Path) -> None:
    """Consent evidence, reporters and originals live in the AOF: nobody but the service
    user may read the state directory or what the embedded redis-server writes there."""
    need_binary("redis-server")
    cfg = _config(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "spamwarden", "serve", "--config", str(cfg), "--only", "worker"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, umask=0o022,
        env={**os.environ, "SPAMWARDEN_REDIS_URL": ""},
    )
    sock = tmp_path / "state" / "redis" / "redis.sock"
    try:
        wait_until(lambda: _ping(sock), timeout=15, what="the embedded redis")
        r = redis.Redis(unix_socket_path=str(sock))
        r.set("consent:evidence", "alice@example.org agreed")
        r.bgrewriteaof()  # a rewritten AOF is a new file: it must be private too
        wait_until(lambda: r.info("persistence")["aof_rewrite_in_progress"] == 0,
                   timeout=15, what="the AOF rewrite")
        modes = _modes(tmp_path / "state")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode(errors="replace")
    # The state directory shuts everyone else out of all it holds (metrics, pidfile too);
    # what redis-server writes is private by itself as well.
    assert modes["."] == "0o700"
    redis_files = {k: v for k, v in modes.items() if k.startswith("redis") and k != "redis/redis.sock"}
    open_to_others = {k: v for k, v in redis_files.items() if int(v, 8) & 0o077}
    assert open_to_others == {}, modes
    assert any(k.startswith("redis/appendonlydir/") for k in modes)


def test_embedded_redis_tightens_an_existing_world_readable_directory(tmp_path: Path) -> None:
    need_binary("redis-server")
    from spamwarden.redisconn import EmbeddedRedis

    d = tmp_path / "redis"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    old = os.umask(0o022)
    try:
        srv = EmbeddedRedis(d)
        srv.start()
    finally:
        os.umask(old)
    try:
        redis.Redis(unix_socket_path=str(srv.socket)).set("k", "v")
        modes = _modes(d)
    finally:
        srv.stop()
    assert modes["."] == "0o700"
    assert {k: v for k, v in modes.items() if int(v, 8) & 0o077 and k != "redis.sock"} == {}


def test_serve_never_prints_the_redis_password(tmp_path: Path) -> None:
    secret = "s3cret-Passw0rd"
    port = free_port()
    cfg = _config(tmp_path, f'[redis]\nurl = "redis://:{secret}@127.0.0.1:{port}/0"\n'
                            'timeout = "0.5s"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "spamwarden", "serve", "--config", str(cfg), "--only", "worker"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "SPAMWARDEN_REDIS_URL"},
    )
    seen = b""
    try:
        assert proc.stderr is not None
        while b"redis" not in seen:  # the banner's redis line
            line = proc.stderr.readline()
            if not line:
                break
            seen += line
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    text = (seen + err + out).decode(errors="replace")
    assert f"redis://:***@127.0.0.1:{port}/0" in text, text
    assert secret not in text
