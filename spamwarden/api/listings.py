"""The listing routes of the API: lookup, delisting requests and operator listing
actions (``GET/POST /v1/listings``, ``/v1/delist-requests``), with their OpenAPI
description (:data:`LISTINGS_PATHS`)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from ..config import Config, parse_duration
from ..errors import DelistQueueFull, DelistRequestStale
from ..logs import event
from ..reputation.listings import REASONS, Listing, listing_json, normalize_key, operator_reason
from ..reputation.listings import utc_iso as _iso
from ..reputation.store import decided_here
from ._http import (
    ERROR_RESPONSE,
    ERROR_SCHEMA,
    ApiContext,
    ApiModule,
    BadRequest,
    Message,
    client_ip,
    json_body,
    json_error,
    operator_only,
    rate_client,
    text_field,
)
from .paging import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    key_cursor,
    page_limit,
    parse_key_cursor,
    parse_request_cursor,
    request_cursor,
)

__all__ = ["listings_module", "listing_object", "request_object", "parse_ttl",
           "LISTINGS_PATHS", "LISTINGS_SCHEMAS", "PAGE_PARAMS"]

log = logging.getLogger("spamwarden.api")
#: the deprecated ``offset`` of ``GET /v1/listings`` at most (Redis walks that many entries)
MAX_OFFSET = 1_000_000


def listing_object(x: Listing) -> dict[str, Any]:
    """The JSON form of a listing in API answers (with ISO ``since`` / ``until``).

    :param x: the listing.
    :returns: see :func:`~spamwarden.reputation.listings.listing_json`.
    """
    return listing_json(x, with_times=True)


def parse_ttl(raw: object) -> float | None:
    """The duration of an operator's listing: seconds, or ``"7d"`` and the like.

    Shared by ``POST /v1/listings`` and the console's listing forms, so both accept
    and refuse the same values.

    :param raw: a number, a duration text, or ``None`` (the escalating default).
    :returns: seconds, or ``None`` for the escalating ``reputation.listing_ttl``.
    :raises ValueError: not a duration, or not more than 0 (the message says which).
    """
    if raw is None:
        return None
    try:
        ttl = parse_duration(raw)
    except ValueError as exc:
        raise ValueError(f"ttl: expected {exc}") from exc
    if ttl <= 0:
        raise ValueError(Message("listings.ttl_positive"))
    return ttl


def _key_or_400(text: str) -> tuple[str, Any]:
    try:
        return normalize_key(text)
    except ValueError as exc:
        raise BadRequest(exc) from exc


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
        if not await store.rate_allow("delist", rate_client(request),
                                      limit=cfg.api.delist_requests_per_hour, now=now):
            return json_error(429, Message("api.delist_rate"),
                              headers={"Retry-After": str(3600 - int(now) % 3600)})
        body = await json_body(request)
        key, _ = _key_or_400(text_field(body, "key", required=True, limit=300))
        reason = text_field(body, "reason", required=True, limit=2000)
        contact = text_field(body, "contact", required=False, limit=254)
        found = await store.find(key, now=now)
        if found is None:
            return json_error(404, Message("api.not_listed", {"key": key}))
        try:
            req = await file_delist_request(store, cfg, found.key, reason=reason,
                                            contact=contact, client=ip, now=now,
                                            client_bucket=rate_client(request))
        except DelistQueueFull as exc:
            if exc.mine:
                return json_error(429, Message("api.delist_request_pending", {"key": exc.key}))
            return json_error(429, Message("api.delist_key_queue_full", {"key": exc.key})
                              if exc.key else Message("api.delist_queue_full"))
        return web.json_response({"id": req.id, "key": req.key, "status": req.status,
                                  "filed_at": req.filed_at}, status=202)

    @routes.get("/v1/delist-requests")
    @operator_only
    async def list_requests(request: web.Request) -> web.StreamResponse:
        status = request.query.get("status") or None
        if status not in (None, "pending", "approved", "rejected"):
            raise BadRequest(Message("api.request_status"))
        limit = page_limit(request.query)
        after = parse_request_cursor(request.query)
        reqs, nxt = await store.delist_request_page(now=clock.now(), status=status,
                                                    after=after, limit=limit)
        # the answer stays an array (older clients read it so); the next page is named in
        # a Link header (RFC 8288) and a Next-Cursor header
        headers = {}
        if nxt is not None:
            cursor = request_cursor(nxt)
            query = {**({"status": status} if status else {}), "limit": str(limit),
                     "cursor": cursor}
            headers = {"Link": f'<{request.path}?{urlencode(query)}>; rel="next"',
                       "Next-Cursor": cursor}
        return web.json_response([request_object(r) for r in reqs], headers=headers)

    async def decide(request: web.Request, approve: bool) -> web.StreamResponse:
        rid = request.match_info["id"]
        body = await json_body(request) if request.can_read_body else {}
        note = text_field(body, "note", required=False, limit=2000)
        current = await store.get_delist_request(rid)
        if current is None:
            return json_error(404, Message("api.no_request", {"id": rid}))
        if current.status != "pending":
            return json_error(409, Message("api.request_decided", {"id": rid, "status": current.status}))
        try:
            res = await store.decide_delist_request(rid, approve=approve, note=note,
                                                    now=clock.now())
        except DelistRequestStale as exc:
            return json_error(409, Message("api.request_stale", {
                "key": exc.key, "since": _iso(exc.listed_at)}))
        assert res is not None
        new, write = res
        if not decided_here(res, approve=approve):
            # another operator decided it between the check above and this decision
            return json_error(409, Message("api.request_decided", {"id": rid, "status": new.status}))
        event(log, "delist_request_decided", id=rid, key=new.key, status=new.status)
        return web.json_response({"request": request_object(new),
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
        limit = page_limit(request.query)
        after = parse_key_cursor(request.query)
        try:
            # deprecated: positions shift as listings come and go; cursors do not
            offset = max(int(request.query.get("offset", "0")), 0) if after is None else 0
        except ValueError as exc:
            raise BadRequest(Message("api.limit_offset_numbers")) from exc
        now = clock.now()
        items, nxt = await store.listing_page(after=after, limit=limit, now=now,
                                              offset=min(offset, MAX_OFFSET))
        return web.json_response({"total": await store.active_count(now=now),
                                  "listings": [listing_object(x) for x in items],
                                  "next_cursor": key_cursor(nxt) if nxt is not None else None})

    @routes.post("/v1/listings")
    @operator_only
    async def add(request: web.Request) -> web.StreamResponse:
        body = await json_body(request)
        key, kind = _key_or_400(text_field(body, "key", required=True, limit=300))
        text = text_field(body, "reason", required=True, limit=2000)
        reason, note = (text, "") if text in REASONS else (operator_reason(kind), text)
        try:
            ttl = parse_ttl(body.get("ttl"))
        except ValueError as exc:
            raise BadRequest(exc) from exc
        w = await store.add(key, kind=kind, reason=reason, note=note, ttl=ttl, now=clock.now())
        assert w.listing is not None
        event(log, "operator_listed", key=key, op=w.op, reason=reason)
        return web.json_response({"op": w.op, "listing": listing_object(w.listing)},
                                 status=201 if w.op == "listed" else 200)

    @routes.delete("/v1/listings/{key:.+}")
    @operator_only
    async def delist(request: web.Request) -> web.StreamResponse:
        key, _ = _key_or_400(request.match_info["key"])
        body = await json_body(request) if request.can_read_body else {}
        reason = text_field(body, "reason", required=False, limit=2000) or request.query.get("reason", "")
        if not reason:
            raise BadRequest(Message("api.reason_required"))
        w = await store.delist(key, note=reason, now=clock.now())
        if w.op == "absent":
            return json_error(404, Message("api.not_listed", {"key": key}))
        event(log, "operator_delisted", key=key, op=w.op)
        return web.json_response({"op": w.op, "key": key})

    return ApiModule(name="listings", routes=routes, paths=LISTINGS_PATHS,
                     schemas=LISTINGS_SCHEMAS, tags=[{"name": "listings",
                                                       "description": "blocklist lookups and delisting"}])


async def file_delist_request(store: Any, cfg: Config, key: str, *, reason: str, contact: str,
                              client: str, now: float, via: str | None = None,
                              client_bucket: str = "") -> Any:
    """File a public delisting request for the listed ``key`` under the queue's bounds
    (``api.max_pending_delist_requests``, ``_per_key``, one pending request of a key per
    ``client_bucket``), logged either way: the API's ``POST /v1/delist-requests`` and the
    lookup page's form (``via="page"``) both.

    :returns: the filed :class:`~spamwarden.reputation.store.DelistRequest`.
    :raises DelistQueueFull: a bound is reached (logged as ``delist_request_refused``).
    """
    try:
        req = await store.file_delist_request(
            key, reason=reason, contact=contact, client=client, now=now,
            max_pending=cfg.api.max_pending_delist_requests,
            max_pending_per_key=cfg.api.max_pending_delist_requests_per_key,
            client_bucket=client_bucket)
    except DelistQueueFull as exc:
        event(log, "delist_request_refused", logging.WARNING, key=key, client=client, via=via,
              error=str(exc))
        raise
    event(log, "delist_requested", id=req.id, key=req.key, client=client, via=via)
    return req


def request_object(r: Any) -> dict[str, Any]:
    """The JSON form of a :class:`~spamwarden.reputation.store.DelistRequest` in API answers."""
    return {"id": r.id, "key": r.key, "reason": r.reason, "contact": r.contact,
            "client": r.client, "filed_at": r.filed_at, "status": r.status,
            "decided_at": r.decided_at or None, "decided_note": r.decided_note}


# -- OpenAPI ------------------------------------------------------------------------------------

_ERR = ERROR_RESPONSE
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
#: the paging parameters of the list routes (shared with lookup.py's queue)
_LIMIT_PARAM = {"name": "limit", "in": "query", "description": "records per page",
                "schema": {"type": "integer", "default": DEFAULT_LIMIT, "minimum": 1,
                           "maximum": MAX_LIMIT}}
_CURSOR_PARAM = {"name": "cursor", "in": "query",
                 "description": "the next_cursor of the previous page (absent: the first page)",
                 "schema": {"type": "string", "maxLength": 600}}
PAGE_PARAMS = [_LIMIT_PARAM, _CURSOR_PARAM]
_DECIDE_BODY = {"required": False, "content": {"application/json": {"schema": {
    "type": "object", "properties": {"note": {"type": "string", "maxLength": 2000}}}}}}

LISTINGS_PATHS: dict[str, dict[str, Any]] = {
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
            "summary": "Active listings by key, one page at a time (operator)",
            "description": (
                "At most `limit` listings after `cursor`, ordered by key, and `next_cursor` "
                "(null after the last page): pass it back as `cursor` for the next page. A "
                "listing that stays listed is answered exactly once across the pages, "
                "whatever is listed or delisted meanwhile. A page may hold fewer than "
                "`limit` listings and still have a next one. A client that sends no cursor "
                "gets the first page and its `next_cursor`. `total` counts every active "
                "listing."),
            "parameters": [_LIMIT_PARAM, _CURSOR_PARAM,
                {"name": "offset", "in": "query", "deprecated": True,
                 "description": "listings to skip before the first page (ignored with a "
                                "cursor; positions shift as listings change: use cursors)",
                 "schema": {"type": "integer", "default": 0, "minimum": 0}},
            ],
            "responses": {"200": {"description": "one page of listings by key", "content": {
                "application/json": {"schema": {"type": "object", "properties": {
                    "total": {"type": "integer"},
                    "listings": {"type": "array",
                                 "items": {"$ref": "#/components/schemas/Listing"}},
                    "next_cursor": {"type": ["string", "null"]}}}}}},
                "400": {**_ERR, "description": "limit not from 1 to 10000, or not a cursor "
                                               "of this list"},
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
            "summary": "Delisting requests, oldest first, one page at a time (operator)",
            "description": (
                "Pending requests by time filed, decided ones by time decided, all by time "
                "filed. The answer is an array of at most `limit` requests; when more "
                "follow, the `Next-Cursor` header holds the cursor of the next page and "
                "the `Link` header (rel=next) its URL."),
            "parameters": [{"name": "status", "in": "query", "schema": {
                "type": "string", "enum": ["pending", "approved", "rejected"]}},
                _LIMIT_PARAM, _CURSOR_PARAM],
            "responses": {"200": {
                "description": "requests",
                "headers": {"Next-Cursor": {"schema": {"type": "string"},
                                            "description": "the next page's cursor"},
                            "Link": {"schema": {"type": "string"},
                                     "description": "the next page (rel=next)"}},
                "content": {"application/json": {"schema": {
                    "type": "array", "items": {"$ref": "#/components/schemas/DelistRequest"}}}}},
                "400": {**_ERR, "description": "bad status, limit or cursor"},
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
                          "409": {**_ERR, "description": "already decided, or filed against "
                                  "a listing that has ended since (api.request_stale)"},
                          **_OP_ERRORS},
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

LISTINGS_SCHEMAS: dict[str, Any] = {
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
    "Error": ERROR_SCHEMA,
}
