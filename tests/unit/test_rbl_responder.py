"""DnsblResponder and the wire layer: DNS semantics on bytes, the fast path, fuzzing."""

from __future__ import annotations

import struct

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spamwarden.rbl.responder import DnsblResponder, Transfer, ZoneSettings
from spamwarden.rbl.wire import QueryFormatError, encode_name, parse_query, txt_rdata
from spamwarden.rbl.zone import DnsblZone

NOW = 1_800_000_000.0
ZONE = "bl.example.net"


def make_responder(**settings) -> DnsblResponder:
    z = DnsblZone()
    z.put("192.0.2.10", "ip", "complaints", NOW + 3600)
    z.put("198.51.100.0/24", "cidr", "manual", NOW + 3600)
    z.put("2001:db8::25", "ip", "complaints", NOW + 3600)
    z.put("spam.example", "domain", "domain-complaints", NOW + 3600)
    z.put("gone.example", "domain", "domain-complaints", NOW - 1)
    z.serial = 77
    s = ZoneSettings(apex=ZONE, lookup_url="https://bl.example.net/lookup/", **settings)
    return DnsblResponder(z, s, clock=lambda: NOW)


R = make_responder()
V6_LISTED = "5.2." + "0." * 22 + f"8.b.d.0.1.0.0.2.ip.{ZONE}"  # 2001:db8::25


def ask(name: str, rdtype: str = "A", *, tcp: bool = False, client: str = "192.0.2.1",
        responder: DnsblResponder = R, **make) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, **make)
    out = responder.answer(q.to_wire(), tcp=tcp, client=client)
    assert isinstance(out, bytes)
    return dns.message.from_wire(out)


def test_listed_unlisted_and_the_negative_ttl() -> None:
    m = ask(f"10.2.0.192.ip.{ZONE}")
    assert m.rcode() == 0 and m.answer[0][0].to_text() == "127.0.0.2" and m.answer[0].ttl == 300
    m = ask(f"11.2.0.192.ip.{ZONE}")
    assert m.rcode() == dns.rcode.NXDOMAIN
    [soa] = m.authority
    assert soa.name.to_text() == f"ip.{ZONE}." and soa.ttl == 60 and soa[0].serial == 77
    assert soa[0].minimum == 60


def test_txt_strings_are_at_most_255_bytes() -> None:
    long = DnsblResponder(R.zone, ZoneSettings(apex=ZONE, lookup_url="https://x/" + "a" * 600),
                          clock=lambda: NOW)
    m = ask(f"10.2.0.192.ip.{ZONE}", "TXT", tcp=True, responder=long)
    strings = m.answer[0][0].strings
    assert len(strings) == 3 and all(len(s) <= 255 for s in strings)
    assert txt_rdata("") == b"\x00"


def test_expired_domain_is_not_listed() -> None:
    assert ask(f"gone.example.dbl.{ZONE}").rcode() == dns.rcode.NXDOMAIN


def test_opcode_class_and_malformed() -> None:
    q = dns.message.make_query(ZONE, "SOA")
    q.set_opcode(dns.opcode.UPDATE)
    m = dns.message.from_wire(R.answer(q.to_wire(), tcp=False, client="x"))
    assert m.rcode() == dns.rcode.NOTIMP
    m = ask(f"10.2.0.192.ip.{ZONE}", rdclass="CH")
    assert m.rcode() == dns.rcode.REFUSED
    assert R.answer(b"\x00\x01", tcp=False, client="x") is None
    wire = bytearray(dns.message.make_query(ZONE, "A").to_wire())
    wire[12] = 0xC0  # compression pointer in the question
    out = R.answer(bytes(wire), tcp=False, client="x")
    assert out is not None and out[3] & 0xF == dns.rcode.FORMERR and out[:2] == wire[:2]


def test_transfer_only_to_allowed_clients_over_tcp() -> None:
    q = dns.message.make_query(f"ip.{ZONE}", "AXFR").to_wire()
    assert isinstance(R.answer(q, tcp=True, client="127.0.0.1"), Transfer)
    assert isinstance(R.answer(q, tcp=True, client="::ffff:127.0.0.1"), Transfer)
    for client, tcp in (("192.0.2.1", True), ("127.0.0.1", False)):
        out = R.answer(q, tcp=tcp, client=client)
        assert isinstance(out, bytes) and out[3] & 0xF == dns.rcode.REFUSED
    q = dns.message.make_query(f"x.ip.{ZONE}", "AXFR").to_wire()
    out = R.answer(q, tcp=True, client="127.0.0.1")
    assert isinstance(out, bytes) and out[3] & 0xF == 9  # NOTAUTH


def test_transfer_messages_start_and_end_with_the_soa() -> None:
    q = dns.message.make_query(f"ip.{ZONE}", "AXFR").to_wire()
    t = R.answer(q, tcp=True, client="127.0.0.1")
    assert isinstance(t, Transfer)
    msgs = [dns.message.from_wire(m, one_rr_per_rrset=True) for m in R.transfer_messages(t)]
    rrsets = [rr for m in msgs for rr in m.answer]
    assert rrsets[0].rdtype == dns.rdatatype.SOA and rrsets[-1].rdtype == dns.rdatatype.SOA
    names = {rr.name.to_text() for rr in rrsets}
    assert f"10.2.0.192.ip.{ZONE}." in names and f"*.100.51.198.ip.{ZONE}." in names
    assert not any("dbl" in n for n in names)


@pytest.mark.parametrize("name,rdtype", [
    (f"10.2.0.192.ip.{ZONE}", "A"), (f"10.2.0.192.ip.{ZONE}", "TXT"),
    (f"11.2.0.192.iP.{ZONE.upper()}", "A"), (f"7.100.51.198.ip.{ZONE}", "TXT"),
    (f"www.spam.example.dbl.{ZONE}", "A"), (f"example.dbl.{ZONE}", "A"),
    (f"nothing.example.dbl.{ZONE}", "TXT"), (f"2.0.0.127.ip.{ZONE}", "TXT"),
    (f"1.2.3.4.ip.{ZONE}", "A"), (f"01.2.3.4.ip.{ZONE}", "A"), (f"256.2.3.4.ip.{ZONE}", "A"),
    (V6_LISTED, "A"), (V6_LISTED.upper(), "TXT"), (V6_LISTED.replace("5.2", "6.2", 1), "A"),
    (V6_LISTED.replace("5.2", "_.2", 1), "A"), (V6_LISTED.replace("5.2", " .2", 1), "A"),
])
@pytest.mark.parametrize("edns", [-1, 0])
def test_fast_path_gives_the_same_bytes_as_the_general_path(name: str, rdtype: str, edns: int) -> None:
    wire = dns.message.make_query(name, rdtype, use_edns=edns, want_dnssec=edns == 0).to_wire()
    fast = R.answer_udp_fast(wire)
    slow = R._answer(wire, False, "x")
    if fast is not None:
        assert fast == slow
    if name.startswith(("10.2", "www.spam", "nothing", "5.2", "6.2")):
        assert fast is not None  # the common cases do take the fast path


names = st.sampled_from([V6_LISTED, f"10.2.0.192.ip.{ZONE}", f"5.100.51.198.ip.{ZONE}", f"spam.example.dbl.{ZONE}",
                         f"a.b.dbl.{ZONE}", f"1.1.1.1.ip.{ZONE}", ZONE, "example.com"])


@settings(max_examples=300, deadline=None)
@given(names, st.sampled_from(["A", "TXT", "AAAA", "ANY", "SOA"]), st.sampled_from([-1, 0]),
       st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
       st.integers(0, 40))
def test_mutated_queries_never_raise_and_fast_equals_slow(name, rdtype, edns, flips, cut) -> None:
    wire = bytearray(dns.message.make_query(name, rdtype, use_edns=edns).to_wire())
    for pos, value in flips:
        if pos < len(wire):
            wire[pos] = value
    data = bytes(wire[:len(wire) - cut] if cut < len(wire) else wire)
    for tcp in (False, True):
        out = R.answer(data, tcp=tcp, client="127.0.0.1")
        assert out is None or isinstance(out, (bytes, Transfer))
        if isinstance(out, bytes):
            assert out[:2] == data[:2] and out[2] & 0x80  # same id, a response
            dns.message.from_wire(out, ignore_trailing=True)  # well-formed
    fast = R.answer_udp_fast(data)
    if fast is not None:
        assert fast == R._answer(data, False, "x")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise(data: bytes) -> None:
    for tcp in (False, True):
        out = R.answer(data, tcp=tcp, client="198.51.100.1")
        assert out is None or isinstance(out, bytes)
    try:
        parse_query(data)
    except QueryFormatError:
        pass


def test_udp_answers_respect_the_payload_size() -> None:
    big = DnsblResponder(R.zone, ZoneSettings(apex=ZONE, lookup_url="https://x/" + "a" * 700),
                         clock=lambda: NOW)
    name = f"10.2.0.192.ip.{ZONE}"
    m = ask(name, "TXT", responder=big)
    assert m.flags & dns.flags.TC and not m.answer
    m = ask(name, "TXT", responder=big, use_edns=0, payload=4096)
    assert not m.flags & dns.flags.TC and m.answer  # fits 1232, the server's own limit
    q = dns.message.make_query(name, "TXT", use_edns=0, payload=512).to_wire()
    out = big.answer(q, tcp=False, client="x")
    assert isinstance(out, bytes) and len(out) <= 512 and out[2] & 0x02


def test_encode_name_limits() -> None:
    assert encode_name("a.b.") == b"\x01a\x01b\x00"
    with pytest.raises(ValueError):
        encode_name("a" * 64 + ".b")
    with pytest.raises(ValueError):
        encode_name(".".join(["abcdefgh"] * 40))
    assert struct.unpack("!H", b"\x00\x01")[0] == 1


def test_a_label_holding_a_dot_is_not_two_labels() -> None:
    q = dns.message.make_query(dns.name.Name([b"x.spam", b"example", b"dbl", b"bl", b"example",
                                              b"net", b""]), "A")
    wire = q.to_wire()
    assert R.answer_udp_fast(wire) is None
    out = R.answer(wire, tcp=False, client="x")
    assert isinstance(out, bytes) and out[3] & 0xF == dns.rcode.NXDOMAIN
    assert ask(f"x.spam.example.dbl.{ZONE}").rcode() == dns.rcode.NOERROR


def test_127_0_0_1_is_never_listed_on_any_path() -> None:
    z = DnsblZone()
    z.put("127.0.0.1", "ip", "manual", NOW + 3600)
    z.put("127.0.0.0/8", "cidr", "manual", NOW + 3600)
    r = DnsblResponder(z, ZoneSettings(apex=ZONE, lookup_url="u/"), clock=lambda: NOW)
    wire = dns.message.make_query(f"1.0.0.127.ip.{ZONE}", "A").to_wire()
    for out in (r.answer_udp_fast(wire), r.answer(wire, tcp=True, client="x")):
        assert isinstance(out, bytes) and out[3] & 0xF == dns.rcode.NXDOMAIN
    assert ask(f"9.0.0.127.ip.{ZONE}", responder=r).answer  # the rest of the block is listed
