"""Fixtures for the fault, load and fuzz tests.

`make test` runs these in a bounded form; `make soak` sets SPAMWARDEN_SOAK=1 and every bounded
loop here scales up through `scaled(bounded, soak)`.  The real-server fixtures (private Postfix,
unbound, milter processes) are the integration ones, imported here so both folders share one
implementation.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from spamwarden.redisconn import EmbeddedRedis
from tests.conftest import DATA, corpus_message_files, corpus_paths, data_path
from tests.integration.conftest import (  # noqa: F401 - fixtures shared with integration/
    auth_zone,
    dns_server,
    need_binary,
    postfix_instance,
    postfix_instance_module,
    spamwarden_milter,
    spamwarden_milter_module,
)
from tests.support.net import wait_until

from .mutators import read_seed_files

#: `make soak`: scale every bounded loop up
SOAK = os.environ.get("SPAMWARDEN_SOAK", "") not in ("", "0")


def scaled(bounded: int, soak: int) -> int:
    """`bounded` under `make test`, `soak` under `make soak` (SPAMWARDEN_SOAK=1).

    SPAMWARDEN_FAULTS_SCALE (a float) multiplies the result, for a quick local run.
    """
    n = soak if SOAK else bounded
    factor = float(os.environ.get("SPAMWARDEN_FAULTS_SCALE", "1") or "1")
    return max(1, int(n * factor))


class InputHang(BaseException):
    """One input ran past its time bound.

    A BaseException so that no `except Exception` in the code under test swallows it.
    """


@contextmanager
def time_bound(seconds: float, what: str) -> Iterator[None]:
    """Interrupt the block with InputHang after `seconds` (SIGALRM, main thread only).

    Code stuck in C without returning to the interpreter is caught after it returns: the
    caller also compares the elapsed time with the bound.
    """
    def on_alarm(signum: int, frame: object) -> None:
        raise InputHang(f"{what}: still running after {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---- seeds: real mail and the shipped suites -------------------------------------------------------------


def _sample(paths: list[Path], n: int, seed: int) -> list[Path]:
    paths = sorted(paths)
    if len(paths) <= n:
        return paths
    return sorted(random.Random(seed).sample(paths, n))


@pytest.fixture(scope="session")
def mail_seeds() -> list[bytes]:
    """Real messages: a fixed sample of both corpora (ham and spam), the DKIM vectors, the
    ARF reports and the intake sample reports."""
    files = [p for root in corpus_paths().values() for p in corpus_message_files(root)]
    picked = _sample(files, scaled(120, 1500), seed=7)
    dkim = data_path("suites", "dkim")
    picked += sorted(p for p in dkim.rglob("*") if p.is_file() and p.suffix in (
        ".msg", ".message", ".mbox", ".baddomain", ".eml"))
    picked += sorted(data_path("arf").rglob("*.eml"))
    picked += sorted((DATA / "reports").glob("*.eml"))
    return read_seed_files(picked)


@pytest.fixture(scope="session")
def report_seeds(mail_seeds: list[bytes]) -> list[bytes]:
    """Complaint-shaped seeds: the ARF reports and sample forwards first, then messages
    wrapped as the three forms intake accepts (attached, inline, bare re-sent)."""
    reports = read_seed_files(sorted(data_path("arf").rglob("*.eml"))
                              + sorted((DATA / "reports").glob("*.eml")))
    wrapped = []
    for i, msg in enumerate(mail_seeds[:60]):
        form = i % 3
        if form == 0:
            wrapped.append(b"From: user@test.local\r\nTo: report@test.local\r\nSubject: Fwd: spam"
                           b"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=zz"
                           b"\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nspam\r\n--zz\r\n"
                           b"Content-Type: message/rfc822\r\n\r\n" + msg + b"\r\n--zz--\r\n")
        elif form == 1:
            wrapped.append(b"From: user@test.local\r\nTo: report@test.local\r\nSubject: Fwd: x"
                           b"\r\n\r\n---------- Forwarded message ---------\r\n"
                           + msg[:20_000])
        else:
            wrapped.append(b"Resent-From: user@test.local\r\nResent-To: report@test.local\r\n"
                           + msg)
    return reports + wrapped


@pytest.fixture(scope="session")
def spf_names() -> tuple[list[str], list[str]]:
    """Domain names and IPv4/IPv6 addresses taken from the SPF test suites (tests/data)."""
    import re

    text = ""
    for p in sorted(data_path("suites", "spf").glob("*.yml")):
        text += p.read_text(errors="replace")
    names = sorted(set(re.findall(r"\b((?:[a-z0-9-]{1,63}\.)+[a-z]{2,12})\b", text.lower())))
    ips = sorted(set(re.findall(r"\b(\d{1,3}(?:\.\d{1,3}){3})\b", text)))
    ips += sorted(set(re.findall(r"\b([0-9a-f]{1,4}(?::[0-9a-f]{0,4}){2,7})\b", text.lower())))
    return names[:400], ips[:200]


# ---- a Redis that tests stop, kill and restart -------------------------------------------


class RestartableRedis:
    """A private redis-server (AOF on) that a test can stop, SIGKILL and start again on the
    same unix socket and data directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.server = EmbeddedRedis(directory)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def kill(self) -> None:
        proc = self.server.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def running(self) -> bool:
        proc = self.server.proc
        return proc is not None and proc.poll() is None


@pytest.fixture
def restartable_redis() -> Iterator[RestartableRedis]:
    need_binary("redis-server")
    d = Path(tempfile.mkdtemp(prefix="sw-faults-redis-"))
    redis = RestartableRedis(d)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()
        redis.kill()
        shutil.rmtree(d, ignore_errors=True)


def wait_for(check: Callable[[], object], *, timeout: float, interval: float = 0.05,
             what: str = "condition") -> None:
    """Poll `check()` until true; fail the test naming `what` after `timeout` seconds."""
    try:
        wait_until(check, timeout=timeout, interval=interval, what=what)
    except TimeoutError:
        pytest.fail(f"timed out after {timeout:g}s waiting for {what}")


# ---- spamwarden service processes (rbl, intake) -------------------------------------------


class ServiceFactory:
    """Starts `spamwarden <command> --config FILE` processes on loopback ports and stops
    every one of them at teardown (SIGTERM, then SIGKILL).  The process object is the
    milter helper's (tests/support/milterproc.py): start() waits until the TCP port accepts,
    kill() is a SIGKILL, start() again restarts on the same port."""

    def __init__(self) -> None:
        self.processes: list = []  # type: ignore[type-arg]
        self.dirs: list[Path] = []

    def __call__(self, command: str, sections: dict, *, port: int):  # type: ignore[no-untyped-def,type-arg]
        from tests.support.milterproc import MilterProcess, spamwarden_command, write_toml

        work = Path(tempfile.mkdtemp(prefix=f"sw-faults-{command}-"))
        self.dirs.append(work)
        state = work / "state"
        state.mkdir()
        merged = {"service": {"state_dir": str(state), "log_level": "info"}}
        for section, values in sections.items():
            merged.setdefault(section, {}).update(values)
        config = write_toml(work / "spamwarden.toml", merged)
        proc = MilterProcess([*spamwarden_command(), command, "--config", str(config)], port,
                             work / f"{command}.log")
        self.processes.append(proc)
        proc.start()
        return proc

    def stop_all(self) -> None:
        for proc in self.processes:
            proc.stop()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def spamwarden_service() -> Iterator[ServiceFactory]:
    """Factory: `spamwarden_service("rbl", {"rbl": {...}, "redis": {...}}, port=P)`."""
    factory = ServiceFactory()
    try:
        yield factory
    finally:
        factory.stop_all()
