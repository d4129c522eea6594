"""``/ui/listings``: the active listings."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...reputation.listings import utc_iso
from ..lookup import escape
from ._base import Console, Page, html_get

__all__ = ["NAV", "build"]

NAV = Page("/ui/listings", "Listings")


def build(ui: Console, routes: web.RouteTableDef) -> dict[str, Any]:
    """Add the listings route; return its OpenAPI path."""

    @routes.get("/ui/listings")
    async def listings(request: web.Request) -> web.StreamResponse:
        sess = await ui.require(request)
        items = await ui.store.all(now=ui.clock.now())
        rows = "".join(
            f'<tr><td><a href="/lookup/{escape(x.key.replace("/", "%2F"))}">{escape(x.key)}</a>'
            f"</td><td>{escape(x.reason)}</td><td>{escape(utc_iso(x.listed_at))}</td>"
            f"<td>{escape(utc_iso(x.expires_at))}</td><td>{x.offences}</td>"
            f"<td>{escape(x.note)}</td></tr>" for x in items[:1000])
        body = ("<table><tr><th>key</th><th>reason</th><th>since</th><th>until</th>"
                f"<th>times</th><th>note</th></tr>{rows}</table>\n"
                f"<p>{len(items)} active listing(s)"
                f"{'; the first 1000 shown' if len(items) > 1000 else ''}.</p>\n")
        return ui.page("Listings", body, sess=sess)

    return {"/ui/listings": html_get("Active listings", "consoleListings")}
