"""Logging: one line per event, ``key=value`` or JSON (``service.log_format``).

Use :func:`event` for structured lines::

    log = logging.getLogger("spamwarden.milter")
    event(log, "verdict", queue_id="4Xyz", action="reject", score=17.2)

Message bodies are never logged at info level.
"""

from __future__ import annotations

import json
import logging
import sys
import time
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


def kv(**fields: Any) -> str:
    """``k=v k2="v 2"`` text of the fields, in order, ``None`` values left out."""
    return " ".join(f"{k}={_fmt_value(v)}" for k, v in fields.items() if v is not None)


class _KvFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        base = f"{ts}Z {record.levelname.lower()} {record.name}"
        fields = getattr(record, "fields", None)
        msg = record.getMessage()
        text = f"{base} event={_fmt_value(msg)} {kv(**fields)}" if fields else f"{base} {msg}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
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
        return json.dumps(obj, ensure_ascii=False, default=str)


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


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event ``name`` with ``fields``."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields})
