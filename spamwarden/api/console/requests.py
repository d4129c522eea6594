"""``/ui/requests``: the delisting requests waiting for a decision, approve or reject."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...reputation.listings import utc_iso
from ..lookup import REQUEST_ID_PATTERN, escape
from ._base import Console, Page, html_get, html_post

__all__ = ["NAV", "build"]

NAV = Page("/ui/requests", "Delisting requests")


def build(ui: Console, routes: web.RouteTableDef) -> dict[str, Any]:
    """Add the request queue's routes; return their OpenAPI paths."""
    store, clock = ui.store, ui.clock

    @routes.get("/ui/requests")
    async def requests_page(request: web.Request) -> web.StreamResponse:
        sess = await ui.require(request)
        reqs = await store.delist_requests(now=clock.now(), status="pending", limit=1000)
        csrf = ui.csrf_field(sess)
        rows = "".join(
            f"<tr><td>{escape(utc_iso(r.filed_at))}</td><td>{escape(r.key)}</td>"
            f"<td>{escape(r.reason)}</td><td>{escape(r.contact)}</td><td>{escape(r.client)}</td>"
            f'<td><form method="post" action="/ui/requests/{escape(r.id)}">{csrf}'
            '<input name="note" placeholder="note" maxlength="2000"> '
            '<button name="decision" value="approve">Approve (delist)</button> '
            '<button name="decision" value="reject">Reject</button></form></td></tr>'
            for r in reqs)
        body = ("<table><tr><th>filed</th><th>key</th><th>what they fixed</th><th>contact</th>"
                f"<th>client</th><th>decide</th></tr>{rows}</table>\n"
                f"<p>{len(reqs)} pending request(s).</p>\n")
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
            await store.decide_delist_request(rid, approve=decision == "approve",
                                              note=str(data.get("note", ""))[:2000],
                                              now=clock.now())
        raise web.HTTPSeeOther("/ui/requests")

    return {
        "/ui/requests": html_get("Pending delisting requests with approve / reject",
                                 "consoleRequests"),
        "/ui/requests/{id}": html_post("Decide a request (form fields csrf, decision, note)",
                                       "consoleDecide", path_params=("id",)),
    }
