"""aiosmtpd's own reply lines in the intake's language (spamwarden/reputation/protocol_replies.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import aiosmtpd.lmtp
import aiosmtpd.smtp
import pytest

from spamwarden.i18n import MESSAGES
from spamwarden.reputation.protocol_replies import PROTOCOL_LINES, localize

# lines aiosmtpd writes that carry no human text: names and protocol keywords
_MACHINE = {
    "220 X X",  # greeting: our host name and the software's name
    "250 X",  # HELO: our host name
    "250-X", "250-SIZE X", "250-8BITMIME", "250-SMTPUTF8", "250-STARTTLS", "250-AUTH X",
    "250 HELP",  # EHLO keywords (RFC 5321 §4.1.1.1)
}
# lines the intake never sends: it has no TLS (STARTTLS answers 454, AUTH 538 before any of
# the AUTH exchange) and its handle_exception answers intake.internal itself
_UNREACHABLE = {
    "220 Ready to start TLS",
    "235 2.7.0 Authentication successful", "535 5.7.8 Authentication credentials invalid",
    "501 Not enough value", "501 Too many values", "504 5.5.4 Unrecognized authentication type",
    "501 5.7.0 Auth aborted", "501 5.5.2 Can't decode base64", "501 5.5.2 Can't split auth value",
    "500 Error: (X) X", "500 Error: Cannot describe error",
}
_STATUS = re.compile(r"[2-5]\d\d[ -]")


def _status_lines(path: Path) -> set[str]:
    """Every reply line written as a literal in an aiosmtpd module, with ``X`` for what
    is filled in at run time (an f-string field, a ``{}``, a concatenated variable)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    parts |= {id(n.left) for n in ast.walk(tree) if isinstance(n, ast.BinOp)}
    out: set[str] = set()
    for node in ast.walk(tree):
        s: str | None = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in parts:
            s = re.sub(r"^\{\}", "250", node.value).replace("{}", "X")
        elif isinstance(node, ast.JoinedStr):
            s = "".join(str(v.value) if isinstance(v, ast.Constant) else "X"
                        for v in node.values)
        elif (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add)
              and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)):
            s = node.left.value + "X"
        if s is not None and _STATUS.match(s):
            out.add(s)
    return out


def _aiosmtpd_lines() -> set[str]:
    lines = set()
    for mod in (aiosmtpd.smtp, aiosmtpd.lmtp):
        assert mod.__file__
        lines |= _status_lines(Path(mod.__file__))
    return lines


def test_the_scan_finds_aiosmtpd_lines() -> None:
    lines = _aiosmtpd_lines()
    # what the intake tests meet; the scan must see them or the test below proves nothing
    assert {"503 Error: need RCPT command", "552 Error: Too much mail data", "221 Bye",
            "250 OK", '500 Error: command "X" not recognized'} <= lines
    assert "250 Syntax: X" in lines and "502 Could not VRFY X" in lines


def test_every_human_line_of_the_installed_aiosmtpd_is_translated() -> None:
    # a new or reworded line in an aiosmtpd upgrade fails here (it would go out in English)
    untranslated = sorted(
        line for line in _aiosmtpd_lines() - _MACHINE - _UNREACHABLE
        if localize("vi", line) == line)
    assert untranslated == []


def test_machine_lines_are_left_alone() -> None:
    for line in ("250-SIZE 300000", "250 HELP", "220 intake.example.vn Python SMTP 1.4.6",
                 "250-8BITMIME", "250 intake.example.vn"):
        assert localize("vi", line) == line


@pytest.mark.parametrize(("pattern", "msg_id"), PROTOCOL_LINES)
def test_every_line_names_a_catalogue_text(pattern: str, msg_id: str) -> None:
    assert msg_id in MESSAGES and msg_id.startswith("intake.smtp.")
    names = set(re.compile(pattern).groupindex)
    assert names == {n for n in re.findall(r"\{(\w+)\}", MESSAGES[msg_id]["en"])}


def test_codes_stay_and_text_is_vietnamese_ascii() -> None:
    assert localize("vi", "503 Error: need RCPT command") == (
        "503 Loi: vui long gui lenh RCPT truoc")
    assert localize("vi", "552 Error: Too much mail data") == (
        "552 Loi: thu vuot qua kich thuoc toi da cho phep")
    assert localize("vi", "421 4.7.0 DATA sent too many times") == (
        "421 4.7.0 Lenh DATA duoc gui qua nhieu lan")
    assert localize("vi", "221 Bye") == "221 Tam biet"
    # HELP's 250 and a 501 share their English words, not their meaning
    assert localize("vi", "250 Syntax: HELO hostname") == "250 Cu phap: HELO hostname"
    assert localize("vi", "501 Syntax: HELO hostname") == (
        "501 Sai cu phap; cu phap dung: HELO hostname")
    # a value from the client is folded to ASCII like the rest
    assert localize("vi", "502 Could not VRFY <người@ví-dụ.vn>") == (
        "502 Khong the kiem tra (VRFY) <nguoi@vi-du.vn>")


def test_english_and_unknown_lines_pass_unchanged() -> None:
    assert localize("en", "503 Error: need RCPT command") == "503 Error: need RCPT command"
    assert localize("vi", "250 2.0.0 Da nhan bao cao, ma abc") == (
        "250 2.0.0 Da nhan bao cao, ma abc")
    # a multi-line reply (LMTP, one line per recipient) is the intake's own: not touched
    assert localize("vi", "250 OK\r\n250 OK") == "250 OK\r\n250 OK"
