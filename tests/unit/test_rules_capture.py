"""spamwarden.rules: SpamAssassin 4's capture rules, checked against SpamAssassin 4.0.

``tests/data/sarules_capture/*.eml`` are checked by SpamAssassin itself
(``tests/data/sarules_capture/make_expected.py`` wrote ``expected.json``: the rules below
that it hits on each, with Debian's rules and the ``SWT_`` test rules); the engine must hit
the same ones.  The other tests are attacks: a captured value written as regex syntax, an
overlong value, many values, many links holding the value.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spamwarden.mail import parse_message
from spamwarden.rules import RuleEngine, parse_rule_text, prepare_message
from spamwarden.rules._capture import (
    MAX_TAG_VALUE,
    MAX_TAG_VALUES,
    MAX_TEMPLATE_RUNS,
    CaptureRunner,
    _alternation,
    _filled,
    _head_hit,
    split_templates,
)

DATA = Path(__file__).parent.parent / "data" / "sarules_capture"

# Debian's SpamAssassin 4.0.1 72_active.cf (inside "if can(...feature_capture_rules)"),
# then the test rules make_expected.py adds to the site configuration
RULES = r"""
header __GB_TO_ADDR To:addr =~ /(?<GB_TO_ADDR>.*)/
uri __GB_CUSTOM_HTM_URI0 m;^https?://.{10,128}(?:\.html?|\.php|\/)?(?:\#|\?&e=)%{GB_TO_ADDR};i
uri __GB_CUSTOM_HTM_URI1 m|^https?://.{10,64}\=https?://.{4,64}\#%{GB_TO_ADDR}|i
uri __GB_CUSTOM_HTM_URI2 m;^https?://.{10,256}(?:\/\?)?(?:(?<!blocker)email=|audit\#|wapp\#)%{GB_TO_ADDR};i
uri __GB_DRUPAL_URI m|^https?://.{10,64}/default/files/(?:\@)?\#%{GB_TO_ADDR}|i
meta GB_CUSTOM_HTM_URI ( __GB_CUSTOM_HTM_URI0 || __GB_CUSTOM_HTM_URI1 || __GB_CUSTOM_HTM_URI2 || __GB_DRUPAL_URI )
uri T_GB_STORAGE_GOOGLE_EMAIL m|^https?://storage\.cloud\.google\.com/.{4,128}\#%{GB_TO_ADDR}|i
uri T_GB_YOUTUBE_EMAIL m|^https?://(?:www\.)?youtube\.com/attribution_link\?.{20,256}/%{GB_TO_ADDR}|i

body __SWT_CODES /\bcode:? (?<SWT_CODE>[a-z0-9]{3,12})\b/i
tflags __SWT_CODES multiple
uri SWT_CODE_URI m{[?&]c=%{SWT_CODE}(?:&|$)}
uri SWT_CODE_URI_I m{[?&]c=%{SWT_CODE}(?:&|$)}i
header SWT_SUBJ_NO_CODE Subject !~ /%{SWT_CODE}/
header SWT_TO_HAS_CODE To =~ /%{SWT_CODE}/i
"""
EXPECTED: dict[str, list[str]] = json.loads((DATA / "expected.json").read_text())


def _hits(rules: str, raw: bytes, *, use_hyperscan: bool = False) -> dict[str, int]:
    engine = RuleEngine(parse_rule_text(rules), use_hyperscan=use_hyperscan)
    return engine.counts(prepare_message(parse_message(raw), raw))


def _message(*, to: str = "victim@example.org", body: str, subject: str = "Hi") -> bytes:
    return (f"From: s@example.com\r\nTo: {to}\r\nSubject: {subject}\r\n"
            "Message-ID: <m@example.com>\r\nDate: Mon, 30 Nov 2026 10:00:00 +0000\r\n"
            f"\r\n{body}\r\n").encode()


def test_every_rule_is_read() -> None:
    ruleset = parse_rule_text(RULES)
    assert not ruleset.skipped
    assert ruleset.rules["__GB_TO_ADDR"].captures == ("GB_TO_ADDR",)
    template = ruleset.rules["__GB_CUSTOM_HTM_URI0"].template
    assert template is not None and template.tags == ("GB_TO_ADDR",) and template.required
    assert ruleset.rules["__GB_CUSTOM_HTM_URI0"].regex is None  # never in Hyperscan


@pytest.mark.parametrize("use_hyperscan", [False, True])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_same_hits_as_spamassassin(name: str, use_hyperscan: bool) -> None:
    raw = (DATA / name).read_bytes()
    assert sorted(_hits(RULES, raw, use_hyperscan=use_hyperscan)) == EXPECTED[name]


def test_the_expected_hits_cover_each_rule() -> None:
    hit = {r for names in EXPECTED.values() for r in names}
    # SWT_CODE_URI (case-sensitive), __GB_CUSTOM_HTM_URI1 and SWT_TO_HAS_CODE never hit
    names = {line.split()[1] for line in RULES.splitlines() if line.strip()}
    assert names - hit == {"SWT_CODE_URI", "__GB_CUSTOM_HTM_URI1", "SWT_TO_HAS_CODE"}


def test_escaped_template_is_literal_text() -> None:
    assert split_templates(r"a\%{X}b%{Y}") == ("a\\%{X}b\x000\x00", ("Y",))


def test_template_of_a_tag_no_rule_captures_is_skipped() -> None:
    ruleset = parse_rule_text("uri T_X m|x=%{NOBODY_SETS}|\n")
    assert ruleset.skipped == {"T_X": "template: no rule captures NOBODY_SETS"}


TOKEN_RULES = r"""
body __TOK /token=(?<TOK>\S+)/
uri TOK_URI m{[?]t=%{TOK}}
"""


@pytest.mark.parametrize(("token", "uri", "hit"), [
    # a value written as regex syntax is matched as text: as a regex "(a+)+$" would match
    # "t=aaaa" (and backtrack exponentially on "t=aaaa...!")
    ("(a+)+$", "http://x.example.com/?t=aaaaaaaaaaaaaaaaaaaaaaaa", False),
    ("(a+)+$", "http://x.example.com/?t=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", False),
    ("(a+)+$", "http://x.example.com/?t=(a+)+$", True),
    # the value is in the link, but only as text after "t=aaaa": as a regex it would hit
    ("(a+)+", "http://x.example.com/?t=aaaaaaaa&v=(a+)+", False),
    ("a.c", "http://x.example.com/?t=abc&v=a.c", False),
    ("a.c", "http://x.example.com/?t=abc", False),
    ("a\\d", "http://x.example.com/?t=a1", False),
])
def test_captured_value_is_never_regex_syntax(token: str, uri: str, hit: bool) -> None:
    raw = _message(body=f"token={token}\r\n{uri}")
    assert ("TOK_URI" in _hits(TOKEN_RULES, raw)) == hit


def test_overlong_value_is_dropped() -> None:
    long_token = "x" * (MAX_TAG_VALUE + 1)
    raw = _message(body=f"token={long_token}\r\nhttp://x.example.com/?t={long_token}")
    assert "TOK_URI" not in _hits(TOKEN_RULES, raw)
    short = "x" * MAX_TAG_VALUE
    raw = _message(body=f"token={short}\r\nhttp://x.example.com/?t={short}")
    assert "TOK_URI" in _hits(TOKEN_RULES, raw)


def test_a_tag_keeps_a_bounded_number_of_values() -> None:
    many = TOKEN_RULES + "tflags __TOK multiple\n"
    tokens = [f"v{i:03d}" for i in range(MAX_TAG_VALUES + 10)]
    body = "\r\n".join(f"token={t}" for t in tokens)
    first = _message(body=f"{body}\r\nhttp://x.example.com/?t={tokens[0]}")
    last = _message(body=f"{body}\r\nhttp://x.example.com/?t={tokens[-1]}")
    assert "TOK_URI" in _hits(many, first)
    assert "TOK_URI" not in _hits(many, last)


def test_many_links_holding_the_value_run_a_bounded_number_of_patterns() -> None:
    ruleset = parse_rule_text(TOKEN_RULES + "uri TOK_URI2 m{[?]u=%{TOK}}\n")
    runner = CaptureRunner(ruleset.rules)
    uris = [f"http://x.example.com/{i}?s=abc".encode() for i in range(1000)]
    units = {"__TOK": [b"token=abc"], "TOK_URI": uris, "TOK_URI2": uris}
    counts = {"__TOK": 1}
    runs = runner.run(counts, units.__getitem__)
    assert runs == MAX_TEMPLATE_RUNS  # 2,000 places to try, cut at the bound
    assert "TOK_URI" not in counts


def test_value_absent_from_every_link_runs_no_pattern() -> None:
    ruleset = parse_rule_text(TOKEN_RULES)
    runner = CaptureRunner(ruleset.rules)
    uris = [f"http://x.example.com/{i}?t=other".encode() for i in range(1000)]
    counts = {"__TOK": 1}
    assert runner.run(counts, {"__TOK": [b"token=abc"], "TOK_URI": uris}.__getitem__) == 0


def test_the_short_way_for_a_trailing_template_gives_the_patterns_answer() -> None:
    """A rule ending in its template is run as "the pattern before it ends where a value
    starts"; over varied links that must be exactly what the filled pattern says."""
    ruleset = parse_rule_text(RULES)
    runner = CaptureRunner(ruleset.rules)
    assert set(runner._heads) >= {"__GB_CUSTOM_HTM_URI0", "__GB_CUSTOM_HTM_URI2",
                                  "T_GB_YOUTUBE_EMAIL", "__GB_DRUPAL_URI"}
    values = (b"Victim@Example.org", b"a.b+c@x.org")
    hosts = [b"https://evil.example.com", b"http://h.co", b"https://storage.cloud.google.com",
             b"https://www.youtube.com/attribution_link?", b"ftp://evil.example.com"]
    middles = [b"/p.html#", b"/x/y.php?&e=", b"/#", b"/?blockeremail=", b"/?email=", b"/audit#",
               b"/" + b"z" * 130 + b"#", b"/sites/default/files/@#", b"/default/files/#",
               b"/a=https://b.example.com/ok#", b"/" + b"q" * 20 + b"/", b"#"]
    links = [h + m + v + t for h in hosts for m in middles
             for v in (b"victim@example.org", b"VICTIM@EXAMPLE.ORG", b"aXb+c@x.org",
                       b"a.b+c@x.org", b"someone@example.org")
             for t in (b"", b"&more")]
    answers: set[tuple[str, bool]] = set()
    for name, head in runner._heads.items():
        rule = ruleset.rules[name]
        if rule.kind != "uri":
            continue
        assert rule.template is not None
        ic = rule.template.regex.ignorecase
        filled = _filled(rule.template.regex, (_alternation(values),))
        for link in links:
            hay = link.lower() if ic else link
            short, _ = _head_hit(head, ic, values, [(link, hay)], 1000)
            assert short == bool(filled.search(link)), (name, link)
            answers.add((name, short))
    # not vacuous: each rule both hits and misses some of the links
    assert {n for n, hit in answers if hit} == {n for n, hit in answers if not hit}
    assert len({n for n, hit in answers if hit}) == 6


def test_a_template_filled_with_a_value_matches_a_hostile_text_within_the_time_limit() -> None:
    """The filled template runs in Python like the patterns Hyperscan cannot run; over
    blank To fields this one is cubic (seconds in ``re`` for 8 KB, hours for more): it
    stops at ``time_limit`` and the message gets ``TIME_LIMIT_EXCEEDED``."""
    rules = (
        "body __SWT_CODES /\\bcode:? (?<SWT_CODE>[a-z0-9]{3,12})\\b/i\n"
        "header SWT_TO_SLOW To:raw =~ /^\\s*['\"]?([^'\"]+)['\"]? <?\\1%{SWT_CODE}/\n"
        "body SWT_BODY /\\bcode\\b/\n"
    )
    engine = RuleEngine(parse_rule_text(rules), use_hyperscan=False, time_limit=0.3)
    fields = "".join("To:" + " " * 990 + "\r\n" for _ in range(8))
    raw = ("From: s@example.com\r\n" + fields + "To: b abc\r\nSubject: Hi\r\n\r\n"
           "Your code: abc\r\n").encode()
    hits = engine.check(parse_message(raw), raw)
    names = [h.name for h in hits]
    assert "SWT_TO_SLOW" not in names and "TIME_LIMIT_EXCEEDED" in names
    assert "SWT_TO_SLOW" in hits[names.index("TIME_LIMIT_EXCEEDED")].description
    # the same rule still hits a legitimate long value
    ok = ("From: s@example.com\r\nTo: bob <bobabc@example.org>" + ", x <x@example.org>" * 20
          + "\r\nSubject: Hi\r\n\r\nYour code: abc\r\n").encode()
    assert "SWT_TO_SLOW" in [h.name for h in engine.check(parse_message(ok), ok)]
