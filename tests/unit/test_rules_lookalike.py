"""ReplaceTags' look-alike letters loosened for a prefilter (spamwarden.rules._lookalike),
and the sextortion rules too long for Hyperscan that run behind it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from spamwarden.mail import parse_message
from spamwarden.rules import (
    HAVE_HYPERSCAN,
    RuleEngine,
    RuleSet,
    parse_rule_files,
    prepare_message,
    rule_files,
)
from spamwarden.rules._lookalike import looser_tag
from spamwarden.rules._parser import _MAX_REGEX
from spamwarden.rules._regex import translate

REPLACE_CF = Path("/usr/share/spamassassin/25_replace.cf")
# the rules of 72_active.cf whose ReplaceTags expansion is over Hyperscan's length limit
LONG = {"__HOURS_DEADLINE", "__MY_MALWARE", "__PAY_ME", "__YOUR_ONAN", "__YOUR_PASSWORD",
        "__YOUR_PERSONAL", "__YOUR_WEBCAM"}


def _tags() -> dict[str, str]:
    if not REPLACE_CF.exists():
        pytest.fail("SpamAssassin's rules are not installed; run `make test`, which installs "
                    "the spamassassin package")
    out = {}
    for line in REPLACE_CF.read_text("latin-1").splitlines():
        m = re.match(r"\s*replace_tag\s+(\S+)\s+(.*)", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def _candidates() -> list[bytes]:
    """Strings a letter tag may match: every octet, every UTF-8 character of two octets,
    the three- and four-octet ranges the tags use (Latin extended additional, Greek
    extended, mathematical letters), entities by number, and the ASCII pairs the tags
    spell (``rn``, ``><``, ``\\/``)."""
    out = [bytes([o]) for o in range(256)]
    points = [*range(0x80, 0x800), *range(0x1E00, 0x2000), *range(0x1D400, 0x1D800)]
    out += [chr(p).encode("utf-8") for p in points]
    out += [f"&#{n};".encode() for n in range(2000)]
    out += [f"&#x{n:x};".encode() for n in range(0x600)]
    out += [b"rn", b"><", b"\\/", b"&nbsp;", b"&ensp;", b"&thinsp;", b"=ad", b"&shy;"]
    return out


def test_every_loosened_tag_matches_whatever_the_tag_matches() -> None:
    tags = _tags()
    candidates = _candidates()
    loosened = 0
    for name, value in tags.items():
        if "<" in value:  # a tag built of other tags is loosened through them
            continue
        looser = looser_tag(value)
        exact = translate(value, "i").compile()
        loose = translate(looser, "i").compile()
        for text in candidates:
            if exact.fullmatch(text):
                assert loose.fullmatch(text), (name, text)
        if looser != value:
            loosened += 1
            assert len(looser) < len(value) / 3, name
    assert loosened >= 26  # every letter A-Z is loosened: the check is not vacuous


def test_a_mixed_class_keeps_its_ascii_members_and_one_high_octet() -> None:
    value = r"(?:[aA\@\xc0\xc1]|[\xd0][\x90\xb0]|&\#(?:1072|x430);)"
    assert looser_tag(value) == r"(?:[\x40Aa]|[\x80-\xff]{1,2}|&[\#0-9A-Za-z]{5,5};)"
    loose = translate(looser_tag(value), "").compile()
    assert loose.fullmatch(b"@") and loose.fullmatch(b"\xd0\xb0") and loose.fullmatch(b"&#x430;")
    assert not loose.fullmatch(b"b") and not loose.fullmatch(b"&lt;")


@pytest.mark.parametrize(("value", "expected"), [
    (r"(?:jpe?g|gif|png)", None),            # nothing to loosen
    (r"[\s\d_*\$\%(),.]", None),             # not an alternation
    (r"(?:[^a]|\xd0\x90)", r"(?:[^a]|[\x80-\xff]{2,2})"),  # a negated class kept
    (r"(?:.|[\xd0][\x90])", r"(?:.|[\x80-\xff]{2,2})"),    # a dot kept
    (r"(?:[\xd0][\x90]|(?:x)", None),        # brackets that do not balance
    (r"(?:[\xf0][\x9d][\x90][\x80][\x81]|x)", None),  # five high octets: no letter
    (r"(?:&amp;x;|[\xd0][\x90])", r"(?:&amp;x;|[\x80-\xff]{2,2})"),  # "&amp;x;": a ";" inside
])
def test_what_it_cannot_be_sure_of_stays_as_written(value: str, expected: str | None) -> None:
    assert looser_tag(value) == (expected or value)


@pytest.fixture(scope="module")
def long_rules() -> RuleSet:
    return parse_rule_files(rule_files())


def test_the_long_replacetags_rules_are_read_with_a_shorter_prefilter(
    long_rules: RuleSet,
) -> None:
    rules = long_rules.rules
    assert not [n for n, why in long_rules.skipped.items() if "too long" in why]
    for name in LONG:
        rule = rules[name]
        assert rule.regex is not None and rule.prefilter is not None
        assert len(rule.regex.source) > _MAX_REGEX >= len(rule.prefilter.source)


# SpamAssassin 4.0.1 on this message (`spamassassin -L -t --debug=rules`): of the seven,
# __HOURS_DEADLINE, __MY_MALWARE and __YOUR_PERSONAL hit.  "your", "personal",
# "information" and "hours" are spelt with Cyrillic and Greek o's (UTF-8).
LOOKALIKE = (b"From: a@example.com\nTo: b@example.net\nSubject: hello\n"
             b"Date: Thu, 22 Aug 2002 18:26:25 +0700\nMessage-Id: <1@example.org>\n"
             b"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
             b"Content-Transfer-Encoding: 8bit\n\n"
             b"I have all y\xd0\xbeur pers\xd0\xbenal inf\xce\xbfrmation and your contacts.\n"
             b"I give y\xd0\xbeu 48 h\xd0\xbeurs to pay, or I will send everything to all "
             b"your friends.\nI installed a malware on your computer.\n")
PLAIN = LOOKALIKE.replace(b"\xd0\xbe", b"o").replace(b"\xce\xbf", b"o")


@pytest.mark.parametrize("use_hyperscan", [False, True] if HAVE_HYPERSCAN else [False])
def test_the_long_rules_hit_look_alike_letters(long_rules: RuleSet, use_hyperscan: bool) -> None:
    family = RuleSet(rules={n: long_rules.rules[n] for n in LONG})
    engine = RuleEngine(family, use_hyperscan=use_hyperscan)
    if use_hyperscan:
        g = engine._groups["body"]
        assert not g.hs_rules and g.side_set == LONG  # behind the loosened prefilter
    expected = {"__HOURS_DEADLINE", "__MY_MALWARE", "__YOUR_PERSONAL"}
    for raw in (LOOKALIKE, PLAIN):
        msg = prepare_message(parse_message(raw), raw)
        assert set(engine.counts(msg)) == expected
    quiet = LOOKALIKE.split(b"\n\n")[0] + b"\n\nNothing to see here: lunch at noon?\n"
    assert engine.counts(prepare_message(parse_message(quiet), quiet)) == {}
