"""DNS wire format for the blocklist server: bytes in, bytes out, no I/O.

Only what an authoritative DNSBL needs (RFC 1035 §4, RFC 6891 EDNS0): parse one
query, encode names and resource records, assemble responses.  Names in
responses are compressed only by pointers to the question (offset 12), which
is always present, so records can be pre-built once and pasted in.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from .._dnscodec import HEADER, BadName, encode_name, read_name
from ..errors import DnsFormatError

__all__ = [
    "Query",
    "parse_query",
    "encode_name",
    "rr",
    "rr_ptr",
    "txt_rdata",
    "soa_rdata",
    "a_rdata",
    "aaaa_rdata",
    "header",
    "opt_rr",
    "error_response",
    "HEADER",
    "T_A", "T_NS", "T_SOA", "T_TXT", "T_AAAA", "T_OPT", "T_IXFR", "T_AXFR", "T_ANY",
    "C_IN", "C_ANY",
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS",
    "F_QR", "F_AA", "F_TC", "F_RD", "F_CD",
]


T_A, T_NS, T_SOA, T_TXT, T_AAAA, T_OPT = 1, 2, 6, 16, 28, 41
T_IXFR, T_AXFR, T_ANY = 251, 252, 255
C_IN, C_ANY = 1, 255
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
BADVERS = 16  # extended RCODE, RFC 6891 §6.1.3

F_QR = 0x8000
F_AA = 0x0400
F_TC = 0x0200
F_RD = 0x0100
F_CD = 0x0010
_OPCODE_MASK = 0x7800



@dataclass(frozen=True, slots=True)
class Query:
    """One parsed query.

    ``labels`` are the lower-cased labels of the question name (for lookups);
    ``question`` is the question section exactly as received (0x20 case kept,
    RFC 1035 §4.1.2) for echoing back.  ``edns_payload`` is ``None`` without an
    OPT record, else the requestor's UDP payload size (at least 512).
    """

    id: int
    flags: int
    opcode: int
    labels: tuple[bytes, ...]
    qtype: int
    qclass: int
    question: bytes
    label_offsets: tuple[int, ...]
    edns_payload: int | None = None
    edns_version: int = 0
    edns_do: bool = False
    #: the client's SOA serial of an IXFR query (RFC 1995 §3), from its authority section
    ixfr_serial: int | None = None


class QueryFormatError(DnsFormatError):
    """Malformed DNS query."""

    def __init__(self, message: str, *, id: int | None = None, flags: int = 0,
                 question: bytes = b"") -> None:
        super().__init__(message)
        self.id = id
        self.flags = flags
        self.question = question


def _parse_name(data: bytes, pos: int) -> tuple[list[bytes], list[int], int]:
    """Labels (lower-cased), their offsets and the offset after an uncompressed name.

    Compression in a question is useless and only opens loops; RFC 1035 §4.1.4 allows
    it, but no resolver sends it for a one-question query.

    :raises QueryFormatError: a pointer, a bad label type, or a name past the end or over 255 bytes.
    """
    try:
        labels, after = read_name(data, pos, compressed=False)
    except BadName as exc:
        raise QueryFormatError(str(exc)) from None
    offsets = []
    for label in labels:
        offsets.append(pos)
        pos += 1 + len(label)
    return [label.lower() for label in labels], offsets, after


def _skip_name(data: bytes, pos: int) -> int:
    """Offset after a possibly compressed name (RFC 1035 §4.1.4), bounded."""
    try:
        return read_name(data, pos)[1]
    except BadName as exc:
        raise QueryFormatError(str(exc)) from None


def parse_query(data: bytes) -> Query:
    """Parse a DNS query message.

    :param data: the message (UDP payload or TCP message without its length prefix).
    :returns: the query; ``opcode`` may be anything (the caller answers NOTIMP).
    :raises QueryFormatError: malformed (the caller answers FORMERR when ``id`` is
        set, drops the packet otherwise).  Responses (QR=1) raise with ``id=None``
        so they are never answered.
    """
    if len(data) < 12:
        raise QueryFormatError("shorter than a DNS header")
    qid, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    if flags & F_QR:
        raise QueryFormatError("a response, not a query")
    if qdcount != 1:
        raise QueryFormatError(f"{qdcount} questions", id=qid, flags=flags)
    try:
        labels, offsets, pos = _parse_name(data, 12)
    except QueryFormatError as exc:
        raise QueryFormatError(str(exc), id=qid, flags=flags) from None
    if pos + 4 > len(data):
        raise QueryFormatError("question runs past the end of the packet", id=qid, flags=flags)
    qtype, qclass = struct.unpack_from("!HH", data, pos)
    question = data[12:pos + 4]
    pos += 4
    ixfr_serial: int | None = None
    if ancount or nscount:
        # No query we answer carries answer records; only IXFR carries one authority
        # record, the client's SOA (RFC 1995 §3).
        if ancount or nscount != 1 or qtype != T_IXFR:
            raise QueryFormatError("records in the answer or authority section", id=qid,
                                   flags=flags, question=question)
        try:
            pos = _skip_name(data, pos)
            if pos + 10 > len(data):
                raise QueryFormatError("authority record runs past the end")
            rtype, _rclass, _ttl, rdlen = struct.unpack_from("!HHIH", data, pos)
            pos += 10 + rdlen
            if rtype != T_SOA or rdlen < 22 or pos > len(data):
                raise QueryFormatError("IXFR authority is not an SOA record")
            # the serial is the first of the five numbers that end the RDATA
            ixfr_serial = struct.unpack_from("!I", data, pos - 20)[0]
        except QueryFormatError as exc:
            raise QueryFormatError(str(exc), id=qid, flags=flags, question=question) from None
    payload: int | None = None
    version = 0
    do = False
    try:
        for _ in range(arcount):
            pos = _skip_name(data, pos)
            if pos + 10 > len(data):
                raise QueryFormatError("additional record runs past the end")
            rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", data, pos)
            pos += 10 + rdlen
            if pos > len(data):
                raise QueryFormatError("additional record data runs past the end")
            if rtype == T_OPT:
                if payload is not None:
                    raise QueryFormatError("more than one OPT record")  # RFC 6891 §6.1.1
                payload = max(512, rclass)
                version = (ttl >> 16) & 0xFF
                do = bool(ttl & 0x8000)
    except QueryFormatError as exc:
        raise QueryFormatError(str(exc), id=qid, flags=flags, question=question) from None
    return Query(
        id=qid,
        flags=flags,
        opcode=(flags & _OPCODE_MASK) >> 11,
        labels=tuple(labels),
        qtype=qtype,
        qclass=qclass,
        question=question,
        label_offsets=tuple(o - 12 for o in offsets),
        edns_payload=payload,
        edns_version=version,
        edns_do=do,
        ixfr_serial=ixfr_serial,
    )


def rr(owner: bytes, rtype: int, ttl: int, rdata: bytes, *, rclass: int = C_IN) -> bytes:
    """A resource record with an owner already in wire form (RFC 1035 §4.1.3)."""
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def rr_ptr(offset: int, rtype: int, ttl: int, rdata: bytes) -> bytes:
    """A resource record whose owner is a compression pointer to ``offset``."""
    return struct.pack("!HHHIH", 0xC000 | offset, rtype, C_IN, ttl, len(rdata)) + rdata


def a_rdata(address: str) -> bytes:
    """RDATA of an A record."""
    return socket.inet_pton(socket.AF_INET, address)


def aaaa_rdata(address: str) -> bytes:
    """RDATA of an AAAA record."""
    return socket.inet_pton(socket.AF_INET6, address)


def txt_rdata(text: str) -> bytes:
    """RDATA of a TXT record: the UTF-8 text cut into strings of at most 255 bytes (RFC 1035 §3.3.14)."""
    raw = text.encode("utf-8")
    out = bytearray()
    for i in range(0, max(len(raw), 1), 255):
        chunk = raw[i:i + 255]
        out.append(len(chunk))
        out += chunk
    return bytes(out)


def soa_rdata(mname: str, rname: str, *, serial: int, refresh: int, retry: int,
              expire: int, minimum: int) -> bytes:
    """RDATA of an SOA record (RFC 1035 §3.3.13); ``minimum`` is the negative TTL (RFC 2308 §4)."""
    return encode_name(mname) + encode_name(rname) + struct.pack(
        "!IIIII", serial & 0xFFFFFFFF, refresh, retry, expire, minimum)


def header(qid: int, flags: int, *, qd: int, an: int, ns: int, ar: int) -> bytes:
    """A message header."""
    return HEADER.pack(qid, flags, qd, an, ns, ar)


def opt_rr(payload: int, *, do: bool = False, ext_rcode: int = 0) -> bytes:
    """An OPT pseudo-record (RFC 6891 §6.1.2) advertising ``payload`` bytes."""
    ttl = (ext_rcode << 24) | (0x8000 if do else 0)
    return struct.pack("!BHHIH", 0, T_OPT, payload, ttl, 0)


def error_response(qid: int, flags: int, rcode: int, *, question: bytes = b"") -> bytes:
    """A bare error response echoing the question when there is one.

    Opcode, RD and CD are copied from the query flags; AA is not set.
    """
    out_flags = F_QR | (flags & (_OPCODE_MASK | F_RD | F_CD)) | (rcode & 0xF)
    return HEADER.pack(qid, out_flags, 1 if question else 0, 0, 0, 0) + question
