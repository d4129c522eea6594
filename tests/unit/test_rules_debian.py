"""spamwarden.rules on SpamAssassin's real rule files (Debian's ``spamassassin`` package).

`make test` installs the package (DEBS_TEST).  The Hyperscan database of the full rule
set takes minutes to compile on a busy machine, so it is kept in pytest's cache folder
between runs (keyed by the rule files' digest, like the production cache).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from spamwarden.mail import parse_message
from spamwarden.rules import (
    HAVE_HYPERSCAN,
    Hit,
    RuleEngine,
    RuleSet,
    parse_rule_files,
    prepare_message,
    rule_files,
)
from spamwarden.rules._engine import _hs_compiles, _re_only, _wants_prefilter
from spamwarden.rules._rewrite import possessive_line_runs
from tests.conftest import shared_path

# Measured on SpamAssassin 4.0.1's rules (Debian 12): 2,455 rules read, 2,286 parsed.
PARSED_FLOOR = 2200
SAMPLE = 200


@pytest.fixture(scope="module")
def debian_rules() -> RuleSet:
    files = rule_files()
    if not files:
        pytest.fail("SpamAssassin's rules are not installed; run `make test`, which installs "
                    "the spamassassin package")
    return parse_rule_files(files)


def test_every_rule_is_parsed_or_skipped_with_a_reason(debian_rules: RuleSet) -> None:
    seen = sum(debian_rules.kinds_seen.values())
    assert len(debian_rules.rules) + len(debian_rules.skipped) == seen
    assert not set(debian_rules.rules) & set(debian_rules.skipped)
    assert len(debian_rules.rules) >= PARSED_FLOOR
    assert all(reason for reason in debian_rules.skipped.values())
    kinds = {r.kind for r in debian_rules.rules.values()}
    assert kinds >= {"header", "body", "rawbody", "uri", "full", "meta", "mimeheader", "eval"}


def test_known_rules_parse_with_score_set_2(debian_rules: RuleSet) -> None:
    rules = debian_rules.rules
    # 50_scores.cf: "score MISSING_SUBJECT 0.001 1.767 1.300 1.799" -> the third value
    assert rules["MISSING_SUBJECT"].score == 1.3
    assert rules["MISSING_SUBJECT"].description
    assert rules["SUBJ_ALL_CAPS"].kind == "eval" and rules["SUBJ_ALL_CAPS"].score == 0.5
    # network rules are inside ifplugin blocks of plugins not loaded here
    assert "RCVD_IN_ZEN_BLOCKED" not in rules
    assert debian_rules.inactive
    # ReplaceTags rules expand their <TAG>s
    fuzzy = rules["__SUBJECT_FUZZY_VPILL"]
    assert fuzzy.regex is not None and b"<V>" not in fuzzy.regex.source
    assert b"<" not in fuzzy.regex.source


@pytest.fixture(scope="module")
def cache_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the full rule set's databases are kept: pytest's cache folder (across
    runs), else a temporary one."""
    cache = getattr(request.config, "cache", None)
    return (Path(cache.mkdir("spamwarden-sa-rules")) if cache is not None
            else tmp_path_factory.mktemp("sa-rules"))


@pytest.fixture(scope="module")
def sample() -> list[bytes]:
    root = shared_path("corpus", "spamassassin")
    spam = sorted((root / "spam").iterdir())[: SAMPLE // 2]
    ham = sorted((root / "ham").iterdir())[: SAMPLE // 2]
    return [p.read_bytes() for p in spam + ham]


@pytest.mark.skipif(not HAVE_HYPERSCAN, reason="hyperscan is not installed")
def test_hyperscan_and_re_give_identical_hits(
    debian_rules: RuleSet, sample: list[bytes], cache_dir: Path,
) -> None:
    fast = RuleEngine(debian_rules, cache_dir=cache_dir)
    slow = RuleEngine(debian_rules, use_hyperscan=False)
    assert fast.stats()["hyperscan_patterns"] > 1000
    total_hits = 0
    for raw in sample:
        msg = prepare_message(parse_message(raw), raw)
        a, b = fast.counts(msg), slow.counts(msg)
        assert a == b
        total_hits += len(a)
    assert total_hits > SAMPLE  # the sample does hit rules: the comparison is not vacuous


@pytest.mark.skipif(not HAVE_HYPERSCAN, reason="hyperscan is not installed")
def test_check_gives_the_hits_of_every_rule_counted(
    debian_rules: RuleSet, sample: list[bytes], cache_dir: Path,
) -> None:
    """``check`` leaves out the work for rules no reported rule depends on; its hits must
    be exactly the reported rules among all counts (the straightforward path)."""
    engine = RuleEngine(debian_rules, cache_dir=cache_dir)
    rules = debian_rules.rules
    total_hits = 0
    for raw in sample:
        msg = prepare_message(parse_message(raw), raw)
        every = engine.counts(msg)
        expected = sorted(Hit(n, rules[n].score, rules[n].description)
                          for n in every if rules[n].reported)
        assert engine.check_prepared(prepare_message(parse_message(raw), raw)) == expected
        total_hits += len(expected)
    assert total_hits > SAMPLE  # not vacuous


@pytest.mark.skipif(not HAVE_HYPERSCAN, reason="hyperscan is not installed")
def test_no_header_pattern_hyperscan_can_run_is_left_to_re(
    debian_rules: RuleSet, cache_dir: Path,
) -> None:
    """``re`` backtracks, Hyperscan does not: every header pattern Hyperscan runs exactly
    is in a database, so a hostile value costs linear time (back-references and
    look-arounds are confirmed in ``re`` on the values their prefilter matched; the
    few patterns of the shape Hyperscan's library misses matches of run in ``re``)."""
    engine = RuleEngine(debian_rules, cache_dir=cache_dir)
    left = {r.name for key, g in engine._all_groups() if key.startswith("header:")
            for r in g.re_rules
            if r.regex is not None and not r.costly and r.prefilter is None
            and not _wants_prefilter(r.regex) and not _re_only(r.regex)
            and _hs_compiles(r.regex)}
    assert left == set()
    in_db = {r.name for key, g in engine._all_groups() if key.startswith("header:")
             for r in g.hs_rules}
    # one-rule and few-rule targets too (Reply-To, Date, To, MIME-Version)
    assert {"__REPTO_QUOTE", "INVALID_DATE", "__NAKED_TO", "__MALF_MIME_VER"} <= in_db


@pytest.mark.skipif(not HAVE_HYPERSCAN, reason="hyperscan is not installed")
def test_regex_for_long_texts_gives_the_counts_of_re(
    debian_rules: RuleSet, sample: list[bytes], cache_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Long texts are matched by the ``regex`` module (``_bounded``): every pattern the
    engine runs in Python gives the same counts there as in ``re``, on the sample."""
    from spamwarden.rules import _bounded

    engine = RuleEngine(debian_rules, cache_dir=cache_dir, time_limit=600.0)

    def counts() -> list[dict[str, int]]:
        out = []
        for raw in sample:
            msg = prepare_message(parse_message(raw), raw)
            out.append(engine.counts(msg))
            assert msg.late_rules == ()
        return out

    monkeypatch.setattr(_bounded, "SHORT", 1 << 40)  # every text: re
    in_re = counts()
    monkeypatch.setattr(_bounded, "SHORT", -1)  # every text: regex
    assert counts() == in_re
    assert sum(len(c) for c in in_re) > SAMPLE  # not vacuous


def test_possessive_rewrite_finds_the_same_matches(
    debian_rules: RuleSet, sample: list[bytes],
) -> None:
    """Every Debian rule whose ``re`` pattern is rewritten (possessive line runs) finds
    the same matches as the pattern as translated, on the sample's texts."""
    import re

    rewritten = []
    for rule in debian_rules.rules.values():
        rx = rule.regex
        if rx is not None and possessive_line_runs(rx.source) != rx.source:
            rewritten.append((rx.compile(), replace(rx, source=possessive_line_runs(rx.source))
                              .compile()))
    assert len(rewritten) >= 10  # the ALL rules spelling "any lines" as (?:[^\n]+\n+)*
    texts: list[bytes] = []
    for raw in sample:
        msg = prepare_message(parse_message(raw), raw)
        for name in ("ALL", "Received", "From", "To", "Subject"):
            value = msg.header_text(name)
            if value:
                texts.append(value.encode("utf-8", "surrogateescape"))
        texts.append(msg.full)
        texts.extend(msg.rawbody[:50])
    found = 0
    for plain, fast in rewritten:
        assert isinstance(plain, re.Pattern) and isinstance(fast, re.Pattern)
        for text in texts:
            spans = [m.span() for m in plain.finditer(text)]
            assert [m.span() for m in fast.finditer(text)] == spans, plain.pattern
            found += len(spans)
    assert found > 0


FORM = (b"From: a@example.com\nTo: b@example.net\nSubject: hello\n"
        b"Date: Thu, 22 Aug 2002 18:26:25 +0700\nMessage-Id: <1@example.org>\n\n"
        b"Please fill in this form and send it back:\n\nYour full name: ________\n"
        b"Your address: ________\nYour phone number: ________\nYour age: ____\n")


@pytest.mark.parametrize("use_hyperscan", [False, True] if HAVE_HYPERSCAN else [False])
def test_fill_this_form_patterns_run(debian_rules: RuleSet, use_hyperscan: bool) -> None:
    """__FILL_THIS_FORM_PARTIAL and _PARTIAL_RAW (``/^.../im``, long, many bounded
    repeats) run in ``re``, which tries them at line starts only; the unanchored members
    of the family, marked costly, run with ``rules.costly_patterns`` in ``re`` behind the
    repeat and side databases.
    The hits are SpamAssassin 4.0.1's on this message (``spamassassin -L -t
    --debug=rules``: __FILL_THIS_FORM_PARTIAL and __FILL_THIS_FORM_SHORT2 among them)."""
    from spamwarden.rules import RuleSet as _RuleSet

    family_names = {"__FILL_THIS_FORM_LONG1", "__FILL_THIS_FORM_LONG2",
                    "__FILL_THIS_FORM_SHORT1", "__FILL_THIS_FORM_SHORT2",
                    "__FILL_THIS_FORM_FRAUD_PHISH1"}
    # parse_rule_files(costly=False) (rules.costly_patterns = false) skips them, with a reason
    assert {n for n, why in debian_rules.skipped.items()
            if why.startswith("regex: too costly")} == family_names
    rules = parse_rule_files(rule_files(), costly=True).rules
    assert "__FILL_THIS_FORM_PARTIAL" in rules
    assert "__FILL_THIS_FORM_PARTIAL_RAW" in rules
    costly = {n for n, r in rules.items() if r.costly}
    assert costly == family_names
    family = _RuleSet(rules={n: r for n, r in rules.items() if "FILL_THIS_FORM" in n})
    engine = RuleEngine(family, use_hyperscan=use_hyperscan)
    if use_hyperscan:
        g = engine._groups["body"]
        assert {r.name for r in g.re_rules} >= {"__FILL_THIS_FORM_PARTIAL"} | costly
        assert set(g.repeat_ids) == costly - {"__FILL_THIS_FORM_FRAUD_PHISH1"}
        assert "__FILL_THIS_FORM_FRAUD_PHISH1" in g.side_set
    msg = prepare_message(parse_message(FORM), FORM)
    assert set(engine.counts(msg)) == {"T_FILL_THIS_FORM_SHORT", "__FILL_THIS_FORM_PARTIAL",
                                       "__FILL_THIS_FORM_PARTIAL_RAW", "__FILL_THIS_FORM_SHORT",
                                       "__FILL_THIS_FORM_SHORT2"}
