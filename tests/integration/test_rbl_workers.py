"""rbl.workers: several `spamwarden rbl` processes on one address (SO_REUSEPORT)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest
import redis

from spamwarden.redisconn import EmbeddedRedis
from spamwarden.reputation.store import ListingStore
from tests.conftest import need_binary
from tests.support.net import LOOPBACK, free_port, wait_until
from tests.support.rblserver import ZONE, RblProcess, ip_name

pytestmark = pytest.mark.integration


@pytest.fixture()
def redis_store(tmp_path: Path) -> Iterator[tuple[str, ListingStore]]:
    need_binary("redis-server")
    srv = EmbeddedRedis(tmp_path / "redis")
    srv.start()
    try:
        yield srv.url, ListingStore(redis.Redis.from_url(srv.url))
    finally:
        srv.stop()


def _listed(port: int, name: str, *, tcp: bool = False) -> bool:
    q = dns.message.make_query(name, "A")
    try:
        if tcp:
            r = dns.query.tcp(q, LOOPBACK, port=port, timeout=1)
        else:
            r = dns.query.udp(q, LOOPBACK, port=port, timeout=1)
    except (dns.exception.Timeout, OSError):
        return False
    return bool(r.answer)


def test_two_workers_share_one_address_and_each_follows_the_changes(redis_store) -> None:  # noqa: ANN001
    url, store = redis_store
    d = Path(tempfile.mkdtemp(prefix="sw-rbl-workers-"))
    (d / "a").mkdir()
    (d / "b").mkdir()
    a = RblProcess(d / "a", url, workers="2")
    b = RblProcess(d / "b", url, workers="2")
    b.port = a.port
    b.rbl["listen"] = a.rbl["listen"]
    try:
        a.start()
        b.start()  # binds the same UDP and TCP port: SO_REUSEPORT
        store.add("192.0.2.44", reason="complaints", now=time.time(), ttl=3600)
        # fresh sockets (new source ports) reach both processes; each must know the listing
        wait_until(lambda: all(_listed(a.port, ip_name("192.0.2.44")) for _ in range(40)),
                   timeout=10, what="every worker answering the new listing")
        assert _listed(a.port, ip_name("192.0.2.44"), tcp=True)
        a.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        a.proc.wait(5)  # type: ignore[union-attr]
        # a query already in flight to the killed process may be lost (clients retry)
        wait_until(lambda: _listed(b.port, ip_name("192.0.2.44")), timeout=5, what="b answering")
        results = [_listed(b.port, ip_name("192.0.2.44")) for _ in range(20)]
        assert all(results), (results, b.log.read_text()[-2000:])
        assert _listed(b.port, ip_name("192.0.2.44"), tcp=True)
    finally:
        a.stop()
        b.stop()
        shutil.rmtree(d, ignore_errors=True)


def _rbl_children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != pid:
                continue
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if len(argv) > 3 and argv[1:4] == [b"-m", b"spamwarden", b"rbl"]:
            found.append(int(stat.parent.name))
    return sorted(found)


def test_serve_starts_and_restarts_every_rbl_worker(tmp_path: Path) -> None:
    need_binary("redis-server")
    port = free_port(udp_too=True)
    cfg = tmp_path / "sw.toml"
    cfg.write_text(f'[service]\nstate_dir = "{tmp_path / "state"}"\n'
                   f'[rbl]\nzone = "{ZONE}"\nlisten = ["{LOOPBACK}:{port}"]\nworkers = 3\n')
    env = {k: v for k, v in os.environ.items() if k not in ("SPAMWARDEN_REDIS_URL",
                                                             "PROMETHEUS_MULTIPROC_DIR")}
    proc = subprocess.Popen([sys.executable, "-m", "spamwarden", "serve", "--only", "rbl",
                             "--config", str(cfg)], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, env=env)
    try:
        wait_until(lambda: len(_rbl_children(proc.pid)) == 3, timeout=30, what="three rbl workers")
        wait_until(lambda: _listed(port, f"2.0.0.127.ip.{ZONE}"), timeout=30, what="an answer")
        first = _rbl_children(proc.pid)
        os.kill(first[0], signal.SIGKILL)
        wait_until(lambda: len(_rbl_children(proc.pid)) == 3 and first[0] not in _rbl_children(proc.pid),
                   timeout=30, what="the killed worker restarted")
        assert set(first[1:]) <= set(_rbl_children(proc.pid))  # the others kept running
        # while the new copy loads, queries keep getting answers: it binds once loaded
        until = time.monotonic() + 3
        while time.monotonic() < until:
            assert _listed(port, f"2.0.0.127.ip.{ZONE}")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
