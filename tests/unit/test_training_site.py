"""A classifier that knows what it doesn't know: site counts scale the BAYES points until
the site's own mail is learned; ``eval`` scores duplicates; ``eval --pipeline`` measures the
whole offline scanner; ``doctor`` shows the counts."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from spamwarden.config import Config, PolicyConfig, TrainingConfig, load_config
from spamwarden.milter.checks.classifier import bayes_symbols
from spamwarden.milter.interfaces import SiteCounts
from spamwarden.milter.registry import SymbolPoints
from spamwarden.training.classifier import site_counts
from spamwarden.training.corpus import Example
from spamwarden.training.model import SpamModel, load_model, train_model, untrained_model
from tests.unit.test_training import (  # noqa: F401 - fixtures
    HAM,
    SMALL,
    SPAM,
    corpus_slice,
    small_model,
    tiny_corpus,
)

TAG = PolicyConfig().tag_threshold


def _total(p: float, site: SiteCounts | None) -> float:
    return sum(s.points for s in bayes_symbols(p, SymbolPoints(), site=site, tag_threshold=TAG))


def test_below_the_site_counts_the_classifier_alone_cannot_tag() -> None:
    for ham, spam in ((0, 0), (199, 500), (500, 199), (150, 150)):
        site = SiteCounts(ham, spam, 200, 200)
        assert not site.established
        for p in (0.95, 0.99, 0.995, 0.9999, 1.0):
            assert round(_total(p, site), 1) < TAG, (ham, spam, p)
        names = {s.name for s in bayes_symbols(1.0, SymbolPoints(), site=site, tag_threshold=TAG)}
        assert "BAYES_999" not in names and "BAYES_99" in names


def test_at_the_site_counts_the_classifier_can_tag() -> None:
    site = SiteCounts(200, 200, 200, 200)
    assert site.established
    assert _total(0.9999, site) >= TAG
    assert _total(0.9999, None) >= TAG  # a classifier that does not count: full points
    assert _total(0.9999, SiteCounts(0, 0, 0, 0)) >= TAG  # minimums of 0: full points


def test_points_grow_with_the_counts() -> None:
    totals = [_total(0.9999, SiteCounts(n, n, 200, 200)) for n in (0, 50, 100, 199, 200)]
    assert totals == sorted(totals) and len(set(totals)) == len(totals)
    assert totals[0] <= TAG / 2 + 1e-9


def test_negative_points_are_kept_while_cold() -> None:
    cold = SiteCounts(0, 0, 200, 200)
    assert _total(0.001, cold) == _total(0.001, None) < 0


def test_a_lower_tag_threshold_lowers_the_cap() -> None:
    cold = SiteCounts(10, 10, 200, 200)
    total = sum(s.points for s in bayes_symbols(1.0, SymbolPoints(), site=cold, tag_threshold=2.0))
    assert round(total, 1) < 2.0


def test_learning_counts_the_site_mail_per_class() -> None:
    model = untrained_model()
    assert model.site_counts() == (0, 0)
    model.learn([HAM, HAM, SPAM], [0, 0, 1])
    assert model.site_counts() == (2, 1)
    counted = site_counts(model, 2, 1)
    assert counted == SiteCounts(2, 1, 2, 1) and counted.established
    assert site_counts(object(), 200, 200) is None


def test_the_scanner_scales_the_shipped_model_until_the_site_counts_are_reached() -> None:
    from spamwarden.milter.check import scan_file
    from spamwarden.training.classifier import load_classifier
    from spamwarden.wiring import offline_scanner

    model = load_classifier(None)
    learned = model.site_counts()  # type: ignore[attr-defined]
    assert learned[0] < 200 or learned[1] < 200  # shipped: public corpora only
    spammy = SPAM * 3
    verdict, _, _ = scan_file(offline_scanner(Config()), spammy)
    bayes = sum(s.points for s in verdict.symbols if s.name.startswith("BAYES_"))
    assert 0 < bayes < TAG
    warm = Config(training=TrainingConfig(min_site_ham=0, min_site_spam=0))
    verdict, _, _ = scan_file(offline_scanner(warm), spammy)
    if max(s.points for s in verdict.symbols if s.name.startswith("BAYES_")) >= 3.5:
        assert sum(s.points for s in verdict.symbols if s.name.startswith("BAYES_")) > bayes


def test_train_site_flag_and_feedback_free_training_set_the_counts(
    tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    from spamwarden.cli import main

    cfg = tmp_path / "empty.toml"
    cfg.write_text("")
    public, own = tmp_path / "public.skops", tmp_path / "own.skops"
    args = ["train", "--config", str(cfg), "-q", "--corpus", str(tiny_corpus)]
    assert main([*args, "--out", str(public)]) == 0
    assert main([*args, "--site", "--out", str(own)]) == 0
    assert "this site's own mail: 12 ham, 12 spam" in capsys.readouterr().out
    assert load_model(public).site_counts() == (0, 0)
    assert load_model(own).site_counts() == (12, 12)


def test_eval_scores_duplicates_unless_dedup(
    tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    from spamwarden.cli import main

    cfg = tmp_path / "empty.toml"
    cfg.write_text("")
    model = tmp_path / "m.skops"
    assert main(["train", "--config", str(cfg), "-q", "--corpus", str(tiny_corpus),
                 "--out", str(model)]) == 0
    capsys.readouterr()
    for i in range(3):  # three exact copies of one ham, one of a spam
        shutil.copy(tiny_corpus / "ham" / "000", tiny_corpus / "ham" / f"copy{i}")
    shutil.copy(tiny_corpus / "spam" / "001", tiny_corpus / "spam" / "copy")
    base = ["eval", "--config", str(cfg), "--model", str(model), "--json",
            "--corpus", str(tiny_corpus)]
    assert main(base) == 0
    every = json.loads(capsys.readouterr().out)
    assert (every["n_ham"], every["n_spam"]) == (15, 13)
    assert every["duplicates"] == 4 and every["duplicates_removed"] == 0
    assert main([*base, "--dedup"]) == 0
    dedup = json.loads(capsys.readouterr().out)
    assert (dedup["n_ham"], dedup["n_spam"]) == (12, 12)
    assert dedup["duplicates"] == 4 and dedup["duplicates_removed"] == 4
    assert main([a for a in base if a != "--json"]) == 0
    assert "15 ham, 13 spam (4 duplicates, all scored)" in capsys.readouterr().out


def test_eval_pipeline_reports_the_total_score_and_rates_at_tag(
    tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    from spamwarden.cli import main

    cfg = tmp_path / "cfg.toml"
    # established site (no scaling) with a tag threshold the tiny model's spam reaches
    cfg.write_text("[training]\nmin_site_ham = 0\nmin_site_spam = 0\n"
                   "[policy]\ntag_threshold = 3.0\n")
    model = tmp_path / "m.skops"
    assert main(["train", "--config", str(cfg), "-q", "--corpus", str(tiny_corpus),
                 "--out", str(model)]) == 0
    capsys.readouterr()
    args = ["eval", "--config", str(cfg), "--model", str(model), "--pipeline", "--json",
            "--ham", str(tiny_corpus / "ham"), "--spam", str(tiny_corpus / "spam")]
    assert main([*args, "--jobs", "1"]) == 0
    one = json.loads(capsys.readouterr().out)
    for key in ("auc", "n_ham", "n_spam", "fnr_at_fpr_0_1pct", "fnr_at_fpr_1pct",
                "one_minus_auc_pct", "fpr_at_tag", "fnr_at_tag", "tag_threshold", "duplicates"):
        assert key in one, key
    assert (one["n_ham"], one["n_spam"]) == (12, 12) and one["tag_threshold"] == 3.0
    assert one["auc"] > 0.9
    assert one["fpr_at_tag"] == 0.0 and one["fnr_at_tag"] == 0.0
    assert main([*args, "--jobs", "2"]) == 0
    two = json.loads(capsys.readouterr().out)
    assert {k: two[k] for k in ("auc", "fpr_at_tag", "fnr_at_tag")} == \
        {k: one[k] for k in ("auc", "fpr_at_tag", "fnr_at_tag")}
    # below the site counts the classifier alone tags nothing: every spam is missed
    cold = tmp_path / "cold.toml"
    cold.write_text("[policy]\ntag_threshold = 3.0\n")
    args[2] = str(cold)
    assert main([*args, "--jobs", "1"]) == 0
    capped = json.loads(capsys.readouterr().out)
    assert capped["fpr_at_tag"] == 0.0 and capped["fnr_at_tag"] == 1.0
    assert capped["auc"] > 0.9  # the ranking is kept, only the points are scaled


def test_doctor_shows_the_site_counts(tmp_path: Path) -> None:
    from spamwarden.doctor import run_checks

    model = untrained_model()
    model.learn([HAM] * 3 + [SPAM], [0, 0, 0, 1])
    path = tmp_path / "m.skops"
    from spamwarden.training.model import save_model

    save_model(model, path)
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(f'[training]\nmodel = "{path}"\nmin_site_ham = 3\nmin_site_spam = 2\n')
    findings = run_checks(load_config(cfg_file), ["model"])
    text = " ".join(f.text for f in findings)
    assert "learned 3 ham (training.min_site_ham 3) and 1 spam (training.min_site_spam 2)" in text
    assert any(f.level == "warn" and "scaled down" in f.text for f in findings)
    cfg_file.write_text(f'[training]\nmodel = "{path}"\nmin_site_ham = 3\nmin_site_spam = 1\n')
    findings = run_checks(load_config(cfg_file), ["model"])
    assert any(f.level == "ok" and "count in full" in f.text for f in findings)


def test_cold_scaling_keeps_the_buckets_in_order() -> None:
    cold = SiteCounts(20, 5, 200, 200)
    totals = [_total(p, cold) for p in (0.5, 0.7, 0.9, 0.97, 0.995)]
    assert totals == sorted(totals) and len(set(totals)) == len(totals)
    assert totals[-1] == pytest.approx(TAG * (0.5 + 0.48 * 5 / 200))


def test_two_sources_temper_the_calibration_to_the_unseen_ham_budget(
    small_model: SpamModel, corpus_slice: tuple[list[Example], list[object], list[str]],  # noqa: F811
) -> None:
    m = small_model.metadata["metrics"]
    assert m["calibration"] == "stratified, tempered on cross-source scores"
    assert m["unseen_ham_budget"] == 0.01 and m["calibration_temperature"] >= 1.0
    assert len(m["unseen"]) == 2
    for u in m["unseen"].values():
        assert u["ham_at_0_99"] <= 0.01
        assert u["ham_at_0_99"] <= u["ham_at_0_99_untempered"]
        # tempering keeps the side of 0.5 of every message
        assert u["spam_under_0_5"] == u["spam_under_0_5_untempered"]
    kept, views, groups = corpus_slice
    strict = train_model(views, [e.y for e in kept], groups=groups,  # type: ignore[arg-type]
                         params=dataclasses.replace(SMALL, unseen_ham_budget=0.0))
    sm = strict.metadata["metrics"]
    assert all(u["ham_at_0_99"] == 0.0 for u in sm["unseen"].values())
    assert sm["calibration_temperature"] >= m["calibration_temperature"]
    one = train_model(views, [e.y for e in kept], params=SMALL)  # type: ignore[arg-type]
    assert one.metadata["metrics"]["calibration"] == "stratified"
