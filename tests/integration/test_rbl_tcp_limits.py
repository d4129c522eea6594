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


async def _open_from(source: str, host: str, port: int,
                     rcvbuf: int = 0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection from a chosen loopback source address (another "client")."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((source, 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    return await asyncio.open_connection(sock=sock)


def test_one_client_holding_every_connection_cannot_lock_others_out() -> None:
    """200 connections from one address (quiet ones: idle deadlines far away) leave room for
    another address: each client gets at most tcp_per_client connections."""
    async def main() -> None:
        server = await _serve(ServerLimits(tcp_idle=30.0, tcp_idle_busy=30.0))
        host, port = server.addresses[0]
        hog: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        try:
            for _ in range(200):
                hog.append(await _open_from("127.0.0.2", host, port))
            await asyncio.sleep(0.2)
            r, w = await _open_from("127.0.0.3", host, port)
            assert (await _ask(r, w))[3] & 0xF == 0
            w.close()
            # the hog kept only its share: the rest were closed at once
            open_hog = 0
            for hr, _hw in hog:
                try:
                    data = await asyncio.wait_for(hr.read(1), 0.05)
                except TimeoutError:
                    open_hog += 1  # still open, waiting for a query
                    continue
                except ConnectionResetError:
                    continue  # closed at once
                assert data == b""
            assert open_hog == ServerLimits().tcp_per_client
            assert server.stats.tcp_refused >= 200 - open_hog
        finally:
            for _hr, hw in hog:
                hw.close()
            await server.stop()

    asyncio.run(main())


def test_per_client_cap_groups_ipv6_by_prefix() -> None:
    from spamwarden.rbl.server import client_bucket

    assert client_bucket("192.0.2.1") == client_bucket("192.0.2.1")
    assert client_bucket("192.0.2.1") != client_bucket("192.0.2.2")
    assert client_bucket("::ffff:192.0.2.1") == client_bucket("192.0.2.1")
    assert client_bucket("2001:db8:0:ff::1") == client_bucket("2001:db8:0:1::2")  # same /56
    assert client_bucket("2001:db8:0:100::1") != client_bucket("2001:db8:0:1::2")


def test_a_client_that_never_reads_does_not_pin_a_connection() -> None:
    """Answers the client never reads fill the socket buffers; the write deadline closes it."""
    async def main() -> None:
        zone = DnsblZone()
        zone.bulk_load((f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "ip", "spam-trap", 4e9)
                       for i in range(60000))
        responder = DnsblResponder(zone, ZoneSettings(apex="bl.example.net", lookup_url="u/",
                                                      transfer_allow=("127.0.0.0/8",)))
        server = RblServer(responder, [("127.0.0.1", 0)],
                           limits=ServerLimits(tcp_write=0.5, tcp_idle=30.0))
        await server.start()
        host, port = server.addresses[0]
        try:
            r, w = await _open_from("127.0.0.4", host, port, rcvbuf=4096)
            axfr = dns.message.make_query("ip.bl.example.net", "AXFR").to_wire()
            w.write(struct.pack("!H", len(axfr)) + axfr)
            await w.drain()
            # never read; the server must give up on its own (the 10 s are the test's bound)
            for _ in range(100):
                await asyncio.sleep(0.1)
                if server.tcp_active == 0:
                    break
            assert server.tcp_active == 0
            assert server.stats.tcp_write_timeouts == 1
            w.close()
        finally:
            await server.stop()

    asyncio.run(main())


def _udp_burst(source: str, host: str, port: int, count: int) -> tuple[int, int]:
    """``count`` UDP queries from ``source``; returns (full answers, truncated answers)."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.settimeout(0.5)
    try:
        for i in range(count):
            q = dns.message.make_query("2.0.0.127.ip.bl.example.net", "A", id=i)
            sock.sendto(q.to_wire(), (host, port))
        full = tc = 0
        while True:
            try:
                data = sock.recv(4096)
            except (TimeoutError, OSError):
                break
            if data[2] & 0x02:
                tc += 1
            else:
                full += 1
        return full, tc
    finally:
        sock.close()


def test_response_rate_limit_slips_and_drops_per_client_prefix() -> None:
    """Over rate_limit answers/s, a /24 gets every slip-th answer truncated (TC=1, retry
    over TCP) and the rest dropped; another /24 is not affected."""
    from spamwarden.rbl.server import RateLimit

    async def main() -> None:
        server = await _serve(ServerLimits(rate_limit=RateLimit(rate=10, slip=2)))
        host, port = server.addresses[0]
        loop = asyncio.get_running_loop()
        try:
            full, tc = await loop.run_in_executor(None, _udp_burst, "127.0.0.5", host, port, 100)
            assert 10 <= full <= 15  # the burst allowance, and what refilled meanwhile
            assert 35 <= tc <= 50  # every second limited answer
            assert server.stats.rrl_dropped >= 35 and server.stats.rrl_slipped == tc
            # another client /24 still gets full answers
            full2, tc2 = await loop.run_in_executor(None, _udp_burst, "127.0.1.5", host, port, 5)
            assert (full2, tc2) == (5, 0)
            # TCP is never limited (the address is proven)
            r, w = await _open_from("127.0.0.5", host, port)
            assert (await _ask(r, w))[3] & 0xF == 0
            w.close()
        finally:
            await server.stop()

    asyncio.run(main())


def test_response_rate_limit_is_off_by_default() -> None:
    async def main() -> None:
        server = await _serve(ServerLimits())
        host, port = server.addresses[0]
        loop = asyncio.get_running_loop()
        try:
            full, tc = await loop.run_in_executor(None, _udp_burst, "127.0.0.6", host, port, 100)
            assert (full, tc) == (100, 0)
        finally:
            await server.stop()

    asyncio.run(main())
