"""Crafted messages checked against SpamAssassin: a folder of ``*.eml`` with the
``expected.json`` its ``make_expected.py`` wrote (``bench/rules/parity.write_expected``),
and the rule text the engine runs on them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from spamwarden.mail import parse_message
from spamwarden.rules import RuleEngine, parse_rule_text, prepare_message


class CraftedRules:
    """The rules of ``rules`` (rule-file text) and the hits SpamAssassin gave each
    message of ``folder``."""

    def __init__(self, folder: Path, rules: str) -> None:
        self.folder = folder
        self.names = frozenset(line.split()[1] for line in rules.splitlines() if line.strip())
        self.expected: dict[str, list[str]] = json.loads(
            (folder / "expected.json").read_text())
        self.rules = rules

    def engine(self) -> RuleEngine:
        """The rules through ``re`` alone (what the tests compare)."""
        return RuleEngine(parse_rule_text(self.rules), use_hyperscan=False)

    def engine_fixture(self) -> Callable[[], RuleEngine]:
        """A module-scoped pytest fixture giving :meth:`engine` (built once a module)."""
        def engine() -> RuleEngine:
            return self.engine()

        return pytest.fixture(scope="module")(engine)

    def hits(self, engine: RuleEngine, raw: bytes) -> set[str]:
        """The rules of this set that ``engine`` counts on ``raw``."""
        return set(engine.counts(prepare_message(parse_message(raw), raw))) & self.names

    def messages(self) -> list[str]:
        """The names of the folder's messages."""
        return sorted(p.name for p in self.folder.glob("*.eml"))
