"""spamwarden.rules._headeraddr: where Util.pm's own address parser reads nothing, and
Email::Address::XS's reading then.

The expected values are what SpamAssassin 4.0.1's ``_parse_header_addresses`` (how
many results) and ``_parse_header_addresses_xs`` (phrase, address) give with Debian 12's
Email::Address::XS 1.05.
"""

from __future__ import annotations

import pytest

from spamwarden.rules._headeraddr import internal_finds_none, xs_addresses


@pytest.mark.parametrize(("value", "none"), [
    ("<ngdgpfwxsw@[1086695621] [pi]>", True),   # an address literal, then junk
    ("<a@b.example c>", True),
    ("<a b@c.example>", False),                  # [^>@]* then \S+: one result
    ("<a@b.example> junk", False),               # the last look finds <a@b.example>
    ("ngdgpfwxsw@[1086695621], [pi]@netnoteinc.com", False),
    ("Chris <chris@example.com>", False),
    ("undisclosed-recipients:;", True),
    (" ,", False),                               # a phrase of one space
    ('"@b', False),                              # a plain local part may hold '"'
    ("<a><b> x", True),
    ("<a><b>", False),
])
def test_internal_parser_reads_nothing(value: str, none: bool) -> None:
    assert internal_finds_none(value) is none


@pytest.mark.parametrize(("value", "pairs"), [
    ("<ngdgpfwxsw@[1086695621] [pi]>", [("", "ngdgpfwxsw@[1086695621]")]),
    ("<a@b.example c>, d@e.example", [("", "a@b.example")]),
    ("<a b@c.example>", [("<a b@c.example>", "")]),  # the input as the phrase
    ("(c) VIAGRA (tm) Store <x@example.com>", [("VIAGRA Store", "x@example.com")]),
    ("<1.@webnote.example>", [("", '"1."@webnote.example')]),
    ("<a@b.example> (cmt)", [("cmt", "a@b.example")]),
    ("Grp: a@b.example;", [("", "a@b.example")]),
    ('"joe@example.com"', [("", "joe@example.com")]),
    ("foo", [("foo", "")]),
])
def test_email_address_xs_reading(value: str, pairs: list[tuple[str, str]]) -> None:
    assert xs_addresses(value) == pairs


@pytest.mark.parametrize("value", [
    "<a>" * 40_000,                # every ">" may close the enclosure before it
    "<a" + ">" * 120_000 + " x",
    "<a><\"b\"> " * 15_000 + "x",
    "<" + "a" * 120_000,
    "<\"" * 60_000,
    "(" * 120_000,
    "<a@[" + "1" * 120_000,
])
def test_hostile_long_values_read_in_one_pass(value: str) -> None:
    """Each octet is read a bounded number of times (a regex that backtracks, or a
    reader restarted at each ">", takes minutes on these)."""
    internal_finds_none(value)
    assert len(xs_addresses(value)) <= 1
