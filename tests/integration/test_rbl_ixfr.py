"""Incremental zone transfer (RFC 1995) from `spamwarden rbl` following a real Redis."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
import redis

from spamwarden.redisconn import EmbeddedRedis
from spamwarden.reputation.store import ListingStore
from tests.conftest import need_binary
from tests.support.net import LOOPBACK
from tests.support.rblserver import ZONE, RblProcess, ip_name

pytestmark = pytest.mark.integration


@pytest.fixture()
def world() -> Iterator[tuple[ListingStore, RblProcess]]:
    need_binary("redis-server")
    d = Path(tempfile.mkdtemp(prefix="sw-rbl-ixfr-"))
    srv = EmbeddedRedis(d / "redis")
    srv.start()
    store = ListingStore(redis.Redis.from_url(srv.url))
    store.add("192.0.2.10", reason="complaints", now=time.time(), ttl=3600)
    rbl = RblProcess(d, srv.url, ixfr_journal="3")
    try:
        rbl.start()
        yield store, rbl
    finally:
        rbl.stop()
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


def serial(rbl: RblProcess, zone: str = f"ip.{ZONE}") -> int:
    [rrset] = rbl.query(zone, "SOA").answer
    return int(rrset[0].serial)


def wait_serial(rbl: RblProcess, wanted: int) -> None:
    for _ in range(100):
        if serial(rbl) >= wanted:
            return
        time.sleep(0.05)
    raise AssertionError(f"serial {wanted} never seen")


def ixfr(rbl: RblProcess, since: int, zone: str = f"ip.{ZONE}", *,
         tcp: bool = True) -> list[dns.rrset.RRset]:
    """The answer records of an IXFR for ``zone`` from ``since``, in order."""
    q = dns.message.make_query(zone, "IXFR")
    soa = dns.rrset.from_text(zone + ".", 0, "IN", "SOA", f"ns1.{ZONE}. hostmaster.{ZONE}. {since} 1 1 1 1")
    q.authority.append(soa)
    if not tcp:
        r = dns.query.udp(q, LOOPBACK, port=rbl.port, timeout=3)
        assert r.rcode() == dns.rcode.NOERROR
        return list(r.answer)
    out: list[dns.rrset.RRset] = []
    for msg in dns.query.xfr(LOOPBACK, zone, rdtype=dns.rdatatype.IXFR, serial=since,
                             port=rbl.port, timeout=5, relativize=False):
        assert msg.rcode() == dns.rcode.NOERROR
        out.extend(msg.answer)
    return out


def flat(rrsets: list[dns.rrset.RRset]) -> list[str]:
    return [f"{r.name} {dns.rdatatype.to_text(r.rdtype)} {rd}" for r in rrsets for rd in r]


def test_ixfr_carries_one_change_only(world) -> None:
    store, rbl = world
    before = serial(rbl)
    store.add("192.0.2.77", reason="complaints", now=time.time(), ttl=3600)
    wait_serial(rbl, before + 1)
    lines = flat(ixfr(rbl, before))
    soa = [ln for ln in lines if " SOA " in ln]
    # new SOA, old SOA, (nothing deleted), new SOA, added records, new SOA
    assert len(soa) == 4 and f" {before} " in soa[1] and f" {before + 1} " in soa[0]
    added = [ln for ln in lines if " SOA " not in ln]
    name = ip_name("192.0.2.77") + "."
    assert sorted(ln.split(" ")[:2] for ln in added) == [[name, "A"], [name, "TXT"]]
    # a removal: the records go in the deleted part
    store.delist("192.0.2.77", now=time.time())
    wait_serial(rbl, before + 2)
    lines = flat(ixfr(rbl, before + 1))
    second_soa = [i for i, ln in enumerate(lines) if " SOA " in ln][1]
    third_soa = [i for i, ln in enumerate(lines) if " SOA " in ln][2]
    deleted = lines[second_soa + 1:third_soa]
    assert sorted(ln.split(" ")[:2] for ln in deleted) == [[name, "A"], [name, "TXT"]]
    assert third_soa == len(lines) - 2  # nothing added
    # across both changes: nothing at all (condensed, RFC 1995 §5)
    assert [ln for ln in flat(ixfr(rbl, before)) if " SOA " not in ln] == []


def test_current_serial_gets_one_soa_over_tcp_and_udp(world) -> None:
    _store, rbl = world
    now = serial(rbl)
    for tcp in (True, False):
        lines = flat(ixfr(rbl, now, tcp=tcp))
        assert len(lines) == 1 and " SOA " in lines[0] and f" {now} " in lines[0]


def test_journal_gap_falls_back_to_full_transfer(world) -> None:
    store, rbl = world
    before = serial(rbl)
    for i in range(5):  # the journal keeps 3
        store.add(f"192.0.2.{100 + i}", reason="complaints", now=time.time(), ttl=3600)
    wait_serial(rbl, before + 5)
    lines = flat(ixfr(rbl, before))
    # AXFR form: SOA, every record (the old listing too), SOA
    assert " SOA " in lines[0] and " SOA " in lines[-1]
    assert sum(" SOA " in ln for ln in lines) == 2
    assert any(ln.startswith(ip_name("192.0.2.10") + ". A") for ln in lines)
    # still within the journal: incremental
    lines = flat(ixfr(rbl, before + 3))
    assert sum(" SOA " in ln for ln in lines) == 4
    assert not any(ln.startswith(ip_name("192.0.2.10") + ".") for ln in lines)


def test_ixfr_is_refused_to_strangers_and_dbl_changes_only_move_the_ip_serial(world) -> None:
    store, rbl = world
    before = serial(rbl)
    store.add("spam.example", reason="domain-complaints", now=time.time(), ttl=3600)
    wait_serial(rbl, before + 1)
    lines = flat(ixfr(rbl, before))
    assert [ln for ln in lines if " SOA " not in ln] == []  # ip.<zone>: serial moved only
    lines = flat(ixfr(rbl, before, zone=f"dbl.{ZONE}"))
    names = sorted({ln.split(" ")[0] for ln in lines if " SOA " not in ln})
    assert names == [f"*.spam.example.dbl.{ZONE}.", f"spam.example.dbl.{ZONE}."]
    # only rbl.transfer_allow (127.0.0.1 here) may transfer, over TCP and UDP
    q = dns.message.make_query(f"ip.{ZONE}", "IXFR")
    q.authority.append(dns.rrset.from_text(f"ip.{ZONE}.", 0, "IN", "SOA",
                                           f"ns1.{ZONE}. hostmaster.{ZONE}. {before} 1 1 1 1"))
    for send in (dns.query.tcp, dns.query.udp):
        r = send(q, LOOPBACK, port=rbl.port, timeout=3, source="127.0.0.2")
        assert r.rcode() == dns.rcode.REFUSED and not r.answer
