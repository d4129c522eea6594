"""The metrics route of the API: ``GET /metrics``, the Prometheus text exposition of
every spamwarden process on this host (one multiprocess directory, see
:mod:`spamwarden.metrics`)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ..metrics import CONTENT_TYPE_LATEST, exposition
from ._http import ApiContext, ApiModule

__all__ = ["metrics_module", "METRICS_PATHS"]

METRICS_PATHS: dict[str, Any] = {
    "/metrics": {"get": {
        "tags": ["meta"], "operationId": "metrics",
        "summary": "Prometheus metrics of every spamwarden process on this host",
        "responses": {"200": {"description": "Prometheus text exposition",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
}


def metrics_module(ctx: ApiContext) -> ApiModule:
    """``GET /metrics`` (public, like a node exporter: bind ``api.listen`` accordingly).

    :param ctx: the API's context (unused: the exposition reads the metrics directory).
    :returns: the module.
    """

    async def metrics(request: web.Request) -> web.StreamResponse:
        body = await asyncio.to_thread(exposition)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return ApiModule(name="metrics", routes=[web.get("/metrics", metrics)], paths=METRICS_PATHS)
