"""The hidden-primary deployment: BIND, NSD and Knot as secondaries of `spamwarden rbl`.

Each secondary transfers ip.<zone> and dbl.<zone> (AXFR first, then IXFR after each
NOTIFY) and must answer a new listing soon after it is written to Redis.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dns.rdatatype
import pytest
import redis

from spamwarden.redisconn import EmbeddedRedis
from spamwarden.reputation.store import ListingStore
from tests.conftest import need_binary
from tests.support.rblserver import ZONE, RblProcess, ip_name
from tests.support.secondaries import SECONDARIES, Secondary

pytestmark = pytest.mark.integration

ZONES = [f"ip.{ZONE}", f"dbl.{ZONE}"]
JOURNAL = 5


class World:
    def __init__(self, store: ListingStore, rbl: RblProcess, secondaries: list[Secondary]) -> None:
        self.store = store
        self.rbl = rbl
        self.secondaries = secondaries
        self.next_host = 1

    def new_address(self) -> str:
        self.next_host += 1
        return f"198.18.{self.next_host >> 8}.{self.next_host & 255}"


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    need_binary("redis-server")
    for cls in SECONDARIES.values():
        need_binary(cls.binary)
    d = Path(tempfile.mkdtemp(prefix="sw-rbl-sec-"))
    srv = EmbeddedRedis(d / "redis")
    srv.start()
    store = ListingStore(redis.Redis.from_url(srv.url))
    store.add("192.0.2.10", reason="complaints", now=time.time(), ttl=3600)
    store.add("spam.example", reason="domain-complaints", now=time.time(), ttl=3600)
    rbl = RblProcess(d, srv.url, ixfr_journal=str(JOURNAL), notify_interval='"0.2s"')
    secondaries = [cls(d / name, ZONES, rbl.port) for name, cls in SECONDARIES.items()]
    rbl.rbl["notify"] = "[" + ", ".join(f'"127.0.0.1:{s.port}"' for s in secondaries) + "]"
    started: list[Secondary] = []
    try:
        rbl.start()
        for sec in secondaries:
            sec.start()
            started.append(sec)
        yield World(store, rbl, secondaries)
    finally:
        for sec in started:
            sec.stop()
        rbl.stop()
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


def answers(sec: Secondary, name: str, rdtype: str = "A") -> list[str]:
    try:
        msg = sec.query(name, rdtype)
    except Exception:  # noqa: BLE001 - not answering yet
        return []
    return sorted(rd.to_text() for rrset in msg.answer
                  if rrset.rdtype == dns.rdatatype.from_text(rdtype) for rd in rrset)


def wait_listed(secs: list[Secondary], name: str, *, bound: float = 30.0) -> dict[str, float]:
    """Seconds until each secondary answers ``name`` (the bound is the test's deadline only)."""
    start = time.monotonic()
    seen: dict[str, float] = {}
    while len(seen) < len(secs) and time.monotonic() - start < bound:
        for sec in secs:
            if sec.name not in seen and answers(sec, name):
                seen[sec.name] = time.monotonic() - start
        time.sleep(0.005)
    missing = [s.name for s in secs if s.name not in seen]
    assert not missing, f"{name} never answered by {missing}"
    return seen


def test_initial_transfer_gives_every_secondary_the_primary_answers(world: World) -> None:
    for sec in world.secondaries:
        assert answers(sec, ip_name("192.0.2.10")) == ["127.0.0.2"], sec.name
        assert answers(sec, ip_name("192.0.2.10"), "TXT") == \
            sorted(rd.to_text() for rd in world.rbl.query(ip_name("192.0.2.10"), "TXT").answer[0]), sec.name
        assert answers(sec, f"www.spam.example.dbl.{ZONE}"), sec.name
        assert answers(sec, f"2.0.0.127.ip.{ZONE}") == ["127.0.0.2"], sec.name


def test_new_listings_reach_every_secondary(world: World) -> None:
    delays: list[float] = []
    for _ in range(20):
        address = world.new_address()
        world.store.add(address, reason="complaints", now=time.time(), ttl=3600)
        delays.extend(wait_listed(world.secondaries, ip_name(address)).values())
    # and a removal reaches them too
    world.store.delist(address, now=time.time())
    for sec in world.secondaries:
        for _ in range(600):
            if not answers(sec, ip_name(address)):
                break
            time.sleep(0.05)
        assert not answers(sec, ip_name(address)), sec.name
    delays.sort()
    print(f"propagation over {len(delays)} (change, secondary) pairs: "
          f"median {delays[len(delays) // 2]:.3f}s max {delays[-1]:.3f}s")


def test_ixfr_of_one_change_carries_that_change_only(world: World) -> None:
    rbl = world.rbl
    before = int(rbl.query(f"ip.{ZONE}", "SOA").answer[0][0].serial)
    address = world.new_address()
    world.store.add(address, reason="complaints", now=time.time(), ttl=3600)
    wait_listed(world.secondaries, ip_name(address))
    out = rbl.dig(f"ip.{ZONE}", f"IXFR={before}", "+nocmd", "+nostats")
    records = [ln.split() for ln in out.splitlines() if ln and not ln.startswith(";")]
    others = [r for r in records if r[3] != "SOA"]
    assert sorted((r[0], r[3]) for r in others) == [(ip_name(address) + ".", "A"),
                                                    (ip_name(address) + ".", "TXT")]
    assert sum(r[3] == "SOA" for r in records) == 4
    # Knot took it incrementally (its log names the kind of transfer)
    knot = next(s for s in world.secondaries if s.name == "knot")
    assert "IXFR, incoming" in knot.log.read_text(errors="replace")


def test_current_serial_gives_a_single_soa(world: World) -> None:
    rbl = world.rbl
    now = int(rbl.query(f"ip.{ZONE}", "SOA").answer[0][0].serial)
    out = rbl.dig(f"ip.{ZONE}", f"IXFR={now}", "+nocmd", "+nostats")
    records = [ln.split() for ln in out.splitlines() if ln and not ln.startswith(";")]
    assert len(records) == 1 and records[0][3] == "SOA" and records[0][6] == str(now)


@pytest.mark.parametrize("changes", [2, JOURNAL + 3], ids=["within-journal", "journal-gap"])
def test_a_secondary_that_was_down_catches_up(world: World, changes: int) -> None:
    """Down while ``changes`` listings arrive: back up, it gets them (IXFR within the
    journal, a full transfer past it)."""
    for sec in world.secondaries:
        sec.stop()
    try:
        addresses = [world.new_address() for _ in range(changes)]
        for address in addresses:
            world.store.add(address, reason="complaints", now=time.time(), ttl=3600)
        time.sleep(0.5)
    finally:
        for sec in world.secondaries:
            sec.start()
    for address in addresses:
        wait_listed(world.secondaries, ip_name(address), bound=60.0)
