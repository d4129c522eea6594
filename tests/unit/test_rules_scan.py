"""spamwarden.rules: the shortcuts of the scan (line starts, side prefilter databases)
find what the plain ``re`` search and ``findall`` find."""

from __future__ import annotations

import dataclasses
import json
import random
import re
from pathlib import Path

import pytest

from spamwarden.mail import parse_message
from spamwarden.rules import (
    HAVE_HYPERSCAN,
    RuleEngine,
    RuleSet,
    parse_rule_files,
    parse_rule_text,
    prepare_message,
)
from spamwarden.rules._engine import (
    _after_newline,
    _chain_starts,
    _count_at_line_starts,
    _count_unquoted,
    _unquoted_needles,
)
from spamwarden.rules._rewrite import repeated_group, widened

LINE_PATTERNS = [
    rb"^a", rb"^a+b?", rb"^(?:ab|b\n)a", rb"^\s*a", rb"^a\n^b", rb"^(?<=\n)a", rb"^(?<!b)a\b",
    rb"^[^\n]*\n", rb"^b(?=a)", rb"^(a)\s*\1", rb"^x?\n",
]


def _texts() -> list[bytes]:
    rnd = random.Random(11)
    out = [b"", b"\n", b"a", b"\na", b"a\n", b"ab\nba\n\na", b"\n\n\nab"]
    out += [bytes(rnd.choice(b"ab\n x") for _ in range(rnd.randint(0, 40))) for _ in range(3000)]
    return out


@pytest.mark.parametrize("source", LINE_PATTERNS)
@pytest.mark.parametrize("flags", [re.M, re.M | re.I])
def test_line_start_search_and_count_are_those_of_re(source: bytes, flags: int) -> None:
    pat = re.compile(source, flags)
    after = _after_newline(pat)
    assert after is not None
    texts = _texts()
    for text in texts:
        assert bool(pat.match(text) or after.search(text)) == bool(pat.search(text)), text
        for cap in (1, 2, 100):
            assert _count_at_line_starts(pat, after, [text], cap) == min(
                len(pat.findall(text)), cap), (text, cap)
    for cap in (1, 7, 100_000):  # over several units, as one rule's units
        assert _count_at_line_starts(pat, after, texts, cap) == min(
            sum(len(pat.findall(t)) for t in texts), cap)


@pytest.mark.parametrize(("source", "flags"), [
    (rb"^a", 0),            # no /m: ^ is the string's start only
    (rb"^a|b", re.M),       # ^ in one alternative only
    (rb"(?:^a)", re.M),     # not first at the top level
    (rb"^a*", re.M),        # may match the empty string
    (rb"a^", re.M),
])
def test_line_start_shortcut_declines_other_patterns(source: bytes, flags: int) -> None:
    assert _after_newline(re.compile(source, flags)) is None


@pytest.mark.parametrize(("source", "wide"), [
    (rb"a{1,3}b{,4}c{2}d{2,}", rb"a{1,}b{0,}c{2}d{2,}"),
    (rb"(?:x|yz){0,50}$", rb"(?:x|yz){0,}$"),
    (rb"[{1,2}]\{1,2}\\{1,2}", rb"[{1,2}]\{1,2}\\{1,}"),  # in a class, escaped: unchanged
    (rb"[]{1,2}]x", rb"[]{1,2}]x"),
])
def test_widened_bounds(source: bytes, wide: bytes) -> None:
    assert widened(source) == wide


def test_widened_drops_minimums_when_asked() -> None:
    assert widened(rb"a{2}b{0,3}c{1,}d{,4}(?:e|f){3,9}", drop_minimums=True) == rb"a+b*c+d*(?:e|f)+"
    assert widened(rb"[{2}]\{2}\\{2}", drop_minimums=True) == rb"[{2}]\{2}\\+"


@pytest.mark.parametrize(("source", "found"), [
    (rb"(?:ab|c){3}", (rb"(?:ab|c)", 3)),
    (rb"(?:[)]\)|x){2}", (rb"(?:[)]\)|x)", 2)),
    (rb"(?:a)(?:b){3}", None),      # more than the one group
    (rb"(?:a)|(?:b){3}", None),
    (rb"(?:a?){3}", None),          # the group matches the empty string
    (rb"(?:a){1}", None),
    (rb"(?:a){2,3}", None),         # not a fixed count
    (rb"(a){3}", None),             # a capturing group
])
def test_repeated_group_shapes(source: bytes, found: tuple[bytes, int] | None) -> None:
    assert repeated_group(source) == found


def test_widened_drops_inner_dollars_only() -> None:
    assert widened(rb"(?:$|\W)opt$", drop_dollars=True) == rb"(?:|\W)opt$"
    assert widened(rb"a\$[$]b$", drop_dollars=True) == rb"a\$[$]b$"
    assert widened(rb"(?:$|\W)opt$") == rb"(?:$|\W)opt$"


def test_widened_matches_wherever_the_pattern_matches() -> None:
    rnd = random.Random(5)
    sources = [rb"^(?:ab?){1,2}\s{0,3}(?:$|b)", rb"(?:a|b\n){2,3}$", rb"\b(?:ba){1,2}b?\b",
               rb"^(?>\s{0,2})a{1,2}$", rb"(?:a{2}|b{1,2}\s){3}"]
    texts = [bytes(rnd.choice(b"ab \n") for _ in range(rnd.randint(0, 20))) for _ in range(4000)]
    for source in sources:
        pat = re.compile(source, re.M)
        wide = re.compile(widened(source, drop_dollars=True), re.M)
        loose = re.compile(widened(source, drop_dollars=True, drop_minimums=True), re.M)
        for text in texts:
            if pat.search(text):
                assert wide.search(text), (source, text)
                assert loose.search(text), (source, text)


RULES = (
    "body OPT_OUT /(?:$|\\W)opt[ -]?out\\b/i\n"
    "body __OPT_MANY /(?:$|\\W)opt[ -]?out\\b/i\ntflags __OPT_MANY multiple maxhits=9\n"
    "meta OPT_TWICE __OPT_MANY == 2\n"
    "rawbody RAW_LINE /^(?:opt|out){1,2}\\s{0,3}(?:$|now)/im\n"
)
RAW_HIT = (b"From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\n"
           b"To opt-out, reply.\r\n\r\nOptout\r\n\r\nTo opt-out, reply.\r\n")
RAW_MISS = (b"From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\n"
            b"Nothing optional here.\r\n")


def _names(engine: RuleEngine, raw: bytes) -> list[str]:
    return [h.name for h in engine.check(parse_message(raw), raw)]


@pytest.mark.skipif(not HAVE_HYPERSCAN, reason="hyperscan is not installed")
def test_side_database_prefilters_re_rules_with_the_same_hits() -> None:
    fast = RuleEngine(parse_rule_text(RULES))
    plain = RuleEngine(parse_rule_text(RULES), use_hyperscan=False)
    assert {"OPT_OUT", "__OPT_MANY"} <= fast._groups["body"].side_set
    for raw in (RAW_HIT, RAW_MISS):
        assert _names(fast, raw) == _names(plain, raw)
    assert _names(fast, RAW_HIT) == ["OPT_OUT", "OPT_TWICE", "RAW_LINE"]
    assert _names(fast, RAW_MISS) == []
    msg = prepare_message(parse_message(RAW_HIT), RAW_HIT)
    assert fast.counts(msg) == plain.counts(msg)
    assert fast.counts(msg)["__OPT_MANY"] == 2  # "Optout" starts its paragraph: no \W before


@pytest.mark.skipif(not HAVE_HYPERSCAN, reason="hyperscan is not installed")
def test_side_databases_are_cached_and_added_to_an_older_cache(tmp_path: Path) -> None:
    rules = tmp_path / "local.cf"
    rules.write_text(RULES)
    cache = tmp_path / "cache"
    RuleEngine(parse_rule_files([rules]), cache_dir=cache)
    (path,) = cache.glob("sa-rules-*.json")
    data = json.loads(path.read_text())
    assert data["body"]["side"] == ["OPT_OUT", "__OPT_MANY"] and data["body"]["side_db"]
    for entry in data.values():  # a cache written before side databases existed
        for key in ("side", "side_db", "side_version"):
            entry.pop(key, None)
    path.write_text(json.dumps(data))
    older = RuleEngine(parse_rule_files([rules]), cache_dir=cache)
    assert older.cache_used and older._groups["body"].side_set == {"OPT_OUT", "__OPT_MANY"}
    assert _names(older, RAW_HIT) == ["OPT_OUT", "OPT_TWICE", "RAW_LINE"]
    assert json.loads(path.read_text())["body"]["side"] == ["OPT_OUT", "__OPT_MANY"]
    again = RuleEngine(parse_rule_files([rules]), cache_dir=cache)
    assert again.cache_used and again._groups["body"].side_db is not None
    assert _names(again, RAW_HIT) == ["OPT_OUT", "OPT_TWICE", "RAW_LINE"]


@pytest.mark.skipif(not HAVE_HYPERSCAN, reason="hyperscan is not installed")
def test_a_side_entry_naming_other_rules_is_rebuilt(tmp_path: Path) -> None:
    rules = tmp_path / "local.cf"
    rules.write_text(RULES)
    cache = tmp_path / "cache"
    RuleEngine(parse_rule_files([rules]), cache_dir=cache)
    (path,) = cache.glob("sa-rules-*.json")
    data = json.loads(path.read_text())
    data["body"]["side"] = ["RAW_LINE", "OPT_OUT"]  # RAW_LINE is not a body re rule
    path.write_text(json.dumps(data))
    engine = RuleEngine(parse_rule_files([rules]), cache_dir=cache)
    assert engine.cache_used and engine._groups["body"].side_set == {"OPT_OUT", "__OPT_MANY"}
    assert _names(engine, RAW_HIT) == ["OPT_OUT", "OPT_TWICE", "RAW_LINE"]


@pytest.mark.parametrize("use_hyperscan", [False, True] if HAVE_HYPERSCAN else [False])
def test_counts_are_whole_numbers_metas_and_exists_included(use_hyperscan: bool) -> None:
    engine = RuleEngine(parse_rule_text(
        RULES + "header HAS_TO exists:To\nheader HAS_TOCC exists:ToCc\n"
        "header NO_CC exists:Cc\nmeta BOTH HAS_TO && HAS_TOCC\nmeta HALF __OPT_MANY / 4\n"),
        use_hyperscan=use_hyperscan)
    got = engine.counts(prepare_message(parse_message(RAW_HIT), RAW_HIT))
    assert {k: v for k, v in got.items() if not k.startswith("__")} == {
        "OPT_OUT": 1, "OPT_TWICE": 1, "RAW_LINE": 1, "HAS_TO": 1, "HAS_TOCC": 1,
        "BOTH": 1, "HALF": 1}
    assert all(type(v) is int for v in got.values())


@pytest.mark.parametrize("use_hyperscan", [False, True] if HAVE_HYPERSCAN else [False])
def test_literal_set_counts_over_ascii_and_other_units(use_hyperscan: bool) -> None:
    raw = ("From: a@example.org\r\nTo: b@example.net\r\nSubject: hello\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\n"
           "eee see me\r\n\r\ncaf\u00e9 e\u0301t\u00e9\r\n").encode()
    engine = RuleEngine(parse_rule_text(
        "body __E_MANY /(?:e|\\xc3\\xa9)/\ntflags __E_MANY multiple maxhits=1000\n"
        "body __E_CAP /e/\ntflags __E_CAP multiple maxhits=4\n"), use_hyperscan=use_hyperscan)
    assert "__E_MANY" in engine._ascii_strings
    msg = prepare_message(parse_message(raw), raw)
    plain = re.compile(rb"(?:e|\xc3\xa9)")
    assert engine.counts(msg)["__E_MANY"] == sum(len(plain.findall(u)) for u in msg.body)
    assert engine.counts(msg)["__E_CAP"] == 4


# one group repeated (``(?:X){m}``), as SpamAssassin's __FILL_THIS_FORM_SHORT2 is: a field
# name, then a blank or "and"; marked costly, as the parser marks the long ones
REPEAT_RULES = (
    "body __FIELDS /(?:(?:your\\s)?(?:name|age|city|e-?mail)(?:[\\s:]{1,3}_{0,20}|\\sand\\s)){3}/i\n"
    "body __FIELDS_WORD /(?:\\b(?:name|age)\\b[\\s:]{1,3}){2}/i\n"
    "meta FIELDS __FIELDS\nmeta FIELDS_WORD __FIELDS_WORD\n"
)


def _costly(rs: RuleSet) -> RuleSet:
    """``rs`` with each pattern rule marked costly (run in ``re`` behind a prefilter)."""
    for name, rule in list(rs.rules.items()):
        if rule.regex is not None:
            rs.rules[name] = dataclasses.replace(rule, costly=True)
    return rs


def _form(body: str) -> bytes:
    return ("From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\n"
            + body).encode()


UNQUOTED_PATTERNS = [
    (rb"^[^>].*?<a", re.M), (rb"^[^>].*?<a", re.M | re.I), (rb"^[^>].*?<(?:a|B)", re.M),
    (rb"^[^>].*?a['\"]b", re.M | re.I),
]


@pytest.mark.parametrize(("source", "flags"), UNQUOTED_PATTERNS)
def test_unquoted_lines_counted_from_their_needles_as_findall_counts(
        source: bytes, flags: int) -> None:
    """``^[^>].*?N`` (``__HAS_HREF`` and its siblings) counted from where N occurs gives
    ``findall``'s count at every cap: quoted lines, empty lines before a line, N at a
    line's first octet, several per line, CR, case."""
    pat = re.compile(source, flags)
    found = _unquoted_needles(pat)
    assert found is not None
    fold, needles = found
    rnd = random.Random(7)
    texts = [b"", b"<a", b"x<a", b"\n<a", b"\n\n<a", b">x<a\n\n<a", b"\r\n<a<a", b"x<A"]
    texts += [bytes(rnd.choice(b"<aAbB>\n\n \r'\"") for _ in range(rnd.randint(0, 30)))
              for _ in range(5000)]
    for text in texts:
        for cap in (1, 3, 100):
            assert _count_unquoted([text], needles, fold, cap) == min(len(pat.findall(text)), cap)
    assert _count_unquoted(texts[:200], needles, fold, 10_000) == sum(
        len(pat.findall(t)) for t in texts[:200])


@pytest.mark.parametrize(("source", "flags"), [
    (rb"^[^>].*?aa", re.M), (rb"^[^>].*?<a", re.M | re.S), (rb"^[^>].*?<a\n", re.M),
    (rb"^[^>]+?<a", re.M), (rb"^[^>].*?<a", 0)])
def test_other_patterns_are_not_counted_from_needles(source: bytes, flags: int) -> None:
    assert _unquoted_needles(re.compile(source, flags)) is None


def _chain_from(ends: list[int], start: int, more: int, width: int) -> bool:
    """Whether ``more`` of ``ends`` follow ``start``, each ``width`` or more after the
    one before: every choice tried."""
    if more == 0:
        return True
    return any(_chain_from(ends, e, more - 1, width) for e in set(ends) if e >= start + width)


def test_chain_starts_are_the_ends_a_chain_follows() -> None:
    """The ends a repeat rule's rest is tried at: those that ``more`` reported ends
    follow, ``width`` apart at least (the earliest end taken each time, checked here
    against every choice)."""
    rnd = random.Random(5)
    for _ in range(3000):
        ends = [rnd.randint(0, 40) for _ in range(rnd.randint(0, 9))]
        more, width = rnd.randint(1, 4), rnd.randint(1, 6)
        want = sorted({e for e in ends if _chain_from(ends, e, more, width)})
        assert _chain_starts(ends, more, width) == want, (ends, more, width)


@pytest.mark.skipif(not HAVE_HYPERSCAN, reason="hyperscan is not installed")
def test_repeat_database_finds_what_re_finds() -> None:
    """Rules of one repeated group run in ``re`` only where the database of their group
    reports an end and the rest of the pattern matches there: the hits of ``re`` alone,
    on texts made to match, nearly match and not match."""
    fast = RuleEngine(_costly(parse_rule_text(REPEAT_RULES)))
    plain = RuleEngine(_costly(parse_rule_text(REPEAT_RULES)), use_hyperscan=False)
    g = fast._groups["body"]
    assert set(g.repeat_ids) == {"__FIELDS", "__FIELDS_WORD"}
    assert not g.hs_rules and not g.side_set & set(g.repeat_ids)
    rnd = random.Random(3)
    words = ["your ", "name", "age", "city", "email", "e-mail", " and ", ": ", "__", " ",
             "\r\n", "message", "x", "Name:", "AGE "]
    bodies = ["Your name: ____ your age: __ city: ___\r\n", "Your name: your age: city: _\r\n",
              "name and age and email and\r\n", "name: age\r\n", "message page stage\r\n",
              "Name: Age: \r\n\r\nname age\r\n"]
    bodies += ["".join(rnd.choice(words) for _ in range(rnd.randint(1, 14)))
               for _ in range(1500)]
    seen = {"__FIELDS": 0, "__FIELDS_WORD": 0}
    for body in bodies:
        raw = _form(body)
        msg = prepare_message(parse_message(raw), raw)
        got, want = fast.counts(msg), plain.counts(msg)
        assert got == want, body
        for name in seen:
            seen[name] += name in want
    assert all(n > 20 for n in seen.values()) and all(n < len(bodies) - 20 for n in seen.values())


@pytest.mark.skipif(not HAVE_HYPERSCAN, reason="hyperscan is not installed")
def test_repeat_databases_are_cached_and_rebuilt_when_they_name_other_rules(
        tmp_path: Path) -> None:
    rules = tmp_path / "local.cf"
    rules.write_text(REPEAT_RULES)
    cache = tmp_path / "cache"
    hit = _form("Your name: your age: city: ____\r\n")
    RuleEngine(_costly(parse_rule_files([rules])), cache_dir=cache)
    (path,) = cache.glob("sa-rules-*.json")
    data = json.loads(path.read_text())
    assert data["body"]["repeat"] == ["__FIELDS", "__FIELDS_WORD"] and data["body"]["repeat_db"]
    again = RuleEngine(_costly(parse_rule_files([rules])), cache_dir=cache)
    assert again.cache_used and set(again._groups["body"].repeat_ids) == {
        "__FIELDS", "__FIELDS_WORD"}
    assert _names(again, hit) == ["FIELDS"]
    data["body"]["repeat"] = ["FIELDS"]  # a meta, not one of the body re rules
    path.write_text(json.dumps(data))
    rebuilt = RuleEngine(_costly(parse_rule_files([rules])), cache_dir=cache)
    assert rebuilt.cache_used and set(rebuilt._groups["body"].repeat_ids) == {
        "__FIELDS", "__FIELDS_WORD"}
    assert _names(rebuilt, hit) == ["FIELDS"]


# A header with one rule: ``".*"\s*<`` backtracks in ``re`` for time quadratic in the value
# (SpamAssassin's __REPTO_QUOTE: 0.37 s of CPU for an 8 KB Reply-To of quotes, and a
# message may carry dozens of such fields); Hyperscan matches it in linear time.
HOSTILE_RULES = (
    'header __REPTO_QUOTE Reply-To =~ /".*"\\s*\\</\nmeta REPTO_QUOTE __REPTO_QUOTE\n'
    "header NAME_EQ_LOCAL To:raw =~ /^\\s*['\"]?([^'\"]+)['\"]? <?\\1\\@/\n"
)


def _hostile_reply_to(fields: int) -> bytes:
    quotes = b'"' * 990 + b"\r\n\t"  # (folded: one line would be too long for Postfix)
    head = b"".join(b"Reply-To: " + quotes * 8 + b"!\r\n" for _ in range(fields))
    return b"From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n" + head + b"\r\nhi\r\n"


@pytest.mark.skipif(not HAVE_HYPERSCAN, reason="hyperscan is not installed")
def test_a_header_pattern_hyperscan_runs_exactly_is_in_a_database_however_few_its_rules(
) -> None:
    engine = RuleEngine(parse_rule_text(HOSTILE_RULES))
    groups = {key: g for key, g in engine._all_groups() if key.startswith("header:")}
    by_rule = {r.name: g for g in groups.values() for r in g.rules}
    reply_to = by_rule["__REPTO_QUOTE"]
    assert [r.name for r in reply_to.hs_rules] == ["__REPTO_QUOTE"] and reply_to.db is not None
    assert not reply_to.re_rules and "__REPTO_QUOTE" not in reply_to.prefilter
    # a back-reference Hyperscan cannot run: its database only prefilters, ``re`` confirms
    to = by_rule["NAME_EQ_LOCAL"]
    assert "NAME_EQ_LOCAL" in to.prefilter
    plain = RuleEngine(parse_rule_text(HOSTILE_RULES), use_hyperscan=False)
    hit = (b"From: a@example.org\r\nTo: \"x\" <b@example.net>\r\nReply-To: \"Bob\" <b@example.org>"
           b"\r\nSubject: hi\r\n\r\nhi\r\n")
    for raw in (hit, _hostile_reply_to(1), _hostile_reply_to(3)):
        assert _names(engine, raw) == _names(plain, raw)
    assert _names(engine, hit) == ["REPTO_QUOTE"]
    assert _names(engine, _hostile_reply_to(3)) == []


@pytest.mark.skipif(not HAVE_HYPERSCAN, reason="hyperscan is not installed")
def test_a_cache_of_the_older_header_split_compiles_only_the_header_groups_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from spamwarden.rules import _engine

    rules = tmp_path / "local.cf"
    rules.write_text(RULES + HOSTILE_RULES)
    cache = tmp_path / "cache"
    with monkeypatch.context() as m:
        m.setattr(_engine, "HEADER_SPLIT_VERSION", _engine.HEADER_SPLIT_VERSION - 1)
        older = RuleEngine(parse_rule_files([rules]), cache_dir=cache)
    assert not older.cache_used
    engine = RuleEngine(parse_rule_files([rules]), cache_dir=cache)
    assert not engine.cache_used  # another key: the older set is not loaded as it is
    assert engine.compiled_groups and all(k.startswith("header:") for k in engine.compiled_groups)
    assert set(engine.reused_groups) == {"body", "rawbody"}
    assert len(list(cache.glob("sa-rules-*.json"))) == 2
    assert _names(engine, RAW_HIT) == ["OPT_OUT", "OPT_TWICE", "RAW_LINE"]
    again = RuleEngine(parse_rule_files([rules]), cache_dir=cache)
    assert again.cache_used and not again.compiled_groups
