"""Real-server fixtures for integration tests: private Postfix instances, a local DNS server
with SPF/DKIM/DMARC test domains, a module-wide Redis, and `spamwarden milter` processes.

Everything listens on 127.0.0.1, lives in its own temp dir and is stopped by pid at teardown.
The implementations are in tests/support/ (shared with bench/); these are thin fixtures.

Test domains served by `dns_server` (see AUTH_ZONE_DOC):
    good.test   SPF "v=spf1 ip4:127.0.0.1 -all", DMARC p=reject, DKIM keys sel1 (RSA 1024)
                and ed1 (Ed25519); mail.good.test A 127.0.0.1; MX mail.good.test.
    bank.test   SPF "v=spf1 ip4:192.0.2.10 -all" (not us), DMARC p=reject; no DKIM key.
    soft.test   SPF "v=spf1 ?all", DMARC p=none.
    client.test A 127.0.0.1, SPF "v=spf1 ip4:127.0.0.1 -all" (the HELO name swaks uses).
Every other name is NXDOMAIN, answered at once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import need_binary, private_redis
from tests.integration.redis_cluster import LocalCluster
from tests.support.dnszone import DkimKey, DnsZone, UnboundServer
from tests.support.milterproc import MilterProcess
from tests.support.milterproc import spamwarden_milter as _spamwarden_milter
from tests.support.postfix import PostfixInstance
from tests.support.smtpclient import SwaksResult, swaks

__all__ = ["AuthTestZone", "SwaksResult", "swaks", "need_binary"]


def _tempdir(prefix: str) -> Path:
    # Not pytest's tmp_path: its parents are 0700, and the postfix and nobody users must reach
    # the queue and the Maildir.
    return Path(tempfile.mkdtemp(prefix=prefix))


class _StartedServers:
    """What a server factory started and the temp dirs it made, for one teardown."""

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.dirs: list[Path] = []

    def stop_all(self) -> None:
        """Stop every server (in start order), then remove every temp dir."""
        for server in self.started:
            server.stop()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)
        self.started.clear()
        self.dirs.clear()


_F = TypeVar("_F", bound=_StartedServers)


@contextmanager
def _stopped_at_exit(factory: _F) -> Iterator[_F]:
    """Yield ``factory``; stop what it started when the block ends, however it ends."""
    try:
        yield factory
    finally:
        factory.stop_all()


# ---- Postfix ------------------------------------------------------------------------------


class PostfixFactory(_StartedServers):
    """Starts private Postfix instances and stops every one of them at teardown."""

    def __call__(self, *, listeners: Mapping[str, str] | None = None,
                 main_cf: Mapping[str, str] | None = None,
                 mailbox: str = "user@test.local",
                 sasl_users: Mapping[str, str] | None = None) -> PostfixInstance:
        """Start a Postfix.

        Args:
            listeners: name -> smtpd_milters (Postfix syntax, "" for none); default one
                listener "smtp" without milter. `instance.smtp[name].port` is its port.
            main_cf: main.cf overrides (e.g. {"milter_default_action": "accept"}).
            mailbox: the one deliverable address; `instance.maildir` is its Maildir.
            sasl_users: SMTP AUTH logins -> passwords (Cyrus SASL, private sasldb; needs
                saslpasswd2 from sasl2-bin); none: no AUTH offered.

        Returns:
            The running instance (with `wait_for_delivery`, `maillog`, `queue`, `flush`).
        """
        need_binary("postfix")
        if sasl_users:
            need_binary("saslpasswd2")
        instance = PostfixInstance(_tempdir("sw-postfix-"),
                                   listeners=dict(listeners or {"smtp": ""}),
                                   mailbox=mailbox, main_cf=dict(main_cf or {}),
                                   sasl_users=dict(sasl_users or {}))
        self.started.append(instance)
        self.dirs.append(instance.base_dir)
        instance.start()
        return instance


@pytest.fixture
def postfix_instance() -> Iterator[PostfixFactory]:
    """Factory for private Postfix instances (function scope): `pf = postfix_instance(...)`."""
    with _stopped_at_exit(PostfixFactory()) as factory:
        yield factory


@pytest.fixture(scope="module")
def postfix_instance_module() -> Iterator[PostfixFactory]:
    """The same factory, with instances living until the end of the test module."""
    with _stopped_at_exit(PostfixFactory()) as factory:
        yield factory


# ---- DNS ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthTestZone:
    """The standard test domains (module docstring) and their DKIM signing keys."""

    zone: DnsZone
    good_rsa: DkimKey
    good_ed25519: DkimKey


def auth_test_zone() -> AuthTestZone:
    """Build the standard SPF/DKIM/DMARC test zone with freshly generated DKIM keys."""
    zone = DnsZone()
    zone.add_spf("good.test", "v=spf1 ip4:127.0.0.1 -all")
    zone.add_dmarc("good.test", "v=DMARC1; p=reject")
    zone.add_a("mail.good.test", "127.0.0.1")
    zone.add_mx("good.test", "mail.good.test")
    rsa_key = zone.add_dkim_key("good.test", "sel1", algorithm="rsa", bits=1024)
    ed_key = zone.add_dkim_key("good.test", "ed1", algorithm="ed25519")
    zone.add_spf("bank.test", "v=spf1 ip4:192.0.2.10 -all")
    zone.add_dmarc("bank.test", "v=DMARC1; p=reject")
    zone.add_spf("soft.test", "v=spf1 ?all")
    zone.add_dmarc("soft.test", "v=DMARC1; p=none")
    zone.add_a("client.test", "127.0.0.1")
    zone.add_spf("client.test", "v=spf1 ip4:127.0.0.1 -all")
    return AuthTestZone(zone, rsa_key, ed_key)


class DnsServerFactory(_StartedServers):
    """Starts unbound servers for given zones and stops them all at teardown."""

    def __call__(self, zone: DnsZone) -> UnboundServer:
        """Start unbound on a free 127.0.0.1 port answering `zone` (and NXDOMAIN otherwise).

        Add records later with `zone.add_*(...)` then `server.reload()`.
        """
        need_binary("unbound")
        need_binary("dig")
        server = UnboundServer(_tempdir("sw-dns-"), zone)
        self.started.append(server)
        self.dirs.append(server.base_dir)
        server.start()
        return server


@pytest.fixture
def dns_server_factory() -> Iterator[DnsServerFactory]:
    """Factory for DNS servers with your own zone (function scope)."""
    with _stopped_at_exit(DnsServerFactory()) as factory:
        yield factory


@pytest.fixture(scope="module")
def auth_zone() -> AuthTestZone:
    """The standard test domains and DKIM keys served by `dns_server`."""
    return auth_test_zone()


@pytest.fixture(scope="module")
def dns_server(auth_zone: AuthTestZone) -> Iterator[UnboundServer]:
    """A real DNS server (unbound) on 127.0.0.1:<port> serving the standard test domains.

    `dns_server.address` is "127.0.0.1:PORT" for `dns.nameservers`; `dns_server.dig(...)`.
    """
    with _stopped_at_exit(DnsServerFactory()) as factory:
        yield factory(auth_zone.zone)


# ---- Redis and the milter -----------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[LocalCluster]:
    """A real Redis Cluster (3 masters on loopback ports) for a whole test module."""
    need_binary("redis-server")
    need_binary("redis-cli")
    cluster = LocalCluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def module_redis_url() -> Iterator[str]:
    """A private redis-server for a whole test module (the `redis_url` fixture is per test)."""
    with private_redis() as server:
        yield server.url


MilterFactory = Callable[..., MilterProcess]


class SpamwardenMilterFactory(_StartedServers):
    """Starts `spamwarden milter --config FILE` processes; stops them all at teardown."""

    def __call__(self, *, nameservers: list[str], redis_url: str | None,
                 authserv_id: str = "mx.test", port: int | None = None,
                 overrides: Mapping[str, Mapping[str, object]] | None = None,
                 start: bool = True, unix: bool = False) -> MilterProcess:
        """A spamwarden milter on inet:127.0.0.1:<port> (free port when None), or with
        `unix` on a unix socket in its work directory (group postfix, mode 0660).

        Returns:
            The process: `.postfix_socket` for smtpd_milters, `.libmilter_socket` for
            miltertest, `.stop()`, `.log()`.
        """
        work = _tempdir("sw-milter-")
        self.dirs.append(work)
        unix_path = None
        if unix:
            os.chmod(work, 0o755)  # Postfix's smtpd (user postfix) must reach the socket
            unix_path = work / "run" / "milter.sock"
        proc = _spamwarden_milter(work, nameservers=nameservers, redis_url=redis_url,
                                  authserv_id=authserv_id, port=port, overrides=overrides,
                                  unix_path=unix_path)
        self.started.append(proc)
        if start:
            proc.start()
        return proc


@pytest.fixture
def spamwarden_milter() -> Iterator[SpamwardenMilterFactory]:
    """Factory for `spamwarden milter` subprocesses (function scope)."""
    with _stopped_at_exit(SpamwardenMilterFactory()) as factory:
        yield factory


@pytest.fixture(scope="module")
def spamwarden_milter_module() -> Iterator[SpamwardenMilterFactory]:
    """Factory for `spamwarden milter` subprocesses living until the end of the module."""
    with _stopped_at_exit(SpamwardenMilterFactory()) as factory:
        yield factory
