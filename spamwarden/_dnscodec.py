"""DNS wire basics shared by the blocklist server (:mod:`spamwarden.rbl.wire`) and the
milter's lean UDP resolver path (:mod:`spamwarden._dnswire`): the header and record
layouts, and domain names in and out of wire form (RFC 1035 §3.1, §4.1.1, §4.1.4).

Bytes in, bytes out, no I/O.  Each caller maps :class:`BadName` to its own outcome
(the server answers FORMERR, the resolver path lets dnspython read the reply).
"""

from __future__ import annotations

import struct

from .errors import DnsFormatError

__all__ = ["HEADER", "RR_TAIL", "MAX_NAME", "BadName", "encode_name", "read_name"]

#: ID, flags, QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT (RFC 1035 §4.1.1)
HEADER = struct.Struct("!HHHHHH")
#: what follows a record's owner name: TYPE, CLASS, TTL, RDLENGTH (RFC 1035 §4.1.3)
RR_TAIL = struct.Struct("!HHIH")
#: the longest name in wire form, root label included (RFC 1035 §2.3.4)
MAX_NAME = 255
_MAX_JUMPS = 64


class BadName(DnsFormatError):
    """A name in a message cannot be read: past the end, a bad label type, a pointer
    loop, over 255 bytes, or compressed where compression is not allowed."""


def encode_name(name: str) -> bytes:
    """Uncompressed wire form of a dotted name (RFC 1035 §3.1); a final dot is optional.

    :raises ValueError: a label is empty, over 63 bytes or not ASCII, or the name is over
        255 bytes.
    """
    out = bytearray()
    name = name.rstrip(".")
    if name:
        for label in name.split("."):
            raw = label.encode("ascii")
            if not 0 < len(raw) <= 63:
                raise ValueError(f"bad label {label!r} in {name!r}")
            out.append(len(raw))
            out += raw
    out.append(0)
    if len(out) > MAX_NAME:
        raise ValueError(f"name {name!r} longer than {MAX_NAME} bytes")
    return bytes(out)


def read_name(msg: bytes, pos: int, *, compressed: bool = True) -> tuple[list[bytes], int]:
    """The labels of the name at ``pos`` (case kept) and the position after it.

    :param compressed: follow compression pointers (RFC 1035 §4.1.4), at most 64; when
        False a pointer is an error (a question, where compression only opens loops).
    :returns: (labels, the position after the name where it starts, i.e. after its first
        pointer when it has one).
    :raises BadName: see the class.
    """
    labels: list[bytes] = []
    end = -1
    jumps = 0
    size = 1
    n = len(msg)
    while True:
        if pos >= n:
            raise BadName("name runs past the end of the message")
        length = msg[pos]
        if length == 0:
            pos += 1
            break
        if length & 0xC0 == 0xC0:
            if not compressed:
                raise BadName("compressed name where compression is not allowed")
            if pos + 1 >= n:
                raise BadName("pointer runs past the end of the message")
            if end < 0:
                end = pos + 2
            jumps += 1
            if jumps > _MAX_JUMPS:
                raise BadName("pointer loop")
            pos = (length & 0x3F) << 8 | msg[pos + 1]
            continue
        if length & 0xC0:
            raise BadName("unknown label type")
        stop = pos + 1 + length
        if stop > n:
            raise BadName("label runs past the end of the message")
        size += 1 + length
        if size > MAX_NAME:
            raise BadName(f"name longer than {MAX_NAME} bytes")
        labels.append(msg[pos + 1:stop])
        pos = stop
    return labels, (end if end >= 0 else pos)
