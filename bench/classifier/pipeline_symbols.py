"""Where the whole offline pipeline's points come from, message by message.

Scores labelled mail with the scanner ``spamwarden eval --pipeline`` uses (classifier,
header checks, rules; no DNS, no Redis) and keeps every symbol's points, then prints:
the ham tagged and the spam not tagged at ``policy.tag_threshold``; how much of the
tagged ham reaches the threshold only with the classifier's ``BAYES_*`` points; the
symbols most often on tagged ham; and the same two rates with the classifier's
points multiplied by w.

    PYTHONPATH=. .venv/bin/python bench/classifier/pipeline_symbols.py \\
        --config rules-on.toml --model csdmc.skops \\
        --ham ../shared/corpus/spamassassin/ham --spam ../shared/corpus/spamassassin/spam
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

from spamwarden.config import load_config
from spamwarden.milter.check import scan_file
from spamwarden.wiring import offline_scanner

WEIGHTS = (0.0, 0.2, 0.5, 0.8, 1.0, 1.2, 1.5)

_SCANNER: Any = None


def _files(folders: list[str]) -> Iterator[str]:
    for folder in folders:
        for root, _, names in os.walk(folder):
            for name in sorted(names):
                if name not in ("cmds", "MANIFEST.tsv"):
                    yield os.path.join(root, name)


def _init(config: str, model: str) -> None:
    global _SCANNER
    _SCANNER = offline_scanner(load_config(config), model)


def _one(item: tuple[str, int]) -> dict[str, Any]:
    path, label = item
    with open(path, "rb") as f:
        raw = f.read()
    verdict, _, _ = scan_file(_SCANNER, raw, rcpts=("user@example.org",))
    return {"path": path, "label": label, "score": float(verdict.score),
            "symbols": {s.name: round(float(s.points), 3) for s in verdict.symbols}}


def _bayes(m: dict[str, Any]) -> float:
    return sum(v for k, v in m["symbols"].items() if k.startswith("BAYES_"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--model", default="")
    ap.add_argument("--ham", nargs="+", required=True)
    ap.add_argument("--spam", nargs="+", required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", help="also write every message's symbols here (JSON)")
    args = ap.parse_args()
    tag = load_config(args.config).policy.tag_threshold
    items = [(p, 0) for p in _files(args.ham)] + [(p, 1) for p in _files(args.spam)]
    with multiprocessing.get_context("fork").Pool(
            args.jobs, initializer=_init, initargs=(args.config, args.model)) as pool:
        rows = pool.map(_one, items, chunksize=32)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f)
    ham = [m for m in rows if m["label"] == 0]
    spam = [m for m in rows if m["label"] == 1]
    if not ham or not spam:
        print("pipeline_symbols: no ham or no spam found", file=sys.stderr)
        return 1
    tagged = [m for m in ham if m["score"] >= tag]
    print(f"{len(ham)} ham, {len(spam)} spam; tag threshold {tag}")
    print(f"ham tagged {len(tagged) / len(ham):.2%}, spam not tagged "
          f"{sum(m['score'] < tag for m in spam) / len(spam):.2%}")
    need = sum(m["score"] - _bayes(m) < tag for m in tagged)
    print(f"tagged ham that reaches {tag} only with the classifier's points: "
          f"{need} of {len(tagged)}")
    seen: Counter[str] = Counter()
    for m in tagged:
        seen.update(k for k, v in m["symbols"].items() if v)
    print("symbols on tagged ham:", ", ".join(f"{k} {n}" for k, n in seen.most_common(12)))
    print("classifier points x w: ham tagged, spam not tagged")
    for w in WEIGHTS:
        h = sum(m["score"] + (w - 1) * _bayes(m) >= tag for m in ham) / len(ham)
        s = sum(m["score"] + (w - 1) * _bayes(m) < tag for m in spam) / len(spam)
        print(f"  w={w:.1f}: {h:6.2%} {s:6.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
