"""The content model: a Bayesian and a linear scikit-learn Pipeline, stacked and calibrated.

Both pipelines start with the same two stateless steps, feature tokens
(:class:`~spamwarden.training.features.MessageFeatureExtractor`) and
:class:`~sklearn.feature_extraction.FeatureHasher`, then

* ``bayes``: sublinear term frequency, L1-normalised, into
  :class:`~sklearn.naive_bayes.MultinomialNB` (length-normalised naive Bayes:
  its log-odds do not grow with the length of a message, which is what makes it
  carry to mail of other years);
* ``linear``: sublinear term frequency, L2-normalised, into a logistic
  :class:`~sklearn.linear_model.SGDClassifier`.

A two-input logistic regression (``combiner``) turns the two scores into one
calibrated probability (Platt scaling of the stacked scores).  It is fitted on
out-of-fold scores: split by source when the training data comes from two or
more sources (train on one collection, score the other), so the weights and
the calibration reflect mail the models have never seen.

Both final estimators learn incrementally (``partial_fit``) and nothing else in
the pipelines has state, so :meth:`SpamModel.learn` adapts a loaded model to
feedback one message at a time.  Scores are computed from weight vectors
derived once from the estimators, so a single message costs a feature
extraction and two sparse dot products.

Model files are skops archives (no code runs on load) holding the pipelines,
the combiner and JSON metadata: format version, library versions, the feature
settings and their hash, a corpus summary and the cross-validated metrics.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import platform
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction import FeatureHasher

try:  # the hashing FeatureHasher runs, without its per-call checks and sparse matrix
    from sklearn.feature_extraction._hashing_fast import transform as _hash_tokens
except ImportError:  # pragma: no cover - another scikit-learn layout: FeatureHasher itself
    _hash_tokens = None
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import Pipeline

from .. import __version__
from ..errors import ModelError
from ..mail import MessageView, parse_message, valid_text
from .features import (
    DEFAULT_STRIP_HEADERS,
    FEATURES_VERSION,
    MessageFeatureExtractor,
    settings_hash,
)
from .metrics import fnr_at_fpr, rates_at_threshold, roc_auc

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "N_FEATURES",
    "SpamModel",
    "TrainingParams",
    "load_model",
    "save_model",
    "train_model",
]

FORMAT = "spamwarden-content-model"
#: bump when the layout of model files changes
FORMAT_VERSION = 1
N_FEATURES = 2**18
RANDOM_STATE = 0
#: types a model file may hold beyond those skops trusts by default
_TRUSTED = {"spamwarden.training.features.MessageFeatureExtractor"}

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class TrainingParams:
    """Hyper-parameters; lists are the small grid searched by cross-validation."""

    nb_alphas: tuple[float, ...] = (0.01, 0.1)
    sgd_alphas: tuple[float, ...] = (1e-5, 1e-4)
    sgd_epochs: int = 30
    folds: int = 5
    n_features: int = N_FEATURES
    strip_headers: tuple[str, ...] = DEFAULT_STRIP_HEADERS
    #: non-word tokens count this many times (see :mod:`.features`)
    structure_weight: int = 3
    #: with several sources, the calibration is tempered until the models fitted without a
    #: source put at most this share of its ham at p >= 0.99
    unseen_ham_budget: float = 0.01
    random_state: int = RANDOM_STATE


def _hasher(n_features: int) -> FeatureHasher:
    return FeatureHasher(n_features=n_features, input_type="string", alternate_sign=False)


def _bayes_pipeline(ext: MessageFeatureExtractor, n_features: int, alpha: float) -> Pipeline:
    return Pipeline([
        ("features", ext),
        ("hash", _hasher(n_features)),
        ("tf", TfidfTransformer(norm="l1", use_idf=False, sublinear_tf=True)),
        ("nb", MultinomialNB(alpha=alpha)),
    ])


def _linear_pipeline(
    ext: MessageFeatureExtractor, n_features: int, alpha: float, *, epochs: int,
    class_weight: dict[int, float], random_state: int,
) -> Pipeline:
    return Pipeline([
        ("features", ext),
        ("hash", _hasher(n_features)),
        ("tf", TfidfTransformer(norm="l2", use_idf=False, sublinear_tf=True)),
        ("sgd", SGDClassifier(loss="log_loss", alpha=alpha, max_iter=epochs, tol=None,
                              class_weight=class_weight, random_state=random_state)),
    ])


def _tf(X: sp.csr_matrix, norm: str) -> sp.csr_matrix:
    """Sublinear tf, normalised: what the pipelines' ``tf`` step computes (stateless)."""
    X = X.astype(np.float64, copy=True)
    X.data = np.log(X.data) + 1.0  # TfidfTransformer(sublinear_tf=True)
    sums = np.abs(X).sum(axis=1).A1 if norm == "l1" else np.sqrt(X.multiply(X).sum(axis=1).A1)
    sums[sums == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / sums) @ X)


class SpamModel:
    """A trained content model; implements :class:`~.classifier.ContentClassifier`.

    Thread-safe: scoring reads one immutable weights tuple; :meth:`learn`
    replaces it under a lock.
    """

    def __init__(
        self, bayes: Pipeline, linear: Pipeline, combiner: LogisticRegression,
        metadata: dict[str, Any],
    ) -> None:
        self.bayes = bayes
        self.linear = linear
        self.combiner = combiner
        self.metadata = metadata
        self.extractor: MessageFeatureExtractor = bayes.named_steps["features"]
        if linear.named_steps["features"].settings() != self.extractor.settings():
            raise ModelError("the two pipelines of the model use different features")
        self.hasher: FeatureHasher = bayes.named_steps["hash"]
        self._lock = threading.Lock()
        self._grad_sq: np.ndarray | None = None
        self._weights = self._derive_weights()
        self._columns: dict[str, int] = {}

    # -- scoring ------------------------------------------------------------------------------

    def _derive_weights(self) -> tuple[np.ndarray, float, np.ndarray, float, np.ndarray, float]:
        """Scoring weights from the estimators.

        Naive Bayes log-odds of an L1-normalised row ``x`` are
        ``x · (log(fc1 + a) - log(fc0 + a)) - log(T1 + a n) + log(T0 + a n) + prior``
        (``fc`` feature counts, ``T`` their sums, ``n`` features): the same as
        ``feature_log_prob_[1] - feature_log_prob_[0]``, written so that
        :meth:`learn` can update only the features a message touches.
        """
        nb: MultinomialNB = self.bayes.named_steps["nb"]
        sgd: SGDClassifier = self.linear.named_steps["sgd"]
        fc = nb.feature_count_
        alpha = float(nb.alpha)
        w_nb = np.log(fc[1] + alpha) - np.log(fc[0] + alpha)
        self._nb_totals = fc.sum(axis=1)
        b_nb = self._nb_bias(nb, self._nb_totals)
        w_lin = sgd.coef_[0]  # a view: learn() updates the estimator itself
        b_lin = float(sgd.intercept_[0])
        comb_w = np.asarray(self.combiner.coef_[0], dtype=np.float64)
        comb_b = float(self.combiner.intercept_[0])
        return w_nb, b_nb, w_lin, b_lin, comb_w, comb_b

    @staticmethod
    def _nb_bias(nb: MultinomialNB, totals: np.ndarray) -> float:
        n = nb.feature_count_.shape[1]
        alpha = float(nb.alpha)
        return float(nb.class_log_prior_[1] - nb.class_log_prior_[0]
                     - np.log(totals[1] + alpha * n) + np.log(totals[0] + alpha * n))

    def hashed(self, views: Sequence[MessageView | bytes]) -> sp.csr_matrix:
        """Hashed token counts of messages (raw bytes are parsed first)."""
        return self.hasher.transform(self.extractor.transform(views))

    def scores(self, X: sp.csr_matrix) -> np.ndarray:
        """``(n, 2)`` raw scores: naive Bayes log-odds and the linear decision value.

        Computes what the pipelines' ``tf`` and final steps compute, directly on
        the CSR arrays (one pass, no intermediate matrices), for one message or
        a batch alike.
        """
        w_nb, b_nb, w_lin, b_lin, _, _ = self._weights
        n = X.shape[0]
        data = np.log(X.data) + 1.0  # TfidfTransformer(sublinear_tf=True)
        rows = np.repeat(np.arange(n), np.diff(X.indptr))
        l1 = np.bincount(rows, weights=np.abs(data), minlength=n)
        l2 = np.sqrt(np.bincount(rows, weights=data * data, minlength=n))
        l1[l1 == 0] = 1.0
        l2[l2 == 0] = 1.0
        s_nb = np.bincount(rows, weights=data * w_nb[X.indices], minlength=n) / l1 + b_nb
        s_lin = np.bincount(rows, weights=data * w_lin[X.indices], minlength=n) / l2 + b_lin
        return np.column_stack([np.clip(s_nb, -50.0, 50.0), s_lin])

    def probabilities_from_scores(self, S: np.ndarray) -> np.ndarray:
        """Calibrated spam probabilities from :meth:`scores`."""
        *_, comb_w, comb_b = self._weights
        z = np.clip(S @ comb_w + comb_b, -500.0, 500.0)
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)

    def predict_proba(self, views: Sequence[MessageView | bytes]) -> np.ndarray:
        """Spam probabilities of many messages at once (the batch path)."""
        if not views:
            return np.zeros(0)
        return self.probabilities_from_scores(self.scores(self.hashed(views)))

    #: tokens whose hashed column is remembered (about 100 bytes each); when full the
    #: memory starts over, so it follows the vocabulary of the mail going through
    COLUMN_CACHE_SIZE = 200_000

    def columns(self, tokens: Sequence[str]) -> dict[int, int]:
        """The message's hashed token counts: ``{column: count}``, as one row of
        :meth:`hashed` holds them (tokens that hash to one column are added up).

        A token's column is remembered, so a token seen before costs a dict lookup
        instead of a MurmurHash and the sparse-matrix work around it.
        """
        cols, counts = self._row(tokens)
        return dict(zip(cols, counts))

    def _row(self, tokens: Sequence[str]) -> tuple[list[int], list[int]]:
        """:meth:`columns` as two lists (distinct columns, their counts), built with
        C-level loops: a message's tokens go through ``Counter`` and ``map`` once."""
        counts = Counter(tokens)
        known = self._columns
        cols: list[Any] = list(map(known.get, counts))
        if None in cols:
            missing = [t for t, c in zip(counts, cols) if c is None]
            fresh = dict(zip(missing, self._hash_columns(missing)))
            if len(known) + len(fresh) > self.COLUMN_CACHE_SIZE:
                self._columns = dict(fresh)  # start over; `cols` already holds the rest
            else:
                known.update(fresh)
            cols = [fresh[t] if c is None else c for t, c in zip(counts, cols)]
        values = list(counts.values())
        if len(set(cols)) < len(cols):  # two tokens in one column: add them up
            merged: dict[int, int] = {}
            for col, n in zip(cols, values):
                merged[col] = merged.get(col, 0) + n
            return list(merged), list(merged.values())
        return cols, values

    def _hash_columns(self, tokens: list[str]) -> list[int]:
        """FeatureHasher's column of each token (the same MurmurHash3 and modulo)."""
        try:
            return self._hash_columns_of(tokens)
        except UnicodeEncodeError:
            # a raw 8-bit octet of a header value (X-Mailer: \xff), kept by the parser as
            # a lone surrogate, which the hasher cannot encode: it made the classifier fail
            # and the message was scored without it (one octet turned Bayes off)
            return self._hash_columns_of([valid_text(t) for t in tokens])

    def _hash_columns_of(self, tokens: list[str]) -> list[int]:
        if _hash_tokens is not None:
            indices, _, _ = _hash_tokens(
                iter([[(t, 1) for t in tokens]]), self.hasher.n_features, self.hasher.dtype,
                False, seed=0)
            return [int(i) for i in indices]
        row = self.hasher.transform([[t] for t in tokens])
        return [int(row.indices[row.indptr[i]]) for i in range(len(tokens))]

    def spam_probability(self, view: MessageView) -> float:
        """Calibrated probability in [0, 1] that the message is spam.

        The same arithmetic as :meth:`predict_proba` (:meth:`scores`, then
        :meth:`probabilities_from_scores`) on one message's :meth:`columns`,
        without building a sparse matrix: this is the milter's per-message path.
        """
        w_nb, b_nb, w_lin, b_lin, comb_w, comb_b = self._weights
        columns, counts = self._row(self.extractor.tokens(view))
        if columns:
            cols = np.array(columns, dtype=np.intp)
            data = np.log(np.array(counts, dtype=np.float64)) + 1.0
            l1 = float(np.abs(data).sum()) or 1.0
            l2 = math.sqrt(float(data @ data)) or 1.0
            s_nb = float(data @ w_nb[cols]) / l1 + b_nb
            s_lin = float(data @ w_lin[cols]) / l2 + b_lin
        else:
            s_nb, s_lin = b_nb, b_lin
        s_nb = min(max(s_nb, -50.0), 50.0)
        z = min(max(s_nb * float(comb_w[0]) + s_lin * float(comb_w[1]) + comb_b, -500.0), 500.0)
        return 1.0 / (1.0 + math.exp(-z))

    # -- learning -----------------------------------------------------------------------------

    #: step size of the online logistic update (rows are L2-normalised) unless the
    #: metadata's ``params.online_learning_rate`` says otherwise
    LEARNING_RATE = 2.0
    #: a model learning from nothing (``params.online_optimizer == "adagrad"``) divides each
    #: weight's step by the root of the squared gradients that weight has seen (plus this):
    #: rare tokens keep learning fast while frequent ones settle.  With binary tokens and a
    #: margin of 4 (``params.online_margin``), measured in the online protocol on
    #: ../shared/corpus (8,273 messages): (1-AUC) 0.132 % -> 0.095 % in Date order,
    #: 0.138 % -> 0.098 % reversed, 0.145 % -> 0.091 % shuffled.
    ADAGRAD_INITIAL = 0.01

    def learn(self, messages: Sequence[MessageView | bytes], labels: Sequence[int]) -> None:
        """Learn labelled messages incrementally (1 = spam, 0 = ham), one at a time.

        Equivalent to ``partial_fit`` but touching only the features of each
        message, so one message costs microseconds instead of a pass over all
        2**18 weights: naive Bayes adds the message's counts; the linear model
        takes one logistic-loss gradient step (class-weighted, no decay).  The
        estimators' arrays are updated in place (``feature_log_prob_`` is
        recomputed by :meth:`sync_estimators`, which :func:`save_model` calls);
        the calibration (combiner) stays as trained.
        """
        if not messages:
            return
        X = self.hashed(messages)
        y = np.asarray(labels, dtype=np.int64)
        nb: MultinomialNB = self.bayes.named_steps["nb"]
        sgd: SGDClassifier = self.linear.named_steps["sgd"]
        alpha = float(nb.alpha)
        cw = sgd.class_weight if isinstance(sgd.class_weight, dict) else {0: 1.0, 1: 1.0}
        params = self.metadata.get("params", {})
        eta = float(params.get("online_learning_rate", self.LEARNING_RATE))
        adagrad = params.get("online_optimizer") == "adagrad"
        # a message already on the right side by more than this margin teaches the linear
        # model nothing (train on errors and near-errors: confident, right scores stay put)
        margin = float(params.get("online_margin", float("inf")))
        with self._lock:
            if adagrad and self._grad_sq is None:
                # per-weight sums of squared gradients: in memory only (a reloaded model
                # starts them afresh)
                self._grad_sq = np.full(len(sgd.coef_[0]), self.ADAGRAD_INITIAL)
            grad_sq = self._grad_sq if adagrad else None
            w_nb, _, w_lin, _, comb_w, comb_b = self._weights
            # in place: a scorer in another thread sees each weight old or new, both valid
            fc = nb.feature_count_
            b_lin = float(sgd.intercept_[0])
            for r in range(X.shape[0]):
                lo, hi = X.indptr[r], X.indptr[r + 1]
                idx = X.indices[lo:hi]
                if len(idx) == 0:
                    continue
                data = np.log(X.data[lo:hi]) + 1.0
                c = int(y[r])
                x1 = data / np.abs(data).sum()
                fc[c, idx] += x1
                self._nb_totals[c] += x1.sum()
                nb.class_count_[c] += 1
                w_nb[idx] = np.log(fc[1, idx] + alpha) - np.log(fc[0, idx] + alpha)
                x2 = data / np.sqrt((data * data).sum())
                z = float(x2 @ w_lin[idx]) + b_lin
                if (z > margin and c == 1) or (z < -margin and c == 0):
                    continue
                p = 1.0 / (1.0 + np.exp(-max(min(z, 50.0), -50.0)))
                g = eta * float(cw.get(c, 1.0)) * (c - p)
                if grad_sq is not None:
                    step = (c - p) * x2
                    grad_sq[idx] += step * step
                    w_lin[idx] += g * x2 / np.sqrt(grad_sq[idx])
                else:
                    w_lin[idx] += g * x2
                b_lin += 0.01 * g
            sgd.intercept_[0] = b_lin
            # add-one smoothed, so a class not seen yet is unlikely, not impossible
            nb.class_log_prior_ = np.log(nb.class_count_ + 1.0) - np.log(nb.class_count_.sum() + 2.0)
            self._nb_dirty = True
            self.metadata["learned_online"] = self.metadata.get("learned_online", 0) + len(y)
            site = self.metadata.setdefault("site", {"ham": 0, "spam": 0})
            n_spam = int(y.sum())
            site["spam"] = int(site.get("spam", 0)) + n_spam
            site["ham"] = int(site.get("ham", 0)) + len(y) - n_spam
            self._weights = (w_nb, self._nb_bias(nb, self._nb_totals), w_lin, b_lin, comb_w, comb_b)

    def site_counts(self) -> tuple[int, int]:
        """``(ham, spam)``: how many messages of the site's own mail this model has learned.

        Feedback learned online (:meth:`learn`) and reports a ``train --feedback`` run
        trained with (``metadata["site"]``); the public corpora do not count.  The milter
        scales the classifier's points down until both reach ``training.min_site_ham`` /
        ``training.min_site_spam``.
        """
        site = self.metadata.get("site") or {}
        return int(site.get("ham", 0)), int(site.get("spam", 0))

    def sync_estimators(self) -> None:
        """Bring the pipelines' derived attributes up to date after :meth:`learn`."""
        with self._lock:
            if getattr(self, "_nb_dirty", False):
                nb: MultinomialNB = self.bayes.named_steps["nb"]
                nb._update_feature_log_prob(nb.alpha)
                self._nb_dirty = False

    def explain(self, view: MessageView, *, top: int = 10) -> list[tuple[str, float]]:
        """The tokens with the largest linear weights in one message, strongest first."""
        w_lin = self._weights[2]
        weights = []
        for token in sorted(set(self.extractor.tokens(view))):
            idx = self.hasher.transform([[token]]).indices
            if len(idx):
                weights.append((token, float(w_lin[idx[0]])))
        weights.sort(key=lambda p: -abs(p[1]))
        return weights[:top]


# -- training -------------------------------------------------------------------------------


def _share_at(a: float, b: float, z: np.ndarray, p: float) -> float:
    """Share of the scores ``z`` that the calibration ``sigmoid(a z + b)`` puts at ``p`` or
    over (``nan`` for none)."""
    if len(z) == 0:
        return float("nan")
    return float((1.0 / (1.0 + np.exp(-np.clip(a * z + b, -500.0, 500.0))) >= p).mean())


def _nb_fit(X: sp.csr_matrix, y: np.ndarray, alpha: float) -> MultinomialNB:
    return MultinomialNB(alpha=alpha).fit(_tf(X, "l1"), y)


def _nb_score(nb: MultinomialNB, X: sp.csr_matrix) -> np.ndarray:
    lp = nb.predict_joint_log_proba(_tf(X, "l1"))
    return np.asarray(np.clip(lp[:, 1] - lp[:, 0], -50.0, 50.0), dtype=np.float64)


def _class_weight(y: np.ndarray) -> dict[int, float]:
    n = len(y)
    pos = max(int(y.sum()), 1)
    neg = max(n - int(y.sum()), 1)
    return {0: n / (2.0 * neg), 1: n / (2.0 * pos)}


def _sgd_fit(X: sp.csr_matrix, y: np.ndarray, alpha: float, p: TrainingParams) -> SGDClassifier:
    return SGDClassifier(loss="log_loss", alpha=alpha, max_iter=p.sgd_epochs, tol=None,
                         class_weight=_class_weight(y), random_state=p.random_state
                         ).fit(_tf(X, "l2"), y)


Folds = list[tuple[np.ndarray, np.ndarray]]


def _source_folds(y: np.ndarray, groups: Sequence[str] | None) -> Folds:
    """Leave-one-source-out folds, for sources (and rests) holding both classes."""
    if groups is None:
        return []
    g = np.asarray(groups)
    folds: Folds = []
    for name in sorted(set(g.tolist())):
        test = np.flatnonzero(g == name)
        train = np.flatnonzero(g != name)
        if len(set(y[test].tolist())) == 2 and len(set(y[train].tolist())) == 2:
            folds.append((train, test))
    return folds if len(folds) >= 2 else []


def _message_time(view: MessageView) -> float | None:
    date = view.header("Date")
    if not date:
        return None
    try:
        return email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _time_folds(views: Sequence[MessageView], y: np.ndarray) -> Folds:
    """One forward fold for a single source: the older 60 % (by ``Date``) trains, the
    newer 40 % is scored; none when too few messages carry a date or a side lacks a class."""
    times = [_message_time(v) for v in views]
    dated = np.array([i for i, t in enumerate(times) if t is not None], dtype=np.int64)
    if len(dated) < 0.8 * len(views) or len(dated) < 20:
        return []
    order = dated[np.argsort([times[i] for i in dated], kind="stable")]
    cut = int(len(order) * 0.6)
    train, test = np.sort(order[:cut]), np.sort(order[cut:])
    if len(set(y[train].tolist())) < 2 or len(set(y[test].tolist())) < 2:
        return []
    return [(train, test)]


def _stratified_folds(y: np.ndarray, p: TrainingParams) -> Folds:
    k = max(2, min(p.folds, int(min(y.sum(), len(y) - y.sum()))))
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=p.random_state)
    return list(skf.split(np.zeros(len(y)), y))


def _oof(
    X: sp.csr_matrix, y: np.ndarray, folds: Folds, p: TrainingParams, say: Progress, stage: str,
) -> tuple[dict[float, np.ndarray], dict[float, np.ndarray]]:
    """Out-of-fold scores of every grid point of both models."""
    nb_s = {a: np.full(len(y), np.nan) for a in p.nb_alphas}
    lin_s = {b: np.full(len(y), np.nan) for b in p.sgd_alphas}
    steps = len(folds) * (len(p.nb_alphas) + len(p.sgd_alphas))
    done = 0
    for train_idx, test_idx in folds:
        for a in p.nb_alphas:
            nb_s[a][test_idx] = _nb_score(_nb_fit(X[train_idx], y[train_idx], a), X[test_idx])
            done += 1
            say(stage, done, steps)
        for b in p.sgd_alphas:
            sgd = _sgd_fit(X[train_idx], y[train_idx], b, p)
            lin_s[b][test_idx] = sgd.decision_function(_tf(X[test_idx], "l2"))
            done += 1
            say(stage, done, steps)
    return nb_s, lin_s


def _mean_fold_auc(y: np.ndarray, s: np.ndarray, folds: Folds) -> float:
    """Mean of the AUCs within each held-out fold, weighted by the fold's training size.

    Scores of different folds come from different models, so they are never ranked
    against each other.  A fold trained on more mail says more about the final model,
    which is trained on all of it.
    """
    aucs = [roc_auc(y[t], s[t]) for _, t in folds]
    return float(np.average(aucs, weights=[len(train) for train, _ in folds]))


def train_model(
    views: Sequence[MessageView],
    labels: Sequence[int],
    *,
    groups: Sequence[str] | None = None,
    params: TrainingParams = TrainingParams(),
    corpus: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> SpamModel:
    """Train, cross-validate and calibrate a model; deterministic for the same input.

    :param views: parsed messages (already deduplicated).
    :param labels: 1 spam, 0 ham.
    :param groups: the source of each message; with two or more sources the
        hyper-parameters and the combiner are chosen on cross-source scores.
    :param corpus: summary stored in the metadata.
    :param progress: called as ``progress(stage, done, total)``.
    :raises ModelError: fewer than two messages of either class.
    :returns: the model, its ``metadata["metrics"]`` filled in.
    """
    y = np.asarray(labels, dtype=np.int64)
    n_spam = int(y.sum())
    n_ham = len(y) - n_spam
    if n_spam < 2 or n_ham < 2:
        raise ModelError(f"training needs at least 2 ham and 2 spam messages (got {n_ham} ham, "
                         f"{n_spam} spam)")
    say = progress or (lambda stage, done, total: None)
    ext = MessageFeatureExtractor(strip_headers=tuple(params.strip_headers),
                                  structure_weight=params.structure_weight)
    hasher = _hasher(params.n_features)
    token_lists: list[list[str]] = []
    total = len(views)
    for i, v in enumerate(views):
        token_lists.append(ext.tokens(v))
        if (i + 1) % 250 == 0 or i + 1 == total:
            say("features", i + 1, total)
    X = hasher.transform(token_lists)
    del token_lists

    strat = _stratified_folds(y, params)
    st_nb, st_lin = _oof(X, y, strat, params, say, "cross-validation")
    by_source = _source_folds(y, groups)
    forward = [] if by_source else _time_folds(views, y)
    if by_source:
        src_nb, src_lin = _oof(X, y, by_source, params, say, "cross-source")
        sel_folds, sel_nb, sel_lin = by_source, src_nb, src_lin
    elif forward:
        fw_nb, fw_lin = _oof(X, y, forward, params, say, "forward in time")
        sel_folds, sel_nb, sel_lin = forward, fw_nb, fw_lin
    else:
        sel_folds, sel_nb, sel_lin = strat, st_nb, st_lin
    # each model's regularisation, then the mixing weight, by how well it ranks held-out
    # mail (held-out sources when there are several: generalisation, not memory)
    nb_alpha = max(params.nb_alphas, key=lambda a: _mean_fold_auc(y, sel_nb[a], sel_folds))
    sgd_alpha = max(params.sgd_alphas, key=lambda b: _mean_fold_auc(y, sel_lin[b], sel_folds))
    sd_nb = float(np.std(st_nb[nb_alpha])) or 1.0
    sd_lin = float(np.std(st_lin[sgd_alpha])) or 1.0

    def mixed(nb_s: np.ndarray, lin_s: np.ndarray, w: float) -> np.ndarray:
        return w * nb_s / sd_nb + (1.0 - w) * lin_s / sd_lin

    weights = [i / 10 for i in range(11)]
    sel = [_mean_fold_auc(y, mixed(sel_nb[nb_alpha], sel_lin[sgd_alpha], w), sel_folds)
           for w in weights]
    w_nb = weights[int(np.argmax(np.round(sel, 5)))]
    # Platt scaling of the mixed score on the stratified out-of-fold scores, then, with
    # several sources, tempered until the models fitted without a source put at most
    # `unseen_ham_budget` of its ham at p >= 0.99 (BAYES_99), for every source: random
    # folds put the same lists and spam runs on both sides and teach the calibration a
    # confidence that does not carry to another site's mail.  Platt scaling fitted on the
    # pooled cross-source scores was tried: it meets the budget too, but flattens every
    # score (the worst-ranked source dominates it) and gave up most of the spam.  With one
    # source there is nothing to temper on (newer mail of the same source, forward in
    # time, was tried and is no stand-in for another site); what guards a new site then is
    # the site-count scaling of the points (training.min_site_ham / min_site_spam).
    z = mixed(st_nb[nb_alpha], st_lin[sgd_alpha], w_nb)
    platt = LogisticRegression(C=1e4, max_iter=1000).fit(z.reshape(-1, 1), y)
    a0, b0 = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    a_, b_, temperature = a0, b0, 1.0
    cal: dict[str, Any] = {"calibration": "stratified"}
    if by_source:
        z_src = mixed(src_nb[nb_alpha], src_lin[sgd_alpha], w_nb)
        folds_ham = [t[y[t] == 0] for _, t in by_source]
        folds_spam = [t[y[t] == 1] for _, t in by_source]

        def worst_ham(t_: float) -> float:
            return max(_share_at(a0 / t_, b0 / t_, z_src[h], 0.99) for h in folds_ham)

        while worst_ham(temperature) > params.unseen_ham_budget and temperature < 1e3:
            temperature *= 1.05
        a_, b_ = a0 / temperature, b0 / temperature
        pooled = LogisticRegression(C=1e4, max_iter=1000).fit(z_src.reshape(-1, 1), y)
        pa, pb = float(pooled.coef_[0, 0]), float(pooled.intercept_[0])
        cal = {
            "calibration": "stratified, tempered on cross-source scores",
            "calibration_temperature": temperature,
            "unseen_ham_budget": params.unseen_ham_budget,
            # per source, scored by models fitted on the others: ham at p >= 0.99 and spam
            # under 0.5 with this calibration, untempered, and Platt on the pooled scores
            "unseen": {
                str(np.asarray(groups)[t[0]]): {
                    "ham_at_0_99": _share_at(a_, b_, z_src[h], 0.99),
                    "spam_under_0_5": 1.0 - _share_at(a_, b_, z_src[sp], 0.5),
                    "ham_at_0_99_untempered": _share_at(a0, b0, z_src[h], 0.99),
                    "spam_under_0_5_untempered": 1.0 - _share_at(a0, b0, z_src[sp], 0.5),
                    "ham_at_0_99_pooled_platt": _share_at(pa, pb, z_src[h], 0.99),
                    "spam_under_0_5_pooled_platt": 1.0 - _share_at(pa, pb, z_src[sp], 0.5),
                }
                for (_, t), h, sp in zip(by_source, folds_ham, folds_spam)
            },
        }
    combiner = LogisticRegression()
    combiner.classes_ = np.array([0, 1])
    combiner.coef_ = np.array([[a_ * w_nb / sd_nb, a_ * (1.0 - w_nb) / sd_lin]])
    combiner.intercept_ = np.array([b_])
    combiner.n_features_in_ = 2
    p_oof = 1.0 / (1.0 + np.exp(-np.clip(a_ * z + b_, -500.0, 500.0)))
    fpr, fnr = rates_at_threshold(y, p_oof, 0.5)
    metrics: dict[str, Any] = {
        "cv_scheme": f"stratified-{len(strat)}-fold",
        "cv_messages": len(y),
        "cv_auc": roc_auc(y, p_oof),
        "cv_auc_bayes": roc_auc(y, st_nb[nb_alpha]),
        "cv_auc_linear": roc_auc(y, st_lin[sgd_alpha]),
        "cv_fpr_at_0_5": fpr,
        "cv_fnr_at_0_5": fnr,
        "cv_fnr_at_fpr_0_1pct": fnr_at_fpr(y, p_oof, 0.001),
        "cv_fnr_at_fpr_1pct": fnr_at_fpr(y, p_oof, 0.01),
        "weight_bayes": w_nb,
        **cal,
    }
    if by_source:
        g = np.asarray(groups)
        zs = mixed(src_nb[nb_alpha], src_lin[sgd_alpha], w_nb)
        per: dict[str, dict[str, float]] = {}
        for _, t in by_source:
            name = str(g[t[0]])
            per[name] = {
                "auc": roc_auc(y[t], zs[t]),
                "auc_bayes": roc_auc(y[t], src_nb[nb_alpha][t]),
                "auc_linear": roc_auc(y[t], src_lin[sgd_alpha][t]),
                "fnr_at_fpr_0_1pct": fnr_at_fpr(y[t], zs[t], 0.001),
                "fnr_at_fpr_1pct": fnr_at_fpr(y[t], zs[t], 0.01),
                "n": len(t),
            }
        metrics["by_source"] = per
    if forward:
        t = forward[0][1]
        zf = mixed(fw_nb[nb_alpha], fw_lin[sgd_alpha], w_nb)
        metrics["forward_in_time"] = {
            "auc": roc_auc(y[t], zf[t]),
            "auc_bayes": roc_auc(y[t], fw_nb[nb_alpha][t]),
            "auc_linear": roc_auc(y[t], fw_lin[sgd_alpha][t]),
            "fnr_at_fpr_0_1pct": fnr_at_fpr(y[t], zf[t], 0.001),
            "fnr_at_fpr_1pct": fnr_at_fpr(y[t], zf[t], 0.01),
            "n_train": len(forward[0][0]),
            "n": len(t),
        }

    cls_rate = SpamModel.LEARNING_RATE
    say("final fit", 0, 2)
    bayes = _bayes_pipeline(ext, params.n_features, nb_alpha)
    bayes.named_steps["tf"].fit(X[:1])
    bayes.steps[-1] = ("nb", _nb_fit(X, y, nb_alpha))
    say("final fit", 1, 2)
    linear = _linear_pipeline(ext, params.n_features, sgd_alpha, epochs=params.sgd_epochs,
                              class_weight=_class_weight(y), random_state=params.random_state)
    linear.named_steps["tf"].fit(X[:1])
    linear.steps[-1] = ("sgd", _sgd_fit(X, y, sgd_alpha, params))
    say("final fit", 2, 2)
    metadata = _base_metadata(ext)
    metadata.update({
        "params": {"nb_alpha": nb_alpha, "sgd_alpha": sgd_alpha, "weight_bayes": w_nb,
                   "online_learning_rate": cls_rate,
                   "sgd_epochs": params.sgd_epochs,
                   "n_features": params.n_features, "random_state": params.random_state,
                   "structure_weight": params.structure_weight,
                   "grid": {"nb_alpha": list(params.nb_alphas),
                            "sgd_alpha": list(params.sgd_alphas)}},
        "corpus": corpus or {"n_ham": n_ham, "n_spam": n_spam},
        "metrics": metrics,
    })
    return SpamModel(bayes, linear, combiner, metadata)


def _base_metadata(ext: MessageFeatureExtractor) -> dict[str, Any]:
    import scipy
    import sklearn
    import skops

    settings = ext.settings()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": {"spamwarden": __version__, "scikit-learn": sklearn.__version__,
                     "numpy": np.__version__, "scipy": scipy.__version__,
                     "skops": skops.__version__, "python": platform.python_version()},
        "features": settings,
        "features_hash": settings_hash(settings),
    }


def untrained_model(
    *, strip_headers: tuple[str, ...] = DEFAULT_STRIP_HEADERS, n_features: int = N_FEATURES,
) -> SpamModel:
    """A model that knows nothing yet (probability 0.5), for purely online learning.

    Its combiner is fixed (equal say for both scores) instead of fitted.
    """
    ext = MessageFeatureExtractor(strip_headers=tuple(strip_headers), distinct=True)
    zero = sp.csr_matrix((2, n_features))
    y = np.array([0, 1])
    bayes = _bayes_pipeline(ext, n_features, 0.01)
    bayes.named_steps["tf"].fit(zero)
    bayes.named_steps["nb"].fit(zero, y)
    linear = _linear_pipeline(ext, n_features, 1e-5, epochs=1, class_weight={0: 1.0, 1: 1.0},
                              random_state=RANDOM_STATE)
    linear.named_steps["tf"].fit(zero)
    sgd: SGDClassifier = linear.named_steps["sgd"]
    sgd.partial_fit(zero, y, classes=[0, 1])
    sgd.coef_[:] = 0.0
    sgd.intercept_[:] = 0.0
    # forget the two empty documents: naive Bayes starts from uniform counts
    nb: MultinomialNB = bayes.named_steps["nb"]
    nb.class_count_[:] = 0.0
    nb.class_log_prior_[:] = np.log(0.5)
    combiner = LogisticRegression()
    combiner.classes_ = np.array([0, 1])
    # learning from nothing, naive Bayes ranks far worse than the linear model for its first
    # thousands of messages (measured: (1-AUC) 10 % against 0.13 % in the online protocol)
    combiner.coef_ = np.array([[0.0, 1.0]])
    combiner.intercept_ = np.array([0.0])
    combiner.n_features_in_ = 2
    metadata = _base_metadata(ext)
    metadata.update({"params": {"nb_alpha": 0.01, "sgd_alpha": 1e-5, "n_features": n_features,
                                "weight_bayes": 0.0, "online_learning_rate": 1.5,
                                "online_optimizer": "adagrad", "online_margin": 4.0},
                     "corpus": {"n_ham": 0, "n_spam": 0}, "metrics": {}})
    return SpamModel(bayes, linear, combiner, metadata)


# -- files ----------------------------------------------------------------------------------


def save_model(model: SpamModel, path: str | os.PathLike[str]) -> None:
    """Write ``model`` to ``path`` atomically (a temp file renamed into place).

    :raises ModelError: the file cannot be written.
    """
    import skops.io as sio

    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    model.sync_estimators()
    obj = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "metadata": json.dumps(model.metadata, sort_keys=True, default=str),
        "bayes": model.bayes,
        "linear": model.linear,
        "combiner": model.combiner,
    }
    try:
        sio.dump(obj, tmp, compression=zipfile.ZIP_DEFLATED, compresslevel=9)
        os.replace(tmp, path)
    except OSError as exc:
        raise ModelError(f"cannot write model file {path}: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def load_model(path: str | os.PathLike[str]) -> SpamModel:
    """Read a model file written by :func:`save_model`, refusing what it cannot trust.

    :raises ModelError: the file is missing, not a skops archive, holds types
        other than scikit-learn's and spamwarden's, was written by another
        format version, another scikit-learn minor version or other feature
        settings, or is corrupt.  The message says which and what to do.
    """
    import sklearn
    import skops.io as sio

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelError(f"model file {path} does not exist")
    try:
        untrusted = set(sio.get_untrusted_types(file=path))
    except Exception as exc:  # skops raises many kinds for a damaged archive
        raise ModelError(f"model file {path} is corrupt or not a skops model file: "
                         f"{type(exc).__name__}: {exc}") from exc
    foreign = sorted(untrusted - _TRUSTED)
    if foreign:
        raise ModelError(f"model file {path} holds types spamwarden does not load: "
                         f"{', '.join(foreign)}")
    try:
        obj = sio.load(path, trusted=sorted(untrusted))
    except Exception as exc:
        raise ModelError(f"model file {path} is corrupt or from an incompatible version: "
                         f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ModelError(f"model file {path} is not a spamwarden content model")
    if obj.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"model file {path} has format version {obj.get('format_version')!r}; "
                         f"this spamwarden reads version {FORMAT_VERSION}: retrain it with "
                         "`spamwarden train`")
    try:
        metadata = json.loads(obj["metadata"])
        made_with = metadata["versions"]["scikit-learn"]
        features = metadata["features"]
        bayes, linear, combiner = obj["bayes"], obj["linear"], obj["combiner"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"model file {path} has no usable metadata: {exc}") from exc
    if _major_minor(made_with) != _major_minor(sklearn.__version__):
        raise ModelError(f"model file {path} was made with scikit-learn {made_with}, but "
                         f"{sklearn.__version__} is installed: retrain it with `spamwarden train`")
    if features.get("version") != FEATURES_VERSION or metadata.get("features_hash") != settings_hash(
        features
    ):
        raise ModelError(f"model file {path} uses feature settings version "
                         f"{features.get('version')!r}; this spamwarden extracts version "
                         f"{FEATURES_VERSION}: retrain it with `spamwarden train`")
    if not (isinstance(bayes, Pipeline) and isinstance(linear, Pipeline)
            and isinstance(combiner, LogisticRegression)):
        raise ModelError(f"model file {path} does not hold the expected pipelines")
    try:
        model = SpamModel(bayes, linear, combiner, metadata)
        if model.extractor.settings() != features:
            raise ModelError(f"model file {path}: stored feature settings do not match its "
                             "metadata")
        model.predict_proba([parse_message(b"Subject: probe\n\nprobe\n")])
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"model file {path} cannot score messages: "
                         f"{type(exc).__name__}: {exc}") from exc
    return model
