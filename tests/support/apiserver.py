"""`spamwarden api` as a real process on a loopback port, for tests that need a real HTTP
server (a browser cannot reach aiohttp's in-process test server from another thread)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from .milterproc import write_toml
from .net import LOOPBACK, free_port, terminate

__all__ = ["ApiProcess"]


class ApiProcess:
    """One `spamwarden api` child process.

    Args:
        directory: where its config, state and log go.
        redis_url: the Redis it uses (``redis.url``).
        sections: more settings, merged per section over the defaults written here
            (``api.listen`` and ``api.public_url`` on a free loopback port).
    """

    def __init__(self, directory: Path, redis_url: str,
                 sections: Mapping[str, Mapping[str, object]] | None = None) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        merged: dict[str, dict[str, object]] = {
            "service": {"state_dir": str(directory / "state")},
            "redis": {"url": redis_url},
            "api": {"listen": f"{LOOPBACK}:{self.port}", "public_url": self.url},
        }
        for section, values in (sections or {}).items():
            merged.setdefault(section, {}).update(values)
        self.config = write_toml(directory / "api.toml", merged)
        self.log = directory / "api.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 30.0) -> None:
        """Start and wait until ``/v1/health`` answers.

        Raises:
            RuntimeError: the process exits or does not answer in time (with its log).
        """
        env = {k: v for k, v in os.environ.items()
               if k not in ("SPAMWARDEN_REDIS_URL", "SPAMWARDEN_CONFIG")}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "spamwarden", "api", "--config", str(self.config)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"spamwarden api exited:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/v1/health", timeout=1):
                    return
            except urllib.error.HTTPError:
                return  # it answers (health may report a dependency as down)
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"spamwarden api did not answer in {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        terminate(self.proc)
