"""The composition root and the package arrows of docs/architecture.md.

The import tests read the source (imports inside functions included, ``TYPE_CHECKING``
blocks not), so a lazy import that turns an arrow around fails here, not in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from spamwarden import wiring
from spamwarden.cli import build_parser
from spamwarden.config import config_from_mapping
from spamwarden.errors import ServiceError
from spamwarden.supervisor import SERVICES, Supervisor

ROOT = Path(wiring.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every ``spamwarden.*`` module a file imports, resolved to absolute names."""
    package = list(path.relative_to(ROOT.parent).with_suffix("").parts[:-1])
    return _imports_of(path.read_text(encoding="utf-8"), package)


def _imports_of(source: str, package: list[str]) -> set[str]:
    tree = ast.parse(source)
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden.update(id(x) for x in ast.walk(node))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("spamwarden"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod == "spamwarden":
                out.update(f"spamwarden.{a.name}" for a in node.names)
            elif mod.startswith("spamwarden"):
                out.add(mod)
    return out


def _package_imports(package: str) -> dict[str, set[str]]:
    files = sorted((ROOT / package).rglob("*.py")) if (ROOT / package).is_dir() else [
        ROOT / f"{package}.py"]
    return {str(p.relative_to(ROOT.parent)): _imports(p) for p in files}


def _offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{path} imports {mod}" for path, mods in _package_imports(package).items()
            for mod in sorted(mods) if mod.startswith(forbidden)]


def test_only_cli_knows_the_composition_root() -> None:
    bad = []
    for path in ROOT.rglob("*.py"):
        name = path.relative_to(ROOT).as_posix()
        if name in ("cli.py", "__main__.py", "wiring.py"):
            continue
        bad += [f"{name} imports {m}" for m in _imports(path)
                if m in ("spamwarden.cli", "spamwarden.wiring")]
    assert bad == []


@pytest.mark.parametrize(("package", "forbidden"), [
    ("milter", ("spamwarden.reputation", "spamwarden.consent", "spamwarden.training",
                "spamwarden.api", "spamwarden.rbl")),
    ("reputation", ("spamwarden.api", "spamwarden.consent", "spamwarden.milter",
                    "spamwarden.rbl")),
    ("consent", ("spamwarden.api", "spamwarden.rbl", "spamwarden.training")),
    ("rbl", ("spamwarden.api", "spamwarden.consent", "spamwarden.milter")),
    ("mail", ("spamwarden.milter", "spamwarden.reputation", "spamwarden.consent",
              "spamwarden.api", "spamwarden.rbl", "spamwarden.training")),
    ("supervisor", ("spamwarden.cli", "spamwarden.wiring")),
    ("settings", ("spamwarden.api", "spamwarden.milter", "spamwarden.reputation",
                  "spamwarden.consent", "spamwarden.rbl", "spamwarden.training")),
])
def test_arrows_point_one_way(package: str, forbidden: tuple[str, ...]) -> None:
    assert _offenders(package, forbidden) == []


def test_training_knows_only_the_milters_protocols() -> None:
    # The model implements the milter's ContentClassifier and reports SiteCounts; the
    # pipeline evaluation gets its scorer from the composition root, not the scanner.
    seen = {m for mods in _package_imports("training").values() for m in mods
            if m.startswith("spamwarden.milter")}
    assert seen <= {"spamwarden.milter.interfaces"}


def test_the_arrow_check_sees_lazy_imports() -> None:
    # The checker itself: an import inside a function counts, one under TYPE_CHECKING not.
    assert "spamwarden.milter.scanner" in _imports(ROOT / "milter" / "app.py")
    src = ("from typing import TYPE_CHECKING\n"
           "if TYPE_CHECKING:\n    from ..consent import registry\n"
           "def f() -> None:\n    from ..reputation import store\n    from .. import api\n")
    assert _imports_of(src, ["spamwarden", "milter"]) == {
        "spamwarden.reputation", "spamwarden.api"}
    assert _offenders("milter", ("spamwarden.milter.scanner",)) != []


def _module_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the package it imports, every import counted: inside
    functions and under ``TYPE_CHECKING`` too (``from . import x`` names module ``x``)."""
    def name(p: Path) -> str:
        parts = list(p.relative_to(root.parent).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    files = {name(p): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        package = list(path.relative_to(root.parent).with_suffix("").parts[:-1])
        out: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = (".".join(package[: len(package) - node.level + 1]
                                 + ([node.module] if node.module else []))
                        if node.level else node.module or "")
                out.update(f"{base}.{a.name}" if f"{base}.{a.name}" in files else base
                           for a in node.names)
        graph[mod] = {m for m in out if m in files and m != mod}
    return graph


def _loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    loops: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = stack[stack.index(v):]
            del stack[stack.index(v):]
            if len(part) > 1:
                loops.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return loops


def test_no_modules_import_each_other_in_a_loop() -> None:
    # Stricter than the package arrows: a type-only import closes a loop as well, because
    # the two files can then be read, changed and tested only together.
    assert _loops(_module_graph(ROOT)) == []


def test_the_loop_check_finds_a_type_only_loop(tmp_path: Path) -> None:
    pkg = tmp_path / "spamwarden"
    (pkg / "rbl").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "rbl" / "__init__.py").write_text("")
    (pkg / "rbl" / "responder.py").write_text("from .transfer import Record\n")
    (pkg / "rbl" / "transfer.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from .responder import ZoneSettings\n")
    (pkg / "rbl" / "zone.py").write_text("from . import transfer\n")
    assert _loops(_module_graph(pkg)) == [["spamwarden.rbl.responder",
                                           "spamwarden.rbl.transfer"]]


def test_every_supervised_service_is_a_command() -> None:
    names = [s.name for s in SERVICES]
    assert len(set(names)) == len(names)
    parser = build_parser()
    for svc in SERVICES:
        args = parser.parse_args([*svc.argv, "--config", "/nonexistent.toml"])
        assert callable(args.handler), svc


def test_supervisor_refuses_an_unknown_service() -> None:
    cfg = config_from_mapping({})
    with pytest.raises(ServiceError, match="unknown service"):
        Supervisor(cfg, only=["milter", "nosuch"])
    assert Supervisor(cfg, only=["api", "milter"]).services == ["api", "milter"]


def test_symbol_table_has_milter_and_consent_symbols() -> None:
    from spamwarden.consent.policy import DEFAULT_POINTS as CONSENT_POINTS
    from spamwarden.milter.policy import DEFAULT_POINTS

    cfg = config_from_mapping({"policy": {"symbols": {"AD_NO_CONSENT": 7, "LOCAL_RULE": 1}}})
    rows = {r["name"]: r for r in wiring.symbol_table(cfg)}
    assert set(DEFAULT_POINTS) | set(CONSENT_POINTS) | {"LOCAL_RULE"} == set(rows)
    assert rows["AD_NO_CONSENT"]["points"] == 7
    assert rows["AD_NO_CONSENT"]["default"] == CONSENT_POINTS["AD_NO_CONSENT"]
    assert rows["LOCAL_RULE"]["default"] is None


def test_consent_hooks_only_when_enabled() -> None:
    off = config_from_mapping({"consent": {"enabled": False}})
    assert wiring.complaint_hooks(off) == []
    assert wiring.address_hooks(off) == {}


def test_api_serves_listings_lookup_consent_and_metrics() -> None:
    names = [f.__module__ + ":" + f.__name__ for f in wiring.api_modules()]
    assert names == ["spamwarden.api.listings:listings_module",
                     "spamwarden.api.lookup:lookup_module",
                     "spamwarden.api.consent:consent_module",
                     "spamwarden.api.history:history_module",
                     "spamwarden.api.console:console_module",
                     "spamwarden.api.metrics:metrics_module",
                     "spamwarden.api.learn:learn_module",
                     "spamwarden.api.settings:settings_module"]
