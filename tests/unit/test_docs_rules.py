"""docs/rules.md against the code it describes: the [rules] settings and their defaults,
the options of ``spamwarden rules``, the log events it names, and the sections that
docs/rules.md and docs/rules-measurements.md refer to (their own and each other's)."""

from __future__ import annotations

import argparse
import dataclasses
import re
import tomllib
from pathlib import Path

from spamwarden.cli import build_parser
from spamwarden.config import Config, RulesConfig, config_from_mapping

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "rules.md"
MEASUREMENTS = ROOT / "docs" / "rules-measurements.md"


def _table_rows(text: str, heading: str) -> dict[str, list[str]]:
    """The rows of the first table under ``heading``, by their first cell (backticks off)."""
    section = text.split(heading, 1)[1]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        if rows and not line.startswith("|"):
            break
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_every_rules_setting_is_in_the_guide_with_its_default() -> None:
    rows = _table_rows(GUIDE.read_text(encoding="utf-8"), "## The settings (`[rules]`)")
    names = [f.name for f in dataclasses.fields(RulesConfig)]
    assert sorted(rows) == sorted(names)
    for name in names:
        shown = tomllib.loads(f"{name} = {rows[name][0].strip('`')}")
        parsed = config_from_mapping({"rules": shown}).rules
        assert getattr(parsed, name) == getattr(Config().rules, name), name


def test_every_option_of_the_rules_command_is_in_the_guide() -> None:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    options = {s for a in sub.choices["rules"]._actions for s in a.option_strings} - {"-h", "--help"}
    listed = {o.split()[0] for o in _table_rows(GUIDE.read_text(encoding="utf-8"),
                                                "## The `spamwarden rules` command")}
    assert listed == options


def test_the_log_events_the_guide_names_are_logged_by_the_code() -> None:
    named = set(re.findall(r"\b((?:sarules|rules_process)_[a-z_]+)\b(?!/)",
                           GUIDE.read_text(encoding="utf-8")))
    assert named, "the guide names no log event"
    code = "\n".join(p.read_text(encoding="utf-8")
                     for p in (ROOT / "spamwarden").rglob("*.py"))
    assert sorted(e for e in named if f'"{e}"' not in code) == []


def _headings(path: Path) -> list[str]:
    return [re.sub(r"\s+", " ", line.lstrip("#")).strip()
            for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")]


_CROSS = re.compile(r'`?docs/(rules(?:-measurements)?\.md)`?,\s+"([^"]+)"')
_LOCAL = re.compile(r'(?:section|under|in|see) "([^"]+)"')


def test_references_to_a_section_of_the_rules_docs_find_it() -> None:
    sources = [*(ROOT / "docs").glob("*.md"), ROOT / "README.md", ROOT / "conf" / "spamwarden.toml",
               *(ROOT / "spamwarden").rglob("*.py")]
    missing = []
    for source in sources:
        text = source.read_text(encoding="utf-8")
        refs = [(m.group(1), m.group(2)) for m in _CROSS.finditer(text)]
        if source in (GUIDE, MEASUREMENTS):
            refs += [(source.name, m.group(1)) for m in _LOCAL.finditer(text)]
        for name, title in refs:
            title = re.sub(r"\s+", " ", title)
            if not any(title in h for h in _headings(ROOT / "docs" / name)):
                missing.append(f"{source.relative_to(ROOT)} -> {name}: {title}")
    assert missing == []
