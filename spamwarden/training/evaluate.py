"""Measuring a model: batch evaluation, the TREC online protocol, and ROC/DET plots.

* :func:`evaluate` scores labelled messages with a trained model: ROC AUC,
  (1−AUC) %, false-positive and false-negative rates at the tag and reject
  thresholds, false-negative rates at false-positive rates of 0.1 % and 1 %.
* :func:`evaluate_online` follows the online protocol of the TREC spam track:
  messages in arrival order, each scored by the current model and then learned
  with its true label (immediate feedback).
* :func:`plot_roc_det` draws the ROC curve (log false-positive axis) and the
  DET curve (normal-deviate axes) an operator can read thresholds from.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SpamwardenError
from ..mail import MessageView, parse_message
from .corpus import CorpusError, Label
from .metrics import fnr_at_fpr, rates_at_threshold, roc_auc
from .model import SpamModel, untrained_model

__all__ = ["evaluate", "evaluate_online", "plot_roc_det", "read_index", "summary_metrics"]


def summary_metrics(
    y: np.ndarray, p: np.ndarray, *, threshold: float = 0.5, reject_threshold: float = 0.99
) -> dict[str, Any]:
    """The figures ``spamwarden eval`` prints, from labels and probabilities."""
    auc = roc_auc(y, p)
    fpr, fnr = rates_at_threshold(y, p, threshold)
    rfpr, rfnr = rates_at_threshold(y, p, reject_threshold)
    return {
        "auc": auc,
        "one_minus_auc_pct": (1.0 - auc) * 100.0,
        "threshold": threshold,
        "fpr_at_threshold": fpr,
        "fnr_at_threshold": fnr,
        "reject_threshold": reject_threshold,
        "fpr_at_reject_threshold": rfpr,
        "fnr_at_reject_threshold": rfnr,
        "fnr_at_fpr_0_1pct": fnr_at_fpr(y, p, 0.001),
        "fnr_at_fpr_1pct": fnr_at_fpr(y, p, 0.01),
        "n_ham": int((y == 0).sum()),
        "n_spam": int((y == 1).sum()),
    }


def evaluate(
    model: SpamModel,
    messages: Sequence[bytes],
    labels: Sequence[int] | np.ndarray,
    *,
    threshold: float = 0.5,
    reject_threshold: float = 0.99,
    batch: int = 256,
    views: Sequence[MessageView] | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Score labelled raw messages (parsing included) and measure.

    :param views: the messages already parsed (then the speed is scoring only).
    :returns: the metrics (plus ``messages_per_s`` for parsing and scoring, by the wall
        clock, and ``messages_per_cpu_s`` by this process's CPU time: per core)
        and the probabilities in input order.
    """
    y = np.asarray(labels, dtype=np.int64)
    probs = np.zeros(len(y))
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(messages), batch):
        chunk = (views[i : i + batch] if views is not None
                 else [parse_message(raw) for raw in messages[i : i + batch]])
        probs[i : i + len(chunk)] = model.predict_proba(chunk)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    metrics = summary_metrics(y, probs, threshold=threshold, reject_threshold=reject_threshold)
    metrics["messages_per_s"] = len(y) / elapsed if elapsed > 0 else float("inf")
    metrics["messages_per_cpu_s"] = len(y) / cpu if cpu > 0 else float("inf")
    return metrics, probs


@dataclass(frozen=True, slots=True)
class IndexEntry:
    label: Label
    path: Path


def read_index(path: str | os.PathLike[str], *, limit: int = 10_000_000) -> list[IndexEntry]:
    """Lines ``spam PATH`` / ``ham PATH`` (paths relative to the index file's folder).

    Blank lines and ``#`` comments are skipped.

    :raises CorpusError: the file cannot be read or a line is not of that form.
    """
    p = Path(path)
    try:
        lines = p.read_text("utf-8").splitlines()
    except OSError as exc:
        raise CorpusError(f"{p}: {exc.strerror or exc}") from exc
    out: list[IndexEntry] = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or parts[0].lower() not in ("spam", "ham"):
            raise CorpusError(f"{p}:{n}: expected 'spam PATH' or 'ham PATH', got {line[:80]!r}")
        out.append(IndexEntry(parts[0].lower(), (p.parent / parts[1]).resolve()))  # type: ignore[arg-type]
        if len(out) >= limit:
            break
    return out


def evaluate_online(
    entries: Sequence[IndexEntry],
    *,
    model: SpamModel | None = None,
    threshold: float = 0.5,
    reject_threshold: float = 0.99,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """The TREC spam track's online protocol with immediate feedback.

    Each message is scored by the current model, then its true label is
    learned (``partial_fit``).  ``model`` defaults to an untrained one (every
    first score is 0.5), as in the track.

    :raises CorpusError: a listed file cannot be read.
    :returns: the metrics over all scores (with ``messages_per_s`` for
        parse + score + learn) and the scores in order.
    """
    m = model or untrained_model()
    y = np.array([1 if e.label == "spam" else 0 for e in entries], dtype=np.int64)
    probs = np.zeros(len(y))
    t0, c0 = time.perf_counter(), time.process_time()
    for i, entry in enumerate(entries):
        try:
            raw = entry.path.read_bytes()
        except OSError as exc:
            raise CorpusError(f"{entry.path}: {exc.strerror or exc}") from exc
        view = parse_message(raw)
        probs[i] = m.spam_probability(view)
        m.learn([view], [int(y[i])])
        if progress is not None and ((i + 1) % 100 == 0 or i + 1 == len(y)):
            progress(i + 1, len(y))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    metrics = summary_metrics(y, probs, threshold=threshold, reject_threshold=reject_threshold)
    metrics["messages_per_s"] = len(y) / elapsed if elapsed > 0 else float("inf")
    metrics["messages_per_cpu_s"] = len(y) / cpu if cpu > 0 else float("inf")
    return metrics, probs


def plot_roc_det(
    y: np.ndarray, p: np.ndarray, path: str | os.PathLike[str], *, title: str = ""
) -> None:
    """Write a PNG with the ROC curve (log FPR axis) and the DET curve.

    :raises SpamwardenError: matplotlib is not installed (``pip install spamwarden[plot]``)
        or the file cannot be written.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from sklearn.metrics import det_curve, roc_curve
    except ImportError as exc:
        raise SpamwardenError("plotting needs matplotlib: pip install 'spamwarden[plot]'") from exc
    fpr, tpr, _ = roc_curve(y, p)
    dfpr, dfnr, _ = det_curve(y, p)
    auc = roc_auc(y, p)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.8))
    floor = 1e-4
    ax1.plot(np.maximum(fpr, floor), tpr, color="tab:blue", lw=1.8,
             label=f"spamwarden (AUC {auc:.4f})")
    for x, name in ((0.001, "FPR 0.1 %"), (0.01, "FPR 1 %")):
        ax1.axvline(x, color="grey", ls=":", lw=1)
        ax1.text(x, 0.02, name, rotation=90, va="bottom", ha="right", fontsize=8, color="grey")
    ax1.set_xscale("log")
    ax1.set_xlim(floor, 1.0)
    ax1.set_ylim(0.0, 1.01)
    ax1.set_xlabel("false-positive rate (ham marked spam, log scale)")
    ax1.set_ylabel("true-positive rate (spam caught)")
    ax1.set_title("ROC")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(loc="lower right")

    from scipy.stats import norm

    eps = 1e-5
    ticks = np.array([0.0001, 0.001, 0.01, 0.05, 0.2, 0.5])
    ax2.plot(norm.ppf(np.clip(dfpr, eps, 1 - eps)), norm.ppf(np.clip(dfnr, eps, 1 - eps)),
             color="tab:red", lw=1.8)
    ax2.set_xticks(norm.ppf(ticks))
    ax2.set_xticklabels([f"{t * 100:g} %" for t in ticks])
    ax2.set_yticks(norm.ppf(ticks))
    ax2.set_yticklabels([f"{t * 100:g} %" for t in ticks])
    ax2.set_xlim(norm.ppf(eps), norm.ppf(0.6))
    ax2.set_ylim(norm.ppf(eps), norm.ppf(0.6))
    ax2.set_xlabel("false-positive rate")
    ax2.set_ylabel("false-negative rate (spam missed)")
    ax2.set_title("DET")
    ax2.grid(True, alpha=0.3)
    n_ham, n_spam = int((y == 0).sum()), int((y == 1).sum())
    fig.suptitle(title or f"spamwarden classifier: {n_ham} ham, {n_spam} spam")
    fig.tight_layout()
    try:
        fig.savefig(os.fspath(path), dpi=110)
    except OSError as exc:
        raise SpamwardenError(f"cannot write {path}: {exc}") from exc
    finally:
        plt.close(fig)
