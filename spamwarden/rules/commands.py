"""``spamwarden rules``: what was read from the SpamAssassin rule files, and a message check.

The CLI (:mod:`spamwarden.cli`) only declares arguments; the work is here.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from ..config import Config
from ..errors import SpamwardenError
from ..mail import parse_message
from . import (
    RuleEngine,
    configured_paths,
    lint,
    parse_rule_files,
    site_files,
    site_problems,
)
from ._parser import RuleSet

__all__ = ["cmd_rules", "format_stats"]

_MAX_MESSAGE_BYTES = 50 * 1024 * 1024


def format_stats(ruleset: RuleSet, engine: RuleEngine | None = None) -> str:
    """A text report: files, rules by kind, skipped by reason, evals run and skipped.

    :param ruleset: the parse result.
    :param engine: when given, how many patterns run in Hyperscan and in ``re``.
    :returns: the report, one item per line.
    """
    lines = [f"files read: {len(ruleset.files)}"]
    lines += [f"  missing: {m}" for m in ruleset.missing_files]
    total = sum(ruleset.kinds_seen.values())
    lines.append(f"rules seen: {total}  parsed: {len(ruleset.rules)}  "
                 f"skipped: {len(ruleset.skipped)}")
    lines.append("seen by type: " + ", ".join(
        f"{k} {n}" for k, n in sorted(ruleset.kinds_seen.items())))
    parsed = Counter(r.kind for r in ruleset.rules.values())
    lines.append("parsed by type: " + ", ".join(f"{k} {n}" for k, n in sorted(parsed.items())))
    if ruleset.suggested_scores:
        lines.append(f"scored from a commented-out score line (rules.unscored = \"suggested\"): "
                     f"{ruleset.suggested_scores}")
    evals = Counter(r.eval_name for r in ruleset.rules.values() if r.kind == "eval")
    lines.append(f"eval rules run: {sum(evals.values())} ({len(evals)} functions)")
    for name, n in sorted(evals.items(), key=lambda x: (-x[1], x[0])):
        lines.append(f"  {n:5d}  {name}")
    reasons = ruleset.skipped_reasons()
    lines.append("skipped by reason:")
    for reason, n in sorted(reasons.items(), key=lambda x: (-x[1], x[0])):
        lines.append(f"  {n:5d}  {reason}")
    if ruleset.inactive:
        lines.append("not read (inside if/ifplugin that is false here):")
        for cond, n in sorted(ruleset.inactive.items(), key=lambda x: (-x[1], x[0])):
            lines.append(f"  {n:5d}  {cond}")
    nets = ruleset.networks
    if nets.configured:
        lines.append(
            "relay trust: trusted_networks "
            + (f"{len(nets.trusted.nets)} entries" if nets.trusted_configured else "unset")
            + ", internal_networks "
            + (f"{len(nets.internal.nets)} entries" if nets.internal_configured else "unset")
            + f", msa_networks {len(nets.msa.nets)} entries (127/8 and ::1 counted)")
    else:
        lines.append("relay trust: inferred (no trusted_networks or internal_networks)")
    if engine is not None:
        st = engine.stats()
        lines.append(f"patterns: hyperscan {st['hyperscan_patterns']} in "
                     f"{st['hyperscan_databases']} databases, re {st['re_patterns']}"
                     f"{_compiled_note(engine)}")
    return "\n".join(lines)


def _compiled_note(engine: RuleEngine) -> str:
    """Where the databases came from: the cache, an earlier set in part, or compiled."""
    if engine.cache_used:
        return " (cached)"
    if engine.reused_groups:
        total = len(engine.reused_groups) + len(engine.compiled_groups)
        return (f" (compiled {len(engine.compiled_groups)} of {total} pattern groups; "
                "the rest taken from an earlier compiled set)")
    return ""


def cmd_rules(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden rules [--stats] [--check FILE.eml] [--rules PATH ...]``."""
    paths = [Path(p) for p in args.rules] if args.rules else configured_paths(cfg)
    ruleset = parse_rule_files(paths, suggested_scores=cfg.rules.unscored == "suggested",
                               costly=cfg.rules.costly_patterns)
    if args.lint:
        return _lint(args, cfg, ruleset)
    if not ruleset.files:
        print("spamwarden rules: no rule files found (install spamassassin or set rules.paths)",
              file=sys.stderr)
        return 1
    engine: RuleEngine | None = None
    if args.check or not args.no_compile:
        cache_dir = cfg.rules.cache_dir or str(cfg.state_path("rules-cache"))
        engine = RuleEngine(ruleset, use_hyperscan=not args.no_hyperscan, cache_dir=cache_dir,
                            time_limit=cfg.rules.time_limit)
    if args.stats or not args.check:
        print(format_stats(ruleset, engine))
    for name in args.check or []:
        try:
            with open(name, "rb") as f:
                raw = f.read(_MAX_MESSAGE_BYTES)
        except OSError as exc:
            raise SpamwardenError(f"cannot read {name}: {exc.strerror}") from exc
        assert engine is not None
        hits = engine.check(parse_message(raw), raw)
        total = sum(h.score for h in hits)
        print(f"{name}: score {total:.2f}, {len(hits)} rules")
        for h in hits:
            print(f"  {h.score:6.2f}  {h.name:<28} {h.description}")
    return 0


def _lint(args: argparse.Namespace, cfg: Config, ruleset: RuleSet) -> int:
    """``rules --lint``: the problems of the site's files (of ``--rules`` files when given)."""
    if args.rules:
        files = list(ruleset.files)
        problems = lint(ruleset, files, ruleset.missing_files)
    else:
        files = site_files(cfg, ruleset)
        problems = site_problems(cfg, ruleset)
    for p in problems:
        print(p)
    if problems:
        print(f"spamwarden rules: {len(problems)} problem(s) in the site's rule files",
              file=sys.stderr)
        return 1
    wanted = set(files)
    rules = sum(1 for o in ruleset.origins.values() if o.rpartition(":")[0] in wanted)
    print(f"rules --lint: no problems ({len(files)} file(s), {rules} rule(s) checked)")
    return 0
