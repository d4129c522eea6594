"""Log lines: key=value or JSON, one per event, written to the current stderr."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from spamwarden.logs import configure_logging, event, for_message, kv


@pytest.fixture(autouse=True)
def _restore_root() -> object:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:], _ = saved[0], root.setLevel(saved[1])


def test_kv_quotes_what_needs_quoting() -> None:
    assert kv(queue_id="4Xyz", score=7.5, reason="no consent", empty="", skip=None) == (
        'queue_id=4Xyz score=7.5 reason="no consent" empty=""'
    )


@pytest.mark.parametrize(("value", "text"), [
    # what a terminal or a log viewer would act on: every control character, DEL, C1
    # controls, and format characters such as a right-to-left override, escaped as \xNN
    # (\uNNNN, \UNNNNNNNN past 0xff) inside a quoted value
    ("x\b\b\x1bc\x07\x7fadmin@example.org", '"x\\x08\\x08\\x1bc\\x07\\x7fadmin@example.org"'),
    ("a\rb", '"a\\x0db"'),
    ("\x00", '"\\x00"'),
    ("a\x85b\x9bc", '"a\\x85b\\x9bc"'),
    ("evil\u202etxt.exe", '"evil\\u202etxt.exe"'),
    ("a\u2028b", '"a\\u2028b"'),
    ("x\U000e0041", '"x\\U000e0041"'),
    # a backslash inside a quoted value is escaped, so no escape can be forged
    ("a b\\x1b", '"a b\\\\x1b"'),
])
def test_kv_escapes_what_is_not_printable(value: str, text: str) -> None:
    assert kv(v=value) == f"v={text}"


@pytest.mark.parametrize(("value", "text"), [
    # unchanged: ordinary values, and those quoted before
    ("plain", "plain"),
    ("tên-miền.vn", "tên-miền.vn"),
    ("C:\\dir", "C:\\dir"),
    ("a b", '"a b"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("k=v", '"k=v"'),
    ("line\nnext", '"line\\nnext"'),
    ("tab\there", '"tab\\there"'),
    ("Nguyễn Văn A", '"Nguyễn Văn A"'),
])
def test_kv_keeps_the_output_of_ordinary_values(value: str, text: str) -> None:
    assert kv(v=value) == f"v={text}"


def test_kv_line(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_logging("kv", "info")
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    event(logging.getLogger("spamwarden.milter"), "verdict", queue_id="4Xyz", action="reject")
    line = buf.getvalue()
    assert line.endswith(" info spamwarden.milter event=verdict queue_id=4Xyz action=reject\n")


def test_json_line(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_logging("json", "info")
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    event(logging.getLogger("spamwarden.intake"), "complaint accepted", reporter="a@b.test")
    obj = json.loads(buf.getvalue())
    assert obj["event"] == "complaint accepted" and obj["reporter"] == "a@b.test"
    assert obj["level"] == "info" and obj["logger"] == "spamwarden.intake"


def test_level_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_logging("kv", "warning")
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    event(logging.getLogger("x"), "quiet", a=1)
    assert buf.getvalue() == ""


def test_kv_fast_paths_write_what_the_character_rule_writes() -> None:
    """Printable values skip the per-character escaping: the result must be the one the
    rule gives character by character, on random mixes of what needs escaping."""
    import random

    from spamwarden.logs import _escape, _fmt_value

    rng = random.Random(7)
    alphabet = ' "=\\\n\t\x1b\x7f\u202e\u2028abcé文x'
    for _ in range(20_000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        plain = s and not any(c in ' "=' or not c.isprintable() for c in s)
        expected = s if plain else '"' + "".join(_escape(c) for c in s) + '"'
        assert _fmt_value(s) == expected, s


# -- lines that are not structured events -------------------------------------------------

FORGED = "x\n2026-12-06T00:00:00Z info spamwarden.milter event=verdict action=accept"


def _lines(monkeypatch: pytest.MonkeyPatch, fmt: str, emit: object) -> list[str]:
    configure_logging(fmt, "info")
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    emit()  # type: ignore[operator]
    return buf.getvalue().splitlines()


def test_a_plain_message_cannot_forge_a_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """``log.warning("... %s", value)`` with an outside value (an exception's text, a
    library's line naming a peer's input) is one line, controls escaped."""
    lines = _lines(monkeypatch, "kv", lambda: logging.getLogger("spamwarden.x").warning(
        "lookup failed: %s", FORGED + "\x1b[2J\u202e"))
    assert len(lines) == 1, lines
    assert lines[0].endswith(
        "lookup failed: x\\n2026-12-06T00:00:00Z info spamwarden.milter event=verdict "
        "action=accept\\x1b[2J\\u202e")
    # ordinary text is written as it was
    lines = _lines(monkeypatch, "kv", lambda: logging.getLogger("spamwarden.x").warning(
        'rules cache not written path=/var/lib/x error="disk full" tên'))
    assert lines[0].endswith(' warning spamwarden.x rules cache not written path=/var/lib/x '
                             'error="disk full" tên')


def test_a_traceback_cannot_forge_a_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A traceback keeps its lines, each after the first indented, so an exception's
    text cannot start a line that reads as another event."""
    def emit() -> None:
        try:
            raise ValueError(FORGED + "\x1b]0;title\x07")
        except ValueError:
            logging.getLogger("spamwarden.x").exception("scan failed")

    lines = _lines(monkeypatch, "kv", emit)
    assert lines[0].endswith(" error spamwarden.x scan failed")
    assert len(lines) > 2 and all(line.startswith("  ") for line in lines[1:]), lines
    assert any("\\x1b]0;title\\x07" in line for line in lines)
    assert any(line.startswith("  2026-12-06T00:00:00Z info spamwarden.milter") for line in lines)


@pytest.mark.parametrize("value", [
    "a\x85b\x9bc", "evil\u202etxt.exe", "a\u2028b\u2029", "x\U000e0041", "del\x7f",
])
def test_json_escapes_what_is_not_printable(monkeypatch: pytest.MonkeyPatch,
                                            value: str) -> None:
    """JSON escapes only C0 controls itself; C1 controls (a terminal acts on U+009B),
    DEL, line separators and format characters are written as \\uNNNN too, so the
    line is ASCII there and reads back to the same value."""
    log = logging.getLogger("spamwarden.x")
    for emit in (lambda: event(log, "verdict", reason=value),
                 lambda: log.warning("failed: %s", value)):
        lines = _lines(monkeypatch, "json", emit)
        assert len(lines) == 1
        assert all(c.isprintable() for c in lines[0]), lines[0]
        obj = json.loads(lines[0])
        assert value in (obj.get("reason"), obj.get("msg", "")[len("failed: "):])
    # printable text beyond ASCII stays as it is
    lines = _lines(monkeypatch, "json", lambda: event(log, "verdict", reason="Nguyễn"))
    assert "Nguyễn" in lines[0]


def test_events_logged_while_a_message_is_scored_name_its_queue_id(
        caplog: pytest.LogCaptureFixture) -> None:
    """Code that never sees the envelope (a lookup that timed out, ARC sealing) logs
    inside the milter's scan: its events carry the queue id all the same."""
    log = logging.getLogger("spamwarden.test")
    with caplog.at_level(logging.INFO, logger="spamwarden.test"):
        with for_message("4XQUEUE1"):
            event(log, "inside")
            event(log, "named", queue_id="4OTHER")
        event(log, "after")
    fields = [r.fields for r in caplog.records]  # type: ignore[attr-defined]
    assert fields == [{"queue_id": "4XQUEUE1"}, {"queue_id": "4OTHER"}, {}]


def test_lookups_run_on_other_threads_name_the_message_too(
        caplog: pytest.LogCaptureFixture) -> None:
    """The milter's lookups (SPF, DMARC records, listings) run on lookup threads: what they
    log carries the queue id of the message that asked."""
    from spamwarden.milter.registry import LookupPool

    log = logging.getLogger("spamwarden.test")
    pool = LookupPool(2, budget=5.0)
    try:
        with caplog.at_level(logging.INFO, logger="spamwarden.test"):
            with for_message("4XQUEUE2"):
                job = pool.submit(lambda: event(log, "on_a_lookup_thread"))
            assert pool.result(job, default=None) is None
    finally:
        pool.close()
    assert [r.fields for r in caplog.records] == [{"queue_id": "4XQUEUE2"}]  # type: ignore[attr-defined]
