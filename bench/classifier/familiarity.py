"""Does a message's familiarity tell the classifier's confident mistakes on unseen mail?

A measurement, kept with its result in ``docs/training.md`` ("Tried and not kept: a
familiarity gate"). Familiarity is the share of a message's distinct tokens whose
hash bucket occurred in at least ``k`` training messages. The question: does it find
the unseen source's ham a one-source model puts at p >= 0.99, so that shrinking the
logit toward 0 by ``min(1, familiarity / f0)`` (``f0``: a low percentile of in-source,
cross-validated familiarity, never of the scored mail) would cut those mistakes?

For the model's training corpus (deduplicated as ``spamwarden train`` does) it runs the
model's own stratified folds: each held-out message's out-of-fold logit and its
familiarity against the other folds. The scored corpus is scored whole, as
``spamwarden eval`` scores it, familiarity against all training mail. Printed: the
familiarity quantiles of the scored ham at p >= 0.99 against the scored spam there,
and the soft gate at f0 = 1st, 5th, 10th in-source percentile, then, for comparison,
one temperature for every logit spending the same share of spam at p >= 0.99 (fitted
on the scored mail: a yardstick, not a method).

    spamwarden train --corpus ../shared/corpus/csdmc2010 --out csdmc.skops
    PYTHONPATH=. .venv/bin/python bench/classifier/familiarity.py \\
        --train ../shared/corpus/csdmc2010 --model csdmc.skops \\
        --score ../shared/corpus/spamassassin

It reads model internals (the hasher's columns, the combiner's weights, the fold
helper), so it follows the model code, not a stable interface.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from spamwarden.mail import parse_message
from spamwarden.training.commands import collect_examples
from spamwarden.training.corpus import deduplicate
from spamwarden.training.model import TrainingParams, _oof, _stratified_folds, load_model

#: token prefixes that are not words (structure, URL, sender, header tokens)
NONWORD = ("fd:", "ud:", "st:", "hv:")
K = 2
PERCENTILES = (1, 5, 10)
L99 = float(np.log(99.0))


def _familiarity(rows: Sequence[tuple[np.ndarray, np.ndarray]], df: np.ndarray,
                 words: bool) -> np.ndarray:
    out = np.zeros(len(rows))
    for i, (buckets, is_word) in enumerate(rows):
        mask = is_word if words else np.ones_like(is_word)
        if mask.any():
            out[i] = float((df[buckets[mask]] >= K).mean())
    return out


def _doc_freq(rows: Sequence[tuple[np.ndarray, np.ndarray]], idx: Any, size: int) -> np.ndarray:
    df = np.zeros(size, dtype=np.int64)
    for i in idx:
        df[np.unique(rows[i][0])] += 1
    return df


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", required=True, help="the corpus the model was trained on")
    ap.add_argument("--model", required=True, help="the model file")
    ap.add_argument("--score", required=True, help="a corpus the model never saw")
    args = ap.parse_args()

    model = load_model(args.model)
    ext, md = model.extractor, model.metadata["params"]
    train_ex, _ = collect_examples(corpus=[args.train])
    kept, kept_views, _ = deduplicate(train_ex, [parse_message(e.raw) for e in train_ex])
    score_ex, _ = collect_examples(corpus=[args.score])
    y_tr = np.array([e.y for e in kept])
    y = np.array([e.y for e in score_ex])
    tr_tok = [ext.tokens(v) for v in kept_views]
    te_tok = [ext.tokens(parse_message(e.raw)) for e in score_ex]

    vocab = sorted({t for toks in tr_tok + te_tok for t in toks})
    col = dict(zip(vocab, model._hash_columns(vocab)))

    def rows(token_lists: list[list[str]]) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for toks in token_lists:
            distinct = list(dict.fromkeys(toks))
            out.append((np.array([col[t] for t in distinct], dtype=np.int64),
                        np.array([not t.startswith(NONWORD) for t in distinct], dtype=bool)))
        return out

    tr_rows, te_rows = rows(tr_tok), rows(te_tok)
    size = model.hasher.n_features
    *_, comb_w, comb_b = model._weights
    z = model.scores(model.hasher.transform(te_tok)) @ comb_w + comb_b

    params = TrainingParams(nb_alphas=(md["nb_alpha"],), sgd_alphas=(md["sgd_alpha"],),
                            sgd_epochs=md["sgd_epochs"], strip_headers=tuple(ext.strip_headers),
                            structure_weight=ext.structure_weight)
    folds = _stratified_folds(y_tr, params)
    nb_s, lin_s = _oof(model.hasher.transform(tr_tok), y_tr, folds, params,
                       lambda *a: None, "cv")
    z_tr = np.column_stack([nb_s[md["nb_alpha"]], lin_s[md["sgd_alpha"]]]) @ comb_w + comb_b

    df_all = _doc_freq(tr_rows, range(len(tr_rows)), size)
    ham99, spam99 = (y == 0) & (z >= L99), (y == 1) & (z >= L99)
    print(f"scored: {int((y == 0).sum())} ham, {int((y == 1).sum())} spam; model AUC "
          f"{roc_auc_score(y, z):.4f}; ham at p >= 0.99 {_pct(ham99.sum() / (y == 0).sum())}, "
          f"spam {_pct(spam99.sum() / (y == 1).sum())}")
    for words in (True, False):
        name = f"{'word' if words else 'all'} tokens, k={K}"
        fam = _familiarity(te_rows, df_all, words)
        fam_tr = np.zeros(len(tr_rows))
        for train_idx, held_idx in folds:
            df = _doc_freq(tr_rows, train_idx, size)
            fam_tr[held_idx] = _familiarity([tr_rows[i] for i in held_idx], df, words)
        print(f"\n{name}: quantiles 5/25/50/75")
        for label, v in (("scored ham, p >= 0.99", fam[ham99]),
                         ("scored spam, p >= 0.99", fam[spam99]),
                         ("in-source (CV)", fam_tr)):
            if len(v):
                print(f"  {label:24} " + " ".join(f"{q:.3f}" for q in np.percentile(v, [5, 25, 50, 75])))
        if ham99.any() and spam99.any():
            sep = roc_auc_score(np.r_[np.zeros(ham99.sum()), np.ones(spam99.sum())],
                                np.r_[fam[ham99], fam[spam99]])
            own = roc_auc_score(np.r_[np.zeros(ham99.sum()), np.ones(spam99.sum())],
                                np.r_[z[ham99], z[spam99]])
            print(f"  separates those spam from those ham: AUC {sep:.3f} (the logit itself: {own:.3f})")
        print("  f0 pct   f0     ham>=0.99  spam>=0.99  AUC     in-source spam>=0.99  "
              "one temperature, same spam: ham>=0.99")
        for q in PERCENTILES:
            f0 = float(np.percentile(fam_tr, q))
            g = z * np.minimum(1.0, fam / f0)
            g_tr = z_tr * np.minimum(1.0, fam_tr / f0)
            spam_share = float((g[y == 1] >= L99).mean())
            cut = max(float(np.quantile(z[y == 1], 1 - spam_share)) if spam_share else np.inf, L99)
            print(f"  {q:6} {f0:6.3f}  {_pct((g[y == 0] >= L99).mean()):>9}  "
                  f"{_pct(spam_share):>10}  {roc_auc_score(y, g):.4f}  "
                  f"{_pct((g_tr[y_tr == 1] >= L99).mean()):>20}  {_pct((z[y == 0] >= cut).mean()):>12}")


if __name__ == "__main__":
    main()
