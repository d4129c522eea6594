"""The zone outside spamwarden: rbldnsd serving the export, unbound mirroring by zone transfer,
and the RPZ export checked by BIND's named-checkzone.  Each must answer like spamwarden."""

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

import dns.message
import dns.query
import dns.rcode
import pytest
import redis

from spamwarden.redisconn import EmbeddedRedis
from spamwarden.reputation.store import ListingStore
from tests.conftest import need_binary
from tests.support.net import LOOPBACK, free_port, pid_alive, read_pidfile
from tests.support.rblserver import ZONE, RblProcess, ip_name

pytestmark = pytest.mark.integration

LISTINGS = [
    ("192.0.2.10", "complaints"),
    ("192.0.2.11", "manual"),
    ("198.51.100.0/24", "manual"),
    ("203.0.112.0/22", "imported"),
    ("203.0.113.128/29", "ad-no-consent"),  # smaller than an octet: exact names in a transfer
    ("10.0.0.0/8", "imported"),
    ("10.1.2.3", "complaints"),              # inside 10/8: more specific answer wins
    ("2001:db8::25", "complaints"),
    ("2001:db8:1::/48", "imported"),
    ("spam.example", "domain-complaints"),
    ("ads.example.org", "domain-ad-no-consent"),
    ("url.example.net", "url-complaints"),
]

SAMPLE = [ip_name(a) for a in (
    "192.0.2.10", "192.0.2.11", "192.0.2.12", "198.51.100.1", "198.51.100.254", "198.51.101.1",
    "203.0.112.5", "203.0.115.250", "203.0.116.1", "203.0.113.130", "203.0.113.135",
    "203.0.113.136", "10.9.9.9", "10.1.2.3", "10.1.2.4", "10.1.3.3", "127.0.0.2", "127.0.0.1",
    "2001:db8::25", "2001:db8::26", "2001:db8:1:2::3", "2001:db8:2::1", "::ffff:7f00:2",
    "::ffff:7f00:1")] + [f"{d}.dbl.{ZONE}" for d in (
    "spam.example", "www.spam.example", "a.b.spam.example", "ads.example.org", "x.ads.example.org",
    "url.example.net", "nothing.example", "example.org.nope", "test", "invalid")]


def answers(port: int, name: str, rdtype: str) -> tuple[str, list[str]]:
    q = dns.message.make_query(name, rdtype)
    r = dns.query.udp(q, LOOPBACK, port=port, timeout=3)
    if r.flags & dns.flags.TC:
        r = dns.query.tcp(q, LOOPBACK, port=port, timeout=3)
    return dns.rcode.to_text(r.rcode()), sorted(rd.to_text() for rrset in r.answer for rd in rrset)


@pytest.fixture(scope="module")
def listed() -> Iterator[tuple[Path, EmbeddedRedis, RblProcess]]:
    need_binary("redis-server")
    d = Path(tempfile.mkdtemp(prefix="sw-rbl-export-"))
    os.chmod(d, 0o755)  # rbldnsd reads its files as user rbldns
    srv = EmbeddedRedis(d / "redis")
    srv.start()
    store = ListingStore(redis.Redis.from_url(srv.url))
    for key, reason in LISTINGS:
        store.add(key, reason=reason, now=time.time(), ttl=3600)
    rbl = RblProcess(d, srv.url)
    try:
        rbl.start()
        yield d, srv, rbl
    finally:
        rbl.stop()
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


def spamwarden_cli(rbl: RblProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SPAMWARDEN_REDIS_URL=rbl.redis_url)
    return subprocess.run([sys.executable, "-m", "spamwarden", *args, "--config", str(rbl.config)],
                          env=env, capture_output=True, text=True, timeout=60, check=True)


def test_rbldnsd_serving_the_export_answers_like_spamwarden(listed) -> None:
    d, _, rbl = listed
    rbldnsd = need_binary("rbldnsd")
    out = d / "rbldnsd"
    spamwarden_cli(rbl, "export", "rbldnsd", str(out))
    os.chmod(out, 0o755)
    assert {p.name for p in out.iterdir()} >= {"ip4", "ip6", "dbl"}
    port = free_port(udp_too=True)
    pidfile = d / "rbldnsd.pid"
    subprocess.run([rbldnsd, "-q", "-a", "-b", f"{LOOPBACK}/{port}", "-w", str(out), "-p", str(pidfile),
                    f"ip.{ZONE}:ip4trie:ip4", f"ip.{ZONE}:ip6trie:ip6", f"dbl.{ZONE}:dnset:dbl"],
                   check=True, timeout=30)
    pid = None
    try:
        deadline = time.monotonic() + 10
        while pid is None and time.monotonic() < deadline:
            pid = read_pidfile(pidfile)
            time.sleep(0.05)
        assert pid is not None, "rbldnsd wrote no pidfile"
        differ = []
        for name in SAMPLE:
            for rdtype in ("A", "TXT"):
                if name == ip_name("::ffff:7f00:2") and rdtype == "TXT":
                    continue  # rbldnsd answers IPv4-mapped names from its IPv4 data: other URL
                ours, theirs = answers(rbl.port, name, rdtype), answers(port, name, rdtype)
                if ours != theirs:
                    differ.append((name, rdtype, ours, theirs))
        assert differ == []
        assert answers(port, ip_name("10.1.2.3"), "A") == ("NOERROR", ["127.0.0.2"])
    finally:
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)


def test_unbound_secondary_mirrors_the_zone_by_transfer(listed) -> None:
    d, _, rbl = listed
    need_binary("unbound")
    ub = d / "unbound"
    ub.mkdir()
    port = free_port(udp_too=True)
    zones = "".join(
        f"auth-zone:\n    name: \"{z}.{ZONE}\"\n    primary: {LOOPBACK}@{rbl.port}\n"
        f"    for-downstream: yes\n    for-upstream: no\n    fallback-enabled: no\n"
        f"    zonefile: \"{ub}/{z}.zone\"\n" for z in ("ip", "dbl"))
    (ub / "unbound.conf").write_text(
        f"server:\n    interface: {LOOPBACK}@{port}\n    port: {port}\n    do-ip6: no\n"
        f"    do-daemonize: yes\n    username: \"\"\n    chroot: \"\"\n    directory: \"{ub}\"\n"
        f"    pidfile: \"{ub}/unbound.pid\"\n    logfile: \"{ub}/unbound.log\"\n    use-syslog: no\n"
        f"    num-threads: 1\n    module-config: \"iterator\"\n    access-control: 127.0.0.0/8 allow\n"
        + zones + "remote-control:\n    control-enable: no\n")
    subprocess.run(["unbound", "-c", str(ub / "unbound.conf")], check=True, timeout=30)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if answers(port, f"2.0.0.127.ip.{ZONE}", "A")[1] and \
                        answers(port, f"test.dbl.{ZONE}", "A")[1]:
                    break
            except dns.exception.Timeout:
                pass
            time.sleep(0.2)
        differ = []
        for name in SAMPLE + [f"2.0.192.ip.{ZONE}", f"100.51.198.ip.{ZONE}", f"example.org.dbl.{ZONE}"]:
            for rdtype in ("A", "TXT", "AAAA"):
                ours, theirs = answers(rbl.port, name, rdtype), answers(port, name, rdtype)
                if ours != theirs:
                    differ.append((name, rdtype, ours, theirs))
        assert differ == [], (ub / "unbound.log").read_text()[-2000:]
    finally:
        pid = read_pidfile(ub / "unbound.pid")
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)


def test_transferred_zones_pass_named_checkzone(listed) -> None:
    d, _, rbl = listed
    checkzone = need_binary("named-checkzone")
    for z in ("ip", "dbl"):
        text = rbl.dig(f"{z}.{ZONE}", "AXFR")
        path = d / f"{z}.axfr"
        path.write_text(text)
        r = subprocess.run([checkzone, "-i", "local", f"{z}.{ZONE}", str(path)], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr


def test_rpz_export_passes_named_checkzone(listed) -> None:
    d, _, rbl = listed
    checkzone = need_binary("named-checkzone")
    path = d / "rpz.zone"
    done = spamwarden_cli(rbl, "export", "rpz", str(path))
    assert "wrote 3 domains" in done.stdout
    text = path.read_text()
    assert "spam.example CNAME ." in text and "*.spam.example CNAME ." in text
    assert "\ntest CNAME" not in text  # the test point is not a domain to block
    r = subprocess.run([checkzone, "-i", "local", f"rpz.{ZONE}", str(path)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr


def test_rpz_export_blocks_listed_domains_in_unbound(listed) -> None:
    d, _, rbl = listed
    need_binary("unbound")
    ub = d / "rpz-unbound"
    ub.mkdir()
    spamwarden_cli(rbl, "export", "rpz", str(ub / "rpz.zone"))
    port = free_port(udp_too=True)
    # No upstream at all (do-not-query-address): only the policy zone can answer.
    (ub / "unbound.conf").write_text(
        f"server:\n    interface: {LOOPBACK}@{port}\n    port: {port}\n    do-ip6: no\n"
        f"    do-daemonize: yes\n    username: \"\"\n    chroot: \"\"\n    directory: \"{ub}\"\n"
        f"    pidfile: \"{ub}/unbound.pid\"\n    logfile: \"{ub}/unbound.log\"\n    use-syslog: no\n"
        f"    num-threads: 1\n    module-config: \"respip iterator\"\n"
        f"    access-control: 127.0.0.0/8 allow\n    do-not-query-address: 0.0.0.0/0\n"
        f"    do-not-query-address: ::/0\n    do-not-query-localhost: yes\n"
        f"rpz:\n    name: \"rpz.{ZONE}\"\n    zonefile: \"{ub}/rpz.zone\"\n"
        "remote-control:\n    control-enable: no\n")
    subprocess.run(["unbound", "-c", str(ub / "unbound.conf")], check=True, timeout=30)
    try:
        for name in ("spam.example", "www.spam.example", "x.ads.example.org", "url.example.net"):
            assert answers(port, name, "A")[0] == "NXDOMAIN", name
        assert answers(port, "example.org", "A")[0] == "SERVFAIL"  # not listed: no policy, no upstream
    finally:
        pid = read_pidfile(ub / "unbound.pid")
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
