"""redis.url reaches one server, a Sentinel-named master, or a Redis Cluster."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest
import redis

from spamwarden.config import config_from_mapping
from spamwarden.errors import ConfigError
from spamwarden.redisconn import async_client, parse_redis_url, sync_client
from spamwarden.reputation.listings import CHANGES_KEY, LISTINGS_KEY, SERIAL_KEY
from tests.conftest import need_binary
from tests.integration import redis_cluster
from tests.integration.redis_cluster import LocalCluster, LocalRedis, free_cluster_port, free_port
from tests.support.net import terminate

pytestmark = pytest.mark.integration


_SCRIPT = """
local serial = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('XADD', KEYS[2], '*', 'op', 'listed', 'key', ARGV[1], 'serial', serial)
return serial
"""


def test_scripts_over_the_shared_hash_tag_run_on_a_cluster(redis_cluster: LocalCluster) -> None:
    cfg = config_from_mapping({"redis": {"url": redis_cluster.url}})
    client = sync_client(cfg)
    keys = [LISTINGS_KEY, CHANGES_KEY, SERIAL_KEY]
    first = client.eval(_SCRIPT, 3, *keys, "192.0.2.1", "{}")
    second = client.eval(_SCRIPT, 3, *keys, "192.0.2.2", "{}")
    assert second == first + 1
    assert client.hlen(LISTINGS_KEY) >= 2
    assert client.xlen(CHANGES_KEY) >= 2


def test_cluster_survives_a_node_restart(redis_cluster: LocalCluster) -> None:
    cfg = config_from_mapping({"redis": {"url": redis_cluster.url}})
    client = sync_client(cfg)
    client.hset(LISTINGS_KEY, "198.51.100.7", "{}")
    slot_owner = client.cluster_keyslot(LISTINGS_KEY)
    assert isinstance(slot_owner, int)
    # Restart every node in turn (append-only files keep the data).
    for port in redis_cluster.ports:
        redis_cluster.nodes[port].stop()
        redis_cluster.start_node(port)
    redis_cluster.wait_ok()
    fresh = sync_client(cfg)
    assert fresh.hget(LISTINGS_KEY, "198.51.100.7") == b"{}"


async def _async_roundtrip(url: str) -> bytes | None:
    cfg = config_from_mapping({"redis": {"url": url}})
    client = async_client(cfg)
    try:
        await client.set("sw:{sw}:probe", "ok")
        return await client.get("sw:{sw}:probe")
    finally:
        await client.aclose()


def test_async_client_on_cluster(redis_cluster: LocalCluster) -> None:
    import asyncio

    assert asyncio.run(_async_roundtrip(redis_cluster.url)) == b"ok"


def test_cluster_nodes_never_share_a_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """The three ports are picked before any node starts, so the picker itself must keep
    them apart: a repeated port once left a running node unreferenced (and unwaited)."""
    import random

    picks = iter([30000, 30000, 40000, 20000, 31000])
    monkeypatch.setattr(random, "randint", lambda a, b: next(picks))

    class Bindable:  # every port is free here: what is tested is the picker's own rule
        def __enter__(self) -> Bindable:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def bind(self, address: object) -> None:
            return None

    monkeypatch.setattr(redis_cluster.socket, "socket", Bindable)
    first = free_cluster_port()
    # 30000 again, 40000 (= 30000's bus port) and 20000 (whose bus port is 30000) are refused.
    assert (first, free_cluster_port((first,))) == (30000, 31000)


def test_a_node_that_cannot_bind_its_port_is_an_error(tmp_path: Path) -> None:
    need_binary("redis-server")
    port = free_port()
    first = LocalRedis(tmp_path / "a", port)
    try:
        # The ping reaches the first server; the second must notice its own exit.
        with pytest.raises(RuntimeError, match="another server"):
            LocalRedis(tmp_path / "b", port)
    finally:
        first.stop()


def test_sentinel_names_the_master_and_follows_it() -> None:
    need_binary("redis-server")
    tmp = Path(tempfile.mkdtemp(prefix="sw-sentinel-"))
    master_port, sentinel_port = free_port(), free_port()
    master = LocalRedis(tmp / "master", master_port)
    conf = tmp / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp}\n"
        f"sentinel monitor swmaster 127.0.0.1 {master_port} 1\n"
        "sentinel down-after-milliseconds swmaster 1000\n"
    )
    import subprocess

    sentinel = subprocess.Popen(["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=sentinel_port, socket_timeout=0.3).ping():
                    break
            except redis.RedisError:
                time.sleep(0.1)
        url = f"redis+sentinel://127.0.0.1:{sentinel_port}/swmaster"
        client = sync_client(config_from_mapping({"redis": {"url": url}}))
        client.set("k", "v")
        assert redis.Redis(port=master_port).get("k") == b"v"
    finally:
        terminate(sentinel)
        master.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize(
    "url", ["memcached://x", "redis+sentinel://127.0.0.1:1", "redis+cluster://127.0.0.1:99999", "nourl"]
)
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="redis.url"):
        parse_redis_url(url)


def test_unreachable_redis_is_tried_twice_not_the_library_ladder() -> None:
    """A silent server (connection accepted, nothing answered) must not stall the mail path
    for the client library's whole retry ladder."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(conn)

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        cfg = config_from_mapping({"redis": {"url": f"redis://127.0.0.1:{port}/0", "timeout": 0.2}})
        with pytest.raises(redis.RedisError):
            sync_client(cfg).ping()
    finally:
        done.set()
        t.join(2)
        listener.close()
        for c in accepted:
            c.close()
    # One retry at the command level times one at the connection level: at most 4
    # connections (the library's default ladder makes 11 here).
    assert 1 <= len(accepted) <= 4, len(accepted)
