"""Check that the prefilters of the costly rules never miss: on every corpus message.

The rules the parser marks costly (SpamAssassin's unanchored ``__FILL_THIS_FORM_*``)
run in ``re`` only on the body paragraphs a Hyperscan database lets through: the repeat
database (ends of the repeated group, then the rest of the pattern anchored there) or
the side database (a loosened pattern).  For every message of the corpus this runs each
such pattern with plain ``re`` over every paragraph and fails if a paragraph where it
matches is one the engine's prefilter would not have let through.

Prints, per rule, the paragraphs ``re`` matched, those the prefilter let through, and
the paragraphs seen; exits 1 on any miss.

usage: PYTHONPATH=. python bench/rules/prefilter_check.py [--cache-dir DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from spamwarden.mail import parse_message
from spamwarden.rules import RuleEngine, parse_rule_files, prepare_message, rule_files

SHARED = (Path(os.environ["SPAMWARDEN_SHARED"]) if os.environ.get("SPAMWARDEN_SHARED")
          else Path(__file__).resolve().parents[3] / "shared")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache-dir", default=None, help="compiled rule databases")
    ap.add_argument("--limit", type=int, default=0, help="at most this many messages")
    args = ap.parse_args()
    engine = RuleEngine(parse_rule_files(rule_files(), costly=True), cache_dir=args.cache_dir)
    g = engine._groups["body"]
    costly = sorted(n for n, r in engine.ruleset.rules.items() if r.costly and r.kind == "body")
    plain = {n: engine._pattern(engine.ruleset.rules[n]) for n in costly}
    where = {n: "repeat" if n in g.repeat_ids else "side" if n in g.side_set else "re"
             for n in costly}
    print("rules:", ", ".join(f"{n} ({where[n]})" for n in costly), file=sys.stderr)
    files = sorted(p for p in (SHARED / "corpus").rglob("*")
                   if p.is_file() and p.name != "README.md")
    if args.limit:
        files = files[:args.limit]
    matched = dict.fromkeys(costly, 0)
    passed = dict.fromkeys(costly, 0)
    misses: list[str] = []
    seen = 0
    for i, f in enumerate(files):
        raw = f.read_bytes()
        units = list(dict.fromkeys(prepare_message(parse_message(raw), raw).body))
        seen += len(units)
        side: dict[int, list[int]] = {}
        ends: dict[int, list[tuple[int, int]]] = {}
        for at, u in enumerate(units):
            if g.side_db is not None:
                g.side_db.scan(u, match_event_handler=_on_unit, context=(side, at),
                               scratch=engine._scratch(g.side_db))
            if g.repeat_db is not None:
                g.repeat_db.scan(u, match_event_handler=_on_end, context=(ends, at),
                                 scratch=engine._scratch(g.repeat_db))
        for n in costly:
            if where[n] == "repeat":
                rest = g.repeat_rest[n]
                by_unit: dict[int, list[int]] = {}
                for at, end in ends.get(g.repeat_ids[n], ()):
                    by_unit.setdefault(at, []).append(end)
                let = {at for at, offs in by_unit.items()
                       if any(rest.match(units[at], p) for p in offs)}
            elif where[n] == "side":
                let = set(side.get(g.side_ids[n], ()))
            else:
                let = set(range(len(units)))
            passed[n] += len(let)
            for at, u in enumerate(units):
                if plain[n].search(u):
                    matched[n] += 1
                    if at not in let:
                        misses.append(f"{f}: {n}: paragraph {at}")
        if (i + 1) % 1000 == 0:
            print(f"{i + 1} messages", file=sys.stderr, flush=True)
    print(f"{len(files)} messages, {seen} distinct body paragraphs")
    for n in costly:
        print(f"{n:32} {where[n]:6} re matched {matched[n]:5}  let through {passed[n]:6}")
    for m in misses:
        print("MISS", m)
    print(f"misses: {len(misses)}")
    return 1 if misses else 0


def _on_unit(rid: int, start: int, end: int, flags: int,
             ctx: tuple[dict[int, list[int]], int]) -> Any:
    ctx[0].setdefault(rid, []).append(ctx[1])


def _on_end(rid: int, start: int, end: int, flags: int,
            ctx: tuple[dict[int, list[tuple[int, int]]], int]) -> Any:
    ctx[0].setdefault(rid, []).append((ctx[1], end))


if __name__ == "__main__":
    sys.exit(main())
