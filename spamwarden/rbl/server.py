"""The DNS server: UDP and TCP on each ``rbl.listen`` address, one asyncio loop.

UDP bypasses asyncio's datagram transport: the loop watches each socket and a
ready socket is drained with plain ``recvfrom``/``sendto`` (up to a batch per
wake-up), which saves the per-datagram callback and transport bookkeeping.
TCP (RFC 7766) serves several queries per connection with an idle deadline
and a per-message read deadline, caps concurrent connections, and streams
zone transfers.  Nothing a client sends can stop the server: the responder
never raises, and socket errors end only the connection they happen on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..logs import event
from .responder import DnsblResponder, Transfer
from .zone_settings import ZoneSettings

try:  # the optional C answer path (spamwarden/rbl/_native.c); pure Python without it
    from . import _native  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the build
    _native = None

__all__ = ["RblServer", "ServerLimits", "RateLimit", "run_rbl", "parse_listen", "client_bucket", "WORKER_ENV"]

#: which of the ``rbl.workers`` copies a process is (1..N), set by the supervisor
WORKER_ENV = "SPAMWARDEN_RBL_WORKER"
#: seconds one of several workers waits for its first load before it binds anyway
_LOAD_WAIT = 30.0

log = logging.getLogger("spamwarden.rbl")

_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
           9: "NOTAUTH"}


@dataclass(frozen=True)
class RateLimit:
    """Response rate limiting over UDP, like BIND's RRL: answers per second per client
    network (an IPv4 /24, an IPv6 /56), so the server cannot be used to flood a spoofed
    victim with answers.

    :param rate: answers per second per network (and the burst allowed at once).
    :param slip: over the rate, every ``slip``-th answer goes out truncated (TC=1, so a
        real client retries over TCP, which is not limited) and the others are dropped;
        0 drops them all.
    :param networks: networks tracked at once; past it the oldest state is forgotten.
    """

    rate: float
    slip: int = 2
    networks: int = 100000


class _RateLimiter:
    """Token buckets by client network (see :class:`RateLimit`)."""

    __slots__ = ("rate", "slip", "networks", "_buckets", "_limited")

    def __init__(self, config: RateLimit) -> None:
        self.rate = float(config.rate)
        self.slip = config.slip
        self.networks = config.networks
        self._buckets: dict[bytes, list[float]] = {}
        self._limited = 0

    def check(self, address: str, now: float) -> int:
        """0: answer; 1: send a truncated answer (slip); 2: drop."""
        key = rrl_network(address)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.networks:
                self._buckets.clear()  # a flood of networks: start over rather than grow
            self._buckets[key] = [self.rate - 1.0, now]
            return 0
        tokens = bucket[0] + (now - bucket[1]) * self.rate
        bucket[1] = now
        if tokens > self.rate:
            tokens = self.rate
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0
        bucket[0] = tokens
        self._limited += 1
        if self.slip and self._limited % self.slip == 0:
            return 1
        return 2


def rrl_network(address: str) -> bytes:
    """The network response rate limiting counts: an IPv4 /24 or an IPv6 /56."""
    key = client_bucket(address)
    return key[:3] if len(key) == 4 else key


def truncated(query: bytes, answer: bytes) -> bytes | None:
    """``answer`` cut to its header and question with TC=1 (RFC 2181 §9), or None when the
    query's question cannot be found (no name compression in questions)."""
    end = query.find(b"\x00", 12)
    if end < 0 or end + 5 > len(query):
        return None
    return (answer[:2] + bytes((answer[2] | 0x02, answer[3])) + b"\x00\x01\x00\x00\x00\x00\x00\x00"
            + query[12:end + 5])


@dataclass(frozen=True)
class ServerLimits:
    """Bounds of the server.

    :param udp_batch: datagrams answered per wake-up before other work gets a turn.
    :param tcp_connections: concurrent TCP connections; more are closed at once.
    :param tcp_idle: seconds a connection may wait between queries (RFC 7766 §6.2.3).
    :param tcp_idle_busy: the idle wait once more than half of ``tcp_connections`` are in
        use: RFC 7766 §6.2.3 asks servers under load to close idle connections sooner, so a
        client holding every slot with rare queries cannot keep TCP closed to others.
    :param tcp_read: seconds to receive one whole message once its length arrived.
    :param tcp_queries: queries per connection before the server closes it.
    :param tcp_per_client: concurrent TCP connections from one client (an IPv4 address, an
        IPv6 /56); more are closed at once, so one client cannot take every slot.
    :param tcp_write: seconds one write may wait for the client to read (an answer, or a
        batch of transfer messages); a client that never reads is closed after it.
    :param rate_limit: response rate limiting over UDP; None: off.
    """

    udp_batch: int = 256
    tcp_connections: int = 200
    tcp_idle: float = 10.0
    tcp_idle_busy: float = 1.0
    tcp_read: float = 5.0
    tcp_queries: int = 10000
    tcp_per_client: int = 10
    tcp_write: float = 10.0
    rate_limit: RateLimit | None = None


def parse_listen(items: tuple[str, ...] | list[str]) -> list[tuple[str, int]]:
    """``["ip:port", "[v6]:port"]`` -> ``[(ip, port)]``.

    :raises ValueError: an item is not ``host:port``.
    """
    out = []
    for item in items:
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"listen address {item!r} is not host:port")
        out.append((host.strip("[]"), int(port)))
    return out


def client_bucket(address: str) -> bytes:
    """The unit that per-client limits count: an IPv4 address, or an IPv6 /56.

    One IPv6 subscriber usually gets a /56 (or a /64 inside it), so counting single IPv6
    addresses would let one client open a connection from each of 2**72 addresses.
    IPv4-mapped IPv6 addresses count as their IPv4 address.

    :param address: the peer's IP address as text (a scope ``%if`` is ignored).
    :returns: a key: 4 bytes (IPv4) or 7 bytes (IPv6 prefix); the text itself if unparsable.
    """
    host = address.split("%", 1)[0]
    try:
        return socket.inet_pton(socket.AF_INET, host)
    except OSError:
        pass
    try:
        raw = socket.inet_pton(socket.AF_INET6, host)
    except OSError:
        return address.encode("utf-8", "replace")
    if raw[:12] == b"\x00" * 10 + b"\xff\xff":
        return raw[12:]
    return raw[:7]


@dataclass
class _Stats:
    udp: list[int] = field(default_factory=lambda: [0] * 16)
    tcp: list[int] = field(default_factory=lambda: [0] * 16)
    dropped: int = 0
    tcp_refused: int = 0
    tcp_write_timeouts: int = 0
    rrl_dropped: int = 0
    rrl_slipped: int = 0


class RblServer:
    """UDP and TCP listeners answering through a :class:`DnsblResponder`.

    :param responder: answers queries.
    :param listen: (address, port) pairs; port 0 picks a free port (see :attr:`addresses`).
    :param limits: bounds.
    :param reuse_port: bind with ``SO_REUSEPORT`` (UDP and TCP), so several processes
        serve the same address and the kernel spreads queries and connections over them.
    :param native: answer the common IPv4 query in C when the extension is built (off
        while response rate limiting is on: that check lives in the Python loop).
    """

    def __init__(self, responder: DnsblResponder, listen: list[tuple[str, int]], *,
                 limits: ServerLimits | None = None, reuse_port: bool = False,
                 native: bool = True) -> None:
        self.responder = responder
        self.listen = listen
        self.limits = limits or ServerLimits()
        self.reuse_port = reuse_port
        self.stats = _Stats()
        self.addresses: list[tuple[str, int]] = []
        self._udp: list[socket.socket] = []
        self._tcp_servers: list[asyncio.base_events.Server] = []
        self._tcp_active = 0
        self._tcp_by_client: dict[bytes, int] = {}
        self._rrl = _RateLimiter(self.limits.rate_limit) if self.limits.rate_limit else None
        self.native = _native if native and self._rrl is None else None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Bind every address (UDP and TCP on the same port).

        :raises OSError: an address cannot be bound.
        """
        loop = asyncio.get_running_loop()
        self._loop = loop
        for host, wanted in self.listen:
            # Port 0: the kernel picks a UDP port, and TCP must get the same number; when
            # that number is taken for TCP, try another.
            for attempt in range(20):
                udp = self._udp_socket(host, wanted, reuse_port=self.reuse_port)
                port = udp.getsockname()[1]
                try:
                    server = await asyncio.start_server(self._tcp_client, host, port,
                                                        reuse_address=True, backlog=256,
                                                        reuse_port=self.reuse_port or None)
                except OSError:
                    udp.close()
                    if wanted or attempt == 19:
                        raise
                    continue
                break
            self._udp.append(udp)
            self._tcp_servers.append(server)
            loop.add_reader(udp.fileno(), self._udp_ready, udp)
            self.addresses.append((host, port))
            event(log, "rbl_listening", address=host, port=port, reuse_port=self.reuse_port or None)

    @staticmethod
    def _udp_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        udp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            except OSError:
                pass
            udp.bind((host, port))
            udp.setblocking(False)
        except OSError:
            udp.close()
            raise
        return udp

    async def stop(self) -> None:
        """Close every listener."""
        loop = asyncio.get_running_loop()
        for udp in self._udp:
            loop.remove_reader(udp.fileno())
            udp.close()
        self._udp.clear()
        for server in self._tcp_servers:
            server.close()
        for server in self._tcp_servers:
            try:
                await asyncio.wait_for(server.wait_closed(), 2.0)
            except TimeoutError:
                pass
        self._tcp_servers.clear()

    # -- UDP -------------------------------------------------------------------------------

    def _udp_ready(self, sock: socket.socket) -> None:
        native = self.native
        if native is not None and self.responder.ready:
            self._udp_ready_native(native, sock)
            return
        responder = self.responder
        answer = responder.answer
        fast = responder.udp_fast_path
        recvfrom = sock.recvfrom
        sendto = sock.sendto
        counts = self.stats.udp
        rrl = self._rrl
        # one clock read per wake-up: expiry is checked to the batch (a few ms at most)
        now_ms = int(responder.clock() * 1000)
        for _ in range(self.limits.udp_batch):
            try:
                data, addr = recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. an ICMP error from an earlier send: nothing to read now
            try:
                out = fast(data, now_ms)
            except Exception:  # noqa: BLE001 - garbage: the general path says FORMERR or drops it
                out = None
            if out is None:
                general = answer(data, tcp=False, client=addr[0])
                if not isinstance(general, bytes):
                    self.stats.dropped += 1
                    continue
                out = general
            if rrl is not None:
                verdict = rrl.check(addr[0], now_ms / 1000.0)
                if verdict:
                    short = truncated(data, out) if verdict == 1 else None
                    if short is None:
                        self.stats.rrl_dropped += 1
                        continue
                    self.stats.rrl_slipped += 1
                    out = short
            try:
                sendto(out, addr)
            except OSError:
                self.stats.dropped += 1  # full socket buffer or unreachable client: UDP may drop
                continue
            counts[out[3] & 0xF] += 1

    def _udp_ready_native(self, native: Any, sock: socket.socket) -> None:
        """A batch through the C path; what it leaves goes through the Python answers."""
        responder = self.responder
        now_ms = int(responder.clock() * 1000)
        try:
            rest, answered, failed = native.serve(sock.fileno(), self.limits.udp_batch, now_ms,
                                                  responder.native_context())
        except Exception as exc:  # noqa: BLE001 - a bug there must not stop the answers
            self.native = None
            event(log, "rbl_native_disabled", level=logging.ERROR, error=repr(exc))
            return  # the socket is still readable: the Python loop takes the next turn
        counts = self.stats.udp
        for rcode, n in enumerate(answered):
            if n:
                counts[rcode] += n
        self.stats.dropped += failed
        fast = responder.udp_fast_path
        for data, addr in rest:
            try:
                out = fast(data, now_ms)
            except Exception:  # noqa: BLE001 - garbage: the general path says FORMERR or drops it
                out = None
            if out is None:
                general = responder.answer(data, tcp=False, client=addr[0])
                if not isinstance(general, bytes):
                    self.stats.dropped += 1
                    continue
                out = general
            try:
                sock.sendto(out, addr)
            except OSError:
                self.stats.dropped += 1
                continue
            counts[out[3] & 0xF] += 1

    # -- TCP -------------------------------------------------------------------------------

    @property
    def tcp_active(self) -> int:
        """TCP connections being served now."""
        return self._tcp_active

    async def _drain(self, writer: asyncio.StreamWriter) -> None:
        """``writer.drain()`` within ``tcp_write`` seconds.

        :raises TimeoutError: the client did not read in time (the caller closes).
        """
        try:
            await asyncio.wait_for(writer.drain(), self.limits.tcp_write)
        except TimeoutError:
            self.stats.tcp_write_timeouts += 1
            raise TimeoutError("client does not read") from None

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else ""
        bucket = client_bucket(client)
        by_client = self._tcp_by_client
        held = by_client.get(bucket, 0)
        if self._tcp_active >= self.limits.tcp_connections or held >= self.limits.tcp_per_client:
            self.stats.tcp_refused += 1
            writer.transport.abort()  # no FIN handshake to wait for: the slot is free now
            return
        by_client[bucket] = held + 1
        self._tcp_active += 1
        limits = self.limits
        counts = self.stats.tcp
        try:
            for _ in range(limits.tcp_queries):
                try:
                    busy = self._tcp_active * 2 > limits.tcp_connections
                    idle = min(limits.tcp_idle, limits.tcp_idle_busy) if busy else limits.tcp_idle
                    head = await asyncio.wait_for(reader.readexactly(2), idle)
                    size = struct.unpack("!H", head)[0]
                    data = await asyncio.wait_for(reader.readexactly(size), limits.tcp_read)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, OSError):
                    break
                out = self.responder.answer(data, tcp=True, client=client)
                if out is None:
                    break  # not a query: RFC 7766 lets the server close
                if isinstance(out, Transfer):
                    started = time.monotonic()
                    n = 0
                    for message in self.responder.transfer_messages(out):
                        writer.write(struct.pack("!H", len(message)) + message)
                        n += 1
                        if n % 8 == 0:
                            await self._drain(writer)
                    await self._drain(writer)
                    counts[0] += 1
                    event(log, "rbl_transfer", client=client, zone=out.section or "apex",
                          messages=n, seconds=round(time.monotonic() - started, 3))
                    continue
                writer.write(struct.pack("!H", len(out)) + out)
                await self._drain(writer)
                counts[out[3] & 0xF] += 1
        except TimeoutError:
            writer.transport.abort()  # buffered answers the client will not read: discard
        except (ConnectionError, OSError):
            pass
        finally:
            self._tcp_active -= 1
            left = by_client.get(bucket, 1) - 1
            if left > 0:
                by_client[bucket] = left
            else:
                by_client.pop(bucket, None)
            try:
                writer.close()
            except (ConnectionError, OSError, RuntimeError):
                pass

    # -- metrics ---------------------------------------------------------------------------

    def flush_metrics(self, previous: dict[str, list[int]]) -> None:
        """Add the counts since the last flush to ``spamwarden_dns_queries_total`` and
        ``spamwarden_dns_tcp_closed_total``."""
        try:
            from ..metrics import DNS_QUERIES, DNS_RRL, DNS_TCP_CLOSED
        except Exception:  # noqa: BLE001 - metrics never stop the server
            return
        closed = previous.setdefault("tcp_closed", [0, 0])
        for i, (reason, n) in enumerate((("cap", self.stats.tcp_refused),
                                         ("write_timeout", self.stats.tcp_write_timeouts))):
            if n != closed[i]:
                DNS_TCP_CLOSED.labels(reason).inc(n - closed[i])
                closed[i] = n
        limited = previous.setdefault("rrl", [0, 0])
        for i, (action, n) in enumerate((("drop", self.stats.rrl_dropped),
                                         ("slip", self.stats.rrl_slipped))):
            if n != limited[i]:
                DNS_RRL.labels(action).inc(n - limited[i])
                limited[i] = n
        for transport, counts in (("udp", self.stats.udp), ("tcp", self.stats.tcp)):
            before = previous.setdefault(transport, [0] * 16)
            for rcode, n in enumerate(counts):
                if n != before[rcode]:
                    DNS_QUERIES.labels(transport, _RCODES.get(rcode, str(rcode))).inc(n - before[rcode])
                    before[rcode] = n


def run_rbl(cfg: Config) -> int:
    """``spamwarden rbl``: serve the blocklist until SIGTERM or SIGINT; SIGHUP reloads the index.

    :returns: exit status (0 after a clean stop).
    :raises ServiceError: a listen address cannot be bound.
    """
    from ..errors import ServiceError

    try:
        return asyncio.run(_serve(cfg))
    except OSError as exc:
        raise ServiceError(f"rbl: cannot listen on {', '.join(cfg.rbl.listen)}: {exc}") from exc


def build_settings(cfg: Config) -> ZoneSettings:
    """The :class:`ZoneSettings` of a configuration."""
    rbl = cfg.rbl
    hosts = [h for h, _ in parse_listen(rbl.listen) if h not in ("0.0.0.0", "::", "")]
    return ZoneSettings(
        apex=rbl.zone, lookup_url=rbl.lookup_url, ttl=rbl.ttl, negative_ttl=rbl.negative_ttl,
        mname=rbl.soa_mname, rname=rbl.soa_rname, transfer_allow=tuple(rbl.transfer_allow),
        ns_addresses=tuple(hosts),
    )


def build_limits(cfg: Config) -> ServerLimits:
    """The :class:`ServerLimits` of a configuration (``[rbl]`` tcp_* settings)."""
    rbl = cfg.rbl
    rate = RateLimit(rate=rbl.rate_limit, slip=rbl.rate_limit_slip) if rbl.rate_limit > 0 else None
    return ServerLimits(tcp_per_client=rbl.tcp_per_client, tcp_write=rbl.tcp_write_timeout,
                        rate_limit=rate)


def follower_config(cfg: Config, *, timeout: float = 5.0) -> Config:
    """``cfg`` with a Redis timeout fit for the follower.

    The follower's reads are big (HSCAN batches of a million-entry hash) or long
    (XREAD BLOCK), and a timeout there only delays catching up: the answers go on
    from memory meanwhile.  So it waits at least ``timeout`` seconds.
    """
    from ..redisconn import with_min_timeout

    return with_min_timeout(cfg, timeout)


async def _serve(cfg: Config) -> int:
    from ..redisconn import async_client
    from .follower import ListingFollower
    from .zone import DnsblZone

    responder = DnsblResponder(DnsblZone(), build_settings(cfg), journal_size=cfg.rbl.ixfr_journal)
    responder.ready = False  # SERVFAIL for listing names until the first load
    # rbl.workers > 1: the supervisor runs that many copies of this process on the same
    # addresses; worker 1 alone sends NOTIFY (the others would repeat it)
    worker = int(os.environ.get(WORKER_ENV, "1") or 1)
    server = RblServer(responder, parse_listen(cfg.rbl.listen), limits=build_limits(cfg),
                       reuse_port=cfg.rbl.workers > 1, native=cfg.rbl.native)
    if cfg.rbl.workers == 1:
        await server.start()  # answers SERVFAIL for listing names until the first load
    client = async_client(follower_config(cfg))
    block_ms = 1000  # XREAD BLOCK returns well before the follower's socket timeout
    follower = ListingFollower(responder, client, block_ms=block_ms)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, follower.request_reload)
    task = asyncio.create_task(follower.run())
    if cfg.rbl.workers > 1:
        # One of several: the kernel would send this process its share of the queries as
        # soon as it binds, so it binds once loaded (SERVFAIL meanwhile helps no one while
        # loaded copies could answer), or after _LOAD_WAIT seconds when Redis is away.
        deadline = time.monotonic() + _LOAD_WAIT
        while not responder.ready and not stop.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await server.start()
    notify_task: asyncio.Task[None] | None = None
    if cfg.rbl.notify and worker == 1:
        from .notify import NotifySender

        sender = NotifySender(responder, parse_listen(cfg.rbl.notify), interval=cfg.rbl.notify_interval)
        notify_task = asyncio.create_task(sender.run())
    flushed: dict[str, list[int]] = {}
    last_log = time.monotonic()
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
            server.flush_metrics(flushed)
            if time.monotonic() - last_log >= 300:
                last_log = time.monotonic()
                event(log, "rbl_stats", udp=sum(server.stats.udp), tcp=sum(server.stats.tcp),
                      dropped=server.stats.dropped, listings=len(responder.zone),
                      serial=responder.zone.serial, redis_up=follower.redis_up)
    finally:
        for running in (task, notify_task):
            if running is None:
                continue
            running.cancel()
            try:
                await running
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        await server.stop()
        await client.aclose()
    event(log, "rbl_stopped")
    return 0
