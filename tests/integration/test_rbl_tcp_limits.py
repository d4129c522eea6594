"""TCP bounds of the DNS server (RFC 7766 §6.2.3): connection cap and read deadlines."""

from __future__ import annotations

import asyncio
import struct

import dns.message
import pytest

from spamwarden.rbl.responder import DnsblResponder, ZoneSettings
from spamwarden.rbl.server import RblServer, ServerLimits
from spamwarden.rbl.zone import DnsblZone

pytestmark = pytest.mark.integration

QUERY = dns.message.make_query("2.0.0.127.ip.bl.example.net", "A").to_wire()
FRAME = struct.pack("!H", len(QUERY)) + QUERY


async def _serve(limits: ServerLimits) -> RblServer:
    responder = DnsblResponder(DnsblZone(), ZoneSettings(apex="bl.example.net", lookup_url="u/"))
    server = RblServer(responder, [("127.0.0.1", 0)], limits=limits)
    await server.start()
    return server


async def _ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(FRAME)
    await writer.drain()
    size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 3))[0]
    return await asyncio.wait_for(reader.readexactly(size), 3)


def test_connection_cap_closes_extra_connections() -> None:
    async def main() -> None:
        server = await _serve(ServerLimits(tcp_connections=2))
        host, port = server.addresses[0]
        try:
            conns = [await asyncio.open_connection(host, port) for _ in range(2)]
            for r, w in conns:
                assert (await _ask(r, w))[3] & 0xF == 0
            r3, w3 = await asyncio.open_connection(host, port)
            assert await asyncio.wait_for(r3.read(), 3) == b""  # closed at once
            assert server.stats.tcp_refused == 1
            w3.close()
            for _r, w in conns:
                w.close()
            await asyncio.sleep(0.1)
            r4, w4 = await asyncio.open_connection(host, port)  # room again
            assert (await _ask(r4, w4))[3] & 0xF == 0
            w4.close()
        finally:
            await server.stop()

    asyncio.run(main())


def test_idle_and_slow_connections_are_closed() -> None:
    async def main() -> None:
        server = await _serve(ServerLimits(tcp_idle=0.3, tcp_read=0.3))
        host, port = server.addresses[0]
        try:
            r, w = await asyncio.open_connection(host, port)
            assert (await _ask(r, w))[3] & 0xF == 0
            # idle: closed after tcp_idle (0.3 s); the 3 s wait is only the test's deadline
            assert await asyncio.wait_for(r.read(), 3) == b""
            w.close()
            r, w = await asyncio.open_connection(host, port)
            w.write(FRAME[:7])  # a length, then only part of the message
            await w.drain()
            assert await asyncio.wait_for(r.read(), 3) == b""
            w.close()
        finally:
            await server.stop()

    asyncio.run(main())


def test_idle_connections_are_closed_sooner_when_the_server_is_busy() -> None:
    """A client holding every slot and querying rarely cannot keep TCP closed to others:
    past half the cap, idle connections get tcp_idle_busy instead of tcp_idle."""
    async def main() -> None:
        server = await _serve(ServerLimits(tcp_connections=4, tcp_idle=30.0, tcp_idle_busy=0.3))
        host, port = server.addresses[0]
        try:
            hog = [await asyncio.open_connection(host, port) for _ in range(4)]
            for r, w in hog:
                assert (await _ask(r, w))[3] & 0xF == 0
            # all four idle: closed after the busy idle time (0.3 s), long before tcp_idle
            for r, _w in hog:
                assert await asyncio.wait_for(r.read(), 3) == b""
            r, w = await asyncio.open_connection(host, port)
            assert (await _ask(r, w))[3] & 0xF == 0
            w.close()
            for _r, hw in hog:
                hw.close()
        finally:
            await server.stop()

    asyncio.run(main())


def test_a_quiet_server_keeps_the_full_idle_time() -> None:
    async def main() -> None:
        server = await _serve(ServerLimits(tcp_connections=10, tcp_idle=30.0, tcp_idle_busy=0.2))
        host, port = server.addresses[0]
        try:
            r, w = await asyncio.open_connection(host, port)
            assert (await _ask(r, w))[3] & 0xF == 0
            await asyncio.sleep(1.0)  # five busy-idle periods: still open on a quiet server
            assert (await _ask(r, w))[3] & 0xF == 0
            w.close()
        finally:
            await server.stop()

    asyncio.run(main())
