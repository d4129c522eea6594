"""DnsblZone: matching rules, expiry, empty non-terminals, bulk loading, memory plan."""

from __future__ import annotations

import ipaddress
import random

from spamwarden.rbl.zone import DnsblZone

NOW = 1_800_000_000.0
NOW_MS = int(NOW * 1000)
LATER = NOW + 3600


def v4(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def v6(text: str) -> int:
    return int(ipaddress.IPv6Address(text))


def reason_of(zone: DnsblZone, hit) -> str:
    return zone.reasons[hit[0]].reason


def test_exact_beats_cidr_and_longest_prefix_wins() -> None:
    z = DnsblZone()
    z.put("10.0.0.0/8", "cidr", "imported", LATER)
    z.put("10.1.0.0/16", "cidr", "manual", LATER)
    z.put("10.1.2.3", "ip", "complaints", LATER)
    assert reason_of(z, z.lookup_v4(v4("10.1.2.3"), NOW_MS)) == "complaints"
    assert z.lookup_v4(v4("10.1.2.3"), NOW_MS)[1] == v4("10.1.2.3")
    assert z.lookup_v4(v4("10.1.9.9"), NOW_MS) == (z.reason_index("manual", "cidr"), "10.1.0.0/16")
    assert reason_of(z, z.lookup_v4(v4("10.200.0.1"), NOW_MS)) == "imported"
    assert z.lookup_v4(v4("11.0.0.1"), NOW_MS) is None


def test_expired_match_falls_through_to_a_less_specific_one() -> None:
    z = DnsblZone()
    z.put("10.0.0.0/8", "cidr", "imported", LATER)
    z.put("10.1.2.3", "ip", "complaints", NOW - 1)
    assert reason_of(z, z.lookup_v4(v4("10.1.2.3"), NOW_MS)) == "imported"
    z.put("192.0.2.1", "ip", "complaints", NOW + 0.5)
    assert z.lookup_v4(v4("192.0.2.1"), NOW_MS) is not None
    assert z.lookup_v4(v4("192.0.2.1"), NOW_MS + 500) is None  # exact to the millisecond


def test_remove_and_relist() -> None:
    z = DnsblZone()
    z.put("192.0.2.1", "ip", "complaints", LATER)
    z.put("192.0.2.0/24", "cidr", "manual", LATER)
    z.put("2001:db8::1", "ip", "complaints", LATER)
    z.put("example.com", "domain", "domain-complaints", LATER)
    n = len(z)
    z.remove("192.0.2.1", "ip")
    assert reason_of(z, z.lookup_v4(v4("192.0.2.1"), NOW_MS)) == "manual"
    z.remove("192.0.2.0/24", "cidr")
    assert z.lookup_v4(v4("192.0.2.1"), NOW_MS) is None
    z.remove("2001:db8::1", "ip")
    z.remove("example.com", "domain")
    z.remove("never.example", "domain")
    assert len(z) == n - 4
    assert z.lookup_domain(b"example.com", NOW_MS) is None


def test_test_points_cannot_be_removed_or_listed_away() -> None:
    z = DnsblZone()
    z.remove("127.0.0.2", "ip")
    z.remove("::ffff:7f00:2", "ip")
    z.remove("test", "domain")
    z.put("127.0.0.0/8", "cidr", "manual", LATER)
    z.put("invalid", "domain", "domain-manual", LATER)
    assert z.lookup_v4(v4("127.0.0.2"), NOW_MS)[0] == 0
    assert z.lookup_v4(v4("127.0.0.1"), NOW_MS) is None  # RFC 5782 §5: never listed
    assert z.lookup_v6(v6("::ffff:7f00:2"), NOW_MS) is not None
    assert z.lookup_v6(v6("::ffff:7f00:1"), NOW_MS) is None
    assert z.lookup_domain(b"test", NOW_MS) is not None
    assert z.lookup_domain(b"invalid", NOW_MS) is None


def test_domain_matches_itself_and_subdomains_longest_suffix_first() -> None:
    z = DnsblZone()
    z.put("example.com", "domain", "domain-complaints", LATER)
    z.put("bad.example.com", "domain", "url-complaints", LATER)
    assert z.lookup_domain(b"example.com", NOW_MS)[1] == "example.com"
    assert z.lookup_domain(b"a.b.example.com", NOW_MS)[1] == "example.com"
    assert z.lookup_domain(b"x.bad.example.com", NOW_MS)[1] == "bad.example.com"
    assert z.lookup_domain(b"example.org", NOW_MS) is None
    assert z.lookup_domain(b"com", NOW_MS) is None
    assert z.lookup_domain(b"notexample.com", NOW_MS) is None


def test_empty_non_terminals() -> None:
    z = DnsblZone()
    z.put("192.0.2.1", "ip", "complaints", LATER)
    z.put("198.51.100.0/22", "cidr", "manual", LATER)
    z.put("2001:db8::1", "ip", "complaints", LATER)
    z.put("ads.example.org", "domain", "domain-manual", LATER)
    assert z.v4_prefix_exists(192, 1) and z.v4_prefix_exists(192 << 16 | 2, 3)
    assert not z.v4_prefix_exists(192 << 16 | 3, 3)
    assert z.v4_prefix_exists(198 << 16 | 51 << 8 | 101, 3)  # inside the /22
    assert z.v4_prefix_exists(198, 1) and not z.v4_prefix_exists(198 << 8 | 52, 2)
    assert z.v6_prefix_exists(0x2001, 4) and not z.v6_prefix_exists(0x2002, 4)
    assert z.domain_has_children(b"example.org") and z.domain_has_children(b"org")
    assert not z.domain_has_children(b"ads.example.org")
    z.remove("ads.example.org", "domain")
    assert not z.domain_has_children(b"org")


def test_bulk_load_equals_one_by_one() -> None:
    rng = random.Random(5)
    entries = []
    for _ in range(3000):
        entries.append((str(ipaddress.IPv4Address(rng.getrandbits(32))), "ip",
                        rng.choice(["complaints", "manual"]), LATER))
    entries.append(("203.0.113.0/24", "cidr", "manual", LATER))
    entries.append(("example.net", "domain", "domain-manual", LATER))
    entries.append(("not a key", "ip", "manual", LATER))
    entries.append(("192.0.2.5", "address", "address-manual", LATER))  # not published
    entries += entries[:10]  # duplicates
    bulk = DnsblZone()
    bulk.bulk_load(entries)
    single = DnsblZone()
    for key, kind, reason, exp in entries:
        try:
            single.put(key, kind, reason, exp)
        except ValueError:
            pass
    assert len(bulk) == len(single)
    got = sorted((e.key, e.kind, e.reason.reason) for e in bulk.entries(NOW_MS))
    want = sorted((e.key, e.kind, e.reason.reason) for e in single.entries(NOW_MS))
    assert got == want
    for key, *_ in entries[:200]:
        if key[0].isdigit():
            assert bulk.lookup_v4(v4(key), NOW_MS) == single.lookup_v4(v4(key), NOW_MS)


def test_unknown_reason_gets_the_generic_code_of_its_kind() -> None:
    z = DnsblZone()
    z.put("192.0.2.9", "ip", "something-new", LATER)
    z.put("new.example", "domain", "something-new", LATER)
    assert z.reasons[z.lookup_v4(v4("192.0.2.9"), NOW_MS)[0]].code == "127.0.0.3"
    assert z.reasons[z.lookup_domain(b"new.example", NOW_MS)[0]].code == "127.0.1.5"


def _fast_v4_code(zone: DnsblZone, address: str) -> str | None:
    """The A record the UDP fast path answers for an IPv4 address, or None (NXDOMAIN)."""
    import dns.message

    from spamwarden.rbl.responder import DnsblResponder, ZoneSettings

    responder = DnsblResponder(zone, ZoneSettings(apex="bl.example.net", lookup_url="https://x/"),
                               clock=lambda: NOW)
    name = ".".join(reversed(address.split("."))) + ".ip.bl.example.net"
    wire = dns.message.make_query(name, "A", use_edns=False).to_wire()
    out = responder.udp_fast_path(wire, NOW_MS)
    assert out is not None and out == responder._answer(wire, False, "x")
    msg = dns.message.from_wire(out)
    if not msg.answer:
        return None
    return str(msg.answer[0][0].address)


def code_of(zone: DnsblZone, reason: str, kind: str) -> str:
    return zone.reasons[zone.reason_index(reason, kind)].code


def test_changes_after_a_bulk_load_are_found_through_the_start_table(monkeypatch) -> None:
    """Inserts and removals after a load move entries past the /16 start table; every lookup
    still finds them, also once the table is dropped after too many changes."""
    import spamwarden.rbl.zone as zone_module

    monkeypatch.setattr(zone_module, "V4_HINT_DRIFT", 300)
    rng = random.Random(5)
    base = {rng.getrandbits(32) >> 8 << 8 | 1 for _ in range(3000)}  # one per /24: never 127.0.0.1
    z = DnsblZone()
    z.bulk_load((str(ipaddress.IPv4Address(a)), "ip", "complaints", LATER) for a in base)
    assert z._v4_hint
    listed = set(base)
    for step in range(600):
        if step % 3 == 0:
            gone = rng.choice(sorted(listed))
            z.remove(str(ipaddress.IPv4Address(gone)), "ip")
            listed.discard(gone)
        else:
            new = rng.getrandbits(32) >> 8 << 8 | 2
            z.put(str(ipaddress.IPv4Address(new)), "ip", "manual", LATER)
            listed.add(new)
        if step in (10, 299, 599):
            for a in rng.sample(sorted(listed), 200) + [rng.getrandbits(32) | 3 for _ in range(50)]:
                hit = z.lookup_v4(a, NOW_MS)
                assert (hit is not None) == (a in listed), hex(a)
                assert (_fast_v4_code(z, str(ipaddress.IPv4Address(a))) is not None) == (a in listed)
    assert not z._v4_hint  # dropped after 300 changes; the plain binary search answers


def test_blocks_listed_after_a_load_match_and_removed_ones_stop() -> None:
    z = DnsblZone()
    z.bulk_load([("192.0.2.0/24", "cidr", "imported", LATER), ("198.51.100.7", "ip", "complaints", LATER)])
    assert _fast_v4_code(z, "192.0.2.200") == code_of(z, "imported", "cidr")
    assert _fast_v4_code(z, "203.0.113.9") is None
    z.put("203.0.113.0/28", "cidr", "manual", LATER)
    z.put("10.0.0.0/8", "cidr", "manual", LATER)
    assert _fast_v4_code(z, "203.0.113.9") == code_of(z, "manual", "cidr")
    assert _fast_v4_code(z, "203.0.113.16") is None  # same /20, outside the /28
    assert _fast_v4_code(z, "10.255.255.254") == code_of(z, "manual", "cidr")
    z.remove("192.0.2.0/24", "cidr")
    z.remove("10.0.0.0/8", "cidr")
    assert _fast_v4_code(z, "192.0.2.200") is None
    assert _fast_v4_code(z, "10.1.2.3") is None
    assert _fast_v4_code(z, "198.51.100.7") == code_of(z, "complaints", "ip")
