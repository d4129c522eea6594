"""The HTTP API (``spamwarden api``, aiohttp): listing lookup, delisting, operator actions.

The application is assembled from :class:`ApiModule` objects, each a route table
plus the OpenAPI description of exactly those routes, so the served document
(``GET /v1/openapi.json``) is the contract and cannot drift from the routes: the
tests check every registered route against it.  Other parts of spamwarden add
their endpoints by writing a module factory ``factory(ctx: ApiContext) -> ApiModule``
and naming it in ``spamwarden.wiring.api_modules`` (which ``spamwarden api`` passes to
:func:`run_api`; tests pass modules to :func:`build_app`); the helpers they share
(errors, operator auth, body parsing) are in :mod:`._http`.

Public endpoints need nothing; operator endpoints need ``Authorization: Bearer
<token>`` with one of ``api.operator_tokens`` (compared in constant time).  With no
tokens configured, operator endpoints answer 403.  Errors are JSON objects
``{"error": "...", "code": "...", "message": "...", "status": N}`` (:mod:`._http`:
``message`` in the client's Accept-Language or ``i18n.language``); a store failure
is 503, never a wrong answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from ..config import Config, parse_hostport
from ..errors import StoreError, StoreUnavailable
from ..i18n import MESSAGES
from ..logs import event
from ..reputation._service import stop_on_signals
from ..reputation.store import AsyncListingStore, Clock, SystemClock
from ._http import (
    CLOCK_KEY,
    CONFIG_KEY,
    ERROR_RESPONSE,
    ERROR_SCHEMA,
    MAX_BODY,
    STORE_KEY,
    ApiContext,
    ApiModule,
    BadRequest,
    Handler,
    Message,
    detail_message,
    json_error,
    localize_error,
)
from .listings import listings_module
from .metrics import metrics_module

__all__ = [
    "build_app",
    "openapi_document",
    "run_api",
]

log = logging.getLogger("spamwarden.api")


def _redis_error() -> None:
    from ..metrics import REDIS_ERRORS

    REDIS_ERRORS.labels("api").inc()


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadRequest as exc:
        return json_error(400, exc.message)
    except StoreUnavailable as exc:
        _redis_error()
        event(log, "store_unavailable", path=request.path, error=str(exc))
        return json_error(503, Message("api.store_unavailable"),
                          headers={"Retry-After": "5"})
    except StoreError as exc:
        _redis_error()
        event(log, "store_error", path=request.path, error=str(exc))
        return json_error(503, Message("api.store_failed"))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # aiohttp's own reason phrase (unknown path, method, body too large) has a text of
        # ours; any other reason is a detail written in English
        msg_id = f"http.{exc.status}"
        reason: str | Message = (Message(msg_id) if msg_id in MESSAGES
                                 and MESSAGES[msg_id]["en"] == exc.reason else exc.reason)
        return json_error(exc.status, detail_message(exc.status, reason), headers={
            k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")
        } or None)


_OPENAPI_PATH = {
    "/v1/openapi.json": {"get": {
        "tags": ["meta"], "operationId": "openapi", "summary": "This document",
        "responses": {"200": {"description": "OpenAPI 3.1 document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    "/v1/health": {"get": {
        "tags": ["meta"], "operationId": "health", "summary": "Whether the store answers",
        "responses": {"200": {"description": "ok", "content": {"application/json": {
            "schema": {"type": "object"}}}},
            "503": {**ERROR_RESPONSE, "description": "the store is unavailable"}}}},
}


def openapi_document(cfg: Config, modules: Sequence[ApiModule]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the given modules (plus the document itself)."""
    from .. import __version__

    paths: dict[str, dict[str, Any]] = {k: dict(v) for k, v in _OPENAPI_PATH.items()}
    schemas: dict[str, Any] = {}
    tags: list[Mapping[str, str]] = [{"name": "meta", "description": "the API itself"}]
    for m in modules:
        for path, item in m.paths.items():
            paths.setdefault(path, {}).update(item)
        schemas.update(m.schemas)
        tags += list(m.tags)
    schemas.setdefault("Error", ERROR_SCHEMA)
    return {
        "openapi": "3.1.0",
        "info": {"title": "spamwarden API", "version": __version__,
                 "description": "Blocklist lookup and delisting, operator actions. Operator "
                 "endpoints need an Authorization: Bearer token from api.operator_tokens."},
        "servers": [{"url": cfg.api.public_url}],
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"operatorToken": {"type": "http", "scheme": "bearer"}},
        },
    }


def build_app(
    cfg: Config,
    store: AsyncListingStore,
    *,
    clock: Clock | None = None,
    modules: Sequence[ApiModule | Callable[[ApiContext], ApiModule]] | None = None,
) -> web.Application:
    """The aiohttp application.

    :param modules: modules or module factories; ``None``: listings and metrics only.
    :returns: an application with the routes of every module, ``/v1/openapi.json``
        describing them, ``/v1/health``, and JSON errors.
    """
    ctx = ApiContext(cfg=cfg, clock=clock or SystemClock(), store=store)
    built = [m if isinstance(m, ApiModule) else m(ctx)
             for m in (modules if modules is not None else [listings_module, metrics_module])]
    app = web.Application(middlewares=[localize_error, _errors], client_max_size=MAX_BODY)
    app[CONFIG_KEY] = cfg
    app[STORE_KEY] = store
    app[CLOCK_KEY] = ctx.clock
    doc = openapi_document(cfg, built)

    async def openapi(request: web.Request) -> web.StreamResponse:
        return web.json_response(doc)

    async def health(request: web.Request) -> web.StreamResponse:
        await store.serial()
        return web.json_response({"status": "ok"})

    app.router.add_get("/v1/openapi.json", openapi)
    app.router.add_get("/v1/health", health)
    for m in built:
        app.router.add_routes(m.routes)
        app.on_startup.extend(m.on_startup)
        app.on_cleanup.extend(m.on_cleanup)
    return app


async def run_api(
    cfg: Config,
    *,
    modules: Sequence[ApiModule | Callable[[ApiContext], ApiModule]],
    listen: str | None = None,
) -> int:
    """``spamwarden api``: serve ``modules`` (``spamwarden.wiring.api_modules``) until
    SIGTERM or SIGINT.

    Logs ``api_listening host=... port=...`` once bound (port 0 picks a free port).
    """
    host, port = parse_hostport(listen or cfg.api.listen)
    store = AsyncListingStore.from_config(cfg)
    app = build_app(cfg, store, modules=modules)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        event(log, "api_listening", host=bound[0], port=bound[1])
        stop = asyncio.Event()
        stop_on_signals(stop, log=log)
        await stop.wait()
    finally:
        await runner.cleanup()
        await store.aclose()
    return 0
