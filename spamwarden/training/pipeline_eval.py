"""``spamwarden eval --pipeline``: measure the whole offline pipeline, not the model alone.

Every message goes through the scanner ``spamwarden check`` builds
(:func:`spamwarden.wiring.offline_scorer` over ``build_scanner``): the
classifier with its site-count scaling, the header checks, SPF/DKIM/DMARC and
whatever else the scanner runs without the network.  Nothing leaves the
machine: DNS lookups fail at once (:class:`OfflineResolver`, so authentication
gives ``temperror``, worth 0 points), Redis is a client that is never reachable
(listings and the consent registry are left out, as ``check`` leaves them out
when Redis is down) and third-party DNSBLs are switched off.  The figures are those of
:func:`~spamwarden.training.evaluate.summary_metrics` computed on the total
score, plus the false-positive and false-negative rates at
``policy.tag_threshold``: what a site would see before its own mail is learned.

Messages are scored in ``jobs`` worker processes, each with its own scanner,
in chunks.  The scorer comes from the composition root, so this module needs
nothing of the milter.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..config import Config
from ..errors import SpamwardenError
from ..resolver import DnsAnswer
from .evaluate import summary_metrics
from .metrics import rates_at_threshold

__all__ = ["OfflineResolver", "Scorer", "ScorerFactory", "evaluate_pipeline"]

#: messages per task sent to a worker process
CHUNK = 64


class OfflineResolver:
    """A :class:`~spamwarden.resolver.Resolver` that fails every lookup at once."""

    def query(self, name: str, rdtype: str, *, timeout: float | None = None) -> DnsAnswer:
        """Always a temporary failure: no lookup leaves the machine."""
        return DnsAnswer("error", reason="offline evaluation: no DNS")


#: scores one raw message: ``(total points of its symbols, score as decided)``
Scorer = Callable[[bytes], tuple[float, float]]

#: builds the scorer of one worker: ``(cfg, model path) -> Scorer``; the composition
#: root provides it (:func:`spamwarden.wiring.offline_scorer`)
ScorerFactory = Callable[[Config, str], Scorer]


_SCORER: Scorer | None = None


def _init_worker(factory: ScorerFactory, cfg: Config, model_path: str) -> None:
    global _SCORER
    _SCORER = factory(cfg, model_path)


def _score_chunk(raws: Sequence[bytes]) -> list[tuple[float, float]]:
    """``(total points, score as decided)`` of each message, in order."""
    assert _SCORER is not None, "_init_worker runs first"
    return [_SCORER(raw) for raw in raws]


def evaluate_pipeline(
    cfg: Config,
    model_path: str,
    messages: Sequence[bytes],
    labels: Sequence[int] | np.ndarray,
    *,
    scorer_factory: ScorerFactory,
    jobs: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Score raw messages with the whole offline pipeline and measure the total score.

    :param model_path: the model file (``""``: ``training.model`` or the shipped one).
    :param scorer_factory: builds each worker's offline scorer
        (:func:`spamwarden.wiring.offline_scorer`).
    :param jobs: worker processes (1: in this process).
    :raises ModelError: the model does not load.
    :raises SpamwardenError: a worker process failed.
    :returns: :func:`summary_metrics` of the total points with ``threshold`` =
        ``policy.tag_threshold`` and ``reject_threshold`` = ``policy.reject_threshold``,
        plus ``fpr_at_tag``, ``fnr_at_tag`` (the score as the milter rounds and
        compares it), ``tag_threshold``, ``messages_per_s``; and the total points.
    """
    y = np.asarray(labels, dtype=np.int64)
    chunks = [messages[i : i + CHUNK] for i in range(0, len(messages), CHUNK)]
    results: list[list[tuple[float, float]]] = []
    t0 = time.perf_counter()
    done = 0
    if jobs <= 1:
        _init_worker(scorer_factory, cfg, model_path)
        for chunk in chunks:
            results.append(_score_chunk(chunk))
            done += len(chunk)
            if progress:
                progress(done, len(messages))
    else:
        ctx = multiprocessing.get_context("fork")
        try:
            with concurrent.futures.ProcessPoolExecutor(
                max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                initargs=(scorer_factory, cfg, model_path),
            ) as pool:
                for part in pool.map(_score_chunk, chunks):
                    results.append(part)
                    done += len(part)
                    if progress:
                        progress(done, len(messages))
        except concurrent.futures.process.BrokenProcessPool as exc:
            raise SpamwardenError(f"a pipeline worker process died: {exc}") from exc
    elapsed = time.perf_counter() - t0
    pairs = [p for part in results for p in part]
    total = np.array([p[0] for p in pairs], dtype=np.float64)
    decided = np.array([p[1] for p in pairs], dtype=np.float64)
    tag = cfg.policy.tag_threshold
    metrics = summary_metrics(y, total, threshold=tag, reject_threshold=cfg.policy.reject_threshold)
    metrics["fpr_at_tag"], metrics["fnr_at_tag"] = rates_at_threshold(y, decided, tag)
    metrics["tag_threshold"] = tag
    metrics["protocol"] = ("whole offline pipeline (classifier, header checks, rules; no DNS, "
                           "no Redis, no listings); scores are total points")
    metrics["messages_per_s"] = len(y) / elapsed if elapsed > 0 else float("inf")
    metrics["messages_per_cpu_s"] = float("nan")
    return metrics, total
