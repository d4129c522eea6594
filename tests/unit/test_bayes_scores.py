"""With SpamAssassin's rules on, the classifier's BAYES_* points come from the rule files."""

from __future__ import annotations

import os
from pathlib import Path

from spamwarden.config import Config, PolicyConfig, RulesConfig
from spamwarden.milter.checks.classifier import bayes_symbols
from spamwarden.milter.interfaces import SiteCounts
from spamwarden.milter.registry import SymbolPoints, known_symbols
from spamwarden.rules import classifier_scores, load_engine, parse_configured, parse_rule_text

#: as in SpamAssassin's 50_scores.cf (inside ifplugin Bayes): four score sets, the third
#: (Bayes on, network off) is the one read
SCORES = """
ifplugin Mail::SpamAssassin::Plugin::Bayes
score BAYES_00  0  0 -1.5   -1.9
score BAYES_50  0  0  2.0    0.8
score BAYES_95  0  0  3.2    3.0
score BAYES_99  0  0  3.8    3.5
score BAYES_999 0  0  0.2    0.2
endif
body  LOCAL_WORD /zqxwv/
score LOCAL_WORD 1.0
"""


def config(local: Path, *, enabled: bool = True, bayes_scores: bool = True,
           symbols: dict[str, float] | None = None, tmp: Path | None = None) -> Config:
    return Config(
        rules=RulesConfig(enabled=enabled, system_rules=False, paths=(str(local),),
                          bayes_scores=bayes_scores,
                          cache_dir=str((tmp or local.parent) / "cache")),
        policy=PolicyConfig(symbols=symbols or {}),
    )


def points(cfg: Config) -> dict[str, float]:
    return {s.name: s.points for s in known_symbols(cfg) if s.name.startswith("BAYES_")}


def test_score_lines_are_kept_for_names_no_rule_defines() -> None:
    rs = parse_rule_text(SCORES + "score BAYES_99 4.1\n")
    assert "BAYES_99" not in rs.rules
    assert rs.scores["BAYES_99"] == 4.1  # the last line wins, as in SpamAssassin
    assert rs.scores["BAYES_00"] == -1.5 and rs.scores["LOCAL_WORD"] == 1.0


def test_rules_on_give_the_classifier_the_rule_files_scores(tmp_path: Path) -> None:
    local = tmp_path / "local.cf"
    local.write_text(SCORES)
    pts = points(config(local))
    assert pts["BAYES_99"] == 3.8 and pts["BAYES_999"] == 0.2
    assert pts["BAYES_95"] == 3.2 and pts["BAYES_50"] == 2.0 and pts["BAYES_00"] == -1.5
    assert pts["BAYES_80"] == 2.0  # no score line: the built-in points
    # off, or rules off: the built-in points
    assert points(config(local, bayes_scores=False))["BAYES_99"] == 5.0
    assert points(config(local, enabled=False))["BAYES_99"] == 5.0
    assert classifier_scores(config(local, enabled=False)) == {}


def test_policy_symbols_still_win(tmp_path: Path) -> None:
    local = tmp_path / "local.cf"
    local.write_text(SCORES)
    cfg = config(local, symbols={"BAYES_99": 4.4})
    specs = known_symbols(cfg)
    sp = SymbolPoints(cfg.policy.symbols, defaults={s.name: s.points for s in specs})
    assert sp.points("BAYES_99") == 4.4 and sp.points("BAYES_999") == 0.2


def test_a_local_cf_score_line_changes_the_points_at_the_next_read(tmp_path: Path) -> None:
    local = tmp_path / "local.cf"
    local.write_text(SCORES)
    cfg = config(local)
    first = parse_configured(cfg)
    assert parse_configured(cfg) is first  # one parse shared (classifier points, engine)
    engine = load_engine(cfg)
    assert engine is not None and engine.ruleset is first
    local.write_text(SCORES + "score BAYES_99 2.9\n")
    st = local.stat()
    os.utime(local, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert parse_configured(cfg) is not first
    assert points(cfg)["BAYES_99"] == 2.9


def test_a_new_site_still_gets_half_weight_at_most(tmp_path: Path) -> None:
    local = tmp_path / "local.cf"
    local.write_text(SCORES)
    cfg = config(local)
    sp = SymbolPoints(defaults={s.name: s.points for s in known_symbols(cfg)})
    cold = SiteCounts(ham=0, spam=0)
    syms = bayes_symbols(0.9995, sp, site=cold, tag_threshold=5.0)
    assert [s.name for s in syms] == ["BAYES_99"]  # no BAYES_999 while cold
    assert syms[0].points == 2.5  # 3.8 scaled to half the tag threshold
    warm = bayes_symbols(0.9995, sp, site=SiteCounts(ham=500, spam=500), tag_threshold=5.0)
    assert sum(s.points for s in warm) == 4.0  # 3.8 + 0.2: under the tag threshold
