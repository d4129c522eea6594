"""The server's UDP loop with and without the C answer path: same bytes on real sockets."""

from __future__ import annotations

import asyncio
import socket

import dns.message
import pytest

from spamwarden.rbl.responder import DnsblResponder, ZoneSettings
from spamwarden.rbl.server import RblServer
from spamwarden.rbl.zone import DnsblZone

pytestmark = pytest.mark.integration

pytest.importorskip("spamwarden.rbl._native",
                    reason="the C extension is not built (python setup.py build_ext --inplace)")


def _ask_all(port: int, queries: list[bytes]) -> list[bytes]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    out = []
    try:
        for q in queries:  # one at a time: answers in order
            sock.sendto(q, ("127.0.0.1", port))
            out.append(sock.recv(4096))
    finally:
        sock.close()
    return out


def test_native_and_python_loops_answer_alike() -> None:
    zone = DnsblZone()
    zone.bulk_load([(f"192.0.2.{i}", "ip", "complaints", 2e9) for i in range(0, 256, 2)]
                   + [("203.0.113.0/24", "cidr", "manual", 2e9), ("spam.example", "domain",
                                                                   "domain-complaints", 2e9)])
    names = [f"{i}.2.0.192.ip.bl.example.net" for i in range(0, 256, 7)]
    names += ["9.113.0.203.ip.bl.example.net", "www.spam.example.dbl.bl.example.net",
              "2.0.0.127.ip.bl.example.net", "bl.example.net"]
    queries = [dns.message.make_query(n, t, id=i).to_wire()
               for i, (n, t) in enumerate((n, t) for n in names for t in ("A", "TXT", "SOA"))]

    async def run(native: bool) -> tuple[list[bytes], RblServer]:
        responder = DnsblResponder(zone, ZoneSettings(apex="bl.example.net", lookup_url="u/"))
        server = RblServer(responder, [("127.0.0.1", 0)], native=native)
        await server.start()
        try:
            port = server.addresses[0][1]
            answers = await asyncio.get_running_loop().run_in_executor(None, _ask_all, port, queries)
        finally:
            await server.stop()
        return answers, server

    c_answers, c_server = asyncio.run(run(True))
    py_answers, py_server = asyncio.run(run(False))
    assert c_server.native is not None and py_server.native is None
    assert c_answers == py_answers
    assert c_server.stats.udp == py_server.stats.udp


def test_a_failing_native_path_falls_back_to_python() -> None:
    class Broken:
        @staticmethod
        def serve(*_args: object) -> None:
            raise TypeError("arrays of another layout")

    async def main() -> None:
        zone = DnsblZone()
        responder = DnsblResponder(zone, ZoneSettings(apex="bl.example.net", lookup_url="u/"))
        server = RblServer(responder, [("127.0.0.1", 0)])
        server.native = Broken()
        await server.start()
        try:
            q = dns.message.make_query("2.0.0.127.ip.bl.example.net", "A", id=7).to_wire()
            [answer] = await asyncio.get_running_loop().run_in_executor(
                None, _ask_all, server.addresses[0][1], [q])
            assert answer[3] & 0xF == 0 and server.native is None
        finally:
            await server.stop()

    asyncio.run(main())
