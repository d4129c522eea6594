"""The resolver keeps "no" and "failed" apart, whatever the server does."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import dns.message
import dns.rcode
import dns.rrset
import pytest

from spamwarden.resolver import DnsAnswer, DnsPythonResolver, Resolver, StaticResolver

Responder = Callable[[dns.message.Message], bytes | None]


@pytest.fixture
def udp_server() -> Iterator[Callable[[Responder], str]]:
    """A loopback UDP socket answering with what a responder returns (None: silence)."""
    socks: list[socket.socket] = []
    stop = threading.Event()

    def start(responder: Responder) -> str:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.1)
        socks.append(s)

        def serve() -> None:
            while not stop.is_set():
                try:
                    data, addr = s.recvfrom(4096)
                except (TimeoutError, OSError):
                    continue
                reply = responder(dns.message.from_wire(data))
                if reply is not None:
                    s.sendto(reply, addr)

        threading.Thread(target=serve, daemon=True).start()
        return f"127.0.0.1:{s.getsockname()[1]}"

    yield start
    stop.set()
    for s in socks:
        s.close()


def _answer(query: dns.message.Message, rcode: int = dns.rcode.NOERROR, txt: str | None = None) -> bytes:
    resp = dns.message.make_response(query)
    resp.set_rcode(rcode)
    if txt is not None:
        q = query.question[0]
        resp.answer.append(dns.rrset.from_text(q.name, 60, "IN", "TXT", txt))
    return resp.to_wire()


def test_txt_records_are_joined_bytes(udp_server) -> None:
    addr = udp_server(lambda q: _answer(q, txt='"v=spf1 " "-all"'))
    r = DnsPythonResolver([addr], timeout=1.0, cache=False)
    assert isinstance(r, Resolver)
    ans = r.query("example.test", "TXT")
    assert ans == DnsAnswer("ok", (b"v=spf1 -all",))


def test_nxdomain_is_a_no_not_a_failure(udp_server) -> None:
    addr = udp_server(lambda q: _answer(q, dns.rcode.NXDOMAIN))
    ans = DnsPythonResolver([addr], timeout=1.0).query("missing.test", "TXT")
    assert ans.status == "nxdomain" and not ans.failed


def test_empty_answer_is_nodata(udp_server) -> None:
    addr = udp_server(lambda q: _answer(q))
    ans = DnsPythonResolver([addr], timeout=1.0).query("a.test", "MX")
    assert ans.status == "nodata"


@pytest.mark.parametrize("rcode", [dns.rcode.SERVFAIL, dns.rcode.REFUSED])
def test_server_errors_are_failures(udp_server, rcode: int) -> None:
    addr = udp_server(lambda q: _answer(q, rcode))
    ans = DnsPythonResolver([addr], timeout=0.5).query("a.test", "TXT")
    assert ans.failed and ans.records == ()


def test_timeout_is_a_failure(udp_server) -> None:
    addr = udp_server(lambda q: None)
    ans = DnsPythonResolver([addr], timeout=0.3).query("slow.test", "A")
    assert ans.failed
    assert "timeout" in ans.reason


def test_garbage_reply_is_a_failure(udp_server) -> None:
    addr = udp_server(lambda q: b"\x00\x01garbage")
    ans = DnsPythonResolver([addr], timeout=0.3).query("a.test", "A")
    assert ans.failed


def test_impossible_name_is_a_no() -> None:
    ans = DnsPythonResolver(["127.0.0.1:9"], timeout=0.2).query("a" * 64 + ".test", "A")
    assert ans.status == "nxdomain"


def test_static_resolver_outcomes() -> None:
    r = StaticResolver({("A.test.", "txt"): [b"x"], ("err.test", "A"): "error"})
    assert r.query("a.test", "TXT") == DnsAnswer("ok", (b"x",))
    assert r.query("a.test", "A").status == "nodata"
    assert r.query("b.test", "A").status == "nxdomain"
    assert r.query("err.test", "A").failed
    assert r.queries[0] == ("a.test", "TXT")


def _counting(responder: Responder) -> tuple[Responder, list[str]]:
    seen: list[str] = []

    def answer(q: dns.message.Message) -> bytes | None:
        seen.append(q.question[0].name.to_text())
        return responder(q)

    return answer, seen


def _with_soa(query: dns.message.Message, rcode: int, ttl: int, minimum: int) -> bytes:
    resp = dns.message.make_response(query)
    resp.set_rcode(rcode)
    resp.authority.append(dns.rrset.from_text(
        "test.", ttl, "IN", "SOA", f"ns.test. admin.test. 1 3600 600 86400 {minimum}"))
    return resp.to_wire()


def test_answers_are_kept_for_their_ttl(udp_server, monkeypatch) -> None:
    responder, seen = _counting(lambda q: _answer(q, txt='"v=spf1 -all"'))
    r = DnsPythonResolver([udp_server(responder)], timeout=1.0)
    assert r.kept("kept.test", "TXT") is None  # nothing kept yet, and nothing asked
    assert seen == []
    first = r.query("Kept.Test.", "txt")
    kept = r.kept("KEPT.test.", "txt")
    assert kept is not None and kept[0] == first
    assert r.query("kept.test", "TXT") == first == DnsAnswer("ok", (b"v=spf1 -all",))
    assert len(seen) == 1  # the second question, spelt differently, was answered from memory
    # past the record's 60 s TTL the question goes to the server again
    import spamwarden.resolver as resolver_module

    later = resolver_module.time.monotonic() + 61
    monkeypatch.setattr(resolver_module.time, "monotonic", lambda: later)
    assert r.kept("kept.test", "TXT") is None  # expired
    r._resolver.cache.flush()  # dnspython's own cache would still answer on wall-clock time
    assert r.query("kept.test", "TXT") == first
    assert len(seen) == 2


def test_failures_are_never_kept(udp_server) -> None:
    replies = iter([dns.rcode.SERVFAIL])

    def flaky(q: dns.message.Message) -> bytes:
        return _answer(q, next(replies, dns.rcode.NOERROR), txt='"ok"')

    r = DnsPythonResolver([udp_server(flaky)], timeout=0.5)
    r._resolver.retry_servfail = False
    assert r.query("flaky.test", "TXT").failed
    assert r.query("flaky.test", "TXT") == DnsAnswer("ok", (b"ok",))


def test_nxdomain_is_kept_for_the_soa_minimum_only_when_there_is_one(udp_server) -> None:
    responder, seen = _counting(lambda q: _with_soa(q, dns.rcode.NXDOMAIN, 300, 30))
    r = DnsPythonResolver([udp_server(responder)], timeout=1.0)
    assert r.query("gone.test", "A").status == "nxdomain"
    assert r.query("gone.test", "A").status == "nxdomain"
    assert len(seen) == 1
    kept = r._answers[("gone.test", "A")]  # type: ignore[index]
    import time

    assert 25 < kept[0] - time.monotonic() <= 30  # min(SOA TTL, MINIMUM)

    bare, seen_bare = _counting(lambda q: _answer(q, dns.rcode.NXDOMAIN))
    r = DnsPythonResolver([udp_server(bare)], timeout=1.0)
    r.query("gone.test", "A")
    r._resolver.cache.flush()
    r.query("gone.test", "A")
    assert len(seen_bare) == 2  # no SOA: no TTL to keep it for


def test_without_cache_every_question_goes_to_the_server(udp_server) -> None:
    responder, seen = _counting(lambda q: _answer(q, txt='"x"'))
    r = DnsPythonResolver([udp_server(responder)], timeout=1.0, cache=False)
    r.query("a.test", "TXT")
    r.query("a.test", "TXT")
    assert len(seen) == 2


# -- the lean UDP path gives dnspython's answers ---------------------------------------------

def _reply(query: dns.message.Message, *, rcode: int = dns.rcode.NOERROR,
           answer: list[str] = (), authority: list[str] = (), tc: bool = False) -> bytes:
    """A reply with records in zone-file form ("name ttl IN type rdata")."""
    import dns.flags

    resp = dns.message.make_response(query)
    resp.set_rcode(rcode)
    for section, lines in ((resp.answer, answer), (resp.authority, authority)):
        for line in lines:
            owner, ttl, _, rtype, rdata = line.split(None, 4)
            section.append(dns.rrset.from_text(owner, int(ttl), "IN", rtype, rdata))
    if tc:
        resp.flags |= dns.flags.TC
    return resp.to_wire()


SOA = "example.test. 120 IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 30"
SHAPES = [
    ("txt.example.test", "TXT", dict(answer=['txt.example.test. 300 IN TXT "v=spf1 " "-all"',
                                            'txt.example.test. 200 IN TXT "second"'])),
    ("a.example.test", "A", dict(answer=["a.example.test. 60 IN A 192.0.2.1",
                                        "a.example.test. 60 IN A 192.0.2.2"])),
    ("aaaa.example.test", "AAAA", dict(answer=["aaaa.example.test. 60 IN AAAA 2001:db8::1",
                                              "aaaa.example.test. 60 IN AAAA ::ffff:192.0.2.1"])),
    ("mx.example.test", "MX", dict(answer=["mx.example.test. 60 IN MX 10 Mail.Example.test.",
                                          "mx.example.test. 60 IN MX 0 ."])),
    ("1.2.0.192.in-addr.arpa", "PTR",
     dict(answer=["1.2.0.192.in-addr.arpa. 60 IN PTR host.example.test."])),
    ("alias.example.test", "A", dict(answer=[
        "alias.example.test. 30 IN CNAME target.example.test.",
        "target.example.test. 90 IN A 192.0.2.9"])),
    ("alias.example.test", "TXT", dict(answer=[
        "alias.example.test. 30 IN CNAME target.example.test."], authority=[SOA])),
    ("gone.example.test", "TXT", dict(rcode=dns.rcode.NXDOMAIN, authority=[SOA])),
    ("gone.example.test", "TXT", dict(rcode=dns.rcode.NXDOMAIN)),
    ("empty.example.test", "MX", dict(authority=[SOA])),
    ("empty.example.test", "MX", dict()),
    ("odd.example.test", "TXT", dict(answer=[r'odd.example.test. 60 IN TXT "a\;b" "\000\255"'])),
    ("esc.example.test", "PTR", dict(answer=[r"esc.example.test. 60 IN PTR we\.ird.example.test."])),
    ("soa.example.test", "SOA", dict(answer=[SOA.replace("example.test. 120", "soa.example.test. 120")])),
]


@pytest.mark.parametrize("name,rdtype,shape", SHAPES, ids=[f"{n}-{t}-{i}" for i, (n, t, _) in
                                                           enumerate(SHAPES)])
def test_lean_udp_path_answers_like_dnspython(udp_server, name: str, rdtype: str,
                                               shape: dict[str, Any]) -> None:
    addr = udp_server(lambda q: _reply(q, **shape))
    fast = DnsPythonResolver([addr], timeout=1.0)
    slow = DnsPythonResolver([addr], timeout=1.0, fast_udp=False)
    got, ttl = fast._query(name, rdtype, None)
    want, want_ttl = slow._query(name, rdtype, None)
    assert got == want
    assert abs(ttl - want_ttl) <= 1.0


def test_lean_udp_path_leaves_truncated_and_foreign_replies_to_dnspython(udp_server) -> None:
    from spamwarden._dnswire import udp_query

    addr = udp_server(lambda q: _reply(q, answer=['t.example.test. 60 IN TXT "x"'], tc=True))
    host, port = addr.rsplit(":", 1)
    assert udp_query((host, int(port)), "t.example.test", "TXT", 1.0) is None

    def other_question(q: dns.message.Message) -> bytes:
        return _reply(dns.message.make_query("other.example.test", "TXT", id=q.id),
                      answer=['other.example.test. 60 IN TXT "x"'])

    addr = udp_server(other_question)
    host, port = addr.rsplit(":", 1)
    assert udp_query((host, int(port)), "t.example.test", "TXT", 0.5) is None
    assert udp_query((host, int(port)), "t.example.test", "HINFO", 0.5) is None  # not read here


def test_lean_udp_path_waits_past_a_stray_datagram() -> None:
    from spamwarden._dnswire import udp_query

    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(2)

    def serve() -> None:
        data, addr = server.recvfrom(4096)
        q = dns.message.from_wire(data)
        stray = dns.message.make_response(q)
        stray.id = (q.id + 1) % 65536  # another query's reply, or a spoofing attempt
        server.sendto(stray.to_wire(), addr)
        server.sendto(_reply(q, answer=['s.example.test. 60 IN TXT "real"']), addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with server:
        got = udp_query(("127.0.0.1", server.getsockname()[1]), "s.example.test", "TXT", 1.0)
        thread.join(2)
    assert got is not None and got[:2] == ("ok", (b"real",))


@pytest.mark.parametrize("rcode", [dns.rcode.SERVFAIL, dns.rcode.REFUSED])
def test_lean_udp_path_error_codes_are_failures_with_one_server(udp_server, rcode: int) -> None:
    from spamwarden._dnswire import udp_query

    addr = udp_server(lambda q: _reply(q, rcode=rcode))
    host, port = addr.rsplit(":", 1)
    got = udp_query((host, int(port)), "x.example.test", "TXT", 1.0)
    assert got is not None and got[0] == "error" and dns.rcode.to_text(rcode) in got[3]
    assert udp_query((host, int(port)), "x.example.test", "TXT", 1.0, errors_final=False) is None
