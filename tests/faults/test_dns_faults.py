"""`spamwarden rbl` under hostile traffic: valid queries mixed into a flood of garbage packets
keep being answered correctly; slow or idle TCP clients are cut off at the read deadlines; a
flood of TCP connections past the cap neither stops UDP service nor keeps TCP closed for good.

The server is the real process with listings in a real Redis.  Its TCP bounds are the
defaults of spamwarden.rbl.server.ServerLimits, read here so the test follows the code.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from dataclasses import dataclass

import dns.message
import dns.query
import dns.rcode
import pytest
import redis

from spamwarden.rbl.server import ServerLimits
from spamwarden.reputation.store import ListingStore
from tests.support.net import free_port

from .conftest import scaled
from .mutators import DNS_MUTATIONS, mutate

pytestmark = [pytest.mark.faults, pytest.mark.integration]

APEX = "bl.faults.test"
LIMITS = ServerLimits()
LISTED_IP = "192.0.2.99"
LISTED_DOMAIN = "spam-shop.example"

#: (query name, type) -> what a correct answer is: an A address, or "NXDOMAIN"
EXPECTED = {
    (f"2.0.0.127.ip.{APEX}", "A"): "127.0.0.2",          # RFC 5782 test point
    (f"1.0.0.127.ip.{APEX}", "A"): "NXDOMAIN",
    (f"99.2.0.192.ip.{APEX}", "A"): "127.0.0.2",          # listed: complaints
    (f"98.2.0.192.ip.{APEX}", "A"): "NXDOMAIN",
    (f"{LISTED_DOMAIN}.dbl.{APEX}", "A"): "127.0.1.2",     # listed: domain-complaints
    (f"www.{LISTED_DOMAIN}.dbl.{APEX}", "A"): "127.0.1.2",
    (f"clean.example.dbl.{APEX}", "A"): "NXDOMAIN",
}


@dataclass
class RblUnderTest:
    port: int
    process: object

    def ask(self, qname: str, rtype: str = "A", *, tcp: bool = False, timeout: float = 2.0,
            source: str = "127.0.0.1") -> dns.message.Message:
        q = dns.message.make_query(qname, rtype)
        if tcp:
            return dns.query.tcp(q, "127.0.0.1", port=self.port, timeout=timeout, source=source)
        return dns.query.udp(q, "127.0.0.1", port=self.port, timeout=timeout, source=source)


def answer_text(msg: dns.message.Message) -> str:
    if msg.rcode() == dns.rcode.NXDOMAIN:
        return "NXDOMAIN"
    if msg.rcode() != dns.rcode.NOERROR:
        return dns.rcode.to_text(msg.rcode())
    for rrset in msg.answer:
        for rd in rrset:
            return rd.to_text()
    return "NODATA"


def start_rbl(spamwarden_service, redis_url: str, *, transfer_allow: list[str]) -> RblUnderTest:  # type: ignore[no-untyped-def]
    """Listings in Redis first, then `spamwarden rbl`; returns once it answers from them."""
    now = time.time()
    store = ListingStore(redis.Redis.from_url(redis_url))
    store.add(LISTED_IP, reason="complaints", now=now, ttl=86400)
    store.add(LISTED_DOMAIN, reason="domain-complaints", now=now, ttl=86400)
    store.redis.close()
    port = free_port(udp_too=True)
    proc = spamwarden_service("rbl", {
        "redis": {"url": redis_url},
        "rbl": {"zone": APEX, "listen": [f"127.0.0.1:{port}"], "transfer_allow": transfer_allow,
                "lookup_url": "https://bl.faults.test/lookup/"},
    }, port=port)
    rbl = RblUnderTest(port, proc)
    deadline = time.monotonic() + 20
    while True:
        try:
            if answer_text(rbl.ask(f"99.2.0.192.ip.{APEX}", timeout=1)) == "127.0.0.2":
                return rbl
        except (dns.exception.Timeout, OSError):
            pass
        if time.monotonic() > deadline:
            pytest.fail("spamwarden rbl did not answer from its listings in 20s:\n"
                        + proc.log()[-3000:])  # type: ignore[attr-defined]
        time.sleep(0.1)


@pytest.fixture
def rbl(spamwarden_service, restartable_redis) -> RblUnderTest:  # type: ignore[no-untyped-def]
    return start_rbl(spamwarden_service, restartable_redis.url, transfer_allow=["127.0.0.2"])


def _valid_wire() -> list[bytes]:
    return [dns.message.make_query(name, rtype).to_wire() for name, rtype in EXPECTED]


def garbage_sender(port: int, count: int, stop: threading.Event, sent: list[int]) -> None:
    """Send `count` UDP packets: random bytes and mutated valid queries, as fast as the
    socket takes them, never reading the answers (the kernel drops what overflows)."""
    seeds = _valid_wire()
    rnd = random.Random(3)
    pool = []  # built first, so the send loop runs at socket speed
    for i in range(min(count, 5000)):
        if i % 3 == 0:
            pool.append(rnd.randbytes(rnd.randrange(0, 300)))
        else:
            plan = [(rnd.randrange(100), rnd.randrange(len(DNS_MUTATIONS)),
                     rnd.randrange(2**32)) for _ in range(rnd.randint(1, 3))]
            pool.append(mutate(seeds, DNS_MUTATIONS, plan)[:4000])
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
    try:
        for s in socks:
            s.setblocking(False)
        for i in range(count):
            if stop.is_set():
                break
            data = pool[i % len(pool)]
            try:
                socks[i % 4].sendto(data, ("127.0.0.1", port))
            except (BlockingIOError, OSError):
                time.sleep(0.001)
            sent[0] = i + 1
            if i % 500 == 499:
                time.sleep(0.01)  # "high rate", not a blind overload of a shared 2-core box
    finally:
        for s in socks:
            s.close()


def tcp_garbage(port: int, count: int) -> None:
    """Framed and unframed garbage over short TCP connections."""
    rnd = random.Random(4)
    for i in range(count):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                body = rnd.randbytes(rnd.randrange(0, 200))
                if i % 2:
                    body = struct.pack("!H", len(body)) + body
                s.sendall(body)
                s.settimeout(0.05)
                try:
                    s.recv(4096)
                except (TimeoutError, OSError):
                    pass
        except OSError:
            pass


def test_valid_queries_are_answered_correctly_through_a_garbage_flood(rbl: RblUnderTest) -> None:
    n_garbage = scaled(100_000, 2_000_000)
    n_valid = scaled(400, 20_000)
    stop = threading.Event()
    sent = [0]
    flood = threading.Thread(target=garbage_sender, args=(rbl.port, n_garbage, stop, sent),
                             daemon=True)
    tcp_flood = threading.Thread(target=tcp_garbage, args=(rbl.port, scaled(100, 5000)),
                                 daemon=True)
    questions = list(EXPECTED.items())
    answered = first_try = during_flood = 0
    wrong: list[str] = []
    deadline = time.monotonic() + (120 if n_valid <= 1000 else 3600)
    flood.start()
    tcp_flood.start()
    try:
        for i in range(n_valid):
            assert time.monotonic() < deadline, f"only {answered}/{n_valid} answered in time"
            (qname, rtype), expected = questions[i % len(questions)]
            tcp = i % 10 == 9
            got = None
            for attempt in range(5):  # noqa: B007 - read after the loop; a resolver retries a lost UDP datagram
                try:
                    got = answer_text(rbl.ask(qname, rtype, tcp=tcp, timeout=1.0))
                    break
                except (dns.exception.Timeout, OSError):
                    continue
            if got is None:
                wrong.append(f"{qname}: no answer in 5 tries")
                continue
            answered += 1
            first_try += attempt == 0
            during_flood += flood.is_alive()
            if got != expected:
                wrong.append(f"{qname} {rtype}: {got}, expected {expected}")
    finally:
        flood.join(timeout=600)
        stop.set()
        tcp_flood.join(timeout=600)
    assert not wrong, wrong[:20]
    assert answered == n_valid
    assert sent[0] == n_garbage, "the flood did not run to its end"
    assert during_flood >= n_valid // 4, (
        f"only {during_flood} valid queries overlapped the flood: the test did not test it")
    assert rbl.process.running(), rbl.process.log()[-3000:]  # type: ignore[attr-defined]
    print(f"valid {n_valid} (first try {first_try}, during flood {during_flood}); "
          f"garbage UDP {sent[0]}")


def _closed_by_server(sock: socket.socket, *, send_rest: bytes = b"", interval: float = 1.0,
                      timeout: float) -> float | None:
    """Seconds until the server closed the connection, while sending `send_rest` one byte per
    `interval`; None when still open after `timeout` (the server held it too long)."""
    started = time.monotonic()
    sock.settimeout(0.2)
    pending = bytearray(send_rest)
    next_send = started
    while time.monotonic() - started < timeout:
        now = time.monotonic()
        if pending and now >= next_send:
            try:
                sock.send(bytes(pending[:1]))
            except OSError:
                return time.monotonic() - started
            del pending[:1]
            next_send = now + interval
        try:
            data = sock.recv(4096)
            if data == b"":
                return time.monotonic() - started
            if not pending:
                return None  # answered: the whole message got through
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started
    return None


def test_slow_and_idle_tcp_clients_are_cut_off_at_the_deadlines(rbl: RblUnderTest) -> None:
    query = dns.message.make_query(f"99.2.0.192.ip.{APEX}", "A").to_wire()
    framed = struct.pack("!H", len(query)) + query
    # Each kind of slow client, several at once: idle after connect, length prefix
    # trickled then idle, message trickled one byte per second (it would take ~40 s).
    kinds = {"idle": b"", "trickle_length": framed[:1], "trickle_message": framed}
    bound = {"idle": LIMITS.tcp_idle, "trickle_length": LIMITS.tcp_idle,
             "trickle_message": 1 + LIMITS.tcp_read}
    results: dict[str, list[float | None]] = {k: [] for k in kinds}
    lock = threading.Lock()

    def client(kind: str) -> None:
        with socket.create_connection(("127.0.0.1", rbl.port), timeout=5) as s:
            closed = _closed_by_server(s, send_rest=kinds[kind],
                                       timeout=bound[kind] + 10)
        with lock:
            results[kind].append(closed)

    threads = [threading.Thread(target=client, args=(k,), daemon=True)
               for k in kinds for _ in range(3)]
    for t in threads:
        t.start()
    # While they hang on, other clients get answers over TCP and UDP.
    time.sleep(1)
    assert answer_text(rbl.ask(f"99.2.0.192.ip.{APEX}", tcp=True)) == "127.0.0.2"
    assert answer_text(rbl.ask(f"99.2.0.192.ip.{APEX}")) == "127.0.0.2"
    for t in threads:
        t.join(timeout=60)
    for kind, closed in results.items():
        assert len(closed) == 3 and all(c is not None for c in closed), (
            f"{kind}: connections held past the deadline ({bound[kind]:g}s): {closed}")
        # A trickled message is cut before it completes: it needs len(framed) seconds.
        assert all(c < bound[kind] + 10 for c in closed if c is not None), closed
    assert max(c for c in results["trickle_message"] if c is not None) < len(framed) - 5


def test_connection_flood_past_the_cap(rbl: RblUnderTest) -> None:
    """Past tcp_connections, extra connections are closed at once; UDP service goes on
    throughout; once the idle deadline frees the held slots, TCP answers again."""
    extra = 60
    flood: list[socket.socket] = []
    try:
        for _ in range(LIMITS.tcp_connections + extra):
            s = socket.create_connection(("127.0.0.1", rbl.port), timeout=5)
            flood.append(s)
        started = time.monotonic()
        closed_at_once = 0
        for s in flood[LIMITS.tcp_connections:]:
            s.settimeout(3)
            try:
                if s.recv(1) == b"":
                    closed_at_once += 1
            except (TimeoutError, OSError):
                pass
        assert closed_at_once >= extra // 2, (
            f"only {closed_at_once} of {extra} connections past the cap were refused")
        # UDP keeps answering while every TCP slot is held.
        for (qname, rtype), expected in list(EXPECTED.items()) * 3:
            assert answer_text(rbl.ask(qname, rtype)) == expected
        # TCP comes back by itself once the idle deadline releases the slots.
        deadline = started + LIMITS.tcp_idle + LIMITS.tcp_read + 15
        got = None
        while time.monotonic() < deadline and got is None:
            try:
                got = answer_text(rbl.ask(f"99.2.0.192.ip.{APEX}", tcp=True, timeout=2))
            except (dns.exception.Timeout, OSError, EOFError, ConnectionError):
                time.sleep(0.5)
        assert got == "127.0.0.2", "TCP service did not come back after the flood's idle deadline"
        print(f"TCP refused during the flood; back after {time.monotonic() - started:.1f}s")
    finally:
        for s in flood:
            s.close()
    assert rbl.process.running()  # type: ignore[attr-defined]
