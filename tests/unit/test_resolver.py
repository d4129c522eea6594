"""The resolver keeps "no" and "failed" apart, whatever the server does."""

from __future__ import annotations

import socket
import threading
from typing import Callable, Iterator

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
                except (socket.timeout, OSError):
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
