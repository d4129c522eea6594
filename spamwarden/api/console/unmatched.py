"""``/ui/unmatched``: the spam reports that matched no delivery here, newest first.

They are read from the stream ``sw:{sw}:complaints:unmatched`` (see
:mod:`~spamwarden.reputation.complaints`), the same one ``spamwarden complaints
--unmatched`` prints; intake trims it, and nothing reads it but the operator. Such a
report lists nothing: the page says why it matched nothing and shows what the report
claimed of the original (Message-ID, From, Subject, source). Read-only.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import redis
from aiohttp import web

from ...reputation.complaints import UNMATCHED_KEY, Complaint
from ...reputation.intake import UNMATCHED_WHY
from ...reputation.listings import utc_iso
from ...reputation.store import store_error
from ..lookup import escape
from ._base import Console, Page, html_get

__all__ = ["DEFAULT_SHOWN", "MAX_SHOWN", "NAV", "build", "why"]

NAV = Page("/ui/unmatched", "Unmatched reports")
#: reports per page: by default, and at most
DEFAULT_SHOWN = 100
MAX_SHOWN = 500
_STREAM_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")


def why(match: str) -> str:
    """Why a report with ``match`` (:attr:`Complaint.match`) lists nothing, in words."""
    if match in UNMATCHED_WHY:
        return UNMATCHED_WHY[match]
    return f"not matched ({match})" if match else "not looked up"


def _row(c: Complaint) -> str:
    i = c.indicators
    sender = i.from_address or i.from_domain or i.seen_from_domain or ""
    reporter = c.reporter + ("" if c.reporter_verified else " (unverified)")
    return (f"<tr><td>{escape(utc_iso(c.received_at))}</td><td>{escape(reporter)}</td>"
            f"<td>{escape(why(c.match))}</td><td>{escape(c.message_id)}</td>"
            f"<td>{escape(sender)}</td><td>{escape(i.subject)}</td>"
            f"<td>{escape(i.source_ip or '')}</td><td>{escape(c.source)}</td></tr>")


def build(ui: Console, routes: web.RouteTableDef) -> dict[str, Any]:
    """Add the unmatched reports route; return its OpenAPI path."""

    @routes.get("/ui/unmatched")
    async def unmatched(request: web.Request) -> web.StreamResponse:
        sess = await ui.require(request)
        try:
            limit = max(1, min(int(request.query.get("limit", "")), MAX_SHOWN))
        except ValueError:
            limit = DEFAULT_SHOWN
        before = request.query.get("before", "")
        newest = f"({before}" if _STREAM_ID.match(before) else "+"
        try:
            raw: Any = await ui.store.redis.xrevrange(UNMATCHED_KEY, max=newest, min="-",
                                                      count=limit)
        except redis.RedisError as exc:
            raise store_error(exc) from exc
        rows, unreadable = [], 0
        for _, fields in raw:
            try:
                rows.append(_row(Complaint.from_fields(fields)))
            except ValueError:
                unreadable += 1
        more = ""
        if len(raw) == limit:
            last = raw[-1][0]
            last = last.decode() if isinstance(last, bytes) else str(last)
            more = (f' <a href="/ui/unmatched?{escape(urlencode({"before": last, "limit": limit}))}"'
                    ' rel="next">older</a>')
        body = (
            "<p>Spam reports that matched no delivery here: they are kept for you and list "
            "nothing. Their details are what the report claimed.</p>\n"
            "<table><tr><th>received</th><th>reporter</th><th>why it lists nothing</th>"
            "<th>Message-ID</th><th>From</th><th>Subject</th><th>source IP</th>"
            f"<th>report form</th></tr>{''.join(rows)}</table>\n"
            f"<p>{len(rows)} report(s), newest first"
            + (f"; {unreadable} unreadable entr{'y' if unreadable == 1 else 'ies'} skipped"
               if unreadable else "") + f".{more}</p>\n")
        return ui.page("Unmatched reports", body, sess=sess)

    return {"/ui/unmatched": html_get("Spam reports that matched no delivery, newest first",
                                      "consoleUnmatched", query=("limit", "before"))}
