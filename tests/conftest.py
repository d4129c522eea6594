"""Fixtures shared by every test: real servers on loopback, the shared data folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from spamwarden.redisconn import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SPAMWARDEN_SHARED", ROOT.parent / "shared"))
DATA = Path(__file__).resolve().parent / "data"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with a clear message when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not found: {p} (set SPAMWARDEN_SHARED to the folder holding "
                    "corpus/, suites/ and arf/)")
    return p


def need_binary(name: str) -> str:
    """The path of an executable, or fail: `make test` installs every one the tests use.

    Looks on $PATH, then in /usr/sbin, /usr/bin and /sbin (postfix, unbound live in sbin).
    """
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
    if path is None:
        pytest.fail(f"{name} is not installed; run `make test`, which installs it")
    return path


@contextmanager
def private_redis() -> Iterator[EmbeddedRedis]:
    """Start a private redis-server (unix socket, AOF on) in a new temp dir; stop and remove it
    when the block ends. The `redis_server` and `module_redis_url` fixtures use it."""
    need_binary("redis-server")
    d = Path(tempfile.mkdtemp(prefix="sw-redis-"))
    server = EmbeddedRedis(d)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def redis_server() -> Iterator[EmbeddedRedis]:
    """A real, private redis-server on a unix socket in a temp dir (AOF on)."""
    with private_redis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url
