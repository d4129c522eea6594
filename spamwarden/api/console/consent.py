"""``/ui/consent``: per advertiser, the recipients with a consent, the recipients who
refused it, and the ads delivered all time and in the last 24 hours. Read-only.

The numbers come from the consent registry
(:meth:`~spamwarden.consent.registry.RedisConsentRegistry.counts_many`: hash lengths
and counters, one round trip for every advertiser shown, no scan of recipients). The
last 24 hours are counted by the clock hour (the current hour and the 23 before it).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ...config import Config
from ...consent.registry import AdvertiserCounts, registry_from_config
from ...redisconn import sync_client
from ..lookup import escape
from ._base import Console, Page, html_get

__all__ = ["MAX_SHOWN", "NAV", "build", "read_counts"]

NAV = Page("/ui/consent", "Consent")
#: advertisers shown at most (by id)
MAX_SHOWN = 1000


def read_counts(cfg: Config, now: float) -> tuple[int, list[AdvertiserCounts], int]:
    """How many advertisers there are, the counts of the first :data:`MAX_SHOWN` by id,
    and how many recipients refuse all advertising.

    Opens a Redis client for the call and closes it (run it in a worker thread).

    :raises StoreError: the registry is unreachable or failed.
    """
    client = sync_client(cfg)
    try:
        reg = registry_from_config(cfg, client)
        advs = reg.advertisers()
        return len(advs), reg.counts_many(advs[:MAX_SHOWN], now=now), reg.refusing_all()
    finally:
        client.close()


def build(ui: Console, routes: web.RouteTableDef) -> dict[str, Any]:
    """Add the consent counts route; return its OpenAPI path."""

    @routes.get("/ui/consent")
    async def consent(request: web.Request) -> web.StreamResponse:
        sess = await ui.require(request)
        total, counts, refusing_all = await asyncio.to_thread(read_counts, ui.cfg,
                                                              ui.clock.now())
        rows = "".join(
            f"<tr><td>{escape(c.advertiser)}</td><td>{c.consents}</td><td>{c.refusals}</td>"
            f"<td>{c.sent_24h}</td><td>{c.sent}</td></tr>" for c in counts)
        body = ("<p>Per advertiser: recipients who gave consent, recipients who refused "
                "its advertising, and the ads delivered (the last 24 hours are counted by "
                "the clock hour).</p>\n"
                "<table><tr><th>advertiser</th><th>consents</th><th>refusals</th>"
                f"<th>ads, last 24 h</th><th>ads, all time</th></tr>{rows}</table>\n"
                f"<p>{total} advertiser(s)"
                f"{f'; the first {MAX_SHOWN} shown' if total > MAX_SHOWN else ''}.</p>\n"
                f"<p>{refusing_all} recipient(s) refuse all advertising (the do-not-email "
                "list).</p>\n")
        return ui.page("Consent", body, sess=sess)

    return {"/ui/consent": html_get("Consent, refusal and ad counts per advertiser",
                                    "consoleConsent")}
