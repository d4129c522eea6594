"""Logging: one line per event, ``key=value`` or JSON (``service.log_format``).

Use :func:`event` for structured lines::

    log = logging.getLogger("spamwarden.milter")
    event(log, "verdict", queue_id="4Xyz", action="reject", score=17.2)

Message bodies are never logged at info level.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["configure_logging", "event", "kv"]


#: escapes inside a quoted value other than ``\xNN`` (those JSON uses, as before)
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t"}


#: the escapes a printable value needs inside quotes
_QUOTE_PRINTABLE = str.maketrans({'"': '\\"', "\\": "\\\\"})


def _escape(c: str) -> str:
    """One character of a quoted value: itself when printable, else an escape, so that
    no value can move the cursor, colour the terminal or forge a line."""
    if c in _ESCAPES:
        return _ESCAPES[c]
    if c == " " or c.isprintable():
        return c
    n = ord(c)
    if n < 0x100:
        return f"\\x{n:02x}"
    return f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def _fmt_value(v: Any) -> str:
    """A value as written after ``key=``: as it is, or in double quotes when empty or
    holding a space, ``"``, ``=`` or a character that is not printable. Inside the
    quotes ``"``, ``\\``, newline and tab are escaped as in JSON, and every other
    character that is not printable (C0 and C1 controls, DEL, format characters such
    as bidirectional overrides, line and paragraph separators) as ``\\xNN``,
    ``\\uNNNN`` or ``\\UNNNNNNNN``."""
    s = str(v)
    # str.isprintable, "in" and translate run in C: no Python step per character unless
    # the value holds something that is not printable
    if s.isprintable():
        if s and " " not in s and '"' not in s and "=" not in s:
            return s
        return '"' + s.translate(_QUOTE_PRINTABLE) + '"'
    return '"' + "".join(_escape(c) for c in s) + '"'


def _plain(s: str) -> str:
    """Text written as it is (a plain message, one line of a traceback): newline and
    tab as ``\\n``/``\\t``, every other character that is not printable as
    :func:`_escape` writes it, so an outside value inside cannot start a line or act
    on a terminal."""
    if s.isprintable():
        return s
    return "".join(c if c == " " or c.isprintable() or c in '"\\' else _escape(c) for c in s)


def _traceback(text: str) -> str:
    """A formatted exception: its lines kept, each after the first indented by two
    spaces (so none reads as a new event), each escaped by :func:`_plain`."""
    return "\n  ".join(_plain(line) for line in text.rstrip("\n").split("\n"))


def _json_ascii_controls(s: str) -> str:
    """``json.dumps`` output with what JSON does not escape itself but is not
    printable (DEL, C1 controls, line and paragraph separators, format characters)
    written as ``\\uNNNN`` (a surrogate pair past U+FFFF): the same value read back."""
    if s.isprintable():
        return s
    out = []
    for c in s:
        if c == " " or c.isprintable():
            out.append(c)
            continue
        n = ord(c)
        if n > 0xFFFF:
            n -= 0x10000
            out.append(f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}")
        else:
            out.append(f"\\u{n:04x}")
    return "".join(out)


def kv(**fields: Any) -> str:
    """``k=v k2="v 2"`` text of the fields, in order, ``None`` values left out."""
    return " ".join(f"{k}={_fmt_value(v)}" for k, v in fields.items() if v is not None)


class _KvFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        base = f"{ts}Z {record.levelname.lower()} {record.name}"
        fields = getattr(record, "fields", None)
        msg = record.getMessage()
        text = (f"{base} event={_fmt_value(msg)} {kv(**fields)}" if fields
                else f"{base} {_plain(msg)}")
        if record.exc_info:
            text += "\n  " + _traceback(self.formatException(record.exc_info))
        if record.stack_info:
            text += "\n  " + _traceback(self.formatStack(record.stack_info))
        return text


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if fields:
            obj["event"] = record.getMessage()
            obj.update({k: v for k, v in fields.items() if v is not None})
        else:
            obj["msg"] = record.getMessage()
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            obj["stack"] = self.formatStack(record.stack_info)
        return _json_ascii_controls(json.dumps(obj, ensure_ascii=False, default=str))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record, so a replaced
    (or, under a test runner, closed) stream never leaves a dangling handler."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # type: ignore[no-untyped-def]
        pass


def configure_logging(fmt: str = "kv", level: str = "info") -> None:
    """Send log lines to stderr in ``fmt`` ("kv" or "json") at ``level``."""
    handler = _StderrHandler()
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _KvFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


#: the queue id of the message this thread is scoring (:func:`for_message`): every event
#: logged meanwhile names it, also from code that never sees the envelope
_QUEUE_ID: contextvars.ContextVar[str] = contextvars.ContextVar("queue_id", default="")


@contextlib.contextmanager
def for_message(queue_id: str) -> Iterator[None]:
    """Events logged in this thread inside the block carry ``queue_id`` (unless they
    name one themselves)."""
    token = _QUEUE_ID.set(queue_id)
    try:
        yield
    finally:
        _QUEUE_ID.reset(token)


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event ``name`` with ``fields`` (and the queue id of the message
    being scored, :func:`for_message`)."""
    if logger.isEnabledFor(level):
        if "queue_id" not in fields:
            qid = _QUEUE_ID.get()
            if qid:
                fields = {"queue_id": qid, **fields}
        logger.log(level, name, extra={"fields": fields})
