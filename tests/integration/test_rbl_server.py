"""`spamwarden rbl` against real clients (dig, dnspython) with listings written by the real store."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import struct
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
import redis

from spamwarden.redisconn import EmbeddedRedis
from spamwarden.reputation.store import ListingStore
from tests.conftest import need_binary
from tests.support.net import LOOPBACK
from tests.support.rblserver import ZONE, RblProcess, ip_name

pytestmark = pytest.mark.integration

LONG_URL = "https://bl.example.net/" + "lookup/" * 70  # TXT > 512 bytes: truncation over UDP


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[EmbeddedRedis, ListingStore, RblProcess]]:
    """Redis with a few listings and one server following it (shared by the read-only tests)."""
    need_binary("redis-server")
    need_binary("dig")
    d = Path(tempfile.mkdtemp(prefix="sw-rbl-"))
    srv = EmbeddedRedis(d / "redis")
    srv.start()
    store = ListingStore(redis.Redis.from_url(srv.url))
    now = time.time()
    store.add("192.0.2.10", reason="complaints", now=now, ttl=3600)
    store.add("198.51.100.0/24", reason="manual", now=now, ttl=3600)
    store.add("2001:db8::25", reason="complaints", now=now, ttl=3600)
    store.add("2001:db8:1::/48", reason="imported", now=now, ttl=3600)
    store.add("spam.example", reason="domain-complaints", now=now, ttl=3600)
    store.add("ads.example.org", reason="domain-ad-no-consent", now=now, ttl=3600)
    store.add("huge.example", reason="url-complaints", now=now, ttl=3600)
    rbl = RblProcess(d, srv.url)
    try:
        rbl.start()
        yield srv, store, rbl
    finally:
        rbl.stop()
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


def a_records(msg: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in msg.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset)


def soa_authority(msg: dns.message.Message) -> str:
    [rrset] = msg.authority
    assert rrset.rdtype == dns.rdatatype.SOA
    return rrset.name.to_text()


# -- listed / not listed, with dig ---------------------------------------------------------------


def test_listed_ipv4_answers_code_and_txt(world) -> None:
    _, _, rbl = world
    assert rbl.dig_short(ip_name("192.0.2.10")) == ["127.0.0.2"]
    [txt] = rbl.dig_short(ip_name("192.0.2.10"), "TXT")
    assert "reported as spam" in txt and "https://bl.example.net/lookup/192.0.2.10" in txt


def test_unlisted_ipv4_is_nxdomain_with_soa(world) -> None:
    _, _, rbl = world
    out = rbl.dig(ip_name("192.0.2.11"), "A")
    assert "status: NXDOMAIN" in out
    # dig's AUTHORITY SECTION: the zone's SOA with the negative-caching TTL
    assert re.search(rf"(?m)^ip\.{re.escape(ZONE)}\.\s+60\s+IN\s+SOA\s", out), out
    msg = rbl.query(ip_name("192.0.2.11"))
    assert msg.rcode() == dns.rcode.NXDOMAIN
    assert soa_authority(msg) == f"ip.{ZONE}."
    assert msg.authority[0].ttl == 60  # RFC 2308 §3: min(SOA TTL, SOA minimum)
    assert msg.flags & dns.flags.AA


def test_cidr_lists_every_address_inside(world) -> None:
    _, _, rbl = world
    for host in ("198.51.100.0", "198.51.100.77", "198.51.100.255"):
        assert rbl.dig_short(ip_name(host)) == ["127.0.0.3"], host
    assert rbl.query(ip_name("198.51.101.1")).rcode() == dns.rcode.NXDOMAIN
    [txt] = rbl.dig_short(ip_name("198.51.100.77"), "TXT")
    assert "198.51.100.0%2F24" in txt


def test_ipv6_address_and_block(world) -> None:
    _, _, rbl = world
    assert a_records(rbl.query(ip_name("2001:db8::25"))) == ["127.0.0.2"]
    assert a_records(rbl.query(ip_name("2001:db8:1:ffff::1"))) == ["127.0.0.4"]
    assert rbl.query(ip_name("2001:db8::26")).rcode() == dns.rcode.NXDOMAIN


def test_rfc5782_test_points(world) -> None:
    _, _, rbl = world
    assert rbl.dig_short(f"2.0.0.127.ip.{ZONE}") == ["127.0.0.2"]
    assert rbl.dig_short(f"2.0.0.127.ip.{ZONE}", "TXT")
    assert "status: NXDOMAIN" in rbl.dig(f"1.0.0.127.ip.{ZONE}", "A")
    assert a_records(rbl.query(ip_name("::ffff:7f00:2"))) == ["127.0.0.2"]
    assert rbl.query(ip_name("::ffff:7f00:1")).rcode() == dns.rcode.NXDOMAIN
    assert rbl.dig_short(f"test.dbl.{ZONE}") == ["127.0.0.2"]
    assert rbl.dig_short(f"TEST.dbl.{ZONE}") == ["127.0.0.2"]
    assert "status: NXDOMAIN" in rbl.dig(f"invalid.dbl.{ZONE}", "A")


def test_domain_and_its_subdomains_are_listed(world) -> None:
    _, _, rbl = world
    assert rbl.dig_short(f"spam.example.dbl.{ZONE}") == ["127.0.1.2"]
    assert rbl.dig_short(f"www.mail.spam.example.dbl.{ZONE}") == ["127.0.1.2"]
    assert rbl.dig_short(f"ads.example.org.dbl.{ZONE}") == ["127.0.1.3"]
    assert rbl.query(f"example.org.dbl.{ZONE}").rcode() == dns.rcode.NOERROR  # an ENT
    assert rbl.query(f"other.example.org.dbl.{ZONE}").rcode() == dns.rcode.NXDOMAIN
    assert rbl.query(f"notspam.example.dbl.{ZONE}").rcode() == dns.rcode.NXDOMAIN


# -- DNS rules ----------------------------------------------------------------------------------


def test_soa_and_ns_at_each_apex(world) -> None:
    _, _, rbl = world
    for apex in (ZONE, f"ip.{ZONE}", f"dbl.{ZONE}"):
        soa = rbl.query(apex, "SOA")
        assert soa.rcode() == dns.rcode.NOERROR and soa.flags & dns.flags.AA
        [rrset] = soa.answer
        assert rrset.rdtype == dns.rdatatype.SOA and rrset[0].mname.to_text() == f"ns1.{ZONE}."
        ns = rbl.query(apex, "NS")
        assert [rd.to_text() for rd in ns.answer[0]] == [f"ns1.{ZONE}."]
    assert rbl.dig_short(f"ns1.{ZONE}") == ["127.0.0.1"]


def test_soa_serial_follows_the_listing_serial(world) -> None:
    srv, _, rbl = world
    serial = int(redis.Redis.from_url(srv.url).get("sw:{sw}:listing-serial"))
    assert rbl.query(ZONE, "SOA").answer[0][0].serial == serial


def test_nodata_for_other_types_at_a_listed_name(world) -> None:
    _, _, rbl = world
    for rdtype in ("AAAA", "MX", "NS"):
        msg = rbl.query(ip_name("192.0.2.10"), rdtype)
        assert msg.rcode() == dns.rcode.NOERROR and not msg.answer, rdtype
        assert soa_authority(msg) == f"ip.{ZONE}."


def test_empty_non_terminals_are_nodata_for_qname_minimisation(world) -> None:
    _, _, rbl = world
    for name in (f"192.ip.{ZONE}", f"2.0.192.ip.{ZONE}", f"100.51.198.ip.{ZONE}",
                 f"example.dbl.{ZONE}", f"8.b.d.0.1.0.0.2.ip.{ZONE}"):
        for rdtype in ("A", "NS"):
            msg = rbl.query(name, rdtype)
            assert msg.rcode() == dns.rcode.NOERROR and not msg.answer, (name, rdtype)
    assert rbl.query(f"3.0.192.ip.{ZONE}").rcode() == dns.rcode.NXDOMAIN
    # a resolver minimising the QNAME walks down label by label and still gets the answer
    name = ip_name("192.0.2.10")
    labels = name.split(".")
    for i in range(len(labels) - 4, 0, -1):
        assert rbl.query(".".join(labels[i:]), "A").rcode() == dns.rcode.NOERROR
    assert a_records(rbl.query(name)) == ["127.0.0.2"]


def test_refused_outside_the_zone(world) -> None:
    _, _, rbl = world
    for name in ("example.com", "net", "example.net"):
        msg = rbl.query(name)
        assert msg.rcode() == dns.rcode.REFUSED and not msg.flags & dns.flags.AA
    assert "status: REFUSED" in rbl.dig("www.example.com", "A")


def test_0x20_mixed_case_is_echoed(world) -> None:
    _, _, rbl = world
    name = "10.2.0.192.Ip.bL.ExAmPlE.NeT."
    q = dns.message.make_query(name, "A")
    wire = q.to_wire()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(wire, (LOOPBACK, rbl.port))
    data = s.recv(4096)
    s.close()
    assert name.encode() in b".".join(data[12:].split(b"\x00")[0].split(b"\x02")) or \
        data[12:12 + len(wire) - 16] == wire[12:12 + len(wire) - 16]
    msg = dns.message.from_wire(data)
    assert msg.question[0].name.to_text() == name
    assert a_records(msg) == ["127.0.0.2"]


def test_edns_payload_and_opt_echo(world) -> None:
    _, _, rbl = world
    msg = rbl.query(ip_name("192.0.2.10"), use_edns=0, payload=4096)
    assert msg.edns == 0 and msg.payload == 1232
    msg = rbl.query(ip_name("192.0.2.10"), use_edns=0, want_dnssec=True)
    assert msg.ednsflags & dns.flags.DO
    assert rbl.query(ip_name("192.0.2.10")).edns == -1  # no OPT without one in the query
    bad = rbl.query(ip_name("192.0.2.10"), use_edns=1)
    assert bad.rcode() == dns.rcode.BADVERS


def test_truncation_over_udp_then_tcp_retry(tmp_path) -> None:
    need_binary("redis-server")
    srv = EmbeddedRedis(tmp_path / "redis")
    srv.start()
    rbl = RblProcess(tmp_path, srv.url, lookup_url=f'"{LONG_URL}"')
    try:
        ListingStore(redis.Redis.from_url(srv.url)).add(
            "203.0.113.9", reason="complaints", now=time.time(), ttl=3600)
        rbl.start()
        name = ip_name("203.0.113.9")
        udp = rbl.query(name, "TXT")
        assert udp.flags & dns.flags.TC and not udp.answer
        big = rbl.query(name, "TXT", use_edns=0, payload=1232)
        assert not big.flags & dns.flags.TC
        full = rbl.query(name, "TXT", tcp=True)
        [rrset] = full.answer
        strings = rrset[0].strings
        assert len(strings) >= 2 and all(len(s) <= 255 for s in strings)
        assert LONG_URL.encode() in b"".join(strings)
        out = rbl.dig("+noedns", "+ignore", name, "TXT")
        assert "flags: qr aa" in out and " tc" in out.split("flags:")[1].split(";")[0]
        out = rbl.dig("+noedns", name, "TXT")  # dig retries over TCP by itself
        assert "Truncated, retrying in TCP mode" in out and "ANSWER: 1" in out
    finally:
        rbl.stop()
        srv.stop()


def _tcp_exchange(port: int, messages: list[bytes], *, timeout: float = 3.0) -> list[bytes]:
    s = socket.create_connection((LOOPBACK, port), timeout=timeout)
    try:
        s.sendall(b"".join(struct.pack("!H", len(m)) + m for m in messages))
        out = []
        buf = b""
        while len(out) < len(messages):
            chunk = s.recv(65535)
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                n = struct.unpack("!H", buf[:2])[0]
                out.append(buf[2:2 + n])
                buf = buf[2 + n:]
        return out
    finally:
        s.close()


def test_tcp_several_queries_per_connection(world) -> None:
    _, _, rbl = world
    names = [ip_name("192.0.2.10"), f"spam.example.dbl.{ZONE}", ip_name("192.0.2.99")]
    queries = [dns.message.make_query(n, "A") for n in names]
    replies = [dns.message.from_wire(r) for r in _tcp_exchange(rbl.port, [q.to_wire() for q in queries])]
    assert [r.id for r in replies] == [q.id for q in queries]
    assert [r.rcode() for r in replies] == [0, 0, dns.rcode.NXDOMAIN]


def test_formerr_notimp_and_garbage(world) -> None:
    _, _, rbl = world
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        # opcode NOTIFY (4): NOTIMP
        q = dns.message.make_query(ZONE, "SOA")
        q.set_opcode(dns.opcode.NOTIFY)
        s.sendto(q.to_wire(), (LOOPBACK, rbl.port))
        assert dns.message.from_wire(s.recv(4096)).rcode() == dns.rcode.NOTIMP
        # two questions: FORMERR, id kept
        wire = bytearray(dns.message.make_query(ZONE, "SOA").to_wire())
        wire[4:6] = b"\x00\x02"
        s.sendto(bytes(wire), (LOOPBACK, rbl.port))
        reply = s.recv(4096)
        assert reply[:2] == wire[:2] and reply[3] & 0xF == dns.rcode.FORMERR
        # truncated question: FORMERR
        s.sendto(bytes(wire[:20]).replace(b"\x00\x02", b"\x00\x01", 1), (LOOPBACK, rbl.port))
        assert s.recv(4096)[3] & 0xF == dns.rcode.FORMERR
        # garbage shorter than a header and a response (QR=1): dropped, server still fine
        s.sendto(b"\x01\x02\x03", (LOOPBACK, rbl.port))
        s.sendto(b"\x00\x01\x80\x00" + b"\x00" * 8, (LOOPBACK, rbl.port))
        s.sendto(b"\xff" * 3000, (LOOPBACK, rbl.port))
    finally:
        s.close()
    assert _tcp_exchange(rbl.port, [b"\x00"]) == []  # garbage over TCP: connection closed
    assert rbl.dig_short(f"2.0.0.127.ip.{ZONE}") == ["127.0.0.2"]


# -- zone transfer ------------------------------------------------------------------------------


def _records(dig_output: str) -> set[str]:
    return {" ".join(ln.split()) for ln in dig_output.splitlines() if ln and not ln.startswith(";")}


def test_axfr_to_allowed_address(world) -> None:
    _, _, rbl = world
    records = _records(rbl.dig(f"ip.{ZONE}", "AXFR"))
    assert sum(" SOA " in r for r in records) == 1  # first and last SOA are the same record
    assert "10.2.0.192.ip.bl.example.net. 300 IN A 127.0.0.2" in records
    assert "*.100.51.198.ip.bl.example.net. 300 IN A 127.0.0.3" in records
    assert "2.0.0.127.ip.bl.example.net. 300 IN A 127.0.0.2" in records
    records = _records(rbl.dig(f"dbl.{ZONE}", "AXFR"))
    assert "spam.example.dbl.bl.example.net. 300 IN A 127.0.1.2" in records
    assert "*.spam.example.dbl.bl.example.net. 300 IN A 127.0.1.2" in records
    # example.org exists (above ads.example.org) but is not listed: no records of its own
    assert not any(r.startswith("example.org.") for r in records)
    records = _records(rbl.dig(ZONE, "AXFR"))
    assert f"ip.{ZONE}. 300 IN NS ns1.{ZONE}." in records


def test_axfr_refused_to_other_addresses_and_over_udp(world) -> None:
    _, _, rbl = world
    out = rbl.dig("-b", "127.0.0.2", f"ip.{ZONE}", "AXFR")
    assert "Transfer failed" in out and "\tSOA\t" not in out
    q = dns.message.make_query(f"ip.{ZONE}", "AXFR")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(q.to_wire(), (LOOPBACK, rbl.port))
    assert dns.message.from_wire(s.recv(4096)).rcode() == dns.rcode.REFUSED
    s.close()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.2", 0))
    s.settimeout(3)
    s.connect((LOOPBACK, rbl.port))
    wire = q.to_wire()
    s.sendall(struct.pack("!H", len(wire)) + wire)
    n = struct.unpack("!H", s.recv(2))[0]
    reply = dns.message.from_wire(s.recv(n))
    s.close()
    assert reply.rcode() == dns.rcode.REFUSED


# -- following the store --------------------------------------------------------------------------


def _wait(check, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_listing_and_delisting_reach_dns_within_a_second(world) -> None:
    _, store, rbl = world
    name = ip_name("192.0.2.200")
    assert rbl.query(name).rcode() == dns.rcode.NXDOMAIN
    store.add("192.0.2.200", reason="ad-no-consent", now=time.time(), ttl=3600)
    assert _wait(lambda: rbl.dig_short(name) == ["127.0.0.5"], timeout=1.0)
    store.delist("192.0.2.200", now=time.time())
    assert _wait(lambda: rbl.query(name).rcode() == dns.rcode.NXDOMAIN, timeout=1.0)
    store.add("new.example", reason="domain-complaints", now=time.time(), ttl=3600)
    assert _wait(lambda: rbl.dig_short(f"www.new.example.dbl.{ZONE}") == ["127.0.1.2"], timeout=1.0)


def test_expiry_is_exact_at_answer_time(world) -> None:
    _, store, rbl = world
    name = ip_name("192.0.2.201")
    store.add("192.0.2.201", reason="complaints", now=time.time(), ttl=1.5)
    assert _wait(lambda: a_records(rbl.query(name)) == ["127.0.0.2"], timeout=1.0)
    # nobody writes an "expired" change: the server stops answering at expires_at anyway
    assert _wait(lambda: rbl.query(name).rcode() == dns.rcode.NXDOMAIN, timeout=3.0)


def test_redis_restart_keeps_answering_and_catches_up(tmp_path) -> None:
    need_binary("redis-server")
    srv = EmbeddedRedis(tmp_path / "redis")
    srv.start()
    store = ListingStore(redis.Redis.from_url(srv.url))
    store.add("192.0.2.50", reason="complaints", now=time.time(), ttl=3600)
    rbl = RblProcess(tmp_path, srv.url)
    try:
        rbl.start()
        assert rbl.dig_short(ip_name("192.0.2.50")) == ["127.0.0.2"]
        srv.stop()
        time.sleep(1.0)
        # Redis is gone: answers still come from the last index
        assert rbl.dig_short(ip_name("192.0.2.50")) == ["127.0.0.2"]
        assert rbl.query(ip_name("192.0.2.51")).rcode() == dns.rcode.NXDOMAIN
        srv.start()
        store = ListingStore(redis.Redis.from_url(srv.url))
        store.add("192.0.2.51", reason="manual", now=time.time(), ttl=3600)
        store.delist("192.0.2.50", now=time.time())
        assert _wait(lambda: rbl.dig_short(ip_name("192.0.2.51")) == ["127.0.0.3"], timeout=10.0)
        assert _wait(lambda: rbl.query(ip_name("192.0.2.50")).rcode() == dns.rcode.NXDOMAIN,
                     timeout=2.0)
        log = rbl.log.read_text()
        assert "rbl_redis_unavailable" in log and "rbl_redis_back" in log
    finally:
        rbl.stop()
        srv.stop()


def test_trimmed_stream_leads_to_a_full_reload(tmp_path) -> None:
    need_binary("redis-server")
    srv = EmbeddedRedis(tmp_path / "redis")
    srv.start()
    client = redis.Redis.from_url(srv.url)
    store = ListingStore(client)
    store.add("192.0.2.60", reason="complaints", now=time.time(), ttl=3600)
    rbl = RblProcess(tmp_path, srv.url)
    try:
        rbl.start()
        assert rbl.proc is not None
        rbl.proc.send_signal(signal.SIGSTOP)  # the server falls behind...
        try:
            store.add("192.0.2.61", reason="complaints", now=time.time(), ttl=3600)
            store.add("192.0.2.62", reason="manual", now=time.time(), ttl=3600)
            client.xtrim("sw:{sw}:listing-changes", maxlen=0)  # ...and the changes it missed are gone
        finally:
            rbl.proc.send_signal(signal.SIGCONT)
        store.add("192.0.2.63", reason="complaints", now=time.time(), ttl=3600)
        assert _wait(lambda: rbl.dig_short(ip_name("192.0.2.63")) == ["127.0.0.2"], timeout=10.0)
        assert rbl.dig_short(ip_name("192.0.2.61")) == ["127.0.0.2"]
        assert rbl.dig_short(ip_name("192.0.2.62")) == ["127.0.0.3"]
        log = rbl.log.read_text()
        assert "rbl_changes_missing" in log and log.count("rbl_index_loaded") == 2
    finally:
        rbl.stop()
        srv.stop()


def test_sighup_reloads_the_whole_index(world) -> None:
    srv, _, rbl = world
    assert rbl.proc is not None
    before = rbl.log.read_text().count("rbl_index_loaded")
    # a listing written behind the change stream's back appears only with a full reload
    redis.Redis.from_url(srv.url).hset(
        "sw:{sw}:listings", "192.0.2.222",
        '{"key":"192.0.2.222","kind":"ip","reason":"manual","listed_at":1,"expires_at":4e9}')
    assert rbl.query(ip_name("192.0.2.222")).rcode() == dns.rcode.NXDOMAIN
    rbl.proc.send_signal(signal.SIGHUP)
    assert _wait(lambda: rbl.log.read_text().count("rbl_index_loaded") > before, timeout=5.0)
    assert rbl.dig_short(ip_name("192.0.2.222")) == ["127.0.0.3"]
