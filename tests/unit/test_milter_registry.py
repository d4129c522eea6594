"""The check registry: checks found by module, symbols declared once, everything derived."""

from __future__ import annotations

import inspect
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import spamwarden.milter.checks as checks_package
from spamwarden.cli import main
from spamwarden.config import config_from_mapping
from spamwarden.errors import ConfigError, SpamwardenError
from spamwarden.milter import registry
from spamwarden.milter.interfaces import Envelope
from spamwarden.milter.scanner import Scanner
from spamwarden.resolver import StaticResolver

DOCS = Path(__file__).resolve().parents[2] / "docs" / "symbols.md"
MESSAGE = (b"From: Alice <alice@example.org>\r\nTo: bob@test.example\r\n"
           b"Subject: BUY NOW\r\nMessage-ID: <m1@example.org>\r\n\r\nhello\r\n")
ENV = Envelope(client_ip="192.0.2.7", helo="mail.example.org", mail_from="alice@example.org",
               rcpts=["bob@test.example"])

# A check as a contributor would write it: one module, nothing else edited.
SHOUT_CHECK = '''
from spamwarden.milter.registry import CheckBase, CheckDecl, Phase
from spamwarden.milter.symbols import SymbolSpec


class ShoutCheck(CheckBase):
    def __init__(self, parts):
        self.points = parts.points

    def at_message(self, msg):
        subject = msg.view.subject or ""
        if subject.isupper():
            return [self.points.make("SUBJECT_ALL_CAPS", subject[:40])]
        return ()


CHECK = CheckDecl(
    name="shout",
    order=60,
    symbols=(SymbolSpec("SUBJECT_ALL_CAPS", 1.5, "the subject is all capitals", "content"),),
    phases=frozenset({Phase.MESSAGE}),
    build=ShoutCheck,
)
'''


def cfg(**policy: object) -> object:
    return config_from_mapping({"milter": {"authserv_id": "mx.test.example"},
                                "policy": policy}, source="<test>")


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    registry._builtin.cache_clear()
    yield
    registry._builtin.cache_clear()


@pytest.fixture
def dropped_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               fresh_registry: None) -> Iterator[Path]:
    """One new module beside the built-in checks (the package's search path extended
    to a directory holding just that file)."""
    extra = tmp_path / "checks"
    extra.mkdir()
    (extra / "shout.py").write_text(textwrap.dedent(SHOUT_CHECK))
    monkeypatch.setattr(checks_package, "__path__", [*checks_package.__path__, str(extra)])
    yield extra


def test_a_new_check_module_is_found_scored_configured_and_listed(
        dropped_in: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = [d.name for d in registry.builtin_checks()]
    assert names.index("shout") == names.index("policies") + 2  # order 60: after consent (55)
    scanner = Scanner(cfg(), resolver=StaticResolver(), authenticate=None, lookup_threads=0)
    verdict = scanner.scan(MESSAGE, ENV)
    assert [(s.name, s.points) for s in verdict.symbols] == [("SUBJECT_ALL_CAPS", 1.5)]
    status = dict(verdict.add_headers)["X-Spam-Status"]
    assert "tests=SUBJECT_ALL_CAPS " in status
    scanner.close()
    # [policy.symbols] knows it at once
    scanner = Scanner(cfg(symbols={"subject_all_caps": 4.0}), resolver=StaticResolver(),
                      authenticate=None, lookup_threads=0)
    assert scanner.scan(MESSAGE, ENV).score == 4.0
    scanner.close()
    # so do `spamwarden symbols` and the generated docs
    conf = tmp_path / "sw.toml"
    conf.write_text("")
    assert main(["symbols", "--json", "--config", str(conf)]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["SUBJECT_ALL_CAPS"] == {"name": "SUBJECT_ALL_CAPS", "points": 1.5,
                                        "default": 1.5, "group": "content",
                                        "description": "the subject is all capitals"}
    assert "| `SUBJECT_ALL_CAPS` | 1.5 | the subject is all capitals |" in \
        registry.symbols_markdown()


def test_without_the_module_the_symbol_is_unknown(fresh_registry: None) -> None:
    assert "shout" not in [d.name for d in registry.builtin_checks()]
    with pytest.raises(ConfigError, match="SUBJECT_ALL_CAPS"):
        Scanner(cfg(symbols={"SUBJECT_ALL_CAPS": 4.0}), resolver=StaticResolver(),
                lookup_threads=0)


def test_an_unknown_symbol_override_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"DMARC_REJECTT, SPF_FAILS"):
        Scanner(cfg(symbols={"SPF_FAILS": 1.0, "DMARC_REJECTT": 0.0, "DKIM_VALID": 0.0}),
                resolver=StaticResolver(), lookup_threads=0)


def test_checks_run_in_a_fixed_order() -> None:
    assert [d.name for d in registry.builtin_checks()] == [
        "auth", "classifier", "sarules", "listings", "dnsbl", "policies", "consent", "settings",
        "structure", "trust", "ledger"]


def test_a_symbol_declared_twice_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            fresh_registry: None) -> None:
    (tmp_path / "twice.py").write_text(textwrap.dedent('''
        from spamwarden.milter.registry import CheckDecl
        from spamwarden.milter.symbols import SymbolSpec

        CHECK = CheckDecl(name="twice", order=1,
                          symbols=(SymbolSpec("DBL_OWN", 1.0, "again", "x"),))
    '''))
    monkeypatch.setattr(checks_package, "__path__", [*checks_package.__path__, str(tmp_path)])
    with pytest.raises(SpamwardenError, match="DBL_OWN"):
        registry.discover(checks_package)


def test_symbol_names_are_spelled_out_in_their_module() -> None:
    """Every name can be found with grep: the module that declares it spells it."""
    for decl in registry.builtin_checks():
        module = inspect.getmodule(decl.build) if decl.build is not None else None
        source = inspect.getsource(module) if module is not None else ""
        if not source:
            source = Path(checks_package.__path__[0], f"{decl.name}.py").read_text()
        for spec in decl.symbols:
            assert f'"{spec.name}"' in source, (decl.name, spec.name)


def test_docs_symbols_md_is_up_to_date() -> None:
    assert DOCS.read_text() == registry.symbols_markdown(), (
        "docs/symbols.md is out of date: spamwarden symbols --markdown > docs/symbols.md")


def test_symbols_only_the_configuration_knows_are_declared_through_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A check whose symbols come from configured files (rules) declares them from the
    configuration: [policy.symbols] may then name them, and `spamwarden symbols` lists them."""
    (tmp_path / "local_rules.py").write_text(textwrap.dedent('''
        from spamwarden.milter.registry import CheckDecl
        from spamwarden.milter.symbols import SymbolSpec

        def rules(cfg):
            return (SymbolSpec("LOCAL_RULE_" + str(int(cfg.policy.tag_threshold)), 1.0,
                               "a rule from the operator's files", "rules"),)

        CHECK = CheckDecl(name="local_rules", order=70, symbols=(), phases=frozenset(),
                          configured_symbols=rules)
    '''))
    monkeypatch.setattr(checks_package, "__path__", [*checks_package.__path__, str(tmp_path)])
    scanner = Scanner(cfg(tag_threshold=5.0, symbols={"LOCAL_RULE_5": 2.0}),
                      resolver=StaticResolver(), lookup_threads=0)
    assert scanner.points.points("LOCAL_RULE_5") == 2.0
    scanner.close()
    with pytest.raises(ConfigError, match="LOCAL_RULE_5"):
        Scanner(cfg(tag_threshold=6.0, symbols={"LOCAL_RULE_5": 2.0}),
                resolver=StaticResolver(), lookup_threads=0)
    conf = tmp_path / "sw.toml"
    conf.write_text("[policy]\ntag_threshold = 5.0\n")
    assert main(["symbols", "--json", "--config", str(conf)]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["LOCAL_RULE_5"]["default"] == 1.0 and rows["LOCAL_RULE_5"]["group"] == "rules"
    assert "Further symbols come from its configuration" in registry.symbols_markdown()
