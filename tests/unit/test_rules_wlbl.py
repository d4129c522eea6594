"""A site's welcome and block lists: SpamAssassin 4.0's WLBLEval and WelcomeListSubject.

tests/data/wlbl/spamassassin.json holds, for each message of tests/data/wlbl/*.eml and
each list setting there, the USER_IN_*, SUBJECT_IN_* and URI_HOST_IN_* rules SpamAssassin
4.0.1 itself hit (``spamassassin -L -t`` with the setting in a private ``local.cf`` and
Debian's ``*.pre``; ``python3 tests/data/wlbl/regenerate.py`` writes it again).  The
engine runs SpamAssassin's own 60_welcomelist.cf and 60_welcomelist_subject.cf here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spamwarden.mail import parse_message
from spamwarden.rules import RuleEngine, parse_rule_files, prepare_message

DATA = Path(__file__).resolve().parents[1] / "data" / "wlbl"
CASES = json.loads((DATA / "spamassassin.json").read_text())
SA_RULES = [Path("/usr/share/spamassassin/60_welcomelist.cf"),
            Path("/usr/share/spamassassin/60_welcomelist_subject.cf"),
            Path("/usr/share/spamassassin/50_scores.cf")]
LIST_RULE = ("USER_IN_", "SUBJECT_IN_", "URI_HOST_IN_")
pytestmark = pytest.mark.skipif(not all(p.exists() for p in SA_RULES),
                                reason="SpamAssassin's rule files are not installed")

#: where the engine differs from SpamAssassin on purpose: an X-Originating-IP field,
#: which the sender writes, is not a relay a *_from_rcvd entry may match
DELIBERATE = {
    ("originating-ip", "welcomelist_from_rcvd *@example.com [203.0.113.0/24]"):
        {"USER_IN_WELCOMELIST"},
}


def engine_for(config: str, tmp_path: Path) -> RuleEngine:
    local = tmp_path / "local.cf"
    local.write_text(config)
    return RuleEngine(parse_rule_files([*SA_RULES, local]), use_hyperscan=False)


def list_hits(engine: RuleEngine, raw: bytes) -> set[str]:
    msg = prepare_message(parse_message(raw), raw)
    return {n for n, c in engine.counts(msg).items() if c and n.startswith(LIST_RULE)}


def hits(config: str, raw: bytes, tmp_path: Path) -> set[str]:
    return list_hits(engine_for(config, tmp_path), raw)


@pytest.mark.parametrize("config", sorted({tuple(c["config"]) for c in CASES}),
                         ids=lambda c: c[0].split()[0] + "...")
def test_the_lists_hit_what_spamassassin_hits(config, tmp_path) -> None:
    engine = engine_for("\n".join(config) + "\n", tmp_path)
    wrong = []
    for case in CASES:
        if tuple(case["config"]) != config:
            continue
        expected = set(case["hits"])
        for (message, line), rules in DELIBERATE.items():
            if message == case["message"] and line in config:
                expected -= rules
        got = list_hits(engine, (DATA / f"{case['message']}.eml").read_bytes())
        if got != expected:
            wrong.append((case["message"], sorted(got), sorted(expected)))
    assert not wrong


def test_the_comparison_covers_every_list_rule() -> None:
    seen = {r for c in CASES for r in c["hits"]}
    assert seen >= {"USER_IN_WELCOMELIST", "USER_IN_BLOCKLIST", "USER_IN_DEF_WELCOMELIST",
                    "USER_IN_WELCOMELIST_TO", "USER_IN_BLOCKLIST_TO", "USER_IN_MORE_SPAM_TO",
                    "USER_IN_ALL_SPAM_TO", "SUBJECT_IN_WELCOMELIST", "SUBJECT_IN_BLOCKLIST",
                    "URI_HOST_IN_WELCOMELIST", "URI_HOST_IN_BLOCKLIST"}


def test_the_rules_run_with_their_shipped_scores(tmp_path) -> None:
    """Debian's init.pre enables the welcomelist_blocklist compatibility: the rules
    carry the scores themselves and the USER_IN_WHITELIST-style metas are not defined
    (SpamAssassin reports USER_IN_WELCOMELIST at -100, never USER_IN_WHITELIST)."""
    rules = engine_for("", tmp_path).ruleset.rules
    scores = {n: rules[n].score for n in rules}
    assert scores == {
        "USER_IN_BLOCKLIST": 100, "USER_IN_WELCOMELIST": -100, "USER_IN_DEF_WELCOMELIST": -15,
        "USER_IN_BLOCKLIST_TO": 10, "USER_IN_WELCOMELIST_TO": -6,
        "USER_IN_MORE_SPAM_TO": -20, "USER_IN_ALL_SPAM_TO": -100,
        "URI_HOST_IN_BLOCKLIST": 100, "URI_HOST_IN_WELCOMELIST": -100,
        "SUBJECT_IN_WELCOMELIST": -100, "SUBJECT_IN_BLOCKLIST": 100,
    } | {n: s for n, s in scores.items() if not n.startswith(LIST_RULE)}
    assert not any(n.endswith(("WHITELIST", "BLACKLIST", "WHITELIST_TO", "BLACKLIST_TO"))
                   for n in rules)


def test_without_list_lines_nothing_hits(tmp_path) -> None:
    for eml in DATA.glob("*.eml"):
        assert hits("", eml.read_bytes(), tmp_path) == set()
