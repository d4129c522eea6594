"""NOTIFY (RFC 1996) to secondaries: real UDP sockets on loopback standing in for them."""

from __future__ import annotations

import asyncio
import socket

import dns.flags
import dns.message
import dns.opcode
import pytest

from spamwarden.rbl.notify import NotifySender
from spamwarden.rbl.responder import DnsblResponder, ZoneSettings
from spamwarden.rbl.zone import DnsblZone

pytestmark = pytest.mark.integration


class Secondary:
    """A UDP socket that records NOTIFYs and acknowledges them (after ``ignore`` unanswered)."""

    def __init__(self, ignore: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()
        self.ignore = ignore
        self.seen: list[tuple[str, int]] = []  # (zone, serial)

    def ready(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(4096)
            except BlockingIOError:
                return
            msg = dns.message.from_wire(data)
            assert msg.opcode() == dns.opcode.NOTIFY and msg.flags & dns.flags.AA
            self.seen.append((msg.question[0].name.to_text(), msg.answer[0][0].serial))
            if self.ignore:
                self.ignore -= 1
                continue
            reply = dns.message.make_response(msg)
            self.sock.sendto(reply.to_wire(), addr)


async def _run(sender: NotifySender, secondaries: list[Secondary], body) -> None:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    for sec in secondaries:
        loop.add_reader(sec.sock.fileno(), sec.ready)
    task = asyncio.create_task(sender.run())
    try:
        await body()
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        for sec in secondaries:
            loop.remove_reader(sec.sock.fileno())
            sec.sock.close()


def _responder() -> DnsblResponder:
    return DnsblResponder(DnsblZone(), ZoneSettings(apex="bl.example.net", lookup_url="u/"))


async def _until(check, seconds: float = 5.0) -> None:  # noqa: ANN001
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_every_secondary_is_notified_of_each_zone_on_a_serial_change() -> None:
    responder = _responder()
    secs = [Secondary(), Secondary()]
    sender = NotifySender(responder, [s.address for s in secs], interval=0.2)

    async def body() -> None:
        await asyncio.sleep(0.1)
        responder.zone.serial = 41
        await _until(lambda: all(len(s.seen) == 3 for s in secs) and sender.stats.acknowledged == 6)
        for s in secs:
            assert sorted(s.seen) == [("bl.example.net.", 41), ("dbl.bl.example.net.", 41),
                                      ("ip.bl.example.net.", 41)]

    asyncio.run(_run(sender, secs, body))


def test_a_burst_of_changes_is_batched_into_one_notify_per_interval() -> None:
    responder = _responder()
    sec = Secondary()
    sender = NotifySender(responder, [sec.address], interval=0.5)

    async def body() -> None:
        responder.zone.serial = 1
        await _until(lambda: len(sec.seen) == 3)
        for serial in range(2, 52):  # 50 changes within 0.25 s
            responder.zone.serial = serial
            await asyncio.sleep(0.005)
        await _until(lambda: any(serial == 51 for _z, serial in sec.seen))
        await asyncio.sleep(0.3)
        ip = [serial for zone, serial in sec.seen if zone == "ip.bl.example.net."]
        assert ip[0] == 1 and ip[-1] == 51
        assert len(ip) <= 3  # 1, then at most one per 0.5 s during the burst, then 51

    asyncio.run(_run(sender, [sec], body))


def test_unacknowledged_notify_is_retried_then_counted_as_failed() -> None:
    responder = _responder()
    slow = Secondary(ignore=3 * 2)  # each zone's first two sends go unanswered
    deaf = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    deaf.bind(("127.0.0.1", 0))  # receives, never answers
    sender = NotifySender(responder, [slow.address, deaf.getsockname()], interval=0.1,
                          timeout=0.05, tries=4)

    async def body() -> None:
        responder.zone.serial = 9
        await _until(lambda: sender.stats.acknowledged == 3 and sender.stats.failed == 3)
        assert len(slow.seen) == 9  # three zones, acknowledged at the third send
        assert sender.stats.retried == 3 * 2 + 3 * 3

    try:
        asyncio.run(_run(sender, [slow], body))
    finally:
        deaf.close()
