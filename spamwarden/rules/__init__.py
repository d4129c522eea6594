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

from pathlib import Path

from ..config import Config
from ._engine import ENGINE_VERSION, HAVE_HYPERSCAN, Hit, RuleEngine, RulesError
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
    "ENGINE_VERSION",
    "HAVE_HYPERSCAN",
    "LOADED_PLUGINS",
    "SA_VERSION",
    "HeaderSpec",
    "Hit",
    "PreparedMessage",
    "Rule",
    "RuleEngine",
    "RuleSet",
    "RulesError",
    "configured_paths",
    "load_engine",
    "parse_rule_files",
    "parse_rule_text",
    "prepare_message",
    "rule_files",
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


def load_engine(cfg: Config, *, use_hyperscan: bool = True) -> RuleEngine | None:
    """Parse the configured rule files and build the engine (cached databases reused).

    :param cfg: the configuration (``[rules]`` and ``service.state_dir``).
    :param use_hyperscan: ``False`` runs every pattern through Python ``re``.
    :returns: the engine, or ``None`` when ``rules.enabled`` is false.
    :raises RulesError: Hyperscan could not build a database.
    """
    if not cfg.rules.enabled:
        return None
    ruleset = parse_rule_files(configured_paths(cfg),
                               suggested_scores=cfg.rules.unscored == "suggested")
    cache_dir = cfg.rules.cache_dir or str(cfg.state_path("rules-cache"))
    return RuleEngine(ruleset, use_hyperscan=use_hyperscan, cache_dir=cache_dir)
