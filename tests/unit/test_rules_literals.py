"""spamwarden.rules._literals: the text every match holds, and the engine skipping units without it."""

from __future__ import annotations

import random
import re

import pytest

from spamwarden.mail import parse_message
from spamwarden.rules import RuleEngine, parse_rule_text, prepare_message
from spamwarden.rules._literals import literal_set, required_literals


@pytest.mark.parametrize(
    ("pattern", "flags", "expected"),
    [
        (rb"^[^>].*?<a href=", re.I | re.M, (b"<a href=",)),
        (rb"^[^>].*?<(?:a href|A HREF)=", re.M, (b"a href",)),
        (rb"<IMG src=['\"]data", 0, (b"<img src=",)),
        (rb"(?:foo)?barbaz", 0, (b"barbaz",)),
        (rb"(?:abcd){2}", 0, (b"abcd",)),
        (rb"(?>unsub)scribe", 0, (b"scribe",)),  # the longer run
        (rb"(?:viagra|cialis)\b", re.I, (b"viagra", b"cialis")),
        # nothing every match must hold
        (rb"(?:abcd)*x", 0, None),
        (rb"(?:abcd)?", 0, None),
        (rb"x(?=abcd)", 0, None),
        (rb"(?:abc|d)e", 0, None),
        (rb"[a-z]{5}", 0, None),
        (rb"(a)bc\1", 0, None),
        (rb"(", 0, None),  # not a pattern: no shortcut, re says what is wrong
    ],
)
def test_required_literals(pattern: bytes, flags: int, expected: tuple[bytes, ...] | None) -> None:
    assert required_literals(pattern, flags) == expected


PATTERNS = [rb"^[^>].*?<a href=", rb"(?:viagra|cialis)\b", rb"(?:foo)?bar[0-9]baz",
            rb"(?>unsub)scribe\s+now", rb"(?:abcd){2,}x", rb"click\s+(?:here|below)"]
ALPHABET = [b"a", b"b", b"c", b"d", b"x", b" ", b"\n", b"<", b"A HREF=", b"<a href=",
            b"ViAgRa", b"cialis", b"bar1baz", b"UNSUBscribe  now", b"abcd", b"here"]


@pytest.mark.parametrize("flags", [0, re.I, re.I | re.M | re.S])
def test_no_match_in_text_without_the_literals(flags: int) -> None:
    rnd = random.Random(1234 + flags)
    for pattern in PATTERNS:
        need = required_literals(pattern, flags)
        assert need is not None
        rx = re.compile(pattern, flags)
        for _ in range(3000):
            text = b"".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(0, 12)))
            if rx.search(text):
                assert any(n in text.lower() for n in need), (pattern, text)


RULES = """
rawbody  HAS_HREF    /^[^>].*?<a href=/mi
tflags   HAS_HREF    multiple maxhits=100
score    HAS_HREF    1.0
rawbody  HREF_ONCE   /^[^>].*?<a href=/mi
score    HREF_ONCE   1.0
"""


@pytest.mark.parametrize("use_hyperscan", [False, True])
def test_the_engine_counts_as_without_the_shortcut(use_hyperscan: bool) -> None:
    body = ("text <A HREF=x> and <a href=y>\r\nnone here\r\n<a HrEf=z>\r\n" * 3)
    raw = ("From: a@example.org\r\nTo: b@example.net\r\nSubject: s\r\n"
           "Content-Type: text/html\r\n\r\n" + body).encode()
    engine = RuleEngine(parse_rule_text(RULES), use_hyperscan=use_hyperscan)
    counts = engine.counts(prepare_message(parse_message(raw), raw))
    rx = re.compile(rb"^[^>].*?<a href=", re.I | re.M)
    units = prepare_message(parse_message(raw), raw).rawbody
    assert counts["HAS_HREF"] == sum(len(rx.findall(u)) for u in units) > 1
    assert counts["HREF_ONCE"] == 1
    plain = (b"From: a@example.org\r\nTo: b@example.net\r\nSubject: s\r\n\r\nno links\r\n")
    left = engine.counts(prepare_message(parse_message(plain), plain))
    assert "HAS_HREF" not in left and "HREF_ONCE" not in left


@pytest.mark.parametrize(("source", "strings"), [
    (rb"e", (b"e",)),
    (rb"(?:e|\xc3[\xa8-\xab])", (b"e", b"\xc3\xa8", b"\xc3\xa9", b"\xc3\xaa", b"\xc3\xab")),
    (rb"\n(?:from|to):", (b"\nfrom:", b"\nto:")),
    (rb"x[ab](c)", (b"xac", b"xbc")),
])
def test_literal_set(source: bytes, strings: tuple[bytes, ...]) -> None:
    assert literal_set(source) == strings


@pytest.mark.parametrize(("source", "flags"), [
    (rb"aa", 0),          # "aaa" holds two occurrences, re finds one
    (rb"ab|b", 0),        # one holds the other
    (rb"ab|bc", 0),       # "abc": the end of one begins the other
    (rb"e", re.IGNORECASE),
    (rb"\w", 0), (rb"[^a]", 0), (rb"a*", 0), (rb"^a", 0), (rb"a|", 0), (rb"(?i:a)", 0),
    (rb"[\x00-\xff][\x00-\xff]", 0),  # too many strings
])
def test_literal_set_refuses(source: bytes, flags: int) -> None:
    assert literal_set(source, flags) is None


def test_literal_set_counts_are_findall_counts() -> None:
    rnd = random.Random(3)
    sources = [rb"e", rb"(?:e|\xc3[\xa8\xa9])", rb"ab|ba?c", rb"x(?:yz|zy)", rb"[ab]c|d"]
    texts = [bytes(rnd.choice(b"abcdexyz\xc3\xa8\xa9") for _ in range(rnd.randint(0, 30)))
             for _ in range(3000)]
    for source in sources:
        strings = literal_set(source)
        pat = re.compile(source)
        if strings is None:
            continue
        for text in texts:
            assert sum(text.count(s) for s in strings) == len(pat.findall(text)), (source, text)
