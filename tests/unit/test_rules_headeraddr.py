"""spamwarden.rules._headeraddr: header addresses as SpamAssassin's Util.pm reads them.

``tests/data/sarules_headers/addresses.json`` holds what SpamAssassin 4.0.1's
``parse_header_addresses`` (with Debian 12's Email::Address::XS 1.05) gives for each
text of ``address_values.json`` (``make_addresses.py`` beside them wrote it): corpus
header values where the stdlib's reading differed, and crafted ones.  The other
expected values below were read from the same Perl functions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spamwarden.rules._headeraddr import (
    internal_addresses,
    parse_header_addresses,
    xs_addresses,
)

DATA = Path(__file__).parent.parent / "data" / "sarules_headers"
EXPECTED = json.loads((DATA / "addresses.json").read_text())


def test_every_value_has_its_reading() -> None:
    values = json.loads((DATA / "address_values.json").read_text())
    assert [v for v, _ in EXPECTED] == values


@pytest.mark.parametrize(("value", "pairs"), EXPECTED, ids=range(len(EXPECTED)))
def test_same_reading_as_util_pm(value: str, pairs: list[list[str | None]]) -> None:
    assert parse_header_addresses(value) == [(p or "", a or "") for p, a in pairs]


@pytest.mark.parametrize(("value", "pairs"), [
    # an address literal, then junk: nothing
    ("<ngdgpfwxsw@[1086695621] [pi]>", []),
    ("<a b@c.example>", [(None, None)]),          # [^>@]* then \S+: one, no address
    ("<a@b.example> junk", [(None, "a@b.example")]),   # the last look
    ("ngdgpfwxsw@[1086695621], [pi]@netnoteinc.com",
     [(None, "ngdgpfwxsw@[1086695621]"), ("[pi]@netnoteinc.com", None)]),
    (" Pharmacy Program@allsortsstore.com", [("Pharmacy Program@allsortsstore.com", None)]),
    ("undisclosed-recipients:;", []),
    (" ,", [(" ", None)]),                        # \s* gives back a space: a phrase
    ('"@b', [(None, None)]),   # a plain local part may hold '"'; one alone is invalid
    ("<a><b> x", []),
    ("<a>,(c)<b><b> junk", [(None, None)]),
])
def test_internal_parser(value: str, pairs: list[tuple[str | None, str | None]]) -> None:
    assert internal_addresses(value) == pairs


@pytest.mark.parametrize(("value", "pairs"), [
    ("<ngdgpfwxsw@[1086695621] [pi]>", [("", "ngdgpfwxsw@[1086695621]")]),
    ("<a@b.example c>, d@e.example", [("", "a@b.example")]),
    ("<a b@c.example>", [("<a b@c.example>", "")]),   # the input as the phrase
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
    "<a>,(c)" + "<b>" * 40_000 + " junk",   # Perl's order tried one by one: 2 ** n
    "<a" + ">" * 120_000 + " x",
    "<a><\"b\"> " * 15_000 + "x",
    "<" + "a" * 120_000,
    "<\"" * 60_000,
    "(" * 120_000,
    "<a@[" + "1" * 120_000,
    "a@b.example, " * 10_000,
])
def test_hostile_long_values_read_in_one_pass(value: str) -> None:
    """Each octet is read a bounded number of times (a regex that backtracks, or a
    reader restarted at each ">", takes minutes or longer on these)."""
    found = parse_header_addresses(value)
    assert len(found) <= value.count(",") + 1
