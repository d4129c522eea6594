"""Hostile inputs for the fuzz harnesses: real seed files, and mutations of them.

Every mutation is a pure function of (seed bytes, other seed bytes, an integer), so hypothesis
can draw the integers, replay a failure exactly and shrink it.  The mutations are the ones that
break mail and DNS parsers in practice: bit flips, truncation, splicing two inputs, huge and
numerous header fields, deep MIME nesting, bogus charsets and transfer encodings, RFC 2047
words with unknown charsets, CR-only or bare-LF line ends, thousands of URLs; and for DNS,
label and count corruption and compression-pointer loops.

Nothing here imports pytest; `tests/faults/conftest.py` loads the seeds (tests/data and the mail corpus).
"""

from __future__ import annotations

import os
import random
import re
import struct
from collections.abc import Callable, Sequence
from pathlib import Path

Mutation = Callable[[bytes, bytes, random.Random], bytes]

#: `make soak` (SPAMWARDEN_SOAK=1) uses the full sizes below; `make test` one tenth of each,
#: so ~2,000 inputs fit its time budget (the full-size worst cases run once each there).
BIG = os.environ.get("SPAMWARDEN_SOAK", "") not in ("", "0")

#: no generated input grows past this: parsers must be fast on big input too, but the fuzz
#: run must stay bounded in memory and time
MAX_INPUT = 3_000_000 if BIG else 600_000


def _n(value: int) -> int:
    """A size or count: as written under soak, a tenth (at least 2) otherwise."""
    return value if BIG else max(2, value // 10)

_INTERESTING = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\r", b"\n", b"\r\n", b":", b"=", b"?",
                b"--", b";", b"\"", b"<", b">", b"@", b"\t", b" ", b"=?", b"?=", b"\\")
_BOGUS_CHARSETS = ("utf-7", "x-unknown", "iso-2022-jp", "utf-8''", "\x00", "unicode-1-1-utf-7",
                   "cp65001", "utf-16", "utf-32-be", "idna", "rot13", "base64", "zlib",
                   "x" * 300, "gb18030", "windows-1258", "us-ascii\"", "", "utf-8*", "=?")
_BOGUS_CTE = ("base64", "quoted-printable", "x-uuencode", "uuencode", "8bit", "binary",
              "bas64", "7bit\x00", "x-gzip", "quoted-printable; charset=foo", "")


# ---- generic byte mutations -----------------------------------------------------------------


def bit_flips(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    if not data:
        return bytes([rnd.randrange(256)])
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 16)):
        i = rnd.randrange(len(buf))
        buf[i] ^= 1 << rnd.randrange(8)
    return bytes(buf)


def interesting_bytes(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 8)):
        token = rnd.choice(_INTERESTING)
        i = rnd.randrange(len(buf) + 1)
        if rnd.random() < 0.5:
            buf[i:i + len(token)] = token
        else:
            buf[i:i] = token
    return bytes(buf)


def truncate(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    return data[: rnd.randrange(len(data) + 1)]


def splice(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    return data[: rnd.randrange(len(data) + 1)] + other[rnd.randrange(len(other) + 1):]


def repeat_chunk(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    if not data:
        return data
    i = rnd.randrange(len(data))
    chunk = data[i:i + rnd.randint(1, 200)]
    times = rnd.choice((2, 10, 100, 1000, _n(10_000)))
    times = max(1, min(times, MAX_INPUT // max(1, len(chunk)) // 2))
    return data[:i] + chunk * times + data[i:]


def delete_range(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    if not data:
        return data
    i = rnd.randrange(len(data))
    return data[:i] + data[i + rnd.randint(1, 4096):]


def random_bytes(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    return rnd.randbytes(rnd.choice((0, 1, 11, 12, 13, 64, 512, 4096, 65_536)))


# ---- mail-shaped mutations ------------------------------------------------------------------


def _head_body(data: bytes) -> tuple[bytes, bytes]:
    m = re.search(rb"\r?\n\r?\n", data)
    if m is None:
        return data, b""
    return data[: m.start()], data[m.end():]


def huge_header(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    """One header field with a value of up to a megabyte, folded or not."""
    name = rnd.choice((b"Subject", b"From", b"Received", b"DKIM-Signature", b"Content-Type",
                       b"X-Junk", b"To", b"Message-ID", b"Authentication-Results"))
    size = rnd.choice((1000, _n(70_000), _n(300_000), _n(1_000_000)))
    unit = rnd.choice((b"a", b"=?utf-8?b?w6k=?= ", b"\r\n x", b"<a@b> ,", b" ", b"\xff"))
    return name + b": " + unit * (size // len(unit)) + b"\r\n" + data


def many_headers(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    count = rnd.choice((1001, _n(5000), _n(50_000)))
    line = rnd.choice((b"X-H: v\r\n", b"Received: from a ([192.0.2.1]) by b\r\n",
                       b"DKIM-Signature: v=1; d=x%d.example; s=s\r\n", b"A:\r\n"))
    block = b"".join(line.replace(b"%d", str(i).encode()) for i in range(count))
    return block + data


def deep_nesting(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    """multipart/mixed or message/rfc822 nested up to 3,000 levels around the seed's body."""
    depth = rnd.choice((11, 50, _n(500), _n(3000)))
    kind = rnd.choice(("multipart", "rfc822", "mixed"))
    _, body = _head_body(data)
    parts = [b"From: a@example.com\r\nSubject: nest\r\nMIME-Version: 1.0\r\n"]
    closes = []
    for level in range(depth):
        use_rfc822 = kind == "rfc822" or (kind == "mixed" and level % 2)
        if use_rfc822:
            parts.append(b"Content-Type: message/rfc822\r\n\r\nSubject: level\r\n")
        else:
            boundary = b"b%d" % level
            parts.append(b"Content-Type: multipart/mixed; boundary=\"" + boundary + b"\"\r\n\r\n--"
                         + boundary + b"\r\n")
            closes.append(b"\r\n--" + boundary + b"--\r\n")
    parts.append(b"Content-Type: text/plain\r\n\r\n" + body[:10_000])
    return b"".join(parts) + b"".join(reversed(closes))


def many_parts(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    count = rnd.choice((101, _n(1000), _n(20_000)))
    part = rnd.choice((b"--b\r\nContent-Type: text/plain\r\n\r\nhttp://x.example/\r\n",
                       b"--b\r\nContent-Type: text/html\r\n\r\n<a href=http://y.example>y</a>\r\n",
                       b"--b\r\n\r\n"))
    return (b"From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
            b"boundary=b\r\n\r\n" + part * count + b"--b--\r\n")


def bogus_charset(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    charset = rnd.choice(_BOGUS_CHARSETS).encode("latin-1")
    out = re.sub(rb"(?i)charset=\"?[^\s;\"]*\"?", b"charset=\"" + charset + b"\"", data, count=5)
    if out == data:
        out = (b"Content-Type: text/plain; charset=\"" + charset + b"\"\r\nMIME-Version: 1.0\r\n"
               + data)
    return out


def bogus_encoding(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    cte = rnd.choice(_BOGUS_CTE).encode("latin-1")
    head, body = _head_body(data)
    head = re.sub(rb"(?im)^content-transfer-encoding:.*$", b"", head)
    junk = rnd.choice((b"====", b"=ZZ=\r\n=", b"@@@@\x00\xff", b"begin 644 x\r\nM(((\r\n",
                       b"QUJD" * 1000 + b"=", b""))
    return head + b"\r\nContent-Transfer-Encoding: " + cte + b"\r\n\r\n" + junk + body


def encoded_words(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    """RFC 2047 words with bogus charsets, encodings and payloads in Subject and From."""
    words = []
    for _ in range(rnd.choice((1, 5, 200, _n(5000)))):
        cs = rnd.choice(_BOGUS_CHARSETS + ("utf-8", "iso-8859-1"))
        enc = rnd.choice(("B", "Q", "b", "q", "X", ""))
        payload = rnd.choice(("w6k=", "=C3=A9", "====", "\x00", "_" * 80, "AAAA" * 20, "?"))
        words.append(f"=?{cs}?{enc}?{payload}?=")
    value = " ".join(words).encode("utf-8", "surrogatepass")
    return (b"Subject: " + value + b"\r\nFrom: " + value + b" <x@example.com>\r\n" + data)


def line_ends(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    choice = rnd.randrange(3)
    if choice == 0:
        return data.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    if choice == 1:
        return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\r\n")
    return data.replace(b"\r", b"").replace(b"\n", b"")  # one endless line


def many_urls(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    count = rnd.choice((101, _n(10_000), _n(60_000)))
    style = rnd.randrange(3)
    if style == 0:
        urls = b" ".join(b"http://h%d.example%d.com/p" % (i, i % 7) for i in range(count))
        ctype = b"text/plain"
    elif style == 1:
        urls = b"".join(b"<a href='https://x%d.example/'>l</a>" % i for i in range(count))
        ctype = b"text/html"
    else:
        urls = b"http://" + b"a." * (count // 2) + b"com/ " + b"www." * count
        ctype = b"text/plain"
    return (b"From: a@example.com\r\nSubject: links\r\nMIME-Version: 1.0\r\nContent-Type: "
            + ctype + b"\r\n\r\n" + urls + b"\r\n" + data[:2000])


def html_bomb(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    depth = rnd.choice((100, _n(10_000), _n(100_000)))
    markup = rnd.choice((b"<div>" * depth, b"<!--" * depth, b"<a href=\"" * depth,
                         b"<script>" + b"x" * depth, b"&#" * depth, b"<" * depth))
    return (b"From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n"
            + markup + data[:1000])


MAIL_MUTATIONS: tuple[Mutation, ...] = (
    bit_flips, interesting_bytes, truncate, splice, repeat_chunk, delete_range, random_bytes,
    huge_header, many_headers, deep_nesting, many_parts, bogus_charset, bogus_encoding,
    encoded_words, line_ends, many_urls, html_bomb,
)


# ---- DNS-shaped mutations -------------------------------------------------------------------


def dns_counts(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    if len(data) < 12:
        return data
    counts = [rnd.choice((0, 1, 2, 255, 65535)) for _ in range(4)]
    return data[:4] + struct.pack("!4H", *counts) + data[12:]


def dns_flags(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    if len(data) < 4:
        return data
    return data[:2] + struct.pack("!H", rnd.randrange(65536)) + data[4:]


def dns_pointer_loop(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    """A name that is (or ends in) a compression pointer to itself or forward."""
    if len(data) < 12:
        return data
    target = rnd.choice((12, 13, len(data), 0x3FFF, 0)) & 0x3FFF
    tail = rnd.choice((b"", b"\x03abc"))
    return data[:12] + tail + struct.pack("!H", 0xC000 | target) + data[12:]


def dns_labels(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    """Label lengths beyond 63, past the end, names over 255 bytes, empty labels."""
    if len(data) < 13:
        return data
    choice = rnd.randrange(4)
    if choice == 0:
        return data[:12] + bytes([rnd.choice((64, 127, 191, 255))]) + data[13:]
    if choice == 1:
        return data[:12] + b"\x3f" + b"a" * 63 * rnd.choice((1, 4, 5, 20)) + data[12:]
    if choice == 2:
        return data[:12] + (b"\x01a" * rnd.choice((127, 128, 1000))) + data[12:]
    return data[:12] + b"\x00\x00" + data[12:]


def dns_edns(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    """An OPT record with odd payload sizes, versions, flags and option data."""
    payload = rnd.choice((0, 1, 511, 512, 513, 1232, 4096, 65535))
    version = rnd.choice((0, 0, 1, 255))
    rdata = rnd.choice((b"", b"\x00\x0a\x00\x08" + rnd.randbytes(8), b"\xff\xff\xff\xff",
                        rnd.randbytes(rnd.randrange(64))))
    rdlen = rnd.choice((len(rdata), len(rdata) + 7, 0))
    opt = (b"\x00\x00\x29" + struct.pack("!HBBHH", payload, 0, version,
                                          rnd.choice((0, 0x8000, 0xFFFF)), rdlen) + rdata)
    if len(data) >= 12:
        data = data[:10] + struct.pack("!H", rnd.choice((1, 1, 2))) + data[12:]
    return data + opt * rnd.choice((1, 1, 2))


DNS_MUTATIONS: tuple[Mutation, ...] = (
    bit_flips, interesting_bytes, truncate, splice, repeat_chunk, random_bytes, dns_counts,
    dns_flags, dns_pointer_loop, dns_labels, dns_edns,
)


def mutate(seeds: Sequence[bytes], mutations: Sequence[Mutation], plan: Sequence[tuple[int, int, int]]
           ) -> bytes:
    """Apply a plan of mutations to one seed.

    Args:
        seeds: the seed inputs.
        mutations: the mutations to pick from.
        plan: (seed index, mutation index, random seed) triples; the first picks the start
            input, each picks a mutation and the other input it may splice from.

    Returns:
        The mutated input, at most MAX_INPUT bytes.
    """
    data = seeds[plan[0][0] % len(seeds)] if plan else b""
    for seed_index, mutation_index, rnd_seed in plan:
        other = seeds[(seed_index * 7919 + rnd_seed) % len(seeds)]
        data = mutations[mutation_index % len(mutations)](data, other, random.Random(rnd_seed))
        data = data[:MAX_INPUT]
    return data


def read_seed_files(paths: Sequence[Path], *, limit_bytes: int = 400_000) -> list[bytes]:
    """The bytes of each seed file (larger files cut at limit_bytes), skipping unreadable ones."""
    out = []
    for p in paths:
        try:
            out.append(p.read_bytes()[:limit_bytes])
        except OSError:
            continue
    return out
