"""spamwarden.rules._headeraddr: header addresses as SpamAssassin's Util.pm reads them.

``tests/data/sarules_headers/addresses.json`` holds what SpamAssassin 4.0.1's
``parse_header_addresses`` (with Debian 12's Email::Address::XS 1.05) gives for each
text of ``address_values.json`` (``make_addresses.py`` beside them wrote it): corpus
header values where the stdlib's reading differed, and crafted ones.  The other
expected values below were read from the same Perl functions.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from spamwarden.rules._headeraddr import (
    general_addresses,
    internal_addresses,
    parse_header_addresses,
    xs_addresses,
)
from tests.conftest import corpus_message_files, corpus_paths

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


def _random_common_form(rnd: random.Random) -> str:
    word = "".join(rnd.choice("aZ09.'_-%+ ") for _ in range(rnd.randint(0, 6)))
    local = "".join(rnd.choice("aZ09._%+-") for _ in range(rnd.randint(1, 6)))
    domain = "".join(rnd.choice("aZ09._-") for _ in range(rnd.randint(1, 8)))
    address = f"{local}@{domain}"
    lead = rnd.choice(["", " ", "\t", "  "])
    tail = rnd.choice(["", " ", "\t", "x", ","])
    shape = rnd.randrange(4)
    if shape == 0:
        return lead + address + tail
    if shape == 1:
        return f"{lead}<{address}>{tail}"
    if shape == 2:
        return f'{lead}"{word}"{rnd.choice(["", " ", "  "])}<{address}>{tail}'
    return f'{lead}{word}{rnd.choice(["", " ", "  "])}<{address}>{tail}'


def test_common_forms_read_as_the_general_parser_reads_them() -> None:
    """The shortcut for a bare address and one address in <> gives exactly what the
    general reading gives, on random values of those forms and their near misses (dots
    at the ends, no dot, "%", white space before "<", text after ">")."""
    from spamwarden.rules._headeraddr import _simple_form

    rnd = random.Random(7)
    taken = 0
    for _ in range(60_000):
        value = _random_common_form(rnd)
        simple = _simple_form(value)
        if simple is not None:
            taken += 1
            assert simple == general_addresses(value), value
        assert parse_header_addresses(value) == general_addresses(value), value
    assert taken > 20_000  # the shortcut is really exercised


_ADDRESS_FIELD = re.compile(
    rb"(?im)^(?:from|to|cc|reply-to|return-path|sender|resent-from|errors-to):[ \t]*"
    rb"(.*(?:\r?\n[ \t].*)*)")


def test_common_forms_on_the_corpus() -> None:
    """Every address field of the corpus the shortcut takes (most of them) reads as the
    general parser reads it."""
    from spamwarden.rules._headeraddr import _simple_form

    values: set[str] = set()
    for root in corpus_paths().values():
        for path in corpus_message_files(root):
            head = path.read_bytes().split(b"\n\n", 1)[0]
            for m in _ADDRESS_FIELD.finditer(head):
                text = m.group(1).decode("utf-8", "replace")
                values.add(text.replace("\r", "").replace("\n", " "))
    taken = [v for v in values if _simple_form(v) is not None]
    assert len(taken) > len(values) // 2
    for value in taken:
        assert _simple_form(value) == general_addresses(value), value
