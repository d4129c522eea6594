"""Connecting to Redis, and the embedded private redis-server.

With no ``redis.url`` configured, ``spamwarden serve`` starts its own
``redis-server`` listening only on a unix socket under ``service.state_dir``
with append-only persistence (``appendfsync everysec``); every other process
using the same configuration computes the same socket path, so nothing else
needs to be told where Redis is.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .config import Config, parse_hostport
from .errors import ConfigError, ServiceError, StoreError, StoreUnavailable

__all__ = [
    "redis_url",
    "embedded_socket",
    "EmbeddedRedis",
    "RedisTarget",
    "parse_redis_url",
    "redact_url",
    "with_min_timeout",
    "sync_client",
    "async_client",
    "store_error",
]


def embedded_socket(cfg: Config) -> Path:
    """The unix socket of the embedded redis-server for this configuration."""
    return cfg.state_path("redis", "redis.sock").absolute()


def redis_url(cfg: Config) -> str:
    """The Redis URL every process of this configuration uses.

    ``$SPAMWARDEN_REDIS_URL`` (set by tests and by ``serve`` for its children)
    wins over ``redis.url``; with neither, the embedded server's socket.
    """
    env = os.environ.get("SPAMWARDEN_REDIS_URL")
    if env:
        return env
    if cfg.redis.url:
        return cfg.redis.url
    return f"unix://{embedded_socket(cfg)}"


_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|pass|pwd)=)[^&#]*")


def redact_url(url: str) -> str:
    """``url`` fit to print or log: a password in the userinfo or the query becomes ``***``.

    ``redis://:pw@host:6379/0`` → ``redis://:***@host:6379/0``,
    ``redis://user:pw@host`` → ``redis://user:***@host``,
    ``redis://host?password=pw`` → ``redis://host?password=***``.
    """
    scheme, sep, rest = url.partition("://")
    base, q, query = rest.partition("?")
    if sep and "@" in base:
        cred, at, tail = base.rpartition("@")
        user, colon, _ = cred.partition(":")
        base = (f"{user}:***" if colon else "***") + at + tail
    return scheme + sep + base + q + _QUERY_SECRET.sub(r"\1***", q + query)[len(q):]


@dataclass(frozen=True)
class RedisTarget:
    """A parsed ``redis.url``: one server, a Sentinel-watched master, or a Cluster.

    Forms accepted:

    * ``redis://[:password@]host:port/db``, ``rediss://…``, ``unix:///path.sock`` - one server;
    * ``redis+sentinel://[:password@]host:port[,host:port…]/SERVICE[/db]`` - the master
      that Sentinel names for ``SERVICE`` (fails over with it);
    * ``redis+cluster://[:password@]host:port[,host:port…]`` - Redis Cluster (every key a
      script touches together shares the ``{sw}`` hash tag).
    """

    mode: str  # "single", "sentinel" or "cluster"
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    password: str | None = None


def parse_redis_url(url: str) -> RedisTarget:
    """Parse ``url`` into a :class:`RedisTarget`.

    :raises ConfigError: an unknown scheme or a malformed node list.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"redis.url {redact_url(url)!r}: expected scheme://…")
    if scheme in ("redis", "rediss", "unix"):
        return RedisTarget("single", url)
    if scheme not in ("redis+sentinel", "redis+cluster"):
        raise ConfigError(
            f"redis.url {redact_url(url)!r}: unknown scheme {scheme!r} (redis, rediss, unix, "
            "redis+sentinel, redis+cluster)"
        )
    password = None
    if "@" in rest:
        cred, rest = rest.rsplit("@", 1)
        password = unquote(cred.split(":", 1)[-1]) or None
    hosts, _, path = rest.partition("/")
    nodes = []
    for item in hosts.split(","):
        try:
            nodes.append(parse_hostport(item, default_port=26379 if "sentinel" in scheme else 6379))
        except ValueError as exc:
            raise ConfigError(f"redis.url {redact_url(url)!r}: {exc}") from exc
    parts = [p for p in path.split("/") if p]
    if scheme == "redis+sentinel":
        if not parts:
            raise ConfigError(f"redis.url {redact_url(url)!r}: name the Sentinel service: …/SERVICE")
        db = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        return RedisTarget("sentinel", url, tuple(nodes), parts[0], db, password)
    return RedisTarget("cluster", url, tuple(nodes), password=password)


def with_min_timeout(cfg: Config, seconds: float) -> Config:
    """``cfg`` with ``redis.timeout`` raised to at least ``seconds``.

    For clients that block on purpose (``XREAD``/``XREADGROUP ... BLOCK``, big scans):
    their socket timeout must outlast the block, or every idle wait reads as an outage.
    """
    import dataclasses

    if cfg.redis.timeout >= seconds:
        return cfg
    return dataclasses.replace(cfg, redis=dataclasses.replace(cfg.redis, timeout=seconds))


def _client(cfg: Config, url: str | None, *, redis_cls: Any, sentinel_cls: Any,
            cluster_cls: Any, node_cls: Any, retry_cls: Any) -> Any:
    """Build a client for the configured target from one family of redis-py classes
    (synchronous or asyncio), so both kinds connect, time out and retry the same way."""
    from redis.backoff import ExponentialBackoff

    target = parse_redis_url(url or redis_url(cfg))
    timeout = cfg.redis.timeout
    # One quick retry: a caller in the mail path must learn "Redis is down" within about
    # twice redis.timeout, not after the client library's default retry ladder.
    retry = retry_cls(ExponentialBackoff(cap=0.05, base=0.01), 1)
    if target.mode == "sentinel":
        sentinel = sentinel_cls(
            list(target.nodes),
            sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
            socket_timeout=timeout, socket_connect_timeout=timeout,
        )
        return sentinel.master_for(target.service, db=target.db, password=target.password,
                                   retry=retry)
    if target.mode == "cluster":
        return cluster_cls(
            startup_nodes=[node_cls(h, p) for h, p in target.nodes],
            password=target.password, socket_timeout=timeout, socket_connect_timeout=timeout,
        )
    return redis_cls.from_url(target.url, health_check_interval=30, retry=retry,
                              socket_timeout=timeout, socket_connect_timeout=timeout)


def sync_client(cfg: Config, url: str | None = None) -> Any:
    """A synchronous Redis client for the configured target (bytes responses).

    :param cfg: the configuration (``redis.url``, ``redis.timeout``).
    :param url: a URL to use instead of the configured one.
    :returns: a ``redis.Redis`` (plain or from Sentinel) or a ``redis.cluster.RedisCluster``.
    :raises ConfigError: the URL is not one this module understands.
    """
    import redis
    from redis.cluster import ClusterNode, RedisCluster
    from redis.retry import Retry
    from redis.sentinel import Sentinel

    return _client(cfg, url, redis_cls=redis.Redis, sentinel_cls=Sentinel,
                   cluster_cls=RedisCluster, node_cls=ClusterNode, retry_cls=Retry)


def async_client(cfg: Config, url: str | None = None) -> Any:
    """An asyncio Redis client for the configured target (bytes responses).

    :param cfg: the configuration (``redis.url``, ``redis.timeout``).
    :param url: a URL to use instead of the configured one.
    :returns: a ``redis.asyncio.Redis`` (plain or from Sentinel) or a
        ``redis.asyncio.cluster.RedisCluster``.
    :raises ConfigError: the URL is not one this module understands.
    """
    import redis.asyncio
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.asyncio.retry import Retry
    from redis.asyncio.sentinel import Sentinel

    return _client(cfg, url, redis_cls=redis.asyncio.Redis, sentinel_cls=Sentinel,
                   cluster_cls=RedisCluster, node_cls=ClusterNode, retry_cls=Retry)


class EmbeddedRedis:
    """A private ``redis-server``: unix socket only, AOF persistence, pidfile.

    :param directory: where the socket, AOF and pidfile live (created).
    :param binary: the redis-server executable.
    """

    def __init__(self, directory: Path, *, binary: str = "redis-server", port: int = 0) -> None:
        self.directory = directory.absolute()
        self.binary = binary
        self.port = port
        self.socket = self.directory / "redis.sock"
        self.pidfile = self.directory / "redis.pid"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, *, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING.

        :raises ServiceError: redis-server is missing or does not come up.
        """
        exe = shutil.which(self.binary)
        if exe is None:
            raise ServiceError(
                f"redis-server not found ({self.binary!r}). Install it "
                "(apt-get install redis-server) or set redis.url in the configuration "
                "to use an existing Redis."
            )
        # The AOF holds consent evidence, reporters and reported originals: the directory
        # is 0700 even when an older one was created world-readable, and the server runs
        # under umask 077 so every file it writes (AOF, rewrites, log, pidfile) is 0600.
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        self._stop_stale()
        args = [
            exe,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--pidfile", str(self.pidfile),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.directory / "redis.log"),
        ]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, start_new_session=True, umask=0o077
        )
        deadline = time.monotonic() + timeout
        import redis

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.directory / "redis.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise ServiceError(f"redis-server exited with {self.proc.returncode}: {tail}")
            try:
                if redis.Redis(unix_socket_path=str(self.socket), socket_timeout=0.5).ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
                pass
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"redis-server did not answer within {timeout:g}s")

    def _stop_stale(self) -> None:
        """A pidfile left by a crashed run: stop that server if it is still ours."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return
        if b"redis-server" in cmdline:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.05)

    def stop(self, *, timeout: float = 10.0) -> None:
        """SIGTERM and wait (Redis flushes the AOF on a clean shutdown)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def store_error(exc: Exception) -> StoreError:
    """The exception of our tree for a redis-py error.

    :param exc: what redis-py (or the socket under it) raised.
    :returns: :class:`StoreUnavailable` when Redis cannot be reached, else
        :class:`StoreError`; the caller raises it ``from exc``.
    """
    import redis

    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, OSError)):
        return StoreUnavailable(f"Redis cannot be reached: {exc}")
    return StoreError(f"Redis failed: {exc}")
