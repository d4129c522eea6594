"""``/ui/requests``: the delisting requests waiting for a decision, approve or reject,
and the recently decided ones with their decision notes. Each key links to its
listing in the console and to its public lookup page."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from ...errors import DelistRequestStale
from ...logs import event
from ...reputation.listings import utc_iso
from ...reputation.store import DelistRequest, decided_here
from .._http import BadRequest
from ..lookup import REQUEST_ID_PATTERN, escape
from ..paging import parse_request_cursor, request_cursor
from ._base import Console, Page, html_get, html_post, operator_label
from .listings import lookup_href

__all__ = ["DECIDED_SHOWN", "PENDING_SHOWN", "NAV", "build"]

NAV = Page("/ui/requests", "Delisting requests")
#: the most recently decided requests shown under the queue
DECIDED_SHOWN = 100
#: pending requests shown on one page (oldest first; a link shows the next ones)
PENDING_SHOWN = 200

log = logging.getLogger("spamwarden.api")


def _key_links(key: str) -> str:
    """The key, linked to its console listing, and its public lookup page."""
    return (f'<a href="/ui/listings?{escape(urlencode({"q": key}))}">{escape(key)}</a> '
            f'(<a href="{escape(lookup_href(key))}">lookup</a>)')


def _decided_rows(reqs: list[DelistRequest]) -> str:
    return "".join(
        f"<tr><td>{escape(utc_iso(r.decided_at))}</td><td>{escape(r.status)}</td>"
        f"<td>{_key_links(r.key)}</td><td>{escape(r.decided_note)}</td>"
        f"<td>{escape(r.reason)}</td><td>{escape(utc_iso(r.filed_at))}</td></tr>"
        for r in reqs)


def build(ui: Console, routes: web.RouteTableDef) -> dict[str, Any]:
    """Add the request queue's routes; return their OpenAPI paths."""
    store, clock = ui.store, ui.clock

    @routes.get("/ui/requests")
    async def requests_page(request: web.Request) -> web.StreamResponse:
        sess = await ui.require(request)
        try:
            after = parse_request_cursor(request.query)
        except BadRequest:
            after = None  # a stale or edited address: the first page
        now = clock.now()
        # pages of the status indexes: the cost is the page's, not the queue's
        reqs, nxt = await store.delist_request_page(now=now, status="pending", after=after,
                                                    limit=PENDING_SHOWN)
        waiting = await store.count_delist_requests(status="pending")
        decided: list[DelistRequest] = []
        for status in ("approved", "rejected"):
            page, _ = await store.delist_request_page(now=now, status=status, after=None,
                                                      limit=DECIDED_SHOWN, newest_first=True)
            decided += page
        decided = sorted(decided, key=lambda r: r.decided_at, reverse=True)[:DECIDED_SHOWN]
        csrf = ui.csrf_field(sess)
        rows = "".join(
            f"<tr><td>{escape(utc_iso(r.filed_at))}</td><td>{_key_links(r.key)}</td>"
            f"<td>{escape(r.reason)}</td><td>{escape(r.contact)}</td><td>{escape(r.client)}</td>"
            f'<td><form method="post" action="/ui/requests/{escape(r.id)}">{csrf}'
            '<input name="note" placeholder="note" maxlength="2000"> '
            '<button name="decision" value="approve">Approve (delist)</button> '
            '<button name="decision" value="reject">Reject</button></form></td></tr>'
            for r in reqs)
        links = (['<a href="/ui/requests">first page</a>'] if after is not None else []) + (
            [f'<a href="/ui/requests?{escape(urlencode({"cursor": request_cursor(nxt)}))}" '
             'rel="next">next</a>'] if nxt is not None else [])
        nav = f"<p>{len(reqs)} shown, oldest first. {' · '.join(links)}</p>\n" if links else ""
        body = ("<table><tr><th>filed</th><th>key</th><th>what they fixed</th><th>contact</th>"
                f"<th>client</th><th>decide</th></tr>{rows}</table>\n"
                f"<p>{waiting} pending request(s).</p>\n{nav}"
                "<h2>Recently decided</h2>\n<table><tr><th>decided</th><th>status</th>"
                "<th>key</th><th>decision note</th><th>what they fixed</th><th>filed</th></tr>"
                f"{_decided_rows(decided)}</table>\n"
                f"<p>The {len(decided)} most recent decision(s); requests are kept 90 days.</p>\n")
        return ui.page("Delisting requests", body, sess=sess)

    @routes.post("/ui/requests/{id:" + REQUEST_ID_PATTERN + "}")
    async def decide(request: web.Request) -> web.StreamResponse:
        sess = await ui.require(request)
        data = await ui.form(request, sess)
        decision = str(data.get("decision", ""))
        if decision not in ("approve", "reject"):
            raise web.HTTPBadRequest(text="decision must be approve or reject")
        rid = request.match_info["id"]
        current = await store.get_delist_request(rid)
        if current is not None and current.status == "pending":
            try:
                done = await store.decide_delist_request(rid, approve=decision == "approve",
                                                         note=str(data.get("note", ""))[:2000],
                                                         now=clock.now())
            except DelistRequestStale as exc:
                return ui.page("Delisting requests",
                               f'<p class="error">{escape(str(exc))}</p>\n'
                               '<p><a href="/ui/requests">Back to the requests</a></p>\n',
                               sess=sess, status=409)
            # logged only when this decision took effect (not another operator's meanwhile)
            if done is not None and decided_here(done, approve=decision == "approve"):
                new, write = done
                event(log, "delist_request_decided", id=rid, key=new.key, status=new.status,
                      delisting=write.op if write else None, via="console",
                      operator=operator_label(sess))
        raise web.HTTPSeeOther("/ui/requests")

    return {
        "/ui/requests": html_get("Pending delisting requests with approve / reject, "
                                 f"{PENDING_SHOWN} a page (cursor: the next link's); recent "
                                 "decisions", "consoleRequests", query=("cursor",)),
        "/ui/requests/{id}": html_post("Decide a request (form fields csrf, decision, note)",
                                       "consoleDecide", path_params=("id",)),
    }
