"""The Redis scripts shipped as files: each has its contract header and is shipped."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

from spamwarden._lua import lua_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "spamwarden").glob("**/lua/*.lua"))


def _package(path: Path) -> str:
    return ".".join(path.parent.parent.relative_to(ROOT).parts)


def test_every_script_used_in_the_code_is_a_file() -> None:
    used = set()
    for py in (ROOT / "spamwarden").glob("**/*.py"):
        for pkg, name in re.findall(r'lua_script\("([\w.]+)", "(\w+)"\)', py.read_text()):
            used.add((pkg, name))
    assert used, "no script is loaded with lua_script"
    assert used == {(_package(p), p.stem) for p in SCRIPTS}


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_script_opens_with_its_keys_argv_and_result(path: Path) -> None:
    text = lua_script(_package(path), path.stem)
    assert text == path.read_text(encoding="utf-8")
    header = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        header.append(line)
    joined = "\n".join(header)
    assert "KEYS" in joined and "ARGV" in joined and "Returns" in joined, path.name
    assert "redis.call" in text


def test_every_script_directory_is_package_data() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    data = cfg["options.package_data"]
    for pkg in sorted({_package(p) for p in SCRIPTS}):
        assert "lua/*.lua" in data.get(pkg, "").split(), pkg


def test_a_missing_script_is_an_error() -> None:
    with pytest.raises(FileNotFoundError):
        lua_script("spamwarden.reputation", "no_such_script")
