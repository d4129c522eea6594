"""``/ui/history``: the message history, searched by queue id, recipient and action; one
queue id shows the message's verdict symbol by symbol."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from ...reputation.history import MAX_LIMIT, HistoryFilter, aread_history
from ...reputation.listings import utc_iso
from ..lookup import escape
from ._base import Console, Page, html_get

__all__ = ["ACTIONS", "NAV", "build", "detail"]

NAV = Page("/ui/history", "History")
ACTIONS = ("accept", "tag", "quarantine", "reject", "tempfail")


def build(ui: Console, routes: web.RouteTableDef) -> dict[str, Any]:
    """Add the history route; return its OpenAPI path."""

    @routes.get("/ui/history")
    async def history(request: web.Request) -> web.StreamResponse:
        sess = await ui.require(request)
        q = request.query
        queue_id, rcpt, action = (q.get("queue_id", "")[:64], q.get("rcpt", "")[:320],
                                  q.get("action", ""))
        if action not in ACTIONS:
            action = ""
        try:
            limit = max(1, min(int(q.get("limit", "100")), MAX_LIMIT))
        except ValueError:
            limit = 100
        rows = await aread_history(ui.store.redis, limit=limit, want=HistoryFilter(
            queue_id=queue_id, rcpt=rcpt, action=action))
        options = "".join(f'<option{" selected" if a == action else ""}>{a}</option>'
                          for a in ("",) + ACTIONS)
        form = ('<form method="get" action="/ui/history"><p>'
                f'<label>Queue id <input name="queue_id" value="{escape(queue_id)}" '
                'maxlength="64"></label> '
                f'<label>Recipient <input name="rcpt" value="{escape(rcpt)}" maxlength="320">'
                f'</label> <label>Action <select name="action">{options}</select></label> '
                '<button type="submit">Search</button></p></form>\n')
        if queue_id and len(rows) == 1:
            return ui.page(f"Message {queue_id}", form + detail(rows[0]), sess=sess)
        table = "".join(
            f"<tr><td>{escape(utc_iso(float(e.get('time', 0))))}</td>"
            f'<td><a href="/ui/history?{escape(urlencode({"queue_id": e.get("queue_id", "")}))}">'
            f"{escape(e.get('queue_id', ''))}</a></td><td>{escape(e.get('action', ''))}</td>"
            f"<td>{escape(e.get('score', ''))}</td><td>{escape(e.get('client_ip', ''))}</td>"
            f"<td>{escape(e.get('from', ''))}</td><td>{escape(', '.join(e.get('rcpt', ())))}</td>"
            f"<td>{escape(e.get('subject', ''))}</td></tr>" for e in rows)
        body = form + (
            "<table><tr><th>time</th><th>queue id</th><th>action</th><th>score</th>"
            "<th>client</th><th>from</th><th>to</th><th>subject</th></tr>"
            f"{table}</table>\n<p>{len(rows)} message(s).</p>\n")
        return ui.page("Message history", body, sess=sess)

    return {"/ui/history": html_get("Message history search; one queue id shows the message",
                                    "consoleHistory",
                                    query=("queue_id", "rcpt", "action", "limit"))}


def detail(e: dict[str, Any]) -> str:
    """One history entry as HTML: the envelope, authentication and every symbol."""
    auth = e.get("auth") or {}
    parts = []
    for name in ("spf", "dmarc"):
        a = auth.get(name)
        if a:
            parts.append(f"{name}={a.get('result')} ({a.get('domain')})")
    parts += [f"dkim={d.get('result')} ({d.get('domain')})" for d in auth.get("dkim", ())]
    rows = [
        ("time", utc_iso(float(e.get("time", 0)))), ("queue id", e.get("queue_id", "")),
        ("action", e.get("action", "")), ("score", f"{e.get('score')} / {e.get('required')}"),
        ("reason", e.get("reason", "")), ("client", f"{e.get('client_ip')} ({e.get('helo')})"),
        ("envelope from", e.get("from", "")), ("recipients", ", ".join(e.get("rcpt", ()))),
        ("From", e.get("header_from", "")), ("Subject", e.get("subject", "(not kept)")),
        ("Message-ID", e.get("message_id", "")), ("authentication", "; ".join(parts)),
    ]
    syms = "".join(f"<tr><td>{escape(s.get('name'))}</td><td>{escape(s.get('points'))}</td>"
                   f"<td>{escape(s.get('detail'))}</td></tr>" for s in e.get("symbols", ()))
    return ("<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
            + "</dl>\n<table><tr><th>symbol</th><th>points</th><th>detail</th></tr>"
            + syms + "</table>\n")
