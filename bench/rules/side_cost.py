"""CPU of the body's side database (rules left to ``re`` behind a Hyperscan prefilter),
with and without the ReplaceTags rules too long for Hyperscan, over bench.py's messages.

    PYTHONPATH=. python bench/rules/side_cost.py [--messages 300] [--cache-dir DIR]

Prints µs a message for the side database as built, without the looser ReplaceTags
prefilters, and for those alone; the lines each of them matched; and what ``re`` alone
would cost running the long rules on every line.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path
from typing import Any

import hyperscan

from spamwarden.mail import parse_message
from spamwarden.rules import RuleEngine, parse_rule_files, prepare_message, rule_files
from spamwarden.rules._engine import _side_database


def _bench_module() -> Any:
    spec = importlib.util.spec_from_file_location("rules_bench", Path(__file__).with_name("bench.py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _scan_cost(db: Any, units: list[list[bytes]], rounds: int = 3) -> tuple[float, dict[int, int]]:
    scratch = hyperscan.Scratch(db)
    hits: dict[int, int] = {}

    def on_match(rid: int, _f: int, _t: int, _fl: int, _ctx: Any) -> None:
        hits[rid] = hits.get(rid, 0) + 1

    t = time.process_time()
    for _ in range(rounds):
        for lines in units:
            for u in lines:
                db.scan(u, match_event_handler=on_match, scratch=scratch)
    spent = (time.process_time() - t) / rounds / len(units) * 1e6
    return spent, {rid: n // rounds for rid, n in hits.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--cache-dir", help="compiled rule databases (default: none, compiles)")
    args = ap.parse_args()
    files = _bench_module().messages(args.messages)
    ruleset = parse_rule_files(rule_files())
    engine = RuleEngine(ruleset, cache_dir=args.cache_dir)
    g = engine._groups["body"]
    long_rules = {n for n, r in ruleset.rules.items() if r.prefilter is not None}
    units = []
    for f in files:
        raw = f.read_bytes()
        units.append(list(dict.fromkeys(prepare_message(parse_message(raw), raw).body)))
    if g.side_db is None:
        raise SystemExit("no side database for body rules")
    spent, hits = _scan_cost(g.side_db, units)
    print(f"{len(units)} messages; body side database: {len(g.side_rules)} rules, "
          f"{spent:.0f} µs a message")
    for rid, n in sorted(hits.items()):
        if g.side_rules[rid] in long_rules:
            print(f"  {g.side_rules[rid]}: prefilter matched {n} lines")
    others = [r for r in g.re_rules if r.name in g.side_set and r.name not in long_rules]
    _, db = _side_database(others)
    if db is not None:
        print(f"without the {len(long_rules)} ReplaceTags prefilters: "
              f"{_scan_cost(db, units)[0]:.0f} µs a message")
    _, db = _side_database([ruleset.rules[n] for n in sorted(long_rules)])
    if db is not None:
        print(f"the {len(long_rules)} alone: {_scan_cost(db, units)[0]:.0f} µs a message")
    t = time.process_time()
    for lines in units:
        for name in long_rules:
            pat = engine._pattern(ruleset.rules[name])
            for u in lines:
                pat.search(u)
    print(f"re alone on every line for the {len(long_rules)}: "
          f"{(time.process_time() - t) / len(units) * 1e6:.0f} µs a message")


if __name__ == "__main__":
    main()
