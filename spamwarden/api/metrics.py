"""The metrics route of the API: ``GET /metrics``, the Prometheus text exposition of
every spamwarden process on this host (one multiprocess directory, see
:mod:`spamwarden.metrics`).

The API listener faces the internet (delisting requests, one-click unsubscribe), so
``/metrics`` is an operator endpoint: ``Authorization: Bearer`` one of
``api.operator_tokens`` (Prometheus: ``authorization: {credentials: ...}`` in the scrape
job); 403 while no tokens are configured."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ..metrics import CONTENT_TYPE_LATEST, exposition
from ._http import ERROR_RESPONSE, ApiContext, ApiModule, operator_only

__all__ = ["metrics_module", "METRICS_PATHS"]

METRICS_PATHS: dict[str, Any] = {
    "/metrics": {"get": {
        "tags": ["meta"], "operationId": "metrics",
        "summary": "Prometheus metrics of every spamwarden process on this host (operator)",
        "security": [{"operatorToken": []}],
        "responses": {"200": {"description": "Prometheus text exposition",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                      "401": {**ERROR_RESPONSE, "description": "no or wrong operator token"},
                      "403": {**ERROR_RESPONSE,
                              "description": "operator endpoints disabled (no tokens)"}}}},
}


def metrics_module(ctx: ApiContext) -> ApiModule:
    """``GET /metrics`` (operator token required).

    :param ctx: the API's context (unused: the exposition reads the metrics directory).
    :returns: the module.
    """

    @operator_only
    async def metrics(request: web.Request) -> web.StreamResponse:
        body = await asyncio.to_thread(exposition)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return ApiModule(name="metrics", routes=[web.get("/metrics", metrics)], paths=METRICS_PATHS)
