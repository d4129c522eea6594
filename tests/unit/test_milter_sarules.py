"""The sarules milter check: SpamAssassin rule hits as symbols in the X-Spam-* headers."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from spamwarden.config import config_from_mapping
from spamwarden.milter.interfaces import Envelope
from spamwarden.milter.scanner import Scanner
from spamwarden.resolver import StaticResolver

MESSAGE = (b"From: Alice <alice@example.org>\r\nTo: bob@test.example\r\n"
           b"Subject: Cheap watches\r\nMessage-ID: <m1@example.org>\r\n\r\n"
           b"Buy cheap watches today\r\n")
ENV = Envelope(client_ip="192.0.2.7", helo="mail.example.org", mail_from="alice@example.org",
               rcpts=["bob@test.example"])


def scanner(tmp_path: Path, *, enabled: bool, rules: str, **settings: object) -> Scanner:
    """A scanner running ``rules`` as the site's local.cf; ``settings``: more of
    ``[rules]``."""
    local = tmp_path / "local.cf"
    local.write_text(rules)
    cfg = config_from_mapping({
        "service": {"state_dir": str(tmp_path / "state")},
        "milter": {"authserv_id": "mx.test.example"},
        "rules": {"enabled": enabled, "system_rules": False, "paths": [str(local)],
                  **settings},
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

        def recording(*args: object, **kwargs: object) -> object:
            threads.append(threading.current_thread().name)
            return real(*args, **kwargs)  # type: ignore[arg-type]

        check.engine.check = recording  # type: ignore[method-assign]
        verdict = s.scan(MESSAGE, ENV)
    finally:
        s.close()
    assert any(x.name == "CHEAP_WATCHES" for x in verdict.symbols)
    assert len(threads) == 1 and threads[0].startswith("spamwarden-rules"), threads
    assert threads[0] != threading.current_thread().name


def test_the_mail_from_is_spamassassins_envelope_from(tmp_path: Path) -> None:
    """The MTA's MAIL FROM, not a header, is EnvelopeFrom: a Return-Path matching From
    does not hide a different envelope sender (HEADER_FROM_DIFFERENT_DOMAINS)."""
    rules = ("header HEADER_FROM_DIFFERENT_DOMAINS eval:check_equal_from_domains()\n"
             "score HEADER_FROM_DIFFERENT_DOMAINS 1\n")
    raw = b"Return-Path: <alice@example.org>\r\n" + MESSAGE
    env = Envelope(client_ip="192.0.2.7", helo="mail.example.org",
                   mail_from="bounces@lists.example.net", rcpts=["bob@test.example"])
    s = scanner(tmp_path, enabled=True, rules=rules)
    try:
        differs = s.scan(raw, env).symbols
        same = s.scan(raw, ENV).symbols
    finally:
        s.close()
    assert any(x.name == "HEADER_FROM_DIFFERENT_DOMAINS" for x in differs)
    assert not any(x.name == "HEADER_FROM_DIFFERENT_DOMAINS" for x in same)


def test_an_offline_check_lets_the_engine_guess_the_envelope_sender() -> None:
    """A sender read from Return-Path is a guess (the engine then reads the headers as
    SpamAssassin does); one given on the command line is the envelope."""
    from spamwarden.mail import parse_message
    from spamwarden.milter.check import envelope_for_file

    view = parse_message(b"Return-Path: <alice@example.org>\r\n" + MESSAGE)
    guessed, _ = envelope_for_file(view, client_ip=None, helo=None, mail_from=None)
    given, _ = envelope_for_file(view, client_ip=None, helo=None,
                                 mail_from="bounces@lists.example.net")
    assert (guessed.mail_from, guessed.mail_from_known) == ("alice@example.org", False)
    assert (given.mail_from, given.mail_from_known) == ("bounces@lists.example.net", True)


def test_the_connections_received_field_is_written_as_postfix_writes_it() -> None:
    from spamwarden.milter.checks.sarules import connection_received

    env = Envelope(client_ip="192.0.2.7", client_name="mail.example.org", helo="helo.example.org",
                   receiver="mx.test.example", queue_id="4ABC123", mail_from="a@example.org")
    assert connection_received(env, 0.0) == (
        "from helo.example.org (mail.example.org [192.0.2.7]) by mx.test.example (Postfix)"
        " with ESMTP id 4ABC123; Thu, 01 Jan 1970 00:00:00 -0000")
    # no verified name: "unknown" (Postfix gives a milter "[ip]" or nothing); TLS and
    # authentication as Postfix marks them; IPv6 with its "IPv6:" tag; no HELO: the name
    for name in ("", "[192.0.2.7]", "unknown"):
        env2 = Envelope(client_ip="2001:db8::7", client_name=name, helo="",
                        receiver="mx.test.example", tls=True, authenticated=True)
        assert connection_received(env2, 0.0) == (
            "from unknown (unknown [IPv6:2001:db8::7]) by mx.test.example (Postfix)"
            " with ESMTPSA; Thu, 01 Jan 1970 00:00:00 -0000")
    # a HELO cannot break the field out of one line
    env3 = Envelope(client_ip="192.0.2.7", helo="evil\r\nX-Injected: 1", receiver="mx")
    value = connection_received(env3, 0.0)
    assert value is not None and "\n" not in value and " X-Injected" not in value
    # an offline check (no MTA host name) or no client address: nothing is added
    assert connection_received(Envelope(client_ip="192.0.2.7", helo="h"), 0.0) is None
    assert connection_received(Envelope(receiver="mx"), 0.0) is None


def test_a_helo_dressed_as_a_trusted_relay_does_not_move_the_client_address() -> None:
    # The HELO is the client's to choose: written into the field, it must not make the
    # relay parser read a loopback or private address (always trusted) as the client's.
    from spamwarden.milter.checks.sarules import connection_received
    from spamwarden.rules._relays import parse_received

    for helo in ("x (localhost [127.0.0.1]) by mx", "localhost [127.0.0.1]",
                 "a)(b [10.0.0.1]", "[127.0.0.1]"):
        value = connection_received(Envelope(client_ip="192.0.2.7", helo=helo,
                                             receiver="mx.test.example"), 0.0)
        assert value is not None
        relay = parse_received(value)
        assert getattr(relay, "ip", None) == "192.0.2.7", (helo, value)


def test_the_rules_see_the_connecting_hop_the_message_does_not_get_it(tmp_path: Path) -> None:
    """Postfix passes the milter no Received field for the connection; the engine is
    given one, so the connecting client is the first relay (RDNS_NONE judges it), and
    the message itself gains no field."""
    rules = ("header LOCAL_RDNS_NONE X-Spam-Relays-Untrusted =~ /^[^\\]]+ rdns= /\n"
             "header LOCAL_FIRST X-Spam-Relays-Untrusted =~ "
             "/^\\[ ip=192\\.0\\.2\\.7 rdns= helo=mail\\.example\\.org by=mx\\.test\\.example /\n"
             "header LOCAL_RCVD Received =~ /^from mail\\.example\\.org \\(unknown /\n")
    env = Envelope(client_ip="192.0.2.7", client_name="[192.0.2.7]", helo="mail.example.org",
                   receiver="mx.test.example", queue_id="4ABC", mail_from="alice@example.org",
                   rcpts=["bob@test.example"])
    s = scanner(tmp_path, enabled=True, rules=rules)
    try:
        online = {x.name for x in s.scan(MESSAGE, env).symbols}
        verdict = s.scan(MESSAGE, ENV)  # no MTA host name: nothing added
    finally:
        s.close()
    assert {"LOCAL_RDNS_NONE", "LOCAL_FIRST", "LOCAL_RCVD"} <= online
    assert not {x.name for x in verdict.symbols} & {"LOCAL_RDNS_NONE", "LOCAL_FIRST", "LOCAL_RCVD"}
    assert all(name.lower() != "received" for name, _ in verdict.add_headers)


def test_a_message_past_the_time_limit_is_scored_and_logged_with_its_queue_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """60 To fields of blanks make SpamAssassin's __PDS_TONAME_EQ_TOLOCAL cubic in ``re``
    (hours): the rules stop at ``rules.time_limit`` and the rest of the message counts."""
    s = scanner(tmp_path, enabled=True, time_limit="0.3s", rules=(
        "header NAME_EQ_LOCAL To:raw =~ /^\\s*['\"]?([^'\"]+)['\"]? <?\\1\\@/\n"
        "body CHEAP_WATCHES /cheap watches/i\nscore CHEAP_WATCHES 2.5\n"))
    hostile = b"".join(b"To:" + b" " * 990 + b"\r\n" for _ in range(60)) + b"To: b@\r\n"
    raw = MESSAGE.replace(b"To: bob@test.example\r\n", hostile)
    env = dataclasses.replace(ENV, queue_id="4AbC1d2")
    try:
        with caplog.at_level(logging.WARNING, logger="spamwarden.milter"):
            verdict = s.scan(raw, env)
    finally:
        s.close()
    names = {x.name for x in verdict.symbols}
    assert {"CHEAP_WATCHES", "TIME_LIMIT_EXCEEDED"} <= names and "NAME_EQ_LOCAL" not in names
    lines = [r for r in caplog.records if r.getMessage() == "sarules_time_limit"]
    assert len(lines) == 1
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["queue_id"] == "4AbC1d2" and "NAME_EQ_LOCAL" in fields["detail"]


def test_hostile_messages_cannot_hold_every_engine_thread(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """As many hostile messages as the engine has threads, each seconds of matching:
    past ``rules.slow_after`` one goes on in the slow lane, the others find it taken and
    stop there (TIME_LIMIT_EXCEEDED, ``slow_lane=busy`` in the log), and a message that
    comes after them is scored while the one in the lane still runs, not after it."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from spamwarden.milter.checks.sarules import SCAN_THREADS, SpamAssassinRulesCheck

    s = scanner(tmp_path, enabled=True, time_limit="3s", slow_after="0.1s", slow_lanes=1,
                rules=("header NAME_EQ_LOCAL To:raw =~ /^\\s*['\"]?([^'\"]+)['\"]? <?\\1\\@/\n"
                       "body CHEAP_WATCHES /cheap watches/i\nscore CHEAP_WATCHES 2.5\n"))
    hostile = b"".join(b"To:" + b" " * 990 + b"\r\n" for _ in range(60)) + b"To: b@\r\n"
    raw = MESSAGE.replace(b"To: bob@test.example\r\n", hostile)
    n = SCAN_THREADS + 1  # (a thread for each core and one for the lane's place)
    try:
        check = next(c for d, c in s.checks if d.name == "sarules")
        assert isinstance(check, SpamAssassinRulesCheck)
        started = threading.Semaphore(0)
        real = check.engine.check

        def entering(*args: object, **kwargs: object) -> object:
            started.release()
            return real(*args, **kwargs)  # type: ignore[arg-type]

        check.engine.check = entering  # type: ignore[method-assign]
        with caplog.at_level(logging.WARNING, logger="spamwarden.milter"), \
                ThreadPoolExecutor(n + 1) as callers:  # (libmilter's connection threads)
            slow = [callers.submit(s.scan, raw, dataclasses.replace(ENV, queue_id=f"H{i}"))
                    for i in range(n)]
            for _ in range(n):
                assert started.acquire(timeout=60)
            ordinary = callers.submit(s.scan, MESSAGE, dataclasses.replace(ENV, queue_id="OK1"))
            verdict = ordinary.result(timeout=60)
            still_running = {f"H{i}" for i, f in enumerate(slow) if not f.done()}
            hostile_verdicts = [f.result(timeout=60) for f in slow]
    finally:
        s.close()
    assert "CHEAP_WATCHES" in {x.name for x in verdict.symbols}
    assert "TIME_LIMIT_EXCEEDED" not in {x.name for x in verdict.symbols}
    for v in hostile_verdicts:
        assert {"CHEAP_WATCHES", "TIME_LIMIT_EXCEEDED"} <= {x.name for x in v.symbols}
    lines = [r.fields for r in caplog.records  # type: ignore[attr-defined]
             if r.getMessage() == "sarules_time_limit"]
    assert sorted(f.get("slow_lane") or "" for f in lines) == [""] + ["busy"] * (n - 1)
    assert {f["queue_id"] for f in lines} == {f"H{i}" for i in range(n)}
    # the one that went on in the lane was still matching when the ordinary one was done
    in_lane = [f["queue_id"] for f in lines if not f.get("slow_lane")]
    assert in_lane[0] in still_running


def test_the_start_line_names_the_limits(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``sarules_loaded`` says how long a message may match and where the slow lane is."""
    with caplog.at_level(logging.INFO, logger="spamwarden.milter"):
        s = scanner(tmp_path, enabled=True, time_limit="4s", slow_after="0.2s", slow_lanes=2,
                    rules="body CHEAP_WATCHES /cheap watches/i\n")
    s.close()
    lines = [r.fields for r in caplog.records  # type: ignore[attr-defined]
             if r.getMessage() == "sarules_loaded"]
    assert len(lines) == 1
    assert (lines[0]["time_limit"], lines[0]["slow_after"], lines[0]["slow_lanes"]) == (4.0, 0.2, 2)
