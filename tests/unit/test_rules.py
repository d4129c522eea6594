"""spamwarden.rules: SpamAssassin rule files parsed and run (regex, meta, headers, cache)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from spamwarden.config import Config, RulesConfig, ServiceConfig
from spamwarden.mail import parse_message
from spamwarden.rules import (
    HAVE_HYPERSCAN,
    RuleEngine,
    load_engine,
    parse_rule_files,
    parse_rule_text,
    prepare_message,
)
from spamwarden.rules._expr import ExprError, compile_expr, compile_metas, parse_expr
from spamwarden.rules._regex import UntranslatableRegex, split_perl_regex, translate
from spamwarden.rules._rewrite import possessive_line_runs

MESSAGE = (
    b"From: \"Alice Example\" <alice@example.org>\r\n"
    b"To: bob@example.net\r\n"
    b"Cc: carol@example.com\r\n"
    b"Subject: =?utf-8?q?Caf=C3=A9_offer?=\r\n"
    b"Message-ID: <abc@example.org>\r\n"
    b"X-Mailer: TestMailer 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello Bob,\r\n\r\nbuy now buy now buy now buy now\r\n"
    b"visit http://shop.example.com/deal today\r\n"
)

BOTH = [False, True] if HAVE_HYPERSCAN else [False]


def hits(rules: str, raw: bytes = MESSAGE, *, use_hyperscan: bool) -> dict[str, float]:
    engine = RuleEngine(parse_rule_text(rules), use_hyperscan=use_hyperscan)
    return {h.name: h.score for h in engine.check(parse_message(raw), raw)}


# -- Perl regex translation -------------------------------------------------------------------


def test_split_delimiters_and_flags() -> None:
    assert split_perl_regex("/a\\/b/i") == ("a\\/b", "i", "")
    assert split_perl_regex("m{a{2}b}si [if-unset: x]") == ("a{2}b", "si", " [if-unset: x]")
    assert split_perl_regex("m!a\\!b!")[0] == "a!b"
    with pytest.raises(UntranslatableRegex):
        split_perl_regex("eval:foo()")


@pytest.mark.parametrize(
    ("perl", "flags", "text", "expected"),
    [
        (r"foo\z", "", b"xfoo", True),
        (r"foo\z", "", b"foo\n", False),
        (r"foo\Z", "", b"foo\n", True),
        (r"[[:digit:]]{3}", "", b"a123", True),
        (r"a(?i)bc", "", b"aBC", True),
        (r"a(?i)bc", "", b"ABC", False),
        (r"a  b # comment", "x", b"ab", True),
        (r"\x{41}\e", "", b"A\x1b", True),
        (r"x{,2}y", "", b"y", True),
        (r"(?<w>ab)\k<w>", "", b"abab", True),
        (r"^b", "m", b"a\nb", True),
        (r"a.b", "s", b"a\nb", True),
    ],
)
def test_translate(perl: str, flags: str, text: bytes, expected: bool) -> None:
    assert bool(translate(perl, flags).compile().search(text)) is expected


@pytest.mark.parametrize("perl", [r"\Gfoo", r"a\Kb", r"\p{L}", r"(?{ code })", r"\x{263a}"])
def test_untranslatable(perl: str) -> None:
    with pytest.raises(UntranslatableRegex):
        translate(perl).compile()


# -- meta expressions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "counts", "value"),
    [
        ("A && B", {"A": 1, "B": 1}, 1),
        ("A && B", {"A": 1}, 0),
        ("A || B", {"B": 1}, 1),
        ("!A", {}, 1),
        ("(A + B + C) > 1", {"A": 1, "C": 1}, 1),
        ("(A + B + C) > 1", {"A": 1}, 0),
        ("A * 2 + B >= 3", {"A": 1, "B": 1}, 1),
        ("A - B == 0", {"A": 1, "B": 1}, 1),
        ("A != 1 || !(B && C)", {"A": 1, "B": 1, "C": 1}, 0),
        ("A + B * 2", {"A": 1, "B": 1}, 3),  # * binds tighter than +
        ("MULTI > 2", {"MULTI": 3}, 1),
        ("1 + 2 < 2 || 0", {}, 0),
    ],
)
def test_meta_arithmetic(expr: str, counts: dict[str, float], value: float) -> None:
    assert compile_expr(parse_expr(expr))(counts) == value
    # the generated function (what the engine runs) agrees with the closures
    c = dict(counts)
    compile_metas([("RESULT", parse_expr(expr))])(c)
    assert ("RESULT" in c) is bool(value)


@pytest.mark.parametrize("expr", ["A &&", "(A", "A B", "A & B", ""])
def test_meta_syntax_errors(expr: str) -> None:
    with pytest.raises(ExprError):
        parse_expr(expr)


# -- parsing ----------------------------------------------------------------------------------


def test_scores_descriptions_and_defaults() -> None:
    rs = parse_rule_text(
        "body A /x/\nscore A 1 2 3 4\ndescribe A first\n"
        "body B /x/\nscore B 2.5\n"
        "body C /x/\ntflags C nice\n"
        "body T_D /x/\n"
        "body __E /x/\n"
    )
    assert rs.rules["A"].score == 3 and rs.rules["A"].description == "first"
    assert rs.rules["B"].score == 2.5
    assert rs.rules["C"].score == -1.0
    assert rs.rules["T_D"].score == 0.01
    assert rs.rules["__E"].score == 0 and not rs.rules["__E"].reported


def test_conditionals() -> None:
    rs = parse_rule_text(
        "ifplugin Mail::SpamAssassin::Plugin::TxRep\nbody NET /x/\nelse\nbody NONET /x/\n"
        "endif\n"
        "if (version >= 3.004000)\nbody NEW /x/\nendif\n"
        "if (version >= 9.000000)\nbody FUTURE /x/\nendif\n"
        "if !plugin(Mail::SpamAssassin::Plugin::FromNameSpoof)\nbody NOURIBL /x/\nendif\n"
        "if can(Mail::SpamAssassin::Conf::feature_unknown)\nbody UNKNOWN /x/\nendif\n"
        "ifplugin Mail::SpamAssassin::Plugin::ReplaceTags\n"
        "  if can(Mail::SpamAssassin::Conf::feature_bug6558_free)\n    body NESTED /x/\n  endif\n"
        "endif\n"
    )
    assert set(rs.rules) == {"NONET", "NEW", "NOURIBL", "NESTED"}
    assert rs.inactive["ifplugin Mail::SpamAssassin::Plugin::TxRep"] == 1


def test_replace_tags() -> None:
    rs = parse_rule_text(
        "replace_tag A (?:a|4)\nreplace_tag B b\nreplace_inter SP \\s?\n"
        "body R /<inter SP><A><B>/\nreplace_rules R\n"
    )
    rx = rs.rules["R"].regex
    assert rx is not None and rx.source == rb"(?:a|4)\s?b"


def test_skipped_rules_have_reasons() -> None:
    rs = parse_rule_text(
        "body NET eval:check_rbl('x', 'y')\n"
        "body BAD /\\Gx/\n"
        "header RELAY X-Spam-DKIM-Signing-Domain =~ /x/\n"
        "meta LOOP1 LOOP2\nmeta LOOP2 LOOP1\n"
        "meta SYNTAX A &&\n"
        "header OK eval:check_for_missing_to_header()\n"
    )
    assert rs.skipped["NET"] == "eval not implemented: check_rbl"
    assert rs.skipped["BAD"].startswith("regex:")
    assert rs.skipped["RELAY"] == "pseudo-header X-Spam-DKIM-Signing-Domain"
    assert rs.skipped["LOOP1"] == rs.skipped["LOOP2"] == "meta: dependency cycle"
    assert rs.skipped["SYNTAX"].startswith("meta syntax")
    assert set(rs.rules) == {"OK"}


def test_include_and_later_definition_wins(tmp_path: Path) -> None:
    (tmp_path / "inc.cf").write_text("body INC /x/\nscore INC 0.5\n")
    main = tmp_path / "main.cf"
    main.write_text("include inc.cf\nbody INC /y/\n")
    rs = parse_rule_files([main])
    assert rs.rules["INC"].regex is not None and rs.rules["INC"].regex.source == b"y"
    assert rs.rules["INC"].score == 0.5


# -- running ----------------------------------------------------------------------------------


@pytest.mark.parametrize("use_hyperscan", BOTH)
def test_header_modifiers(use_hyperscan: bool) -> None:
    got = hits(
        "header SUBJ Subject =~ /^Caf\\xc3\\xa9 offer$/\n"
        "header SUBJ_RAW Subject:raw =~ /=\\?utf-8\\?q\\?/\n"
        "header FROM_ADDR From:addr =~ /^alice\\@example\\.org$/\n"
        "header FROM_NAME From:name =~ /^Alice Example$/\n"
        "header TOCC ToCc =~ /bob\\@example\\.net, carol\\@example\\.com/\n"
        "header ALLH ALL =~ /^X-Mailer: TestMailer/m\n"
        "header MID MESSAGEID =~ /abc\\@example/\n"
        "header HAS_XM exists:X-Mailer\n"
        "header NO_XM exists:X-Nothing\n"
        "header NOT_SPAM X-Mailer !~ /spam/\n"
        "header NOT_MATCH X-Mailer !~ /Test/\n"
        "header UNSET X-Nothing =~ /^dflt$/ [if-unset: dflt]\n"
        "header UNSET_NOHIT X-Nothing =~ /./\n",
        use_hyperscan=use_hyperscan,
    )
    assert set(got) == {"SUBJ", "SUBJ_RAW", "FROM_ADDR", "FROM_NAME", "TOCC", "ALLH", "MID",
                        "HAS_XM", "NOT_SPAM", "UNSET"}


@pytest.mark.parametrize("use_hyperscan", BOTH)
def test_body_uri_rawbody_full_and_meta(use_hyperscan: bool) -> None:
    got = hits(
        "body __BUY /buy now/\n"
        "body SUBJ_IN_BODY /^Caf\\xc3\\xa9 offer/\n"
        "body JOINED /Hello Bob, buy/\n"
        "rawbody RAW /^Hello Bob,\\r?$/m\n"
        "uri SHOP /shop\\.example\\.com/\n"
        "full FULLX /X-Mailer: TestMailer/\n"
        "meta META __BUY && SHOP && !NOPE\n"
        "meta NOT_META __BUY && NOPE\n",
        use_hyperscan=use_hyperscan,
    )
    # body paragraphs: the blank line separates "Hello Bob," from "buy now"
    assert set(got) == {"SUBJ_IN_BODY", "RAW", "SHOP", "FULLX", "META"}


@pytest.mark.parametrize("use_hyperscan", BOTH)
def test_tflags_multiple_and_maxhits(use_hyperscan: bool) -> None:
    rules = (
        "body __ONE /buy now/\n"
        "body __MANY /buy now/\ntflags __MANY multiple\n"
        "body __CAPPED /buy now/\ntflags __CAPPED multiple maxhits=2\n"
        "meta ONE_GT1 __ONE > 1\n"
        "meta MANY_EQ4 __MANY == 4\n"
        "meta CAPPED_EQ2 __CAPPED == 2\n"
    )
    assert set(hits(rules, use_hyperscan=use_hyperscan)) == {"MANY_EQ4", "CAPPED_EQ2"}


@pytest.mark.parametrize("use_hyperscan", BOTH)
def test_tflags_multiple_counts_long_units(use_hyperscan: bool) -> None:
    # the full text longer than the units counted with findall; rawbody is counted over
    # SpamAssassin's 2-4 KB pieces of the long line (cut at spaces, no "xy" split)
    raw = MESSAGE + b"xy " * 20_000 + b"\r\n"
    rules = (
        "rawbody __RAW_XY /xy/\ntflags __RAW_XY multiple maxhits=100000\n"
        "full __FULL_XY /xy/\ntflags __FULL_XY multiple maxhits=3\n"
        "body __BODY_XY /xy/\ntflags __BODY_XY multiple maxhits=100000\n"
        "meta RAW_ALL __RAW_XY == 20000\n"
        "meta FULL_CAPPED __FULL_XY == 3\n"
        "meta BODY_SOME __BODY_XY > 0\n"
    )
    assert set(hits(rules, raw, use_hyperscan=use_hyperscan)) == {
        "RAW_ALL", "FULL_CAPPED", "BODY_SOME"}


@pytest.mark.parametrize("use_hyperscan", BOTH)
def test_evals(use_hyperscan: bool) -> None:
    got = hits(
        "header MISSING_TO eval:check_for_missing_to_header()\n"
        "header ONE_SUBJ eval:check_header_count_range('Subject','1','1')\n"
        "header TWO_SUBJ eval:check_header_count_range('Subject','2','999')\n"
        "body SHORT eval:check_body_length('1000')\n"
        "header FREE eval:check_freemail_from()\nfreemail_domains example.org\n"
        "uri LISTED eval:check_uri_host_listed('BAD')\nenlist_uri_host (BAD) example.com\n",
        use_hyperscan=use_hyperscan,
    )
    assert set(got) == {"ONE_SUBJ", "SHORT", "FREE", "LISTED"}


def test_hits_are_sorted_with_score_and_description() -> None:
    engine = RuleEngine(parse_rule_text(
        "body ZED /buy/\nscore ZED 2\ndescribe ZED last\n"
        "body ALPHA /buy/\nscore ALPHA 0 0 1.5 0\ndescribe ALPHA first\n"
        "body ZERO /buy/\nscore ZERO 0\n"
    ), use_hyperscan=False)
    got = engine.check(parse_message(MESSAGE), MESSAGE)
    assert [(h.name, h.score, h.description) for h in got] == [
        ("ALPHA", 1.5, "first"), ("ZED", 2.0, "last")]


@pytest.mark.skipif(not HAVE_HYPERSCAN, reason="hyperscan is not installed")
def test_cache_reused_and_rebuilt_when_a_rule_file_changes(tmp_path: Path) -> None:
    rules = tmp_path / "local.cf"
    cache = tmp_path / "cache"
    rules.write_text("body BUY /buy now/\n")
    first = RuleEngine(parse_rule_files([rules]), cache_dir=cache)
    assert not first.cache_used
    assert len(list(cache.glob("sa-rules-*.json"))) == 1
    again = RuleEngine(parse_rule_files([rules]), cache_dir=cache)
    assert again.cache_used
    assert [h.name for h in again.check(parse_message(MESSAGE), MESSAGE)] == ["BUY"]
    rules.write_text("body BUY /buy now/\nbody VISIT /visit http/\n")
    changed = RuleEngine(parse_rule_files([rules]), cache_dir=cache)
    assert not changed.cache_used
    assert [h.name for h in changed.check(parse_message(MESSAGE), MESSAGE)] == ["BUY", "VISIT"]
    assert len(list(cache.glob("sa-rules-*.json"))) == 2  # the previous set is kept
    # going back to the previous rules loads them instead of compiling
    rules.write_text("body BUY /buy now/\n")
    assert RuleEngine(parse_rule_files([rules]), cache_dir=cache).cache_used
    # a third set: only the newest two stay, the one written first goes
    rules.write_text("body ONLY_THIRD /third/\n")
    files_before = {p.name: p.stat().st_mtime_ns for p in cache.glob("sa-rules-*.json")}
    third = RuleEngine(parse_rule_files([rules]), cache_dir=cache)
    assert not third.cache_used
    files_after = sorted(p.name for p in cache.glob("sa-rules-*.json"))
    assert len(files_after) == 2 and third_file(cache, files_before) in files_after
    oldest = min(files_before, key=files_before.__getitem__)
    assert oldest not in files_after


GROUPED_RULES = (
    "body BUY /buy now/\n"
    "body __OPT /opt[- ]?out/i\n"  # (a side-database candidate is none here: no re rule)
    "rawbody RAW_VISIT /visit http/\n"
    "uri SHOP_URI /shop\\.example/\n"
    "header SUBJ_OFFER Subject =~ /offer/i\n"
    "header MAILER X-Mailer =~ /^TestMailer/\n"
)


def _names(engine: RuleEngine) -> list[str]:
    return [h.name for h in engine.check(parse_message(MESSAGE), MESSAGE)]


@pytest.mark.skipif(not HAVE_HYPERSCAN, reason="hyperscan is not installed")
def test_a_changed_rule_compiles_only_its_group(tmp_path: Path) -> None:
    rules = tmp_path / "local.cf"
    cache = tmp_path / "cache"
    rules.write_text(GROUPED_RULES)
    first = RuleEngine(parse_rule_files([rules]), cache_dir=cache)
    all_groups = [k for k, _ in first._all_groups()]
    assert first.compiled_groups == all_groups and not first.reused_groups
    # a new header rule of another field: only that field's group is compiled
    rules.write_text(GROUPED_RULES + "header FROM_ALICE From =~ /alice/\n")
    added = RuleEngine(parse_rule_files([rules]), cache_dir=cache)
    assert not added.cache_used
    assert [k for k in added.compiled_groups] == [k for k, _ in added._all_groups()
                                                  if k.startswith("header:header:from:")]
    assert sorted(added.reused_groups) == sorted(all_groups)
    expected = ["BUY", "FROM_ALICE", "MAILER", "RAW_VISIT", "SHOP_URI", "SUBJ_OFFER"]
    assert _names(added) == expected
    assert _names(RuleEngine(parse_rule_files([rules]))) == expected  # no cache at all
    # an edited body pattern: the body group is compiled again, the others are taken
    rules.write_text(GROUPED_RULES.replace("/buy now/", "/buy now buy/")
                     + "header FROM_ALICE From =~ /alice/\n")
    edited = RuleEngine(parse_rule_files([rules]), cache_dir=cache)
    assert edited.compiled_groups == ["body"]
    assert "rawbody" in edited.reused_groups and "uri" in edited.reused_groups
    assert _names(edited) == expected
    # and the set it wrote is complete: loaded whole at the next start
    again = RuleEngine(parse_rule_files([rules]), cache_dir=cache)
    assert again.cache_used and not again.compiled_groups and _names(again) == expected


@pytest.mark.skipif(not HAVE_HYPERSCAN, reason="hyperscan is not installed")
def test_a_damaged_earlier_entry_is_compiled_not_trusted(tmp_path: Path) -> None:
    rules = tmp_path / "local.cf"
    cache = tmp_path / "cache"
    rules.write_text(GROUPED_RULES)
    RuleEngine(parse_rule_files([rules]), cache_dir=cache)
    (stored,) = cache.glob("sa-rules-*.json")
    data = json.loads(stored.read_text())
    data["body"]["db"] = "not base64 !"
    data["uri"]["hs"] = ["NO_SUCH_RULE"]
    stored.write_text(json.dumps(data))
    rules.write_text(GROUPED_RULES + "header FROM_ALICE From =~ /alice/\n")
    engine = RuleEngine(parse_rule_files([rules]), cache_dir=cache)
    assert {"body", "uri"} <= set(engine.compiled_groups)
    assert "rawbody" in engine.reused_groups
    assert _names(engine) == ["BUY", "FROM_ALICE", "MAILER", "RAW_VISIT", "SHOP_URI",
                              "SUBJ_OFFER"]


def third_file(cache: Path, before: dict[str, int]) -> str:
    new = [p.name for p in cache.glob("sa-rules-*.json") if p.name not in before]
    assert len(new) == 1
    return new[0]


def test_local_cf_rule_from_configuration_hits(tmp_path: Path) -> None:
    local = tmp_path / "local.cf"
    local.write_text("body LOCAL_DEAL /visit http:\\/\\/shop/\nscore LOCAL_DEAL 4.2\n"
                     "describe LOCAL_DEAL A site's own rule\n")
    cfg = Config(service=ServiceConfig(state_dir=str(tmp_path / "state")),
                 rules=RulesConfig(enabled=True, system_rules=False, paths=(str(local),)))
    engine = load_engine(cfg)
    assert engine is not None
    got = engine.check(parse_message(MESSAGE), MESSAGE)
    assert [(h.name, h.score, h.description) for h in got] == [
        ("LOCAL_DEAL", 4.2, "A site's own rule")]
    off = Config(rules=RulesConfig(enabled=False, system_rules=False, paths=(str(local),)))
    assert load_engine(off) is None


def test_prepared_body_starts_with_subject_and_collapses_whitespace() -> None:
    msg = prepare_message(parse_message(MESSAGE), MESSAGE)
    assert msg.body[0] == "Café offer\n".encode()
    # SpamAssassin's lines: each keeps its newline, the last one its collapsed space
    assert msg.body[1:] == [b"Hello Bob,\n", (b"buy now buy now buy now buy now visit "
                                              b"http://shop.example.com/deal today ")]


def test_cli_stats_on_a_rule_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from spamwarden.cli import main

    rules = tmp_path / "local.cf"
    rules.write_text("body A /x/\nbody NET eval:check_rbl('a','b')\nmeta M A\n")
    cfgfile = tmp_path / "c.toml"
    cfgfile.write_text(f'[service]\nstate_dir = "{tmp_path}"\n')
    assert main(["rules", "--config", str(cfgfile), "--stats", "--no-compile",
                 "--rules", str(rules)]) == 0
    out = capsys.readouterr().out
    assert "rules seen: 3  parsed: 2  skipped: 1" in out
    assert "1  eval not implemented: check_rbl" in out


def test_cli_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from spamwarden.cli import main

    rules = tmp_path / "local.cf"
    rules.write_text("body BUY /buy now/\nscore BUY 1.5\ndescribe BUY Buy now\n")
    eml = tmp_path / "m.eml"
    eml.write_bytes(MESSAGE)
    cfgfile = tmp_path / "c.toml"
    cfgfile.write_text(f'[service]\nstate_dir = "{tmp_path}"\n')
    assert main(["rules", "--config", str(cfgfile), "--check", str(eml),
                 "--rules", str(rules)]) == 0
    out = capsys.readouterr().out
    assert "score 1.50, 1 rules" in out and "BUY" in out and "Buy now" in out





@pytest.mark.parametrize(
    ("source", "rewritten"),
    [
        (rb"(?:[^\n]+\n+)*Subject: ", rb"(?:[^\n]++\n+)*Subject: "),
        (rb"a[^\n]*\nb[^\n]{1,100}\n", rb"a[^\n]*+\nb[^\n]{1,100}+\n"),
        (rb"x[^\n]{,5}\n", rb"x[^\n]{,5}+\n"),
        # no newline required after the run, or the run is not greedy: unchanged
        (rb"[^\n]+\n?x", rb"[^\n]+\n?x"),
        (rb"[^\n]+\n*x", rb"[^\n]+\n*x"),
        (rb"[^\n]+\n{0,2}x", rb"[^\n]+\n{0,2}x"),
        (rb"[^\n]+?\n", rb"[^\n]+?\n"),
        (rb"[^\n]+ \n", rb"[^\n]+ \n"),
        (rb"[^\n]{}\n", rb"[^\n]{}\n"),
        (rb"[^\n]+\\n", rb"[^\n]+\\n"),  # an escaped backslash, then "n"
        # not a class [^\n]: escaped "[", or inside another class
        (rb"\[^\n]+\n", rb"\[^\n]+\n"),
        (rb"[a[^\n]+\n", rb"[a[^\n]+\n"),
        (rb"[]a[^\n]+\n", rb"[]a[^\n]+\n"),
        (rb"[\]][^\n]+\n", rb"[\]][^\n]++\n"),
    ],
)
def test_possessive_line_runs(source: bytes, rewritten: bytes) -> None:
    assert possessive_line_runs(source) == rewritten


def test_possessive_line_runs_find_the_same_matches() -> None:
    text = (b"\nReceived: by a for <u@d.example>; 1 Jan\nX: 1\n\nTo: u@d.example\n"
            b"Subject: hi u@d.example!\nY: a much longer line\n")
    for source in (rb"\nReceived:[^\n]{0,200} for <?([^\n\s>;]+)>?;(?:[^\n]+\n+)*"
                   rb"Subject: [^\n]{0,100}\1[^a-z0-9]",
                   rb"([^\n]{1,3}\n)", rb"[^\n]*\n", rb"(?:[^\n]{2,4}\n)+"):
        a, b = re.compile(source), re.compile(possessive_line_runs(source))
        assert b.pattern != a.pattern
        assert [m.span() for m in a.finditer(text)] == [m.span() for m in b.finditer(text)]
        assert a.search(text)
        assert [m.groups() for m in a.finditer(text)] == [m.groups() for m in b.finditer(text)]
