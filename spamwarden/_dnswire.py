"""One DNS question over UDP, for the answers mail checks ask most: the fast path of
:class:`~spamwarden.resolver.DnsPythonResolver`.

dnspython spends about half a millisecond of CPU on a UDP query (message objects,
enumerations, names, rdata classes).  The milter asks a new question for most first-seen
senders (their SPF and DMARC records), so this module builds the query and reads the
answer with :mod:`struct` for the common case: A, AAAA, TXT, MX, PTR, CNAME and NS
records, NOERROR or NXDOMAIN, CNAME chains within the answer.

Anything else gives :data:`None` ("ask dnspython"): another record type, a truncated
answer (TCP), another response code, a malformed or unexpected reply, a timeout, a name
with characters dnspython would write escaped.  The answer is dnspython's, value for
value, and so is the TTL it may be kept for (RFC 2308 for negative answers).

Spoofing: a fresh socket (random source port) connected to the server, a random
16-bit ID, and the question in the reply must be the one asked.
"""

from __future__ import annotations

import secrets
import socket
import struct
import time
from typing import Any

import dns.ipv6

from ._dnscodec import HEADER as _HEADER
from ._dnscodec import RR_TAIL as _RR
from ._dnscodec import BadName, encode_name, read_name

__all__ = ["QTYPES", "udp_query"]

#: record types this path reads, by code
QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "SPF": 99}
_SOA = 6
_CNAME = 5
_IN = 1
_MAX_CHAIN = 16
_NEGATIVE_TTL_WITHOUT_SOA = 300  # dnspython's, for no-data answers without an SOA
_PLAIN_LABEL = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*")
# EDNS0 OPT record: root name, type 41, UDP payload 1232, no extended rcode/flags, no data
_OPT = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)


class _Unusable(Exception):
    """The reply is not one this path reads: let dnspython do it."""


class _Failed(Exception):
    """The server answered with an error code (SERVFAIL, REFUSED, ...)."""

_RCODES = {1: "FORMERR", 2: "SERVFAIL", 4: "NOTIMP", 5: "REFUSED"}


def _encode_name(name: str) -> bytes | None:
    """The wire form of a name dnspython would write unescaped, else None."""
    for label in name.rstrip(".").split("."):
        if not label.isascii() or not _PLAIN_LABEL.issuperset(label.encode("ascii")):
            return None
    try:
        return encode_name(name) if name.rstrip(".") else None
    except ValueError:
        return None


def _read_name(msg: bytes, pos: int) -> tuple[bytes, int]:
    """The name at ``pos`` (compression followed) as dotted bytes, case kept, and the
    position after it in the message."""
    try:
        labels, after = read_name(msg, pos)
    except BadName as exc:
        raise _Unusable(str(exc)) from None
    for label in labels:
        if not _PLAIN_LABEL.issuperset(label):
            raise _Unusable("label dnspython would escape")
    return b".".join(labels), after


def _name_text(msg: bytes, pos: int) -> str:
    """A name inside rdata as dnspython writes it (case kept, no final dot)."""
    name, _ = _read_name(msg, pos)
    return name.decode("ascii") if name else "."


def _value(msg: bytes, rtype: int, start: int, length: int) -> Any:
    rdata = msg[start:start + length]
    if rtype == 1:
        if length != 4:
            raise _Unusable("A record length")
        return ".".join(map(str, rdata))
    if rtype == 28:
        if length != 16:
            raise _Unusable("AAAA record length")
        return dns.ipv6.inet_ntoa(rdata)
    if rtype in (16, 99):
        parts = []
        i = 0
        while i < length:
            n = rdata[i]
            if i + 1 + n > length:
                raise _Unusable("TXT string past the record")
            parts.append(rdata[i + 1:i + 1 + n])
            i += 1 + n
        return b"".join(parts)
    if rtype == 15:
        if length < 3:
            raise _Unusable("MX record length")
        return (struct.unpack_from("!H", msg, start)[0], _name_text(msg, start + 2))
    return _name_text(msg, start)  # PTR, CNAME, NS


def _read_records(msg: bytes, pos: int, count: int) -> tuple[
        list[tuple[bytes, int, int, int, int, int]], int]:
    """``count`` resource records from ``pos``: (owner in lower case, type, class, TTL,
    where the data starts, its length) each, and the position after them."""
    out = []
    for _ in range(count):
        owner, pos = _read_name(msg, pos)
        if pos + 10 > len(msg):
            raise _Unusable("record past the end")
        rtype, rclass, ttl, length = _RR.unpack_from(msg, pos)
        pos += 10
        if pos + length > len(msg):
            raise _Unusable("record data past the end")
        out.append((owner.lower(), rtype, rclass, ttl, pos, length))
        pos += length
    return out, pos


def parse_reply(msg: bytes, *, qid: int, qname: bytes, qtype: int) -> tuple[str, tuple[Any, ...], float]:
    """``(status, records, ttl)`` of a reply to the question, status ``ok``, ``nodata``
    or ``nxdomain``.

    :param qname: the question's name in lower case, dotted, no final dot.
    :raises _Unusable: anything this path does not read (dnspython will).
    """
    if len(msg) < 12:
        raise _Unusable("short reply")
    rid, flags, qd, an, ns, _ = _HEADER.unpack_from(msg)
    if rid != qid or not flags & 0x8000 or flags & 0x7800:
        raise _Unusable("not the reply to this query")
    if flags & 0x0200:
        raise _Unusable("truncated")
    rcode = flags & 0x000F
    if qd != 1:
        raise _Unusable("question count")
    if rcode not in (0, 3):
        raise _Failed(_RCODES.get(rcode, f"rcode {rcode}"))
    name, pos = _read_name(msg, 12)
    if pos + 4 > len(msg):
        raise _Unusable("question past the end")
    rtype, rclass = struct.unpack_from("!HH", msg, pos)
    if name.lower() != qname or rtype != qtype or rclass != _IN:
        raise _Unusable("another question")
    pos += 4
    records, pos = _read_records(msg, pos, an)
    answers = [r for r in records if r[2] == _IN]
    soa: list[tuple[bytes, int, int]] = []  # owner, ttl, minimum
    authority, _ = _read_records(msg, pos, ns)
    for owner, rtype, rclass, ttl, start, length in authority:
        if rtype == _SOA and rclass == _IN:
            _, after = _read_name(msg, start)
            _, after = _read_name(msg, after)
            if after + 20 > start + length:
                raise _Unusable("SOA record length")
            soa.append((owner, ttl, struct.unpack_from("!I", msg, after + 16)[0]))

    if rcode == 3:
        if any(a[0] == qname and a[1] == qtype for a in answers):
            raise _Unusable("an answer with NXDOMAIN")
        return "nxdomain", (), float(min(soa[0][1], soa[0][2])) if soa else 0.0
    min_ttl = 2**31 - 1
    current = qname
    for _ in range(_MAX_CHAIN):
        found = [a for a in answers if a[0] == current and a[1] == qtype]
        if found:
            ttl = min(a[3] for a in found)  # one RRset: dnspython keeps the lowest TTL
            values = tuple(_value(msg, qtype, a[4], a[5]) for a in found)
            return "ok", values, float(min(min_ttl, ttl))
        cname = [a for a in answers if a[0] == current and a[1] == _CNAME]
        if not cname or qtype == _CNAME:
            break
        min_ttl = min(min_ttl, min(a[3] for a in cname))
        current = _name_text(msg, cname[0][4]).lower().encode("ascii")
    else:
        raise _Unusable("CNAME chain too long")
    # no data: the SOA of the closest enclosing zone gives the negative TTL
    for owner, ttl, minimum in soa:
        if current == owner or current.endswith(b"." + owner) or owner == b"":
            return "nodata", (), float(min(min_ttl, ttl, minimum))
    return "nodata", (), float(min(min_ttl, _NEGATIVE_TTL_WITHOUT_SOA))


def udp_query(server: tuple[str, int], name: str, rdtype: str, timeout: float, *,
              errors_final: bool = True) -> tuple[str, tuple[Any, ...], float, str] | None:
    """Ask ``server`` one question over UDP.

    :param errors_final: an error code from the server is the answer (the only server);
        otherwise ``None``, so that dnspython asks the others.
    :returns: ``(status, records, ttl, reason)``, or ``None`` when dnspython should
        answer it (unsupported type or name, no reply within ``timeout``, a reply this
        path does not read).
    """
    qtype = QTYPES.get(rdtype)
    wire = _encode_name(name) if qtype is not None else None
    if wire is None or qtype is None or timeout <= 0:
        return None
    qid = secrets.randbits(16)
    query = (_HEADER.pack(qid, 0x0100, 1, 0, 0, 1) + wire + struct.pack("!HH", qtype, _IN)
             + _OPT)
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(server)
            sock.send(query)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                sock.settimeout(left)
                reply = sock.recv(65535)
                try:
                    status, records, ttl = parse_reply(
                        reply, qid=qid, qname=name.rstrip(".").lower().encode("ascii"),
                        qtype=qtype)
                    return status, records, ttl, ""
                except _Failed as exc:
                    if not errors_final:
                        return None
                    return "error", (), 0.0, f"no server answered: {server[0]} said {exc}"
                except _Unusable:
                    if len(reply) >= 2 and struct.unpack_from("!H", reply)[0] != qid:
                        continue  # a stray datagram: keep waiting for ours
                    return None
    except (OSError, ValueError):
        return None
