"""The sarules milter check: SpamAssassin rule hits as symbols in the X-Spam-* headers."""

from __future__ import annotations

from pathlib import Path

from spamwarden.config import config_from_mapping
from spamwarden.milter.interfaces import Envelope
from spamwarden.milter.scanner import Scanner
from spamwarden.resolver import StaticResolver

MESSAGE = (b"From: Alice <alice@example.org>\r\nTo: bob@test.example\r\n"
           b"Subject: Cheap watches\r\nMessage-ID: <m1@example.org>\r\n\r\n"
           b"Buy cheap watches today\r\n")
ENV = Envelope(client_ip="192.0.2.7", helo="mail.example.org", mail_from="alice@example.org",
               rcpts=["bob@test.example"])


def scanner(tmp_path: Path, *, enabled: bool, rules: str) -> Scanner:
    local = tmp_path / "local.cf"
    local.write_text(rules)
    cfg = config_from_mapping({
        "service": {"state_dir": str(tmp_path / "state")},
        "milter": {"authserv_id": "mx.test.example"},
        "rules": {"enabled": enabled, "system_rules": False, "paths": [str(local)]},
    }, source="<test>")
    return Scanner(cfg, resolver=StaticResolver(), authenticate=None, lookup_threads=0)


def test_hits_are_symbols_with_their_scores_in_the_headers(tmp_path: Path) -> None:
    s = scanner(tmp_path, enabled=True, rules=(
        "body CHEAP_WATCHES /cheap watches/i\nscore CHEAP_WATCHES 2.5\n"
        "describe CHEAP_WATCHES Sells cheap watches\n"
        "header __FROM_ALICE From =~ /alice/\n"
        "meta ALICE_SELLS __FROM_ALICE && CHEAP_WATCHES\nscore ALICE_SELLS 0 0 1.25 0\n"
        "body NOT_HIT /nothing like this/\n"
    ))
    try:
        verdict = s.scan(MESSAGE, ENV)
    finally:
        s.close()
    got = {(x.name, x.points, x.detail) for x in verdict.symbols}
    assert ("CHEAP_WATCHES", 2.5, "Sells cheap watches") in got
    assert ("ALICE_SELLS", 1.25, "") in got
    assert not {n for n, _, _ in got} & {"NOT_HIT", "__FROM_ALICE"}
    status = dict(verdict.add_headers)["X-Spam-Status"]
    assert "ALICE_SELLS" in status and "CHEAP_WATCHES" in status
    assert verdict.score >= 3.7


def test_disabled_by_default_and_when_off(tmp_path: Path) -> None:
    assert config_from_mapping({}, source="<test>").rules.enabled is False
    s = scanner(tmp_path, enabled=False, rules="body CHEAP_WATCHES /cheap watches/i\n")
    try:
        assert "sarules" not in [d.name for d, _ in s.checks]
        assert not any(x.name == "CHEAP_WATCHES" for x in s.scan(MESSAGE, ENV).symbols)
    finally:
        s.close()


def test_a_rule_named_like_a_declared_symbol_is_left_out(tmp_path: Path) -> None:
    s = scanner(tmp_path, enabled=True, rules="body BAYES_99 /cheap/i\nscore BAYES_99 9\n")
    try:
        assert not any(x.name == "BAYES_99" and x.points == 9 for x in s.scan(MESSAGE, ENV).symbols)
    finally:
        s.close()


def test_the_engine_runs_on_the_checks_own_threads(tmp_path: Path) -> None:
    """Never on the caller's (libmilter's) thread: Hyperscan crashed there under load."""
    import threading

    from spamwarden.milter.checks.sarules import SpamAssassinRulesCheck

    s = scanner(tmp_path, enabled=True, rules="body CHEAP_WATCHES /cheap watches/i\n")
    try:
        check = next(c for d, c in s.checks if d.name == "sarules")
        assert isinstance(check, SpamAssassinRulesCheck)
        threads: list[str] = []
        real = check.engine.check

        def recording(*args: object) -> object:
            threads.append(threading.current_thread().name)
            return real(*args)  # type: ignore[arg-type]

        check.engine.check = recording  # type: ignore[method-assign]
        verdict = s.scan(MESSAGE, ENV)
    finally:
        s.close()
    assert any(x.name == "CHEAP_WATCHES" for x in verdict.symbols)
    assert len(threads) == 1 and threads[0].startswith("spamwarden-rules"), threads
    assert threads[0] != threading.current_thread().name
