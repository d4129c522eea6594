"""`spamwarden check` and the Scanner shared with the milter (offline, injected DNS)."""

from __future__ import annotations

import json
import random
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from spamwarden.cli import main
from spamwarden.config import config_from_mapping
from spamwarden.milter.auth import authenticate
from spamwarden.milter.check import envelope_for_file, scan_file, to_crlf
from spamwarden.milter.scanner import Scanner
from spamwarden.resolver import StaticResolver

MESSAGE = (
    b"From MAILER-DAEMON Thu Jan  1 00:00:00 2024\n"
    b"Return-Path: <news@example.org>\n"
    b"Received: from out.example.org (out.example.org [192.0.2.44])\n"
    b"\tby mx.example.net (Postfix) with ESMTPS id 4X1\n"
    b"Received: from internal (internal [10.0.0.1]) by out.example.org\n"
    b"From: News <news@example.org>\n"
    b"Subject: =?utf-8?q?Tin_t=E1=BB=A9c?=\n"
    b"X-Spam-Flag: YES\n"
    b"\n"
    b"Hello\n"
)

ZONE = {
    ("example.org", "TXT"): [b"v=spf1 ip4:192.0.2.44 -all"],
    ("_dmarc.example.org", "TXT"): [b"v=DMARC1; p=quarantine"],
}


def scanner(**cfg: Any) -> Scanner:
    return Scanner(config_from_mapping({"milter": {"authserv_id": "mx.example.net"}, **cfg}),
                   resolver=StaticResolver(ZONE), authenticate=authenticate)


def test_envelope_taken_from_headers_when_not_given() -> None:
    sc = scanner()
    verdict, env, notes = scan_file(sc, MESSAGE)
    assert (env.client_ip, env.helo, env.mail_from) == ("192.0.2.44", "out.example.org",
                                                        "news@example.org")
    assert len(notes) == 3
    assert verdict.action == "accept"
    assert [s.name for s in verdict.symbols] == ["SPF_PASS", "DKIM_NONE", "DMARC_PASS"]
    assert ("X-Spam-Flag", 1) in verdict.remove_headers


def test_options_win_over_headers_and_spf_fail_is_seen() -> None:
    verdict, _, notes = scan_file(scanner(), MESSAGE, client_ip="203.0.113.5", helo="x.test",
                                    mail_from="news@example.org")
    assert notes == []
    names = [s.name for s in verdict.symbols]
    assert "SPF_FAIL" in names and "DMARC_QUARANTINE" in names
    assert verdict.action == "quarantine"


def test_mbox_line_dropped_and_crlf() -> None:
    assert to_crlf(b"a\nb\r\nc") == b"a\r\nb\r\nc"
    rnd = random.Random(3)
    for _ in range(5000):  # as re.sub(rb"\r?\n", b"\r\n", ...) gives it
        data = bytes(rnd.choice(b"a\r\n") for _ in range(rnd.randint(0, 12)))
        assert to_crlf(data) == re.sub(rb"\r?\n", b"\r\n", data), data
    sc = scanner()
    view = sc.parse(to_crlf(MESSAGE.split(b"\n", 1)[1]))
    env, _ = envelope_for_file(view, client_ip=None, helo=None, mail_from="")
    assert env.mail_from == "" and env.client_ip == "192.0.2.44"


def test_oversize_file_is_not_scored() -> None:
    sc = scanner(milter={"authserv_id": "mx.example.net", "max_message_bytes": 100})
    verdict, _, _ = scan_file(sc, MESSAGE + b"x" * 200)
    assert not verdict.scored and verdict.action == "accept"
    assert verdict.add_headers[0][0] == "X-Spam-Note"


def test_scanner_is_thread_safe() -> None:
    sc = scanner()
    results: list[Any] = []
    errors: list[BaseException] = []

    def work(ip: str) -> None:
        try:
            for _ in range(20):
                v, _, _ = scan_file(sc, MESSAGE, client_ip=ip)
                results.append((ip, v.action, tuple(s.name for s in v.symbols)))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(ip,))
               for ip in ("192.0.2.44", "203.0.113.5") * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert len(results) == 80
    for ip, action, names in results:
        if ip == "192.0.2.44":
            assert (action, names) == ("accept", ("SPF_PASS", "DKIM_NONE", "DMARC_PASS"))
        else:
            assert action == "quarantine" and "SPF_FAIL" in names


@pytest.fixture
def offline_config(tmp_path: Path) -> Path:
    """A config whose DNS and Redis are loopback ports nobody listens on."""
    cfg = tmp_path / "sw.toml"
    cfg.write_text(
        '[dns]\nnameservers = ["127.0.0.1:9"]\ntimeout = 0.3\n'
        '[redis]\nurl = "redis://127.0.0.1:9/0"\ntimeout = 0.3\n'
        '[milter]\nauthserv_id = "mx.example.net"\n'
        f'[training]\nmodel = "{tmp_path / "missing.skops"}"\n'
    )
    return cfg


def test_check_command_json(offline_config: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    msg = tmp_path / "m.eml"
    msg.write_bytes(MESSAGE)
    rc = main(["check", str(msg), "--config", str(offline_config), "--json",
               "--client-ip", "192.0.2.44", "--mail-from", "news@example.org"])
    assert rc == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    obj = json.loads(out)
    assert obj["envelope"]["client_ip"] == "192.0.2.44"
    assert obj["action"] == "accept"
    # DNS does not answer: temperror, never pass or fail
    assert obj["auth"]["spf"]["result"] == "temperror"
    assert {s["name"] for s in obj["symbols"]} >= {"SPF_TEMPERROR", "DMARC_TEMPERROR"}
    unavailable = " ".join(obj["unavailable"])
    assert "classifier" in unavailable and "listings" in unavailable
    assert any(n == "X-Spam-Status" for n, _ in obj["add_headers"])


def test_check_command_text(offline_config: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    msg = tmp_path / "m.eml"
    msg.write_bytes(MESSAGE)
    assert main(["check", str(msg), "--config", str(offline_config),
                 "--client-ip", "192.0.2.44"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("action: accept\nscore: ")
    assert "SPF_TEMPERROR" in out and "spf=temperror" in out
    assert "unavailable: classifier" in out


def test_check_command_missing_file(offline_config: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "/nonexistent/m.eml", "--config", str(offline_config)]) == 1
    assert "/nonexistent/m.eml" in capsys.readouterr().err


def test_symbols_command_applies_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "sw.toml"
    cfg.write_text("[policy.symbols]\nBAYES_99 = 7.5\nLOCAL_RULE = 2.0\n")
    assert main(["symbols", "--json", "--config", str(cfg)]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["BAYES_99"]["points"] == 7.5 and rows["BAYES_99"]["default"] == 5.0
    assert rows["LOCAL_RULE"]["points"] == 2.0 and rows["LOCAL_RULE"]["default"] is None
    assert rows["DMARC_REJECT"]["points"] == 15.0
    assert all(r["description"] for n, r in rows.items() if n != "LOCAL_RULE")
