"""The HTTP API (``spamwarden api``, aiohttp): listing lookup, delisting, operator actions.

The application is assembled from :class:`ApiModule` objects, each a route table
plus the OpenAPI description of exactly those routes, so the served document
(``GET /v1/openapi.json``) is the contract and cannot drift from the routes: the
tests check every registered route against it.  Other parts of spamwarden add
their endpoints by writing a module factory ``factory(ctx: ApiContext) -> ApiModule``
and naming it in :data:`MODULE_FACTORIES` (or passing modules to :func:`build_app`).

Public endpoints need nothing; operator endpoints need ``Authorization: Bearer
<token>`` with one of ``api.operator_tokens`` (compared in constant time).  With no
tokens configured, operator endpoints answer 403.  Errors are JSON objects
``{"error": "...", "status": N}``; a store failure is 503, never a wrong answer.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import importlib
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Sequence

from aiohttp import web

from ..config import Config, parse_duration, parse_hostport
from ..errors import StoreError, StoreUnavailable
from ..logs import event
from .listings import REASONS, Listing, listing_json, normalize_key, operator_reason
from .listings import utc_iso as _iso
from ._service import stop_on_signals
from .store import AsyncListingStore, Clock, SystemClock

__all__ = [
    "ApiModule",
    "ApiContext",
    "build_app",
    "openapi_document",
    "operator_only",
    "json_error",
    "client_ip",
    "listings_module",
    "MODULE_FACTORIES",
    "CONFIG_KEY",
    "STORE_KEY",
    "CLOCK_KEY",
    "run_api",
]

log = logging.getLogger("spamwarden.api")

CONFIG_KEY = web.AppKey("spamwarden_config", Config)
STORE_KEY = web.AppKey("spamwarden_listing_store", AsyncListingStore)
CLOCK_KEY = web.AppKey("spamwarden_clock", object)

#: module factories :func:`run_api` loads, as ``"package.module:function"``
MODULE_FACTORIES: list[str] = [
    "spamwarden.reputation.api:listings_module",
    "spamwarden.reputation.api_consent:consent_module",
]

MAX_BODY = 64 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ApiContext:
    """What a module factory gets: configuration, clock and the listing store."""

    cfg: Config
    clock: Clock
    store: AsyncListingStore


@dataclass(frozen=True)
class ApiModule:
    """A set of routes and their OpenAPI description.

    :param routes: aiohttp route definitions (``web.RouteTableDef`` or a list of
        ``web.get(...)`` etc.).
    :param paths: OpenAPI ``paths`` entries for exactly these routes.
    :param schemas: OpenAPI ``components.schemas`` the paths refer to.
    :param on_startup: / ``on_cleanup``: app signal handlers (open / close clients).
    """

    name: str
    routes: Sequence[web.AbstractRouteDef]
    paths: Mapping[str, Mapping[str, Any]]
    schemas: Mapping[str, Any] = field(default_factory=dict)
    tags: Sequence[Mapping[str, str]] = ()
    on_startup: Sequence[Callable[[web.Application], Awaitable[None]]] = ()
    on_cleanup: Sequence[Callable[[web.Application], Awaitable[None]]] = ()


# -- shared helpers --------------------------------------------------------------------------


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    """A JSON error response ``{"error": message, "status": status, ...}``."""
    headers = extra.pop("headers", None)
    return web.json_response({"error": message, "status": status, **extra}, status=status,
                             headers=headers)


def client_ip(request: web.Request) -> str:
    """The client's IP: the TCP peer, or the last ``X-Forwarded-For`` entry when the
    peer is one of ``api.trusted_proxies``."""
    peer = request.remote or "unknown"
    cfg = request.app[CONFIG_KEY]
    if cfg.api.trusted_proxies and peer != "unknown":
        try:
            addr = ipaddress.ip_address(peer)
            trusted = any(addr in ipaddress.ip_network(n, strict=False)
                          for n in cfg.api.trusted_proxies)
        except ValueError:
            trusted = False
        fwd = request.headers.get("X-Forwarded-For", "")
        if trusted and fwd:
            last = fwd.split(",")[-1].strip()
            try:
                return str(ipaddress.ip_address(last))
            except ValueError:
                return peer
    return peer


def _token_ok(given: str, tokens: Sequence[str]) -> bool:
    ok = False
    g = given.encode()
    for t in tokens:  # every token compared, in constant time each
        ok |= hmac.compare_digest(g, t.encode())
    return ok


def operator_only(handler: Handler) -> Handler:
    """Decorator: the request must carry ``Authorization: Bearer <operator token>``.

    401 without a valid token, 403 when ``api.operator_tokens`` is empty.
    """

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        tokens = request.app[CONFIG_KEY].api.operator_tokens
        if not tokens:
            return json_error(403, "operator endpoints are disabled: api.operator_tokens is empty")
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not _token_ok(token.strip(), tokens):
            return json_error(401, "an operator bearer token is required",
                              headers={"WWW-Authenticate": 'Bearer realm="spamwarden"'})
        return await handler(request)

    setattr(wrapped, "operator_only", True)
    return wrapped


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
    try:
        body = await request.json()
    except ValueError as exc:
        raise _BadRequest("the body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise _BadRequest("the body must be a JSON object")
    return body


class _BadRequest(Exception):
    """Turned into a 400 JSON error by the middleware."""


def _text(body: Mapping[str, Any], name: str, *, required: bool, limit: int) -> str:
    v = body.get(name, "")
    if v is None:
        v = ""
    if not isinstance(v, str):
        raise _BadRequest(f"{name} must be a string")
    v = v.strip()
    if required and not v:
        raise _BadRequest(f"{name} is required")
    if len(v) > limit:
        raise _BadRequest(f"{name} is longer than {limit} characters")
    return v


def _redis_error() -> None:
    from ..metrics import REDIS_ERRORS

    REDIS_ERRORS.labels("api").inc()


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except _BadRequest as exc:
        return json_error(400, str(exc))
    except StoreUnavailable as exc:
        _redis_error()
        event(log, "store_unavailable", path=request.path, error=str(exc))
        return json_error(503, "the listing store is unavailable; try again shortly",
                          headers={"Retry-After": "5"})
    except StoreError as exc:
        _redis_error()
        event(log, "store_error", path=request.path, error=str(exc))
        return json_error(503, "the listing store failed; try again shortly")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason, headers={
            k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")
        } or None)


def listing_object(x: Listing) -> dict[str, Any]:
    """The JSON form of a listing in API answers (with ISO ``since`` / ``until``).

    :param x: the listing.
    :returns: see :func:`~spamwarden.reputation.listings.listing_json`.
    """
    return listing_json(x, with_times=True)


def _key_or_400(text: str) -> tuple[str, Any]:
    try:
        return normalize_key(text)
    except ValueError as exc:
        raise _BadRequest(str(exc)) from exc


# -- the listings module ---------------------------------------------------------------------


def listings_module(ctx: ApiContext) -> ApiModule:
    """Listing lookup, delisting requests and operator listing actions."""
    routes = web.RouteTableDef()
    cfg = ctx.cfg
    store = ctx.store
    clock = ctx.clock
    request_url = cfg.api.public_url.rstrip("/") + "/v1/delist-requests"

    @routes.get("/v1/listings/{key:.+}")
    async def lookup(request: web.Request) -> web.StreamResponse:
        key, kind = _key_or_400(request.match_info["key"])
        found = await store.find(key, now=clock.now())
        body: dict[str, Any] = {"key": key, "kind": kind, "listed": found is not None,
                                "listing": listing_object(found) if found else None}
        if found is not None:
            body["delisting"] = {
                "how": (
                    "Stop the mail that recipients reported, then ask for delisting: POST a "
                    f"JSON object {{\"key\": \"{found.key}\", \"reason\": \"what you fixed\", "
                    "\"contact\": \"your address\"}} to the URL below. An operator reviews "
                    f"every request. Unless delisted earlier, the listing ends at {_iso(found.expires_at)}."
                ),
                "request_url": request_url,
                "method": "POST",
                "expires_by_itself_at": found.expires_at,
            }
        return web.json_response(body)

    @routes.post("/v1/delist-requests")
    async def file_request(request: web.Request) -> web.StreamResponse:
        ip = client_ip(request)
        now = clock.now()
        if not await store.rate_allow("delist", ip, limit=cfg.api.delist_requests_per_hour,
                                      now=now):
            return json_error(429, "too many delisting requests from your address; try later",
                              headers={"Retry-After": str(3600 - int(now) % 3600)})
        body = await _json_body(request)
        key, _ = _key_or_400(_text(body, "key", required=True, limit=300))
        reason = _text(body, "reason", required=True, limit=2000)
        contact = _text(body, "contact", required=False, limit=254)
        found = await store.find(key, now=now)
        if found is None:
            return json_error(404, f"{key} is not listed")
        req = await store.file_delist_request(found.key, reason=reason, contact=contact,
                                              client=ip, now=now)
        event(log, "delist_requested", id=req.id, key=req.key, client=ip)
        return web.json_response({"id": req.id, "key": req.key, "status": req.status,
                                  "filed_at": req.filed_at}, status=202)

    @routes.get("/v1/delist-requests")
    @operator_only
    async def list_requests(request: web.Request) -> web.StreamResponse:
        status = request.query.get("status") or None
        if status not in (None, "pending", "approved", "rejected"):
            raise _BadRequest("status must be pending, approved or rejected")
        reqs = await store.delist_requests(now=clock.now(), status=status)
        return web.json_response([_request_object(r) for r in reqs])

    async def decide(request: web.Request, approve: bool) -> web.StreamResponse:
        rid = request.match_info["id"]
        body = await _json_body(request) if request.can_read_body else {}
        note = _text(body, "note", required=False, limit=2000)
        current = await store.get_delist_request(rid)
        if current is None:
            return json_error(404, f"no delisting request {rid}")
        if current.status != "pending":
            return json_error(409, f"request {rid} was already {current.status}")
        res = await store.decide_delist_request(rid, approve=approve, note=note, now=clock.now())
        assert res is not None
        new, write = res
        event(log, "delist_request_decided", id=rid, key=new.key, status=new.status)
        return web.json_response({"request": _request_object(new),
                                  "delisting": write.op if write else None})

    @routes.post("/v1/delist-requests/{id}/approve")
    @operator_only
    async def approve(request: web.Request) -> web.StreamResponse:
        return await decide(request, True)

    @routes.post("/v1/delist-requests/{id}/reject")
    @operator_only
    async def reject(request: web.Request) -> web.StreamResponse:
        return await decide(request, False)

    @routes.get("/v1/listings")
    @operator_only
    async def list_all(request: web.Request) -> web.StreamResponse:
        try:
            limit = min(int(request.query.get("limit", "1000")), 100_000)
            offset = max(int(request.query.get("offset", "0")), 0)
        except ValueError as exc:
            raise _BadRequest("limit and offset must be whole numbers") from exc
        items = await store.all(now=clock.now())
        return web.json_response({"total": len(items),
                                  "listings": [listing_object(x) for x in items[offset:offset + limit]]})

    @routes.post("/v1/listings")
    @operator_only
    async def add(request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        key, kind = _key_or_400(_text(body, "key", required=True, limit=300))
        text = _text(body, "reason", required=True, limit=2000)
        reason, note = (text, "") if text in REASONS else (operator_reason(kind), text)
        ttl_raw = body.get("ttl")
        ttl: float | None = None
        if ttl_raw is not None:
            try:
                ttl = parse_duration(ttl_raw)
            except ValueError as exc:
                raise _BadRequest(f"ttl: expected {exc}") from exc
            if ttl <= 0:
                raise _BadRequest("ttl must be more than 0")
        w = await store.add(key, kind=kind, reason=reason, note=note, ttl=ttl, now=clock.now())
        assert w.listing is not None
        event(log, "operator_listed", key=key, op=w.op, reason=reason)
        return web.json_response({"op": w.op, "listing": listing_object(w.listing)},
                                 status=201 if w.op == "listed" else 200)

    @routes.delete("/v1/listings/{key:.+}")
    @operator_only
    async def delist(request: web.Request) -> web.StreamResponse:
        key, _ = _key_or_400(request.match_info["key"])
        body = await _json_body(request) if request.can_read_body else {}
        reason = _text(body, "reason", required=False, limit=2000) or request.query.get("reason", "")
        if not reason:
            raise _BadRequest("reason is required (JSON body or ?reason=)")
        w = await store.delist(key, note=reason, now=clock.now())
        if w.op == "absent":
            return json_error(404, f"{key} is not listed")
        event(log, "operator_delisted", key=key, op=w.op)
        return web.json_response({"op": w.op, "key": key})

    return ApiModule(name="listings", routes=routes, paths=_LISTINGS_PATHS,
                     schemas=_LISTINGS_SCHEMAS, tags=[{"name": "listings",
                                                       "description": "blocklist lookups and delisting"}])


def _request_object(r: Any) -> dict[str, Any]:
    return {"id": r.id, "key": r.key, "reason": r.reason, "contact": r.contact,
            "client": r.client, "filed_at": r.filed_at, "status": r.status,
            "decided_at": r.decided_at or None, "decided_note": r.decided_note}


# -- OpenAPI ------------------------------------------------------------------------------------

_ERR = {"description": "error", "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/Error"}}}}
_OP_ERRORS = {
    "401": {**_ERR, "description": "no valid operator token"},
    "403": {**_ERR, "description": "operator endpoints disabled (no tokens configured)"},
    "503": {**_ERR, "description": "the store is unavailable"},
}
_SEC: list[dict[str, list[str]]] = [{"operatorToken": []}]


def _json_content(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


_KEY_PARAM = {"name": "key", "in": "path", "required": True,
              "description": "an IP address, a CIDR block, a domain or a mail address",
              "schema": {"type": "string"}}
_ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_DECIDE_BODY = {"required": False, "content": {"application/json": {"schema": {
    "type": "object", "properties": {"note": {"type": "string", "maxLength": 2000}}}}}}

_LISTINGS_PATHS: dict[str, dict[str, Any]] = {
    "/v1/listings/{key}": {
        "get": {
            "tags": ["listings"], "operationId": "lookupListing",
            "summary": "Is this key listed, why, since and until when, and how to get delisted",
            "parameters": [_KEY_PARAM],
            "responses": {"200": {"description": "the answer (listed or not)",
                                  "content": _json_content("Lookup")},
                          "400": {**_ERR, "description": "not an IP, CIDR, domain or address"},
                          "503": _OP_ERRORS["503"]},
        },
        "delete": {
            "tags": ["listings"], "operationId": "delist", "security": _SEC,
            "summary": "Delist a key now (operator)",
            "parameters": [_KEY_PARAM, {"name": "reason", "in": "query", "required": False,
                                        "schema": {"type": "string"}}],
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"reason": {"type": "string"}}}}}},
            "responses": {"200": {"description": "delisted", "content": {"application/json": {
                "schema": {"type": "object", "properties": {"op": {"type": "string"},
                                                            "key": {"type": "string"}}}}}},
                          "400": {**_ERR, "description": "no reason given"},
                          "404": {**_ERR, "description": "not listed"}, **_OP_ERRORS},
        },
    },
    "/v1/listings": {
        "get": {
            "tags": ["listings"], "operationId": "listListings", "security": _SEC,
            "summary": "All active listings (operator)",
            "parameters": [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 1000}},
                {"name": "offset", "in": "query", "schema": {"type": "integer", "default": 0}},
            ],
            "responses": {"200": {"description": "listings by key", "content": {
                "application/json": {"schema": {"type": "object", "properties": {
                    "total": {"type": "integer"},
                    "listings": {"type": "array",
                                 "items": {"$ref": "#/components/schemas/Listing"}}}}}}},
                **_OP_ERRORS},
        },
        "post": {
            "tags": ["listings"], "operationId": "addListing", "security": _SEC,
            "summary": "List a key, or extend its listing (operator)",
            "requestBody": {"required": True, "content": _json_content("ListingRequest")},
            "responses": {"201": {"description": "listed", "content": _json_content("ListingWrite")},
                          "200": {"description": "extended", "content": _json_content("ListingWrite")},
                          "400": {**_ERR, "description": "bad key, reason or ttl"}, **_OP_ERRORS},
        },
    },
    "/v1/delist-requests": {
        "post": {
            "tags": ["listings"], "operationId": "requestDelisting",
            "summary": "Ask for a listed key to be delisted (anyone; rate-limited per client IP)",
            "requestBody": {"required": True, "content": _json_content("DelistRequestIn")},
            "responses": {"202": {"description": "stored for an operator", "content": {
                "application/json": {"schema": {"type": "object", "properties": {
                    "id": {"type": "string"}, "key": {"type": "string"},
                    "status": {"type": "string"}, "filed_at": {"type": "number"}}}}}},
                "400": {**_ERR, "description": "bad request"},
                "404": {**_ERR, "description": "the key is not listed"},
                "429": {**_ERR, "description": "too many requests from this client"},
                "503": _OP_ERRORS["503"]},
        },
        "get": {
            "tags": ["listings"], "operationId": "listDelistRequests", "security": _SEC,
            "summary": "Delisting requests, oldest first (operator)",
            "parameters": [{"name": "status", "in": "query", "schema": {
                "type": "string", "enum": ["pending", "approved", "rejected"]}}],
            "responses": {"200": {"description": "requests", "content": {"application/json": {
                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/DelistRequest"}}}}},
                **_OP_ERRORS},
        },
    },
    "/v1/delist-requests/{id}/approve": {
        "post": {
            "tags": ["listings"], "operationId": "approveDelistRequest", "security": _SEC,
            "summary": "Approve a request: the key is delisted now (operator)",
            "parameters": [_ID_PARAM], "requestBody": _DECIDE_BODY,
            "responses": {"200": {"description": "decided", "content": _json_content("Decision")},
                          "404": {**_ERR, "description": "no such request"},
                          "409": {**_ERR, "description": "already decided"}, **_OP_ERRORS},
        },
    },
    "/v1/delist-requests/{id}/reject": {
        "post": {
            "tags": ["listings"], "operationId": "rejectDelistRequest", "security": _SEC,
            "summary": "Reject a request; the listing stays (operator)",
            "parameters": [_ID_PARAM], "requestBody": _DECIDE_BODY,
            "responses": {"200": {"description": "decided", "content": _json_content("Decision")},
                          "404": {**_ERR, "description": "no such request"},
                          "409": {**_ERR, "description": "already decided"}, **_OP_ERRORS},
        },
    },
}

_LISTING_PROPS = {
    "key": {"type": "string", "description": "the listing's key (may be a network or parent domain)"},
    "kind": {"type": "string", "enum": ["ip", "cidr", "domain", "address"]},
    "reason": {"type": "string", "description": "reason code"},
    "reason_text": {"type": "string"},
    "code": {"type": "string", "description": "the blocklist's A record for this reason"},
    "listed_at": {"type": "number", "description": "Unix seconds"},
    "expires_at": {"type": "number", "description": "Unix seconds"},
    "since": {"type": "string", "format": "date-time"},
    "until": {"type": "string", "format": "date-time"},
    "offences": {"type": "integer"},
    "note": {"type": "string"},
}

_LISTINGS_SCHEMAS: dict[str, Any] = {
    "Listing": {"type": "object", "properties": _LISTING_PROPS,
                "required": ["key", "kind", "reason", "code", "listed_at", "expires_at"]},
    "Lookup": {"type": "object", "required": ["key", "kind", "listed", "listing"], "properties": {
        "key": {"type": "string"}, "kind": {"type": "string"}, "listed": {"type": "boolean"},
        "listing": {"oneOf": [{"$ref": "#/components/schemas/Listing"}, {"type": "null"}]},
        "delisting": {"type": "object", "properties": {
            "how": {"type": "string"}, "request_url": {"type": "string"},
            "method": {"type": "string"}, "expires_by_itself_at": {"type": "number"}}}}},
    "ListingRequest": {"type": "object", "required": ["key", "reason"], "properties": {
        "key": {"type": "string"},
        "reason": {"type": "string", "description": "a reason code, or free text kept as the note"},
        "ttl": {"oneOf": [{"type": "number"}, {"type": "string"}],
                "description": 'seconds or "7d"; default: escalating reputation.listing_ttl'}}},
    "ListingWrite": {"type": "object", "properties": {
        "op": {"type": "string", "enum": ["listed", "extended"]},
        "listing": {"$ref": "#/components/schemas/Listing"}}},
    "DelistRequestIn": {"type": "object", "required": ["key", "reason"], "properties": {
        "key": {"type": "string", "maxLength": 300},
        "reason": {"type": "string", "maxLength": 2000},
        "contact": {"type": "string", "maxLength": 254}}},
    "DelistRequest": {"type": "object", "properties": {
        "id": {"type": "string"}, "key": {"type": "string"}, "reason": {"type": "string"},
        "contact": {"type": "string"}, "client": {"type": "string"},
        "filed_at": {"type": "number"},
        "status": {"type": "string", "enum": ["pending", "approved", "rejected"]},
        "decided_at": {"type": ["number", "null"]}, "decided_note": {"type": "string"}}},
    "Decision": {"type": "object", "properties": {
        "request": {"$ref": "#/components/schemas/DelistRequest"},
        "delisting": {"type": ["string", "null"]}}},
    "Error": {"type": "object", "required": ["error", "status"], "properties": {
        "error": {"type": "string"}, "status": {"type": "integer"}}},
}

_OPENAPI_PATH = {
    "/v1/openapi.json": {"get": {
        "tags": ["meta"], "operationId": "openapi", "summary": "This document",
        "responses": {"200": {"description": "OpenAPI 3.1 document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    "/metrics": {"get": {
        "tags": ["meta"], "operationId": "metrics",
        "summary": "Prometheus metrics of every spamwarden process on this host",
        "responses": {"200": {"description": "Prometheus text exposition",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    "/v1/health": {"get": {
        "tags": ["meta"], "operationId": "health", "summary": "Whether the store answers",
        "responses": {"200": {"description": "ok", "content": {"application/json": {
            "schema": {"type": "object"}}}}, "503": _OP_ERRORS["503"]}}},
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
    schemas.setdefault("Error", _LISTINGS_SCHEMAS["Error"])
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

    :param modules: modules or module factories; ``None``: :func:`listings_module` only.
    :returns: an application with the routes of every module, ``/v1/openapi.json``
        describing them, ``/v1/health``, and JSON errors.
    """
    ctx = ApiContext(cfg=cfg, clock=clock or SystemClock(), store=store)
    built = [m if isinstance(m, ApiModule) else m(ctx)
             for m in (modules if modules is not None else [listings_module])]
    app = web.Application(middlewares=[_errors], client_max_size=MAX_BODY)
    app[CONFIG_KEY] = cfg
    app[STORE_KEY] = store
    app[CLOCK_KEY] = ctx.clock
    doc = openapi_document(cfg, built)

    async def openapi(request: web.Request) -> web.StreamResponse:
        return web.json_response(doc)

    async def health(request: web.Request) -> web.StreamResponse:
        await store.serial()
        return web.json_response({"status": "ok"})

    async def metrics(request: web.Request) -> web.StreamResponse:
        from ..metrics import CONTENT_TYPE_LATEST, exposition

        body = await asyncio.to_thread(exposition)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/v1/openapi.json", openapi)
    app.router.add_get("/v1/health", health)
    app.router.add_get("/metrics", metrics)
    for m in built:
        app.router.add_routes(m.routes)
        app.on_startup.extend(m.on_startup)
        app.on_cleanup.extend(m.on_cleanup)
    return app


def load_modules(names: Sequence[str] = ()) -> list[Callable[[ApiContext], ApiModule]]:
    """Module factories named ``"package.module:function"`` (default :data:`MODULE_FACTORIES`)."""
    out = []
    for name in names or MODULE_FACTORIES:
        mod, _, fn = name.partition(":")
        out.append(getattr(importlib.import_module(mod), fn))
    return out


async def run_api(cfg: Config, *, listen: str | None = None) -> int:
    """``spamwarden api``: serve until SIGTERM or SIGINT.

    Logs ``api_listening host=... port=...`` once bound (port 0 picks a free port).
    """
    host, port = parse_hostport(listen or cfg.api.listen)
    store = AsyncListingStore.from_config(cfg)
    app = build_app(cfg, store, modules=load_modules())
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
