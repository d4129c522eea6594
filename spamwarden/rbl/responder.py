"""Query in, response out: the DNS semantics of the blocklist zone, free of I/O.

The zone ``<apex>`` holds two subtrees (RFC 5782): ``ip.<apex>`` (IPv4 as four
reversed decimal octets, IPv6 as 32 reversed nibbles, §2.1 and §2.4) and
``dbl.<apex>`` (domains, §2.3).  The apex carries SOA and NS.  Every response
copies the question bytes as received (0x20 mixed case survives) and points to
them for owner names, so answers are pasted from pre-built record tails.
"""

from __future__ import annotations

import ipaddress
import re
import struct
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .transfer import IxfrJournal, Record, transfer_records
from .wire import (
    C_ANY,
    C_IN,
    F_AA,
    F_CD,
    F_QR,
    F_RD,
    F_TC,
    FORMERR,
    HEADER,
    NOERROR,
    NOTIMP,
    NXDOMAIN,
    REFUSED,
    SERVFAIL,
    T_A,
    T_AAAA,
    T_ANY,
    T_AXFR,
    T_IXFR,
    T_NS,
    T_SOA,
    T_TXT,
    Query,
    QueryFormatError,
    a_rdata,
    aaaa_rdata,
    encode_name,
    error_response,
    opt_rr,
    parse_query,
    rr,
    soa_rdata,
    txt_rdata,
)
from .zone import DnsblZone, v4_key_text
from .zone_settings import ZoneSettings

__all__ = ["ZoneSettings", "DnsblResponder", "Transfer", "NOTAUTH"]

NOTAUTH = 9  # RFC 2845 / RFC 5936 §2.2.1
_TAIL = struct.Struct("!HHIH")
_PTR = struct.Struct("!H")
_DIGITS = frozenset(b"0123456789")
_NIBBLES = {c.encode(): int(c, 16) for c in "0123456789abcdef"}
MAX_TRANSFER_MESSAGE = 16384
_OCTETS = {str(i).encode(): i for i in range(256)}
#: an IPv4 octet label as on the wire, length byte included (no leading zeros, as the parser)
_WIRE_OCTETS = {bytes((len(str(i)),)) + str(i).encode(): i for i in range(256)}
_WIRE_OCTET = rb"(\x01[0-9]|\x02[0-9][0-9]|\x03[0-9][0-9][0-9])"
_NIBBLE_LENGTHS = b"\x01" * 32
# flags and section counts of a fast-path response, by (RD << 7 | CD << 6 | answers << 5 |
# OPT << 4 | rcode): QR and AA set, RD and CD copied; one answer, or one SOA in authority.
_FLAGS_COUNTS = {
    rd << 7 | cd << 6 | an << 5 | ar << 4 | rcode: struct.pack(
        "!HHHHH", F_QR | F_AA | (F_RD if rd else 0) | (F_CD if cd else 0) | rcode, 1, an, 1 - an, ar)
    for rd in (0, 1) for cd in (0, 1) for an in (0, 1) for ar in (0, 1) for rcode in (0, 3)
}


@dataclass(frozen=True)
class Transfer:
    """A permitted zone transfer: the server streams :meth:`DnsblResponder.transfer_messages`.

    ``section`` is ``""`` for the apex zone, ``"ip"`` or ``"dbl"`` for the sub-zones.
    """

    query: Query
    section: str


class DnsblResponder:
    """Answers DNS queries for the blocklist zone from a :class:`DnsblZone`.

    :param zone: the index; may be replaced later with :meth:`use_zone`.
    :param settings: the zone's published data.
    :param clock: Unix time in seconds (injected for tests).
    """

    def __init__(self, zone: DnsblZone, settings: ZoneSettings, *,
                 clock: Callable[[], float] = time.time, journal_size: int = 10000) -> None:
        self.settings = settings
        self.clock = clock
        self.zone = zone
        #: the differences IXFR answers with; the follower records each change in it
        self.journal = IxfrJournal(journal_size)
        self.journal.reset(zone.serial)
        #: False until the first load: listing names are answered SERVFAIL meanwhile.
        self.ready = True
        s = settings
        self._apex_labels = tuple(
            label.encode() for label in s.apex.split("."))
        self._napex = len(self._apex_labels)
        self._apex_wire = encode_name(s.apex)
        self._ns_rdata = encode_name(s.mname)
        self._ns_tail = _TAIL.pack(T_NS, C_IN, s.ttl, len(self._ns_rdata)) + self._ns_rdata
        mname_labels = tuple(label.encode() for label in s.mname.split("."))
        self._ns_host: tuple[bytes, ...] | None = None
        self._ns_host_a: list[bytes] = []
        self._ns_host_aaaa: list[bytes] = []
        if mname_labels[-self._napex:] == self._apex_labels and len(mname_labels) > self._napex:
            self._ns_host = mname_labels[:-self._napex]
            for addr in s.ns_addresses:
                ip = ipaddress.ip_address(addr)
                if ip.version == 4:
                    self._ns_host_a.append(_TAIL.pack(T_A, C_IN, s.ttl, 4) + a_rdata(addr))
                else:
                    self._ns_host_aaaa.append(_TAIL.pack(T_AAAA, C_IN, s.ttl, 16) + aaaa_rdata(addr))
        self._soa_serial = -1
        self._soa_rdata = b""
        self._soa_tail = b""
        self._soa_neg_tail = b""
        self._a_tails: list[bytes] = []
        self._a_records: list[bytes] = []
        self._neg_authority: dict[int, bytes] = {}
        self._reason_count = -1
        self._opt = opt_rr(s.udp_payload)
        self._opt_do = opt_rr(s.udp_payload, do=True)
        apex_wire = encode_name(s.apex)
        self._ip_suffix = b"\x02ip" + apex_wire
        self._dbl_suffix = b"\x03dbl" + apex_wire
        # The most common query, header and question checked in one C call: a standard query
        # (QR=0, opcode 0) with one question, no records but at most one (OPT), for four
        # reversed octet labels under ip.<apex> (any case, RFC 4343), type A or TXT, class IN.
        self._v4_query = re.compile(
            b"..[\x00-\x07].\x00\x01\x00\x00\x00\x00\x00([\x00\x01])" + _WIRE_OCTET * 4
            + b"(?i:" + re.escape(self._ip_suffix) + b")\x00([\x01\x10])\x00\x01", re.DOTALL)
        self._txt_prefixes: list[bytes] = []

    # -- pre-built pieces ------------------------------------------------------------------

    def use_zone(self, zone: DnsblZone) -> None:
        """Answer from another index from now on (after a full reload)."""
        self.zone = zone
        self._reason_count = -1
        self.journal.reset(zone.serial)

    def _refresh(self) -> None:
        zone = self.zone
        if zone.serial != self._soa_serial:
            s = self.settings
            self._soa_serial = zone.serial
            self._soa_rdata = soa_rdata(s.mname, s.rname, serial=zone.serial, refresh=s.refresh,
                                        retry=s.retry, expire=s.expire, minimum=s.negative_ttl)
            self._soa_tail = _TAIL.pack(T_SOA, C_IN, s.ttl, len(self._soa_rdata)) + self._soa_rdata
            neg = min(s.ttl, s.negative_ttl)  # RFC 2308 §3
            self._soa_neg_tail = _TAIL.pack(T_SOA, C_IN, neg, len(self._soa_rdata)) + self._soa_rdata
            # the negative answer's authority SOA, by where the zone apex sits in the question
            self._neg_authority = {start: _PTR.pack(0xC000 | start) + self._soa_neg_tail
                                   for start in range(12, 270)}
        if len(zone.reasons) != self._reason_count:
            ttl = self.settings.ttl
            self._a_tails = [_TAIL.pack(T_A, C_IN, ttl, 4) + a_rdata(r.code) for r in zone.reasons]
            self._a_records = [b"\xc0\x0c" + tail for tail in self._a_tails]
            url = self.settings.lookup_url
            self._txt_prefixes = [f"{r.text}; {url}".encode() for r in zone.reasons]
            self._reason_count = len(zone.reasons)

    def txt_text(self, reason_index: int, key: str) -> str:
        """The TXT answer of a listing: reason text and the public lookup URL of the key."""
        reason = self.zone.reasons[reason_index]
        # Keys are normalized IPs, CIDRs and IDNA names: only the "/" of a CIDR needs escaping.
        return f"{reason.text}; {self.settings.lookup_url}{key.replace('/', '%2F')}"

    def _txt_tail(self, reason_index: int, key: str) -> bytes:
        raw = self._txt_prefixes[reason_index] + key.replace("/", "%2F").encode("utf-8", "replace")
        n = len(raw)
        if n <= 255:  # one string: the common case, built without txt_rdata's loop
            return _TAIL.pack(T_TXT, C_IN, self.settings.ttl, n + 1) + bytes((n,)) + raw
        rdata = txt_rdata(self.txt_text(reason_index, key))
        return _TAIL.pack(T_TXT, C_IN, self.settings.ttl, len(rdata)) + rdata

    # -- fast path -------------------------------------------------------------------------

    def answer_udp_fast(self, data: bytes) -> bytes | None:
        """:meth:`answer` for the common UDP query, or None when the general path must answer.

        Never raises.  The server calls this first and :meth:`answer` when it returns None.
        """
        try:
            return self.udp_fast_path(data, int(self.clock() * 1000))
        except Exception:  # noqa: BLE001 - the general path answers (FORMERR, SERVFAIL)
            return None

    def _fast(self, data: bytes) -> bytes | None:
        """:meth:`udp_fast_path` at the responder's clock."""
        return self.udp_fast_path(data, int(self.clock() * 1000))

    def udp_fast_path(self, data: bytes, now_ms: int) -> bytes | None:
        """The common UDP query, answered without the general parser, or None.

        The server's UDP loop calls this directly, with the time read once per batch of
        datagrams, and treats an exception like None (garbage can raise IndexError here).

        Handles exactly: a standard query (QR=0, opcode 0), one question, class IN,
        type A or TXT, no records but at most one plain EDNS0 OPT (version 0), for a
        full IPv4 or IPv6 name under ``ip.<apex>`` or a name under ``dbl.<apex>``.  Anything
        else (and every corner: ENT checks that need IPv6, truncation) returns None
        and goes through :meth:`_answer`, which gives the same bytes for these cases.
        """
        v4 = self._v4_query.match(data)
        if v4 is not None and self.ready:
            return self._v4_fast(data, v4, now_ms)
        n = len(data)
        if n < 17 or data[2] & 0xF8 or data[4:10] != b"\x00\x01\x00\x00\x00\x00" or not self.ready:
            return None
        ar = data[10:12]
        end = data.find(b"\x00", 12)
        # end + 1 - 12: the name's wire length; over 255 the general parser says FORMERR
        if end < 0 or end + 5 > n or end - 11 > 255:
            return None
        qtail = data[end + 1:end + 5]
        if qtail == b"\x00\x01\x00\x01":
            qtype = T_A
        elif qtail == b"\x00\x10\x00\x01":
            qtype = T_TXT
        else:
            return None
        qend = end + 5
        if ar == b"\x00\x00":
            if qend != n:
                return None
            opt = b""
            counts_ar = 0
        elif ar == b"\x00\x01":
            # a plain OPT: root owner, type 41, payload, ext-rcode 0, version 0, flags, rdlen
            if n < qend + 11 or data[qend:qend + 3] != b"\x00\x00\x29" or data[qend + 5] or data[qend + 6]:
                return None
            if qend + 11 + (data[qend + 9] << 8 | data[qend + 10]) != n:
                return None
            opt = self._opt_do if data[qend + 7] & 0x80 else self._opt
            counts_ar = 1
        else:
            return None
        zone = self.zone
        if zone.serial != self._soa_serial or len(zone._reasons) != self._reason_count:
            self._refresh()
        ip_sfx = self._ip_suffix
        start = end + 1 - len(ip_sfx)
        if start == 76 and data[12:76:2] == _NIBBLE_LENGTHS and data[start:end + 1].lower() == ip_sfx:
            # 32 nibbles, reversed (RFC 5782 §2.4)
            nibbles = data[13:76:2]
            if nibbles.translate(None, b"0123456789abcdefABCDEF"):
                return None
            hit6 = zone.lookup_v6(int(nibbles[::-1], 16), now_ms)
            if hit6 is None:
                rcode = NXDOMAIN
                records = self._neg_authority[start]
                counts = 0
            else:
                rcode = NOERROR
                counts = 1
                if qtype == T_A:
                    records = self._a_records[hit6[0]]
                else:
                    records = b"\xc0\x0c" + self._txt_tail(hit6[0], hit6[1])
        elif start > 12 and data[start:end + 1].lower() == ip_sfx:
            return None  # not 32 nibbles (four octets went to _v4_fast): the general path
        else:
            dbl_sfx = self._dbl_suffix
            start = end + 1 - len(dbl_sfx)
            if start <= 12 or data[start:end + 1].lower() != dbl_sfx:
                return None
            parts = []
            p = 12
            while p < start:
                ln = data[p]
                if ln > 63:
                    return None
                parts.append(data[p + 1:p + 1 + ln])
                p += ln + 1
            if p != start:
                return None
            name = b".".join(parts).lower()
            if name.count(b".") != len(parts) - 1:
                return None  # a label with a dot in it: the general path refuses to match it
            hit = zone.lookup_domain(name, now_ms)
            if hit is None:
                rcode = NOERROR if zone.domain_has_children(name) else NXDOMAIN
                records = self._neg_authority[start]
                counts = 0
            else:
                rcode = NOERROR
                counts = 1
                if qtype == T_A:
                    records = self._a_records[hit[0]]
                else:
                    records = b"\xc0\x0c" + self._txt_tail(hit[0], hit[1])
        out = b"".join((data[:2], _FLAGS_COUNTS[(data[2] & 0x01) << 7 | (data[3] & 0x10) << 2
                                                | counts << 5 | counts_ar << 4 | rcode],
                        data[12:qend], records, opt))
        if len(out) > 512 and (not counts_ar or len(out) > min(
                self.settings.udp_payload, data[qend + 3] << 8 | data[qend + 4])):
            return None  # the general path truncates
        return out

    def _v4_fast(self, data: bytes, v4: re.Match[bytes], now_ms: int) -> bytes | None:
        """:meth:`udp_fast_path` for an IPv4 name (RFC 5782 §2.1), ``v4`` from ``_v4_query``."""
        ar, l4, l3, l2, l1, qt = v4.groups()
        qend = v4.end()
        n = len(data)
        if ar == b"\x00":
            if qend != n:
                return None
            opt = b""
            ar_bit = 0
        else:
            # a plain OPT: root owner, type 41, payload, ext-rcode 0, version 0, flags, rdlen
            if n < qend + 11 or data[qend:qend + 3] != b"\x00\x00\x29" or data[qend + 5] or data[qend + 6]:
                return None
            if qend + 11 + (data[qend + 9] << 8 | data[qend + 10]) != n:
                return None
            opt = self._opt_do if data[qend + 7] & 0x80 else self._opt
            ar_bit = 0x10
        zone = self.zone
        if zone.serial != self._soa_serial or len(zone._reasons) != self._reason_count:
            self._refresh()
        octets = _WIRE_OCTETS
        o1 = octets.get(l1)
        o2 = octets.get(l2)
        o3 = octets.get(l3)
        o4 = octets.get(l4)
        if o1 is None or o2 is None or o3 is None or o4 is None:
            return None  # a leading zero or over 255: the general path
        address = o1 << 24 | o2 << 16 | o3 << 8 | o4
        # zone.lookup_v4 inlined
        keys = zone._v4_keys
        hint = zone._v4_hint
        if hint:
            top = address >> 16
            nkeys = len(keys)
            lo = hint[top] - zone._v4_drift
            hi = hint[top + 1] + zone._v4_drift
            i = bisect_left(keys, address, lo if lo > 0 else 0, hi if hi < nkeys else nkeys)
        else:
            i = bisect_left(keys, address)
        hit4: tuple[int, str | int] | None = None
        if address != 0x7F000001:  # never listed, RFC 5782 §5 (as lookup_v4 says)
            if i < len(keys) and keys[i] == address and zone._v4_vals[i] >> 8 > now_ms:
                hit4 = (zone._v4_vals[i] & 0xFF, address)
            else:
                units = zone._v4_units
                if units is not None and units[address >> 12]:
                    net = zone._v4_nets.match(address, now_ms)
                    if net is not None:
                        hit4 = (net[0] & 0xFF, net[1])
        if hit4 is None:
            start = qend - 4 - len(self._ip_suffix)
            if start == 20:
                return None  # four one-character labels: also an IPv6 prefix (ENT check)
            records = self._neg_authority[start]
            flags = ar_bit | NXDOMAIN
        else:
            flags = ar_bit | 0x20  # one answer, NOERROR
            if qt == b"\x01":
                records = self._a_records[hit4[0]]
            else:
                records = b"\xc0\x0c" + self._txt_tail(hit4[0], v4_key_text(hit4[1]))
        out = b"".join((data[:2], _FLAGS_COUNTS[(data[2] & 0x01) << 7 | (data[3] & 0x10) << 2 | flags],
                        data[12:qend], records, opt))
        if len(out) > 512 and (not ar_bit or len(out) > min(
                self.settings.udp_payload, data[qend + 3] << 8 | data[qend + 4])):
            return None  # the general path truncates
        return out

    def native_context(self) -> tuple[object, ...]:
        """What the C answer path (``_native.serve``/``answer``) reads: the exact IPv4
        arrays and their /16 table, the CIDR /20 filter, the domain tables, and the
        pre-built record pieces.

        Built per batch of datagrams (the arrays may be replaced or resized between them).
        """
        zone = self.zone
        if zone.serial != self._soa_serial or len(zone._reasons) != self._reason_count:
            self._refresh()
        return (zone._v4_keys, zone._v4_vals, zone._v4_hint, zone._v4_drift, zone._v4_units,
                self._ip_suffix, self._a_records, self._soa_neg_tail, self._opt, self._opt_do,
                self._txt_prefixes, self.settings.ttl, self._dbl_suffix, zone._domains,
                zone._suffixes)

    # -- answering -------------------------------------------------------------------------

    def answer(self, data: bytes, *, tcp: bool, client: str) -> bytes | Transfer | None:
        """The response to one query message.

        :param data: the query (UDP payload, or TCP message without the length prefix).
        :param tcp: whether it came over TCP (no truncation, transfers allowed).
        :param client: the client's IP address (for ``transfer_allow``).
        :returns: response bytes; a :class:`Transfer` for a permitted AXFR/IXFR over TCP;
            ``None`` to drop (not a query, or too broken to answer).  Never raises.
        """
        try:
            if not tcp:
                try:
                    fast = self._fast(data)
                except IndexError:  # a label length pointing past the end: the parser says why
                    fast = None
                if fast is not None:
                    return fast
            return self._answer(data, tcp, client)
        except QueryFormatError as exc:
            if exc.id is None:
                return None
            return error_response(exc.id, exc.flags, FORMERR, question=exc.question)
        except Exception:  # noqa: BLE001 - a bug must cost one answer, never the server
            if len(data) < 12:
                return None
            qid, flags = struct.unpack_from("!HH", data)
            if flags & F_QR:
                return None
            return error_response(qid, flags, SERVFAIL)

    def _answer(self, data: bytes, tcp: bool, client: str) -> bytes | Transfer | None:
        q = parse_query(data)
        if q.opcode != 0:
            return error_response(q.id, q.flags, NOTIMP, question=q.question)
        self._refresh()
        edns = q.edns_payload is not None
        if edns and q.edns_version != 0:
            # BADVERS = 16: upper 8 bits in the OPT, lower 4 bits (0) in the header. RFC 6891 §6.1.3
            flags = F_QR | (q.flags & (F_RD | F_CD))
            return (HEADER.pack(q.id, flags, 1, 0, 0, 1) + q.question
                    + opt_rr(self.settings.udp_payload, ext_rcode=1))
        labels = q.labels
        napex = self._napex
        if len(labels) < napex or labels[len(labels) - napex:] != self._apex_labels:
            return self._build(q, REFUSED, aa=False, tcp=tcp)
        if q.qclass != C_IN and q.qclass != C_ANY:
            return self._build(q, REFUSED, aa=False, tcp=tcp)
        rel = labels[:len(labels) - napex]
        offsets = q.label_offsets
        # Three zones share this server: the apex, ip.<apex> and dbl.<apex> (each with SOA
        # and NS, so secondaries can mirror ip and dbl separately).  zone_ptr points at the
        # apex of the zone the name falls in, inside the question.
        top = rel[-1] if rel else b""
        section = top if top == b"ip" or top == b"dbl" else b""
        if section:
            sub = rel[:-1]
            zone_ptr = 0xC000 | (12 + offsets[len(rel) - 1])
        else:
            sub = rel
            zone_ptr = 0xC000 | (12 + (offsets[len(rel)] if rel else 0))
        qtype = q.qtype
        if qtype == T_AXFR or qtype == T_IXFR:
            if sub:
                return self._build(q, NOTAUTH, aa=False, tcp=tcp)
            if not self.settings.transfer_allowed(client):
                return self._build(q, REFUSED, aa=False, tcp=tcp)
            if not tcp:
                if qtype == T_IXFR:
                    # RFC 1995 §2: a UDP IXFR that does not fit gets the SOA alone.
                    return self._build(q, NOERROR, tcp=tcp,
                                       answers=[_PTR.pack(zone_ptr) + self._soa_tail])
                return self._build(q, REFUSED, aa=False, tcp=tcp)
            return Transfer(q, section.decode())
        if not sub:
            answers: list[bytes] = []
            if qtype == T_SOA or qtype == T_ANY:
                answers.append(_PTR.pack(zone_ptr) + self._soa_tail)
            if qtype == T_NS or qtype == T_ANY:
                answers.append(_PTR.pack(zone_ptr) + self._ns_tail)
            return self._positive(q, answers, zone_ptr, tcp)
        if section == b"ip":
            return self._ip(q, sub, zone_ptr, tcp)
        if section == b"dbl":
            return self._dbl(q, sub, zone_ptr, tcp)
        if self._ns_host is not None and sub == self._ns_host:
            if qtype == T_A or qtype == T_ANY:
                answers = [b"\xc0\x0c" + t for t in self._ns_host_a]
            else:
                answers = []
            if qtype == T_AAAA or qtype == T_ANY:
                answers += [b"\xc0\x0c" + t for t in self._ns_host_aaaa]
            return self._positive(q, answers, zone_ptr, tcp)
        return self._build(q, NXDOMAIN, tcp=tcp, authority=[_PTR.pack(zone_ptr) + self._soa_neg_tail])

    def _ip(self, q: Query, sub: tuple[bytes, ...], apex_ptr: int, tcp: bool) -> bytes:
        if not self.ready:
            return self._build(q, SERVFAIL, aa=False, tcp=tcp)
        zone = self.zone
        n = len(sub)
        now_ms = int(self.clock() * 1000)
        v4: int | None = None
        if n <= 4:
            v4 = 0
            for label in reversed(sub):
                if not label or len(label) > 3 or not _DIGITS.issuperset(label) or (
                        len(label) > 1 and label[0] == 48):
                    v4 = None
                    break
                octet = int(label)
                if octet > 255:
                    v4 = None
                    break
                v4 = v4 << 8 | octet
        v6: int | None = None
        if n <= 32:
            v6 = 0
            for label in reversed(sub):
                nib = _NIBBLES.get(label)
                if nib is None:
                    v6 = None
                    break
                v6 = v6 << 4 | nib
        if v4 is not None and n == 4:
            hit4 = zone.lookup_v4(v4, now_ms)
            if hit4 is not None:
                return self._listed(q, hit4[0], hit4[1], apex_ptr, tcp, v4key=True)
        if v6 is not None and n == 32:
            hit6 = zone.lookup_v6(v6, now_ms)
            if hit6 is not None:
                return self._listed(q, hit6[0], hit6[1], apex_ptr, tcp)
        exists = (v4 is not None and n < 4 and zone.v4_prefix_exists(v4, n)) or (
            v6 is not None and n < 32 and zone.v6_prefix_exists(v6, n))
        if exists:
            return self._positive(q, [], apex_ptr, tcp)
        return self._build(q, NXDOMAIN, tcp=tcp, authority=[_PTR.pack(apex_ptr) + self._soa_neg_tail])

    def _dbl(self, q: Query, sub: tuple[bytes, ...], apex_ptr: int, tcp: bool) -> bytes:
        if not self.ready:
            return self._build(q, SERVFAIL, aa=False, tcp=tcp)
        if any(b"." in label for label in sub):
            # "a\.b" is one label: matching it as two could list a name under another parent
            return self._build(q, NXDOMAIN, tcp=tcp, authority=[_PTR.pack(apex_ptr) + self._soa_neg_tail])
        name = b".".join(sub)
        hit = self.zone.lookup_domain(name, int(self.clock() * 1000))
        if hit is not None:
            return self._listed(q, hit[0], hit[1], apex_ptr, tcp)
        if self.zone.domain_has_children(name):
            return self._positive(q, [], apex_ptr, tcp)
        return self._build(q, NXDOMAIN, tcp=tcp, authority=[_PTR.pack(apex_ptr) + self._soa_neg_tail])

    def _listed(self, q: Query, reason: int, key: str | int, apex_ptr: int, tcp: bool, *,
                v4key: bool = False) -> bytes:
        qtype = q.qtype
        answers: list[bytes] = []
        if qtype == T_A or qtype == T_ANY:
            answers.append(b"\xc0\x0c" + self._a_tails[reason])
        if qtype == T_TXT or qtype == T_ANY:
            text_key = v4_key_text(key) if v4key else str(key)
            answers.append(b"\xc0\x0c" + self._txt_tail(reason, text_key))
        return self._positive(q, answers, apex_ptr, tcp)

    def _positive(self, q: Query, answers: list[bytes], apex_ptr: int, tcp: bool) -> bytes:
        """NOERROR with answers, or NODATA (SOA in authority, RFC 2308 §2.2) without."""
        if answers:
            return self._build(q, NOERROR, tcp=tcp, answers=answers)
        return self._build(q, NOERROR, tcp=tcp, authority=[_PTR.pack(apex_ptr) + self._soa_neg_tail])

    def _build(self, q: Query, rcode: int, *, tcp: bool, aa: bool = True,
               answers: list[bytes] | None = None, authority: list[bytes] | None = None) -> bytes:
        flags = F_QR | (q.flags & (F_RD | F_CD)) | rcode
        if aa:
            flags |= F_AA
        an = answers or []
        ns = authority or []
        edns = q.edns_payload is not None
        opt = (self._opt_do if q.edns_do else self._opt) if edns else b""
        body = q.question + b"".join(an) + b"".join(ns) + opt
        limit = 65535 if tcp else (min(q.edns_payload, self.settings.udp_payload)
                                   if q.edns_payload is not None else 512)
        if 12 + len(body) > limit:
            # RFC 2181 §9: drop whole sections and set TC; the client retries over TCP.
            return HEADER.pack(q.id, flags | F_TC, 1, 0, 0, 1 if edns else 0) + q.question + opt
        return HEADER.pack(q.id, flags, 1, len(an), len(ns), 1 if edns else 0) + body

    # -- zone transfers --------------------------------------------------------------------

    def transfer_messages(self, transfer: Transfer) -> Iterator[bytes]:
        """The transfer response messages.

        AXFR (RFC 5936 §2.2): SOA, every record, SOA.  IXFR (RFC 1995 §4): the SOA
        alone when the client's serial is current; else the differences since its
        serial (SOA new, SOA old, deleted records, SOA new, added records, SOA new)
        when the journal reaches back that far; else the whole zone as in AXFR.
        """
        self._refresh()
        q = transfer.query
        s = self.settings
        section = transfer.section
        origin = f"{section}.{s.apex}" if section else s.apex
        apex = encode_name(origin)
        soa = rr(apex, T_SOA, s.ttl, self._soa_rdata)
        serial = self.zone.serial
        records: Iterator[bytes]
        if q.qtype == T_IXFR and q.ixfr_serial is not None:
            if q.ixfr_serial >= serial & 0xFFFFFFFF:
                records = iter([soa])  # RFC 1995 §2: up to date
            else:
                diff = self.journal.since(section, q.ixfr_serial, serial) if section else None
                if diff is not None:
                    old = rr(apex, T_SOA, s.ttl, soa_rdata(
                        s.mname, s.rname, serial=q.ixfr_serial, refresh=s.refresh, retry=s.retry,
                        expire=s.expire, minimum=s.negative_ttl))
                    deleted, added = diff
                    records = _chain([soa, old], (rr(*r) for r in sorted(deleted)), [soa],
                                     (rr(*r) for r in sorted(added)), [soa])
                else:
                    records = self._full_records(section, apex, soa)
        else:
            records = self._full_records(section, apex, soa)
        flags = F_QR | F_AA | (q.flags & (F_RD | F_CD))
        opt = self._opt if q.edns_payload is not None else b""
        chunk: list[bytes] = []
        size = 0
        limit = MAX_TRANSFER_MESSAGE - 12 - len(q.question) - len(opt)
        for record in records:
            if chunk and size + len(record) > limit:
                yield HEADER.pack(q.id, flags, 1, len(chunk), 0, 1 if opt else 0) + q.question + b"".join(chunk) + opt
                chunk, size = [], 0
            chunk.append(record)
            size += len(record)
        if chunk:
            yield HEADER.pack(q.id, flags, 1, len(chunk), 0, 1 if opt else 0) + q.question + b"".join(chunk) + opt

    def _full_records(self, section: str, apex: bytes, soa: bytes) -> Iterator[bytes]:
        s = self.settings
        body: Iterator[Record]
        if section:
            body = transfer_records(self.zone, s, self, section=section,
                                    now_ms=int(self.clock() * 1000))
        else:
            # the apex zone: delegations of the two sub-zones to this server, and glue
            body = iter([(encode_name(f"{child}.{s.apex}"), T_NS, s.ttl, self._ns_rdata)
                         for child in ("dbl", "ip")] + self._ns_host_records())
        return _chain(
            [soa, rr(apex, T_NS, s.ttl, self._ns_rdata)],
            (rr(owner, rtype, ttl, rdata) for owner, rtype, ttl, rdata in body),
            [soa])

    def _ns_host_records(self) -> list[tuple[bytes, int, int, bytes]]:
        if self._ns_host is None:
            return []
        owner = encode_name(self.settings.mname)
        out = []
        for tail in self._ns_host_a + self._ns_host_aaaa:
            rtype, _cls, ttl, _len = _TAIL.unpack_from(tail)
            out.append((owner, rtype, ttl, tail[_TAIL.size:]))
        return out


def _chain(*parts: Iterable[bytes]) -> Iterator[bytes]:
    for part in parts:
        yield from part
