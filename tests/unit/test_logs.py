"""Log lines: key=value or JSON, one per event, written to the current stderr."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from spamwarden.logs import configure_logging, event, kv


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
