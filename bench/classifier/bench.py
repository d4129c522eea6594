"""Classifier benchmark: spamwarden against SpamAssassin 4 (rules + Bayes) on a split by
source and time.

For each direction (train on one collection, score the other):

1. read both collections, remove exact and near duplicates, take a bounded
   stratified sample (fixed seed);
2. write the sample as files with the collection-leaking headers
   (``training.strip_headers``) removed: both systems get the same bytes;
3. spamwarden: train (in process, one core) and score every evaluation file,
   parsing included: the model alone, then the whole offline pipeline
   (``spamwarden eval --pipeline``: classifier, header checks, rules when
   installed; no DNS, no Redis) on the total score, the training files counting
   as the site's own mail as they do for SpamAssassin's Bayes;
4. SpamAssassin: ``sa-learn`` the same training files into a private Bayes
   database (``HOME`` in a temp dir, own ``bayes_path``, ``bayes_auto_learn 0``),
   then a private ``spamd`` (``-L``: no network tests) scores every evaluation
   file through ``spamc``;
5. print each system's ROC AUC, false-negative rate at false-positive rates of
   0.1 % and 1 %, false-positive and false-negative rates at the tag threshold
   (5 points for both), messages/s, and the pipeline / SpamAssassin ratios.

Everything runs on 127.0.0.1 and in a temp dir that is removed at the end;
spamd is stopped by its pid.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from spamwarden.config import Config, TrainingConfig
from spamwarden.mail import parse_message, strip_mbox_from
from spamwarden.rules import rule_files
from spamwarden.training.corpus import Example, deduplicate, read_labelled
from spamwarden.training.evaluate import evaluate
from spamwarden.training.features import header_stripper
from spamwarden.training.metrics import fnr_at_fpr, rates_at_threshold, roc_auc
from spamwarden.training.model import TrainingParams, save_model, train_model
from spamwarden.training.pipeline_eval import evaluate_pipeline
from spamwarden.wiring import offline_scorer
from tests.support.net import free_port
from tests.support.spamd import spamd_cpu

ROOT = Path(__file__).resolve().parents[2]

SEED = 20020101


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def strip_leaks(raw: bytes, patterns: tuple[str, ...]) -> bytes:
    """The message without header fields matching ``patterns`` (folded lines included)."""
    pat = header_stripper(patterns)
    raw = strip_mbox_from(raw)
    sep = raw.find(b"\n\n")
    sep_crlf = raw.find(b"\r\n\r\n")
    if sep_crlf >= 0 and (sep < 0 or sep_crlf < sep):
        sep = sep_crlf
    if sep < 0:
        return raw
    head, body = raw[:sep], raw[sep:]
    out: list[bytes] = []
    dropping = False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                out.append(line)
            continue
        name = line.split(b":", 1)[0].strip().decode("latin-1").lower()
        dropping = bool(pat.match(name)) and b":" in line
        if not dropping:
            out.append(line)
    return b"\n".join(out) + body


def sample(examples: list[Example], per_class: int, rng: random.Random) -> list[Example]:
    out: list[Example] = []
    for label in ("ham", "spam"):
        items = [e for e in examples if e.label == label]
        if len(items) > per_class:
            items = rng.sample(items, per_class)
        out.extend(items)
    return out


def write_files(examples: list[Example], root: Path, patterns: tuple[str, ...]) -> list[Path]:
    paths = []
    for i, ex in enumerate(examples):
        d = root / ex.label
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"{i:05d}.eml"
        p.write_bytes(strip_leaks(ex.raw, patterns))
        paths.append(p)
    return paths


def figures(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    return {"auc": roc_auc(y, s), "fnr_at_fpr_0_1pct": fnr_at_fpr(y, s, 0.001),
            "fnr_at_fpr_1pct": fnr_at_fpr(y, s, 0.01)}


# -- SpamAssassin -----------------------------------------------------------------------------


def sa_site_config(d: Path) -> Path:
    site = d / "site"
    site.mkdir()
    for pre in Path("/etc/spamassassin").glob("*.pre"):
        shutil.copy(pre, site / pre.name)
    (d / "bayes").mkdir()
    (site / "local.cf").write_text(
        f"bayes_path {d}/bayes/bayes\n"
        "bayes_file_mode 0777\n"
        "use_bayes 1\n"
        "bayes_auto_learn 0\n"
        "bayes_auto_expire 0\n"
        "use_razor2 0\nuse_pyzor 0\nskip_rbl_checks 1\ndns_available no\n"
        "lock_method flock\n"
    )
    return site


def sa_learn(d: Path, site: Path, ham: Path, spam: Path, timeout: float) -> float:
    env = dict(os.environ, HOME=str(d / "home"))
    (d / "home").mkdir(exist_ok=True)
    t0 = time.perf_counter()
    for flag, folder in (("--ham", ham), ("--spam", spam)):
        subprocess.run(["sa-learn", f"--siteconfigpath={site}", "--no-sync", flag, str(folder)],
                       env=env, check=True, timeout=timeout, stdout=subprocess.DEVNULL)
    subprocess.run(["sa-learn", f"--siteconfigpath={site}", "--sync"], env=env, check=True,
                   timeout=timeout, stdout=subprocess.DEVNULL)
    dump = subprocess.run(["sa-learn", f"--siteconfigpath={site}", "--dump", "magic"], env=env,
                          check=True, timeout=timeout, capture_output=True, text=True).stdout
    log("sa-learn database: " + " ".join(
        line.split()[-1] + "=" + line.split()[2] for line in dump.splitlines()
        if line.split()[-1:] in (["nspam"], ["nham"], ["ntokens"])))
    subprocess.run(["chmod", "-R", "a+rwX", str(d)], check=True)
    return time.perf_counter() - t0


def sa_score(
    d: Path, site: Path, files: list[Path], *, children: int, timeout: float,
) -> tuple[np.ndarray, float, float]:
    """spamd scores of ``files``, the wall seconds, and spamd's CPU seconds (all children)."""
    port = free_port()
    pidfile = d / "spamd.pid"
    env = dict(os.environ, HOME=str(d / "home"))
    proc = subprocess.Popen(
        ["spamd", "-L", "-x", f"--siteconfigpath={site}", "-i", "127.0.0.1", "-p", str(port),
         "-A", "127.0.0.1/32", "-u", "nobody", "-m", str(children), "--min-children", "1",
         "--max-conn-per-child", "10000", "-r", str(pidfile), "-s", str(d / "spamd.log")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError as exc:
                if proc.poll() is not None:
                    raise RuntimeError(f"spamd exited ({proc.returncode}); see {d}/spamd.log") from exc
                time.sleep(0.3)
        else:
            raise RuntimeError("spamd did not start within 60 s")

        def one(path: Path) -> float:
            out = subprocess.run(["spamc", "-d", "127.0.0.1", "-p", str(port), "-c", "-t", "120",
                                  "-s", "10485760"], stdin=path.open("rb"), capture_output=True,
                                 timeout=180).stdout.decode().strip()
            try:
                return float(out.split("/")[0])
            except ValueError:
                return float("nan")

        one(files[0])  # spamd children load rules and Bayes before the clock starts
        cpu0 = spamd_cpu(pidfile)
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(children) as pool:
            scores = list(pool.map(one, files, timeout=timeout))
        elapsed = time.perf_counter() - t0
        cpu = spamd_cpu(pidfile) - cpu0
    finally:
        pid = int(pidfile.read_text()) if pidfile.exists() else proc.pid
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return np.array(scores), elapsed, cpu


# -- one direction -----------------------------------------------------------------------------


def pipeline_config(args: argparse.Namespace) -> Config:
    """The pipeline's configuration: defaults, with SpamAssassin's installed rules on
    (as SpamAssassin runs them) unless ``--no-rules`` or they are not installed."""
    cfg = Config()
    if args.no_rules or not rule_files():
        return cfg
    return dataclasses.replace(cfg, rules=dataclasses.replace(
        cfg.rules, enabled=True, cache_dir=str(args.rules_cache)))


def run_direction(train_name: str, eval_name: str, corpora: dict[str, list[Example]],
                  args: argparse.Namespace, work: Path) -> dict[str, object]:
    rng = random.Random(SEED)
    patterns = tuple(TrainingConfig().strip_headers)
    train = sample(corpora[train_name], args.max_train, rng)
    evalset = sample(corpora[eval_name], args.max_eval, rng)
    d = work / f"{train_name}-to-{eval_name}"
    train_files = write_files(train, d / "train", patterns)
    eval_files = write_files(evalset, d / "eval", patterns)
    y_train = np.array([e.y for e in train])
    y_eval = np.array([e.y for e in evalset])
    log(f"{train_name} -> {eval_name}: train {int((y_train == 0).sum())} ham "
        f"{int(y_train.sum())} spam, eval {int((y_eval == 0).sum())} ham {int(y_eval.sum())} spam")

    t0 = time.perf_counter()
    views = [parse_message(p.read_bytes()) for p in train_files]
    model = train_model(views, y_train, params=TrainingParams())
    sw_train_s = time.perf_counter() - t0
    sw_metrics, sw_probs = evaluate(model, [p.read_bytes() for p in eval_files], y_eval)
    sw = figures(y_eval, sw_probs)
    sw["messages_per_s"] = sw_metrics["messages_per_s"]
    sw["messages_per_cpu_s"] = sw_metrics["messages_per_cpu_s"]
    sw["train_s"] = sw_train_s
    log(f"spamwarden: AUC {sw['auc']:.4f}, {sw['messages_per_s']:.0f} msg/s")
    # the whole offline pipeline (classifier + header checks + rules when installed, no DNS,
    # no Redis) on the total score; the training files count as this site's own mail, as
    # sa-learn's do for SpamAssassin's bayes_min_ham_num / bayes_min_spam_num
    model.metadata["site"] = {"ham": int((y_train == 0).sum()), "spam": int(y_train.sum())}
    model_path = d / "model.skops"
    save_model(model, model_path)
    cfg = pipeline_config(args)
    pl_metrics, pl_scores = evaluate_pipeline(cfg, str(model_path),
                                              [p.read_bytes() for p in eval_files], y_eval,
                                              scorer_factory=offline_scorer,
                                              jobs=args.jobs)
    pl = figures(y_eval, pl_scores)
    pl.update({k: pl_metrics[k] for k in ("fpr_at_tag", "fnr_at_tag", "messages_per_s")})
    pl["messages_per_cpu_s"] = float("nan")
    sw["fpr_at_tag"], sw["fnr_at_tag"] = float("nan"), float("nan")
    log(f"spamwarden pipeline: AUC {pl['auc']:.4f}, {pl['messages_per_s']:.0f} msg/s")

    result: dict[str, object] = {"train": train_name, "eval": eval_name,
                                 "n_train": len(train), "n_eval": len(evalset),
                                 "spamwarden": sw, "pipeline": pl}
    if not args.no_spamassassin:
        sa_dir = d / "sa"
        sa_dir.mkdir()
        site = sa_site_config(sa_dir)
        learn_s = sa_learn(sa_dir, site, d / "train" / "ham", d / "train" / "spam",
                           timeout=args.timeout)
        scores, elapsed, cpu = sa_score(sa_dir, site, eval_files, children=args.sa_children,
                                   timeout=args.timeout)
        ok = ~np.isnan(scores)
        sa = figures(y_eval[ok], scores[ok])
        sa["messages_per_s"] = len(eval_files) / elapsed
        sa["messages_per_cpu_s"] = len(eval_files) / max(cpu, 1e-9)
        sa["concurrency"] = args.sa_children
        sa["train_s"] = learn_s
        sa["failed"] = int((~ok).sum())
        sa["fpr_at_tag"], sa["fnr_at_tag"] = rates_at_threshold(y_eval[ok], scores[ok], 5.0)
        result["spamassassin"] = sa
        log(f"SpamAssassin: AUC {sa['auc']:.4f}, {sa['messages_per_s']:.1f} msg/s")
    return result


def _ratio(a: float, b: float) -> str:
    """``a / b`` for the ratio lines; ``-`` when undefined."""
    if math.isnan(a) or math.isnan(b) or b == 0:
        return "-" if a != 0 or b != 0 else "1.00"
    return f"{a / b:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(prog="bench/classifier/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="small sample: 300 training and 100 evaluation messages per class")
    ap.add_argument("--corpus-root", default=os.environ.get(
        "SPAMWARDEN_CORPUS", str(ROOT.parent / "shared" / "corpus")),
        help="folder holding spamassassin/ and csdmc2010/ (default ../shared/corpus)")
    ap.add_argument("--max-train", type=int, default=100_000, help="training messages per class")
    ap.add_argument("--max-eval", type=int, default=800, help="evaluation messages per class")
    ap.add_argument("--directions", default="spamassassin:csdmc2010,csdmc2010:spamassassin",
                    help="comma-separated TRAIN:EVAL pairs")
    ap.add_argument("--sa-children", type=int, default=2, help="spamd children and spamc clients")
    ap.add_argument("--no-spamassassin", action="store_true", help="spamwarden only")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per external step")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--jobs", type=int, default=2, help="processes for the spamwarden pipeline")
    ap.add_argument("--no-rules", action="store_true",
                    help="the pipeline without SpamAssassin's rules (default: with them, "
                         "when installed, as SpamAssassin runs them)")
    ap.add_argument("--rules-cache", type=Path,
                    default=Path("/var/tmp/spamwarden-bench-rules-cache"),
                    help="rules.cache_dir for the pipeline's rules, kept between runs so "
                         "only the first compiles (minutes)")
    args = ap.parse_args()
    if args.quick:
        args.max_train, args.max_eval = min(args.max_train, 300), min(args.max_eval, 100)
    root = Path(args.corpus_root)
    if not root.is_dir():
        print(f"corpus folder {root} not found (set SPAMWARDEN_CORPUS)", file=sys.stderr)
        return 2
    if not args.no_spamassassin:
        missing = [b for b in ("sa-learn", "spamd", "spamc") if shutil.which(b) is None]
        if missing:
            print(f"missing {', '.join(missing)}: apt-get install spamassassin spamc",
                  file=sys.stderr)
            return 2
    pairs = [tuple(p.split(":", 1)) for p in args.directions.split(",") if p]
    corpora: dict[str, list[Example]] = {}
    for name in sorted({n for pair in pairs for n in pair}):
        kept, _, rep = deduplicate(read_labelled(root / name))
        corpora[name] = kept
        log(f"{name}: {rep.kept} messages after removing {rep.exact + rep.near} duplicates")
    cfg = pipeline_config(args)
    if cfg.rules.enabled:  # compiled (or loaded) once here, not by every worker process
        from spamwarden.rules import load_engine

        engine = load_engine(cfg)
        assert engine is not None
        log(f"pipeline with SpamAssassin's rules: {len(engine.ruleset.rules)} rules, "
            f"databases {'loaded from' if engine.cache_used else 'compiled into'} "
            f"{args.rules_cache}")
        del engine
    else:
        log("pipeline without SpamAssassin's rules")
    results = []
    with tempfile.TemporaryDirectory(prefix="sw-bench-classifier-") as tmp:
        os.chmod(tmp, 0o755)
        for train_name, eval_name in pairs:
            results.append(run_direction(train_name, eval_name, corpora, args, Path(tmp)))
    print()
    print(f"{'train -> eval':34} {'system':21} {'AUC':>7} {'FNR@0.1%':>9} {'FNR@1%':>7} "
          f"{'FPR@tag':>8} {'FNR@tag':>8} {'msg/s':>8} {'msg/CPU-s':>10}")
    names = {"spamwarden": "spamwarden model", "pipeline": "spamwarden pipeline",
             "spamassassin": "SA rules + Bayes"}
    for r in results:
        for system in ("spamwarden", "pipeline", "spamassassin"):
            f = r.get(system)
            if not isinstance(f, dict):
                continue
            note = {"spamwarden": " (1 core)", "pipeline": f" ({args.jobs} processes)"}.get(
                system, f" ({f.get('concurrency')} clients)")
            print(f"{r['train'] + ' -> ' + r['eval']:34} {names[system]:21} {f['auc']:7.4f} "
                  f"{f['fnr_at_fpr_0_1pct'] * 100:8.1f}% {f['fnr_at_fpr_1pct'] * 100:6.1f}% "
                  f"{f['fpr_at_tag'] * 100:7.2f}% {f['fnr_at_tag'] * 100:7.1f}% "
                  f"{f['messages_per_s']:8.1f} {f['messages_per_cpu_s']:10.1f}{note}")
        pl, sa = r.get("pipeline"), r.get("spamassassin")
        if isinstance(pl, dict) and isinstance(sa, dict):
            print(f"{'':34} pipeline / SpamAssassin: (1-AUC) x{_ratio(1 - pl['auc'], 1 - sa['auc'])}, "
                  f"FNR@0.1% x{_ratio(pl['fnr_at_fpr_0_1pct'], sa['fnr_at_fpr_0_1pct'])}, "
                  f"FPR@tag x{_ratio(pl['fpr_at_tag'], sa['fpr_at_tag'])}, "
                  f"FNR@tag x{_ratio(pl['fnr_at_tag'], sa['fnr_at_tag'])}, "
                  f"msg/s x{_ratio(pl['messages_per_s'], sa['messages_per_s'])}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
