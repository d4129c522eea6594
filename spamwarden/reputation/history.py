"""Message history: every verdict of the milter, for "why was my mail rejected?".

The milter records one entry per message it decided (accepted, tagged, held,
rejected or deferred), after it answered Postfix: its after-reply batch
(:class:`~spamwarden.milter.delivery.DeliveryRecorder`) hands the batch to
:class:`HistoryRecorder`, which writes it in one pipeline (no Redis round trip on
the SMTP path; store trouble loses history, never mail). ``spamwarden history`` and
``GET /v1/history`` read it newest first (:func:`read_history`,
:func:`aread_history`).

An entry (:func:`history_entry`) is a JSON object: ``time`` (Unix seconds),
``queue_id`` (Postfix's), ``client_ip``, ``helo``, ``from`` (the envelope sender,
``""`` for ``<>``), ``rcpt`` (envelope recipients, at most :data:`MAX_RCPTS`;
``rcpt_count`` has them all), ``header_from`` (the RFC 5322.From address),
``subject`` (only with ``history.subjects``; at most :data:`MAX_SUBJECT`
characters), ``message_id``, ``action``, ``score``, ``required``, ``reason``,
``symbols`` (``name``, ``points``, ``detail``), ``auth`` (SPF, DKIM, DMARC results
and their domains) and ``scored``.

Redis keys (hash tag ``{sw}``):

``sw:{sw}:history``
    stream, one entry per verdict in field ``v`` (the JSON above); trimmed to about
    ``history.max_entries`` (``XADD MAXLEN ~``) and to ``history.ttl`` of age (``XTRIM
    MINID``, on each batch); the key itself expires ``history.ttl`` after the last
    write, so a stopped milter leaves nothing behind.
``sw:{sw}:stats:actions:<hour>``
    hash, verdicts per action in that hour, counted by the same script
    (:mod:`~spamwarden.reputation.stats`, TTL 8 days): the console's charts.

The stream holds personal data (addresses, subjects): see docs/operations.md,
"Message history".
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any

from ..logs import event
from ..mail import canonical_address
from .stats import STATS_TTL, hour_of, stats_key
from .store import store_error

__all__ = [
    "HISTORY_KEY",
    "MAX_LIMIT",
    "MAX_RCPTS",
    "MAX_SUBJECT",
    "HistoryFilter",
    "HistoryRecorder",
    "aread_history",
    "history_entry",
    "read_history",
]

log = logging.getLogger("spamwarden.history")

HISTORY_KEY = "sw:{sw}:history"
#: envelope recipients kept per entry
MAX_RCPTS = 50
#: characters of a Subject (and of a symbol's detail, a reason) kept
MAX_SUBJECT = 200
MAX_DETAIL = 200
#: entries one query returns at most
MAX_LIMIT = 1000
#: stream entries one query reads at most while filtering (bounds its time)
MAX_SCAN = 200_000
_PAGE = 1000


def _cut(text: object, limit: int) -> str:
    s = str(text or "")
    return s if len(s) <= limit else s[:limit - 1] + "…"


def _auth(auth: Any) -> dict[str, Any] | None:
    """SPF, DKIM and DMARC of an ``AuthResults`` in a few fields."""
    if auth is None:
        return None
    spf, dmarc = getattr(auth, "spf", None), getattr(auth, "dmarc", None)
    return {
        "spf": {"result": spf.result, "domain": spf.domain} if spf is not None else None,
        "dkim": [{"result": d.result, "domain": d.domain}
                 for d in tuple(getattr(auth, "dkim", ()))[:10]],
        "dmarc": ({"result": dmarc.result, "domain": dmarc.from_domain}
                  if dmarc is not None else None),
    }


def history_entry(verdict: Any, env: Any, *, now: float, subjects: bool = True) -> dict[str, Any]:
    """The history entry of one verdict (see the module docstring for the fields).

    :param verdict: the milter's ``Verdict`` (action, score, symbols, auth, view).
    :param env: its ``Envelope`` (queue id, client, HELO, sender, recipients).
    :param now: Unix seconds, the entry's ``time``.
    :param subjects: keep the Subject (``history.subjects``).
    :returns: a JSON-ready dict, bounded in size.
    """
    view = getattr(verdict, "view", None)
    rcpts = list(getattr(env, "rcpts", ()) or ())
    entry: dict[str, Any] = {
        "time": round(now, 3),
        "queue_id": getattr(env, "queue_id", "") or "",
        "client_ip": getattr(env, "client_ip", None) or "",
        "helo": _cut(getattr(env, "helo", ""), 255),
        "from": _cut(getattr(env, "mail_from", "") or "", 320),
        "rcpt": [_cut(r, 320) for r in rcpts[:MAX_RCPTS]],
        "rcpt_count": len(rcpts),
        "header_from": _cut(getattr(view, "from_address", None) or "", 320) if view else "",
        "message_id": _cut(getattr(view, "message_id", None) or "", 300) if view else "",
        "action": verdict.action,
        "score": verdict.score,
        "required": verdict.required,
        "reason": _cut(verdict.reason, MAX_DETAIL),
        "symbols": [{"name": s.name, "points": s.points, "detail": _cut(s.detail, MAX_DETAIL)}
                    for s in verdict.symbols],
        "auth": _auth(getattr(verdict, "auth", None)),
        "scored": bool(getattr(verdict, "scored", True)),
    }
    if subjects:
        entry["subject"] = _cut(getattr(view, "subject", "") or "", MAX_SUBJECT) if view else ""
    return entry


class HistoryRecorder:
    """What the milter's scanner is given: writes the verdicts of one after-reply batch.

    :param client: a sync ``redis.Redis``.
    :param max_entries: ``history.max_entries``.
    :param ttl: ``history.ttl`` seconds.
    :param subjects: ``history.subjects``.
    :param clock: wall-clock seconds (tests move it).
    """

    def __init__(self, client: Any, *, max_entries: int, ttl: float, subjects: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.max_entries = max_entries
        self.ttl = ttl
        self.subjects = subjects
        self.clock = clock
        self._script: Any = None

    def record(self, items: Sequence[tuple[Any, Any]]) -> int:
        """Write one batch in one round trip (:data:`_RECORD_LUA`: ``XADD`` each entry,
        trim by age on Redis' own clock, refresh the key's TTL, count each action in
        the hour's ``stats:actions`` hash).

        :param items: ``(verdict, envelope)`` pairs.
        :returns: entries written; 0 when Redis failed (logged, never raised).
        """
        if not items:
            return 0
        now = self.clock()
        pairs: list[str] = []
        for v, e in items:
            pairs += [str(v.action), json.dumps(history_entry(v, e, now=now,
                                                              subjects=self.subjects),
                                                separators=(",", ":"))]
        try:
            if self._script is None:
                self._script = self.client.register_script(_RECORD_LUA)
            self._script(keys=[HISTORY_KEY, stats_key("actions", hour_of(now))],
                         args=[self.max_entries, int(self.ttl * 1000), max(1, int(self.ttl)),
                               STATS_TTL, *pairs])
        except Exception as exc:  # noqa: BLE001 - history is best effort, never the mail's fate
            event(log, "history_write_failed", logging.WARNING, entries=len(items),
                  error=f"{type(exc).__name__}: {exc}")
            return 0
        return len(items)


#: KEYS[1] the stream, KEYS[2] the hour's action counters; ARGV: max entries, ttl in ms,
#: ttl in s, the counters' ttl in s, then (action, JSON entry) pairs.
#: Stream ids are Redis' clock, so the age cut uses Redis' TIME, not the milter's.
_RECORD_LUA = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 5, #ARGV, 2 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'v', ARGV[i + 1])
  redis.call('HINCRBY', KEYS[2], ARGV[i], 1)
end
redis.call('XTRIM', KEYS[1], 'MINID', tostring(now_ms - tonumber(ARGV[2])))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return (#ARGV - 4) / 2
"""


class HistoryFilter:
    """Which entries a query wants: all the given fields must match.

    :param queue_id: the Postfix queue id, exactly.
    :param rcpt: an envelope recipient, compared as
        :func:`~spamwarden.mail.canonical_address` writes it (case, an IDNA domain).
    :param action: ``accept``, ``tag``, ``quarantine``, ``reject`` or ``tempfail``.
    """

    def __init__(self, *, queue_id: str = "", rcpt: str = "", action: str = "") -> None:
        self.queue_id = queue_id.strip()
        self.rcpt = canonical_address(rcpt) if rcpt.strip() else ""
        self.action = action.strip().lower()

    def __call__(self, entry: dict[str, Any]) -> bool:
        if self.queue_id and entry.get("queue_id") != self.queue_id:
            return False
        if self.action and entry.get("action") != self.action:
            return False
        return not self.rcpt or self.rcpt in (canonical_address(str(r))
                                              for r in entry.get("rcpt", ()))


def _decode(rows: Iterable[Any], want: HistoryFilter, out: list[dict[str, Any]],
            limit: int) -> str | None:
    """Add the wanted entries of one XREVRANGE page to ``out``; the last id read."""
    last = None
    for entry_id, fields in rows:
        last = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        raw = fields.get(b"v") or fields.get("v")
        try:
            entry = json.loads(raw)
        except (TypeError, ValueError):
            continue
        if isinstance(entry, dict) and want(entry):
            out.append(entry)
            if len(out) >= limit:
                break
    return last


def _before(entry_id: str) -> str:
    """The exclusive upper bound for the next XREVRANGE page."""
    return f"({entry_id}"


def _pages(want: HistoryFilter | None, limit: int, max_scan: int
           ) -> Generator[str, list[Any], list[dict[str, Any]]]:
    """The paging of :func:`read_history`, written once for both drivers: yields the
    upper bound of the next XREVRANGE page, is sent that page's rows, returns the entries."""
    want = want or HistoryFilter()
    limit = max(1, min(limit, MAX_LIMIT))
    out: list[dict[str, Any]] = []
    top, scanned = "+", 0
    while len(out) < limit and scanned < max_scan:
        rows = yield top
        if not rows:
            break
        scanned += len(rows)
        last = _decode(rows, want, out, limit)
        if last is None or len(rows) < _PAGE:
            break
        top = _before(last)
    return out


def read_history(client: Any, *, limit: int = 50, want: HistoryFilter | None = None,
                 max_scan: int = MAX_SCAN) -> list[dict[str, Any]]:
    """The newest entries that match ``want``, newest first.

    :param client: a sync ``redis.Redis``.
    :param limit: at most this many (capped at :data:`MAX_LIMIT`).
    :param max_scan: stream entries read at most while filtering.
    :raises StoreError: Redis failed.
    """
    import redis

    pages = _pages(want, limit, max_scan)
    try:
        top = next(pages)
        while True:
            top = pages.send(client.xrevrange(HISTORY_KEY, max=top, min="-", count=_PAGE))
    except StopIteration as done:
        found: list[dict[str, Any]] = done.value
        return found
    except redis.RedisError as exc:
        raise store_error(exc) from exc


async def aread_history(client: Any, *, limit: int = 50, want: HistoryFilter | None = None,
                        max_scan: int = MAX_SCAN) -> list[dict[str, Any]]:
    """:func:`read_history` over a ``redis.asyncio.Redis``.

    :raises StoreError: Redis failed.
    """
    import redis

    pages = _pages(want, limit, max_scan)
    try:
        top = next(pages)
        while True:
            rows = await client.xrevrange(HISTORY_KEY, max=top, min="-", count=_PAGE)
            top = pages.send(rows)
    except StopIteration as done:
        found: list[dict[str, Any]] = done.value
        return found
    except redis.RedisError as exc:
        raise store_error(exc) from exc
