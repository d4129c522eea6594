"""``spamwarden rules --lint``: what in a site's own rule files will not work as written,
with the file and line, from the command, ``doctor`` and the milter's start-up log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from spamwarden.cli import main
from spamwarden.config import config_from_mapping
from spamwarden.doctor import check_rules
from spamwarden.milter.scanner import Scanner
from spamwarden.resolver import StaticResolver
from spamwarden.rules import Problem, lint, parse_rule_files, parse_rule_text

BROKEN = """\
header LOCAL_BAD_RE Subject =~ /(unclosed/
body LOCAL_OK /fine/
score LOCAL_OK abc
meta LOCAL_BAD_META LOCAL_OK && (
describe LOCAL_TYPO Describes a rule that is not there
body LOCAL_NO_TEST
body LOCAL_EVAL eval:no_such_function()
score LOCAL_TWO 1 2
body LOCAL_TWO /two/
meta LOCAL_READS_NOTHING LOCAL_OK && LOCAL_NOT_DEFINED
tflags LOCAL_TFLAGS_TYPO multiple
"""


def problems(text: str) -> list[str]:
    return [str(p) for p in lint(parse_rule_text(text, origin="local.cf"), ["local.cf"])]


def test_each_kind_of_problem_is_reported_with_its_line() -> None:
    assert problems(BROKEN) == [
        "local.cf:1: LOCAL_BAD_RE: not run: regex: unbalanced (",
        "local.cf:3: score LOCAL_OK: expected 1 or 4 numbers, got abc",
        "local.cf:4: LOCAL_BAD_META: not run: meta syntax: expression ends early",
        "local.cf:5: LOCAL_TYPO: describe for a rule no file defines: the line has no effect",
        "local.cf:6: body: expected a rule name (letters, digits, _) and its test",
        "local.cf:7: LOCAL_EVAL: not run: eval not implemented: no_such_function",
        "local.cf:8: score LOCAL_TWO: expected 1 or 4 numbers, got 1 2",
        "local.cf:10: LOCAL_READS_NOTHING: meta reads LOCAL_NOT_DEFINED, which no file "
        "defines: it counts as not hit",
        "local.cf:11: LOCAL_TFLAGS_TYPO: tflags for a rule no file defines: the line has no "
        "effect",
    ]


def test_clean_rules_and_deliberate_choices_are_not_problems() -> None:
    assert problems(
        "body LOCAL_A /a/\nscore LOCAL_A 1.5\nscore LOCAL_A 0 0 2.0 0\n"
        "describe LOCAL_A An a\ntflags LOCAL_A multiple maxhits=3\n"
        "body LOCAL_OFF /off/\nscore LOCAL_OFF 0\n"  # disabled on purpose
        "meta LOCAL_M LOCAL_A || LOCAL_OFF\n"
        # defined inside an ifplugin that is false here: still a known name
        "ifplugin Mail::SpamAssassin::Plugin::NotInstalled\nbody LOCAL_P /p/\nendif\n"
        "score LOCAL_P 3\nmeta LOCAL_Q LOCAL_P\n"
    ) == []


def test_only_the_files_asked_about_are_reported(tmp_path: Path) -> None:
    system = tmp_path / "system.cf"
    system.write_text("body SYS_RULE /x/\nbody SYS_BROKEN /(/\n")
    site = tmp_path / "local.cf"
    site.write_text("score SYS_RULE 2\nscore SYS_TYPO 2\n")
    rs = parse_rule_files([system, site])
    got = lint(rs, [str(site)])
    # the distribution's broken rule is not the site's problem; its names are defined
    assert got == [Problem(str(site), 2, "SYS_TYPO", "score for a rule no file defines: "
                           "the line has no effect")]
    assert [p.rule for p in lint(rs, [str(system)])] == ["SYS_BROKEN"]


def _cfg(tmp_path: Path, local: Path | None, **rules: object) -> Path:
    paths = [str(local)] if local else []
    cfg = tmp_path / "spamwarden.toml"
    cfg.write_text(f'[service]\nstate_dir = "{tmp_path / "state"}"\n'
                   f"[rules]\nenabled = true\nsystem_rules = {str(rules.get('system', False)).lower()}\n"
                   f"paths = {paths!r}\n".replace("'", '"'))
    return cfg


def test_the_command_prints_file_and_line_and_fails(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    local = tmp_path / "local.cf"
    local.write_text(BROKEN)
    assert main(["rules", "--config", str(_cfg(tmp_path, local)), "--lint"]) == 1
    out, err = capsys.readouterr()
    assert f"{local}:1: LOCAL_BAD_RE: not run: regex" in out
    assert f"{local}:5: LOCAL_TYPO: describe for a rule no file defines" in out
    assert "9 problem(s)" in err


def test_the_command_passes_clean_files_and_names_missing_ones(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    local = tmp_path / "local.cf"
    local.write_text("body LOCAL_A /a/\nscore LOCAL_A 2\n")
    assert main(["rules", "--config", str(_cfg(tmp_path, local)), "--lint"]) == 0
    assert "no problems (1 file(s), 1 rule(s) checked)" in capsys.readouterr().out
    gone = tmp_path / "gone.cf"
    assert main(["rules", "--config", str(_cfg(tmp_path, gone)), "--lint"]) == 1
    assert f"{gone}: not found" in capsys.readouterr().out
    assert main(["rules", "--config", str(_cfg(tmp_path, local)), "--lint",
                 "--rules", str(gone)]) == 1


def test_the_distributions_files_are_not_the_sites(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from spamwarden.rules import rule_files

    if not rule_files():
        pytest.skip("SpamAssassin's rules are not installed (apt-get install spamassassin)")
    local = tmp_path / "local.cf"
    # names the distribution defines (a network rule too, which does not run here)
    local.write_text("score RCVD_IN_SBL 0\nscore BAYES_99 4.0\nscore HTML_MESSAGE 0.5\n")
    assert main(["rules", "--config", str(_cfg(tmp_path, local, system=True)), "--lint"]) == 0
    out = capsys.readouterr().out
    assert "no problems (1 file(s)" in out and "/usr/share/spamassassin" not in out


def test_doctor_warns_with_the_problems(tmp_path: Path) -> None:
    local = tmp_path / "local.cf"
    local.write_text("body LOCAL_A /a/\nscore LOCAL_AA 2\n")
    cfg = config_from_mapping({"service": {"state_dir": str(tmp_path / "state")},
                               "rules": {"enabled": True, "system_rules": False,
                                         "paths": [str(local)]}}, source="<test>")
    found = [(f.level, f.text) for f in check_rules(cfg)]
    assert found[0][0] == "ok" and found[0][1].startswith("1 rules from 1 files")
    assert found[1] == ("warn", f"{local}:2: LOCAL_AA: score for a rule no file defines: "
                                "the line has no effect")
    off = config_from_mapping({}, source="<test>")
    assert [f.level for f in check_rules(off)] == ["ok"]


def test_the_milter_logs_each_problem_at_start(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    local = tmp_path / "local.cf"
    local.write_text("body LOCAL_A /a/\nbody LOCAL_B /(/\n")
    cfg = config_from_mapping({"service": {"state_dir": str(tmp_path / "state")},
                               "milter": {"authserv_id": "mx.test.example"},
                               "rules": {"enabled": True, "system_rules": False,
                                         "paths": [str(local)]}}, source="<test>")
    with caplog.at_level(logging.WARNING, logger="spamwarden.milter"):
        s = Scanner(cfg, resolver=StaticResolver(), authenticate=None, lookup_threads=0)
        s.close()
    logged = [r.__dict__["fields"] for r in caplog.records if r.getMessage() == "sarules_problem"]
    assert logged == [{"file": str(local), "line": 2, "rule": "LOCAL_B",
                       "problem": "not run: regex: unbalanced ("}]


def test_settings_that_do_nothing_here_are_named() -> None:
    """A SpamAssassin site's local.cf sets its threshold and headers; here those lines do
    nothing, and a silently ignored ``required_score 6`` would change the threshold on
    migration without a word.  Translations and plugin loading need no word."""
    assert problems(
        "required_score 6.0\nrewrite_header Subject *****SPAM*****\nwelcomelist_form *@x.org\n"
        "lang fr describe LOCAL_A Un a\nloadplugin Mail::SpamAssassin::Plugin::Foo\n"
    ) == [
        "local.cf:1: required_score: a SpamAssassin setting this engine does not act on "
        "(spamwarden tags at [policy] tag_threshold (5.0 by default) and per recipient with "
        "`spamwarden settings`)",
        "local.cf:2: rewrite_header: a SpamAssassin setting this engine does not act on "
        "(spamwarden writes its own X-Spam-* headers and never rewrites the message)",
        "local.cf:3: welcomelist_form: not a setting SpamAssassin or this engine knows "
        "(a misspelt name?)",
    ]


READ_HERE = """\
score LOCAL_A 1
describe LOCAL_A An a
tflags LOCAL_A nice
body LOCAL_A /a/
replace_tag A a
replace_rules LOCAL_A
freemail_domains example.net
enlist_addrlist (LOCAL) *@example.org
enlist_uri_host (LOCAL) example.org
trusted_networks 192.0.2.0/24
internal_networks 192.0.2.0/24
clear_trusted_networks
welcomelist_from *@example.org
blocklist_to *@example.org
clear_util_rb
util_rb_tld example
util_rb_2tld co.example
util_rb_3tld a.co.example
"""


def test_the_settings_the_engine_reads_are_not_called_unread() -> None:
    """Each directive the engine acts on must reach its reader, not the unread-setting
    note (a new reader added below the fall-through would be shadowed by it)."""
    assert not [p for p in problems(READ_HERE) if "setting" in p]


def test_every_line_of_the_distributions_files_is_a_known_setting() -> None:
    from spamwarden.rules import rule_files

    if not rule_files():
        pytest.skip("SpamAssassin's rules are not installed (apt-get install spamassassin)")
    rs = parse_rule_files(rule_files())
    unknown = [(o, m) for o, m in rs.notes if "not a setting SpamAssassin" in m]
    assert unknown == []
