"""The listing engine (``spamwarden worker``): complaints in, listings out.

It reads the complaint stream (:data:`~spamwarden.reputation.complaints.COMPLAINTS_KEY`)
as a member of the consumer group ``listing-engine``, so several workers share
the stream.  For each complaint:

1. :class:`ListingPolicy` turns its indicators into *targets*: listing keys with a
   kind and a reason.  Allow-listed and the operator's own domains give none;
   shared platforms (``reputation.shared_domains``) give the exact From address
   instead of the domain; see :meth:`ListingPolicy.targets`.
2. The store counts the complaint against every target's window and marks the
   complaint id processed, in one Lua script.  A replay (crash before the
   acknowledgement, or a second delivery) counts nothing again.
3. A target is listed when at least ``reputation.min_reporters`` distinct
   reporters complained within ``reputation.window`` and, when the milter has
   counted volume for it, complaints / volume > ``reputation.min_complaint_rate``
   (volume: accepted messages from the client IP, or that authenticated the domain,
   as complaints count only names a delivery proved).
   An active listing is left alone, and complaints about a listed target are not
   counted for it.  A listing *uses up* the complaints that led to it (the
   target's window is cleared in the listing's script), so a repeat offence needs
   new reporters after the listing; each repeat lists for twice as long, up to
   ``max_listing_ttl``.
4. The entry is acknowledged.

``ham`` reports are marked processed and counted nowhere.  Every few seconds
the engine writes ``expired`` changes for listings that ran out (readers
ignore expired listings before that anyway).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio

from ..config import Config
from ..errors import StoreError
from ..logs import event
from ..mail import normalize_domain, registrable_domain, unmapped
from ._service import stop_on_signals
from .complaints import COMPLAINTS_KEY, Complaint
from .listings import KeyKind, normalize_address
from .store import AsyncListingStore, Clock, SystemClock, store_error

__all__ = ["ListingEngine", "ListingPolicy", "Target", "Decision", "ComplaintHook", "GROUP"]

log = logging.getLogger("spamwarden.worker")

GROUP = "listing-engine"
#: indicators taken from one complaint (intake bounds them too; a forged entry must not
#: make one script touch thousands of keys)
MAX_DKIM_DOMAINS = 10
MAX_URL_DOMAINS = 100

#: called with every readable complaint before it is acknowledged (e.g. the consent
#: registry turning a complaint about an ad into a refusal).  Must be idempotent: a
#: replayed entry calls it again.  Raising StoreError leaves the entry pending.
ComplaintHook = Callable[[Complaint], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Target:
    """One thing a complaint may get listed."""

    key: str
    kind: KeyKind
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """What the engine did about one target of one complaint."""

    key: str
    complaints: int
    reporters: int
    volume: int | None
    op: str  # "listed", "unchanged", "below-threshold"


def _matches(domain: str, names: Iterable[str]) -> bool:
    return any(domain == n or domain.endswith("." + n) for n in names)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``text`` names, an IPv4-mapped IPv6 address (``::ffff:192.0.2.5``) as
    its IPv4 address, or ``None``."""
    try:
        return unmapped(ipaddress.ip_address(text))
    except ValueError:
        return None


class ListingPolicy:
    """Which keys a complaint may list (pure; no I/O).

    :param allow: ``reputation.allow``: domains (and their subdomains), IPs or
        networks never listed.
    :param local_domains: ``intake.local_domains``: the operator's own, never listed.
    :param shared_domains: platforms never listed whole (the From address is).
    :param require_delivered: ``reputation.require_delivered``: only complaints
        whose indicators a delivery here (or a configured feedback loop) proved give
        targets; any other gives none.
    """

    def __init__(
        self,
        *,
        allow: Sequence[str] = (),
        local_domains: Sequence[str] = (),
        shared_domains: Sequence[str] = (),
        require_delivered: bool = True,
    ) -> None:
        self.require_delivered = require_delivered
        self.never: list[str] = []
        self.never_nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for item in (*allow, *local_domains):
            try:
                self.never_nets.append(ipaddress.ip_network(item.strip(), strict=False))
                continue
            except ValueError:
                pass
            d = normalize_domain(item)
            if d:
                self.never.append(d)
        self.shared = [d for d in (normalize_domain(x) for x in shared_domains) if d]

    @classmethod
    def from_config(cls, cfg: Config) -> ListingPolicy:
        """The policy of ``reputation.allow``, ``intake.local_domains`` and
        ``reputation.shared_domains``.
        """
        return cls(allow=cfg.reputation.allow, local_domains=cfg.intake.local_domains,
                   shared_domains=cfg.reputation.shared_domains,
                   require_delivered=cfg.reputation.require_delivered)

    def allowed_ip(self, ip: str) -> bool:
        """True when ``ip`` must never be listed (an IPv4-mapped IPv6 address is judged
        as its IPv4 address)."""
        a = _ip(ip)
        if a is None:
            return True
        if a.is_loopback or a.is_unspecified or a.is_multicast or a.is_link_local:
            return True
        return any(a in n for n in self.never_nets)

    def allowed_domain(self, domain: str) -> bool:
        """True when ``domain`` (or a parent) is allow-listed or the operator's own."""
        return _matches(domain, self.never)

    def shared_domain(self, domain: str) -> bool:
        """True when ``domain`` belongs to a shared platform (never listed whole)."""
        return _matches(domain, self.shared)

    def _platform_ip(self, complaint: Complaint) -> bool:
        """The complaint's client address sends for a shared platform: SPF passed at
        delivery for a MAIL FROM domain in ``shared_domains``, so the platform's own
        record names it.  Spam from one freemail account must not list the outbound
        address every other account of the platform sends from; the account's address
        is what gets listed (``address-complaints``).  Only a proven complaint: an
        unproven one's MAIL FROM domain is what the reported copy claims."""
        name = complaint.indicators.mail_from_domain
        if not complaint.proven or not name:
            return False
        norm = normalize_domain(name)
        reg = registrable_domain(norm) if norm else None
        return reg is not None and self.shared_domain(reg)

    def targets(self, complaint: Complaint) -> list[Target]:
        """The listing keys a complaint counts toward, most telling first, no duplicates.

        With ``require_delivered`` (the default) only a *proven* complaint
        (:attr:`~spamwarden.reputation.complaints.Complaint.proven`: matched to a
        delivery here, or vouched for by a configured feedback loop) gives targets,
        and its indicators are what that delivery proved: the client IP the milter
        saw, the MAIL FROM domain only when SPF passed, the From domain only when
        DMARC passed (so a From naming a brand the message could not authenticate
        never becomes a target), the ``d=`` of signatures that verified, and the
        link domains.  Of those:

        - source IP (``complaints``), unless allow-listed, loopback or link-local, or
          a shared platform's (:meth:`_platform_ip`);
        - the registrable domain (PSL with private suffixes: a customer's
          ``shop.blogspot.com``, never ``blogspot.com``) of MAIL FROM, From and each
          *verified* DKIM ``d=`` (``domain-complaints``); unverified ``d=`` can be
          forged and count for nothing;
        - URL registrable domains (``url-complaints``);
        - for a From domain on a shared platform or a bare public suffix: the From
          address (``address-complaints``) instead of the domain.

        Allow-listed and local domains give nothing, addresses at them included.
        ``ham`` reports give no targets.
        """
        if complaint.kind != "spam":
            return []
        if self.require_delivered and not complaint.proven:
            return []
        ind = complaint.indicators
        out: dict[str, Target] = {}

        def put(key: str, kind: KeyKind, reason: str) -> None:
            out.setdefault(key, Target(key, kind, reason))

        if ind.source_ip and not self._platform_ip(complaint):
            addr = _ip(ind.source_ip.strip().strip("[]"))
            ip = str(addr) if addr is not None else ""
            if ip and not self.allowed_ip(ip):
                put(ip, "ip", "complaints")

        def domain(name: str | None, reason: str, *, address: str | None = None) -> None:
            norm = normalize_domain(name) if name else None
            if norm is None or self.allowed_domain(norm):
                return
            reg = registrable_domain(norm)
            if reg is not None and self.allowed_domain(reg):
                return
            if reg is None or self.shared_domain(reg):
                addr = normalize_address(address) if address else None
                if addr is not None and addr.endswith("@" + norm):
                    put(addr, "address", "address-complaints")
                return
            put(reg, "domain", reason)

        domain(ind.from_domain, "domain-complaints", address=ind.from_address)
        domain(ind.mail_from_domain, "domain-complaints")
        for d in ind.dkim_verified[:MAX_DKIM_DOMAINS]:
            domain(d, "domain-complaints")
        for d in ind.url_domains[:MAX_URL_DOMAINS]:
            domain(d, "url-complaints")
        return list(out.values())


class ListingEngine:
    """Consumes complaints and lists what crosses the thresholds.

    :param store: the async listing store.
    :param policy: which keys a complaint may list.
    :param min_reporters: ``reputation.min_reporters``.
    :param min_complaint_rate: ``reputation.min_complaint_rate``.
    :param clock: time source (tests move it by hand).
    :param consumer: this worker's name in the consumer group; a restarted worker
        with the same name first replays what it had read but not acknowledged.
    :param claim_idle: seconds after which another consumer's unacknowledged
        entries are claimed (a worker that died for good).
    :param hooks: :data:`ComplaintHook` callables run for every complaint.
    """

    def __init__(
        self,
        store: AsyncListingStore,
        policy: ListingPolicy,
        *,
        min_reporters: int,
        min_complaint_rate: float,
        clock: Clock | None = None,
        consumer: str = "worker",
        group: str = GROUP,
        stream: str = COMPLAINTS_KEY,
        batch: int = 100,
        expire_every: float = 5.0,
        claim_idle: float = 60.0,
        hooks: Sequence[ComplaintHook] = (),
    ) -> None:
        self.store = store
        self.hooks = list(hooks)
        self.redis: redis.asyncio.Redis = store.redis
        self.policy = policy
        self.min_reporters = min_reporters
        self.min_complaint_rate = min_complaint_rate
        self.clock = clock or SystemClock()
        self.consumer = consumer
        self.group = group
        self.stream = stream
        self.batch = batch
        self.expire_every = expire_every
        self.claim_idle = claim_idle
        self._replaying = True
        self._next_expire = 0.0
        self._next_claim = 0.0
        self.processed = 0

    @classmethod
    def from_config(cls, cfg: Config, store: AsyncListingStore, *, consumer: str | None = None,
                    clock: Clock | None = None,
                    hooks: Sequence[ComplaintHook] = ()) -> ListingEngine:
        """An engine with the ``[reputation]`` thresholds of ``cfg``.

        :param store: where listings and counters live.
        :param consumer: this worker's name in the consumer group (default: the host name).
        :param clock: Unix time (default: the system clock).
        :param hooks: called with every readable complaint (see :data:`ComplaintHook`).
        """
        return cls(
            store, ListingPolicy.from_config(cfg), min_reporters=cfg.reputation.min_reporters,
            min_complaint_rate=cfg.reputation.min_complaint_rate, clock=clock,
            consumer=consumer or socket.gethostname(), hooks=hooks,
        )

    async def setup(self) -> None:
        """Create the consumer group (and the stream) if missing.

        :raises StoreError: Redis failed.
        """
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise StoreError(f"cannot create consumer group: {exc}") from exc
        except redis.RedisError as exc:
            raise store_error(exc) from exc

    async def handle(self, entry_id: str, fields: dict[bytes, bytes]) -> list[Decision]:
        """Count one complaint entry and list what crosses the thresholds (no ack).

        An entry that is not a complaint is logged and yields nothing.
        :raises StoreError: Redis failed (the entry stays pending and is replayed).
        """
        try:
            complaint = Complaint.from_fields(fields)
        except ValueError as exc:
            event(log, "complaint_unreadable", entry=entry_id, error=str(exc))
            return []
        for hook in self.hooks:
            try:
                await hook(complaint)
            except StoreError:
                raise
            except Exception as exc:
                log.exception("complaint hook failed")
                event(log, "hook_failed", entry=entry_id, hook=repr(hook), error=str(exc))
        now = self.clock.now()
        targets = self.policy.targets(complaint)
        counts = await self.store.count_complaint(
            complaint.id, reporter=complaint.counted_reporter, at=complaint.received_at,
            keys=[t.key for t in targets], now=now,
        )
        decisions: list[Decision] = []
        over = [t for t, c in zip(targets, counts.counts)
                if not c.listed and c.reporters >= self.min_reporters]
        vols = await self.store.volumes([t.key for t in over], now=now) if over else {}
        for t, c in zip(targets, counts.counts):
            if c.listed:
                decisions.append(Decision(t.key, c.complaints, c.reporters, None, "unchanged"))
                continue
            if c.reporters < self.min_reporters:
                decisions.append(Decision(t.key, c.complaints, c.reporters, None, "below-threshold"))
                continue
            vol = vols.get(t.key, 0)
            if vol > 0 and c.complaints / vol <= self.min_complaint_rate:
                decisions.append(Decision(t.key, c.complaints, c.reporters, vol, "below-threshold"))
                continue
            note = f"{c.reporters} reporters, {c.complaints} complaints" + (
                f", {vol} messages seen" if vol else "")
            # lists unless listed meanwhile, and uses up the window in the same script
            w = await self.store.list_offender(t.key, kind=t.kind, reason=t.reason, note=note,
                                               now=now)
            decisions.append(Decision(t.key, c.complaints, c.reporters, vol or None, w.op))
            if w.op == "listed" and w.listing is not None:
                event(log, "listed", key=t.key, kind=t.kind, reason=t.reason,
                      reporters=c.reporters, complaints=c.complaints, volume=vol,
                      offences=w.listing.offences, expires_at=round(w.listing.expires_at))
        self.processed += 1
        return decisions

    async def _read(self, block_ms: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Own pending entries first (a replay after a restart), then new ones."""
        if self._replaying:
            res: Any = await self.redis.xreadgroup(self.group, self.consumer, {self.stream: "0"},
                                              count=self.batch)
            entries = res[0][1] if res else []
            if entries:
                # an entry deleted from the stream while pending comes back without fields
                return [(i, f or {}) for i, f in entries]
            self._replaying = False
        new: Any = await self.redis.xreadgroup(self.group, self.consumer, {self.stream: ">"},
                                               count=self.batch, block=block_ms)
        return new[0][1] if new else []

    async def _claim(self) -> None:
        res = await self.redis.xautoclaim(self.stream, self.group, self.consumer,
                                          min_idle_time=int(self.claim_idle * 1000),
                                          start_id="0-0", count=self.batch, justid=True)
        if res and len(res) > 1 and res[1]:
            event(log, "claimed", entries=len(res[1]))
            self._replaying = True  # claimed entries are now our pending ones

    async def run_once(self, *, block_ms: int = 1000) -> int:
        """Read one batch (own pending entries first), handle each, acknowledge them.

        :returns: entries handled.
        :raises StoreError: Redis failed.
        """
        try:
            now = self.clock.now()
            if now >= self._next_claim:
                self._next_claim = now + self.claim_idle / 2
                await self._claim()
            entries = await self._read(block_ms)
            for entry_id, fields in entries:
                await self.handle(entry_id.decode(), fields)
            # one acknowledgement for the batch: entries handled before a crash are
            # replayed, and a replay counts nothing twice
            if entries:
                await self.redis.xack(self.stream, self.group, *[i for i, _ in entries])
        except redis.RedisError as exc:
            raise store_error(exc) from exc
        return len(entries)

    async def expire_once(self) -> int:
        """Write ``expired`` changes for every listing past its time.

        :returns: listings expired.
        """
        total = 0
        for _ in range(100):
            done = await self.store.expire_due(self.clock.now())
            for x in done:
                event(log, "expired", key=x.key, kind=x.kind, reason=x.reason)
            total += len(done)
            if len(done) < 1000:
                break
        return total

    async def run(self, stop: asyncio.Event, *, block_ms: int = 1000) -> None:
        """Work until ``stop`` is set; Redis trouble is logged and retried with back-off."""
        backoff = 0.1
        ready = False
        while not stop.is_set():
            try:
                if not ready:
                    await self.setup()
                    ready = True
                    event(log, "worker_ready", consumer=self.consumer, group=self.group)
                await self.run_once(block_ms=block_ms)
                now = self.clock.now()
                if now >= self._next_expire:
                    self._next_expire = now + self.expire_every
                    await self.expire_once()
                backoff = 0.1
            except StoreError as exc:
                from ..metrics import REDIS_ERRORS

                REDIS_ERRORS.labels("worker").inc()
                event(log, "store_error", error=str(exc), retry_in=backoff)
                self._replaying = True
                ready = False  # a Redis restarted without its data lost the group too
                try:
                    await asyncio.wait_for(stop.wait(), backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, 5.0)


async def run_worker(cfg: Config, *, consumer: str | None = None,
                     hooks: Sequence[ComplaintHook] = ()) -> int:
    """``spamwarden worker``: run the engine until SIGTERM or SIGINT.

    :param hooks: run for every complaint (``spamwarden.wiring.complaint_hooks``).
    """
    from ..redisconn import with_min_timeout

    # XREADGROUP blocks for a second at a time: the socket must wait longer than that.
    store = AsyncListingStore.from_config(with_min_timeout(cfg, 5.0))
    engine = ListingEngine.from_config(cfg, store, consumer=consumer, hooks=list(hooks))
    stop = asyncio.Event()
    stop_on_signals(stop, log=log)
    try:
        await engine.run(stop)
    finally:
        await store.aclose()
    event(log, "worker_stopped", processed=engine.processed)
    return 0
