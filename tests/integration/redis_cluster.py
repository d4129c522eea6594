"""A real Redis Cluster (3 masters) and a Sentinel-watched server on loopback, for tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from tests.support.net import free_port, terminate

__all__ = ["LocalCluster", "LocalRedis", "free_port", "free_cluster_port", "wait_ping"]


def free_cluster_port(taken: tuple[int, ...] = ()) -> int:
    """A free port P below 55536 whose cluster bus port P+10000 is free too.

    Args:
        taken: ports already chosen for other nodes of the same cluster (not started yet, so
            a bind test cannot see them): P is none of them, and neither P nor P+10000 is
            one of their bus ports or them.
    """
    import random

    busy = {q for t in taken for q in (t, t + 10000)}
    for _ in range(200):
        port = random.randint(20000, 45000)
        if port in busy or port + 10000 in busy:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class LocalRedis:
    """One redis-server process on a loopback TCP port, with its own directory."""

    def __init__(self, directory: Path, port: int, *extra: str) -> None:
        self.directory, self.port = directory, port
        directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
             "--save", "", "--appendonly", "yes", "--daemonize", "no",
             "--logfile", str(directory / "redis.log"), *extra],
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_ping(port)
            # Another server already on the port answers the ping while ours fails to bind.
            pid = redis.Redis(port=port, socket_timeout=2).info("server")["process_id"]
            if pid != self.proc.pid:
                raise RuntimeError(f"port {port} is another server's (pid {pid})")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        terminate(self.proc)


def wait_ping(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port, socket_timeout=0.3).ping():
                return
        except (redis.ConnectionError, redis.TimeoutError):
            time.sleep(0.05)
    raise RuntimeError(f"redis on port {port} did not answer")


class LocalCluster:
    """Three masters with --cluster-enabled, joined by `redis-cli --cluster create`."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="sw-cluster-"))
        self.ports: list[int] = []
        for _ in range(3):
            self.ports.append(free_cluster_port(tuple(self.ports)))
        self.nodes: dict[int, LocalRedis] = {}
        try:
            for port in self.ports:
                self.start_node(port)
            subprocess.run(
                ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                 "--cluster-replicas", "0", "--cluster-yes"],
                check=True, capture_output=True, timeout=60,
            )
            self.wait_ok()
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start_node(self, port: int) -> None:
        old = self.nodes.pop(port, None)
        if old is not None:
            old.stop()  # never drop a running server unwaited
        self.nodes[port] = LocalRedis(
            self.tmp / str(port), port, "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
        )

    def wait_ok(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = []
            for port in self.ports:
                try:
                    info = redis.Redis(port=port, socket_timeout=0.5).cluster("info")
                    states.append(info.get("cluster_state") if isinstance(info, dict) else
                                  b"cluster_state:ok" in info)
                except redis.RedisError:
                    states.append(False)
            if all(s in ("ok", True) for s in states):
                return
            time.sleep(0.2)
        raise RuntimeError("cluster did not reach cluster_state:ok")

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
