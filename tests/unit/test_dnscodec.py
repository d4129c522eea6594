"""The DNS name codec shared by the blocklist server and the milter's UDP resolver path."""

from __future__ import annotations

import dns.name
import pytest

from spamwarden._dnscodec import BadName, encode_name, read_name


@pytest.mark.parametrize("name", ["example.com", "Example.COM.", "a.b.c.d.e", "x" * 63 + ".net", "."])
def test_encode_matches_dnspython_and_reads_back(name: str) -> None:
    wire = encode_name(name)
    assert wire == dns.name.from_text(name).to_wire()
    labels, end = read_name(b"\x00" * 5 + wire, 5)
    assert b".".join(labels).decode() == name.rstrip(".") and end == 5 + len(wire)


@pytest.mark.parametrize("name", ["a..b", "x" * 64 + ".net", ".".join(["abcdefg"] * 40), "é.vn"])
def test_encode_refuses_bad_names(name: str) -> None:
    with pytest.raises(ValueError):
        encode_name(name)


def test_pointers_are_followed_and_the_position_is_after_the_first() -> None:
    msg = b"\x07example\x03com\x00" + b"\x03www\xc0\x00"
    labels, end = read_name(msg, 13)
    assert labels == [b"www", b"example", b"com"] and end == len(msg)
    with pytest.raises(BadName):
        read_name(msg, 13, compressed=False)


@pytest.mark.parametrize("msg", [
    b"\xc0\x00",  # a pointer to itself
    b"\x03ww",  # label past the end
    b"\x03www",  # no root label
    b"\x80abc\x00",  # unknown label type
    b"\x3f" + b"a" * 63 + b"\x3f" + b"a" * 63 + b"\x3f" + b"a" * 63 + b"\x3f" + b"a" * 63 + b"\x00",  # 257 bytes
])
def test_bad_names_raise(msg: bytes) -> None:
    with pytest.raises(BadName):
        read_name(msg, 0)
