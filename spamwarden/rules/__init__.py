"""SpamAssassin rule files read and run natively.

``parse_rule_files`` reads ``*.cf`` files into a :class:`RuleSet` (every rule parsed or
skipped with a reason); :class:`RuleEngine` compiles it (Hyperscan, with Python ``re``
behind it) and gives the :class:`Hit` list of a message.  :func:`load_engine` builds the
engine a configuration asks for, with its on-disk cache.

Integration point for scoring: ``engine.check(view, raw)`` takes the
:class:`~spamwarden.mail.MessageView` and raw bytes of a message and returns its hits
(SpamAssassin name, score, description), sorted by name.  Hit names come from the rule
files (data), not from code.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path

from ..config import Config
from ._authfacts import AuthFacts, DkimSignature
from ._bounded import SlowLane
from ._engine import (
    ENGINE_VERSION,
    HAVE_HYPERSCAN,
    SLOW_LANE_BUSY,
    TIME_LIMIT_EXCEEDED,
    Hit,
    RuleEngine,
    RulesError,
)
from ._lint import Problem, lint
from ._parser import (
    LOADED_PLUGINS,
    SA_VERSION,
    HeaderSpec,
    Rule,
    RuleSet,
    parse_rule_files,
    parse_rule_text,
    rule_files,
)
from ._prepare import PreparedMessage, prepare_message

__all__ = [
    "AuthFacts",
    "DkimSignature",
    "ENGINE_VERSION",
    "SLOW_LANE_BUSY",
    "TIME_LIMIT_EXCEEDED",
    "classifier_scores",
    "HAVE_HYPERSCAN",
    "LOADED_PLUGINS",
    "SA_VERSION",
    "HeaderSpec",
    "Hit",
    "PreparedMessage",
    "Problem",
    "Rule",
    "RuleEngine",
    "RuleSet",
    "RulesError",
    "SlowLane",
    "configured_paths",
    "lint",
    "load_engine",
    "parse_rule_files",
    "parse_configured",
    "parse_rule_text",
    "prepare_message",
    "rule_files",
    "site_files",
    "site_problems",
]


def configured_paths(cfg: Config) -> list[Path]:
    """The rule files and folders ``[rules]`` names, in load order.

    :param cfg: the configuration; ``rules.system_rules`` adds SpamAssassin's own rules
        first, then ``rules.paths`` in order.
    :returns: paths (files or folders); a missing one is reported by the parser.
    """
    paths: list[Path] = list(rule_files()) if cfg.rules.system_rules else []
    paths.extend(Path(p) for p in cfg.rules.paths)
    return paths


def site_problems(cfg: Config, ruleset: RuleSet) -> list[Problem]:
    """What will not work as written in the site's own rule files: every file read that
    is not one of SpamAssassin's (``rules.paths`` and what they include), plus the
    configured ones that are missing (:func:`~spamwarden.rules.lint`).

    :param cfg: the configuration the rule set was parsed for.
    :param ruleset: the parse of :func:`configured_paths`.
    :returns: problems by file and line; empty when the site's files are clean.
    """
    system = _system_files(cfg)
    return lint(ruleset, site_files(cfg, ruleset, system),
                [m for m in ruleset.missing_files if m not in system])


def site_files(cfg: Config, ruleset: RuleSet,
               system: frozenset[str] | None = None) -> list[str]:
    """The files of ``ruleset`` that are the site's own: every one read that is not one
    of SpamAssassin's (:func:`rule_files`, when ``rules.system_rules`` loads them;
    ``system``: those names, when the caller has them already)."""
    if system is None:
        system = _system_files(cfg)
    return [f for f in ruleset.files if f not in system]


def _system_files(cfg: Config) -> frozenset[str]:
    return frozenset(str(f) for f in rule_files()) if cfg.rules.system_rules else frozenset()


#: the last :func:`parse_configured` result: (paths, suggested), file signature, rule set
_PARSED: tuple[tuple[tuple[str, ...], bool, bool], tuple[tuple[str, int, int], ...],
               RuleSet] | None = None
_PARSED_LOCK = threading.Lock()


def _signature(files: Iterable[str]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for f in files:
        try:
            st = os.stat(f)
            out.append((f, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((f, -1, -1))
    return tuple(out)


def parse_configured(cfg: Config) -> RuleSet:
    """The rule files ``[rules]`` names, parsed; the result is kept for this process until
    one of the files read (or missing) changes, so the points the classifier takes from
    them and the engine share one parse.

    :param cfg: the configuration (``rules.system_rules``, ``rules.paths``,
        ``rules.unscored``, ``rules.costly_patterns``).
    :returns: the rule set (shared: do not modify it).
    """
    global _PARSED
    paths = configured_paths(cfg)
    key = (tuple(str(p) for p in paths), cfg.rules.unscored == "suggested",
           cfg.rules.costly_patterns)
    with _PARSED_LOCK:
        kept = _PARSED
    if kept is not None and kept[0] == key and _signature(s for s, _, _ in kept[1]) == kept[1]:
        return kept[2]
    ruleset = parse_rule_files(paths, suggested_scores=key[1], costly=key[2])
    sig = _signature([*ruleset.files, *ruleset.missing_files])
    with _PARSED_LOCK:
        _PARSED = (key, sig, ruleset)
    return ruleset


def classifier_scores(cfg: Config) -> dict[str, float]:
    """The ``BAYES_*`` scores SpamAssassin's rule files give (their "Bayes on, network
    off" score set, which the rules' own scores were fitted with), a site's ``local.cf``
    included: the classifier's points while the rules run (``rules.bayes_scores``).

    :returns: name → score; empty when the rules are off, ``rules.bayes_scores`` is
        false, or no file scores them.
    """
    if not (cfg.rules.enabled and cfg.rules.bayes_scores):
        return {}
    return {k: v for k, v in parse_configured(cfg).scores.items() if k.startswith("BAYES_")}


def load_engine(cfg: Config, *, use_hyperscan: bool = True) -> RuleEngine | None:
    """Parse the configured rule files and build the engine (cached databases reused).

    :param cfg: the configuration (``[rules]`` and ``service.state_dir``).
    :param use_hyperscan: ``False`` runs every pattern through Python ``re``.
    :returns: the engine, or ``None`` when ``rules.enabled`` is false.
    :raises RulesError: Hyperscan could not build a database.
    """
    if not cfg.rules.enabled:
        return None
    ruleset = parse_configured(cfg)
    cache_dir = cfg.rules.cache_dir or str(cfg.state_path("rules-cache"))
    return RuleEngine(ruleset, use_hyperscan=use_hyperscan, cache_dir=cache_dir,
                      time_limit=cfg.rules.time_limit,
                      slow_lane=SlowLane(cfg.rules.slow_after, cfg.rules.slow_lanes))
