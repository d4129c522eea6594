"""NOTIFY (RFC 1996): tell the secondaries that the zone changed.

After a serial change each target gets one NOTIFY per zone (the apex,
``ip.<apex>`` and ``dbl.<apex>``), at most one per zone per ``interval``: a burst
of changes costs one NOTIFY, sent as soon as the interval since the last one
allows.  A NOTIFY that is not acknowledged is sent again with a doubling wait
(RFC 1996 §3.6) until ``tries`` are used up; a newer serial replaces a pending
one.  A target that answers with an error (NOTAUTH, REFUSED: it does not serve
that zone, commonly the apex) is not sent that zone's NOTIFY again.  Outcomes are logged and counted in ``spamwarden_dns_notify_total``.  The
secondaries then ask for the SOA and transfer the zone (IXFR) as usual.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..logs import event
from .responder import DnsblResponder
from .wire import C_IN, F_AA, F_QR, HEADER, T_SOA, encode_name, rr_ptr, soa_rdata

__all__ = ["NotifySender", "notify_message", "OPCODE_NOTIFY"]

log = logging.getLogger("spamwarden.rbl")

OPCODE_NOTIFY = 4
_SECTIONS = ("", "ip", "dbl")


def notify_message(qid: int, origin: str, soa: bytes) -> bytes:
    """A NOTIFY request for ``origin`` carrying its new SOA (RFC 1996 §3.7).

    :param qid: message ID.
    :param origin: the zone name.
    :param soa: the SOA RDATA (with the new serial).
    :returns: the message.
    """
    owner = encode_name(origin)
    return (HEADER.pack(qid, OPCODE_NOTIFY << 11 | F_AA, 1, 1, 0, 0)
            + owner + struct.pack("!HH", T_SOA, C_IN) + rr_ptr(12, T_SOA, 0, soa))


@dataclass
class NotifyStats:
    """Counts since start, by outcome."""

    sent: int = 0
    acknowledged: int = 0
    retried: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, pending: dict[tuple[int, tuple[str, int]], asyncio.Future[bytes]]) -> None:
        self.pending = pending

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if len(data) < 12:
            return
        qid, flags = struct.unpack_from("!HH", data)
        if not flags & F_QR or (flags >> 11) & 0xF != OPCODE_NOTIFY:
            return
        fut = self.pending.get((qid, (addr[0], addr[1])))
        if fut is not None and not fut.done():
            fut.set_result(data)

    def error_received(self, exc: Exception) -> None:
        pass  # e.g. ICMP port unreachable: the retry timer deals with it


class NotifySender:
    """Sends NOTIFY to secondaries whenever the responder's zone serial changes.

    :param responder: whose zone serial is watched and whose SOA is sent.
    :param targets: (address, port) of each secondary.
    :param interval: at most one NOTIFY per zone and target per this many seconds.
    :param timeout: wait for the first acknowledgement; doubled for each retry.
    :param tries: sends of one NOTIFY before it counts as failed.
    :param poll: how often the serial is compared (seconds).
    """

    def __init__(self, responder: DnsblResponder, targets: list[tuple[str, int]], *,
                 interval: float = 1.0, timeout: float = 1.0, tries: int = 5, poll: float = 0.02,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.responder = responder
        self.targets = targets
        self.interval = interval
        self.timeout = timeout
        self.tries = tries
        self.poll = poll
        self.clock = clock
        self.stats = NotifyStats()
        self._pending: dict[tuple[int, tuple[str, int]], asyncio.Future[bytes]] = {}
        self._tasks: dict[tuple[tuple[str, int], str], asyncio.Task[None]] = {}
        self._transports: dict[int, asyncio.DatagramTransport] = {}
        #: (target, zone) pairs answered with an error: that target does not serve the zone
        self._refused: set[tuple[tuple[str, int], str]] = set()

    async def run(self) -> None:
        """Watch the serial and notify until cancelled.  Never raises but CancelledError."""
        notified = -1
        last_sent = -1e18
        try:
            for host, _port in self.targets:
                await self._transport(socket.AF_INET6 if ":" in host else socket.AF_INET)
            while True:
                await asyncio.sleep(self.poll)
                zone = self.responder.zone
                if not self.responder.ready or zone.serial == notified or not zone.serial:
                    continue
                wait = last_sent + self.interval - self.clock()
                if wait > 0:
                    await asyncio.sleep(wait)  # batch: changes meanwhile ride on this NOTIFY
                notified = self.responder.zone.serial
                last_sent = self.clock()
                self.notify_all(notified)
        finally:
            for task in self._tasks.values():
                task.cancel()
            for transport in self._transports.values():
                transport.close()

    def notify_all(self, serial: int) -> None:
        """Start one NOTIFY per target and zone for ``serial``, replacing pending ones."""
        for target in self.targets:
            for section in _SECTIONS:
                key = (target, section)
                if key in self._refused:
                    continue
                old = self._tasks.get(key)
                if old is not None and not old.done():
                    old.cancel()
                self._tasks[key] = asyncio.create_task(self._notify(target, section, serial))

    async def _transport(self, family: int) -> asyncio.DatagramTransport:
        """The socket NOTIFYs of ``family`` go out on (made once, by :meth:`run`)."""
        transport = self._transports.get(family)
        if transport is None:
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Listener(self._pending), family=family,
                local_addr=("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            self._transports[family] = transport
        return transport

    async def _notify(self, target: tuple[str, int], section: str, serial: int) -> None:
        s = self.responder.settings
        origin = f"{section}.{s.apex}" if section else s.apex
        soa = soa_rdata(s.mname, s.rname, serial=serial, refresh=s.refresh, retry=s.retry,
                        expire=s.expire, minimum=s.negative_ttl)
        family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
        timeout = self.timeout
        loop = asyncio.get_running_loop()
        for attempt in range(self.tries):
            qid = secrets.randbelow(65536)
            key = (qid, target)
            fut: asyncio.Future[bytes] = loop.create_future()
            self._pending[key] = fut
            try:
                transport = await self._transport(family)
                transport.sendto(notify_message(qid, origin, soa), target)
                self.stats.sent += 1
                reply = await asyncio.wait_for(fut, timeout)
            except (TimeoutError, OSError):
                if attempt + 1 < self.tries:
                    self.stats.retried += 1
                    _count("retried")
                    timeout *= 2
                continue
            finally:
                self._pending.pop(key, None)
            rcode = reply[3] & 0xF
            if rcode:
                # NOTAUTH/REFUSED: the target does not serve this zone or ignores us; final
                self.stats.errors[origin] = rcode
                self._refused.add((target, section))
                _count("refused")
                event(log, "rbl_notify_refused", level=logging.INFO, target=f"{target[0]}:{target[1]}",
                      zone=origin, rcode=rcode)
            else:
                self.stats.acknowledged += 1
                _count("acknowledged")
            return
        self.stats.failed += 1
        _count("failed")
        event(log, "rbl_notify_failed", level=logging.WARNING, target=f"{target[0]}:{target[1]}",
              zone=origin, serial=serial, tries=self.tries)


def _count(outcome: str) -> None:
    try:
        from ..metrics import DNS_NOTIFY

        DNS_NOTIFY.labels(outcome).inc()
    except Exception:  # noqa: BLE001 - metrics never stop the server
        pass
