"""Connecting to Redis, and the embedded private redis-server.

With no ``redis.url`` configured, ``spamwarden serve`` starts its own
``redis-server`` listening only on a unix socket under ``service.state_dir``
with append-only persistence (``appendfsync everysec``); every other process
using the same configuration computes the same socket path, so nothing else
needs to be told where Redis is.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .config import Config
from .errors import ServiceError

__all__ = ["redis_url", "embedded_socket", "EmbeddedRedis", "sync_client", "async_client"]


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


def sync_client(cfg: Config, url: str | None = None):  # type: ignore[no-untyped-def]
    """A ``redis.Redis`` with the configured timeouts (decode_responses off)."""
    import redis

    return redis.Redis.from_url(
        url or redis_url(cfg),
        socket_timeout=cfg.redis.timeout,
        socket_connect_timeout=cfg.redis.timeout,
        health_check_interval=30,
    )


def async_client(cfg: Config, url: str | None = None):  # type: ignore[no-untyped-def]
    """A ``redis.asyncio.Redis`` with the configured timeouts."""
    import redis.asyncio

    return redis.asyncio.Redis.from_url(
        url or redis_url(cfg),
        socket_timeout=cfg.redis.timeout,
        socket_connect_timeout=cfg.redis.timeout,
        health_check_interval=30,
    )


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
        self.directory.mkdir(parents=True, exist_ok=True)
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
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
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
